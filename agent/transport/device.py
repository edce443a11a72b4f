"""Choosing the real transport for a device node from sysfs (callable from the QEMU guest harness)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agent.errors import DriveNotFound
from agent.transport.commands import Transport

__all__ = ["DeviceInterface", "detect_interface", "open_transport"]


@dataclass(frozen=True)
class DeviceInterface:
    """How a device is reached: ``kind`` is "nvme", "ata" (libata behind SAT) or "scsi";
    ``usb`` is True when a USB bridge sits in between (pass-through may be blocked)."""

    kind: str
    usb: bool
    sysfs_path: str


def detect_interface(device_path: str, *, sysfs_root: str = "/sys") -> DeviceInterface:
    """Classify ``device_path`` (e.g. /dev/sda, /dev/nvme0n1, /dev/nvme0, /dev/sg2) from sysfs."""
    name = os.path.basename(os.path.realpath(device_path))
    root = Path(sysfs_root)
    if name.startswith(("nvme", "ng")):
        candidates = [
            root / "class" / "block" / name,
            root / "class" / "nvme" / name,
            root / "class" / "nvme-generic" / name,
        ]
        kind = "nvme"
    elif name.startswith("sg"):
        candidates = [root / "class" / "scsi_generic" / name]
        kind = "scsi"
    else:
        candidates = [root / "class" / "block" / name]
        kind = "scsi"
    node = next((path for path in candidates if path.exists()), None)
    if node is None:
        raise DriveNotFound(f"{device_path}: not found in sysfs")
    resolved = str(node.resolve())
    if kind == "scsi":
        vendor_file = node / "device" / "vendor"
        # libata's SATL reports INQUIRY VENDOR IDENTIFICATION "ATA" (SAT-4 standard INQUIRY data)
        if vendor_file.exists() and vendor_file.read_text(errors="replace").strip() == "ATA":
            kind = "ata"
    return DeviceInterface(kind=kind, usb="/usb" in resolved, sysfs_path=resolved)


def open_transport(device_path: str, *, sysfs_root: str = "/sys") -> Transport:
    """Open the real transport for a device: NVMe ioctl for NVMe nodes, SG_IO otherwise."""
    interface = detect_interface(device_path, sysfs_root=sysfs_root)
    if interface.kind == "nvme":
        from agent.transport.nvme_ioctl import NvmeIoctlTransport

        return NvmeIoctlTransport(device_path)
    from agent.transport.sgio import SgIoTransport

    return SgIoTransport(device_path)
