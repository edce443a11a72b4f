"""A resumed job whose drive has no sanitize in progress ends interrupted and is offered for a restart — not
recorded as a failed job whose worker "exited with status 0" (the message was dropped before the contracts
were typed)."""

from __future__ import annotations

from pathlib import Path

from agent.contracts import JobState, NotResumable, Route
from agent.daemon.station import ActiveJob
from agent.store.registry import Registry
from tests.unit.daemon.test_bays import IDENTITY, _station


def test_not_resumable_ends_interrupted_and_queues_the_restart(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    job_id = registry.create_job(IDENTITY, "nist-purge", "alice", "bay bay-1")
    registry.transition(job_id, "checking", "checks")
    registry.transition(job_id, "running", "started", method="firmware.nvme-sanitize-block")
    station = _station(tmp_path, auto_start=True, registry=registry)
    job = ActiveJob(key=1, bay="bay-1", device_path="/dev/sdz", name="sdz", profile="nist-purge", operator="alice",
                    resume=job_id, job_id=job_id)
    station._on_worker_message(job, NotResumable(job_id))
    assert isinstance(job.outcome, NotResumable)
    station._finish(job, 0)
    row = registry.job(job_id)
    assert row.state == JobState.INTERRUPTED and row.route == Route.HOLD
    assert [event["data"] for event in registry.events(job_id) if event["event"] == "owner-gone"] == [
        {"resume": "no sanitize in progress"}]
    assert [pending.id for pending in station._restart_interrupted] == [job_id]
