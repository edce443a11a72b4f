"""The console's application: pages with their roles, the middlewares, sign-in and sign-out.

Every page is added with :meth:`Console.add` and names the roles that may open it; a path that was
not added does not exist (404), and there is no route without a declared role set. ``ANYONE`` (no
sign-in) is allowed only for ``GET``, and only where a console enables it on purpose (the station's
kiosk wall). Every state-changing request (``POST``) needs a signed-in session and that session's
CSRF token (form field ``csrf`` or header ``X-CSRF-Token``) and, when the browser sends one, an
``Origin`` of this console. Responses carry a strict Content-Security-Policy (no inline script, no
other origin), ``nosniff``, ``Referrer-Policy: same-origin``, ``frame-ancestors 'none'`` and ``no-store``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from aiohttp import web

from agent.errors import AgentError
from agent.web.accounts import Accounts, AccountsError, Role
from agent.web.render import render
from agent.web.sessions import Session, SessionStore, SignInLimiter

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ANYONE: frozenset[Role] = frozenset()  # marker: no sign-in needed (GET only, and only where enabled)
EVERYONE = frozenset(Role)             # any signed-in role
SESSION_COOKIE = "wa_session"
PRE_COOKIE = "wa_pre"                  # the sign-in form's double-submit token (before there is a session)
MAX_FORM = 64 * 1024
STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
log = logging.getLogger("wipe-agent.web")


class AuditSink(Protocol):
    """Where sign-ins and actions are recorded (the station's or the fleet's audit chain)."""

    def record(self, kind: str, subject: str, data: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Page:
    """One route: who may use it and where it shows in the navigation."""

    method: str
    path: str
    handler: Handler
    roles: frozenset[Role]
    nav: str | None = None
    max_body: int = MAX_FORM
    """The largest request body this page reads (an upload page raises it for itself alone)."""


def session_of(request: web.Request) -> Session:
    """The signed-in session (a guarded handler always has one unless its page is ``ANYONE``)."""
    session = request.get("session")
    if session is None:
        raise web.HTTPUnauthorized(text="sign in first")
    assert isinstance(session, Session)
    return session


def _local_target(target: str | None) -> str:
    """Only a path on this console, never another host (``//evil``, ``https://…``, ``/\\evil``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc else target


class Console:
    """The pages of one host's console, its accounts, sessions and audit sink."""

    def __init__(self, *, kind: str, title: str, accounts: Accounts, audit: AuditSink, secure: bool,
                 home: str = "/") -> None:
        self.kind, self.title, self.accounts, self.audit, self.secure = kind, title, accounts, audit, secure
        self.home = home
        self.sessions = SessionStore()
        self.limiter = SignInLimiter()
        self.pages: list[Page] = []
        self.on_startup: list[Callable[[web.Application], Awaitable[None]]] = []
        self.on_cleanup: list[Callable[[web.Application], Awaitable[None]]] = []

    def add(self, method: str, path: str, handler: Handler, *, roles: Iterable[Role], nav: str | None = None,
            max_body: int = MAX_FORM) -> None:
        """Add a page that ``roles`` may use (``ANYONE``: no sign-in, GET only); ``max_body`` raises the request
        size limit for this page alone (read only once the session and its role are checked)."""
        allowed = frozenset(roles)
        if method not in ("GET", "POST"):
            raise ValueError(f"{method} {path}: the console serves GET and POST only")
        if not allowed and method != "GET":
            raise ValueError(f"POST {path}: a state-changing page needs a signed-in role")
        if any(page.method == method and page.path == path for page in self.pages):
            raise ValueError(f"{method} {path} added twice")
        if max_body != MAX_FORM and (method != "POST" or max_body < MAX_FORM):
            raise ValueError(f"{method} {path}: only a POST page may raise its body limit")
        self.pages.append(Page(method, path, handler, allowed, nav, max_body))

    def navigation(self, session: Session | None) -> list[tuple[str, str]]:
        """(label, path) of the pages this session may open."""
        return [(page.nav, page.path) for page in self.pages if page.nav is not None and (
            not page.roles or (session is not None and session.role in page.roles))]

    def record(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        """Append to the audit sink; an audit that cannot be written refuses the action."""
        try:
            self.audit.record(kind, subject, data)
        except AgentError:
            raise
        except Exception as exc:
            log.error("audit sink failed: %s", exc)
            raise web.HTTPServiceUnavailable(text="the audit record cannot be written: nothing was done") from None

    def _guard(self, page: Page) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            session: Session | None = request.get("session")
            if page.roles:
                if session is None:
                    if page.method == "GET" and "text/html" in request.headers.get("Accept", "text/html"):
                        raise web.HTTPSeeOther(f"/sign-in?next={quote(request.path_qs, safe='')}")
                    raise web.HTTPUnauthorized(text="sign in first")
                if session.role not in page.roles:
                    raise web.HTTPForbidden(text=f"the {session.role.value} role may not open {page.path}")
            if page.max_body != MAX_FORM:  # an upload: the larger limit only for a signed-in role of the page
                larger = request.clone(client_max_size=page.max_body)
                for key, value in request.items():
                    larger[key] = value
                request = larger
            try:
                if page.method == "POST":
                    await _check_csrf(request, session)
                return await page.handler(request)
            finally:
                if page.max_body != MAX_FORM:
                    _close_uploads(request)
        return guarded

    def application(self) -> web.Application:
        """The aiohttp application with every page added so far."""
        app = web.Application(middlewares=[_errors, _headers, self._sessions], client_max_size=MAX_FORM)
        app["console"] = self
        app.router.add_get("/sign-in", _sign_in_form)
        app.router.add_post("/sign-in", _sign_in)
        app.router.add_post("/sign-out", _sign_out)
        app.router.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
        for page in self.pages:
            app.router.add_route(page.method, page.path, self._guard(page))
        app.on_startup.extend(self.on_startup)
        app.on_cleanup.extend(self.on_cleanup)
        return app

    @web.middleware
    async def _sessions(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        request["session"] = self.sessions.get(request.cookies.get(SESSION_COOKIE))
        if request["session"] is not None:
            try:
                self.accounts.reload()
            except AccountsError as error:
                log.error("%s", error.message)
            account = self.accounts.get(request["session"].name)
            if account is None or account.role != request["session"].role:
                self.sessions.drop(request["session"].id)  # removed or changed: signed out at once
                request["session"] = None
        return await handler(request)

    def cookie(self, response: web.StreamResponse, name: str, value: str, *, max_age: int | None = None) -> None:
        response.set_cookie(name, value, httponly=True, samesite="Strict", secure=self.secure, path="/",
                            max_age=max_age)


def _close_uploads(request: web.Request) -> None:
    """Close the temporary files of a parsed upload form, whatever the answer was (a refused CSRF token too)."""
    form = getattr(request, "_post", None)  # aiohttp's cached form: present only once the body was parsed
    for value in form.values() if form is not None else ():
        if isinstance(value, web.FileField):
            value.file.close()


async def _check_csrf(request: web.Request, session: Session | None) -> None:
    origin = request.headers.get("Origin")
    if origin is not None and origin != "null":
        parts = urlsplit(origin)
        if parts.netloc != request.host:
            raise web.HTTPForbidden(text="cross-origin request refused")
    elif origin == "null":
        raise web.HTTPForbidden(text="cross-origin request refused")
    token = request.headers.get("X-CSRF-Token")
    if token is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get("csrf")
        token = value if isinstance(value, str) else None
    if session is None:
        expected = request.cookies.get(PRE_COOKIE)
        if not expected or token is None or not secrets.compare_digest(expected.encode(), token.encode()):
            raise web.HTTPForbidden(text="the form's CSRF token is missing or wrong: reload the page")
        return
    if not session.csrf_matches(token):
        raise web.HTTPForbidden(text="the form's CSRF token is missing or wrong: reload the page")


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or request.path.startswith("/static/"):
            raise
        return _error_page(request, exc.status, exc.text or exc.reason)
    except AgentError as error:
        return _error_page(request, error.http_status if 400 <= error.http_status < 600 else 500, error.message)
    except Exception as exc:  # a bug in one page never shows a traceback, nor takes the console down
        log.exception("internal error on %s %s", request.method, request.path)
        return _error_page(request, 500, f"internal error ({type(exc).__name__})")


def _error_page(request: web.Request, status: int, message: str) -> web.Response:
    wants_html = "text/html" in request.headers.get("Accept", "")
    if not wants_html:
        return web.json_response({"error": {"status": status, "message": message}}, status=status)
    return render(request, "error.html", status=status, status_code=status, message=message)


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    # same-origin, not no-referrer: under no-referrer a browser sends "Origin: null" on its own forms (refused)
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    if request.app["console"].secure:
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


async def _sign_in_form(request: web.Request) -> web.StreamResponse:
    console: Console = request.app["console"]
    token = secrets.token_urlsafe(32)
    request["pre_csrf"] = token
    response = render(request, "sign_in.html", target=_local_target(request.query.get("next")), problem=None)
    console.cookie(response, PRE_COOKIE, token, max_age=3600)
    return response


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


async def _sign_in(request: web.Request) -> web.StreamResponse:
    console: Console = request.app["console"]
    await _check_csrf(request, None)
    form = await request.post()
    name = str(form.get("name", ""))[:64].strip().lower()
    password = str(form.get("password", ""))[:1024]
    target = _local_target(str(form.get("next", "/")))
    client = _client(request)
    wait = console.limiter.retry_after(name, client)
    if wait > 0:
        console.record("web-sign-in-refused", name or "-", {"client": client, "reason": "rate limited"})
        token = secrets.token_urlsafe(32)
        request["pre_csrf"] = token
        response = render(request, "sign_in.html", status=429, target=target,
                          problem=f"too many failed sign-ins: try again in {int(wait // 60) + 1} min")
        console.cookie(response, PRE_COOKIE, token, max_age=3600)
        return response
    account = console.accounts.authenticate(name, password)
    if account is None:
        console.limiter.failed(name, client)
        console.record("web-sign-in-failed", name or "-", {"client": client})
        token = secrets.token_urlsafe(32)
        request["pre_csrf"] = token
        response = render(request, "sign_in.html", status=401, target=target, problem="wrong name or password")
        console.cookie(response, PRE_COOKIE, token, max_age=3600)
        return response
    console.limiter.succeeded(name)
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        console.sessions.drop(old)  # whatever id the browser held is never promoted
    session = console.sessions.create(account)
    console.record("web-sign-in", account.name, {"role": account.role.value, "client": client})
    response = web.HTTPSeeOther(target if target != "/" else console.home)
    console.cookie(response, SESSION_COOKIE, session.id)
    response.del_cookie(PRE_COOKIE, path="/")
    raise response


async def _sign_out(request: web.Request) -> web.StreamResponse:
    console: Console = request.app["console"]
    session = request.get("session")
    await _check_csrf(request, session)
    if session is not None:
        console.sessions.drop(session.id)
        console.record("web-sign-out", session.name, {"client": _client(request)})
    response = web.HTTPSeeOther("/sign-in")
    response.del_cookie(SESSION_COOKIE, path="/")
    raise response
