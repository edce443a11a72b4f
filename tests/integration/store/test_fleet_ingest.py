"""The fleet trusts nothing it is sent (real PostgreSQL, real certificates and signatures): every record arrives
exactly once; forged, altered, duplicate-but-different, out-of-order, rewound and foreign-station data is refused
and quarantined with its reason, never lost and never applied."""

from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any

import pytest

from agent.fleet.database import FleetDatabase
from agent.fleet.errors import FleetInputError
from agent.fleet.ingest import Ingestor, IngestResult
from certs.verify import load_trust_bundle
from tests.integration.store.fleet_kit import StationFeed
from tests.unit.certs.certs_test_kit import PkiWorld, record_for

pytestmark = pytest.mark.root


def rows(fleet: FleetDatabase, query: str, *args: object) -> list[tuple[Any, ...]]:
    found = fleet.db.execute(query, args).fetchall()
    fleet.db.commit()
    return found


def codes(result: IngestResult) -> list[tuple[int | None, str]]:
    return [(seq, code) for seq, code, _ in result.refused]


def full_feed(world: PkiWorld, tmp_path: Path) -> StationFeed:
    feed = StationFeed("station-01", world.station)
    for number in range(3):
        feed.job(number, asset=f"LAPTOP-{number:04d}")
    for _ in range(5):
        feed.audit()
    feed.checkpoint()
    feed.document(world.issue(record_for(world.station, demo=False), directory=tmp_path))
    return feed


def test_a_station_feed_is_applied_once_and_a_resend_changes_nothing(ingestor: Ingestor, fleet: FleetDatabase,
                                                                    world: PkiWorld, tmp_path: Path) -> None:
    feed = full_feed(world, tmp_path)
    first = ingestor.ingest("station-01", feed.batch())
    assert first.refused == [] and len(first.accepted) == 10 and first.next_seq == 11
    again = ingestor.ingest("station-01", copy.deepcopy(feed.batch()))
    assert again.accepted == [] and len(again.resent) == 10 and again.refused == [] and again.next_seq == 11
    assert rows(fleet, "SELECT count(*) FROM fleet_jobs") == [(3,)]
    assert rows(fleet, "SELECT count(*), max(seq) FROM fleet_audit") == [(5, 5)]
    assert rows(fleet, "SELECT count(*) FROM fleet_checkpoints") == [(1,)]
    assert rows(fleet, "SELECT kind FROM fleet_documents") == [("certificate",)]
    assert rows(fleet, "SELECT count(*) FROM fleet_quarantine") == [(0,)]
    assert rows(fleet, "SELECT asset_tag, state FROM fleet_jobs ORDER BY job_id")[0] == ("LAPTOP-0000", "sanitised")


def test_a_record_resent_with_other_content_is_quarantined_and_the_first_stands(
        ingestor: Ingestor, fleet: FleetDatabase, world: PkiWorld) -> None:
    feed = StationFeed("station-01", world.station)
    feed.job(1)
    ingestor.ingest("station-01", feed.batch())
    altered = copy.deepcopy(feed.records[0])
    altered["body"]["state"] = "failed"
    result = ingestor.ingest("station-01", feed.batch([altered]))
    assert codes(result) == [(1, "duplicate_different")]
    assert rows(fleet, "SELECT state FROM fleet_jobs") == [("sanitised",)]
    assert rows(fleet, "SELECT seq, code FROM fleet_quarantine") == [(1, "duplicate_different")]
    kept = rows(fleet, "SELECT record FROM fleet_quarantine")[0][0]
    assert '"state":"failed"' in kept  # the refused record is kept as sent


