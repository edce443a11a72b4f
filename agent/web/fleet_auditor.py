"""The fleet console's auditor view: read-only, the stations' audit chains as the fleet holds them.

::

    GET /audit                      every station: its chain re-verified here, last checkpoint, late or not,
                                    what it pushed and what the fleet refused (counts by reason)
    GET /audit/stations/STATION     one station: the same status, its refused pushes with reasons, and its
                                    chain entries, newest first, paged (?page=N)

The ingest checked each entry and checkpoint as it arrived; this view checks again from the rows the
fleet holds, with the offline verifier's own functions (:func:`certs.audit_chain.check_entries`,
:func:`certs.audit_chain.check_checkpoints` against the console's trust bundle), so a row changed in the
database behind the fleet's back shows here as a broken chain. A station is **late** when entries follow
its last signed checkpoint (or it has none) and that checkpoint is older than :data:`LATE_AFTER`.
There is no POST route: an auditor changes nothing.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from agent.web.accounts import Role
from agent.web.render import render
from agent.web.server import Console

if TYPE_CHECKING:
    from agent.web.fleet import FleetContext
    from certs.pki import TrustBundle

AUDIT_ROLES = frozenset({Role.AUDITOR, Role.ADMIN, Role.COMPLIANCE})
LATE_AFTER = timedelta(hours=24)
PAGE = 100
QUARANTINE_SHOWN = 200
PREVIEW = 300
RECHECK_SECONDS = 300.0
"""A chain's check is reused this long while its head and checkpoints stay the same (then walked again, so a
row changed in place in the database shows within minutes)."""
MAX_SEGMENT = 256


@dataclass
class ChainStatus:
    """One station's audit chain as the fleet holds it, checked here."""

    station_id: str
    first_seen: datetime
    last_seen: datetime
    entries: int
    head: str
    checkpoints: int
    last_checkpoint: dict[str, Any] | None
    """number, seq, at of the newest checkpoint held."""
    anchored_to: int | None
    problems: list[str] = field(default_factory=list)
    trust_checked: bool = True
    """False: checkpoint signatures were not re-checked (the console has no trust bundle)."""
    late: bool = False
    records: dict[str, int] = field(default_factory=dict)
    """accepted / quarantined counts of what the station pushed."""
    refused: dict[str, int] = field(default_factory=dict)
    """Quarantined pushes by refusal code."""
    jobs: int = 0
    documents: int = 0

    @property
    def chain_ok(self) -> bool:
        return not self.problems

    @property
    def unanchored(self) -> int:
        return self.entries - (self.anchored_to or 0)

    @property
    def checkpoint_when(self) -> str:
        """The last checkpoint's time as people read it (UTC, to the minute)."""
        if self.last_checkpoint is None:
            return ""
        try:
            return f"{datetime.fromisoformat(str(self.last_checkpoint['at'])).astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        except ValueError:
            return str(self.last_checkpoint["at"])

    @property
    def lateness(self) -> str:
        """Why the station is late, in words ("" when it is not)."""
        if not self.late:
            return ""
        if self.last_checkpoint is None:
            return f"no checkpoint signs its {self.entries} entr{'y' if self.entries == 1 else 'ies'}"
        return (f"{self.unanchored} entr{'y' if self.unanchored == 1 else 'ies'} after a checkpoint more than "
                f"{int(LATE_AFTER.total_seconds() // 3600)} h old")


