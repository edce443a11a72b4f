"""The browser harness: one headless Chromium per session (Debian's, driven through /usr/bin/chromedriver by
Selenium, never downloaded), consoles served on loopback from a background thread, sign-in and screenshots.

Without chromium or chromedriver the browser tests skip with the reason, except under
WIPE_AGENT_REQUIRE_ROOT=1 (CI, where ``scripts/setup.sh --test`` installs both): there that is a failure.
Screenshots go to ``$WIPE_AGENT_ARTEFACTS`` (default /tmp/wipe-agent-artefacts/).
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from tests.web_kit import ConsoleServer

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 10.0  # seconds a page may take to show what a test waits for (a bound, not a timing)


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
    """A headless Chromium for the session: a fresh profile, no network of its own, 1366 x 768 (the kiosk)."""
    reason = unavailable_reason()
    if reason is not None:
        if os.environ.get("WIPE_AGENT_REQUIRE_ROOT") == "1":
            pytest.fail(f"WIPE_AGENT_REQUIRE_ROOT=1 but the browser tests cannot run: {reason}")
        pytest.skip(reason)
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, should anything call it, never goes online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="wipe-agent-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-default-apps", "--disable-extensions", "--disable-dev-shm-usage",
                     "--window-size=1366,768", f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # for browser_errors()
    options.accept_insecure_certs = True  # a console over TLS with a test CA's certificate
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _forget(browser: WebDriver) -> None:
    browser.get("about:blank")  # nothing of the last test's page still loading or polling its (stopped) console
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})  # type: ignore[attr-defined]
    browser.execute_cdp_cmd("Network.clearBrowserCache", {})  # type: ignore[attr-defined]
    browser.get_log("browser")  # type: ignore[no-untyped-call]  # an earlier test's messages are not this one's


@pytest.fixture
def driver(browser: WebDriver) -> Iterator[WebDriver]:
    """The session's browser with no cookies or cache left from an earlier test (every site's: cookies are per host,
    not per port, and each test's console has a port of its own), back at the kiosk's size afterwards."""
    _forget(browser)
    yield browser
    _forget(browser)
    browser.set_window_size(1366, 768)


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


def sign_in(driver: WebDriver, base: str, name: str, password: str) -> None:
    """Fill in and send the sign-in form the way a person does (keyboard into labelled fields, Enter)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base}/sign-in")
    field = driver.find_element(By.ID, "name")
    field.clear()
    field.send_keys(name)
    secret = driver.find_element(By.ID, "password")
    secret.clear()
    secret.send_keys(password + Keys.ENTER)
    WebDriverWait(driver, WAIT).until(expected_conditions.staleness_of(field))


def browser_errors(driver: WebDriver) -> list[str]:
    """The console's errors since the last call (a Content-Security-Policy refusal, a script error, a failed load);
    an expected refusal the page shows (a 401, 403 or 429 it was sent) is not one."""
    entries = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [str(entry["message"]) for entry in entries if entry.get("level") == "SEVERE"
            and not re.search(r"the server responded with a status of (401|403|429)", str(entry["message"]))]


def screenshot(driver: WebDriver, name: str) -> Path:
    """Save what the browser shows as ``$WIPE_AGENT_ARTEFACTS/<name>.png``; returns the path."""
    path = artefacts() / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', name)}.png"
    assert driver.save_screenshot(str(path)), f"the screenshot {path} was not written"
    return path
