"""The only code that opens devices for commands or calls ioctl.

* ``commands``   — frozen command/completion dataclasses, the ``Transport`` protocol, the errors
  (``CommandFailed``, ``CommandTimeout``, ``PassThroughBlocked``) and OSError mapping.
* ``sense``      — pure SCSI sense decoding/encoding (fixed, descriptor, progress, ATA status return).
* ``sat``        — ATA PASS-THROUGH (16) CDBs, SAT result interpretation, ``enable_descriptor_sense``.
* ``sgio``       — real SG_IO transport (``/dev/sdX``, ``/dev/sgN``).
* ``nvme_ioctl`` — real NVMe admin / I/O pass-through transport.
* ``device``     — ``open_transport(path)`` / ``detect_interface(path)`` from sysfs.
* (the emulated-firmware drives used by tests live outside the package, in ``wipe_agent_testing.emulated``)
* ``replay``     — ``RecordingTransport`` and ``ReplayTransport`` over JSON-lines exchanges.

``block.py`` / ``pipeline.py`` (aligned block I/O for overwrite and read-back) live here too.
"""

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
