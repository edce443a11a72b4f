"""The auditor view: each station's chain re-verified from the rows the fleet holds (a row changed behind the
fleet's back shows as BROKEN), its last checkpoint and whether it is late, what the fleet refused and why;
the station page pages its entries; nothing is escaped wrongly; there is no POST route."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from agent.fleet.database import FleetDatabase
from agent.web.fleet_auditor import PAGE, _ChainCache, chain_statuses
from certs.verify import load_trust_bundle
from tests.integration.web.fleet_partner_kit import (
    ListAudit,
    PartnerWorld,
    feed,
    fetch,
    partner_console,
)


def _pages(dsn: str, world: PartnerWorld, name: str, *paths: str) -> list[tuple[int, str]]:
    return [(status, body.decode()) for status, body, _ in fetch(dsn, world, name, *paths)]


def _row(page: str, station: str) -> str:
    found = re.search(rf'<tr>\s*<td class="nowrap"><a href="/audit/stations/{station}">{station}</a></td>(.*?)</tr>',
                      page, re.S)
    assert found is not None, page
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def test_the_overview_shows_each_chain_its_checkpoint_and_the_refusals(partner_dsn: str,
                                                                       partner_world: PartnerWorld) -> None:
    [(status, page)] = _pages(partner_dsn, partner_world, "auditor", "/audit")
    assert status == 200
    good = _row(page, "station-01")
    # 3 intakes + 2 manifests, the checkpoint, then 2 notes; pushed: 3 certificates, 2 manifests, 5 + 2 entries, 1
    assert good.startswith("verified 7 #1 at entry 5") and " 2 on time 13 / 0 none 0 5 " in good, good
    bad = _row(page, "station-02")
    assert bad.startswith("verified 1 none 1 LATE : no checkpoint signs its 1 entry 1 / 3"), bad
    assert "bad_checkpoint 1 , bad_document 1 , chain_broken 1" in bad  # tags dropped, words kept


def test_the_station_page_lists_refusals_with_reasons_and_its_entries_escaped(partner_dsn: str,
                                                                               partner_world: PartnerWorld
                                                                               ) -> None:
    (status, bad), (_, good) = _pages(partner_dsn, partner_world, "compliance", "/audit/stations/station-02",
                                      "/audit/stations/station-01")
    assert status == 200
    assert "revoked: station certificate" in bad and "(station-02) was revoked on" in bad  # the ingest's reason
    assert "previous-hash link broken" in bad and "bad_checkpoint" in bad and "signed head hash" in bad
    assert "3 refused push(es)" in bad
    assert "7 entries, newest first" in good and "page 1 of 1" in good
    assert "&lt;b&gt;unanchored&lt;/b&gt;" in good and "<b>unanchored" not in good
    assert re.search(r'<td class="num">7</td>.*?<td>no</td>', good, re.S)  # after the checkpoint: not anchored
    assert re.search(r'<td class="num">5</td>.*?<td>yes</td>', good, re.S)


def test_unknown_station_and_bad_page_are_one_line_answers(partner_dsn: str,
                                                           partner_world: PartnerWorld) -> None:
    (missing, missing_page), (bad, bad_page), (far, far_page) = _pages(
        partner_dsn, partner_world, "auditor", "/audit/stations/station-99", "/audit/stations/station-01?page=x",
        "/audit/stations/station-01?page=5")
    assert (missing, bad, far) == (404, 400, 200)
    assert "no such station" in missing_page and "page must be a whole number" in bad_page
    assert "page 5 of 1" in far_page and "Traceback" not in bad_page


def test_partners_and_operators_see_no_audit(partner_dsn: str, partner_world: PartnerWorld) -> None:
    for name in ("schools-partner", "operator"):
        answers = _pages(partner_dsn, partner_world, name, "/audit", "/audit/stations/station-01")
        assert [status for status, _ in answers] == [403, 403]


def test_the_auditor_view_has_no_post_route(partner_dsn: str, partner_world: PartnerWorld) -> None:
    _app, console = partner_console(partner_dsn, partner_world, ListAudit())
    audit_pages = [page for page in console.pages if page.path.startswith("/audit")]
    assert audit_pages and {page.method for page in audit_pages} == {"GET"}


def test_a_row_changed_behind_the_fleets_back_is_shown_broken(postgres_dsn: str,
                                                              partner_world: PartnerWorld) -> None:
    with FleetDatabase(postgres_dsn) as fleet:
        feed(fleet, partner_world)
        bundle = load_trust_bundle(partner_world.world.bundle)
        [before] = chain_statuses(fleet.db, bundle, _ChainCache(), station="station-01")
        assert before.chain_ok and before.anchored_to == 5 and before.unanchored == 2
        with fleet.transaction() as db:
            db.execute("UPDATE fleet_audit SET data = replace(data, 'SCH-LT-0002', 'SCH-LT-9999') "
                       "WHERE station_id = 'station-01' AND seq = 2")
        [after] = chain_statuses(fleet.db, bundle, _ChainCache(), station="station-01")
    assert not after.chain_ok
    assert after.problems == ["entry 2: hash does not match its content (entry modified)"]
    [(_, page)] = _pages(postgres_dsn, partner_world, "auditor", "/audit")
    assert _row(page, "station-01").startswith("BROKEN : entry 2: hash does not match its content")


def test_a_checkpoint_older_than_a_day_with_entries_after_it_is_late(partner_dsn: str,
                                                                    partner_world: PartnerWorld
                                                                    ) -> None:
    with FleetDatabase(partner_dsn) as fleet:
        bundle = load_trust_bundle(partner_world.world.bundle)
        cache = _ChainCache()
        now = datetime.now(UTC)
        [today] = chain_statuses(fleet.db, bundle, cache, station="station-01", now=now)
        [later] = chain_statuses(fleet.db, bundle, cache, station="station-01", now=now + timedelta(days=2))
    assert (today.late, later.late) == (False, True)


def test_entries_are_paged_newest_first(postgres_dsn: str, partner_world: PartnerWorld) -> None:
    from agent.fleet.ingest import Ingestor
    from tests.integration.store.fleet_kit import StationFeed

    busy = StationFeed("station-01", signer=partner_world.world.station)
    for number in range(PAGE + 30):
        busy.audit("note", f"entry {number + 1}", {"n": number + 1})
    busy.checkpoint()
    with FleetDatabase(postgres_dsn) as fleet:
        Ingestor(fleet, load_trust_bundle(partner_world.world.bundle)).ingest("station-01", busy.batch())
    (first, one), (second, two) = _pages(postgres_dsn, partner_world, "admin", "/audit/stations/station-01",
                                         "/audit/stations/station-01?page=2")
    assert first == second == 200
    seqs = [int(seq) for seq in re.findall(r'<tr><td class="num">(\d+)</td><td class="nowrap">', one)]
    assert seqs == list(range(PAGE + 30, 30, -1)) and 'rel="next"' in one and "page 1 of 2" in one
    seqs = [int(seq) for seq in re.findall(r'<tr><td class="num">(\d+)</td><td class="nowrap">', two)]
    assert seqs == list(range(30, 0, -1)) and 'rel="prev"' in two and 'rel="next"' not in two
