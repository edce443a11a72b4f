"""Helpers for guest-side tests (they run inside the QEMU guest): locate QEMU drives in sysfs,
read udev properties, poll for hot-plug."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_PCI_ADDRESS = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


@dataclass(frozen=True)
class BlockDevice:
    """A block device found in the guest for one drive of the manifest."""

    name: str  # e.g. "nvme0n1", "sdb"
    sys_path: Path  # resolved /sys/devices/... path of the block device

    @property
    def node(self) -> Path:
        """Its /dev node."""
        return Path("/dev") / self.name

    @property
    def size_bytes(self) -> int:
        """Size as the kernel reports it (/sys/block/NAME/size is in 512-byte units)."""
        return int((Path("/sys/block") / self.name / "size").read_text()) * 512

    def pci_driver(self) -> str:
        """Driver of the PCI function the device hangs off (``nvme``, ``ahci``, ``virtio-pci``)."""
        for parent in self.sys_path.parents:
            if _PCI_ADDRESS.match(parent.name):
                return (parent / "driver").resolve().name
        return ""

    def attribute(self, relative: str) -> str:
        """A sysfs attribute below /sys/block/NAME, stripped (e.g. ``device/vendor``)."""
        return (Path("/sys/block") / self.name / relative).read_text().strip()


def udev_properties(node: Path | str) -> dict[str, str]:
    """``udevadm info --query=property`` of a device node, as a dict."""
    output = subprocess.run(
        ["udevadm", "info", "--query=property", f"--name={node}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def find_block_device(kind: str, serial: str) -> BlockDevice | None:
    """The whole-disk block device of a QEMU drive (``kind`` nvme/sata/scsi) with ``serial``."""
    for entry in sorted(Path("/sys/block").iterdir()):
        name = entry.name
        if kind == "nvme":
            if not name.startswith("nvme"):
                continue
            controller_serial = entry / "device" / "serial"  # device -> the nvmeX controller
            if controller_serial.exists():
                if controller_serial.read_text().strip() == serial:
                    return BlockDevice(name, entry.resolve())
            elif udev_properties(Path("/dev") / name).get("ID_SERIAL_SHORT") == serial:
                return BlockDevice(name, entry.resolve())  # multipath head: device -> subsystem
        elif name.startswith("sd"):
            if udev_properties(Path("/dev") / name).get("ID_SERIAL_SHORT") == serial:
                return BlockDevice(name, entry.resolve())
    return None


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll ``condition`` until it returns something truthy (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)
