"""Sign-in in a real browser, per role: each sees its own navigation and nothing else; a wrong password is
refused; the rate limit shows; sign-out ends it; the keyboard reaches everything with a visible focus."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web

from agent.web import sessions
from agent.web.accounts import Accounts, Role
from agent.web.fleet import fleet_console
from agent.web.serve import tls_context
from agent.web.server import Console
from tests.browser.conftest import WAIT, browser_errors, screenshot, sign_in
from tests.web_kit import PARTNER, PASSWORD, ConsoleServer, station_console_for

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver


def _nav(driver: WebDriver) -> list[str]:
    from selenium.webdriver.common.by import By

    return [link.text for link in driver.find_elements(By.CSS_SELECTOR, "header nav a")]


def _who(driver: WebDriver) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, "header .who span").text)


def _expected_nav(console: Console, role: Role) -> list[str]:
    return [page.nav for page in console.pages if page.nav and (not page.roles or role in page.roles)]


@pytest.mark.parametrize("role", list(Role), ids=[role.value for role in Role])
def test_each_role_signs_in_and_sees_its_navigation(role: Role, driver: WebDriver, postgres_dsn: str,
                                                    accounts_template: Path, tmp_path: Path, station_daemon: Any,
                                                    console_server: Callable[[web.Application], ConsoleServer]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    for console in (fleet_console(postgres_dsn, accounts=Accounts(accounts_template), trust=None, secure=False),
                    station_console_for(tmp_path, accounts_template)):
        server = console_server(console.application())
        sign_in(driver, server.base, role.value, PASSWORD)
        assert "Sign in" not in driver.title, driver.page_source[:500]
        who = _who(driver)
        assert who == (f"{role.value} ({role.value}, {PARTNER})" if role is Role.PARTNER
                       else f"{role.value} ({role.value})")
        assert _nav(driver) == _expected_nav(console, role), console.kind
        screenshot(driver, f"sign-in-{console.kind}-{role.value}")
        for label, path in console.navigation(None) + [(page.nav, page.path) for page in console.pages
                                                       if page.nav and role in page.roles]:
            driver.get(server.base + path)
            assert browser_errors(driver) == [], (console.kind, label)
        driver.find_element(By.CSS_SELECTOR, "form[action='/sign-out'] button").click()
        WebDriverWait(driver, WAIT).until(expected_conditions.url_matches(r"/sign-in$"))
        assert not driver.find_elements(By.CSS_SELECTOR, "form[action='/sign-out']")
        driver.get(server.base + "/")  # the station's wall is behind sign-in (no --kiosk), the programme too
        assert "/sign-in?next=/" in driver.current_url


def test_a_wrong_password_is_refused_and_the_limit_shows(driver: WebDriver, accounts_template: Path, tmp_path: Path,
                                                          station_daemon: Any,
                                                          console_server: Callable[[web.Application],
                                                                                   ConsoleServer]) -> None:
    from selenium.webdriver.common.by import By

    server = console_server(station_console_for(tmp_path, accounts_template).application())
    sign_in(driver, server.base, "operator", "not the password")
    problem = driver.find_element(By.CSS_SELECTOR, "[role=alert]")
    assert problem.text == "wrong name or password"
    screenshot(driver, "sign-in-wrong-password")
    for _ in range(sessions.FAILURES_ALLOWED - 1):
        sign_in(driver, server.base, "operator", "not the password")
    sign_in(driver, server.base, "operator", PASSWORD)
    assert driver.find_element(By.CSS_SELECTOR, "[role=alert]").text.startswith("too many failed sign-ins")
    assert browser_errors(driver) == []  # no style, script or form refused by the page's own policy
    assert not [cookie for cookie in driver.get_cookies() if cookie["name"] == "wa_session"]
    screenshot(driver, "sign-in-rate-limited")


def test_the_keyboard_reaches_the_form_with_a_visible_focus(driver: WebDriver, accounts_template: Path,
                                                             tmp_path: Path, station_daemon: Any,
                                                             console_server: Callable[[web.Application],
                                                                                      ConsoleServer]) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    server = console_server(station_console_for(tmp_path, accounts_template).application())
    driver.get(f"{server.base}/sign-in")
    for field in driver.find_elements(By.CSS_SELECTOR, "input:not([type=hidden])"):
        label = driver.find_elements(By.CSS_SELECTOR, f"label[for='{field.get_attribute('id')}']")
        assert label and label[0].text, f"input {field.get_attribute('name')} has no label"
    reached: list[str] = []
    for _ in range(8):  # round the page once (the browser's own chrome takes a turn as <body>)
        ActionChains(driver).send_keys(Keys.TAB).perform()
        active = driver.switch_to.active_element
        if active.tag_name == "body":
            continue
        reached.append(active.get_attribute("id") or active.text)
        assert active.value_of_css_property("outline-style") == "solid", f"no visible focus on {reached[-1]!r}"
        assert active.value_of_css_property("outline-width") == "3px"
    assert {"Skip to content", "Sign in", "name", "password"} <= set(reached), reached
    driver.find_element(By.ID, "name").send_keys("operator")
    driver.find_element(By.ID, "password").send_keys(PASSWORD + Keys.ENTER)
    WebDriverWait(driver, WAIT).until(expected_conditions.url_matches(r"/$"))
    assert _who(driver) == "operator (operator)"


def test_over_tls_the_browser_keeps_the_host_only_secure_session(driver: WebDriver, accounts_template: Path,
                                                                  tmp_path: Path, postgres_dsn: str,
                                                                  console_server: Callable[..., ConsoleServer]) -> None:
    from certs import pki

    pki.init_ca("Example Police", tmp_path / "ca")
    pki.issue_tls_server(tmp_path / "ca", tmp_path / "tls", ["127.0.0.1"])
    context = tls_context(tmp_path / "tls" / "tls-server.crt", tmp_path / "tls" / "tls-server.key")
    console = fleet_console(postgres_dsn, accounts=Accounts(accounts_template), trust=None, secure=True)
    server = console_server(console.application(), context)
    assert server.base.startswith("https://")
    sign_in(driver, server.base, "auditor", PASSWORD)
    assert _who(driver) == "auditor (auditor)" and _nav(driver) == _expected_nav(console, Role.AUDITOR)
    cookies = {cookie["name"]: cookie for cookie in driver.get_cookies()}
    session = cookies["__Host-wa_session"]
    assert session["secure"] and session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/"
    assert "wa_session" not in cookies and "__Host-wa_pre" not in cookies  # the form's token went with sign-in
    assert browser_errors(driver) == []
    screenshot(driver, "sign-in-fleet-tls")
