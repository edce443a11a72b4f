"""The worker's removal-aware error mapping: an I/O error of a drive that then vanishes is a removal."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agent.daemon.worker import drive_vanishes


def _device(path: Path, rdev: int) -> Any:
    return SimpleNamespace(path=str(path), rdev=rdev)


def _present_block_rdev() -> int:
    entries = sorted(os.listdir("/sys/dev/block")) if os.path.isdir("/sys/dev/block") else []
    if not entries:
        pytest.skip("no block devices in /sys/dev/block")
    major, minor = entries[0].split(":")
    return os.makedev(int(major), int(minor))


def test_removal_signal_or_missing_node_means_removed(tmp_path: Path) -> None:
    node = tmp_path / "node"
    node.touch()
    rdev = _present_block_rdev()
    assert drive_vanishes(_device(node, rdev), lambda: True, grace=0)
    assert drive_vanishes(_device(tmp_path / "gone", rdev), lambda: False, grace=0)
    assert drive_vanishes(_device(node, os.makedev(4095, 1048575)), lambda: False, grace=0)  # no sysfs entry


def test_a_drive_that_stays_is_a_media_error(tmp_path: Path) -> None:
    node = tmp_path / "node"
    node.touch()
    assert not drive_vanishes(_device(node, _present_block_rdev()), lambda: False, grace=0.1)