def test_a_gap_is_out_of_order_not_applied_and_next_seq_says_where_to_resume(
        ingestor: Ingestor, fleet: FleetDatabase, world: PkiWorld) -> None:
    feed = StationFeed("station-01", world.station)
    for number in range(5):
        feed.job(number)
    ingestor.ingest("station-01", feed.batch(feed.records[:2]))
    result = ingestor.ingest("station-01", feed.batch(feed.records[3:]))
    assert codes(result) == [(4, "out_of_order"), (5, "out_of_order")] and result.next_seq == 3
    assert rows(fleet, "SELECT count(*) FROM fleet_jobs") == [(2,)]
    resumed = ingestor.ingest("station-01", feed.batch(feed.records[2:]))
    assert resumed.refused == [] and len(resumed.accepted) == 3 and resumed.next_seq == 6
    assert rows(fleet, "SELECT count(*) FROM fleet_jobs") == [(5,)]


def test_another_stations_id_is_refused_whole_and_quarantined(ingestor: Ingestor, fleet: FleetDatabase,
                                                             world: PkiWorld) -> None:
    victim = StationFeed("station-02")
    victim.job(1)
    victim.audit()
    result = ingestor.ingest("station-01", victim.batch())
    assert codes(result) == [(1, "foreign_station"), (2, "foreign_station")]
    assert rows(fleet, "SELECT count(*) FROM fleet_jobs") == [(0,)]
    assert rows(fleet, "SELECT count(*) FROM fleet_audit") == [(0,)]
    assert rows(fleet, "SELECT next_seq FROM fleet_stations WHERE station_id = 'station-01'") == [(1,)]
    assert rows(fleet, "SELECT count(*) FROM fleet_stations WHERE station_id = 'station-02'") == [(0,)]
    own = StationFeed("station-01")
    own._add("job", "X", {**victim.records[0]["body"], "job_id": "X", "station_id": "station-02"})
    inside = ingestor.ingest("station-01", own.batch())
    assert codes(inside) == [(1, "foreign_station")]


def test_a_rewound_or_altered_audit_chain_is_refused(ingestor: Ingestor, fleet: FleetDatabase,
                                                    world: PkiWorld) -> None:
    feed = StationFeed("station-01", world.station)
    for _ in range(3):
        feed.audit()
    ingestor.ingest("station-01", feed.batch())
    # rewound: the station's chain restarted from entry 2 with other content, under new outbox numbers
    rewound = StationFeed("station-01", world.station, seq=3)
    rewound.audit()
    rewound.audit(data={"n": "rewritten"})
    result = ingestor.ingest("station-01", rewound.batch())
    assert [code for _, code in codes(result)] == ["chain_broken", "chain_broken"]
    assert "does not follow entry 3" in result.refused[0][2]
    # altered: the next entry in order, but its content no longer matches its hash
    feed.audit()
    feed.records[-1]["seq"] = 6
    feed.records[-1]["body"]["subject"] = "LAPTOP-9999"
    altered = ingestor.ingest("station-01", feed.batch(feed.records[-1:]))
    assert codes(altered) == [(6, "chain_broken")] and "hash does not match" in altered.refused[0][2]
    # forked: entry 4 in order, its own hash right, but linked to a chain the fleet never saw
    fork = StationFeed("station-01", world.station, seq=6, audit_seq=3, audit_head="cd" * 32)
    fork.audit()
    forked = ingestor.ingest("station-01", fork.batch())
    assert codes(forked) == [(7, "chain_broken")] and "previous-hash link broken" in forked.refused[0][2]
    assert rows(fleet, "SELECT count(*), max(seq) FROM fleet_audit") == [(3, 3)]


@pytest.mark.parametrize("who", ["impostor_station", "other_ca_station", "head"])
def test_a_checkpoint_not_by_this_station_or_not_of_its_head_is_refused(
        ingestor: Ingestor, fleet: FleetDatabase, world: PkiWorld, who: str) -> None:
    feed = StationFeed("station-01", world.station)
    feed.audit()
    feed.audit()
    if who == "head":
        feed.checkpoint(head="ab" * 32)
    else:
        feed.checkpoint(getattr(world, who))
    result = ingestor.ingest("station-01", feed.batch())
    assert codes(result) == [(3, "bad_checkpoint")]
    assert rows(fleet, "SELECT count(*) FROM fleet_checkpoints") == [(0,)]
    good = StationFeed("station-01", world.station, seq=3, audit_seq=feed.audit_seq, audit_head=feed.audit_head)
    good.checkpoint()
    assert ingestor.ingest("station-01", good.batch()).refused == []


