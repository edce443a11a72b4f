"""One station process for the fleet concurrency test: runs jobs in its own registry and forwards them.

``python -m tests.integration.store.station_pusher STATE_DIR URL_FILE JOBS`` — every job goes through
the real registry lifecycle (each transition chained in the audit log, checkpoints signed with the
station key); every 20th gets a real signed certificate. Every 50 jobs it pushes to the fleet whose URL it
reads from URL_FILE at that moment (the test points one station at a dead port for a while); a failed
push is counted and the station carries on. At the end it pushes until nothing is left (or 120 s pass) and
prints a JSON summary of its own registry.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from agent.discovery.identity import DriveIdentity
from agent.fleet.client import FleetClient
from agent.fleet.errors import FleetConfigError, FleetUnavailable
from agent.fleet.outbox import Outbox
from agent.store.registry import Registry
from certs import pki
from certs.issue import issue_certificate
from certs.samples import sample_record


def main(state_dir: Path, url_file: Path, jobs: int) -> int:
    signer = pki.load_station_signer(state_dir)
    registry = Registry(state_dir).open()
    outbox = Outbox(registry, signer.station_id)
    failures = 0
    certificates = 0

    def push() -> bool:
        nonlocal failures
        try:
            outbox.push(FleetClient(url_file.read_text().strip(), state_dir / "pki"), batch=200)
            return True
        except (FleetUnavailable, FleetConfigError):
            failures += 1
            return False

    for number in range(jobs):
        identity = DriveIdentity(
            path="/dev/sdz", name="sdz", by_id=None, model="Fleet Disk", serial=f"{signer.station_id}-{number:05d}",
            firmware="1", vendor=None, size_bytes=1 << 30, logical_sector=512, physical_sector=4096, rotational=True,
            transport="sata", media="hdd", removable=False, read_only=False, id_path=None)
        job = registry.create_job(identity, "nist-clear", "test", "test", durable=False)
        registry.transition(job, "checking", "checks", durable=False)
        registry.transition(job, "running", "started", method="overwrite.single-pass")
        registry.transition(job, "verifying", "written")
        registry.transition(job, "sanitised", "verified")
        if number % 20 == 0:
            pdf = issue_certificate(sample_record(station_id=signer.station_id, job_id=job,
                                                  certificate_id=f"C-{job}", demo=False),
                                    signer, state_dir / "certificates" / f"{job}.pdf")
            registry.attach_certificate(job, str(pdf), f"C-{job}", "0" * 64)
            certificates += 1
        if number % 50 == 49:
            push()
    registry.audit.checkpoint()
    deadline = time.monotonic() + 120
    while not push() or outbox.status().backlog:
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    status = outbox.status()
    count = registry.db.execute
    print(json.dumps({
        "station_id": signer.station_id, "jobs": int(count("SELECT count(*) FROM jobs").fetchone()[0]),
        "audit": int(count("SELECT count(*) FROM audit_log").fetchone()[0]),
        "checkpoints": int(count("SELECT count(*) FROM audit_checkpoints").fetchone()[0]),
        "certificates": certificates, "records": status.records, "acknowledged": status.acknowledged,
        "refused": status.refused, "failed_pushes": failures}))
    registry.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))
