"""The programme dashboard and compliance in a real headless Chromium (Debian's, through /usr/bin/chromedriver,
never downloaded): charts and their tables render, a sample is drawn from the form, a report and the exceptions
download (the files' bytes checked), and each view is saved as a 1366x768 screenshot in $WIPE_AGENT_ARTEFACTS.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from agent.fleet.database import FleetDatabase
from agent.web.accounts import Accounts, Role
from agent.web.fleet import fleet_console
from tests.browser.conftest import downloaded, screenshot, sign_in, wait
from tests.integration.web.fleet_web_kit import PASSWORD, RecordingAudit, populate
from tests.unit.certs.certs_test_kit import PkiWorld, build_world
from tests.web_kit import ConsoleServer

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> PkiWorld:
    return build_world(tmp_path_factory.mktemp("web-pki"))


@pytest.fixture
def served(postgres_dsn: str, world: PkiWorld, tmp_path: Path,
           console_server: Callable[[web.Application], ConsoleServer]) -> ConsoleServer:
    with FleetDatabase(postgres_dsn) as database:
        populate(database, world, tmp_path)
    accounts = Accounts(tmp_path / "web-accounts.json")
    accounts.add("casey", Role.COMPLIANCE, "Compliance officer", PASSWORD)
    return console_server(fleet_console(postgres_dsn, accounts=accounts, trust=None, secure=False,
                                        audit=RecordingAudit()).application())


def test_a_compliance_officer_reads_the_programme_draws_a_sample_and_downloads_the_report(
        driver: WebDriver, served: ConsoleServer, downloads: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions

    sign_in(driver, served.base, "casey", PASSWORD)
    wait(driver, expected_conditions.title_contains("Programme"))
    charts = driver.find_elements(By.CSS_SELECTOR, "svg.chart[role=img]")
    assert len(charts) == 7 and all(chart.size["width"] > 300 for chart in charts[:1])
    # every chart is followed by the table of its numbers (its text alternative)
    assert driver.execute_script(
        "return [...document.querySelectorAll('svg.chart')].map(chart => chart.nextElementSibling).map(next => "
        "next !== null && (next.matches('table.data') || next.matches('div.scroll') && next.firstElementChild "
        "&& next.firstElementChild.matches('table.data')))") == [True] * 7
    assert driver.find_element(By.CSS_SELECTOR, ".headline li.main").text.split() == [
        "29", "of", "60", "devices", "done", "(48.3", "%)"]
    # the charts are drawn from the stylesheet (no inline style): the burn-up's line has its colour
    line = driver.find_element(By.CSS_SELECTOR, "#chart-burn-up polyline")
    assert line.value_of_css_property("stroke") == "rgb(62, 207, 122)"
    # the keyboard reaches the page: the first Tab lands on the skip link, which becomes visible
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    focused = driver.switch_to.active_element
    assert focused.text == "Skip to content" and focused.location["x"] >= 0
    driver.find_element(By.TAG_NAME, "body").click()
    driver.execute_script("window.scrollTo(0, 0)")
    screenshot(driver, "fleet-dashboard")
    screenshot(driver, "fleet-dashboard-full", full=True)
    driver.find_element(By.CSS_SELECTOR, "a[href^='/report.pdf']").click()
    pdf = downloaded(downloads, ".pdf")
    assert pdf.read_bytes().startswith(b"%PDF-") and pdf.name.startswith("programme-report-")

    driver.find_element(By.LINK_TEXT, "Compliance").click()
    wait(driver, expected_conditions.title_contains("Compliance"))
    assert "No sample has been drawn yet." in driver.page_source
    percent = driver.find_element(By.ID, "percent")
    percent.clear()
    percent.send_keys("20")
    driver.find_element(By.ID, "seed").send_keys("2026-Q4 board")
    driver.find_element(By.XPATH, "//button[normalize-space()='Draw sample']").click()
    wait(driver, expected_conditions.url_contains("/compliance?draw=1"))
    summary = driver.find_element(By.CSS_SELECTOR, "section[aria-labelledby=h-sample] p").text
    assert "Draw 1" in summary and "7 pending" in summary and "population of 31 drives" in summary
    screenshot(driver, "fleet-compliance")
    screenshot(driver, "fleet-compliance-full", full=True)
    driver.find_element(By.LINK_TEXT, "All exceptions as CSV").click()
    exceptions = downloaded(downloads, "exceptions.csv")
    lines = exceptions.read_text().splitlines()
    assert lines[0] == "class,station,asset_tag,job_id,state,detail,since"
    assert any(line.startswith("interrupted,station-01,PF-000021,station-01-J000021,") for line in lines)

    search = driver.find_element(By.ID, "q")
    search.send_keys("sn00000000" + Keys.ENTER)
    wait(driver, expected_conditions.title_contains("Asset PF-000000"))
    assert "C-0001 (PDF)" in driver.page_source
    screenshot(driver, "fleet-asset", full=True)
    driver.find_element(By.PARTIAL_LINK_TEXT, "C-0001 (PDF)").click()
    certificate = downloaded(downloads, "C-0001.pdf")
    assert certificate.read_bytes().startswith(b"%PDF-")
