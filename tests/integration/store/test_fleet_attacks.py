"""Adversarial tests of the fleet's ingest (real PostgreSQL, real signatures): one hostile record is quarantined
with its reason and the station's stream goes on; nothing a station sends may abort its whole batch (a wedged
station: every later push failing the same way) or crash the service."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agent.fleet.database import FleetDatabase
from agent.fleet.ingest import Ingestor
from tests.integration.store.fleet_kit import StationFeed
from tests.unit.certs.certs_test_kit import PkiWorld

pytestmark = pytest.mark.root


def rows(fleet: FleetDatabase, query: str, *args: object) -> list[tuple[Any, ...]]:
    found = fleet.db.execute(query, args).fetchall()
    fleet.db.commit()
    return found


def _nul_in_key(feed: StationFeed) -> dict[str, Any]:
    record = feed.job(1)
    record["key"] = "station-01-J\x00"
    return record


def _nul_in_certificate_id(feed: StationFeed) -> dict[str, Any]:
    record = feed.job(1)
    record["body"]["certificate_id"] = "C-\x00"
    return record


def _nul_in_asset_tag(feed: StationFeed) -> dict[str, Any]:
    return feed.job(1, asset="LAPTOP-\x00")


def _nul_in_job_event_certificate(feed: StationFeed) -> dict[str, Any]:
    record = feed.job(1)
    record["body"]["events"] = [{"event": "certificate-issued", "data": {"certificate_id": "C\x00"}}]
    return record


def _nul_in_manifest_asset(feed: StationFeed) -> dict[str, Any]:
    return feed.audit("manifest", "M-0001", {"assets": ["LAPTOP-\x00"]})


def _nul_in_host_drive(feed: StationFeed) -> dict[str, Any]:
    return feed.audit("host-registered", "LAPTOP-0001", {"drive_serials": ["S\x00"]})


def _nul_in_decision_route(feed: StationFeed) -> dict[str, Any]:
    return feed.audit("eligibility-decision", "LAPTOP-0001", {"route": "reuse:\x00"})


def _nul_in_missing_note(feed: StationFeed) -> dict[str, Any]:
    return feed._add("document", "C-0001.pdf", {"missing": "gone\x00"})


def _nul_in_document_key(feed: StationFeed) -> dict[str, Any]:
    return feed._add("document", "C\x00.pdf", {"pdf": "JVBERi0="})


@pytest.mark.parametrize("hostile", [_nul_in_key, _nul_in_certificate_id, _nul_in_asset_tag,
                                     _nul_in_job_event_certificate, _nul_in_manifest_asset, _nul_in_host_drive,
                                     _nul_in_decision_route, _nul_in_missing_note, _nul_in_document_key],
                         ids=lambda f: f.__name__.strip("_"))
def test_a_nul_byte_anywhere_quarantines_one_record_and_never_wedges_the_stream(
        ingestor: Ingestor, fleet: FleetDatabase, world: PkiWorld, hostile: Any) -> None:
    feed = StationFeed("station-01", world.station)
    feed.job(0)
    hostile(feed)
    feed.job(2)
    result = ingestor.ingest("station-01", feed.batch())
    assert result.next_seq == 4
    assert [seq for seq, _, _ in result.refused] == [2]
    assert result.accepted == [1, 3]
    assert rows(fleet, "SELECT seq, code FROM fleet_quarantine") == [(2, result.refused[0][1])]
    assert "\x00" not in rows(fleet, "SELECT record FROM fleet_quarantine")[0][0]  # kept, escaped
    assert rows(fleet, "SELECT count(*) FROM fleet_jobs") == [(2,)]
    again = ingestor.ingest("station-01", copy.deepcopy(feed.batch()))  # the resend is acknowledged
    assert again.resent == [1, 2, 3] and again.refused == [] and again.next_seq == 4


@pytest.mark.parametrize("seq", [1 << 63, 1 << 80, -(1 << 63) - 1, -(1 << 80)])
def test_a_sequence_number_past_bigint_is_malformed_not_a_database_error(
        ingestor: Ingestor, fleet: FleetDatabase, world: PkiWorld, seq: int) -> None:
    feed = StationFeed("station-01", world.station)
    feed.job(0)
    hostile = copy.deepcopy(feed.job(1))
    hostile["seq"] = seq
    result = ingestor.ingest("station-01", feed.batch([feed.records[0], hostile]))
    assert result.accepted == [1] and result.next_seq == 2
    assert [(s, code) for s, code, _ in result.refused] == [(None, "malformed")]
    assert rows(fleet, "SELECT seq, code FROM fleet_quarantine") == [(None, "malformed")]
    assert ingestor.ingest("station-01", feed.batch(feed.records[1:])).accepted == [2]


def test_a_replayed_checkpoint_under_an_unsigned_huge_number_is_refused(
        ingestor: Ingestor, fleet: FleetDatabase, world: PkiWorld) -> None:
    """The checkpoint's number is not covered by its signature: a valid checkpoint renumbered past BIGINT."""
    feed = StationFeed("station-01", world.station)
    feed.audit()
    feed.checkpoint()
    feed.records[-1]["body"]["number"] = 1 << 64
    feed.job(1)
    result = ingestor.ingest("station-01", feed.batch())
    assert result.accepted == [1, 3] and result.next_seq == 4
    assert [(s, code) for s, code, _ in result.refused] == [(2, "malformed")]
    assert rows(fleet, "SELECT count(*) FROM fleet_checkpoints") == [(0,)]


