"""`fleet report` on a real PostgreSQL: every number traceable to the jobs ingested, CSV equal to JSON, a PDF that
poppler reads with its charts' tables, bad periods refused in one line."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.fleet.database import FleetDatabase
from agent.fleet.ingest import Ingestor
from agent.fleet.report import build, to_csv
from tests.conftest import run_cli
from tests.integration.store.fleet_kit import StationFeed

pytestmark = pytest.mark.root

DAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def populate(database: FleetDatabase) -> dict[str, Any]:
    expected: dict[str, Any] = {"per_day": {}, "per_station": {}}
    for station_index, station in enumerate(("station-01", "station-02")):
        feed = StationFeed(station)
        for number in range(40):
            state = "failed" if number % 10 == 3 else "sanitised"
            feed.audit("intake", f"PF-{station_index}{number:05d}", {"bay": "bay-1"})
            feed.records[-1]["body"]["at"] = (DAY + timedelta(days=number % 5)).isoformat()
            # re-chain the edited entry so the fleet accepts it (the kit hashes at creation)
            body = feed.records[-1]["body"]
            from certs.audit_chain import entry_hash

            body["hash"] = entry_hash(body["prev_hash"], body["seq"], body["at"], body["kind"], body["subject"],
                                      body["data"])
            feed.audit_head = body["hash"]
            feed.job(number, state=state, asset=f"PF-{station_index}{number:05d}")
            finished = DAY + timedelta(days=number % 5, hours=3 + station_index)
            job = feed.records[-1]["body"]
            job["finished_at"] = finished.isoformat()
            job["created_at"] = (finished - timedelta(hours=1)).isoformat()
            job["reason"] = "read-back found data" if state == "failed" else None
            job["drive"]["media"] = "ssd" if number % 2 else "hdd"
            day = finished.date().isoformat()
            expected["per_day"].setdefault(day, {}).setdefault(state, 0)
            expected["per_day"][day][state] += 1
            expected["per_station"].setdefault(station, {}).setdefault(state, 0)
            expected["per_station"][station][state] += 1
        result = Ingestor(database, None).ingest(station, feed.batch())
        assert not result.refused, result.refused[:2]
    return expected


def test_report_numbers_csv_and_pdf(postgres_dsn: str, tmp_path: Path) -> None:
    with FleetDatabase(postgres_dsn) as database:
        expected = populate(database)
        report = build(database.db, DAY.date(), (DAY + timedelta(days=7)).date())
        database.db.commit()
    assert report["jobs"] == {"sanitised": 72, "failed": 8}
    assert {day: states for day, states in report["per_day"].items() if states} == expected["per_day"]
    assert len(report["per_day"]) == 7  # every day of the period, empty ones too
    assert {item["key"]: item["states"] for item in report["per_station"]} == expected["per_station"]
    assert {item["key"]: item["total"] for item in report["by_media"]} == {"ssd": 40, "hdd": 40}
    assert report["failure_reasons"] == [{"reason": "read-back found data", "count": 8}]
    # receipt at DAY + k days 09:00, sanitised at DAY + k days 12:00 (station-01) or 13:00 (station-02)
    assert [(r["station"], r["median"]) for r in report["receipt_to_sanitised_hours"]] == [
        ("station-01", 3.0), ("station-02", 4.0)]
    # the CSV holds every number of the JSON
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    per_day = {(row["key"], row["measure"]): int(row["value"]) for row in rows if row["section"] == "per_day"}
    assert per_day == {(day, state): count for day, states in expected["per_day"].items()
                       for state, count in states.items()}
    # the PDF, through the real CLI, read back by poppler
    pdf = tmp_path / "report.pdf"
    env = {"WIPE_AGENT_FLEET_DATABASE": postgres_dsn}
    made = run_cli("fleet", "report", "--from", "2026-11-02", "--to", "2026-11-09", "--format", "pdf",
                   "--out", str(pdf), env=env)
    assert made.returncode == 0, made.stderr
    pdftotext = shutil.which("pdftotext")
    assert pdftotext is not None, "poppler-utils (scripts/setup.sh --test) provides pdftotext"
    text = subprocess.run([pdftotext, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Refresh programme report" in text and "2026-11-02 to 2026-11-09" in text
    assert "80 jobs finished: 72 sanitised, 8 failed" in " ".join(text.split())
    assert "station-01" in text and "read-back found data" in text and "Receipt to sanitisation" in text
    as_json = run_cli("fleet", "report", "--from", "2026-11-02", "--to", "2026-11-09", env=env, check=True)
    assert json.loads(as_json.stdout)["jobs"] == report["jobs"]


@pytest.mark.parametrize(("arguments", "expected"), [
    (["--from", "2026-11-09", "--to", "2026-11-02"], "must be after --from"),
    (["--from", "2025-01-01", "--to", "2026-11-02"], "at most 400 days"),
    (["--from", "2026-11-01", "--to", "2026-11-02", "--format", "pdf"], "--format pdf needs --out"),
    (["--from", "yesterday", "--to", "2026-11-02"], "Invalid value for '--from'"),
])
def test_bad_periods_are_refused_in_one_line(postgres_dsn: str, arguments: list[str], expected: str) -> None:
    with FleetDatabase(postgres_dsn):
        pass
    result = run_cli("fleet", "report", *arguments, env={"WIPE_AGENT_FLEET_DATABASE": postgres_dsn})
    assert result.returncode == 2 and expected in result.stderr and "Traceback" not in result.stderr


def test_receipt_to_hand_over_counts_assets_handed_over_in_the_period(postgres_dsn: str, tmp_path: Path) -> None:
    from agent.fleet.assets import import_register
    from tests.integration.store.test_fleet_assets import register_rows, write_register

    def at(feed: StationFeed, moment: datetime) -> StationFeed:
        feed.base = moment - timedelta(milliseconds=10 * (feed.audit_seq + 1))  # the kit's next entry's time
        return feed

    with FleetDatabase(postgres_dsn) as database:
        import_register(database, write_register(tmp_path / "register.csv", register_rows(4)))
        feed = StationFeed("station-01")
        for number in range(3):
            tag = f"PF-{number:06d}"
            at(feed, DAY).audit("intake", tag, {"asset_tag": tag, "bay": "bay-1"})
            feed.job(number, asset=tag)
            at(feed, DAY + timedelta(hours=1)).audit("eligibility-decision", tag, {"route": "reuse:schools"})
        at(feed, DAY + timedelta(hours=2)).audit("manifest", "M-1", {"assets": ["PF-000000", "PF-000001"]})
        at(feed, DAY + timedelta(hours=2)).audit("manifest", "M-2", {"assets": ["PF-000002"]})
        at(feed, DAY + timedelta(hours=30)).audit("manifest-handed-over", "M-1",
                                                   {"assets": ["PF-000000", "PF-000001"]})
        at(feed, DAY + timedelta(days=20)).audit("manifest-handed-over", "M-2", {"assets": ["PF-000002"]})
        result = Ingestor(database, None).ingest("station-01", feed.batch())
        assert not result.refused, result.refused[:2]
        report = build(database.db, DAY.date(), (DAY + timedelta(days=7)).date())
        database.db.commit()
    # M-2's hand-over falls after the period: only M-1's two assets, each 30 hours after receipt
    assert report["receipt_to_handover_hours"] == [{"station": "station-01", "assets": 2, "median": 30.0,
                                                    "p90": 30.0}]
    rows = [row for row in csv.DictReader(io.StringIO(to_csv(report))) if row["section"] == "receipt_to_handover_hours"]
    assert {(row["measure"], row["value"]) for row in rows} == {("median", "30.0"), ("p90", "30.0"), ("assets", "2")}
