"""Certificate verification on fleet ingest, measured apart from the database (issue 14: "certificate
verification measured separately and parallel where possible").

Issues N real signed certificates (EC P-256 station, PAdES, no TSA), then verifies them as one batch's
documents would be: in this process (``workers=1``) and in worker processes (``workers=2..cpus``), after a
warm-up that starts the pool. Prints documents per second and the speed-up. Run:
``.venv/bin/python bench/bench_fleet_verify.py [N]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.fleet.verifypool import DocumentVerifier
from certs.verify import load_trust_bundle
from tests.unit.certs.certs_test_kit import build_world, record_for


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    with tempfile.TemporaryDirectory() as scratch:
        world = build_world(Path(scratch))
        documents = []
        for number in range(count):
            record = record_for(world.station, demo=False, certificate_id=f"bench-{number:08d}")
            path = world.issue(record, directory=Path(scratch) / "out", name=f"C-{number}.pdf")
            documents.append((path.name, path.read_bytes()))
        bundle = load_trust_bundle(world.bundle)
        rates: dict[int, float] = {}
        for workers in sorted({1, 2, os.cpu_count() or 1}):
            verifier = DocumentVerifier(bundle, workers=workers)
            try:
                verifier.verify_many(documents[:4], None)  # warm-up: imports, the pool's processes
                started = time.perf_counter()
                reports = verifier.verify_many(documents, None)
                elapsed = time.perf_counter() - started
            finally:
                verifier.close()
            valid = sum(1 for report in reports.values() if not isinstance(report, str) and report.valid)
            assert valid == count, f"{count - valid} of the bench's certificates did not verify"
            rates[workers] = count / elapsed
            print(f"workers={workers}: {count} certificates in {elapsed:.2f} s = {rates[workers]:.1f} per second")
        best = max(rates.values())
        print(f"speed-up over one process: {best / rates[1]:.2f}x on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
