"""A firmware sanitize found in progress after a power cut is resumed by the restarted daemon, not restarted."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable

import pytest

from agent.jobs.runner import JobRunner
from agent.store.registry import Registry
from tests.integration.daemon.conftest import Daemon

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(not callable(getattr(JobRunner, "resume", None)), reason="JobRunner.resume not available"),
]

MiB = 1 << 20
EMULATED = [sys.executable, "-m", "tests.integration.daemon.emulated_station"]


def test_sanitize_in_progress_at_restart_is_resumed(station: Callable[..., Daemon]) -> None:
    daemon = station([32 * MiB], profile="nist-purge")
    command = [*EMULATED, str(daemon.config)]
    daemon.start(command=command, env={"WIPE_AGENT_TEST_FROZEN": "1"})  # the drive's sanitize never ends
    daemon.backings[0].attach()
    registry = Registry(daemon.state_dir).open()
    try:
        deadline = time.monotonic() + 30
        job_id = None
        while job_id is None:
            assert time.monotonic() < deadline, daemon.log.read_text()
            for job in registry.jobs(5):
                if "firmware-started" in [event["event"] for event in registry.events(job.id)]:
                    job_id = job.id
            time.sleep(0.02)
        status = daemon.status()
        worker = next(bay["job"]["pid"] for bay in status["bays"] if bay["job"])
        os.kill(worker, signal.SIGSTOP)  # power cut: neither the daemon nor the worker gets a word in
        daemon.kill()
        os.kill(worker, signal.SIGKILL)
        while os.path.exists(f"/proc/{worker}") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert registry.job(job_id).state == "running"

        daemon.start(command=command)  # power back: the emulated sanitize now progresses
        deadline = time.monotonic() + 60
        while registry.job(job_id).state not in ("sanitised", "failed", "interrupted", "refused"):
            assert time.monotonic() < deadline, daemon.log.read_text()
            time.sleep(0.05)
        job = registry.job(job_id)
        assert job.state == "sanitised", (job.reason, daemon.log.read_text())
        events = [event["event"] for event in registry.events(job_id)]
        assert "resumed" in events and events.count("firmware-command") == 1  # never a second sanitize
        assert [row.id for row in registry.jobs(10)] == [job_id]  # resumed, not restarted as a new job
    finally:
        registry.close()
