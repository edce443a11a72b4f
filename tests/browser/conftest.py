"""The browser harness: one headless Chromium per session (Debian's, driven through /usr/bin/chromedriver by
Selenium, never downloaded: tests.web_kit.chromium), consoles served on loopback from a background thread, sign-in,
waits, downloads, viewports and screenshots.

Without chromium or chromedriver the browser tests skip with the reason, except under
WIPE_AGENT_REQUIRE_ROOT=1 (CI, where ``scripts/setup.sh --test`` installs both): there that is a failure.
Screenshots go to ``$WIPE_AGENT_ARTEFACTS`` (default /tmp/wipe-agent-artefacts/).
"""

from __future__ import annotations

import os
import re
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from tests.integration.web.conftest import accounts_template, station_daemon  # noqa: F401  (fixtures: found here)
from tests.web_kit import CHROMEDRIVER, CHROMIUM, ConsoleServer, chromium

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

WAIT = 15.0  # seconds a page may take to show what a test waits for (a bound, not a timing)


def unavailable_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is missing (Debian package {package}; scripts/setup.sh --test installs it)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the test extra)"
    return None


def artefacts() -> Path:
    directory = Path(os.environ.get("WIPE_AGENT_ARTEFACTS", "/tmp/wipe-agent-artefacts"))
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="session")
def browser() -> Iterator[WebDriver]:
    """A headless Chromium for the session (tests.web_kit.chromium: a fresh profile, no network of its own,
    1366 x 768, the kiosk's screen)."""
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("WIPE_AGENT_REQUIRE_ROOT") == "1":
            pytest.fail(f"WIPE_AGENT_REQUIRE_ROOT=1 but the browser tests cannot run: {reason}")
        pytest.skip(reason)
    with chromium() as driver:
        yield driver


def _forget(browser: WebDriver) -> None:
    browser.get("about:blank")  # nothing of the last test's page still loading or polling its (stopped) console
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})  # type: ignore[attr-defined]
    browser.execute_cdp_cmd("Network.clearBrowserCache", {})  # type: ignore[attr-defined]
    browser.get_log("browser")  # type: ignore[no-untyped-call]  # an earlier test's messages are not this one's
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})  # type: ignore[attr-defined]


@pytest.fixture
def driver(browser: WebDriver) -> Iterator[WebDriver]:
    """The session's browser with no cookies or cache left from an earlier test (every site's: cookies are per host,
    not per port, and each test's console has a port of its own), back at the kiosk's size afterwards (a
    viewport() a test set is undone too)."""
    _forget(browser)
    yield browser
    _forget(browser)
    browser.set_window_size(1366, 768)


@pytest.fixture
def downloads(driver: WebDriver, tmp_path: Path) -> Iterator[Path]:
    """A folder of this test's own that the browser saves downloads into without asking (see downloaded())."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",  # type: ignore[attr-defined]
                           {"behavior": "allow", "downloadPath": str(folder)})
    yield folder
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "default"})  # type: ignore[attr-defined]


def downloaded(folder: Path, name_ending: str) -> Path:
    """The file whose name ends with ``name_ending`` once the browser has finished saving it into ``folder`` (Chrome
    writes a .crdownload and renames it when done); an AssertionError naming what is there after WAIT seconds."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        done = sorted(path for path in folder.iterdir() if path.name.endswith(name_ending))
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {name_ending} downloaded into {folder}: {sorted(p.name for p in folder.iterdir())}")


@pytest.fixture
def console_server() -> Iterator[Callable[..., ConsoleServer]]:
    """Serve any aiohttp application on 127.0.0.1:<free port> in a background thread (``tls``: an SSL context,
    for HTTPS); stopped after the test."""
    started: list[ConsoleServer] = []

    def serve(app: web.Application, tls: ssl.SSLContext | None = None) -> ConsoleServer:
        server = ConsoleServer(app, tls=tls).start()
        started.append(server)
        return server

    yield serve
    for server in reversed(started):
        server.stop()


def sign_in(driver: WebDriver, base: str, name: str, password: str, *, target: str | None = None) -> None:
    """Fill in and send the sign-in form the way a person does (keyboard into labelled fields, Enter): on the sign-in
    page, or (``target``) on the form a page signed out sends to, which goes back to it."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions

    driver.get(f"{base}{target or '/sign-in'}")
    field = wait(driver, expected_conditions.presence_of_element_located((By.ID, "name")))
    field.clear()
    field.send_keys(name)
    secret = driver.find_element(By.ID, "password")
    secret.clear()
    secret.send_keys(password + Keys.ENTER)
    wait(driver, expected_conditions.staleness_of(field))


def wait(driver: WebDriver, condition: Callable[[WebDriver], Any]) -> Any:
    """What ``condition`` returns once it is true (a WebDriverWait of WAIT seconds)."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(condition)


def viewport(driver: WebDriver, width: int, height: int) -> None:
    """The page's viewport exactly ``width`` x ``height`` CSS pixels (a phone below 700); the driver fixture undoes
    it after the test."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {  # type: ignore[attr-defined]
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 700})


def browser_errors(driver: WebDriver) -> list[str]:
    """The console's errors since the last call (a Content-Security-Policy refusal, a script error, a failed load);
    an expected refusal the page shows (a 401, 403 or 429 it was sent) is not one."""
    entries = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [str(entry["message"]) for entry in entries if entry.get("level") == "SEVERE"
            and not re.search(r"the server responded with a status of (401|403|429)", str(entry["message"]))]


def screenshot(driver: WebDriver, name: str, *, full: bool = False) -> Path:
    """Save what the browser shows as ``$WIPE_AGENT_ARTEFACTS/<name>.png`` (``full``: the whole page at the
    viewport's width, the viewport put back after); returns the path."""
    path = artefacts() / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', name)}.png"
    if not full:
        assert driver.save_screenshot(str(path)), f"the screenshot {path} was not written"
        return path
    width, height, page = driver.execute_script(
        "return [window.innerWidth, window.innerHeight, document.documentElement.scrollHeight]")
    viewport(driver, int(width), int(page))
    try:
        assert driver.save_screenshot(str(path)), f"the screenshot {path} was not written"
    finally:
        viewport(driver, int(width), int(height))
    return path
