"""rescan_capacity: the sd rescan through sysfs, or the transport's own rescan; the size is read again."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import NotSupported
from agent.transport.capacity import rescan_capacity


class Device:
    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.refreshed = 0

    def refresh_geometry(self) -> None:
        self.refreshed += 1


class RescanningTransport:
    def __init__(self) -> None:
        self.paths: list[str] = []

    def rescan_kernel_capacity(self, device_path: str) -> None:
        self.paths.append(device_path)


def test_sd_disk_is_rescanned_through_sysfs_and_the_size_read_again(tmp_path: Path) -> None:
    rescan = tmp_path / "sys" / "class" / "block" / "sdz" / "device" / "rescan"
    rescan.parent.mkdir(parents=True)
    rescan.write_text("")
    device = Device(tmp_path / "sdz")
    how = rescan_capacity(device, object(), sysfs_root=str(tmp_path / "sys"))  # type: ignore[arg-type]
    assert rescan.read_text() == "1" and device.refreshed == 1 and str(rescan) in how


def test_a_device_without_rescan_is_not_supported(tmp_path: Path) -> None:
    device = Device(tmp_path / "loop9")
    with pytest.raises(NotSupported, match="no SCSI rescan"):
        rescan_capacity(device, None, sysfs_root=str(tmp_path))  # type: ignore[arg-type]
    assert device.refreshed == 0


def test_a_transport_that_rescans_itself_is_asked_instead_of_sysfs(tmp_path: Path) -> None:
    device, transport = Device(tmp_path / "loop9"), RescanningTransport()
    rescan_capacity(device, transport, sysfs_root=str(tmp_path))  # type: ignore[arg-type]
    assert transport.paths == [device.path] and device.refreshed == 1
