"""The fleet's console: programme dashboard, compliance, partner and auditor views (PostgreSQL).

:func:`fleet_console` is the composition root: one :class:`FleetContext` (a small pool of fleet
database connections, the trust bundle) shared by every view module's ``install(console, fleet)``.
"""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from agent.fleet.database import FleetDatabase
from agent.web import fleet_compliance, fleet_dashboard
from agent.web.accounts import Accounts
from agent.web.server import AuditSink, Console

T = TypeVar("T")
POOL_SIZE = 4  # queries run in threads; more than this many at once wait for a connection


class FleetContext:
    """What the fleet's views share: the database (pooled connections) and the organisation's trust bundle."""

    def __init__(self, dsn: str, *, trust: Path | None = None, pool_size: int = POOL_SIZE) -> None:
        self.dsn, self.trust = dsn, trust
        self._idle: queue.LifoQueue[FleetDatabase] = queue.LifoQueue()
        self._slots = asyncio.Semaphore(pool_size)

    def _call(self, work: Callable[[FleetDatabase], T]) -> T:
        try:
            database = self._idle.get_nowait()
        except queue.Empty:
            database = FleetDatabase(self.dsn).open()
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

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class _LogAudit:
    """Placeholder sink until the fleet console's own audit chain lands (web-core)."""

    def record(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        import logging

        logging.getLogger("wipe-agent.web").info("%s %s %s", kind, subject, data)


def fleet_console(dsn: str, *, accounts: Accounts, trust: Path | None, secure: bool,
                  audit: AuditSink | None = None) -> Console:
    """The fleet host's console, every view installed."""
    fleet = FleetContext(dsn, trust=trust)
    console = Console(kind="fleet", title="fleet", accounts=accounts, audit=audit or _LogAudit(), secure=secure,
                      home="/")

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
