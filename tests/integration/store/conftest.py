"""Fixtures of the fleet tests: one PKI world per session, an open fleet database per test, its ingestor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent.fleet.database import FleetDatabase
from agent.fleet.ingest import Ingestor
from certs.verify import load_trust_bundle
from tests.unit.certs.certs_test_kit import PkiWorld, build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> PkiWorld:
    """The certs tests' world (CA; good, revoked, expired, other-CA and impostor stations), built once."""
    return build_world(tmp_path_factory.mktemp("fleet-pki"))


@pytest.fixture
def fleet(postgres_dsn: str) -> Iterator[FleetDatabase]:
    """This test's own fleet database, migrated and open."""
    with FleetDatabase(postgres_dsn) as database:
        yield database


@pytest.fixture
def ingestor(fleet: FleetDatabase, world: PkiWorld) -> Ingestor:
    """The ingest of that database, verifying against the world's trust bundle."""
    return Ingestor(fleet, load_trust_bundle(world.bundle))
