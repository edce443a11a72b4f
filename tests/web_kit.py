"""What the web console's tests and benches share: a console served on loopback from a background thread, a small
HTTP client that keeps cookies and never follows redirects, accounts of every role, and the offline Chromium the
browser tests (tests/browser/conftest.py) and bench/bench_web_wall.py drive."""

from __future__ import annotations

import asyncio
import grp
import html
import http.client
import os
import re
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from agent.api.server import ApiServer
from agent.config import parse_config
from agent.web.accounts import Accounts, Role
from agent.web.server import Console

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

PASSWORD = "correct horse battery"
PARTNER = "Reuse Partner Ltd"
ROLES = {role.value: role for role in Role}


def make_accounts(path: Path) -> Accounts:
    """One account per role, named after it (the partner's carries PARTNER), all with PASSWORD."""
    accounts = Accounts(path)
    for name, role in ROLES.items():
        accounts.add(name, role, f"Test {name}", PASSWORD, PARTNER if role is Role.PARTNER else None)
    return accounts


@contextmanager
def station_api(directory: Path) -> Iterator[Any]:
    """The real API server on ``directory``/api.sock in front of the bay wall's FakeStation (no bay; it records
    the console's audit entries in ``.audit``): the daemon's side of the station console's seam."""
    from tests.integration.web.station_kit import FakeStation

    fake = FakeStation([])
    server = ApiServer(directory / "api.sock", fake, grp.getgrgid(os.getgid()).gr_name)
    try:
        yield fake
    finally:
        server.close()


def station_console_for(directory: Path, accounts_path: Path, *, kiosk: bool = False) -> Console:
    """The station's console as `wipe-agent web serve` builds it, for the API socket of :func:`station_api` on
    ``directory``."""
    from agent.web.station import station_console

    config = parse_config(f'station_id = "station-07"\nstate_dir = "{directory / "state"}"\n'
                          f'api_socket = "{directory / "api.sock"}"\n', check_profiles=False)
    return station_console(config, accounts=Accounts(accounts_path), kiosk=kiosk, secure=False)


class ConsoleServer:
    """An aiohttp application served on 127.0.0.1:<free port> by an event loop in a thread of its own."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", *, tls: ssl.SSLContext | None = None,
                 port: int = 0) -> None:
        """``port``: 0 for a free one; a stopped server's port to serve again where a browser still points."""
        self.app, self.host, self.tls = app, host, tls
        self.port = port
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        self._thread = threading.Thread(target=self._loop.run_forever, name="console-server", daemon=True)

    @property
    def base(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> ConsoleServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        return self

    async def _start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.tls)
        await site.start()
        server = site._server
        assert server is not None
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def _stop(self) -> None:
        server = self._runner.server
        transports = [handler.transport for handler in (server.connections if server is not None else [])]
        await self._runner.cleanup()
        # a TLS connection a browser keeps alive would wait for the browser's close_notify (30 s): cut it
        for transport in transports:
            if transport is not None:
                transport.abort()
        await asyncio.sleep(0)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@contextmanager
def serving(app: web.Application) -> Iterator[ConsoleServer]:
    """``app`` served for the block, stopped (its cleanups run) whatever the block raises."""
    server = ConsoleServer(app).start()
    try:
        yield server
    finally:
        server.stop()


CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@contextmanager
def chromium(width: int = 1366, height: int = 768) -> Iterator[WebDriver]:
    """Debian's Chromium, headless, through /usr/bin/chromedriver (Selenium Manager is never asked, and stays
    offline should anything call it), in a fresh profile removed afterwards, ``width`` x ``height`` (the kiosk's
    1366 x 768 by default); its console messages kept for browser_errors()."""
    os.environ["SE_OFFLINE"] = "true"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="wipe-agent-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.accept_insecure_certs = True  # a console over TLS with a test CA's certificate
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class Client:
    """A browser's worth of HTTP: its cookie jar, its own Origin on every POST (unless told otherwise)."""

    server: ConsoleServer
    cookies: dict[str, str] = field(default_factory=dict)
    source: str | None = None
    """The client's own address (another loopback address is another client to the server)."""

    def request(self, method: str, path: str, *, body: bytes | None = None, headers: dict[str, str] | None = None,
                accept: str = "text/html") -> Reply:
        connection = http.client.HTTPConnection(self.server.host, self.server.port, timeout=30,
                                                source_address=(self.source, 0) if self.source else None)
        sent = {"Accept": accept, **(headers or {})}
        if self.cookies and "Cookie" not in sent:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            if (response.headers.get("Content-Type") or "").startswith("text/event-stream"):
                text = ""  # a live stream never ends: its status and headers are what a test reads
            else:
                text = response.read().decode("utf-8", "replace")
        finally:
            connection.close()
        for line in response.headers.get_all("Set-Cookie") or []:
            jar: SimpleCookie = SimpleCookie()
            jar.load(line)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or (morsel["expires"] and "1970" in morsel["expires"]):
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return Reply(response.status, response.headers, text)

    def get(self, path: str, **kwargs: Any) -> Reply:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, form: dict[str, str], *, origin: str | None = "self",
             headers: dict[str, str] | None = None, **kwargs: Any) -> Reply:
        sent = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
        if origin == "self":
            sent["Origin"] = self.server.base
        elif origin is not None:
            sent["Origin"] = origin
        return self.request("POST", path, body=urlencode(form).encode(), headers=sent, **kwargs)

    def form_token(self, path: str = "/sign-in", action: str = "/sign-in") -> str:
        """The CSRF token of the form posting to ``action`` on the page ``path``."""
        reply = self.get(path)
        match = re.search(rf'action="{re.escape(action)}"[^>]*>\s*<input type="hidden" name="csrf" value="([^"]*)"',
                          reply.body)
        assert match, f"no form to {action} on {path}: {reply.status} {reply.body[:300]}"
        return html.unescape(match.group(1))

    def sign_in(self, name: str, password: str = PASSWORD, *, next_path: str = "/") -> Reply:
        token = self.form_token()
        return self.post("/sign-in", {"csrf": token, "name": name, "password": password, "next": next_path})

    def signed_in(self, name: str, password: str = PASSWORD) -> Client:
        """Sign ``name`` in, which must work (a redirect and a session cookie); returns this client."""
        reply = self.sign_in(name, password)
        assert reply.status == 303 and any(key.endswith("wa_session") for key in self.cookies), (
            reply.status, reply.body[:300])
        return self

    def session_token(self) -> str:
        """The signed-in session's CSRF token (from the sign-out form every page carries)."""
        return self.form_token("/sign-in", "/sign-out")  # every page's header has the sign-out form
