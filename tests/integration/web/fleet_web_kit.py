"""The fleet console on a real PostgreSQL, its data put in through the real ingest path, and a signed-in client.

``populate`` feeds two stations' records through :class:`agent.fleet.ingest.Ingestor` (jobs over several
days, a failure, an interruption, a hostile model name and asset tag, a real signed certificate, intake,
attestation, decisions and a checkpoint), so every number the pages show comes from what ingest stored.
``Console`` serves the real ``fleet_console`` on loopback (aiohttp's TestServer) and gives each role its
own signed-in session (its own cookie jar); ``page`` and ``post`` are synchronous for plain tests.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from agent.fleet.assets import import_register
from agent.fleet.database import FleetDatabase
from agent.fleet.ingest import Ingestor
from agent.web.accounts import Accounts, Role
from agent.web.fleet import fleet_console
from certs.verify import load_trust_bundle
from tests.integration.store.fleet_kit import StationFeed
from tests.integration.store.test_fleet_assets import register_rows, write_register
from tests.unit.certs.certs_test_kit import PkiWorld, record_for

PASSWORD = "correct horse battery staple"
HOSTILE_MODEL = "<script>alert('model')</script>"
HOSTILE_TAG = "<script>alert(1)</script>"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class RecordingAudit:
    """The console's audit sink, kept in memory (or failing, to show an action is refused without it)."""

    def __init__(self, *, failing: bool = False) -> None:
        self.entries: list[tuple[str, str, dict[str, Any]]] = []
        self.failing = failing

    def record(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        if self.failing and not kind.startswith("web-sign-"):
            raise OSError("audit table unwritable")
        self.entries.append((kind, subject, data))


def _days_ago(days: int, hour: int = 10) -> datetime:
    today = datetime.now(UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


def _dated(feed: StationFeed, finished: datetime, **drive: Any) -> None:
    body = feed.records[-1]["body"]
    body["created_at"] = (finished - timedelta(minutes=20)).isoformat()
    body["finished_at"] = finished.isoformat()
    body["drive"].update(drive)


def populate(database: FleetDatabase, world: PkiWorld, folder: Path) -> dict[str, Any]:
    """The fleet the web tests read (see the module docstring); returns what was put in."""
    import_register(database, write_register(folder / "register.csv", register_rows(60)))
    ingestor = Ingestor(database, load_trust_bundle(world.bundle))
    one = StationFeed("station-01", signer=world.station)
    for number in range(20):  # 20 sanitised over the last five days, two methods, two media
        one.job(number, asset=f"PF-{number:06d}", serial=f"S1-{number:04d}")
        one.records[-1]["body"]["method"] = "nvme-sanitize" if number % 2 else "overwrite.zero"
        _dated(one, _days_ago(number % 5), media="ssd" if number % 2 else "hdd",
               model="Example NVMe" if number % 2 else "Example HDD")
    one.records[0]["body"]["events"] = [{"event": "certificate-issued", "data": {"certificate_id": "C-0001"}}]
    one.job(20, state="failed", asset="PF-000020", serial="S1-FAIL")
    one.records[-1]["body"]["reason"] = "write error at LBA 4096"
    one.job(21, state="interrupted", asset="PF-000021", serial="S1-INT")
    one.job(22, asset=HOSTILE_TAG, serial="S1-HOSTILE")
    _dated(one, _days_ago(1), model=HOSTILE_MODEL)
    one.audit("intake", "PF-000001", {"bay": "bay-1", "asset_tag": "PF-000001", "operator": "Alex"})
    one.audit("attestation", "PF-000001", {"item": "no-stickers", "by": "Alex Morgan"})
    one.audit("eligibility-decision", "PF-000002", {"route": "reuse:schools"})
    one.audit("eligibility-decision", "PF-000003", {"route": "destroy"})
    one.checkpoint()
    certificate = world.issue(record_for(world.station, demo=False, certificate_id="C-0001",
                                         job_id="station-01-J000000"), directory=folder, name="C-0001.pdf")
    one.document(certificate)
    result = ingestor.ingest("station-01", one.batch())
    assert result.refused == [], result.refused
    two = StationFeed("station-02")
    for number in range(10):
        two.job(number, asset=f"PF-{30 + number:06d}", serial=f"S2-{number:04d}")
        _dated(two, _days_ago(0, hour=1), media="ssd")
    assert Ingestor(database, None).ingest("station-02", two.batch()).refused == []
    return {"certificate": certificate}


@dataclass
class Console:
    """The fleet console served on loopback, with a signed-in session per role."""

    dsn: str
    folder: Path
    audit: RecordingAudit = field(default_factory=RecordingAudit)

    def __post_init__(self) -> None:
        self.accounts = Accounts(self.folder / "web-accounts.json")
        for role in (Role.ADMIN, Role.COMPLIANCE, Role.AUDITOR, Role.OPERATOR, Role.PARTNER):
            self.accounts.add(role.value, role, f"The {role.value}", PASSWORD,
                              partner="Schools Trust" if role is Role.PARTNER else None)
        self.console = fleet_console(self.dsn, accounts=self.accounts, trust=None, secure=False, audit=self.audit)
        self.loop = asyncio.new_event_loop()
        self.server = TestServer(self.console.application(), host="127.0.0.1")
        self.loop.run_until_complete(self.server.start_server())
        self.sessions: dict[str, aiohttp.ClientSession] = {}
        self.csrf: dict[str, str] = {}

    @property
    def base(self) -> str:
        return str(self.server.make_url("/")).rstrip("/")

    def _session(self, who: str) -> aiohttp.ClientSession:
        if who not in self.sessions:
            async def make() -> aiohttp.ClientSession:
                return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            self.sessions[who] = self.loop.run_until_complete(make())
            if who != "anonymous":
                self._sign_in(who)
        return self.sessions[who]

    def _sign_in(self, who: str) -> None:
        _, _, form = self.page(who, "/sign-in", sign_in=False)
        token = CSRF.search(form)
        assert token is not None
        status, _, _ = self.post(who, "/sign-in", {"name": who, "password": PASSWORD, "csrf": token.group(1),
                                                   "next": "/"}, sign_in=False)
        assert status == 303, f"sign-in of {who}: {status}"
        _, _, home = self.page(who, "/compliance") if who in ("admin", "compliance", "auditor") else (0, {}, "")
        found = CSRF.search(home)
        if found:
            self.csrf[who] = found.group(1)

    def token(self, who: str) -> str:
        """``who``'s CSRF token (signing in first)."""
        self._session(who)
        return self.csrf[who]

    def fetch(self, who: str, path: str, *, method: str = "GET", data: Any = None, sign_in: bool = True,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        session = self._session(who) if sign_in else self.sessions[who]

        async def go() -> tuple[int, dict[str, str], bytes]:
            async with session.request(method, self.base + path, data=data, allow_redirects=False,
                                       headers={"Accept": "text/html", **(headers or {})}) as response:
                return response.status, dict(response.headers), await response.read()

        return self.loop.run_until_complete(go())

    def page(self, who: str, path: str, *, sign_in: bool = True) -> tuple[int, dict[str, str], str]:
        if not sign_in and who not in self.sessions:
            self.sessions[who] = self.loop.run_until_complete(self._new())
        status, headers, body = self.fetch(who, path, sign_in=sign_in)
        return status, headers, body.decode()

    async def _new(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))

    def post(self, who: str, path: str, data: dict[str, str], *, sign_in: bool = True,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        status, response_headers, body = self.fetch(who, path, method="POST", data=data, sign_in=sign_in,
                                                    headers={"Origin": self.base, **(headers or {})})
        return status, response_headers, body.decode(errors="replace")

    def close(self) -> None:
        for session in self.sessions.values():
            self.loop.run_until_complete(session.close())
        self.loop.run_until_complete(self.server.close())
        self.loop.close()
