"""Read-only commands never declare an orphaned firmware job interrupted: its sanitize may still run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import run_cli

CHILD = (
    "import sys; from pathlib import Path; from tests.unit.core.test_registry import IDENTITY;"
    "from agent.store.registry import Registry;"
    "r = Registry(Path(sys.argv[1])).open(); j = r.create_job(IDENTITY, 'p', 'bob', 'x');"
    "r.transition(j, 'running', 'method-start', method=sys.argv[2]); print(j)"
)


def _orphan(state: Path, method: str) -> str:
    root = Path(__file__).resolve().parents[3]
    child = subprocess.run([sys.executable, "-c", CHILD, str(state), method], capture_output=True, text=True,
                           check=True, cwd=root)
    return child.stdout.strip()


def test_jobs_listing_leaves_firmware_orphans_and_interrupts_overwrite_orphans(tmp_path: Path) -> None:
    firmware = _orphan(tmp_path, "nvme.sanitize.block")
    overwrite = _orphan(tmp_path, "overwrite.zero")
    jobs = json.loads(run_cli("--state-dir", str(tmp_path), "jobs", "--json", check=True).stdout)["jobs"]
    states = {job["job_id"]: job["state"] for job in jobs}
    assert states == {firmware: "running", overwrite: "interrupted"}
