"""The programme model on a real PostgreSQL: each asset's one state follows from every station's jobs and audit
facts by one rule — recomputed from what is stored, across stations, voided manifests and re-wipes included."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.fleet.assets import find_asset, import_register
from agent.fleet.database import FleetDatabase
from agent.fleet.ingest import Ingestor
from agent.fleet.programme import summary
from tests.integration.store.fleet_kit import StationFeed
from tests.integration.store.test_fleet_assets import register_rows, write_register

pytestmark = pytest.mark.root


@pytest.fixture
def fleet(postgres_dsn: str, tmp_path: Path) -> Any:
    with FleetDatabase(postgres_dsn) as database:
        import_register(database, write_register(tmp_path / "register.csv", register_rows(10)))
        yield database


def state(fleet: FleetDatabase, tag: str) -> tuple[str, str | None]:
    asset = find_asset(fleet, tag)
    assert asset is not None
    row = fleet.db.execute("SELECT scheme FROM fleet_assets WHERE asset_tag = %s", (tag,)).fetchone()
    fleet.db.commit()
    return str(asset.state), row[0] if row else None


def push(fleet: FleetDatabase, feed: StationFeed, start: int) -> None:
    result = Ingestor(fleet, None).ingest(feed.station_id, feed.batch(feed.records[start:]))
    assert result.refused == [], result.refused


def test_an_asset_goes_from_awaiting_to_allocated_and_back_when_its_manifest_is_voided(fleet: FleetDatabase) -> None:
    feed = StationFeed("station-01")
    assert state(fleet, "PF-000001") == ("awaiting", None)
    feed.audit("intake", "PF-000001", {"asset_tag": "PF-000001", "bay": "bay-1"})
    push(fleet, feed, 0)
    assert state(fleet, "PF-000001") == ("received", None)
    mark = len(feed.records)
    feed.job(1, state="running", asset="PF-000001")
    push(fleet, feed, mark)
    assert state(fleet, "PF-000001") == ("in_progress", None)
    mark = len(feed.records)
    feed.job(1, state="sanitised", asset="PF-000001")
    push(fleet, feed, mark)
    assert state(fleet, "PF-000001") == ("sanitised", None)
    mark = len(feed.records)
    feed.audit("eligibility-decision", "PF-000001", {"asset": "PF-000001", "route": "reuse:schools"})
    push(fleet, feed, mark)
    assert state(fleet, "PF-000001") == ("eligible", "schools")
    mark = len(feed.records)
    feed.audit("manifest", "M-2026-0001", {"scheme": "schools", "assets": ["PF-000001", "PF-000002"]})
    push(fleet, feed, mark)
    assert state(fleet, "PF-000001") == ("allocated", "schools")
    mark = len(feed.records)
    feed.audit("manifest-voided", "M-2026-0001", {"reason": "partner cancelled"})
    push(fleet, feed, mark)
    assert state(fleet, "PF-000001") == ("eligible", "schools")
    assert state(fleet, "PF-000002") == ("awaiting", None)  # listed in a voided manifest and nothing else


def test_failures_hold_an_asset_until_a_later_job_on_any_station_sanitises_its_drive(fleet: FleetDatabase) -> None:
    first, second = StationFeed("station-01"), StationFeed("station-02")
    first.job(1, state="failed", asset="PF-000003", serial="DRIVE-A")
    push(fleet, first, 0)
    assert state(fleet, "PF-000003")[0] == "held"
    second.job(1, state="sanitised", asset="PF-000003", serial="DRIVE-A")
    later = datetime.now(UTC) + timedelta(hours=1)  # later than the failed one, within the fleet's clock tolerance
    second.records[-1]["body"]["created_at"] = later.isoformat()
    push(fleet, second, 0)
    assert state(fleet, "PF-000003")[0] == "sanitised"
    row = fleet.db.execute("SELECT last_station FROM fleet_assets WHERE asset_tag = 'PF-000003'").fetchone()
    fleet.db.commit()
    assert row == ("station-02",)


def test_every_drive_of_an_asset_counts(fleet: FleetDatabase) -> None:
    feed = StationFeed("station-01")
    feed.job(1, state="sanitised", asset="PF-000004", serial="SSD")
    feed.job(2, state="running", asset="PF-000004", serial="HDD")
    push(fleet, feed, 0)
    assert state(fleet, "PF-000004")[0] == "in_progress"
    mark = len(feed.records)
    feed.job(2, state="sanitised", asset="PF-000004", serial="HDD")
    push(fleet, feed, mark)
    assert state(fleet, "PF-000004")[0] == "sanitised"
    mark = len(feed.records)
    feed.job(3, state="interrupted", asset="PF-000004", serial="HDD")  # a re-wipe of one drive, interrupted
    push(fleet, feed, mark)
    assert state(fleet, "PF-000004")[0] == "held"


def test_destruction_and_decisions_to_hold(fleet: FleetDatabase) -> None:
    feed = StationFeed("station-01")
    feed.job(1, state="failed", asset="PF-000005")
    feed.audit("eligibility-decision", "PF-000005", {"asset": "PF-000005", "route": "destroy"})
    feed.job(2, state="sanitised", asset="PF-000006")
    feed.audit("eligibility-decision", "PF-000006", {"asset": "PF-000006", "route": "hold"})
    push(fleet, feed, 0)
    assert state(fleet, "PF-000005")[0] == "held" and state(fleet, "PF-000006")[0] == "held"
    mark = len(feed.records)
    feed.audit("destruction", "PF-000005", {"asset": "PF-000005", "method": "shred"})
    push(fleet, feed, mark)
    assert state(fleet, "PF-000005")[0] == "destroyed"
    totals = summary(fleet.db)
    fleet.db.commit()
    assert totals["total"] == 10 and totals["states"]["destroyed"] == 1 and totals["states"]["held"] == 1
    assert totals["states"]["awaiting"] == 8 and totals["done"] == 1 and totals["percent_done"] == 10.0


def test_jobs_of_unregistered_assets_are_kept_and_change_no_asset(fleet: FleetDatabase) -> None:
    feed = StationFeed("station-01")
    feed.job(1, state="sanitised", asset="NOT-IN-REGISTER")
    push(fleet, feed, 0)
    assert find_asset(fleet, "NOT-IN-REGISTER") is None
    row = fleet.db.execute("SELECT count(*) FROM fleet_jobs WHERE asset_tag = 'NOT-IN-REGISTER'").fetchone()
    fleet.db.commit()
    assert row == (1,)
    assert summary(fleet.db)["states"] == {"awaiting": 10}


def test_a_registered_hosts_drives_count_for_it_whatever_tag_their_jobs_carry(fleet: FleetDatabase) -> None:
    feed = StationFeed("station-01")
    feed.audit("host-registered", "PF-000007", {"kind": "laptop", "drive_serials": ["SSD-7", "HDD-7"]})
    feed.job(1, state="sanitised", asset="DRIVE-TAG-1", serial="SSD-7")
    push(fleet, feed, 0)
    assert state(fleet, "PF-000007")[0] == "received"  # one of its two drives still has no job
    mark = len(feed.records)
    feed.job(2, state="sanitised", asset=None, serial="HDD-7")
    push(fleet, feed, mark)
    assert state(fleet, "PF-000007")[0] == "sanitised"
    other = StationFeed("station-02")  # the same serial on another station is another station's drive
    other.job(1, state="failed", serial="HDD-7")
    push(fleet, other, 0)
    assert state(fleet, "PF-000007")[0] == "sanitised"


def test_a_hand_over_counts_only_for_the_manifest_its_station_allocated_the_asset_in(fleet: FleetDatabase) -> None:
    feed = StationFeed("station-01")
    feed.audit("intake", "PF-000003", {"asset_tag": "PF-000003", "bay": "bay-1"})
    feed.job(3, state="sanitised", asset="PF-000003")
    feed.audit("eligibility-decision", "PF-000003", {"asset": "PF-000003", "route": "reuse:schools"})
    push(fleet, feed, 0)
    mark = len(feed.records)
    # a hand-over naming a manifest that never listed the asset (or another station's) changes nothing
    feed.audit("manifest-handed-over", "M-2026-0009", {"assets": ["PF-000003"], "received_by": "C. Patel"})
    push(fleet, feed, mark)
    assert state(fleet, "PF-000003") == ("eligible", "schools")
    other = StationFeed("station-02")
    other.audit("manifest", "M-2026-0002", {"scheme": "schools", "assets": ["PF-000003"]})
    other.audit("manifest-handed-over", "M-2026-0002", {"assets": ["PF-000003"], "received_by": "X"})
    push(fleet, other, 0)
    assert state(fleet, "PF-000003") == ("eligible", "schools")  # station-02 never received it
    mark = len(feed.records)
    feed.audit("manifest", "M-2026-0003", {"scheme": "schools", "assets": ["PF-000003"]})
    push(fleet, feed, mark)
    assert state(fleet, "PF-000003") == ("allocated", "schools")
    mark = len(feed.records)
    feed.audit("manifest-handed-over", "M-2026-0003", {"assets": ["PF-000003"], "received_by": "C. Patel",
                                                       "partner": "City Schools Trust"})
    push(fleet, feed, mark)
    assert state(fleet, "PF-000003") == ("handed_over", "schools")
    assert summary(fleet.db)["states"].get("handed_over") == 1


def test_a_void_after_the_hand_over_does_not_free_the_asset_and_a_hand_over_after_a_void_counts_for_nothing(
        fleet: FleetDatabase) -> None:
    """The devices left with the partner: a station that voids the manifest afterwards (its own code refuses to;
    a restored backup or a hostile station would not) must not make the asset eligible for another manifest."""
    feed = StationFeed("station-01")
    for number in (4, 5, 6):
        tag = f"PF-00000{number}"
        feed.audit("intake", tag, {"asset_tag": tag, "bay": "bay-1"})
        feed.job(number, state="sanitised", asset=tag)
        feed.audit("eligibility-decision", tag, {"asset": tag, "route": "reuse:schools"})
    feed.audit("manifest", "M-2026-0004", {"scheme": "schools", "assets": ["PF-000004"]})
    feed.audit("manifest-handed-over", "M-2026-0004", {"assets": ["PF-000004"], "received_by": "C. Patel"})
    push(fleet, feed, 0)
    assert state(fleet, "PF-000004") == ("handed_over", "schools")
    mark = len(feed.records)
    feed.audit("manifest-voided", "M-2026-0004", {"reason": "voided after the hand-over"})
    push(fleet, feed, mark)
    assert state(fleet, "PF-000004") == ("handed_over", "schools")
    # the other order: voided first, then a hand-over of the voided manifest: nothing was handed over
    mark = len(feed.records)
    feed.audit("manifest", "M-2026-0005", {"scheme": "schools", "assets": ["PF-000005"]})
    feed.audit("manifest-voided", "M-2026-0005", {"reason": "partner cancelled"})
    feed.audit("manifest-handed-over", "M-2026-0005", {"assets": ["PF-000005"], "received_by": "C. Patel"})
    push(fleet, feed, mark)
    assert state(fleet, "PF-000005") == ("eligible", "schools")
    # a hand-over entered before the manifest it names (out of order in the station's chain) hands over nothing
    mark = len(feed.records)
    feed.audit("manifest-handed-over", "M-2026-0006", {"assets": ["PF-000006"], "received_by": "C. Patel"})
    feed.audit("manifest", "M-2026-0006", {"scheme": "schools", "assets": ["PF-000006"]})
    push(fleet, feed, mark)
    assert state(fleet, "PF-000006") == ("allocated", "schools")
