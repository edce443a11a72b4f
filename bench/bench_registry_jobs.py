"""Registry jobs per second: create → checking → running → verifying → sanitised → certificate, per job.

Measures what the audit chain costs each transition (every one appends an entry in the same
transaction). Run: ``.venv/bin/python bench/bench_registry_jobs.py [JOBS] [DIR]``; DIR (default: the
system's temporary directory) on /dev/shm takes the fsyncs out and leaves the CPU cost.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from agent.discovery.identity import DriveIdentity
from agent.store.registry import Registry


def main(jobs: int, where: str | None) -> None:
    """Run ``jobs`` complete job lifecycles on a fresh registry and print jobs/s."""
    with tempfile.TemporaryDirectory(dir=where) as directory:
        registry = Registry(Path(directory)).open()
        start = time.perf_counter()
        for number in range(jobs):
            identity = DriveIdentity(
                path="/dev/sdz", name="sdz", by_id=None, model="Bench Disk", serial=f"SN{number}", firmware="1",
                vendor=None, size_bytes=1 << 30, logical_sector=512, physical_sector=4096, rotational=True,
                transport="sata", media="hdd", removable=False, read_only=False, id_path=None)
            job = registry.create_job(identity, "clear", "bench", "bench", durable=False)
            registry.transition(job, "checking", "checks", durable=False)
            registry.transition(job, "running", "started", method="clear-zero")
            registry.transition(job, "verifying", "written")
            registry.transition(job, "sanitised", "verified")
            registry.attach_certificate(job, f"/tmp/{job}.pdf", f"C-{job}", "0" * 64)
        elapsed = time.perf_counter() - start
        print(f"{jobs} jobs in {elapsed:.2f} s: {jobs / elapsed:.1f} jobs/s")
        registry.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 300, sys.argv[2] if len(sys.argv) > 2 else None)
