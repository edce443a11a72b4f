"""One drive model per command set: :class:`AtaDrive`, :class:`NvmeDrive`, :class:`ScsiDrive`.

Each owns the read-only commands of its command set once — identify, capabilities, sanitize-state
polling — over any :class:`agent.transport.Transport`. ``inspect`` (:mod:`agent.drive.probe`) and
the job runner / firmware methods (:mod:`agent.methods.capabilities`) both call these, so the
bytes sent for IDENTIFY or a status poll are built in one place. :meth:`inspect` sends the
identify subset and returns the ``inspect`` JSON; :meth:`capabilities` adds the sanitize state the
methods judge and records optional pages that fail instead of raising.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.drive.ata import IDENTIFY_LENGTH as ATA_IDENTIFY_LENGTH
from agent.drive.ata import AtaIdentify, parse_ata_identify
from agent.drive.errors import IdentifyParseError
from agent.drive.nvme import IDENTIFY_LENGTH as NVME_IDENTIFY_LENGTH
from agent.drive.nvme import (
    NvmeIdController,
    NvmeIdNamespace,
    NvmeSanitizeLog,
    parse_namespace_list,
    parse_nvme_id_ctrl,
    parse_nvme_id_ns,
    parse_sanitize_log,
)
from agent.drive.opcodes import (
    ATA_IDENTIFY_DEVICE,
    ATA_SANITIZE_CLEAR_FAILED,
    ATA_SANITIZE_DEVICE,
    ATA_SANITIZE_FROZEN,
    ATA_SANITIZE_IN_PROGRESS,
    ATA_SANITIZE_OPERATION_COMPLETED,
    ATA_SANITIZE_REASON_UNSUCCESSFUL,
    ATA_SANITIZE_STATUS_EXT,
    NVME_BROADCAST_NSID,
    NVME_CNS_ACTIVE_NAMESPACE_LIST,
    NVME_CNS_ALLOCATED_NAMESPACE_LIST,
    NVME_CNS_CONTROLLER,
    NVME_CNS_NAMESPACE,
    NVME_GET_LOG_PAGE,
    NVME_IDENTIFY,
    NVME_LOG_SANITIZE_STATUS,
    NVME_SSTAT_FAILED,
    NVME_SSTAT_IN_PROGRESS,
    NVME_SSTAT_NEVER,
    NVME_SSTAT_SUCCESS,
    NVME_SSTAT_SUCCESS_DEALLOCATED,
    SCSI_INQUIRY,
    SCSI_MAINTENANCE_IN,
    SCSI_READ_CAPACITY_16_ACTION,
    SCSI_REPORT_SUPPORTED_OPCODES_ACTION,
    SCSI_REQUEST_SENSE,
    SCSI_SERVICE_ACTION_IN_16,
    SCSI_VPD_BLOCK_DEVICE_CHARACTERISTICS,
)
from agent.drive.scsi import (
    ScsiInquiry,
    ScsiReadCapacity16,
    ScsiSanitizeSupport,
    parse_block_device_characteristics_vpd,
    parse_inquiry,
    parse_read_capacity16,
    parse_report_supported_opcodes_sanitize,
)
from agent.drive.state import SanitizeState
from agent.errors import CommandError
from agent.transport.commands import (
    AtaCommand,
    AtaProtocol,
    CommandFailed,
    NvmeAdminCommand,
    ScsiCommand,
    Transport,
)
from agent.transport.sense import ASC_NOT_READY_SANITIZE_IN_PROGRESS, ASC_SANITIZE_COMMAND_FAILED, decode_sense

_INQUIRY_LENGTH = 96
_VPD_LENGTH = 64
_RSOC_LENGTH = 8192  # room for ~1000 descriptors; a truncated list is reported as an error
_SENSE_LENGTH = 252
_LOG_LENGTH = 512


@dataclass(frozen=True)
class Capabilities:
    """Parsed identify data plus the current security/sanitize state of one drive."""

    interface: str  # ata | nvme | scsi
    usb: bool = False
    blocked: str | None = None  # pass-through refused: the transport's message
    ata: AtaIdentify | None = None
    nvme: NvmeIdController | None = None
    nvme_namespace: NvmeIdNamespace | None = None
    nvme_dlfeat: int | None = None  # Identify Namespace byte 33 DLFEAT
    nvme_sanitize_log: NvmeSanitizeLog | None = None
    # namespaces that exist on the controller: the allocated list (CNS 10h) where namespace
    # management is supported, else the active list (CNS 02h); None when neither could be read
    nvme_namespaces: tuple[int, ...] | None = None
    scsi_sanitize: ScsiSanitizeSupport | None = None
    scsi_rotation_rate: int | None = None  # VPD B1h MEDIUM ROTATION RATE (1 = solid state, None = not reported)
    sanitize: SanitizeState = field(default_factory=SanitizeState)
    errors: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON form for the journal."""
        data: dict[str, Any] = {"interface": self.interface, "usb": self.usb, "blocked": self.blocked,
                                "sanitize": self.sanitize.to_json(), "errors": list(self.errors)}
        if self.ata is not None:
            data["ata"] = {"security": self.ata.security.to_json(), "sanitize": self.ata.sanitize.to_json(),
                           "max_lba": self.ata.max_lba, "hpa": self.ata.hpa_supported, "dco": self.ata.dco_supported,
                           "amac": self.ata.amac_supported, "encrypts_all_user_data": self.ata.encrypts_all_user_data}
        if self.nvme is not None:
            data["nvme"] = {"sanicap": self.nvme.sanicap.to_json(), "fna": self.nvme.fna.to_json(),
                            "oacs": self.nvme.oacs.to_json(), "nn": self.nvme.namespace_count,
                            "namespaces": list(self.nvme_namespaces) if self.nvme_namespaces is not None else None,
                            "dlfeat": self.nvme_dlfeat}
            if self.nvme_sanitize_log is not None:
                data["nvme"]["sanitize_log"] = self.nvme_sanitize_log.to_json()
        if self.scsi_sanitize is not None:
            data["scsi_sanitize"] = self.scsi_sanitize.to_json()
        return data


