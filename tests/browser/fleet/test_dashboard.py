"""The programme dashboard and compliance in a real headless Chromium (Debian's, through /usr/bin/chromedriver,
never downloaded): charts and their tables render, a sample is drawn from the form, a report and the exceptions
download (the files' bytes checked), and each view is saved as a 1366x768 screenshot in $WIPE_AGENT_ARTEFACTS.

(The browser and the served console are fixtures of this file until the shared harness lands on main.)
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.fleet.database import FleetDatabase
from agent.web.accounts import Accounts, Role
from agent.web.fleet import fleet_console
from tests.integration.web.fleet_web_kit import PASSWORD, RecordingAudit, populate
from tests.unit.certs.certs_test_kit import PkiWorld, build_world

pytestmark = [pytest.mark.root, pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WAIT = 15.0  # a bound on how long a page may take to show what the test waits for, not a timing


def _artefacts() -> Path:
    folder = Path(os.environ.get("WIPE_AGENT_ARTEFACTS", "/tmp/wipe-agent-artefacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Served:
    """An aiohttp application on 127.0.0.1:<free port>, its event loop in a thread of its own."""

    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)

    async def _start(self) -> int:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return int(self.runner.addresses[0][1])

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> PkiWorld:
    return build_world(tmp_path_factory.mktemp("web-pki"))


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def driver(downloads: Path) -> Iterator[Any]:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            if os.environ.get("WIPE_AGENT_REQUIRE_ROOT") == "1":
                pytest.fail(f"{path} is missing (Debian package {package})")
            pytest.skip(f"{path} is missing (Debian package {package}; scripts/setup.sh --test installs it)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, should anything call it, never goes online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="wipe-agent-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-extensions", "--disable-dev-shm-usage", "--window-size=1366,768",
                     f"--user-data-dir={profile}"):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                              "download.prompt_for_download": False})
    browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    browser.set_page_load_timeout(30)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def served(postgres_dsn: str, world: PkiWorld, tmp_path: Path) -> Iterator[Served]:
    with FleetDatabase(postgres_dsn) as database:
        populate(database, world, tmp_path)
    accounts = Accounts(tmp_path / "web-accounts.json")
    accounts.add("casey", Role.COMPLIANCE, "Compliance officer", PASSWORD)
    app = fleet_console(postgres_dsn, accounts=accounts, trust=None, secure=False,
                        audit=RecordingAudit()).application()
    server = Served(app)
    try:
        yield server
    finally:
        server.stop()


def _wait(driver: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(condition)


def _screenshot(driver: Any, name: str, *, full: bool = False) -> Path:
    """The page as a 1366x768 viewport shows it (``full``: the whole page at that width) in the artefacts."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight")) if full else 768
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": 1366, "height": height, "deviceScaleFactor": 1, "mobile": False})
    path = _artefacts() / f"{name}.png"
    try:
        assert driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False})
    return path


def _downloaded(folder: Path, suffix: str) -> Path:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        done = [path for path in folder.iterdir() if path.name.endswith(suffix)]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} downloaded into {folder}: {sorted(p.name for p in folder.iterdir())}")


def test_a_compliance_officer_reads_the_programme_draws_a_sample_and_downloads_the_report(
        driver: Any, served: Served, downloads: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions

    driver.get(f"{served.base}/sign-in")
    name = driver.find_element(By.ID, "name")
    name.send_keys("casey")
    driver.find_element(By.ID, "password").send_keys(PASSWORD + Keys.ENTER)
    _wait(driver, expected_conditions.staleness_of(name))
    _wait(driver, expected_conditions.title_contains("Programme"))
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
    _screenshot(driver, "fleet-dashboard")
    _screenshot(driver, "fleet-dashboard-full", full=True)
    driver.find_element(By.CSS_SELECTOR, "a[href^='/report.pdf']").click()
    pdf = _downloaded(downloads, ".pdf")
    assert pdf.read_bytes().startswith(b"%PDF-") and pdf.name.startswith("programme-report-")

    driver.find_element(By.LINK_TEXT, "Compliance").click()
    _wait(driver, expected_conditions.title_contains("Compliance"))
    assert "No sample has been drawn yet." in driver.page_source
    percent = driver.find_element(By.ID, "percent")
    percent.clear()
    percent.send_keys("20")
    driver.find_element(By.ID, "seed").send_keys("2026-Q4 board")
    driver.find_element(By.XPATH, "//button[normalize-space()='Draw sample']").click()
    _wait(driver, expected_conditions.url_contains("/compliance?draw=1"))
    summary = driver.find_element(By.CSS_SELECTOR, "section[aria-labelledby=h-sample] p").text
    assert "Draw 1" in summary and "7 pending" in summary and "population of 31 drives" in summary
    _screenshot(driver, "fleet-compliance")
    _screenshot(driver, "fleet-compliance-full", full=True)
    driver.find_element(By.LINK_TEXT, "All exceptions as CSV").click()
    exceptions = _downloaded(downloads, "exceptions.csv")
    lines = exceptions.read_text().splitlines()
    assert lines[0] == "class,station,asset_tag,job_id,state,detail,since"
    assert any(line.startswith("interrupted,station-01,PF-000021,station-01-J000021,") for line in lines)

    search = driver.find_element(By.ID, "q")
    search.send_keys("sn00000000" + Keys.ENTER)
    _wait(driver, expected_conditions.title_contains("Asset PF-000000"))
    assert "C-0001 (PDF)" in driver.page_source
    _screenshot(driver, "fleet-asset", full=True)
    driver.find_element(By.PARTIAL_LINK_TEXT, "C-0001 (PDF)").click()
    certificate = _downloaded(downloads, "C-0001.pdf")
    assert certificate.read_bytes().startswith(b"%PDF-")
