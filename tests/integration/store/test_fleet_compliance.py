"""Fleet-wide compliance on a real PostgreSQL: a reproducible sample stratified by station and method, every draw
recorded, results tracked as stations report them; and the exception lists."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.fleet.compliance import exceptions
from agent.fleet.database import FleetDatabase
from agent.fleet.errors import FleetInputError
from agent.fleet.ingest import Ingestor
from agent.fleet.sampling import draw, rank, sample_status
from tests.conftest import run_cli
from tests.integration.store.fleet_kit import StationFeed
from tests.integration.store.test_fleet_assets import register_rows, write_register

pytestmark = pytest.mark.root


def feeds() -> list[StationFeed]:
    made = []
    for index, station in enumerate(("station-01", "station-02", "station-03")):
        feed = StationFeed(station)
        for number in range(30 + 10 * index):
            feed.job(number, asset=f"PF-{index * 100 + number:06d}")
            feed.records[-1]["body"]["method"] = "nvme-sanitize" if number % 3 else "overwrite.zero"
        made.append(feed)
    return made


@pytest.fixture
def fleet(postgres_dsn: str, tmp_path: Path) -> Any:
    with FleetDatabase(postgres_dsn) as database:
        from agent.fleet.assets import import_register

        import_register(database, write_register(tmp_path / "register.csv", register_rows(400)))
        for feed in feeds():
            assert not Ingestor(database, None).ingest(feed.station_id, feed.batch()).refused
        yield database


def test_the_sample_is_stratified_reproducible_and_every_draw_recorded(fleet: FleetDatabase) -> None:
    with fleet.transaction() as db:
        first = draw(db, 20, "2026-q4")
    assert first["population"] == 30 + 40 + 50
    for stratum in first["strata"].values():
        assert stratum["drawn"] == math.ceil(0.2 * stratum["population"]) >= 1
    assert {(s["station"], s["method"]) for s in first["strata"].values()} == {
        (station, method) for station in ("station-01", "station-02", "station-03")
        for method in ("nvme-sanitize", "overwrite.zero")}
    assert first["drawn"] == sum(s["drawn"] for s in first["strata"].values())
    # the published rule reproduces the draw: rank each member with the recorded nonce, take the first per stratum
    for item in first["sample"]:
        assert item["rank_sha256"] == rank("2026-q4", first["nonce"], item["station_id"], item["job_id"])
    with fleet.transaction() as db:
        again = draw(db, 20, "2026-q4")
        other = draw(db, 20, "another seed")
    assert [i["job_id"] for i in again["sample"]] == [i["job_id"] for i in first["sample"]]
    assert again["nonce"] == first["nonce"] and again["earlier_draws"] == 1 and other["earlier_draws"] == 2
    assert other["nonce"] != first["nonce"]
    for bad_percent, bad_seed in ((0, "s"), (101, "s"), (float("nan"), "s"), (20, " "), (20, "a\x1bb")):
        with pytest.raises(FleetInputError), fleet.transaction() as db:
            draw(db, bad_percent, bad_seed)


def test_results_come_back_with_the_stations_snapshots(fleet: FleetDatabase) -> None:
    with fleet.transaction() as db:
        drawn = draw(db, 10, "results")
    status = sample_status(fleet.db)
    assert status["totals"] == {"passed": 0, "failed": 0, "pending": drawn["drawn"]}
    item = drawn["sample"][0]
    station = StationFeed(item["station_id"])
    row = fleet.db.execute("SELECT next_seq, body FROM fleet_stations s JOIN fleet_jobs j USING (station_id) "
                           "WHERE station_id = %s AND job_id = %s", (item["station_id"], item["job_id"])).fetchone()
    fleet.db.commit()
    station.seq = int(row[0]) - 1
    body = json.loads(row[1])
    checked = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    body["secondary_verifications"] = [{"at": checked, "passed": True, "mode": "full", "secondary": True}]
    station._add("job", item["job_id"], body)
    assert not Ingestor(fleet, None).ingest(station.station_id, station.batch()).refused
    status = sample_status(fleet.db, drawn["draw"])
    assert status["totals"]["passed"] == 1 and status["totals"]["pending"] == drawn["drawn"] - 1
    assert status["stations"][item["station_id"]]["passed"] == 1


def test_exceptions_name_each_class(fleet: FleetDatabase) -> None:
    feed = StationFeed("station-09")
    feed.job(1, state="interrupted", asset="PF-000390", serial="INT-1")
    feed.job(2, state="failed", asset="PF-000391", serial="FAIL-1")
    feed.audit()
    assert not Ingestor(fleet, None).ingest("station-09", feed.batch()).refused
    bad = StationFeed("station-09", seq=3, audit_seq=5, audit_head="ab" * 32)
    bad.audit()
    Ingestor(fleet, None).ingest("station-09", bad.batch())
    found = exceptions(fleet.db, today=datetime(2027, 6, 1, tzinfo=UTC), late_hours=0)
    assert [item["job_id"] for item in found["interrupted"]["items"]] == ["station-09-J000001"]
    assert {item["asset_tag"] for item in found["held"]["items"]} == {"PF-000390", "PF-000391"}
    # no certificate reached the fleet for any job: every sanitised and failed drive is listed
    assert found["certificate_missing"]["count"] == 120 + 1
    assert [(r["station_id"], r["code"], r["count"]) for r in found["chain"]["refused"]] == [
        ("station-09", "chain_broken", 1)]
    assert [item["station_id"] for item in found["chain"]["late_checkpoints"]] == ["station-09"]
    # due dates run 2027-01-15 … 2027-12-15; by 2027-06-01 every asset due January to May that is not done is overdue
    done = {f"PF-{index * 100 + number:06d}" for index in range(3) for number in range(30 + 10 * index)}
    due = {row[0] for row in register_rows(400) if row[6] < "2027-06-01"}
    assert {item["asset_tag"] for item in found["overdue"]["items"]} == due - done


def test_cli_sample_status_and_exceptions(fleet: FleetDatabase, postgres_dsn: str) -> None:
    env = {"WIPE_AGENT_FLEET_DATABASE": postgres_dsn}
    drawn = run_cli("fleet", "sample", "--percent", "20", "--seed", "cli", "--json", env=env, check=True)
    assert json.loads(drawn.stdout)["population"] == 120
    text = run_cli("fleet", "sample-status", env=env, check=True)
    assert "0 passed, 0 failed" in text.stdout
    found = json.loads(run_cli("fleet", "exceptions", "--json", env=env, check=True).stdout)
    assert found["certificate_missing"]["count"] == 120
    bad = run_cli("fleet", "sample", "--percent", "0", "--seed", "x", env=env)
    assert bad.returncode == 2 and "--percent must be above 0" in bad.stderr and "Traceback" not in bad.stderr


def test_drives_of_a_registered_host_that_left_are_not_sampled(fleet: FleetDatabase) -> None:
    feed = StationFeed("station-05")
    feed.audit("host-registered", "PF-000399", {"kind": "laptop", "drive_serials": ["GONE-1"]})
    feed.job(1, asset="DRIVE-LEVEL-TAG", serial="GONE-1")
    feed.audit("manifest", "M-9", {"scheme": "schools", "assets": ["PF-000399"]})
    assert not Ingestor(fleet, None).ingest("station-05", feed.batch()).refused
    with fleet.transaction() as db:
        drawn = draw(db, 100, "gone")
    assert drawn["population"] == 120  # the 120 of the fixture; the shipped laptop's drive is not among them
    assert all(item["station_id"] != "station-05" for item in drawn["sample"])
