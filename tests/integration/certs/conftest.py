"""Fixtures for the certs integration tests (the kit lives in tests/unit/certs)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _load_kit() -> object:
    # These test folders are not packages; load the shared kit by path, once, under a unique name.
    if "certs_test_kit" not in sys.modules:
        location = Path(__file__).resolve().parents[2] / "unit" / "certs" / "certs_test_kit.py"
        spec = importlib.util.spec_from_file_location("certs_test_kit", location)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["certs_test_kit"] = module
        spec.loader.exec_module(module)
    return sys.modules["certs_test_kit"]


_kit = _load_kit()


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The session's PKI world (CA, stations, bundle); built once because key generation costs time."""
    return _kit.build_world(tmp_path_factory.mktemp("certs-pki"))  # type: ignore[attr-defined]
