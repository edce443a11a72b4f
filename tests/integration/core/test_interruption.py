"""kill -9 in the middle of a wipe leaves an ``interrupted`` job, never ``sanitised``."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import WIPE_AGENT, LoopDevice, run_cli

pytestmark = pytest.mark.root


def _state(state_dir: Path) -> str | None:
    database = state_dir / "registry.sqlite3"
    if not database.exists():
        return None
    with sqlite3.connect(database, timeout=5) as db:
        try:
            row = db.execute("SELECT state FROM jobs ORDER BY created_at DESC LIMIT 1").fetchone()
        except sqlite3.OperationalError:
            return None
    return row[0] if row else None


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_wipe_is_interrupted(loop_factory: Callable[..., LoopDevice], state_dir: Path, sig: int) -> None:
    # a device big enough that the full read-back is still running when we strike
    device = loop_factory(768 << 20, fill=b"\xab")
    process = subprocess.Popen(
        [*WIPE_AGENT, "wipe", device.path, "--profile", "nist-clear-overwrite-full", "--yes", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ},
    )
    deadline = time.monotonic() + 60
    while _state(state_dir) not in ("running", "verifying"):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)
    process.send_signal(sig)
    process.communicate(timeout=30)
    if sig == signal.SIGTERM:
        assert process.returncode == 1  # cancelled cleanly, journaled by the process itself
    jobs = json.loads(run_cli("jobs", "--json", check=True).stdout)["jobs"]
    assert len(jobs) == 1 and jobs[0]["outcome"] == "interrupted", jobs[0]
    assert jobs[0]["certificate"] is None
    # the next wipe of the same drive completes and the registry is intact
    again = run_cli("wipe", device.path, "--profile", "nist-clear-overwrite", "--yes", "--json")
    assert again.returncode == 0, again.stdout
    states = [job["outcome"] for job in json.loads(run_cli("jobs", "--json", check=True).stdout)["jobs"]]
    assert states == ["sanitised", "interrupted"]
    with sqlite3.connect(state_dir / "registry.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
