"""The bay wall in a real Chromium against a real daemon on a loop bay: a wipe watched live from present to
sanitised and SAFE TO PULL without a reload, a never-wiped drive seated after it never shown sanitised, and a
daemon restart shown and recovered from in place."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.config import load_config
from agent.web.accounts import Accounts, Role
from agent.web.station import station_console
from tests.browser.conftest import screenshot, viewport
from tests.integration.daemon.conftest import Daemon
from tests.integration.daemon.test_bays import _evidence, _reseat
from tests.web_kit import ConsoleServer

pytestmark = pytest.mark.root
MiB = 1 << 20
PASSWORD = "correct horse battery"


def _tile(driver: Any, attribute: str, bay: str = "bay-1") -> str:
    return str(driver.execute_script(
        "var t = document.getElementById('tile-' + arguments[0]); return t ? t.getAttribute(arguments[1]) : null;",
        bay, attribute))


def _until(driver: Any, what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda _: check(), message=what)


def _progress(driver: Any) -> float:
    value = driver.execute_script("var p = document.querySelector('#tile-bay-1 progress'); return p ? p.value : -1;")
    return float(value)


def _same_page(driver: Any) -> bool:
    """The marker set after the first load is still there: nothing reloaded or navigated."""
    return bool(driver.execute_script("return window.__wallMarker === 'first-load' && "
                                      "performance.getEntriesByType('navigation').length === 1;"))


def test_a_wipe_is_watched_live_to_safe_to_pull_and_the_next_drive_is_not_shown_sanitised(
        station: Callable[..., Daemon], driver: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    browser = driver
    viewport(browser, 1366, 768)  # the kiosk's screen to the pixel: the wall must fit it without scrolling

    daemon = station([1024 * MiB], profile="nist-clear-overwrite-full", auto_start=False)
    daemon.config.write_text(daemon.config.read_text() + '[web]\nconsole_user = "root"\n')
    daemon.start()
    accounts = Accounts(tmp_path / "accounts.json")
    accounts.add("asmith", Role.OPERATOR, "Senior operator", PASSWORD)
    server = ConsoleServer(station_console(load_config(daemon.config), accounts=accounts, kiosk=True,
                                          secure=False).application()).start()
    try:
        browser.get(server.base + "/sign-in")
        browser.find_element(By.ID, "name").send_keys("asmith")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "form.sign-in button").click()
        _until(browser, "the wall after sign-in", lambda: _tile(browser, "data-state") == "empty")
        browser.execute_script("window.__wallMarker = 'first-load';")

        backing = daemon.backings[0]
        backing.attach()
        _until(browser, "drive present", lambda: _tile(browser, "data-state") == "present", 20)
        tile = browser.find_element(By.ID, "tile-bay-1")
        assert "Not sanitised" in tile.find_element(By.CLASS_NAME, "state-label").text
        assert tile.get_attribute("data-pull") == "safe"
        browser.find_element(By.CSS_SELECTOR, "#tile-bay-1 button.start").click()
        _until(browser, "running", lambda: _tile(browser, "data-state") == "running", 20)
        assert "DO NOT PULL" in browser.find_element(By.ID, "tile-bay-1").text
        screenshot(browser, "bay-wall-running-1366x768")
        _until(browser, "progress shown", lambda: _progress(browser) >= 0, 20)
        first = _progress(browser)
        browser.execute_script("document.querySelector('#tile-bay-1 button.cancel').focus();")
        _until(browser, "progress moves", lambda: _progress(browser) > first or _tile(
            browser, "data-state") == "sanitised", 60)
        if _tile(browser, "data-state") == "running":  # the tile was redrawn: the keyboard stayed where it was
            assert browser.execute_script("return document.activeElement.getAttribute('data-focus')") == "bay-1:cancel"
        _until(browser, "sanitised", lambda: _tile(browser, "data-state") == "sanitised", 120)
        tile = browser.find_element(By.ID, "tile-bay-1")
        assert tile.get_attribute("data-pull") == "safe" and "SAFE TO PULL" in tile.text
        assert "Sanitised" in tile.find_element(By.CLASS_NAME, "state-label").text
        assert _same_page(browser), "the page reloaded"
        screenshot(browser, "bay-wall-sanitised-1366x768")
        assert browser.execute_script("return document.documentElement.scrollHeight") <= 768
        viewport(browser, 390, 844)
        screenshot(browser, "bay-wall-sanitised-390x844")
        viewport(browser, 1366, 768)

        diskseq = daemon.status()["bays"][0]["seating"]["diskseq"]
        backing.detach()
        _until(browser, "drive pulled", lambda: _tile(browser, "data-state") == "empty", 20)
        _reseat(backing, _evidence(1024 * MiB))
        _until(browser, "the next drive seated", lambda: _tile(browser, "data-state") == "present", 20)
        assert daemon.status()["bays"][0]["seating"]["diskseq"] != diskseq
        tile = browser.find_element(By.ID, "tile-bay-1")
        assert tile.find_element(By.CLASS_NAME, "state-label").text == "Not sanitised"
        assert "Sanitised" not in tile.text.replace("Not sanitised", "")
        assert _same_page(browser)
        screenshot(browser, "bay-wall-never-wiped-1366x768")

        daemon.stop()
        _until(browser, "reconnecting banner", lambda: "daemon restarting" in browser.find_element(
            By.ID, "banner").text, 10)
        assert _tile(browser, "data-state") == "unknown" and _tile(browser, "data-pull") == "unknown"
        assert "SAFE TO PULL" not in browser.find_element(By.ID, "tile-bay-1").text
        screenshot(browser, "bay-wall-daemon-restarting-1366x768")
        daemon.start()
        _until(browser, "recovered", lambda: _tile(browser, "data-state") == "present"
               and not browser.find_element(By.ID, "banner").is_displayed(), 30)
        assert _same_page(browser)

        server.stop()  # the web console restarts: EventSource reconnects to the new process by itself
        _until(browser, "stream lost", lambda: browser.find_element(By.ID, "wall").get_attribute("data-live")
               == "lost", 10)
        server = ConsoleServer(station_console(load_config(daemon.config), accounts=accounts, kiosk=True,
                                               secure=False).application(), port=server.port).start()
        _until(browser, "stream back", lambda: browser.find_element(By.ID, "wall").get_attribute("data-live")
               == "open" and not browser.find_element(By.ID, "banner").is_displayed(), 20)
        backing.detach()
        _until(browser, "live again", lambda: _tile(browser, "data-state") == "empty", 20)
        assert _same_page(browser)
    finally:
        server.stop()
