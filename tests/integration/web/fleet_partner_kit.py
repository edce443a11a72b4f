"""A fleet with two partners' signed manifests, their certificates and two stations' audit chains, put in
through the real ingest (every document verified there), and a console to sign in to.

Built once per module (signing is the slow part): ``partner_world`` holds the PDFs, ``partner_dsn`` a fleet
database fed with them. Station-01 (trusted) forwards three certificates, two manifests (scheme ``schools``:
two devices, one of them with a hostile model name and a certificate file name with backslashes; scheme
``gla-reuse``: one device), an audit chain with a checkpoint and two entries after it. Station-02 (revoked)
forwards a certificate (its signer revoked), a checkpoint of a head the fleet does not hold, and an
entry that breaks its chain: the fleet refuses all three.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from agent.fleet.database import FleetDatabase
from agent.fleet.ingest import Ingestor
from agent.web.accounts import Accounts, Role
from certs.manifest import issue_manifest
from certs.record import Host
from certs.verify import load_trust_bundle
from tests.integration.store.fleet_kit import StationFeed
from tests.unit.certs.certs_test_kit import PkiWorld, build_world, record_for

PASSWORD = "correct horse battery"
HOSTILE_MODEL = '<script>alert("pwned")</script> & "Latitude"'
TRAVERSAL_FILE = "..\\..\\Windows\\evil.pdf"
ACCOUNTS = {  # name: (role, partner)
    "schools-partner": (Role.PARTNER, "schools"),
    "gla-partner": (Role.PARTNER, "GLA-Reuse"),
    "nobody-partner": (Role.PARTNER, "another-scheme"),
    "auditor": (Role.AUDITOR, None),
    "compliance": (Role.COMPLIANCE, None),
    "admin": (Role.ADMIN, None),
    "operator": (Role.OPERATOR, None),
}
T = TypeVar("T")


@dataclass
class PartnerWorld:
    """The PKI, the signed documents and the station feeds, before any fleet database."""

    root: Path
    world: PkiWorld
    certificates: dict[str, Path]
    """certificate id -> its PDF."""
    manifests: dict[str, Path]
    """manifest id -> its signed PDF (schools: MF-SCH-0001; gla-reuse: MF-GLA-0001)."""
    manifest_devices: dict[str, list[str]]
    accounts: Path
    revoked_certificate: Path
    feeds: list[StationFeed] = field(default_factory=list)


def _certificate(world: PkiWorld, directory: Path, number: int, asset: str) -> tuple[str, str, Path]:
    certificate_id = f"C-SCH-{number:04d}"
    base = record_for(world.station, demo=False)
    record = dataclasses.replace(
        base, certificate_id=certificate_id, job_id=f"job-{number:04d}",
        media=dataclasses.replace(base.media, serial=f"SSD{number:05d}", asset_tag=None, host_device=asset),
        host=Host(asset_tag=asset, make="Dell", model="Latitude 5440", serial=f"HOST{number:04d}"))
    path = world.issue(record, name=f"{certificate_id}.pdf", directory=directory)
    return certificate_id, record.sha256(), path


def _device(asset: str, number: int, certificate_id: str, digest: str, file_name: str,
            model: str = "Latitude 5440") -> dict[str, Any]:
    return {"asset": asset, "kind": "laptop", "make": "Dell", "model": model, "serial": f"HOST{number:04d}",
            "attestations": {}, "validation": None,
            "drives": [{"model": "MZVL2512HCJQ", "serial": f"SSD{number:05d}", "media": "ssd",
                        "job_id": f"job-{number:04d}", "level": "Purge", "verification": "sampling",
                        "method": "nvme.sanitize.crypto", "sanitised_at": "2026-11-25T09:04:10+00:00",
                        "certificate_id": certificate_id, "record_sha256": digest, "certificate_file": file_name,
                        "validations": []}]}


def _manifest(world: PkiWorld, out: Path, manifest_id: str, scheme: str, devices: list[dict[str, Any]],
              files: dict[str, Path]) -> Path:
    manifest = {
        "schema": 2, "kind": "manifest", "document_id": manifest_id, "station_id": world.station.station_id,
        "created_at": (datetime.now(UTC) - timedelta(minutes=2)).isoformat(timespec="seconds"), "demo": False,
        "scheme": {"name": scheme, "summary": f"the {scheme} scheme", "destination": f"External reuse: {scheme}",
                   "rules": {}},
        "devices": devices, "tool": "wipe-agent 0.1.0",
        "summary": f"{len(devices)} device(s) for {scheme}",
    }
    return issue_manifest(manifest, world.station, out / manifest_id, files).pdf


def build_partner_world(root: Path) -> PartnerWorld:
    """Sign everything (about ten seconds)."""
    world = build_world(root / "pki")
    issued = root / "issued"
    certificates: dict[str, Path] = {}
    rows: list[tuple[str, str, str, Path]] = []
    for number, asset in ((1, "SCH-LT-0001"), (2, "SCH-LT-0002"), (3, "GLA-LT-0003")):
        certificate_id, digest, path = _certificate(world, issued, number, asset)
        certificates[certificate_id] = path
        rows.append((asset, certificate_id, digest, path))
    schools_devices = [_device(rows[0][0], 1, rows[0][1], rows[0][2], TRAVERSAL_FILE, model=HOSTILE_MODEL),
                       _device(rows[1][0], 2, rows[1][1], rows[1][2], f"{rows[1][1]}.pdf")]
    manifests = {
        "MF-SCH-0001": _manifest(world, root / "manifests", "MF-SCH-0001", "schools", schools_devices,
                                 {rows[0][1]: rows[0][3], rows[1][1]: rows[1][3]}),
        "MF-GLA-0001": _manifest(world, root / "manifests", "MF-GLA-0001", "gla-reuse",
                                 [_device(rows[2][0], 3, rows[2][1], rows[2][2], f"{rows[2][1]}.pdf")],
                                 {rows[2][1]: rows[2][3]}),
    }
    revoked_record = dataclasses.replace(record_for(world.revoked, demo=False), certificate_id="C-REVOKED-1")
    revoked = world.issue(revoked_record, world.revoked, name="revoked.pdf", directory=issued)
    accounts = Accounts(root / "web-accounts.json")
    for name, (role, partner) in ACCOUNTS.items():
        accounts.add(name, role, name.replace("-", " ").title(), PASSWORD, partner)
    partner_world = PartnerWorld(root, world, certificates, manifests,
                                 {"MF-SCH-0001": ["SCH-LT-0001", "SCH-LT-0002"], "MF-GLA-0001": ["GLA-LT-0003"]},
                                 root / "web-accounts.json", revoked)
    partner_world.feeds = _feeds(partner_world)
    return partner_world


def _manifest_entry(feed: StationFeed, bundle: Path, manifest_id: str, scheme: str, assets: list[str],
                    pdf: Path) -> None:
    from certs.verify import DocumentKind, verify_with_bundle

    report = verify_with_bundle(pdf, load_trust_bundle(bundle), expect=DocumentKind.MANIFEST)
    assert report.valid, report.reason
    feed.audit("manifest", manifest_id, {"scheme": scheme, "assets": assets, "pdf": str(pdf),
                                         "json": str(pdf.with_suffix(".json")),
                                         "manifest_sha256": report.record_sha256})
    feed.document(pdf)


def _feeds(partner_world: PartnerWorld) -> list[StationFeed]:
    world = partner_world.world
    good = StationFeed("station-01", signer=world.station)
    for asset in ("SCH-LT-0001", "SCH-LT-0002", "GLA-LT-0003"):
        good.audit("intake", asset, {"asset": asset})
    for pdf in partner_world.certificates.values():
        good.document(pdf)
    _manifest_entry(good, world.bundle, "MF-SCH-0001", "schools", partner_world.manifest_devices["MF-SCH-0001"],
                    partner_world.manifests["MF-SCH-0001"])
    _manifest_entry(good, world.bundle, "MF-GLA-0001", "gla-reuse", partner_world.manifest_devices["MF-GLA-0001"],
                    partner_world.manifests["MF-GLA-0001"])
    good.checkpoint()
    good.audit("note", "after-the-checkpoint", {"text": "<b>unanchored</b>"})
    good.audit("note", "after-the-checkpoint", {"text": "second"})
    bad = StationFeed("station-02", signer=world.revoked)
    bad.audit("intake", "X-1", {"asset": "X-1"})
    bad.checkpoint(head="ab" * 32)  # signs a head the fleet does not hold: refused
    bad.document(partner_world.revoked_certificate)  # refused: revoked signer
    broken = bad.audit("note", "X-1", {"n": 2})
    broken["body"]["prev_hash"] = "f" * 64  # the chain rewritten: refused
    return [good, bad]


def feed(fleet: FleetDatabase, partner_world: PartnerWorld) -> None:
    """Ingest every feed as its authenticated station, the way the fleet service does."""
    ingestor = Ingestor(fleet, load_trust_bundle(partner_world.world.bundle))
    for station_feed in partner_world.feeds:
        ingestor.ingest(station_feed.station_id, station_feed.batch())


class ListAudit:
    """The console's audit sink, kept in a list for the test to read."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, dict[str, Any]]] = []

    def record(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        self.entries.append((kind, subject, data))


@pytest.fixture(scope="module")
def partner_world(tmp_path_factory: pytest.TempPathFactory) -> PartnerWorld:
    return build_partner_world(tmp_path_factory.mktemp("partner-world"))


@pytest.fixture(scope="module")
def partner_dsn(postgres_server: Any, partner_world: PartnerWorld, request: pytest.FixtureRequest) -> Iterator[str]:
    """One fleet database per module, fed once (the tests only read it; the console's audit is a list)."""
    name = "p_" + re.sub(r"[^a-z0-9]", "_", request.module.__name__.lower())[-40:]
    dsn: str = postgres_server.create_database(name)
    with FleetDatabase(dsn) as fleet:
        feed(fleet, partner_world)
    yield dsn


def partner_console(dsn: str, partner_world: PartnerWorld, audit: ListAudit, *,
                    trust: Path | None = None) -> tuple[web.Application, Any]:
    """The fleet console as `web serve --fleet` builds it (the partner and auditor views installed by fleet.py)."""
    from agent.web.fleet import fleet_console

    bundle = partner_world.world.bundle if trust is None else trust
    console = fleet_console(dsn, accounts=Accounts(partner_world.accounts), trust=bundle, secure=False,
                            audit=audit)
    return console.application(), console


def run_client(app: web.Application, scenario: Callable[[TestClient[Any, Any]], Awaitable[T]]) -> T:
    """``scenario(client)`` against ``app`` on a loopback test server, in a fresh event loop."""
    async def main() -> T:
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)
    return asyncio.run(main())


