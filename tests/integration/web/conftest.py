"""The consoles under test, built by their real builders, with one account per role; the daemon fixture (a real
``wipe-agent run`` on loop bays) for the bay wall's tests; the partners' fleet (fleet_partner_kit) for the partner
and auditor views' tests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.fleet.database import FleetDatabase
from agent.web.accounts import Accounts
from agent.web.server import Console
from tests.integration.daemon.conftest import station  # noqa: F401  (a fixture: imported to be found here)
from tests.integration.web.fleet_partner_kit import partner_dsn, partner_world  # noqa: F401  (fixtures, likewise)
from tests.web_kit import ConsoleServer, make_accounts, serving, station_api, station_console_for


@pytest.fixture
def fleet(postgres_dsn: str) -> Iterator[FleetDatabase]:
    """This test's own fleet database, migrated and open."""
    with FleetDatabase(postgres_dsn) as database:
        yield database


@pytest.fixture(scope="session")
def accounts_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An accounts file with one account per role, hashed once for the session (scrypt is slow on purpose)."""
    path = tmp_path_factory.mktemp("web-accounts") / "web-accounts.json"
    make_accounts(path)
    return path


@pytest.fixture
def accounts_path(accounts_template: Path, tmp_path: Path) -> Path:
    """This test's own copy of the accounts file (a test may remove or change an account)."""
    path = tmp_path / "web-accounts.json"
    shutil.copy(accounts_template, path)
    path.chmod(0o600)
    return path


@pytest.fixture
def station_daemon(tmp_path: Path) -> Iterator[Any]:
    """The daemon's side of a station console on ``tmp_path``/api.sock (see tests/web_kit.station_api)."""
    with station_api(tmp_path) as fake:
        yield fake


@pytest.fixture(params=["station", "station-kiosk", "fleet"])
def console(request: pytest.FixtureRequest, tmp_path: Path, accounts_path: Path, station_daemon: Any) -> Console:
    """Each host's console as `wipe-agent web serve` builds it (the fleet's on a real PostgreSQL)."""
    if request.param == "fleet":
        from agent.web.fleet import fleet_console

        dsn = request.getfixturevalue("postgres_dsn")
        return fleet_console(dsn, accounts=Accounts(accounts_path), trust=None, secure=False)
    return station_console_for(tmp_path, accounts_path, kiosk=request.param == "station-kiosk")


@pytest.fixture
def served(console: Console) -> Iterator[ConsoleServer]:
    with serving(console.application()) as server:
        yield server