def nvme_state(log: NvmeSanitizeLog) -> SanitizeState:
    """SanitizeState from the Sanitize Status log page."""
    if log.status == NVME_SSTAT_IN_PROGRESS:
        return SanitizeState("in_progress", progress=log.sprog / 65536.0, detail="SSTAT 010b: sanitize in progress")
    if log.status == NVME_SSTAT_FAILED:
        return SanitizeState("failed", last_success=False, detail="SSTAT 011b: the most recent sanitize failed")
    success = None if log.status == NVME_SSTAT_NEVER else log.status in (NVME_SSTAT_SUCCESS,
                                                                          NVME_SSTAT_SUCCESS_DEALLOCATED)
    return SanitizeState("idle", last_success=success, detail=f"SSTAT {log.status:03b}b")


class AtaDrive:
    """An ATA drive (libata behind SAT, or a SATL): IDENTIFY DEVICE and SANITIZE STATUS EXT."""

    interface = "ata"

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def identify(self) -> AtaIdentify:
        """IDENTIFY DEVICE, parsed."""
        # ACS-4 IDENTIFY DEVICE (ECh), PIO data-in, one 512-byte block
        completion = self.transport.execute(
            AtaCommand(ATA_IDENTIFY_DEVICE, AtaProtocol.PIO_IN, count=1, data_in_length=ATA_IDENTIFY_LENGTH))
        return parse_ata_identify(completion.data)

    def sanitize_state(self, *, clear_failure: bool = False) -> SanitizeState:
        """SANITIZE STATUS EXT; an abort with reason 01h means the last sanitize failed (SD2)."""
        # ACS-4 7.43 SANITIZE DEVICE - SANITIZE STATUS EXT (B4h/0000h); COUNT bit 0 = CLEAR SANITIZE OPERATION FAILED
        command = AtaCommand(ATA_SANITIZE_DEVICE, features=ATA_SANITIZE_STATUS_EXT,
                             count=ATA_SANITIZE_CLEAR_FAILED if clear_failure else 0, extend=True)
        try:
            completion = self.transport.execute(command)
        except CommandFailed as exc:
            registers = exc.completion.ata
            if (registers is not None and registers.aborted
                    and registers.lba & 0xFF == ATA_SANITIZE_REASON_UNSUCCESSFUL):
                return SanitizeState("failed", last_success=False,
                                     detail="SANITIZE STATUS EXT aborted: sanitize operation unsuccessful (SD2)")
            raise
        registers = completion.ata
        if registers is None or registers.partial:
            raise CommandError("SANITIZE STATUS EXT: the SAT layer returned incomplete ATA registers "
                               "(fixed-format sense); COUNT 15:8 is needed", opcode=ATA_SANITIZE_DEVICE)
        count = registers.count
        # ACS-4 7.43 normal output: COUNT bit 15 completed without error, 14 in progress, 13 frozen; LBA 15:0 progress
        frozen = bool(count & ATA_SANITIZE_FROZEN)
        if count & ATA_SANITIZE_IN_PROGRESS:
            return SanitizeState("in_progress", progress=(registers.lba & 0xFFFF) / 65536.0, frozen=frozen,
                                 detail="SANITIZE IN PROGRESS")
        return SanitizeState("idle", frozen=frozen, last_success=bool(count & ATA_SANITIZE_OPERATION_COMPLETED),
                             detail=f"SANITIZE STATUS COUNT={count:04X}h")

    def capabilities(self, usb: bool = False) -> Capabilities:
        """Identify, then poll the sanitize state where the feature set is supported."""
        identify = self.identify()
        state = SanitizeState()
        if identify.sanitize.supported:
            state = self.sanitize_state()
        return Capabilities("ata", usb, ata=identify, sanitize=state)

    def inspect(self) -> dict[str, Any]:
        """The ``inspect`` report: IDENTIFY DEVICE only."""
        return {"interface": "ata", **self.identify().to_json()}


