"""A fleet manifest's hand-over on a real PostgreSQL: once per manifest, its assets handed_over in the programme
(the one rule, recomputed — also by a later ingest), never voided after, refused for a manifest not issued."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.fleet.database import FleetDatabase
from agent.fleet.errors import FleetInputError
from agent.fleet.manifests import handover, list_manifests, show, void
from agent.fleet.programme import recompute
from tests.conftest import run_cli
from tests.integration.store import test_fleet_manifest as base
from tests.integration.store.fleet_kit import StationFeed
from tests.integration.store.test_fleet_manifest import FleetWorld, make, push, state, tag

own, fleet, programme = base.own, base.fleet, base.programme  # the fixtures of the fleet manifest tests

pytestmark = pytest.mark.root


def test_a_hand_over_hands_the_assets_over_once_and_the_manifest_can_no_longer_be_voided(
        programme: FleetDatabase, own: FleetWorld, tmp_path: Path) -> None:
    created = make(programme, own, tmp_path / "out", assets=[tag(1), tag(4)])
    assert [state(programme, n) for n in (1, 4, 2)] == ["allocated", "allocated", "eligible"]
    shown = handover(programme, created["manifest_id"], "  J. Smith ", "DN-42")
    assert shown["handed_over"]["received_by"] == "J. Smith" and shown["handed_over"]["reference"] == "DN-42"
    assert [state(programme, n) for n in (1, 4, 2)] == ["handed_over", "handed_over", "eligible"]
    # the state is the rule applied to the facts: recomputed from nothing, it is the same
    with programme.transaction() as db:
        db.execute("UPDATE fleet_assets SET state = 'awaiting' WHERE upper(asset_tag) = ANY(%s)", ([tag(1)],))
        recompute(db, [tag(1)])
    assert state(programme, 1) == "handed_over"
    with pytest.raises(FleetInputError, match=r"handed over already, on .* to J\. Smith"):
        handover(programme, created["manifest_id"], "Someone Else")
    with pytest.raises(FleetInputError, match=r"was handed over on .* to J\. Smith: it can no longer be voided"):
        void(programme, created["manifest_id"], "partner cancelled")
    assert show(programme, created["manifest_id"])["status"] == "issued"
    assert state(programme, 4) == "handed_over"
    [listed] = list_manifests(programme)
    assert listed["handed_over_at"] == shown["handed_over"]["at"]
    count = programme.db.execute("SELECT count(*) FROM fleet_manifest_handovers").fetchone()
    programme.db.commit()
    assert count == (1,)


def test_a_later_ingest_keeps_the_assets_handed_over(programme: FleetDatabase, own: FleetWorld,
                                                     tmp_path: Path) -> None:
    created = make(programme, own, tmp_path / "out", assets=[tag(2)])
    handover(programme, created["manifest_id"], "R. Receiver")
    feed = StationFeed("station-05")  # another station takes the asset in and decides to hold it: it was handed over
    feed.audit("intake", tag(2), {"asset": tag(2)})
    feed.audit("eligibility-decision", tag(2), {"asset": tag(2), "route": "hold"})
    push(programme, own.pki, feed)
    assert state(programme, 2) == "handed_over"


def test_only_an_issued_manifest_is_handed_over(programme: FleetDatabase, own: FleetWorld,
                                                tmp_path: Path) -> None:
    created = make(programme, own, tmp_path / "out", assets=[tag(3)])
    void(programme, created["manifest_id"], "partner cancelled")
    assert state(programme, 3) == "eligible"
    with pytest.raises(FleetInputError, match="is voided, not issued: it cannot be handed over"):
        handover(programme, created["manifest_id"], "J. Smith")
    assert state(programme, 3) == "eligible"
    with pytest.raises(FleetInputError, match="no fleet manifest 'FM-none'"):
        handover(programme, "FM-none", "J. Smith")
    for bad in ("", "   ", "a\nb", "x" * 129):
        with pytest.raises(FleetInputError, match="--received-by must be printable text"):
            handover(programme, created["manifest_id"], bad)


def test_a_void_and_a_hand_over_at_once_one_wins_whole(programme: FleetDatabase, own: FleetWorld,
                                                       postgres_dsn: str, tmp_path: Path) -> None:
    created = make(programme, own, tmp_path / "out", assets=[tag(5)])
    outcomes: dict[str, str] = {}
    start = threading.Barrier(2)

    def attempt(name: str) -> None:
        with FleetDatabase(postgres_dsn) as database:
            start.wait()
            try:
                if name == "void":
                    void(database, created["manifest_id"], "cancelled")
                else:
                    handover(database, created["manifest_id"], "J. Smith")
                outcomes[name] = "done"
            except FleetInputError as error:
                outcomes[name] = error.message

    threads = [threading.Thread(target=attempt, args=(name,)) for name in ("void", "handover")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes.values()).count("done") == 1, outcomes
    shown = show(programme, created["manifest_id"])
    if outcomes["handover"] == "done":
        assert shown["status"] == "issued" and state(programme, 5) == "handed_over"
    else:
        assert shown["status"] == "voided" and shown["handed_over"] is None and state(programme, 5) == "eligible"


def test_the_command_line(programme: FleetDatabase, own: FleetWorld, postgres_dsn: str,
                          tmp_path: Path) -> None:
    created = make(programme, own, tmp_path / "out", assets=[tag(1), tag(2)])
    handed = run_cli("fleet", "manifest", "handover", created["manifest_id"], "--received-by", "J. Smith",
                     "--reference", "DN-42", "--database", postgres_dsn, check=True)
    assert f"fleet manifest {created['manifest_id']} handed over to J. Smith: 2 asset(s)" in handed.stdout
    assert [state(programme, n) for n in (1, 2)] == ["handed_over"] * 2
    shown = run_cli("fleet", "manifest", "show", created["manifest_id"], "--database", postgres_dsn, check=True)
    assert "to J. Smith, reference DN-42" in shown.stdout
    again = run_cli("fleet", "manifest", "handover", created["manifest_id"], "--received-by", "X", "--database",
                    postgres_dsn)
    assert again.returncode == 2 and "handed over already" in again.stderr and "Traceback" not in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1, again.stderr
    voided = run_cli("fleet", "manifest", "void", created["manifest_id"], "--reason", "x", "--database", postgres_dsn)
    assert voided.returncode == 2 and "can no longer be voided" in voided.stderr
    missing = run_cli("fleet", "manifest", "handover", created["manifest_id"], "--database", postgres_dsn)
    assert missing.returncode == 2 and "--received-by" in missing.stderr


def test_migration_9_keeps_an_earlier_manifests_pdf_hash(programme: FleetDatabase, own: FleetWorld,
                                                          postgres_dsn: str, tmp_path: Path) -> None:
    import hashlib

    created = make(programme, own, tmp_path / "out", assets=[tag(1)])
    with programme.transaction() as db:  # the database as schema 8 left it
        db.execute("DROP TABLE fleet_manifest_handovers")
        db.execute("ALTER TABLE fleet_manifests DROP COLUMN pdf_sha256")
        db.execute("UPDATE fleet_meta SET value = '8' WHERE key = 'schema_version'")
    with FleetDatabase(postgres_dsn) as again:
        row = again.db.execute("SELECT pdf_sha256 FROM fleet_manifests WHERE document_id = %s",
                               (created["manifest_id"],)).fetchone()
        again.db.commit()
        assert row == (hashlib.sha256(Path(created["pdf"]).read_bytes()).hexdigest(),)
        handover(again, created["manifest_id"], "J. Smith")
    assert state(programme, 1) == "handed_over"
