"""Fleet manifest speed on a real PostgreSQL server: ``fleet manifest create --all-eligible`` over N eligible assets
from S stations (every certificate verified again from its bytes, the claim, the signature and the read-back),
then the partner's ``verify`` of the delivery (the manifest and every certificate in certificates/).

Run as root: ``.venv/bin/python bench/bench_fleet_manifest.py [ASSETS] [STATIONS] [--database DSN]``. Setting up
issues N real certificates and ingests them (verified once at ingest), which takes longer than what is measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.fleet.assets import import_register
from agent.fleet.database import FleetDatabase
from agent.fleet.ingest import Ingestor
from agent.fleet.localdb import PostgresServer
from agent.fleet.manifests import create, void
from certs import pki
from certs.cli import run_verify
from certs.record import Host
from certs.verify import load_trust_bundle
from tests.integration.store.fleet_kit import StationFeed
from tests.unit.certs.certs_test_kit import build_world, record_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assets", nargs="?", type=int, default=100)
    parser.add_argument("stations", nargs="?", type=int, default=4)
    parser.add_argument("--database", default=None)
    arguments = parser.parse_args()
    server = None
    dsn = arguments.database
    if dsn is None:
        server = PostgresServer(durable=False)
        dsn = server.create_database("bench") if server.start() else ""
    folder = Path(tempfile.mkdtemp(prefix="bench-fleet-manifest-"))
    try:
        world = build_world(folder / "pki")
        signers = []
        for number in range(arguments.stations):
            station = f"bench-{number:02d}"
            pki.issue_station(world.ca_dir, station, folder / station)
            signers.append(pki.load_station_signer(folder / station))
        pki.issue_fleet(world.ca_dir, "fleet-bench", folder / "fleet")
        lines = ["asset_tag,make,model,serial,type,department,due_date"]
        lines += [f"PF-{n:06d},Dell,Latitude,SN{n:08d},laptop,Dept,2027-01-15" for n in range(arguments.assets)]
        (folder / "register.csv").write_text("\r\n".join(lines) + "\r\n")
        started = time.perf_counter()
        with FleetDatabase(dsn) as fleet:
            import_register(fleet, folder / "register.csv")
            ingestor = Ingestor(fleet, load_trust_bundle(world.bundle))
            feeds = [StationFeed(signer.station_id) for signer in signers]
            for number in range(arguments.assets):
                feed, signer = feeds[number % len(feeds)], signers[number % len(feeds)]
                asset, job_id = f"PF-{number:06d}", f"{feed.station_id}-J{number:06d}"
                feed.job(number, asset=asset, serial=f"DRIVE-{number:06d}")
                feed.records[-1]["body"]["certificate_id"] = f"C-{job_id}"
                base = record_for(signer, demo=False)
                record = dataclasses.replace(
                    base, certificate_id=f"C-{job_id}", job_id=job_id, media=dataclasses.replace(
                        base.media, serial=f"DRIVE-{number:06d}"),
                    host=Host(asset_tag=asset, make="Dell", model="Latitude", serial=f"SN{number:08d}"))
                feed.document(world.issue(record, signer, directory=folder / "certificates", name=f"{job_id}.pdf"))
                feed.audit("eligibility-decision", asset, {"asset": asset, "route": "reuse:schools"})
            for feed in feeds:
                assert not ingestor.ingest(feed.station_id, feed.batch()).refused
            setup = time.perf_counter() - started
            print(f"setup: {arguments.assets} certificates issued and ingested in {setup:.1f} s")
            signer, bundle = pki.load_fleet_signer(folder / "fleet"), load_trust_bundle(world.bundle)
            for workers in (1, None):  # one process, then the CPUs (the same assets: the first manifest is voided)
                started = time.perf_counter()
                created = create(fleet, "schools", "Bench Partner", assets=None, out_dir=folder / f"out-{workers}",
                                 signer=signer, bundle=bundle, workers=workers)
                elapsed = time.perf_counter() - started
                print(f"fleet manifest create --all-eligible, {workers or 'all'} verifying process(es): "
                      f"{len(created['assets'])} assets from {len(created['stations'])} stations in {elapsed:.2f} s "
                      f"({elapsed / len(created['assets']) * 1000:.0f} ms per asset)")
                if workers == 1:
                    void(fleet, created["manifest_id"], "benchmark: measured again")
        started = time.perf_counter()
        lines: list[str] = []
        status = run_verify([created["pdf"]], str(world.bundle), echo=lines.append)
        assert status == 0, lines[:5]
        print(f"verify of the delivery (manifest + {len(created['assets'])} certificates): "
              f"{time.perf_counter() - started:.2f} s; PDF {Path(created['pdf']).stat().st_size / 1024:.0f} KiB")
    finally:
        if server is not None:
            server.stop()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
