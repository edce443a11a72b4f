"""A real station registry forwarding to a real fleet (PostgreSQL, and mutual TLS end to end): every job with its
journal, every audit entry and checkpoint, every certificate arrives exactly once, through outages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.fleet.client import FleetClient
from agent.fleet.database import FleetDatabase
from agent.fleet.errors import FleetUnavailable
from agent.fleet.ingest import Ingestor
from agent.fleet.outbox import Outbox
from agent.fleet.service import make_server
from agent.store.registry import Registry
from certs import pki
from certs.verify import load_trust_bundle
from tests.integration.store.fleet_kit import sanitised_job

pytestmark = pytest.mark.root

STATION = "station-07"


class LocalFleet:
    """The fleet in this process (the ingest code itself), failing on demand like a network would."""

    def __init__(self, database: FleetDatabase, bundle: Any, station: str) -> None:
        self.ingestor = Ingestor(database, bundle)
        self.database = database
        self.station = station
        self.fail_after: int | None = None
        self.pushes = 0

    def next_seq(self) -> int:
        row = self.database.db.execute("SELECT next_seq FROM fleet_stations WHERE station_id = %s",
                                       (self.station,)).fetchone()
        self.database.db.commit()
        return int(row[0]) if row else 1

    def push(self, batch: dict[str, Any]) -> dict[str, Any]:
        if self.fail_after is not None and self.pushes >= self.fail_after:
            raise FleetUnavailable("network unreachable (simulated outage)")
        self.pushes += 1
        return self.ingestor.ingest(self.station, batch).to_json()


@pytest.fixture
def station(tmp_path: Path, state_dir: Path) -> tuple[Registry, Path, Path]:
    ca = tmp_path / "ca"
    pki.init_ca("Example Police", ca)
    pki.issue_station(ca, STATION, state_dir)
    pki.issue_tls_client(ca, STATION, state_dir)
    bundle = pki.make_bundle(ca, tmp_path / "bundle.pem")
    registry = Registry(state_dir).open()
    yield registry, ca, bundle
    registry.close()


def run_jobs(registry: Registry, state_dir: Path, first: int, count: int) -> list[str]:
    signer = pki.load_station_signer(state_dir)
    jobs = []
    for number in range(first, first + count):
        job = sanitised_job(registry, signer, state_dir, f"FD{number:05d}")
        jobs.append(job)
    return jobs


def counts(database: FleetDatabase) -> dict[str, int]:
    found = {}
    for table in ("fleet_jobs", "fleet_audit", "fleet_checkpoints", "fleet_documents", "fleet_quarantine",
                  "fleet_records"):
        row = database.db.execute(f"SELECT count(*) FROM {table}").fetchone()
        found[table] = int(row[0]) if row else -1
    database.db.commit()
    return found


def test_a_station_forwards_everything_once_through_an_outage(postgres_dsn: str, state_dir: Path,
                                                              station: tuple[Registry, Path, Path]) -> None:
    registry, _, bundle_path = station
    run_jobs(registry, state_dir, 0, 6)
    registry.audit.checkpoint()
    outbox = Outbox(registry, STATION)
    with FleetDatabase(postgres_dsn) as database:
        fleet = LocalFleet(database, load_trust_bundle(bundle_path), STATION)
        fleet.fail_after = 1
        with pytest.raises(FleetUnavailable, match="simulated outage"):
            outbox.push(fleet, batch=10)
        partial = outbox.status()
        assert partial.acknowledged == 10 and partial.backlog > 0
        run_jobs(registry, state_dir, 6, 4)  # the station works on while the fleet is away
        registry.audit.checkpoint()
        fleet.fail_after = None
        result = outbox.push(fleet, batch=10)
        assert result.refused == 0
        status = outbox.status()
        assert status.backlog == 0 and status.refused == 0 and status.records == status.acknowledged
        found = counts(database)
        station_audit = registry.db.execute("SELECT count(*) FROM audit_log").fetchone()[0]
        station_checkpoints = registry.db.execute("SELECT count(*) FROM audit_checkpoints").fetchone()[0]
        assert found["fleet_jobs"] == 10 and found["fleet_documents"] == 10
        assert found["fleet_audit"] == station_audit and found["fleet_checkpoints"] == station_checkpoints >= 2
        assert found["fleet_quarantine"] == 0 and found["fleet_records"] == status.records
        states = database.db.execute("SELECT DISTINCT state FROM fleet_jobs").fetchall()
        database.db.commit()
        assert states == [("sanitised",)]
        # a second push sends nothing new
        assert outbox.push(fleet).sent == 0
        assert counts(database)["fleet_records"] == status.records


def test_a_fleet_that_claims_more_than_the_station_recorded_is_an_error(postgres_dsn: str, state_dir: Path,
                                                                        station: tuple[Registry, Path, Path]) -> None:
    registry, _, bundle_path = station
    run_jobs(registry, state_dir, 0, 1)
    with FleetDatabase(postgres_dsn) as database:
        fleet = LocalFleet(database, load_trust_bundle(bundle_path), STATION)
        database.db.execute("INSERT INTO fleet_stations (station_id, next_seq) VALUES (%s, 1000)", (STATION,))
        database.db.commit()
        with pytest.raises(FleetUnavailable, match="expects record 1000"):
            Outbox(registry, STATION).push(fleet)


def test_a_missing_certificate_file_reaches_the_fleet_as_an_exception(postgres_dsn: str, state_dir: Path,
                                                                     station: tuple[Registry, Path, Path]) -> None:
    registry, _, bundle_path = station
    [job] = run_jobs(registry, state_dir, 0, 1)
    (state_dir / "certificates" / f"{job}.pdf").unlink()
    outbox = Outbox(registry, STATION)
    with FleetDatabase(postgres_dsn) as database:
        result = outbox.push(LocalFleet(database, load_trust_bundle(bundle_path), STATION))
        assert result.refused == 1
        [refusal] = outbox.refusals()
        assert refusal["kind"] == "document" and refusal["code"] == "bad_document"
        assert "could not read the document" in refusal["reason"]


def test_end_to_end_over_mutual_tls(postgres_dsn: str, state_dir: Path, tmp_path: Path,
                                    station: tuple[Registry, Path, Path]) -> None:
    import threading

    registry, ca, bundle_path = station
    run_jobs(registry, state_dir, 0, 3)
    pki.issue_tls_server(ca, tmp_path / "fleet-tls", ["127.0.0.1"])
    server = make_server(postgres_dsn, tmp_path / "fleet-tls", load_trust_bundle(bundle_path), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = FleetClient(f"https://127.0.0.1:{server.server_address[1]}", state_dir / "pki")
        result = Outbox(registry, STATION).push(client)
        assert result.refused == 0 and result.accepted == result.sent > 0
    finally:
        server.shutdown()
        server.server_close()
    with FleetDatabase(postgres_dsn) as database:
        assert counts(database)["fleet_documents"] == 3
