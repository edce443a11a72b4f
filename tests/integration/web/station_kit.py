"""Helpers for the bay wall's tests and bench: a console served in a thread, a station behind the real API
server whose bays a test sets, and a headless Chromium that never reaches the network.

``FakeStation`` stands in for the daemon's :class:`~agent.api.server.StationService` only (the API server,
its socket, peer credentials and the console's client are the real ones); the browser tests use the real
daemon (tests/integration/daemon/conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.api.server import ApiServer
from agent.config import StationConfig, parse_config
from agent.web.server import Console

# the skeleton keys app["console"] and request["session"] by strings (web-core moves them to AppKey/RequestKey)
IGNORE_KEY_WARNINGS = "ignore::aiohttp.web_exceptions.NotAppKeyWarning"
ARTEFACTS = Path(os.environ.get("WIPE_AGENT_ARTEFACTS", "/tmp/wipe-agent-artefacts"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def station_config(socket_path: Path, bays: int, *, console_user: str | None = "root") -> StationConfig:
    """A station.toml with ``bays`` bays (matched by a backing file no test creates) and the console's user."""
    text = f'station_id = "wall-test"\napi_socket = "{socket_path}"\n'
    text += "".join(f'[[bays]]\nname = "bay-{index}"\nmatch = {{ WIPE_BACKING_FILE = "/nonexistent/{index}" }}\n'
                    for index in range(1, bays + 1))
    if console_user is not None:
        text += f'[web]\nconsole_user = "{console_user}"\n'
    return parse_config(text, "station.toml", check_profiles=False)


def bay(name: str, state: str = "empty", *, pull: str | None = None, progress: float | None = None,
        serial: str = "S3Z9NB0K812345X", reason: str | None = None) -> dict[str, Any]:
    """One bay as ``/v1/status`` gives it."""
    present = state != "empty"
    advice = pull or ("bay empty" if not present else "do not pull" if state in ("running", "starting")
                      else "safe to pull")
    job = None
    if state in ("running", "starting", "queued"):
        job = {"state": state, "phase": "overwrite" if state == "running" else None, "overall_progress": progress,
               "eta_seconds": 754.0 if progress is not None else None, "quiet_seconds": 0.5}
    return {"name": name, "state": state, "pull": advice, "safe_to_pull": advice == "safe to pull",
            "reason": reason, "needs_rerun": False, "job": job, "outcome": (
                {"outcome": state, "certificate": "/c.pdf"} if state == "sanitised" else None),
            "drive": {"device": "/dev/sdx", "model": "Samsung SSD 860 EVO 500GB", "serial": serial,
                      "media": "ssd"} if present else None,
            "asset_tag": "PC-004711" if present else None}


class FakeStation:
    """The daemon's service as far as the wall reads it: a status a test changes."""

    def __init__(self, bays: list[dict[str, Any]]) -> None:
        self.bays = bays
        self.lock = threading.Lock()
        self.calls = 0
        self.audit: list[tuple[str, str]] = []

    def set(self, index: int, entry: dict[str, Any]) -> None:
        with self.lock:
            self.bays[index] = entry

    def status(self) -> dict[str, Any]:
        with self.lock:
            self.calls += 1
            return {"station_id": "wall-test", "stopping": False, "running": 0, "queued": 0,
                    "bays": [dict(entry) for entry in self.bays], "unbayed_drives": []}

    def console_audit(self, kind: str, subject: str, data: dict[str, Any], *, caller_uid: int) -> dict[str, Any]:
        with self.lock:
            self.audit.append((kind, subject))
        return {"seq": len(self.audit)}


def serve_fake(station: FakeStation, directory: Path | None = None) -> tuple[ApiServer, Path]:
    """The real API server on a fresh socket, in front of ``station``."""
    where = Path(directory or tempfile.mkdtemp(prefix="wa-wall-", dir="/tmp")) / "api.sock"
    return ApiServer(where, station, "root"), where


class ConsoleServer:
    """``console`` served on 127.0.0.1:PORT by aiohttp in a thread of its own (stop() to end)."""

    def __init__(self, console: Console, port: int | None = None) -> None:
        self.console = console
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="console", daemon=True)
        self.thread.start()
        if not self._ready.wait(10) or self._error is not None:
            raise AssertionError(f"console did not start: {self._error}")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        try:
            runner = web.AppRunner(self.console.application(), access_log=None, handle_signals=False,
                                   shutdown_timeout=1.0)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            raise
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(10)


def chromium(width: int = 1366, height: int = 768) -> Any:
    """Debian's Chromium, headless, through /usr/bin/chromedriver: Selenium Manager is never asked."""
    os.environ["SE_OFFLINE"] = "true"  # should anything still reach Selenium Manager, it stays offline
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="wa-chromium-")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    viewport(driver, width, height)
    return driver


def viewport(driver: Any, width: int, height: int) -> None:
    """The page's viewport exactly ``width`` x ``height`` CSS pixels (a phone below 700)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 700})


def screenshot(driver: Any, name: str) -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTEFACTS / name
    driver.save_screenshot(str(path))
    return path


class WebClient:
    """A browser without a browser: cookies kept, forms posted with the console's CSRF token."""

    def __init__(self, base: str) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(base)
        self.base, self.host, self.port = base, parts.hostname or "127.0.0.1", parts.port or 80
        self.cookies: dict[str, str] = {}

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
        import http.client
        from http.cookies import SimpleCookie
        from urllib.parse import urlencode

        connection = http.client.HTTPConnection(self.host, self.port, timeout=15)
        sent = {"Accept": "text/html", **(headers or {})}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{key}={value}" for key, value in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form)
            sent["Content-Type"] = "application/x-www-form-urlencoded"
            sent["Origin"] = self.base
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(header)
            for key, morsel in cookie.items():
                if morsel.value and morsel["max-age"] != "0" and "1970" not in morsel["expires"]:
                    self.cookies[key] = morsel.value
                else:
                    self.cookies.pop(key, None)
        return response.status, dict(response.headers), text

    def csrf(self, path: str = "/") -> str:
        import re

        status, _, text = self.request("GET", path)
        found = re.search(r'name="csrf" value="([^"]+)"', text)
        assert found, f"no CSRF field on {path} ({status}): {text[:300]}"
        return found.group(1)

    def sign_in(self, name: str, password: str) -> None:
        token = self.csrf("/sign-in")
        status, _, text = self.request("POST", "/sign-in", {"csrf": token, "name": name, "password": password,
                                                                  "next": "/"})
        assert status == 303 and "wa_session" in self.cookies, (status, text[:300])