@pytest.mark.parametrize("depth", [900, 960, 985, 995])
def test_deeply_nested_bodies_are_quarantined_not_a_recursion_error(
        ingestor: Ingestor, fleet: FleetDatabase, world: PkiWorld, depth: int) -> None:
    feed = StationFeed("station-01", world.station)
    record = feed.job(1)
    nested: Any = "bottom"
    for _ in range(depth):
        nested = [nested]
    record["body"]["decisions"] = nested
    feed.job(2)
    result = ingestor.ingest("station-01", feed.batch())
    assert result.next_seq == 3
    assert 2 in result.accepted
    assert len(result.accepted) + len(result.refused) == 2


def test_a_lone_surrogate_is_quarantined_and_its_seq_consumed(
        ingestor: Ingestor, fleet: FleetDatabase, world: PkiWorld) -> None:
    feed = StationFeed("station-01", world.station)
    feed.job(1)["body"]["profile"] = "nist-\ud800"
    feed.job(2)
    result = ingestor.ingest("station-01", feed.batch())
    assert result.accepted == [2] and [(s, c) for s, c, _ in result.refused] == [(1, "malformed")]
    assert result.next_seq == 3
    again = ingestor.ingest("station-01", copy.deepcopy(feed.batch()))
    assert again.resent == [1, 2] and again.refused == []
    other = copy.deepcopy(feed.records[0])
    other["body"]["profile"] = "nist-\udfff"
    assert [c for _, c, _ in ingestor.ingest("station-01", feed.batch([other])).refused] == ["duplicate_different"]
    assert rows(fleet, "SELECT count(*) FROM fleet_quarantine WHERE record LIKE '%%ud800%%'") == [(1,)]


def test_a_station_cannot_allocate_hold_or_destroy_an_asset_it_never_received(fleet: FleetDatabase,
                                                                              tmp_path: Any) -> None:
    from agent.fleet.assets import find_asset, import_register
    from tests.integration.store.test_fleet_assets import register_rows, write_register

    import_register(fleet, write_register(tmp_path / "register.csv", register_rows(4)))
    ingest = Ingestor(fleet, None)

    def state(tag: str) -> str:
        asset = find_asset(fleet, tag)
        assert asset is not None
        return str(asset.state)

    owner = StationFeed("station-01")
    owner.audit("intake", "PF-000001", {"asset_tag": "PF-000001"})
    owner.job(1, state="sanitised", asset="PF-000001")
    owner.audit("eligibility-decision", "PF-000001", {"asset": "PF-000001", "route": "reuse:schools"})
    assert ingest.ingest("station-01", owner.batch()).refused == []
    assert state("PF-000001") == "eligible"
    stranger = StationFeed("station-02")
    stranger.audit("manifest", "M-X", {"scheme": "charity", "assets": ["PF-000001", "PF-000002"]})
    stranger.audit("eligibility-decision", "PF-000001", {"asset": "PF-000001", "route": "hold"})
    stranger.audit("destruction", "PF-000003", {"asset": "PF-000003", "method": "shred"})
    assert ingest.ingest("station-02", stranger.batch()).refused == []  # its chain is its own: kept
    assert (state("PF-000001"), state("PF-000002"), state("PF-000003")) == ("eligible", "awaiting", "awaiting")
    # once it has received an asset itself, its word on that asset counts
    mark = len(stranger.records)
    stranger.audit("intake", "PF-000003", {"asset_tag": "PF-000003"})
    stranger.audit("destruction", "PF-000003", {"asset": "PF-000003", "method": "shred"})
    assert ingest.ingest("station-02", stranger.batch(stranger.records[mark:])).refused == []
    assert state("PF-000003") == "destroyed"


@pytest.mark.parametrize("depth", [10, 900, 985])
def test_a_batch_claiming_a_nested_station_id_is_foreign_not_a_recursion_error(
        ingestor: Ingestor, fleet: FleetDatabase, world: PkiWorld, depth: int) -> None:
    feed = StationFeed("station-01", world.station)
    feed.job(1)
    claimed: Any = "station-02"
    for _ in range(depth):
        claimed = [claimed]
    result = ingestor.ingest("station-01", {"station_id": claimed, "records": feed.records})
    assert [(s, c) for s, c, _ in result.refused] == [(1, "foreign_station")]
    assert rows(fleet, "SELECT count(*) FROM fleet_quarantine") == [(1,)]


