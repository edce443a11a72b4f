"""A batch's documents are verified in worker processes before its transaction, with the same verdicts as the
in-process verifier: genuine, altered, forged and unreadable documents alike (real PostgreSQL, real signatures)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.fleet.database import FleetDatabase
from agent.fleet.ingest import Ingestor
from agent.fleet.verifypool import DocumentVerifier
from certs.verify import load_trust_bundle
from tests.integration.store.fleet_kit import StationFeed
from tests.unit.certs.certs_test_kit import PkiWorld, record_for

pytestmark = pytest.mark.root


def _mixed_feed(world: PkiWorld, tmp_path: Path) -> StationFeed:
    feed = StationFeed("station-01", world.station)
    for number in range(3):
        record = record_for(world.station, demo=False, certificate_id=f"0b7e9f1c-3a52-4d6e-9a0b-5c1d2e3f4a5{number}")
        feed.document(world.issue(record, directory=tmp_path, name=f"ok-{number}.pdf"))
    altered = bytearray((tmp_path / "ok-0.pdf").read_bytes())
    altered[len(altered) // 3] ^= 0x01
    (tmp_path / "altered.pdf").write_bytes(bytes(altered))
    feed.document(tmp_path / "altered.pdf")
    feed.document(world.issue(record_for(world.impostor_station, demo=False), world.impostor_station,
                              directory=tmp_path, name="forged.pdf"))
    feed._add("document", "junk.pdf", {"pdf": "JVBERi0xLjcK"})  # "%PDF-1.7\n" and nothing else
    feed.job(7)
    return feed


def _outcome(fleet: FleetDatabase, verifier: DocumentVerifier | None, feed: StationFeed, world: PkiWorld) -> tuple:
    result = Ingestor(fleet, load_trust_bundle(world.bundle), verifier=verifier).ingest("station-01", feed.batch())
    stored = fleet.db.execute("SELECT document_id, sha256 FROM fleet_documents ORDER BY 1").fetchall()
    fleet.db.commit()
    return result.accepted, [(seq, code) for seq, code, _ in result.refused], stored


def test_parallel_verification_reaches_the_in_process_verdicts(fleet: FleetDatabase, world: PkiWorld,
                                                               tmp_path: Path) -> None:
    feed = _mixed_feed(world, tmp_path)
    verifier = DocumentVerifier(load_trust_bundle(world.bundle), workers=2)
    try:
        parallel = _outcome(fleet, verifier, feed, world)
        assert verifier._pool is not None, "a batch of several documents must go to the worker processes"
        workers = {process.pid for process in verifier._pool._processes.values()}
        assert workers and os.getpid() not in workers
    finally:
        verifier.close()
    accepted, refused, stored = parallel
    assert accepted == [1, 2, 3, 7]
    assert refused == [(4, "bad_document"), (5, "bad_document"), (6, "bad_document")]
    assert len(stored) == 3
    # the same feed into a fresh database through the in-process verifier: the same verdicts, the same rows
    fleet.db.execute("TRUNCATE fleet_documents, fleet_records, fleet_quarantine, fleet_jobs, fleet_stations CASCADE")
    fleet.db.commit()
    assert _outcome(fleet, None, feed, world) == parallel


def test_a_document_is_applied_only_as_verified_by_its_own_bytes(fleet: FleetDatabase, world: PkiWorld,
                                                                 tmp_path: Path) -> None:
    """The pre-verified reports are keyed by the SHA-256 of the bytes: a verdict for one document never stands
    for another, even under the same key."""
    genuine = world.issue(record_for(world.station, demo=False), directory=tmp_path, name="C.pdf")
    altered = bytearray(genuine.read_bytes())
    altered[len(altered) // 2] ^= 0x01
    verifier = DocumentVerifier(load_trust_bundle(world.bundle), workers=1)
    reports = verifier.verify_many([("C.pdf", genuine.read_bytes()), ("C.pdf", bytes(altered))], None)
    verdicts = sorted(report.valid for report in reports.values() if not isinstance(report, str))
    assert len(reports) == 2 and verdicts.count(True) == 1
