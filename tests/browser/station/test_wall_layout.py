"""The wall's layout in Chromium: 8, 12 and 24 bays on one 1366x768 screen (with an operator's actions), one
column on a phone; every tile's state and pull advice inside its tile and on screen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.web.accounts import Accounts, Role
from agent.web.station import STATES, station_console
from tests.browser.conftest import screenshot, viewport
from tests.integration.web.station_kit import FakeStation, bay, serve_fake, station_config
from tests.web_kit import ConsoleServer

PASSWORD = "correct horse battery"
CYCLE = [state for state in STATES if state != "unknown"]

# each tile's parts that must be whole and on screen: the bay, its state, its pull advice
_CLIPPED = """
var problems = [], oneScreen = arguments[0];
document.querySelectorAll('.tile').forEach(function (tile) {
  var box = tile.getBoundingClientRect();
  tile.querySelectorAll('.bay-name, .state, .pull, .actions button').forEach(function (part) {
    var r = part.getBoundingClientRect();
    var offScreen = oneScreen && r.bottom > window.innerHeight + 0.5;  // one screen: the kiosk
    if (r.bottom > box.bottom + 0.5 || r.right > box.right + 0.5 || offScreen
        || part.scrollWidth > part.clientWidth + 1) {
      problems.push(tile.id + ' ' + part.className);
    }
  });
});
return problems;
"""


@pytest.mark.parametrize("count", [8, 12, 24])
def test_every_bay_is_on_one_kiosk_screen_and_in_one_column_on_a_phone(
        driver: Any, count: int, tmp_path: Path, console_server: Callable[[web.Application], ConsoleServer]) -> None:
    from selenium.webdriver.common.by import By

    browser = driver
    viewport(browser, 1366, 768)  # the kiosk's screen to the pixel: the wall must fit it without scrolling

    fake = FakeStation([bay(f"bay-{index}", CYCLE[index % len(CYCLE)], progress=0.37,
                            reason="verification failed: 3 of 1000 samples not zero")
                        for index in range(1, count + 1)])
    api, socket_path = serve_fake(fake, tmp_path)
    accounts = Accounts(tmp_path / "accounts.json")
    accounts.add("asmith", Role.OPERATOR, "Senior operator", PASSWORD)
    server = console_server(station_console(station_config(socket_path, count), accounts=accounts, kiosk=True,
                                            secure=False).application())
    try:
        browser.get(server.base + "/sign-in")
        browser.find_element(By.ID, "name").send_keys("asmith")
        browser.find_element(By.ID, "password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "form.sign-in button").click()
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(browser, 10).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, ".tile"))
        assert len(browser.find_elements(By.CSS_SELECTOR, ".tile")) == count
        assert browser.find_elements(By.CSS_SELECTOR, ".actions button")  # the operator's actions are there
        screenshot(browser, f"bay-wall-{count}-operator-1366x768")
        height = browser.execute_script("return [document.documentElement.scrollHeight, window.innerHeight]")
        assert height[0] <= height[1], f"{count} bays scroll at 1366x768: {height}"
        assert browser.execute_script(_CLIPPED, True) == []
        assert ("kiosk", fake.audit[0][0]) == ("kiosk", "web-sign-in")
        viewport(browser, 390, 844)
        lefts = browser.execute_script("return Array.from(document.querySelectorAll('.tile'))"
                                       ".map(function (t) { return Math.round(t.getBoundingClientRect().left); })")
        assert len(set(lefts)) == 1  # one column
        assert browser.execute_script("return document.documentElement.scrollWidth") <= 390
        screenshot(browser, f"bay-wall-{count}-operator-390x844")
        assert browser.execute_script(_CLIPPED, False) == []  # a phone scrolls: nothing is cut off
    finally:
        api.close()
