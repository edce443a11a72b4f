"""Fixtures for the certs tests (tests/integration/certs uses the same world)."""

from __future__ import annotations

import pytest

from tests.unit.certs.certs_test_kit import PkiWorld, build_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> PkiWorld:
    """The session's PKI world (CA, stations, bundle); built once because key generation costs time."""
    return build_world(tmp_path_factory.mktemp("certs-pki"))
