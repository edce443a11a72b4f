"""Live capability probe: send the read-only identify commands through a Transport and parse them.

:func:`probe_transport` is the testable core: it takes any :class:`agent.transport.Transport`
(the emulated-firmware drives in tests, SG_IO / the NVMe admin ioctl for real devices) and sends
only commands that change nothing on the drive:

* ATA (libata behind SAT): IDENTIFY DEVICE (ECh, PIO data-in) via ATA PASS-THROUGH (16);
* NVMe: Identify (06h) CNS 01h (controller) and CNS 00h for namespace 1;
* SCSI: standard INQUIRY, INQUIRY VPD B1h, READ CAPACITY (16) and REPORT SUPPORTED OPERATION
  CODES (all_commands) for the SANITIZE service actions.

:func:`probe_device` opens the real transport for a device node and probes it.
"""

from __future__ import annotations

from typing import Any

from agent.drive.device import drive_for
from agent.transport import detect_interface, open_transport
from agent.transport.commands import Transport


def probe_transport(transport: Transport, interface: str) -> dict[str, Any]:
    """Identify the drive behind ``transport`` and return its capability JSON.

    ``interface`` is ``"ata"``, ``"nvme"`` or ``"scsi"`` (as :func:`detect_interface` says).
    Raises :class:`IdentifyParseError` for malformed data and the transport's
    :class:`agent.errors.CommandError` family (e.g. PassThroughBlocked behind USB bridges).
    """
    return drive_for(transport, interface).inspect()


def probe_device(path: str) -> dict[str, Any]:
    """Open the real pass-through transport for the device node ``path`` and probe it.

    Only read-only identify commands are sent.  Errors are agent errors (DriveNotFound,
    DriveBusy, PassThroughBlocked, CommandError, IdentifyParseError).
    """
    interface = detect_interface(path)
    transport = open_transport(path)
    try:
        report = probe_transport(transport, interface.kind)
    finally:
        transport.close()
    return {"device": path, "usb": interface.usb, **report}