def test_a_verifier_that_fails_on_a_document_refuses_that_document_only(
        ingestor: Ingestor, fleet: FleetDatabase, world: PkiWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the partners' verifier does with hostile bytes (fuzzing found no crash: belt and braces), the
    batch goes on."""
    import certs.verify

    def explode(*_: Any, **__: Any) -> Any:
        raise IndexError("a parser bug")

    monkeypatch.setattr(certs.verify, "verify_data", explode)
    feed = StationFeed("station-01", world.station)
    feed._add("document", "C-1.pdf", {"pdf": "JVBERi0xLjcK"})
    feed.job(2)
    result = ingestor.ingest("station-01", feed.batch())
    assert result.accepted == [2] and [(s, c) for s, c, _ in result.refused] == [(1, "bad_document")]
    assert "IndexError" in result.refused[0][2]


def test_a_second_checkpoint_under_a_number_the_fleet_holds_is_refused_not_silently_dropped(
        ingestor: Ingestor, fleet: FleetDatabase, world: PkiWorld) -> None:
    feed = StationFeed("station-01", world.station)
    feed.audit()
    feed.audit()
    feed.checkpoint()
    feed.audit()
    feed.checkpoint()
    feed.records[-1]["body"]["number"] = 1  # validly signed (the number is not), numbered as the first
    replay = copy.deepcopy(feed.records[2])
    replay["seq"] = feed.seq + 1  # the first checkpoint again, under a new outbox seq: the same, so harmless
    result = ingestor.ingest("station-01", feed.batch([*feed.records, replay]))
    assert [(s, c) for s, c, _ in result.refused] == [(5, "duplicate_different")]
    assert result.accepted == [1, 2, 3, 4, 6]
    assert rows(fleet, "SELECT number, seq FROM fleet_checkpoints") == [(1, 2)]
    # an audit entry replayed under a new outbox seq breaks no chain and is not applied twice
    again = copy.deepcopy(feed.records[0])
    again["seq"] = 7
    assert [c for _, c, _ in ingestor.ingest("station-01", feed.batch([again])).refused] == ["chain_broken"]
    assert rows(fleet, "SELECT count(*) FROM fleet_audit") == [(3,)]


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
def test_a_time_python_cannot_read_back_is_refused_at_ingest(ingestor: Ingestor, fleet: FleetDatabase,
                                                             world: PkiWorld, moment: str) -> None:
    """Stored, it made every later read of the row (the API's asset, reports) fail in the database driver."""
    feed = StationFeed("station-01", world.station)
    feed.job(1, asset="PF-000001")["body"]["finished_at"] = moment
    feed.job(2, asset="PF-000001")["body"]["created_at"] = moment
    feed.job(3, asset="PF-000001")
    result = ingestor.ingest("station-01", feed.batch())
    assert result.accepted == [3] and [c for _, c, _ in result.refused] == ["malformed", "malformed"]
    assert len(rows(fleet, "SELECT created_at, finished_at FROM fleet_jobs")) == 1



def test_a_job_from_a_clock_far_ahead_cannot_become_every_drives_latest(ingestor: Ingestor, fleet: FleetDatabase,
                                                                      world: PkiWorld) -> None:
    from datetime import UTC, datetime, timedelta

    feed = StationFeed("station-01", world.station)
    feed.job(1, state="sanitised", serial="SHARED-DRIVE")
    feed.records[-1]["body"]["created_at"] = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    result = ingestor.ingest("station-01", feed.batch())
    assert [(seq, code) for seq, code, _ in result.refused] == [(1, "malformed")]
    assert "ahead of the fleet's clock" in result.refused[0][2]


def test_a_renumbered_copy_of_a_checkpoint_is_not_a_second_anchor(ingestor: Ingestor, fleet: FleetDatabase,
                                                                 world: PkiWorld) -> None:
    feed = StationFeed("station-01", world.station)
    feed.audit()
    feed.checkpoint()
    assert ingestor.ingest("station-01", feed.batch()).refused == []
    renumbered = copy.deepcopy(feed.records[-1])
    renumbered["seq"] = 3
    renumbered["key"] = "checkpoint-7"
    renumbered["body"]["number"] = 7  # the number is not covered by the signature
    result = ingestor.ingest("station-01", feed.batch([renumbered]))
    assert [(seq, code) for seq, code, _ in result.refused] == [(3, "duplicate_different")]
    row = fleet.db.execute("SELECT count(*) FROM fleet_checkpoints").fetchone()
    fleet.db.commit()
    assert row == (1,)
