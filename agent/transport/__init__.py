"""The only code that opens devices for commands or calls ioctl: SG_IO (ATA PASS-THROUGH 16, SCSI),
NVMe admin/I-O pass-through, plus the emulated-firmware and replay transports used by tests."""

from agent.transport.commands import (
    AtaCommand,
    AtaProtocol,
    Command,
    CommandFailed,
    CommandTimeout,
    Completion,
    DataDirection,
    NvmeAdminCommand,
    NvmeIoCommand,
    NvmeStatus,
    PassThroughBlocked,
    ScsiCommand,
    Transport,
)
from agent.transport.device import DeviceInterface, detect_interface, open_transport

__all__ = [
    "AtaCommand",
    "AtaProtocol",
    "Command",
    "CommandFailed",
    "CommandTimeout",
    "Completion",
    "DataDirection",
    "DeviceInterface",
    "NvmeAdminCommand",
    "NvmeIoCommand",
    "NvmeStatus",
    "PassThroughBlocked",
    "ScsiCommand",
    "Transport",
    "detect_interface",
    "open_transport",
]