def test_an_altered_forged_or_foreign_document_is_refused(ingestor: Ingestor, fleet: FleetDatabase,
                                                         world: PkiWorld, tmp_path: Path) -> None:
    genuine = world.issue(record_for(world.station, demo=False), directory=tmp_path, name="genuine.pdf")
    altered = tmp_path / "altered.pdf"
    data = bytearray(genuine.read_bytes())
    data[len(data) // 3] ^= 0x01
    altered.write_bytes(bytes(data))
    forged = world.issue(record_for(world.impostor_station, demo=False), world.impostor_station, directory=tmp_path,
                         name="forged.pdf")
    feed = StationFeed("station-01", world.station)
    feed.document(altered)
    feed.document(forged)
    result = ingestor.ingest("station-01", feed.batch())
    assert [code for _, code in codes(result)] == ["bad_document", "bad_document"]
    # a genuine certificate of station-01, pushed by station-09: not that station's record
    other = StationFeed("station-09")
    other.document(genuine)
    assert codes(ingestor.ingest("station-09", other.batch())) == [(1, "foreign_station")]
    # a genuine demonstration certificate (the watermarked kind `wipe-agent demo` makes) is evidence of nothing
    demo = StationFeed("station-01", seq=2)
    demo.document(world.issue(record_for(world.station), directory=tmp_path, name="demo.pdf"))
    refused = ingestor.ingest("station-01", demo.batch())
    assert codes(refused) == [(3, "bad_document")] and "demonstration" in refused.refused[0][2]
    assert rows(fleet, "SELECT count(*) FROM fleet_documents") == [(0,)]
    assert rows(fleet, "SELECT count(*) FROM fleet_quarantine") == [(4,)]


def test_malformed_records_are_quarantined_and_malformed_batches_refused(ingestor: Ingestor, fleet: FleetDatabase,
                                                                        world: PkiWorld) -> None:
    feed = StationFeed("station-01")
    feed._add("job", "J1", {"job_id": "J1", "state": "sanitised", "drive": {}, "created_at": "yesterday"})
    feed._add("job", "J2", {"job_id": "J2", "state": "sanitised", "drive": {}, "created_at": "2026-12-01T09:00:00"})
    feed._add("job", "J3", {"job_id": "J3\x00", "state": "sanitised", "drive": {},
                            "created_at": "2026-12-01T09:00:00+00:00"})
    feed.records.append({"seq": 4, "kind": "wipe-everything", "key": "x", "body": {}})
    result = ingestor.ingest("station-01", feed.batch())
    assert [code for _, code in codes(result)] == ["malformed"] * 4
    assert rows(fleet, "SELECT count(*) FROM fleet_jobs") == [(0,)]
    for bad in ({"records": "none"}, [], {"station_id": "station-01", "records": [{}] * 5001}):
        with pytest.raises(FleetInputError):
            ingestor.ingest("station-01", bad)


def test_two_fleet_instances_receiving_one_batch_at_once_apply_it_once(postgres_dsn: str, world: PkiWorld,
                                                                      tmp_path: Path) -> None:
    feed = full_feed(world, tmp_path)
    bundle = load_trust_bundle(world.bundle)
    results: list[IngestResult] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def instance() -> None:
        try:
            with FleetDatabase(postgres_dsn) as own:
                barrier.wait()
                results.append(Ingestor(own, bundle).ingest("station-01", copy.deepcopy(feed.batch())))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=instance) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert sorted(len(result.accepted) for result in results) == [0, 10]
    assert sorted(len(result.resent) for result in results) == [0, 10]
    with FleetDatabase(postgres_dsn) as check:
        assert rows(check, "SELECT count(*) FROM fleet_records") == [(10,)]
        assert rows(check, "SELECT count(*) FROM fleet_audit") == [(5,)]
