"""The console's application: pages with their roles, the middlewares, sign-in and sign-out.

Every page is added with :meth:`Console.add` and names the roles that may open it; a path that was
not added does not exist (404), and there is no route without a declared role set. ``ANYONE`` (no
sign-in) is allowed only for ``GET``, and only where a console enables it on purpose (the station's
kiosk wall). Every state-changing request (``POST``) needs a signed-in session and that session's
CSRF token (form field ``csrf`` or header ``X-CSRF-Token``), an ``Origin`` (or, without one, a
``Referer``) of this console, and a declared ``Content-Length`` within the page's limit. The sign-in
form, before there is a session, carries a double-submit token: a cookie and a form field that must be
equal and that this process signed (HMAC, at most an hour old), so a token planted by someone else is
refused. Responses, error pages and redirects alike, carry a strict Content-Security-Policy (no inline
script or style, no other origin), ``nosniff``, ``Referrer-Policy: same-origin`` (a browser sends its
``Origin`` on our own forms and nothing to other sites), ``frame-ancestors 'none'`` and ``no-store``;
over TLS, ``Strict-Transport-Security`` and ``__Host-`` cookies that are ``Secure``.

Plain HTTP (no ``--tls-cert``) is for this machine: a console without TLS lets anyone read the pages it
opens to ``ANYONE`` (the kiosk wall), but takes a sign-in, or any ``POST``, only from a loopback client,
so a password never crosses a network in clear.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from aiohttp import web

from agent.errors import AgentError
from agent.web.accounts import Account, Accounts, AccountsError, Role
from agent.web.render import CONSOLE, SESSION, render
from agent.web.sessions import Session, SessionStore, SignInLimiter, fingerprint

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ANYONE: frozenset[Role] = frozenset()  # marker: no sign-in needed (GET only, and only where enabled)
EVERYONE = frozenset(Role)             # any signed-in role
SESSION_COOKIE = "wa_session"          # "__Host-" prefixed over TLS (no subdomain can plant or read it)
PRE_COOKIE = "wa_pre"                  # the sign-in form's double-submit token (before there is a session)
PRE_LIFETIME = 3600                    # seconds a sign-in form stays usable
MAX_FORM = 64 * 1024                   # a POST's body unless its page declares more (an upload)
SIGN_IN_PARALLEL = 2                   # scrypt checks at once (32 MiB each); more sign-ins wait their turn
STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
PERMISSIONS = "camera=(), microphone=(), geolocation=(), usb=(), serial=(), hid=(), payment=()"
log = logging.getLogger("wipe-agent.web")


class AuditSink(Protocol):
    """Where sign-ins and actions are recorded (the station's or the fleet's audit chain)."""

    def record(self, kind: str, subject: str, data: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Page:
    """One route: who may use it, where it shows in the navigation, and how large a body it takes."""

    method: str
    path: str
    handler: Handler
    roles: frozenset[Role]
    nav: str | None = None
    max_body: int = MAX_FORM


def session_of(request: web.Request) -> Session:
    """The signed-in session (a guarded handler always has one unless its page is ``ANYONE``)."""
    session = request.get(SESSION)
    if session is None:
        raise web.HTTPUnauthorized(text="sign in first")
    assert isinstance(session, Session)
    return session


async def form_of(request: web.Request) -> Any:
    """The request's form (urlencoded or multipart); a malformed body is a 400, never a 500. (aiohttp closes an
    upload's temporary files when the request is done, whatever the answer.)"""
    try:
        form = await request.post()
    except web.HTTPException:
        raise
    except (ValueError, UnicodeDecodeError, AssertionError) as exc:
        raise web.HTTPBadRequest(text=f"the form cannot be read: {exc}") from None
    return form


def _local_target(target: str | None) -> str:
    """Only a path on this console, never another host (``//evil``, ``https://…``, ``/\\evil``, ``/\\t/evil``:
    browsers drop tabs and newlines from a URL, so any control character or space is refused too, and so is an
    encoded slash or backslash)."""
    if (not target or len(target) > 2048 or not target.startswith("/") or target.startswith("//")
            or any(not ("!" <= ch <= "~") or ch == "\\" for ch in target)
            or "%2f" in target.lower() or "%5c" in target.lower()):  # no encoded slash either: nothing to decode later
        return "/"
    parts = urlsplit(target)
    return "/" if parts.scheme or parts.netloc or parts.path.startswith("//") else target


