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

from agent.drive.ata import IDENTIFY_LENGTH as ATA_IDENTIFY_LENGTH
from agent.drive.ata import parse_ata_identify
from agent.drive.errors import IdentifyParseError
from agent.drive.nvme import IDENTIFY_LENGTH as NVME_IDENTIFY_LENGTH
from agent.drive.nvme import parse_nvme_id_ctrl, parse_nvme_id_ns
from agent.drive.opcodes import (
    ATA_IDENTIFY_DEVICE,
    NVME_CNS_CONTROLLER,
    NVME_CNS_NAMESPACE,
    NVME_IDENTIFY,
    SCSI_INQUIRY,
    SCSI_MAINTENANCE_IN,
    SCSI_READ_CAPACITY_16_ACTION,
    SCSI_REPORT_SUPPORTED_OPCODES_ACTION,
    SCSI_SERVICE_ACTION_IN_16,
)
from agent.drive.scsi import (
    parse_block_device_characteristics_vpd,
    parse_inquiry,
    parse_read_capacity16,
    parse_report_supported_opcodes_sanitize,
)
from agent.errors import CommandError
from agent.transport import (
    AtaCommand,
    AtaProtocol,
    NvmeAdminCommand,
    ScsiCommand,
    Transport,
    detect_interface,
    open_transport,
)

_INQUIRY_LENGTH = 96
_VPD_LENGTH = 64
_RSOC_LENGTH = 8192  # room for ~1000 descriptors; a truncated list is reported as an error


def _ata_identify(transport: Transport) -> dict[str, Any]:
    completion = transport.execute(
        AtaCommand(
            command=ATA_IDENTIFY_DEVICE,
            protocol=AtaProtocol.PIO_IN,
            count=1,
            data_in_length=ATA_IDENTIFY_LENGTH,
        )
    )
    return {"interface": "ata", **parse_ata_identify(completion.data).to_json()}


def _nvme_identify(transport: Transport, cns: int, nsid: int) -> bytes:
    completion = transport.execute(
        NvmeAdminCommand(opcode=NVME_IDENTIFY, nsid=nsid, cdw10=cns, data_in_length=NVME_IDENTIFY_LENGTH)
    )
    return completion.data


def _nvme(transport: Transport) -> dict[str, Any]:
    controller = parse_nvme_id_ctrl(_nvme_identify(transport, NVME_CNS_CONTROLLER, 0))
    report: dict[str, Any] = {"interface": "nvme", **controller.to_json()}
    if controller.namespace_count >= 1:
        try:
            namespace = parse_nvme_id_ns(_nvme_identify(transport, NVME_CNS_NAMESPACE, 1))
        except (IdentifyParseError, CommandError) as error:
            # Namespace 1 may be inactive or detached; the controller facts still stand.
            report["namespace"] = {"nsid": 1, "error": error.message}
        else:
            report["namespace"] = {"nsid": 1, **namespace.to_json()}
    return report


def _scsi(transport: Transport) -> dict[str, Any]:
    inquiry = parse_inquiry(
        transport.execute(
            ScsiCommand(
                cdb=bytes((SCSI_INQUIRY, 0, 0, 0, _INQUIRY_LENGTH, 0)), data_in_length=_INQUIRY_LENGTH
            )
        ).data
    )
    report: dict[str, Any] = {"interface": "scsi", **inquiry.to_json(), "kind": "scsi"}
    capacity_cdb = bytearray(16)
    capacity_cdb[0], capacity_cdb[1] = SCSI_SERVICE_ACTION_IN_16, SCSI_READ_CAPACITY_16_ACTION
    capacity_cdb[10:14] = (32).to_bytes(4, "big")  # ALLOCATION LENGTH
    capacity = parse_read_capacity16(
        transport.execute(ScsiCommand(cdb=bytes(capacity_cdb), data_in_length=32)).data
    )
    report["max_lba"] = capacity.last_lba
    report["capacity"] = capacity.to_json()
    try:
        vpd = parse_block_device_characteristics_vpd(
            transport.execute(
                ScsiCommand(
                    cdb=bytes((SCSI_INQUIRY, 0x01, 0xB1, 0, _VPD_LENGTH, 0)), data_in_length=_VPD_LENGTH
                )
            ).data
        )
    except CommandError:
        report["rotation_rate"] = None  # VPD B1h is optional (SBC-4): rotation not reported
    else:
        report["rotation_rate"] = vpd.rotation_rate
    rsoc_cdb = bytearray(12)
    rsoc_cdb[0], rsoc_cdb[1] = SCSI_MAINTENANCE_IN, SCSI_REPORT_SUPPORTED_OPCODES_ACTION  # options 000b
    rsoc_cdb[6:10] = _RSOC_LENGTH.to_bytes(4, "big")  # ALLOCATION LENGTH
    try:
        sanitize = parse_report_supported_opcodes_sanitize(
            transport.execute(ScsiCommand(cdb=bytes(rsoc_cdb), data_in_length=_RSOC_LENGTH)).data
        )
    except CommandError as error:
        # REPORT SUPPORTED OPERATION CODES is optional; without it SANITIZE support is unknown.
        report["sanitize"] = {"supported": None, "error": error.message}
    else:
        report["sanitize"] = sanitize.to_json()
    return report


def probe_transport(transport: Transport, interface: str) -> dict[str, Any]:
    """Identify the drive behind ``transport`` and return its capability JSON.

    ``interface`` is ``"ata"``, ``"nvme"`` or ``"scsi"`` (as :func:`detect_interface` says).
    Raises :class:`IdentifyParseError` for malformed data and the transport's
    :class:`agent.errors.CommandError` family (e.g. PassThroughBlocked behind USB bridges).
    """
    if interface == "ata":
        return _ata_identify(transport)
    if interface == "nvme":
        return _nvme(transport)
    if interface == "scsi":
        return _scsi(transport)
    raise ValueError(f"unknown interface {interface!r}")


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
