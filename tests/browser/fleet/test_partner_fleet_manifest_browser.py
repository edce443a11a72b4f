"""A partner's fleet manifests in a real Chromium: listed beside station manifests with their hand-over, the page
reached by keyboard shows the verdict, partner, stations and every drive; an admin sees a voided one marked,
with no pack link. Screenshots go to $WIPE_AGENT_ARTEFACTS."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent.web.accounts import Accounts
from tests.browser.conftest import browser_errors, screenshot, sign_in, wait
from tests.integration.web import test_fleet_partner_fleet_manifests as kit
from tests.integration.web.fleet_partner_kit import PASSWORD, ListAudit

pytestmark = pytest.mark.root
world = kit.world  # the fixture: a fleet with four fleet manifests made by the real create


def test_a_partner_opens_its_fleet_manifest_by_keyboard(driver: Any, console_server: Callable[..., Any],
                                                        world: kit.World) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions

    from agent.web.fleet import fleet_console

    console = fleet_console(world.dsn, accounts=Accounts(world.accounts), trust=world.pki.bundle, secure=False,
                            audit=ListAudit())
    base = console_server(console.application()).base
    hillside, handed = world.created["hillside"]["manifest_id"], world.created["handed"]["manifest_id"]
    sign_in(driver, base, "hillside", PASSWORD)
    driver.get(base + "/partner")
    table = driver.find_element(By.CSS_SELECTOR, "table.manifests").text
    assert hillside in table and handed in table and world.created["other"]["manifest_id"] not in table
    assert "handed over on" in table and "to <i>J. Smith</i>" in table
    screenshot(driver, "partner-fleet-manifests")
    link = driver.find_element(By.LINK_TEXT, hillside)
    link.send_keys(Keys.ENTER)
    wait(driver, expected_conditions.title_contains(f"Fleet manifest {hillside}"))
    main = driver.find_element(By.TAG_NAME, "main").text
    assert "Signed fleet manifest verified by the fleet now" in main and "station-01, station-04" in main
    assert len(driver.find_elements(By.CSS_SELECTOR, "table.devices tbody tr")) == 3
    pack = driver.find_element(By.PARTIAL_LINK_TEXT, "Certificate pack")
    pack.send_keys("")  # focused from the keyboard: the focus ring must show
    assert driver.switch_to.active_element == pack
    screenshot(driver, "partner-fleet-manifest-page")
    assert browser_errors(driver) == []  # no CSP refusal, no failed load
    driver.delete_all_cookies()
    sign_in(driver, base, "admin", PASSWORD)
    driver.get(base + world.href("voided"))
    main = driver.find_element(By.TAG_NAME, "main").text
    assert "is voided: it was never handed over and is never packed" in main and "never: voided" in main
    assert not driver.find_elements(By.PARTIAL_LINK_TEXT, "Certificate pack")
    screenshot(driver, "admin-voided-fleet-manifest")
    assert browser_errors(driver) == []
