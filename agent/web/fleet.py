"""The fleet's console: programme dashboard, compliance, partner and auditor views (PostgreSQL).

(First cut: the programme summary; the views come next.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.fleet.database import FleetDatabase
from agent.fleet.programme import summary
from agent.web.accounts import Accounts, Role
from agent.web.render import render
from agent.web.server import Console


class _LogAudit:
    def record(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        import logging

        logging.getLogger("wipe-agent.web").info("%s %s %s", kind, subject, data)


def fleet_console(dsn: str, *, accounts: Accounts, trust: Path | None, secure: bool) -> Console:
    console = Console(kind="fleet", title="fleet", accounts=accounts, audit=_LogAudit(), secure=secure, home="/")

    def read() -> dict[str, Any]:
        with FleetDatabase(dsn) as db:
            return summary(db.db)

    async def dashboard(request: web.Request) -> web.StreamResponse:
        return render(request, "fleet_dashboard.html", summary=await asyncio.to_thread(read))

    console.add("GET", "/", dashboard, roles={Role.ADMIN, Role.COMPLIANCE, Role.AUDITOR}, nav="Programme")
    return console
