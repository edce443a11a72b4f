"""Benchmark fleet manifests in the partner view (issue 15) on a throw-away PostgreSQL, served on loopback and
fetched with an HTTP client: the partner's list among MANIFESTS fleet manifests and the station manifests
beside them, an ASSETS-asset fleet manifest's page (cold: the verifier reads the signed PDF; warm: its verdict
reused), its CSV, its certificate pack streamed (time, size, the server's peak Python allocation while it
streams; certificates from STATIONS stations), the pack verified offline, and ``fleet manifest handover``.

The fleet manifest is made by the real ``fleet manifest create`` over real certificates put in through the real
ingest; the other MANIFESTS - 1 fleet manifests are rows only (the list reads the rows, never the PDFs).

Run as root: ``.venv/bin/python bench/bench_partner_fleet.py [--assets 200] [--stations 4] [--manifests 500]``.
Not a test: the figures depend on the machine; they go in the report.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
sys.path.insert(0, str(REPOSITORY / "bench"))

import aiohttp  # noqa: E402
from bench_partner import (  # noqa: E402
    _ms,
    _pack,
    _signed_in,
    _timed,
    _timed_pack,
    served_console,
    throwaway_fleet,
)

from agent.fleet.assets import import_register  # noqa: E402
from agent.fleet.database import FleetDatabase  # noqa: E402
from agent.fleet.ingest import Ingestor  # noqa: E402
from agent.fleet.manifests import create, handover  # noqa: E402
from agent.web.accounts import Accounts, Role  # noqa: E402
from certs import pki  # noqa: E402
from certs.cli import run_verify  # noqa: E402
from certs.record import Host  # noqa: E402
from certs.verify import load_trust_bundle  # noqa: E402
from tests.integration.store.fleet_kit import StationFeed  # noqa: E402
from tests.unit.certs.certs_test_kit import build_world, record_for  # noqa: E402

PASSWORD = "bench password 1"


def build(dsn: str, root: Path, assets: int, stations: int, manifests: int) -> tuple[Any, dict[str, Any]]:
    world = build_world(root / "pki")
    signers = []
    for number in range(stations):
        pki.issue_station(world.ca_dir, f"bench-{number:02d}", root / f"bench-{number:02d}")
        signers.append(pki.load_station_signer(root / f"bench-{number:02d}"))
    pki.issue_fleet(world.ca_dir, "fleet-bench", root / "fleet")
    pki.make_bundle(world.ca_dir, world.bundle)
    lines = ["asset_tag,make,model,serial,type,department,due_date"]
    lines += [f"PF-{n:06d},Dell,Latitude,SN{n:08d},laptop,Dept,2027-01-15" for n in range(assets)]
    (root / "register.csv").write_text("\r\n".join(lines) + "\r\n")
    started = time.perf_counter()
    with FleetDatabase(dsn) as fleet:
        import_register(fleet, root / "register.csv")
        feeds = [StationFeed(signer.station_id) for signer in signers]
        for number in range(assets):
            feed, signer = feeds[number % stations], signers[number % stations]
            asset, job_id = f"PF-{number:06d}", f"{feed.station_id}-J{number:06d}"
            feed.job(number, asset=asset, serial=f"DRIVE-{number:06d}")
            feed.records[-1]["body"]["certificate_id"] = f"C-{job_id}"
            base = record_for(signer, demo=False)
            record = dataclasses.replace(
                base, certificate_id=f"C-{job_id}", job_id=job_id,
                media=dataclasses.replace(base.media, serial=f"DRIVE-{number:06d}"),
                host=Host(asset_tag=asset, make="Dell", model="Latitude", serial=f"SN{number:08d}"))
            feed.document(world.issue(record, signer, directory=root / "certificates", name=f"{job_id}.pdf"))
            feed.audit("eligibility-decision", asset, {"asset": asset, "route": "reuse:schools"})
        ingestor = Ingestor(fleet, load_trust_bundle(world.bundle))
        for feed in feeds:
            assert not ingestor.ingest(feed.station_id, feed.batch()).refused
        print(f"setup: {assets} certificates from {stations} stations issued and ingested in "
              f"{time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        created = create(fleet, "schools", "Bench Partner", assets=None, out_dir=root / "out",
                         signer=pki.load_fleet_signer(root / "fleet"), bundle=load_trust_bundle(world.bundle))
        print(f"setup: fleet manifest of {len(created['assets'])} assets created in "
              f"{time.perf_counter() - started:.1f} s ({Path(created['pdf']).stat().st_size / 1024:.0f} KiB PDF)")
        with fleet.transaction() as db, db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO fleet_manifests (document_id, scheme, partner, fleet, created_at, status, sha256, body, "
                "pdf, pdf_sha256) VALUES (%s, 'schools', %s, 'fleet-bench', now() - interval '1 day', 'issued', "
                "'x', '{}', 'x', 'x')",
                [(f"FM-BENCH-{number:05d}", "Bench Partner" if number % 5 == 0 else f"partner-{number % 7}")
                 for number in range(1, manifests)])
    accounts = Accounts(root / "accounts.json")
    accounts.add("partner", Role.PARTNER, "Partner", PASSWORD, "bench partner")
    return world, created


async def measure(base: str, created: dict[str, Any], bundle: Path, manifests: int, root: Path) -> None:
    manifest = f"{base}/partner/manifests/fleet-bench/{created['manifest_id']}"
    assets = len(created["assets"])
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await _signed_in(session, base, "partner")
        samples, page = await _timed(session, f"{base}/partner", 20)
        print(f"partner list (its {page.count(b'(fleet manifest)')} of {manifests} fleet manifests): {_ms(samples)}")
        cold, _ = await _timed(session, manifest, 1)
        warm, _ = await _timed(session, manifest, 20)
        print(f"fleet manifest page, {assets} assets, cold (verified now): {_ms(cold)}")
        print(f"fleet manifest page, warm (verdict reused):               {_ms(warm)}")
        samples, _ = await _timed(session, manifest + "/csv", 10)
        print(f"fleet manifest CSV:                                       {_ms(samples)}")
        _pack(await _timed_pack(session, manifest + "/pack", root / "pack.zip"), assets)


def verify_pack(root: Path, created: dict[str, Any], bundle: Path) -> None:
    with zipfile.ZipFile(root / "pack.zip") as archive:
        archive.extractall(root / "pack")
    top = f"fleet-manifest-{created['manifest_id']}"
    lines: list[str] = []
    started = time.perf_counter()
    status = run_verify([str(root / "pack" / top / f"{top}.pdf")], str(bundle), echo=lines.append)
    assert status == 0, lines[:5]
    print(f"offline verify of the pack (fleet manifest + {len(created['assets'])} certificates): "
          f"{time.perf_counter() - started:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=200)
    parser.add_argument("--stations", type=int, default=4)
    parser.add_argument("--manifests", type=int, default=500)
    arguments = parser.parse_args()
    with throwaway_fleet("bench-partner-fleet-") as (dsn, root):
        world, created = build(dsn, root, arguments.assets, arguments.stations, arguments.manifests)
        with served_console(dsn, world.bundle, root / "accounts.json") as base:
            asyncio.run(measure(base, created, world.bundle, arguments.manifests, root))
        verify_pack(root, created, world.bundle)
        with FleetDatabase(dsn) as fleet:
            started = time.perf_counter()
            handover(fleet, created["manifest_id"], "Bench Receiver", "DN-1")
            elapsed = time.perf_counter() - started
            states = fleet.db.execute("SELECT state, count(*) FROM fleet_assets GROUP BY state").fetchall()
            fleet.db.commit()
        print(f"fleet manifest handover, {len(created['assets'])} assets: {elapsed * 1000:.0f} ms; "
              f"states now {dict(states)}")


if __name__ == "__main__":
    main()
