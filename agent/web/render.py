"""The Jinja2 environment of the console: autoescaped, strict about undefined names, templates from the package."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jinja2
from aiohttp import web

if TYPE_CHECKING:
    from agent.web.server import Console
    from agent.web.sessions import Session

CONSOLE: web.AppKey[Console] = web.AppKey("console")
"""Where an application keeps its :class:`~agent.web.server.Console` (``request.app[CONSOLE]``)."""

SESSION: web.RequestKey[Session | None] = web.RequestKey("session")
"""The request's signed-in session, or None (set by the console's session middleware)."""

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.PackageLoader("agent.web", "templates"),
    autoescape=True,  # every template, whatever its name: a value is text unless marked Markup on purpose
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def environment() -> jinja2.Environment:
    return _ENVIRONMENT


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """``template`` rendered with ``context`` plus the console, the session and its navigation."""
    console = request.app[CONSOLE]
    session = request.get(SESSION)
    page = _ENVIRONMENT.get_template(template).render(
        console=console, session=session, nav=console.navigation(session), path=request.path,
        csrf=(session.csrf if session is not None else ""), **context)
    return web.Response(text=page, status=status, content_type="text/html", charset="utf-8")
