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

from agent.fleet.client import FleetClient
from agent.fleet.errors import FleetConfigError, FleetUnavailable
from agent.fleet.outbox import Outbox
from agent.store.registry import Registry
from certs import pki
from tests.integration.store.fleet_kit import sanitised_job


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
        certified = number % 20 == 0
        sanitised_job(registry, signer if certified else None, state_dir, f"{signer.station_id}-{number:05d}")
        certificates += certified
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
