"""Fixtures for the reuse tests: a PKI world, the registry in its state directory, the reuse store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.reuse.store import ReuseStore
from agent.store.registry import Registry
from tests.unit.reuse.kit import World, build_world


@pytest.fixture(autouse=True)
def _no_scheme_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only the shipped schemes (a station's /etc overrides must not leak into tests)."""
    monkeypatch.setenv("WIPE_AGENT_SCHEME_DIR", str(tmp_path / "no-overrides"))


@pytest.fixture
def world(tmp_path: Path) -> World:
    """CA, station key and trust bundle."""
    return build_world(tmp_path)


@pytest.fixture
def registry(world: World) -> Iterator[Registry]:
    """The registry in the station's state directory."""
    registry = Registry(world.state).open()
    yield registry
    registry.close()


@pytest.fixture
def store(registry: Registry) -> ReuseStore:
    """The reuse store on that registry."""
    return ReuseStore(registry)