class NvmeDrive:
    """An NVMe controller: Identify (controller, namespace, namespace lists) and the Sanitize Status log."""

    interface = "nvme"

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def identify_raw(self, cns: int, nsid: int) -> bytes:
        """Identify data for ``cns`` (CDW10 7:0) and ``nsid``."""
        # NVMe Base 2.0 5.17 Identify (06h): CDW10 CNS 7:0 (01h controller, 00h namespace)
        return self.transport.execute(
            NvmeAdminCommand(NVME_IDENTIFY, nsid=nsid, cdw10=cns, data_in_length=NVME_IDENTIFY_LENGTH)).data

    def identify_controller(self) -> NvmeIdController:
        """Identify Controller (CNS 01h), parsed."""
        return parse_nvme_id_ctrl(self.identify_raw(NVME_CNS_CONTROLLER, 0))

    def sanitize_log(self) -> NvmeSanitizeLog:
        """Read the Sanitize Status log page (allowed while a sanitize runs)."""
        dwords = _LOG_LENGTH // 4 - 1  # NUMD is 0-based
        # NVMe Base 2.0 5.16 Get Log Page (02h): CDW10 LID 7:0, NUMDL 31:16; LID 81h Sanitize Status
        command = NvmeAdminCommand(NVME_GET_LOG_PAGE, nsid=NVME_BROADCAST_NSID,
                                   cdw10=NVME_LOG_SANITIZE_STATUS | (dwords & 0xFFFF) << 16,
                                   data_in_length=_LOG_LENGTH)
        return parse_sanitize_log(self.transport.execute(command).data)

    def namespaces(self, controller: NvmeIdController) -> tuple[int, ...] | None:
        """Which namespaces exist. NN in Identify Controller is the highest *possible* NSID, not a count
        (QEMU reports 256 with one namespace), so it cannot tell whether a Format leaves others behind."""
        # CNS 10h: Allocated Namespace ID list (attached or not; needs NS management); CNS 02h: Active
        # Namespace ID list (attached to this controller); NSID 0 = list from the start
        lists = ((NVME_CNS_ALLOCATED_NAMESPACE_LIST, NVME_CNS_ACTIVE_NAMESPACE_LIST)
                 if controller.oacs.ns_management else (NVME_CNS_ACTIVE_NAMESPACE_LIST,))
        for cns in lists:
            try:
                return parse_namespace_list(self.identify_raw(cns, 0))
            except CommandError:
                continue
        return None

    def capabilities(self, usb: bool = False) -> Capabilities:
        """Controller, namespace 1, the sanitize log where Sanitize is supported, the namespace list."""
        errors: list[str] = []
        controller = self.identify_controller()
        namespace, dlfeat = None, None
        try:
            raw = self.identify_raw(NVME_CNS_NAMESPACE, 1)
            namespace, dlfeat = parse_nvme_id_ns(raw), raw[33]
        except (CommandError, IdentifyParseError) as exc:
            errors.append(f"namespace 1: {exc.message}")
        log, state = None, SanitizeState()
        if controller.sanicap.supported:
            log = self.sanitize_log()
            state = nvme_state(log)
        namespaces = self.namespaces(controller)
        if namespaces is None:
            errors.append("namespace list: Identify CNS 02h/10h refused; NN taken as the namespace count")
        return Capabilities("nvme", usb, nvme=controller, nvme_namespace=namespace, nvme_dlfeat=dlfeat,
                            nvme_sanitize_log=log, nvme_namespaces=namespaces, sanitize=state,
                            errors=tuple(errors))

    def inspect(self) -> dict[str, Any]:
        """The ``inspect`` report: Identify Controller and, when NN >= 1, Identify Namespace 1."""
        controller = self.identify_controller()
        report: dict[str, Any] = {"interface": "nvme", **controller.to_json()}
        if controller.namespace_count >= 1:
            try:
                namespace = parse_nvme_id_ns(self.identify_raw(NVME_CNS_NAMESPACE, 1))
            except (IdentifyParseError, CommandError) as error:
                # Namespace 1 may be inactive or detached; the controller facts still stand.
                report["namespace"] = {"nsid": 1, "error": error.message}
            else:
                report["namespace"] = {"nsid": 1, **namespace.to_json()}
        return report


