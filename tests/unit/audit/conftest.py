"""Fixtures for the audit tests: the certs tests' PKI world and a registry whose station holds its key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.store.registry import Registry
from tests.unit.certs.certs_test_kit import PkiWorld, build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> PkiWorld:
    """A CA with good, revoked and expired stations, another CA and an impostor (see certs_test_kit)."""
    return build_world(tmp_path_factory.mktemp("audit-pki"))


def station_registry(directory: Path, station_state: Path) -> Registry:
    """A registry in ``directory`` of the station whose key lies in ``station_state``/pki."""
    shutil.copytree(station_state / "pki", directory / "pki")
    return Registry(directory).open()


@pytest.fixture
def signed_registry(tmp_path: Path, world: PkiWorld) -> Registry:
    """The good station's registry (station-01), checkpointing every 5 entries."""
    registry = station_registry(tmp_path / "state", world.station_state)
    registry.audit.checkpoint_every = 5
    return registry