def fetch(dsn: str, partner_world: PartnerWorld, name: str, *paths: str) -> list[tuple[int, bytes, dict[str, str]]]:
    """``name`` signed in on a fresh fleet console, each of ``paths`` fetched as a browser would: its status, body
    and headers, in order."""
    app, _console = partner_console(dsn, partner_world, ListAudit())

    async def scenario(client: TestClient[Any, Any]) -> list[tuple[int, bytes, dict[str, str]]]:
        await sign_in(client, name)
        answers = []
        for path in paths:
            response = await client.get(path, headers={"Accept": "text/html"})
            answers.append((response.status, await response.read(), dict(response.headers)))
        return answers

    return run_client(app, scenario)


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def sign_in(client: TestClient[Any, Any], name: str) -> str:
    """Sign ``name`` in on ``client``; returns the session's CSRF token."""
    page = await client.get("/sign-in")
    token = _CSRF.search(await page.text())
    assert token is not None
    answer = await client.post("/sign-in", data={"csrf": token.group(1), "next": "/", "name": name,
                                                 "password": PASSWORD}, allow_redirects=False)
    assert answer.status == 303, await answer.text()
    if ACCOUNTS[name][0] is Role.OPERATOR:
        return ""  # the fleet console has no page for an operator
    found = _CSRF.search(await (await client.get("/verify")).text())
    assert found is not None
    return found.group(1)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def flipped(data: bytes) -> bytes:
    """``data`` with one bit flipped inside the first content stream: signed bytes, and still a well-formed PDF
    (a byte flipped among the objects' tokens is refused as damaged instead; this one must be found by the
    signature: ``modified``)."""
    start = data.index(b"stream\n", data.index(b"/Length")) + len(b"stream\n") + 8
    return data[:start] + bytes([data[start] ^ 0x01]) + data[start + 1:]
