"""The job worker takes its parts from an Application built by the caller: seams, not patched modules."""

from __future__ import annotations

import io
import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.app import Application
from agent.contracts import WorkerRequest, message_from_json
from agent.daemon import worker
from agent.errors import DriveNotFound

SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2)


@pytest.fixture(autouse=True)
def _restore_signal_handlers() -> Iterator[None]:
    saved = {number: signal.getsignal(number) for number in SIGNALS}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


def _lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_the_worker_identifies_through_the_application_it_is_given(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []

    def identify(path: str) -> object:
        seen.append(path)
        raise DriveNotFound(f"{path}: not a drive of this fake")

    def build(request: WorkerRequest) -> Application:
        return Application.for_worker(request, identify=identify)  # type: ignore[arg-type]

    request = WorkerRequest(state_dir=str(tmp_path / "state"), device_path="/dev/wa-fake0",
                            profile="nist-clear-overwrite", operator="tester")
    assert worker.run_request(request.to_json(), build) == 1
    assert seen == ["/dev/wa-fake0"]
    messages = [message_from_json(line) for line in _lines(capsys.readouterr().out)]
    assert [message.event.value for message in messages] == ["error"]
    assert "not a drive of this fake" in str(messages[0].error["message"])  # type: ignore[union-attr]


@pytest.mark.parametrize("line", ['{"device_path": "/dev/x"}', "not json", "[1, 2]"])
def test_a_malformed_request_is_one_error_line_and_exit_1(line: str, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(line + "\n"))
    assert worker.main() == 1
    out = _lines(capsys.readouterr().out)
    assert len(out) == 1 and out[0]["event"] == "error" and out[0]["job_id"] is None
