"""The programme views' fleet (fleet_web_kit.populate: stations, jobs over the past weeks, hostile values) put in
through the real ingest, and the fleet console that reads it, for the dashboard's and compliance's tests.

``fleet`` and ``console`` here stand for the populated fleet and its signed-in clients, not the bare database and
the parametrised consoles of tests/integration/web/conftest.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.fleet.database import FleetDatabase
from tests.integration.web.fleet_web_kit import Console, populate
from tests.unit.certs.certs_test_kit import PkiWorld, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> PkiWorld:
    return build_world(tmp_path_factory.mktemp("web-pki"))


@pytest.fixture
def fleet(postgres_dsn: str, world: PkiWorld, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """This test's fleet database, populated: ``database`` and what populate() made."""
    with FleetDatabase(postgres_dsn) as database:
        made = populate(database, world, tmp_path)
        yield {"database": database, **made}


@pytest.fixture
def console(postgres_dsn: str, fleet: dict[str, Any], tmp_path: Path) -> Iterator[Console]:
    """The fleet console on the populated fleet, served on loopback, with a client per account."""
    served = Console(postgres_dsn, tmp_path)
    try:
        yield served
    finally:
        served.close()