def _checked(db: Any, station: str, entries_held: int, head: str, bundle: TrustBundle | None
             ) -> tuple[list[str], int | None, int, dict[str, Any] | None]:
    """Walk ``station``'s entries and checkpoints: (problems, anchored seq, checkpoints, the last one)."""
    from certs.audit_chain import AuditFileError, Checkpoint, check_checkpoints, check_entries

    entries = []
    with db.cursor(name=f"chain_{abs(hash(station))}") as cursor:  # server-side: a long chain is not all in memory
        cursor.itersize = 5000
        cursor.execute("SELECT seq, at, kind, subject, data, prev_hash, hash FROM fleet_audit WHERE station_id = %s "
                       "ORDER BY seq", (station,))
        for seq, at, kind, subject, data, prev_hash, digest in cursor:
            try:
                value = json.loads(data)
            except (TypeError, ValueError, RecursionError):
                value = data  # hashes differently: reported as modified below
            entries.append({"seq": int(seq), "at": at, "kind": kind, "subject": subject, "data": value,
                            "prev_hash": prev_hash, "hash": digest})
    problems, hashes = check_entries(entries)
    last = entries[-1] if entries else None
    if (last["seq"] if last else 0) != entries_held or (last["hash"] if last else "0" * 64) != head:
        problems.append(f"the fleet's head for the station (entry {entries_held}) is not its last entry held "
                        f"({last['seq'] if last else 'none'})")
    checkpoints = []
    for number, body in db.execute("SELECT number, body FROM fleet_checkpoints WHERE station_id = %s ORDER BY number",
                                   (station,)).fetchall():
        try:
            checkpoints.append(Checkpoint.from_json(json.loads(body), f"checkpoint {number}"))
        except (AuditFileError, TypeError, ValueError) as error:
            problems.append(f"checkpoint {number} held by the fleet is unreadable: {error}")
    checkpoints.sort(key=lambda item: (item.seq, item.number))
    if bundle is not None:
        found, anchored = check_checkpoints(checkpoints, hashes, entries_held, bundle, station)
    else:  # without a bundle only the heads are compared (the signatures were checked at ingest)
        found, anchored = [], None
        for checkpoint in checkpoints:
            if hashes.get(checkpoint.seq) != checkpoint.head:
                found.append(f"checkpoint {checkpoint.number} (seq {checkpoint.seq}): the signed head does not "
                             f"match entry {checkpoint.seq}")
            else:
                anchored = max(anchored or 0, checkpoint.seq)
    problems += found
    newest = max(checkpoints, key=lambda item: item.seq, default=None)
    last_checkpoint = ({"number": newest.number, "seq": newest.seq, "at": newest.at} if newest else None)
    return problems, anchored, len(checkpoints), last_checkpoint


class _ChainCache:
    """The check of a chain, kept until the station's head or checkpoints change."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[Any, Any]] = {}
        self._lock = threading.Lock()

    def get(self, station: str, key: tuple[Any, ...]) -> Any:
        with self._lock:
            item = self._items.get(station)
        fresh = item is not None and item[0] == (key, int(time.monotonic() // RECHECK_SECONDS))
        return item[1] if item is not None and fresh else None

    def put(self, station: str, key: tuple[Any, ...], value: Any) -> None:
        with self._lock:
            self._items[station] = ((key, int(time.monotonic() // RECHECK_SECONDS)), value)


def _is_late(status: ChainStatus, now: datetime) -> bool:
    if status.entries == 0 or status.unanchored == 0:
        return False
    if status.last_checkpoint is None:
        return True
    try:
        at = datetime.fromisoformat(str(status.last_checkpoint["at"]))
    except ValueError:
        return True
    return at.tzinfo is None or now - at > LATE_AFTER


def chain_statuses(db: Any, bundle: TrustBundle | None, cache: _ChainCache, station: str | None = None,
                   now: datetime | None = None) -> list[ChainStatus]:
    """Every station's chain status (or ``station``'s alone), by station id."""
    now = now or datetime.now(UTC)
    rows = db.execute("SELECT station_id, first_seen, last_seen, audit_seq, audit_head FROM fleet_stations "
                      "WHERE %(station)s::text IS NULL OR station_id = %(station)s ORDER BY station_id",
                      {"station": station}).fetchall()
    counts = {(str(r[0]), str(r[1])): int(r[2]) for r in db.execute(
        "SELECT station_id, status, count(*) FROM fleet_records WHERE %(station)s::text IS NULL OR station_id = "
        "%(station)s GROUP BY 1, 2", {"station": station}).fetchall()}
    refused: dict[str, dict[str, int]] = {}
    for station_id, code, count in db.execute(
            "SELECT station_id, code, count(*) FROM fleet_quarantine WHERE %(station)s::text IS NULL OR station_id = "
            "%(station)s GROUP BY 1, 2 ORDER BY 1, 2", {"station": station}).fetchall():
        refused.setdefault(str(station_id), {})[str(code)] = int(count)
    jobs = {str(r[0]): int(r[1]) for r in db.execute(
        "SELECT station_id, count(*) FROM fleet_jobs WHERE %(station)s::text IS NULL OR station_id = %(station)s "
        "GROUP BY 1", {"station": station}).fetchall()}
    documents = {str(r[0]): int(r[1]) for r in db.execute(
        "SELECT station_id, count(*) FROM fleet_documents WHERE %(station)s::text IS NULL OR station_id = "
        "%(station)s GROUP BY 1", {"station": station}).fetchall()}
    marks = {str(r[0]): (int(r[1]), int(r[2] or 0)) for r in db.execute(
        "SELECT station_id, count(*), max(number) FROM fleet_checkpoints WHERE %(station)s::text IS NULL OR "
        "station_id = %(station)s GROUP BY 1", {"station": station}).fetchall()}
    statuses = []
    for station_id, first_seen, last_seen, audit_seq, head in rows:
        name = str(station_id)
        key = (int(audit_seq), str(head), marks.get(name, (0, 0)), bundle is not None)
        checked = cache.get(name, key)
        if checked is None:
            checked = _checked(db, name, int(audit_seq), str(head), bundle)
            cache.put(name, key, checked)
        problems, anchored, checkpoints, last = checked
        status = ChainStatus(name, first_seen, last_seen, int(audit_seq), str(head), checkpoints, last, anchored,
                             list(problems), bundle is not None,
                             records={state: counts.get((name, state), 0) for state in ("accepted", "quarantined")},
                             refused=refused.get(name, {}), jobs=jobs.get(name, 0), documents=documents.get(name, 0))
        status.late = _is_late(status, now)
        statuses.append(status)
    db.commit()
    return statuses


def station_entries(db: Any, station: str, page: int) -> tuple[list[dict[str, Any]], int]:
    """One page of ``station``'s chain entries, newest first, and how many it holds."""
    total, last = (int(value or 0) for value in db.execute(
        "SELECT count(*), max(seq) FROM fleet_audit WHERE station_id = %s", (station,)).fetchone())
    # the fleet holds a station's entries numbered 1, 2, 3, … (the ingest takes only the next one): a page is a
    # range of the primary key, not an OFFSET that reads every newer entry first
    top = last - (page - 1) * PAGE
    rows = db.execute("SELECT seq, at, kind, subject, substring(data from 1 for %s), length(data), hash "
                      "FROM fleet_audit WHERE station_id = %s AND seq <= %s AND seq > %s ORDER BY seq DESC",
                      (PREVIEW, station, top, top - PAGE)).fetchall()
    db.commit()
    return [{"seq": int(r[0]), "at": r[1], "kind": r[2], "subject": r[3], "data": r[4],
             "cut": int(r[5]) > PREVIEW, "hash": r[6]} for r in rows], total


