"""The station's console: the bay wall, read from the daemon's Unix-socket API (the daemon keeps no network).

(First cut: one tile per bay from ``/v1/status``; live updates, actions and the daemon-side audit come next.)
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from agent.api.client import ApiClient
from agent.config import StationConfig
from agent.errors import AgentError
from agent.web.accounts import Accounts
from agent.web.render import render
from agent.web.server import ANYONE, EVERYONE, Console


class _LogAudit:
    def record(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        import logging

        logging.getLogger("wipe-agent.web").info("%s %s %s", kind, subject, data)


def station_console(config: StationConfig, *, accounts: Accounts, kiosk: bool, secure: bool) -> Console:
    console = Console(kind="station", title=f"station {config.station_id}", accounts=accounts, audit=_LogAudit(),
                      secure=secure, home="/")
    client = ApiClient(config.api_socket, timeout=5.0)

    async def wall(request: web.Request) -> web.StreamResponse:
        try:
            status: dict[str, Any] | None = await asyncio.to_thread(client.get, "/v1/status")
            problem = None
        except AgentError as error:
            status, problem = None, error.message
        return render(request, "station_wall.html", station=status, problem=problem)

    console.add("GET", "/", wall, roles=ANYONE if kiosk else EVERYONE, nav="Bays")
    return console
