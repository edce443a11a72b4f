"""Job launchers: answers matched to requests by ticket, signals that can never reach a reused pid."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.daemon import launcher as launcher_module
from agent.daemon.launcher import ForkServerLauncher, ProcessSignaller, WorkerHandle


def _request(tmp_path: Path, device: str) -> dict[str, Any]:
    # a job on a device that does not exist: the worker reports the error naming it and exits 1
    return {"state_dir": str(tmp_path / "state"), "device_path": device, "profile": "nist-clear-overwrite",
            "operator": "tester", "bay": None, "expected_serial": None, "asset_tag": None, "host": None,
            "resume": None, "organisation": "Test"}


def _messages(handle: WorkerHandle) -> list[dict[str, Any]]:
    assert handle.stdout is not None
    with handle.stdout:
        return [json.loads(line) for line in handle.stdout if line.startswith(b"{")]


def test_a_forked_worker_reports_and_exits_and_cannot_be_signalled_afterwards(tmp_path: Path) -> None:
    launcher = ForkServerLauncher()
    try:
        handle = launcher.launch(_request(tmp_path, "/dev/wa-no-such-disk"))
        messages = _messages(handle)
        assert messages[-1]["event"] == "error" and "/dev/wa-no-such-disk" in messages[-1]["error"]["message"]
        assert handle.wait() == 1
        with pytest.raises(ProcessLookupError):
            handle.send_signal(signal.SIGTERM)  # reaped: refused, whatever process has that pid now
    finally:
        launcher.close()


def test_a_late_answer_is_never_taken_for_the_next_launch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    launcher = ForkServerLauncher()
    try:
        # the server is stopped: the first launch gives up; its answer arrives after the server resumes
        first = launcher.launch(_request(tmp_path, "/dev/wa-warm-up"))  # the server is up and preloaded
        _messages(first)
        first.wait()
        monkeypatch.setattr(launcher_module, "START_TIMEOUT", 0.3)
        os.kill(launcher.process.pid, signal.SIGSTOP)
        try:
            with pytest.raises(OSError, match="did not answer"):
                launcher.launch(_request(tmp_path, "/dev/wa-abandoned"))
        finally:
            os.kill(launcher.process.pid, signal.SIGCONT)
        monkeypatch.setattr(launcher_module, "START_TIMEOUT", 10.0)
        second = launcher.launch(_request(tmp_path, "/dev/wa-second"))
        deadline = time.monotonic() + 10
        while not launcher.stopped_on_arrival and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(launcher.stopped_on_arrival) == 1 and launcher.stopped_on_arrival[0] != second.pid
        messages = _messages(second)
        assert "/dev/wa-second" in messages[-1]["error"]["message"]  # the output is its own request's
        assert second.wait() == 1
    finally:
        launcher.close()


def test_a_slow_starting_server_is_waited_for_not_given_up_on(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The server's own start (imports, preload) does not count against one launch's answer time: a
    station started on a slow or busy machine must not drop the first job of a drive in its bay."""
    monkeypatch.setattr(launcher_module, "START_TIMEOUT", 1.0)
    launcher = ForkServerLauncher()
    os.kill(launcher.process.pid, signal.SIGSTOP)  # still importing: held there longer than START_TIMEOUT
    resume = threading.Timer(2.0, os.kill, (launcher.process.pid, signal.SIGCONT))
    resume.start()
    try:
        assert not launcher.ready  # the station keeps its jobs queued meanwhile
        handle = launcher.launch(_request(tmp_path, "/dev/wa-slow-start"))
        assert "/dev/wa-slow-start" in _messages(handle)[-1]["error"]["message"]
        assert handle.wait() == 1 and launcher.stopped_on_arrival == [] and launcher.ready
    finally:
        resume.join()
        launcher.close()


def test_an_answer_arriving_as_the_launch_gives_up_is_used_not_lost(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader takes the answer while the launch's wait runs out: one of them must own the worker."""

    class SlowPending(launcher_module._Pending):
        def __setattr__(self, name: str, value: object) -> None:
            if name == "pid" and value != -1:
                time.sleep(0.6)  # the reader, between taking the ticket and handing over the answer
            super().__setattr__(name, value)

    launcher = ForkServerLauncher()
    try:
        warm = launcher.launch(_request(tmp_path, "/dev/wa-warm-up"))
        _messages(warm)
        warm.wait()
        descriptors = len(os.listdir("/proc/self/fd"))
        monkeypatch.setattr(launcher_module, "_Pending", SlowPending)
        monkeypatch.setattr(launcher_module, "START_TIMEOUT", 0.2)
        handle = launcher.launch(_request(tmp_path, "/dev/wa-late"))  # the answer came: it is this launch's
        assert "/dev/wa-late" in _messages(handle)[-1]["error"]["message"]
        assert handle.wait() == 1
        assert launcher.stopped_on_arrival == [] and launcher.abandoned == set()
        assert len(os.listdir("/proc/self/fd")) == descriptors  # pipe and pidfd closed
    finally:
        launcher.close()


def test_process_signaller_refuses_once_the_process_is_gone() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    signaller = ProcessSignaller(child.pid)
    signaller.send(signal.SIGTERM)
    assert child.wait(10) == -signal.SIGTERM
    with pytest.raises(ProcessLookupError):
        signaller.send(signal.SIGTERM)  # reaped: the pidfd still names the dead process, not a newcomer
    signaller.close()
    with pytest.raises(ProcessLookupError):
        signaller.send(signal.SIGTERM)
