"""Telling the kernel that a whole disk's capacity changed, and reading the new size.

After a hidden area (HPA / DCO / AMAC) is restored the drive reports a larger maximum LBA, but the
block device keeps the size the kernel read when it probed the disk. ``BLKRRPART`` only re-reads
the partition table; for an ``sd`` disk (SATA through libata's SATL, SAS, USB-SAT) the size is
re-read by a SCSI rescan, ``echo 1 > /sys/class/block/<disk>/device/rescan``, which makes sd send
READ CAPACITY again and resize the disk synchronously. libata may answer from the sector count it
cached at probe time, so the caller must compare the size read back here with what the drive now
reports, and never assume the rescan worked.

A transport that models the whole path itself (the emulated drives, whose block device is a loop
device) provides ``rescan_kernel_capacity`` and is asked instead of sysfs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from agent.errors import DriveError, NotSupported
from agent.transport.block import BlockDevice

__all__ = ["KernelCapacityRescan", "rescan_capacity"]


@runtime_checkable
class KernelCapacityRescan(Protocol):
    """A transport that can make the kernel re-read its drive's capacity itself."""

    def rescan_kernel_capacity(self, device_path: str) -> None:
        """Have the kernel re-read the capacity of the block device at ``device_path``."""
        ...


def rescan_capacity(device: BlockDevice, transport: object | None, *, sysfs_root: str = "/sys") -> str:
    """Ask the kernel to re-read ``device``'s capacity, refresh ``device.size``; return how it was asked.

    Raises NotSupported when the device has no rescan (not a SCSI-attached disk), DriveError when
    the kernel refused the rescan.
    """
    if isinstance(transport, KernelCapacityRescan):
        transport.rescan_kernel_capacity(device.path)
        how = "the drive's transport rescanned its block device"
    else:
        name = os.path.basename(os.path.realpath(device.path))
        rescan = Path(sysfs_root) / "class" / "block" / name / "device" / "rescan"
        if not rescan.exists():
            raise NotSupported(f"{device.path}: no SCSI rescan in sysfs ({rescan}): the kernel cannot be told that "
                               "the disk's capacity changed")
        try:
            rescan.write_text("1")
        except OSError as exc:
            raise DriveError(f"{device.path}: SCSI rescan through {rescan} failed: {exc.strerror}") from exc
        how = f"SCSI rescan: wrote 1 to {rescan}"
    device.refresh_geometry()
    return how