class ScsiDrive:
    """A SCSI (SAS or SATL-hidden) drive: INQUIRY, VPD B1h, READ CAPACITY (16), RSOC, REQUEST SENSE."""

    interface = "scsi"

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def inquiry(self) -> ScsiInquiry:
        """Standard INQUIRY, parsed."""
        cdb = bytes((SCSI_INQUIRY, 0, 0, 0, _INQUIRY_LENGTH, 0))
        return parse_inquiry(self.transport.execute(ScsiCommand(cdb=cdb, data_in_length=_INQUIRY_LENGTH)).data)

    def read_capacity(self) -> ScsiReadCapacity16:
        """READ CAPACITY (16), parsed."""
        cdb = bytearray(16)
        cdb[0], cdb[1] = SCSI_SERVICE_ACTION_IN_16, SCSI_READ_CAPACITY_16_ACTION
        cdb[10:14] = (32).to_bytes(4, "big")  # ALLOCATION LENGTH
        return parse_read_capacity16(self.transport.execute(ScsiCommand(cdb=bytes(cdb), data_in_length=32)).data)

    def rotation_rate(self) -> int | None:
        """MEDIUM ROTATION RATE from the Block Device Characteristics VPD page (optional: may raise)."""
        # SPC-5 INQUIRY (12h) EVPD=1, page B1h: SBC-4 Block Device Characteristics
        cdb = bytes((SCSI_INQUIRY, 0x01, SCSI_VPD_BLOCK_DEVICE_CHARACTERISTICS, 0, _VPD_LENGTH, 0))
        data = self.transport.execute(ScsiCommand(cdb=cdb, data_in_length=_VPD_LENGTH)).data
        return parse_block_device_characteristics_vpd(data).rotation_rate

    def sanitize_support(self) -> ScsiSanitizeSupport:
        """REPORT SUPPORTED OPERATION CODES (all commands) read for the SANITIZE service actions."""
        cdb = bytearray(12)
        # SPC-5 REPORT SUPPORTED OPERATION CODES (A3h/0Ch), REPORTING OPTIONS 000b: all commands
        cdb[0], cdb[1] = SCSI_MAINTENANCE_IN, SCSI_REPORT_SUPPORTED_OPCODES_ACTION
        cdb[6:10] = _RSOC_LENGTH.to_bytes(4, "big")  # ALLOCATION LENGTH
        data = self.transport.execute(ScsiCommand(cdb=bytes(cdb), data_in_length=_RSOC_LENGTH)).data
        return parse_report_supported_opcodes_sanitize(data)

    def sanitize_state(self) -> SanitizeState:
        """REQUEST SENSE: NOT READY / SANITIZE IN PROGRESS with progress, or MEDIUM ERROR / SANITIZE COMMAND FAILED."""
        # SPC-5 REQUEST SENSE (03h), DESC=0, allocation length 252
        completion = self.transport.execute(
            ScsiCommand(bytes([SCSI_REQUEST_SENSE, 0, 0, 0, _SENSE_LENGTH, 0]), data_in_length=_SENSE_LENGTH))
        sense = decode_sense(completion.data)
        if sense is None:
            return SanitizeState("idle", detail="REQUEST SENSE: no sense")
        if sense.asc_ascq == ASC_NOT_READY_SANITIZE_IN_PROGRESS:
            return SanitizeState("in_progress", progress=sense.progress_fraction, detail=sense.describe())
        if sense.asc_ascq == ASC_SANITIZE_COMMAND_FAILED:
            return SanitizeState("failed", last_success=False, detail=sense.describe())
        return SanitizeState("idle", detail=sense.describe())

    def capabilities(self, usb: bool = False) -> Capabilities:
        """SANITIZE support, rotation rate and sanitize state; optional pages that fail are recorded."""
        errors: list[str] = []
        try:
            support: ScsiSanitizeSupport | None = self.sanitize_support()
        except CommandError as exc:
            support = None
            errors.append(f"REPORT SUPPORTED OPERATION CODES: {exc.message}")
        try:
            rotation = self.rotation_rate()
        except (CommandError, IdentifyParseError) as exc:
            errors.append(f"VPD B1h: {exc.message}")
            rotation = None
        return Capabilities("scsi", usb, scsi_sanitize=support, scsi_rotation_rate=rotation,
                            sanitize=self.sanitize_state(), errors=tuple(errors))

    def inspect(self) -> dict[str, Any]:
        """The ``inspect`` report: INQUIRY, READ CAPACITY (16), VPD B1h and RSOC."""
        report: dict[str, Any] = {"interface": "scsi", **self.inquiry().to_json(), "kind": "scsi"}
        capacity = self.read_capacity()
        report["max_lba"] = capacity.last_lba
        report["capacity"] = capacity.to_json()
        try:
            report["rotation_rate"] = self.rotation_rate()
        except CommandError:
            report["rotation_rate"] = None  # VPD B1h is optional (SBC-4): rotation not reported
        try:
            sanitize = self.sanitize_support()
        except CommandError as error:
            # REPORT SUPPORTED OPERATION CODES is optional; without it SANITIZE support is unknown.
            report["sanitize"] = {"supported": None, "error": error.message}
        else:
            report["sanitize"] = sanitize.to_json()
        return report


Drive = AtaDrive | NvmeDrive | ScsiDrive


def drive_for(transport: Transport, interface: str) -> Drive:
    """The drive model for ``interface`` (``ata``, ``nvme`` or ``scsi``) over ``transport``."""
    if interface == "ata":
        return AtaDrive(transport)
    if interface == "nvme":
        return NvmeDrive(transport)
    if interface == "scsi":
        return ScsiDrive(transport)
    raise ValueError(f"unknown interface {interface!r}")
