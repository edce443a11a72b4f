"""A partner in a real Chromium: signs in, sees its own manifests only, downloads a certificate pack (its
contents checked), uploads a tampered certificate and sees it rejected and a genuine one accepted, and is
refused another partner's manifest. Screenshots of each view go to $WIPE_AGENT_ARTEFACTS."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from aiohttp import web

from tests.browser.conftest import downloaded, screenshot, sign_in, wait
from tests.integration.web.fleet_partner_kit import (
    PASSWORD,
    ListAudit,
    PartnerWorld,
    flipped,
    partner_console,
)
from tests.web_kit import ConsoleServer

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver


@pytest.fixture
def served(partner_dsn: str, partner_world: PartnerWorld,
           console_server: Callable[[web.Application], ConsoleServer]) -> tuple[str, ListAudit]:
    audit = ListAudit()
    app, _console = partner_console(partner_dsn, partner_world, audit)
    return console_server(app).base, audit


def test_a_partner_sees_its_manifests_downloads_its_pack_and_checks_certificates(
        driver: WebDriver, served: tuple[str, ListAudit], partner_world: PartnerWorld,
        downloads: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions

    base, audit = served
    sign_in(driver, base, "schools-partner", PASSWORD, target="/partner")
    assert driver.current_url == base + "/partner", driver.find_element(By.TAG_NAME, "main").text
    table = driver.find_element(By.CSS_SELECTOR, "table.manifests").text
    assert "MF-SCH-0001" in table and "MF-GLA-0001" not in table and "schools" in table
    nav = [link.text for link in driver.find_elements(By.CSS_SELECTOR, "header nav a")]
    assert nav == ["Manifests", "Verify"]
    screenshot(driver, "partner-manifests")

    # the manifest's page, reached by keyboard: the link takes focus and Enter opens it
    link = driver.find_element(By.LINK_TEXT, "MF-SCH-0001")
    link.send_keys(Keys.ENTER)
    wait(driver, expected_conditions.title_contains("Manifest MF-SCH-0001"))
    devices = driver.find_element(By.CSS_SELECTOR, "table.devices").text
    assert "SCH-LT-0001" in devices and '<script>alert("pwned")</script>' in devices  # shown as text
    assert driver.execute_script("return window.pwned === undefined && document.scripts.length === 0")
    screenshot(driver, "partner-manifest")

    driver.find_element(By.PARTIAL_LINK_TEXT, "Certificate pack").click()
    pack = downloaded(downloads, "manifest-MF-SCH-0001.zip")
    assert pack == downloads / "manifest-MF-SCH-0001.zip"
    with zipfile.ZipFile(pack) as archive:
        names = sorted(archive.namelist())
        top = "manifest-MF-SCH-0001/"
        assert names == sorted(top + name for name in (
            "manifest-MF-SCH-0001.pdf", "manifest-MF-SCH-0001.json", "manifest-MF-SCH-0001.csv", "README.txt",
            "trust-bundle.pem", "certificates/C-SCH-0002.pdf", "certificates/Windows_evil.pdf"))
        assert archive.read(top + "manifest-MF-SCH-0001.pdf") == partner_world.manifests["MF-SCH-0001"].read_bytes()
        assert archive.read(top + "certificates/C-SCH-0002.pdf") == \
            partner_world.certificates["C-SCH-0002"].read_bytes()

    # another partner's manifest, by its address: not found, as if it did not exist
    driver.get(base + "/partner/manifests/station-01/MF-GLA-0001")
    assert driver.find_element(By.TAG_NAME, "h1").text == "404"
    assert "MF-GLA" not in driver.find_element(By.TAG_NAME, "main").text.replace("MF-GLA-0001/", "")
    screenshot(driver, "partner-refused-other-manifest")
    driver.get(base + "/partner/manifests/station-01/MF-GLA-0001/pack")
    assert driver.find_element(By.TAG_NAME, "h1").text == "404"
    assert not (downloads / "manifest-MF-GLA-0001.zip").exists()

    # the upload box: a tampered certificate is rejected, the genuine one accepted
    tampered = tmp_path / "tampered-C-SCH-0001.pdf"
    tampered.write_bytes(flipped(partner_world.certificates["C-SCH-0001"].read_bytes()))
    for path, verdict in ((tampered, "invalid"), (partner_world.certificates["C-SCH-0001"], "valid")):
        driver.find_element(By.LINK_TEXT, "Verify").click()
        wait(driver, expected_conditions.title_contains("Verify a document"))
        assert driver.find_element(By.CSS_SELECTOR, "label[for='document']").text.startswith("Signed PDF")
        for _ in range(12):  # the file field is reached from the keyboard, and its focus is visible
            if driver.execute_script("return document.activeElement.id") == "document":
                break
            driver.switch_to.active_element.send_keys(Keys.TAB)
        assert driver.execute_script("return document.activeElement.id") == "document"
        assert driver.execute_script("return getComputedStyle(document.activeElement).outlineStyle") == "solid"
        driver.find_element(By.ID, "document").send_keys(str(path.resolve()))
        driver.find_element(By.CSS_SELECTOR, "form.upload button[type='submit']").click()
        shown = wait(driver, expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "[data-verdict]")))
        assert shown.get_attribute("data-verdict") == verdict, shown.text
        if verdict == "invalid":
            assert shown.text.startswith("INVALID: tampered-C-SCH-0001.pdf") and "[modified]" in shown.text
        else:
            assert shown.text.startswith("VALID: C-SCH-0001.pdf") and "C-SCH-0001" in shown.text
        screenshot(driver, f"partner-verify-{verdict}")
    uploads = [data["valid"] for kind, subject, data in audit.entries
               if kind == "web-verify-upload" and subject == "schools-partner"]
    assert uploads == [False, True]


def test_the_auditor_reads_the_chains(driver: WebDriver, served: tuple[str, ListAudit]) -> None:
    from selenium.webdriver.common.by import By

    base, _audit = served
    sign_in(driver, base, "auditor", PASSWORD, target="/audit")
    rows = driver.find_elements(By.CSS_SELECTOR, "table.stations tbody tr")
    assert [row.find_element(By.TAG_NAME, "td").text for row in rows] == ["station-01", "station-02"]
    assert "verified" in rows[0].text and "LATE" in rows[1].text
    screenshot(driver, "auditor-overview")
    driver.find_element(By.LINK_TEXT, "station-02").click()
    assert "previous-hash link broken" in driver.find_element(By.CSS_SELECTOR, "table.refusals").text
    screenshot(driver, "auditor-station")
