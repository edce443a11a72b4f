"""Benchmark the fleet console's partner and auditor views (issue 15) on a throw-away PostgreSQL, served on
loopback and fetched with an HTTP client: the partner's list among MANIFESTS manifests, a DEVICES-device
manifest's page (cold: the verifier reads the signed PDF; warm: its verdict reused), its CSV, its
certificate pack streamed (time, size, the server's peak Python allocation while it streams), an upload
verified, and the auditor's overview of a station chain of ENTRIES entries (cold: every entry re-hashed and
the checkpoints' signatures checked; warm: the check reused).

The manifests and the chain go in through the real ingest (verified); the DEVICES certificates a pack holds
are copies of one real certificate under their own ids, written straight into ``fleet_documents`` (signing
and ingesting 200 certificates would time the signer, not the console).

Run: ``.venv/bin/python bench/bench_partner.py [--devices 200] [--manifests 500] [--entries 40000]``.
Not a test: the figures depend on the machine; they go in the report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

import aiohttp  # noqa: E402

from agent.fleet.database import FleetDatabase  # noqa: E402
from agent.fleet.ingest import Ingestor  # noqa: E402
from agent.fleet.localdb import PostgresServer  # noqa: E402
from agent.web.accounts import Accounts, Role  # noqa: E402
from certs.manifest import issue_manifest  # noqa: E402
from certs.record import Host  # noqa: E402
from certs.verify import load_trust_bundle, verify_with_bundle  # noqa: E402
from tests.integration.store.fleet_kit import StationFeed  # noqa: E402
from tests.unit.certs.certs_test_kit import build_world, record_for  # noqa: E402
from tests.web_kit import ConsoleServer  # noqa: E402

PASSWORD = "bench password 1"


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(samples) * 1000:8.1f} ms   p95 {p95 * 1000:8.1f} ms   (n={len(samples)})"


def build(dsn: str, root: Path, devices: int, manifests: int, entries: int) -> tuple[Any, Path]:
    world = build_world(root / "pki")
    base = record_for(world.station, demo=False)
    record = dataclasses.replace(base, certificate_id="C-BENCH-0", host=Host(asset_tag="B-0001", make="Dell",
                                                                              model="Latitude", serial="H0001"))
    certificate = world.issue(record, name="C-BENCH-0.pdf", directory=root / "issued")
    digest = verify_with_bundle(certificate, load_trust_bundle(world.bundle)).record_sha256
    rows = []
    for index in range(1, devices + 1):
        rows.append({"asset": f"B-{index:04d}", "kind": "laptop", "make": "Dell", "model": "Latitude",
                     "serial": f"H{index:04d}", "attestations": {}, "validation": None,
                     "drives": [{"model": "M", "serial": f"S{index:05d}", "media": "ssd", "job_id": f"j{index}",
                                 "level": "Purge", "verification": "sampling", "method": "nvme.sanitize.crypto",
                                 "sanitised_at": "2026-11-25T09:04:10+00:00", "certificate_id": f"C-BENCH-{index}",
                                 "record_sha256": digest, "certificate_file": f"C-BENCH-{index}.pdf"}]})
    manifest = {"schema": 2, "kind": "manifest", "document_id": "MF-BENCH-BIG", "station_id": "station-01",
                "created_at": "2026-12-01T10:00:00+00:00", "demo": False,
                "scheme": {"name": "schools", "summary": "bench", "destination": "bench", "rules": {}},
                "devices": rows, "tool": "wipe-agent", "summary": f"{devices} device(s) for schools"}
    started = time.perf_counter()
    files = {drive["certificate_id"]: certificate for row in rows for drive in row["drives"]}
    pdf = issue_manifest(manifest, world.station, root / "manifest", files).pdf
    print(f"setup: a {devices}-device manifest signed in {time.perf_counter() - started:.1f} s "
          f"({pdf.stat().st_size / 1024:.0f} KiB)")
    feed = StationFeed("station-01", signer=world.station)
    feed.audit("manifest", "MF-BENCH-BIG", {"scheme": "schools", "assets": [row["asset"] for row in rows]})
    feed.document(pdf)
    for number in range(1, manifests):  # the others: entries only (the list reads the entries, not the PDFs)
        feed.audit("manifest", f"MF-BENCH-{number:05d}", {
            "scheme": "schools" if number % 5 == 0 else f"partner-{number % 7}",
            "assets": [f"A-{number:05d}-{item}" for item in range(20)]})
    while feed.audit_seq < entries - 1:
        feed.audit("note", f"entry {feed.audit_seq + 1}", {"n": feed.audit_seq + 1, "text": "x" * 80})
    feed.checkpoint()
    feed.audit("note", "after", {"n": 0})
    started = time.perf_counter()
    with FleetDatabase(dsn) as fleet:
        ingestor = Ingestor(fleet, load_trust_bundle(world.bundle))
        for start in range(0, len(feed.records), 5000):
            ingestor.ingest("station-01", feed.batch(feed.records[start:start + 5000]))
        with fleet.transaction() as db:
            data = certificate.read_bytes()
            with db.cursor() as cursor:
                cursor.executemany("INSERT INTO fleet_documents (station_id, document_id, kind, sha256, pdf) "
                                   "VALUES ('station-01', %s, 'certificate', 'bench', %s)",
                                   [(f"C-BENCH-{index}", data) for index in range(1, devices + 1)])
    print(f"setup: {len(feed.records)} records ingested in {time.perf_counter() - started:.1f} s "
          f"({manifests} manifests, {feed.audit_seq} chain entries)")
    accounts = Accounts(root / "accounts.json")
    accounts.add("partner", Role.PARTNER, "Partner", PASSWORD, "schools")
    accounts.add("auditor", Role.AUDITOR, "Auditor", PASSWORD)
    return world, certificate


async def _signed_in(session: aiohttp.ClientSession, base: str, name: str) -> str:
    import re

    page = await (await session.get(f"{base}/sign-in")).text()
    token = re.search(r'name="csrf" value="([^"]+)"', page)
    assert token is not None
    await session.post(f"{base}/sign-in", data={"csrf": token.group(1), "next": "/", "name": name,
                                                 "password": PASSWORD}, allow_redirects=False)
    page = await (await session.get(f"{base}/verify")).text()
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


async def _timed(session: aiohttp.ClientSession, url: str, repeat: int, check: Callable[[bytes], bool] = bool
                 ) -> tuple[list[float], bytes]:
    samples, body = [], b""
    for _ in range(repeat):
        started = time.perf_counter()
        async with session.get(url) as response:
            body = await response.read()
            assert response.status == 200, (url, response.status, body[:200])
        samples.append(time.perf_counter() - started)
        assert check(body)
    return samples, body


async def _timed_pack(session: aiohttp.ClientSession, url: str, save_to: Path | None = None
                      ) -> tuple[list[float], int, int]:
    """Five downloads of the pack at ``url``, read in 64 KiB chunks and dropped (or written to ``save_to``, not held):
    the seconds each took, the pack's size, and the peak Python allocation while streaming (the server's share)."""
    samples, size = [], 0
    tracemalloc.start()
    for _ in range(5):
        started, size = time.perf_counter(), 0
        with save_to.open("wb") if save_to is not None else contextlib.nullcontext() as saved:
            async with session.get(url) as response:
                assert response.status == 200
                async for chunk in response.content.iter_chunked(1 << 16):
                    if saved is not None:
                        saved.write(chunk)
                    size += len(chunk)
        samples.append(time.perf_counter() - started)
    _current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return samples, size, peak


def _pack(timed: tuple[list[float], int, int], certificates: int) -> None:
    samples, size, peak = timed
    rate = size / statistics.median(samples) / (1 << 20)
    print(f"certificate pack, {certificates} certificates, {size / (1 << 20):.1f} MiB: {_ms(samples)} "
          f"({rate:.0f} MiB/s); peak Python allocation while streaming it {peak / (1 << 20):.1f} MiB")


async def measure(base: str, certificate: Path, devices: int, manifests: int, entries: int) -> None:
    manifest = f"{base}/partner/manifests/station-01/MF-BENCH-BIG"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        csrf = await _signed_in(session, base, "partner")
        samples, page = await _timed(session, f"{base}/partner", 20)
        print(f"partner list (its {page.count(b'<td><a href=')} of {manifests} manifests): {_ms(samples)}")
        cold, _ = await _timed(session, manifest, 1)
        warm, _ = await _timed(session, manifest, 20)
        print(f"manifest page, {devices} devices, cold (verified now): {_ms(cold)}")
        print(f"manifest page, warm (verdict reused):                {_ms(warm)}")
        samples, _ = await _timed(session, manifest + "/csv", 10)
        print(f"manifest CSV:                                        {_ms(samples)}")
        _pack(await _timed_pack(session, manifest + "/pack"), devices)
        data = certificate.read_bytes()
        uploads = []
        for _ in range(10):
            form = aiohttp.FormData()
            form.add_field("csrf", csrf)
            form.add_field("document", data, filename="c.pdf", content_type="application/pdf")
            started = time.perf_counter()
            async with session.post(f"{base}/verify", data=form) as response:
                text = await response.text()
                assert 'data-verdict="valid"' in text, text[:500]
            uploads.append(time.perf_counter() - started)
        print(f"upload + verify of a {len(data) / 1024:.0f} KiB certificate:       {_ms(uploads)}")
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        await _signed_in(session, base, "auditor")
        cold, _ = await _timed(session, f"{base}/audit", 1, lambda body: b"verified" in body)
        warm, _ = await _timed(session, f"{base}/audit", 20)
        print(f"auditor overview, a chain of {entries} entries, cold (re-verified): {_ms(cold)}")
        print(f"auditor overview, warm (check reused):                {_ms(warm)}")
        samples, _ = await _timed(session, f"{base}/audit/stations/station-01?page=200", 20)
        print(f"station page (entries page 200):                      {_ms(samples)}")


class _Quiet:
    """The console's audit sink, dropping every entry (what is measured is the page, not the chain)."""

    def record(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        pass


@contextmanager
def throwaway_fleet(prefix: str) -> Iterator[tuple[str, Path]]:
    """A throw-away PostgreSQL server (fsync off) with a database "bench", and a temporary folder: both gone after."""
    server = PostgresServer(durable=False)
    with tempfile.TemporaryDirectory(prefix=prefix) as temporary:
        try:
            yield (server.create_database("bench") if server.start() else ""), Path(temporary)
        finally:
            server.stop()


@contextmanager
def served_console(dsn: str, bundle: Path, accounts: Path) -> Iterator[str]:
    """The fleet console as `web serve --fleet` builds it (the partner and auditor views installed by fleet.py),
    served on loopback for the block: its base URL."""
    from agent.web.fleet import fleet_console

    console = fleet_console(dsn, accounts=Accounts(accounts), trust=bundle, secure=False, audit=_Quiet())
    served = ConsoleServer(console.application()).start()
    try:
        yield served.base
    finally:
        served.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--manifests", type=int, default=500)
    parser.add_argument("--entries", type=int, default=40_000)
    arguments = parser.parse_args()
    with throwaway_fleet("bench-partner-") as (dsn, root):
        world, certificate = build(dsn, root, arguments.devices, arguments.manifests, arguments.entries)
        with served_console(dsn, world.bundle, root / "accounts.json") as base:
            asyncio.run(measure(base, certificate, arguments.devices, arguments.manifests, arguments.entries))


if __name__ == "__main__":
    main()
