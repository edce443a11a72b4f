"""Fixtures every method test shares: an emulated drive's medium and a device over it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .methods_kit import FileDevice


@pytest.fixture
def data_path(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    """The medium: the test module's ``SIZE`` bytes of random data (so zeros read back mean something)."""
    path = tmp_path / "medium.img"
    path.write_bytes(os.urandom(request.module.SIZE))
    return path


@pytest.fixture
def device(data_path: Path) -> Iterator[FileDevice]:
    """The block device a method writes and verification reads, over ``data_path``."""
    handle = FileDevice(data_path)
    yield handle
    handle.close()
