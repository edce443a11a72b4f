"""The fleet's console: programme dashboard, compliance, partner and auditor views (PostgreSQL).

:func:`fleet_console` is the composition root: one :class:`FleetContext` (a small pool of fleet
database connections, the trust bundle) shared by every view module's ``install(console, fleet)``.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar, cast

from aiohttp import web

from agent.fleet.database import FleetDatabase
from agent.web import fleet_compliance, fleet_dashboard
from agent.web.accounts import Accounts
from agent.web.audit import FleetConsoleAudit
from agent.web.server import AuditSink, Console

T = TypeVar("T")
POOL_SIZE = 4  # queries run in threads; more than this many at once wait for a connection
SNAPSHOT_TTL = 60.0  # seconds a snapshot of the fleet's numbers is reused while nothing new was ingested
SNAPSHOTS = 64       # snapshots kept (one per page and period asked for), the oldest dropped first
# what changes when anything reaches the fleet: every record a station pushes (accepted or refused) takes the
# station's next sequence number; a register import and a sample draw each add a row
_VERSION = ("SELECT (SELECT coalesce(sum(next_seq), 0) FROM fleet_stations), "
            "(SELECT coalesce(max(id), 0) FROM fleet_imports), (SELECT coalesce(max(id), 0) FROM fleet_sample_draws), "
            "(SELECT coalesce(max(id), 0) FROM fleet_quarantine)")


class FleetContext:
    """What the fleet's views share: the database (pooled connections) and the organisation's trust bundle."""

    def __init__(self, dsn: str, *, trust: Path | None = None, pool_size: int = POOL_SIZE,
                 snapshot_ttl: float = SNAPSHOT_TTL) -> None:
        self.dsn, self.trust, self.snapshot_ttl = dsn, trust, snapshot_ttl
        self._idle: queue.LifoQueue[FleetDatabase] = queue.LifoQueue()
        self._slots = asyncio.Semaphore(pool_size)
        self._snapshots: dict[Hashable, tuple[tuple[Any, ...], float, Any]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}

    def _call(self, work: Callable[[FleetDatabase], T]) -> T:
        try:
            database = self._idle.get_nowait()
        except queue.Empty:
            database = FleetDatabase(self.dsn).open()
            # the pages' queries are short: compiling them (JIT) cost more than it saved (bench_web_fleet.py)
            database.db.execute("SET jit = off")
            database.db.commit()
        healthy = False
        try:
            result = work(database)
            healthy = True
            return result
        finally:
            if healthy and not database.db.closed and database.db.info.transaction_status == 0:
                self._idle.put(database)
            else:
                database.close()

    async def run(self, work: Callable[[FleetDatabase], T]) -> T:
        """``work(database)`` in a worker thread with a pooled connection (closed, not reused, after an error)."""
        async with self._slots:
            return await asyncio.to_thread(self._call, work)

    async def snapshot(self, key: Hashable, work: Callable[[FleetDatabase], T], *, ttl: float | None = None) -> T:
        """``work(database)``'s result, reused for ``key`` while the fleet holds nothing new (no record ingested,
        no register imported, no sample drawn since) and for at most ``ttl`` seconds; requests that arrive while
        it is being computed wait for that one computation instead of starting their own."""
        ttl = self.snapshot_ttl if ttl is None else ttl
        if ttl <= 0:
            return await self.run(work)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            version = await self.run(_version)
            kept = self._snapshots.get(key)
            if kept is not None and kept[0] == version and time.monotonic() - kept[1] < ttl:
                return cast(T, kept[2])
            result = await self.run(work)
            self._snapshots.pop(key, None)
            self._snapshots[key] = (version, time.monotonic(), result)
            while len(self._snapshots) > SNAPSHOTS:
                oldest = next(iter(self._snapshots))
                del self._snapshots[oldest]
                self._locks.pop(oldest, None)
            return result

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def _snapshot_ttl() -> float:
    """``$WIPE_AGENT_WEB_SNAPSHOT_TTL`` seconds (0: every page computed afresh), else :data:`SNAPSHOT_TTL`."""
    import os

    from agent.web.serve import WebConfigError

    value = os.environ.get("WIPE_AGENT_WEB_SNAPSHOT_TTL", "")
    if not value:
        return SNAPSHOT_TTL
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= 3600:
        raise WebConfigError(f"WIPE_AGENT_WEB_SNAPSHOT_TTL must be 0 to 3600 seconds, not {value[:40]!r}")
    return seconds


def _version(database: FleetDatabase) -> tuple[Any, ...]:
    try:
        row = database.db.execute(_VERSION).fetchone()
    finally:
        database.db.rollback()
    return tuple(row) if row is not None else ()


class _LogAudit:
    """Placeholder sink until the fleet console's own audit chain lands (web-core)."""

    def record(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        import logging

        logging.getLogger("wipe-agent.web").info("%s %s %s", kind, subject, data)


def fleet_console(dsn: str, *, accounts: Accounts, trust: Path | None, secure: bool,
                  audit: AuditSink | None = None) -> Console:
    """The fleet host's console, every view installed."""
    fleet = FleetContext(dsn, trust=trust, snapshot_ttl=_snapshot_ttl())
    console = Console(kind="fleet", title="fleet", accounts=accounts, audit=audit or FleetConsoleAudit(dsn),
                      secure=secure, home="/")

    async def cleanup(app: web.Application) -> None:
        fleet.close()

    console.on_cleanup.append(cleanup)
    # the views' modules are installed here, one line each: install(console, fleet)
    fleet_dashboard.install(console, fleet)
    fleet_compliance.install(console, fleet)
    from agent.web import fleet_auditor, fleet_partner

    fleet_partner.install(console, fleet)
    fleet_auditor.install(console, fleet)
    return console
