"""One table maps a job's exception to its recorded outcome, for run and for resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.discovery.guard import Guard
from agent.discovery.identity import DriveIdentity
from agent.errors import (
    AgentError,
    DriveProtected,
    DriveRemoved,
    JobInterrupted,
    MediaError,
    MediumChanged,
    VerificationFailed,
)
from agent.jobs.runner import OUTCOMES, JobRunner, Outcome
from agent.methods.base import Blocked
from agent.store.registry import Registry
from agent.verify.readback import VerifyCancelled

IDENTITY = DriveIdentity(path="/dev/loop9", name="loop9", by_id=None, model="M", serial="S1", firmware=None,
                         vendor=None, size_bytes=1 << 20, logical_sector=512, physical_sector=512, rotational=False,
                         transport="virtual", media="virtual", removable=False, read_only=False, id_path=None)


class Written:
    bytes_written = 4096


def _runner(tmp_path: Path) -> tuple[JobRunner, Registry]:
    registry = Registry(tmp_path / "state").open()
    return JobRunner(registry, Guard(), lambda path: IDENTITY), registry


def _record(tmp_path: Path, exc: BaseException, *, resuming: bool, level: str | None = "clear") -> tuple[
        bool, dict[str, object]]:
    runner, registry = _runner(tmp_path)
    try:
        job_id = registry.create_job(IDENTITY, "p", "op", "cli")
        registry.transition(job_id, "checking", "guard")
        registry.transition(job_id, "running", "method-start", {}, method="overwrite.zero", level=level,
                            bytes_written=512)
        reraise = runner._record_outcome(job_id, exc, Written(), resuming=resuming)  # type: ignore[arg-type]
        row = registry.job(job_id)
        events = registry.events(job_id)
        return reraise, {"state": row.state, "route": row.route, "code": row.error_code, "reason": row.reason,
                         "level": row.level, "bytes": row.bytes_written, "event": events[-1]["event"],
                         "data": events[-1]["data"]}
    finally:
        registry.close()


@pytest.mark.parametrize(("exc", "state", "event", "route", "code"), [
    (MediumChanged("m", ("diskseq changed",)), "failed", "medium-changed", "hold", "medium_changed"),
    (MediumChanged("m", written=False), "refused", "refused", "hold", "medium_changed"),
    (DriveProtected("p", ("mounted",)), "refused", "refused", "running-route", "drive_protected"),
    (Blocked("security-frozen", "frozen", "re-plug it", route="destroy"), "refused", "refused", "destroy",
     "blocked_security_frozen"),
    (JobInterrupted("stopped"), "interrupted", "interrupted", "hold", "interrupted"),
    (VerifyCancelled(), "interrupted", "interrupted", "hold", "interrupted"),
    (DriveRemoved("gone"), "failed", "drive-removed", "hold", "drive_removed"),
    (MediaError("eio", offset=4096), "failed", "media-error", "destroy", "media_error"),
    (VerificationFailed("data left"), "failed", "verification-failed", "destroy", "verification_failed"),
    (AgentError("odd"), "failed", "error", "hold", "internal"),
])
def test_run_records_each_exception_by_its_row(tmp_path: Path, exc: BaseException, state: str, event: str,
                                               route: str, code: str) -> None:
    reraise, row = _record(tmp_path, exc, resuming=False)
    assert not reraise
    assert (row["state"], row["event"], row["code"]) == (state, event, code)
    if route != "running-route":
        assert row["route"] == route
    else:  # a refusal without a route of its own leaves the column as it was
        assert row["route"] is None
    if state == "refused":  # nothing written: the planned level and bytes stay as recorded
        assert (row["level"], row["bytes"]) == ("clear", 512)
    else:  # something may have been written: no level reached, the bytes the device really wrote
        assert (row["level"], row["bytes"]) == (None, 4096)
    if isinstance(exc, DriveRemoved):
        assert row["reason"] == "drive removed: gone"
    if isinstance(exc, MediaError):
        assert row["data"] == {"reason": "eio", "offset": 4096}


def test_an_internal_error_is_recorded_and_propagates(tmp_path: Path) -> None:
    reraise, row = _record(tmp_path, KeyError("x"), resuming=False)
    assert reraise and (row["state"], row["code"], row["route"]) == ("failed", "internal", "hold")
    assert row["reason"] == "internal error: KeyError('x')" and row["data"] == {"error": "KeyError('x')"}


@pytest.mark.parametrize("exc", [
    MediaError("eio", offset=4096), DriveRemoved("gone"), MediumChanged("m", ("diskseq changed",)),
    VerificationFailed("data left"), JobInterrupted("stopped"), KeyError("x"),
])
def test_a_resumed_job_is_recorded_exactly_as_a_run_one(tmp_path: Path, exc: BaseException) -> None:
    """A media error during a resumed sanitize goes to destruction, a failed resume reached no level and is
    credited only the bytes really written, an internal error is recorded before it propagates — as in a run."""
    run = _record(tmp_path / "run", exc, resuming=False)
    resumed = _record(tmp_path / "resume", exc, resuming=True)
    assert resumed == run


def test_a_failed_resume_reached_no_level(tmp_path: Path) -> None:
    reraise, row = _record(tmp_path, MediaError("eio", offset=4096), resuming=True)
    assert not reraise and (row["state"], row["route"], row["level"], row["bytes"]) == ("failed", "destroy", None, 4096)


def test_every_row_is_reachable() -> None:
    # a row behind a broader one (same types, no condition) could never apply
    unconditional = Outcome.__dataclass_fields__["when"].default
    for index, row in enumerate(OUTCOMES):
        for earlier in OUTCOMES[:index]:
            if all(issubclass(kind, earlier.types) for kind in row.types) and earlier.when is unconditional:
                raise AssertionError(f"{row.event} ({row.types}) is shadowed by {earlier.event}")