def _is_loopback(address: str | None) -> bool:
    if not address:
        return False
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _host_name(host: str) -> str:
    """``Host`` without its port, lower case (``[::1]:8080`` → ``::1``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _client(request: web.Request) -> str:
    return request.remote or "unknown"


class Console:
    """The pages of one host's console, its accounts, sessions and audit sink."""

    def __init__(self, *, kind: str, title: str, accounts: Accounts, audit: AuditSink, secure: bool,
                 home: str = "/", clock: Callable[[], float] = time.monotonic) -> None:
        self.kind, self.title, self.accounts, self.audit, self.secure = kind, title, accounts, audit, secure
        self.home = home
        self.clock = clock
        self.sessions = SessionStore(clock)
        self.limiter = SignInLimiter(clock)
        self.pages: list[Page] = []
        self.on_startup: list[Callable[[web.Application], Awaitable[None]]] = []
        self.on_cleanup: list[Callable[[web.Application], Awaitable[None]]] = []
        self.session_cookie = ("__Host-" if secure else "") + SESSION_COOKIE
        self.pre_cookie = ("__Host-" if secure else "") + PRE_COOKIE
        self._secret = secrets.token_bytes(32)  # signs the sign-in form's tokens; a restart voids open forms
        self._checks = asyncio.Semaphore(SIGN_IN_PARALLEL)
        self.accounts_problem: str | None = None
        self.host_names: frozenset[str] | None = None
        """The names this console answers to (the ``Host`` header without its port; None: any). A console on
        loopback answers only to loopback names, so a page of another site whose name is re-pointed at
        127.0.0.1 (DNS rebinding) cannot read the kiosk wall through the station's browser."""

    def add(self, method: str, path: str, handler: Handler, *, roles: Iterable[Role], nav: str | None = None,
            max_body: int = MAX_FORM) -> None:
        """Add a page that ``roles`` may use (``ANYONE``: no sign-in, GET only); ``max_body``: a POST's limit."""
        allowed = frozenset(roles)
        if method not in ("GET", "POST"):
            raise ValueError(f"{method} {path}: the console serves GET and POST only")
        if not allowed and method != "GET":
            raise ValueError(f"POST {path}: a state-changing page needs a signed-in role")
        if not allowed <= EVERYONE:
            raise ValueError(f"{method} {path}: roles must be Role members")
        if any(page.method == method and page.path == path for page in self.pages):
            raise ValueError(f"{method} {path} added twice")
        if path in ("/sign-in", "/sign-out") or path.startswith("/static/"):
            raise ValueError(f"{method} {path}: reserved for the console itself")
        self.pages.append(Page(method, path, handler, allowed, nav, max_body))

    def navigation(self, session: Session | None) -> list[tuple[str, str]]:
        """(label, path) of the pages this session may open."""
        return [(page.nav, page.path) for page in self.pages if page.nav is not None and (
            not page.roles or (session is not None and session.role in page.roles))]

    def landing(self, role: Role) -> str:
        """Where a sign-in without a target goes: ``home`` when the role may open it, else its first page."""
        pages = [page for page in self.pages if page.method == "GET" and (not page.roles or role in page.roles)]
        if any(page.path == self.home for page in pages):
            return self.home
        return next((page.path for page in pages if page.nav is not None), self.home)

    def record(self, kind: str, subject: str, data: dict[str, Any], *, request: web.Request | None = None) -> None:
        """Append to the audit sink (with ``request``: who did it, in which role, from where); an audit that
        cannot be written refuses the action."""
        if request is not None:
            session = request.get(SESSION)
            data = {**data, "client": _client(request)}
            if isinstance(session, Session):
                data.update(by=session.name, role=session.role.value)
                if session.partner is not None:
                    data["partner"] = session.partner
        try:
            self.audit.record(kind, subject, data)
        except Exception as exc:
            log.error("audit sink failed: %s", exc)
            raise web.HTTPServiceUnavailable(text="the audit record cannot be written: nothing was done") from None

    async def write_audit(self, kind: str, subject: str, data: dict[str, Any], *,
                          request: web.Request | None = None) -> None:
        """:meth:`record` off the event loop (a database sink blocks for a round trip)."""
        await asyncio.to_thread(self.record, kind, subject, data, request=request)

    # sign-in form tokens ------------------------------------------------------------------------------
    def pre_token(self) -> str:
        """A fresh sign-in form token: nonce, issue time, and this process's HMAC over both."""
        body = f"{secrets.token_urlsafe(18)}.{int(self.clock())}"
        return f"{body}.{hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()}"

    def pre_token_valid(self, token: str) -> bool:
        nonce, _, rest = token.partition(".")
        issued, _, mac = rest.partition(".")
        if not nonce or not issued.isdigit() or not mac:
            return False
        expected = hmac.new(self._secret, f"{nonce}.{issued}".encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected.encode(), mac.encode()) and 0 <= self.clock() - int(issued) <= PRE_LIFETIME

    # the guard of every page ---------------------------------------------------------------------------
    def _guard(self, page: Page) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            session: Session | None = request.get(SESSION)
            if page.roles:
                if session is None:
                    if page.method == "GET" and "text/html" in request.headers.get("Accept", "text/html"):
                        raise web.HTTPSeeOther(f"/sign-in?next={quote(request.path_qs, safe='/')}")
                    raise web.HTTPUnauthorized(text="sign in first")
                if session.role not in page.roles:
                    raise web.HTTPForbidden(text=f"the {session.role.value} role may not open {page.path}")
            if page.method == "POST":
                self._check_body(request, page.max_body)
                self._check_transport(request)
                await self._check_csrf(request, session)
            return await page.handler(request)
        return guarded

    def _check_body(self, request: web.Request, limit: int) -> None:
        if request.content_length is None:
            if request.body_exists:
                raise web.HTTPLengthRequired(text="a request body needs a Content-Length")
        elif request.content_length > limit:
            raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length,
                                                text=f"the request body is larger than {limit} bytes")

    def _check_transport(self, request: web.Request) -> None:
        if not self.secure and not _is_loopback(request.remote):
            raise web.HTTPForbidden(text="this console has no TLS: sign-in and actions are taken only from this "
                                         "machine (serve with --tls-cert/--tls-key)")

    async def _check_csrf(self, request: web.Request, session: Session | None) -> None:
        own = f"{request.scheme}://{request.host}".lower()
        origin = request.headers.get("Origin")
        if origin is not None:
            if origin.lower() != own:  # "null" (a sandboxed or privacy-stripped origin) is refused as well
                raise web.HTTPForbidden(text="cross-origin request refused")
        elif (referer := request.headers.get("Referer")) is not None:
            parts = urlsplit(referer)
            if f"{parts.scheme}://{parts.netloc}".lower() != own:
                raise web.HTTPForbidden(text="cross-origin request refused")
        token = request.headers.get("X-CSRF-Token")
        if token is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
            form = await form_of(request)
            value = form.get("csrf")
            token = value if isinstance(value, str) else None
        if session is None:
            planted = request.cookies.get(self.pre_cookie)
            if (not planted or token is None or not hmac.compare_digest(planted.encode(), token.encode())
                    or not self.pre_token_valid(token)):
                raise web.HTTPForbidden(text="the sign-in form's token is missing, wrong or old: reload the page")
            return
        if not session.csrf_matches(token):
            raise web.HTTPForbidden(text="the form's CSRF token is missing or wrong: reload the page")

    def application(self) -> web.Application:
        """The aiohttp application with every page added so far."""
        largest = max([MAX_FORM, *(page.max_body for page in self.pages)])
        app = web.Application(middlewares=[_headers, _errors, self._sessions], client_max_size=largest)
        app[CONSOLE] = self
        app.router.add_get("/sign-in", _sign_in_form)
        app.router.add_post("/sign-in", _sign_in)
        app.router.add_post("/sign-out", _sign_out)
        app.router.add_static("/static/", STATIC, show_index=False, follow_symlinks=False)
        for page in self.pages:
            app.router.add_route(page.method, page.path, self._guard(page))
        app.on_startup.extend(self.on_startup)
        app.on_cleanup.extend(self.on_cleanup)
        close = getattr(self.audit, "close", None)
        if callable(close):  # a sink with a connection (the fleet's) closes with the application

            async def close_audit(app: web.Application) -> None:
                await asyncio.to_thread(close)

            app.on_cleanup.append(close_audit)
        return app

    def _reload_accounts(self) -> None:
        try:
            self.accounts.reload()
            self.accounts_problem = None
        except AccountsError as error:
            if self.accounts_problem != error.message:
                log.error("%s", error.message)
            self.accounts_problem = error.message

    @web.middleware
    async def _sessions(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.host_names is not None and _host_name(request.host) not in self.host_names:
            raise web.HTTPMisdirectedRequest(text="this console does not answer to that host name")
        self._reload_accounts()  # one stat per request: a removed or changed account is noticed at once
        session = self.sessions.get(request.cookies.get(self.session_cookie))
        if session is not None:
            account = None if self.accounts_problem else self.accounts.get(session.name)
            if account is None or fingerprint(account) != session.fingerprint:
                # removed, or its role, partner, title or password changed (or the file is broken): out at once
                self.sessions.drop_account(session.name)
                if self.accounts_problem is None:
                    try:
                        self.record("web-signed-out", session.name, {
                            "reason": "account removed" if account is None else "account changed",
                            "client": _client(request)})
                    except web.HTTPException:
                        pass  # the session is gone either way; the sink's failure is logged
                session = None
        request[SESSION] = session
        return await handler(request)

    def cookie(self, response: web.StreamResponse, name: str, value: str, *, max_age: int | None = None) -> None:
        response.set_cookie(name, value, httponly=True, samesite="Strict", secure=self.secure, path="/",
                            max_age=max_age)

    def forget_cookie(self, response: web.StreamResponse, name: str) -> None:
        response.del_cookie(name, path="/", secure=self.secure, httponly=True, samesite="Strict")


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or request.path.startswith("/static/"):
            raise
        page = _error_page(request, exc.status, exc.text or exc.reason)
        for header in ("Retry-After", "Allow"):
            if header in exc.headers:
                page.headers[header] = exc.headers[header]
        return page
    except AgentError as error:
        return _error_page(request, error.http_status if 400 <= error.http_status < 600 else 500, error.message)
    except Exception as exc:  # a bug in one page never shows a traceback, nor takes the console down
        log.exception("internal error on %s %s", request.method, request.path)
        return _error_page(request, 500, f"internal error ({type(exc).__name__})")


def _error_page(request: web.Request, status: int, message: str) -> web.Response:
    if message.startswith(f"{status}: "):  # aiohttp's own texts ("404: Not Found")
        message = message.split(": ", 1)[1]
    wants_html = "text/html" in request.headers.get("Accept", "")
    if not wants_html:
        return web.json_response({"error": {"status": status, "message": message}}, status=status)
    return render(request, "error.html", status=status, status_code=status, message=message)


def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.headers["Permissions-Policy"] = PERMISSIONS
    if not request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"
    if request.app[CONSOLE].secure:
        response.headers["Strict-Transport-Security"] = "max-age=31536000"


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects, and the static files' own errors
        _secure_headers(request, exc)
        raise
    _secure_headers(request, response)
    return response


def _sign_in_page(request: web.Request, *, status: int, target: str, problem: str | None) -> web.Response:
    console = request.app[CONSOLE]
    token = console.pre_token()
    response = render(request, "sign_in.html", status=status, target=target, problem=problem, sign_in_token=token)
    console.cookie(response, console.pre_cookie, token, max_age=PRE_LIFETIME)
    return response


async def _sign_in_form(request: web.Request) -> web.StreamResponse:
    return _sign_in_page(request, status=200, target=_local_target(request.query.get("next")), problem=None)


async def _sign_in(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    console._check_body(request, MAX_FORM)
    console._check_transport(request)
    await console._check_csrf(request, None)
    form = await form_of(request)
    name = str(form.get("name", ""))[:64].strip().lower()
    password = str(form.get("password", ""))[:1024]
    target = _local_target(str(form.get("next", "/")))
    client = _client(request)
    if console.accounts_problem is not None:
        raise web.HTTPServiceUnavailable(text="the accounts file cannot be read: nobody can sign in until an "
                                              "administrator fixes it")
    async with console._checks:  # the limit is read after the wait, so parallel guesses count too
        wait = console.limiter.retry_after(name, client)
        if wait > 0:
            count = console.limiter.refused(client)
            if count is not None:
                await console.write_audit("web-sign-in-refused", name or "-",
                                          {"client": client, "reason": "rate limited", "refused": count})
            seconds = math.ceil(wait)
            response = _sign_in_page(request, status=429, target=target,
                                     problem=f"too many failed sign-ins: try again in {math.ceil(seconds / 60)} min")
            response.headers["Retry-After"] = str(seconds)
            return response
        account: Account | None = await asyncio.to_thread(console.accounts.authenticate, name, password)
        if account is None:
            console.limiter.failed(name, client)
    if account is None:
        await console.write_audit("web-sign-in-failed", name or "-", {"client": client})
        return _sign_in_page(request, status=401, target=target, problem="wrong name or password")
    console.limiter.succeeded(name)
    old = request.cookies.get(console.session_cookie)
    if old:
        console.sessions.drop(old)  # whatever id the browser held is never promoted
    signed = {"role": account.role.value, "client": client}
    await console.write_audit("web-sign-in", account.name,
                              {**signed, "partner": account.partner} if account.partner else signed)
    session = console.sessions.create(account)
    response = web.HTTPSeeOther(target if target != "/" else console.landing(account.role))
    console.cookie(response, console.session_cookie, session.id)
    console.forget_cookie(response, console.pre_cookie)
    raise response


async def _sign_out(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    session: Session | None = request.get(SESSION)
    response = web.HTTPSeeOther("/sign-in")
    console.forget_cookie(response, console.session_cookie)
    if session is None:  # nothing to end (expired, or never signed in): no state changes, so no token needed
        raise response
    console._check_body(request, MAX_FORM)
    await console._check_csrf(request, session)
    console.sessions.drop(session.id)
    try:  # signing out is never refused: a failed record is logged, the session is gone either way
        await console.write_audit("web-sign-out", session.name, {"client": _client(request)})
    except web.HTTPException:
        pass
    raise response