def station_refusals(db: Any, station: str) -> tuple[list[dict[str, Any]], int]:
    """The newest refused pushes of ``station`` (what was sent, in part, and why it was refused)."""
    total = int(db.execute("SELECT count(*) FROM fleet_quarantine WHERE station_id = %s", (station,)).fetchone()[0])
    rows = db.execute("SELECT id, at, seq, code, reason, substring(record from 1 for %s), length(record) "
                      "FROM fleet_quarantine WHERE station_id = %s ORDER BY id DESC LIMIT %s",
                      (PREVIEW, station, QUARANTINE_SHOWN)).fetchall()
    db.commit()
    return [{"id": int(r[0]), "at": r[1], "seq": r[2], "code": r[3], "reason": r[4], "record": r[5],
             "cut": int(r[6]) > PREVIEW} for r in rows], total


def install(console: Console, fleet: FleetContext) -> None:
    """The auditor's pages (GET only) on the fleet console."""
    from agent.web.fleet_partner import TrustFile

    trust = TrustFile(fleet.trust)
    cache = _ChainCache()

    def bundle_or_none() -> TrustBundle | None:
        if fleet.trust is None:
            return None
        return trust.bundle()

    async def overview(request: web.Request) -> web.StreamResponse:
        bundle = bundle_or_none()
        statuses = await fleet.run(lambda database: chain_statuses(database.db, bundle, cache))
        return render(request, "fleet_auditor.html", statuses=statuses, late_hours=int(LATE_AFTER.total_seconds()
                                                                                        // 3600))

    async def station(request: web.Request) -> web.StreamResponse:
        name = request.match_info["station"]
        if not name or len(name) > MAX_SEGMENT or not name.isprintable():
            raise web.HTTPNotFound(text="no such station")
        try:
            page = int(request.query.get("page", "1"))
        except ValueError:
            raise web.HTTPBadRequest(text="page must be a whole number from 1") from None
        if not 1 <= page <= 10_000_000:
            raise web.HTTPBadRequest(text="page must be a whole number from 1")
        bundle = bundle_or_none()

        def work(database: Any) -> Any:
            found = chain_statuses(database.db, bundle, cache, station=name)
            if not found:
                return None
            entries, total = station_entries(database.db, name, page)
            refusals, refused_total = station_refusals(database.db, name)
            return found[0], entries, total, refusals, refused_total

        result = await fleet.run(work)
        if result is None:
            raise web.HTTPNotFound(text="no such station")
        status, entries, total, refusals, refused_total = result
        pages = max(1, -(-total // PAGE))
        return render(request, "fleet_auditor_station.html", station=status, entries=entries, total=total,
                      page=page, pages=pages, refusals=refusals, refused_total=refused_total,
                      late_hours=int(LATE_AFTER.total_seconds() // 3600))

    console.add("GET", "/audit", overview, roles=AUDIT_ROLES, nav="Audit")
    console.add("GET", "/audit/stations/{station}", station, roles=AUDIT_ROLES)
