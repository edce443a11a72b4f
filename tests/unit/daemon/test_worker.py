"""Removal versus media error: an EIO from a drive that then vanishes is a removal, not a fault."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from agent.errors import DriveRemoved, MediaError
from agent.transport.block import BlockDevice


def _device(path: Path, rdev: int, grace: float) -> BlockDevice:
    device = BlockDevice.__new__(BlockDevice)  # no open: only the error mapping is under test
    device.path = str(path)
    device.rdev = rdev
    device.removal_grace = grace
    return device


def _present_rdev() -> int:
    major, minor = sorted(os.listdir("/sys/dev/block"))[0].split(":")
    return os.makedev(int(major), int(minor))


def test_eio_of_a_vanished_drive_is_a_removal(tmp_path: Path) -> None:
    eio = OSError(errno.EIO, "Input/output error")
    node = tmp_path / "node"
    node.touch()
    assert isinstance(_device(tmp_path / "gone", _present_rdev(), 0)._io_error(eio, "write", 0), DriveRemoved)
    no_sysfs = os.makedev(4095, 1048575)
    assert isinstance(_device(node, no_sysfs, 0)._io_error(eio, "write", 0), DriveRemoved)
    assert isinstance(_device(node, _present_rdev(), 0)._io_error(OSError(errno.ENODEV, "x"), "read", 0),
                      DriveRemoved)


def test_eio_of_a_drive_that_stays_is_a_media_error(tmp_path: Path) -> None:
    node = tmp_path / "node"
    node.touch()
    error = _device(node, _present_rdev(), 0.2)._io_error(OSError(errno.EIO, "Input/output error"), "write", 4096)
    assert isinstance(error, MediaError) and error.offset == 4096


def test_an_error_that_is_not_the_medium_does_not_route_to_destruction(tmp_path: Path) -> None:
    from agent.errors import DriveError

    node = tmp_path / "node"
    node.touch()
    error = _device(node, _present_rdev(), 0)._io_error(OSError(errno.EINVAL, "Invalid argument"), "write", 0)
    assert type(error) is DriveError and "not a medium error" in error.message
    medium = _device(node, _present_rdev(), 0)._io_error(OSError(errno.ENODATA, "No data available"), "read", 512)
    assert isinstance(medium, MediaError)
