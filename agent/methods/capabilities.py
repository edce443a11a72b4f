"""What a drive can do and what state it is in, read through its pass-through transport.

The job runner probes once before selection (:func:`probe_capabilities`) and puts the result in
``Target.capabilities``; firmware methods probe again right before their destructive command, so
a state that changed in between (a re-plug froze security, someone started a sanitize) is caught.

Only commands that change nothing are sent: ATA IDENTIFY DEVICE and SANITIZE STATUS EXT (without
CLEAR), NVMe Identify and the Sanitize Status log page, SCSI INQUIRY / READ CAPACITY (16) /
REPORT SUPPORTED OPERATION CODES (through :func:`agent.drive.probe.probe_transport`'s parsers)
and REQUEST SENSE. A USB bridge that refuses pass-through is recorded as ``blocked`` — a state
with an operator instruction, not a missing feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.drive.ata import AtaIdentify, parse_ata_identify
from agent.drive.errors import IdentifyParseError
from agent.drive.nvme import NvmeIdController, NvmeIdNamespace, parse_nvme_id_ctrl, parse_nvme_id_ns
from agent.drive.opcodes import (
    ATA_IDENTIFY_DEVICE,
    ATA_SANITIZE_DEVICE,
    ATA_SANITIZE_REASON_UNSUCCESSFUL,
    ATA_SANITIZE_STATUS_EXT,
    NVME_GET_LOG_PAGE,
    NVME_IDENTIFY,
    NVME_LOG_SANITIZE_STATUS,
    SCSI_MAINTENANCE_IN,
    SCSI_REQUEST_SENSE,
)
from agent.drive.scsi import (
    ScsiSanitizeSupport,
    parse_block_device_characteristics_vpd,
    parse_report_supported_opcodes_sanitize,
)
from agent.errors import CommandError, NotSupported
from agent.methods.base import Blocked, Target
from agent.transport.commands import (
    AtaCommand,
    AtaProtocol,
    CommandFailed,
    NvmeAdminCommand,
    PassThroughBlocked,
    ScsiCommand,
    Transport,
)
from agent.transport.sense import ASC_NOT_READY_SANITIZE_IN_PROGRESS, ASC_SANITIZE_COMMAND_FAILED, decode_sense

PASSTHROUGH_INSTRUCTION = (
    "move the drive to a direct-attach bay (SATA/SAS/NVMe port, not a USB adapter) and run the job again"
)


@dataclass(frozen=True)
class SanitizeState:
    """The drive's sanitize state machine as last read: ``idle``, ``in_progress``, ``failed``.

    ``frozen`` is ATA SANITIZE FROZEN (SD1); ``progress`` is 0.0..1.0 while in progress;
    ``last_success`` says whether the most recent sanitize completed without error (None: unknown).
    """

    state: str = "idle"
    progress: float | None = None
    frozen: bool = False
    last_success: bool | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"state": self.state, "progress": self.progress, "frozen": self.frozen,
                "last_success": self.last_success, "detail": self.detail}


@dataclass(frozen=True)
class NvmeSanitizeLog:
    """NVMe Base 2.0 Sanitize Status log page (81h), the fields the methods use."""

    sprog: int  # bytes 1:0 Sanitize Progress, numerator of n/65536
    status: int  # SSTAT bits 2:0: 0 never, 1 success, 2 in progress, 3 failed, 4 success + unexpected deallocation
    passes: int  # SSTAT bits 7:3 Overwrite Passes completed
    global_data_erased: bool  # SSTAT bit 8 GDE
    scdw10: int  # bytes 7:4: CDW10 of the sanitize that set the status
    estimates: dict[str, int | None]  # seconds; None = not reported (FFFFFFFFh)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"sprog": self.sprog, "sstat_status": self.status, "passes": self.passes,
                "global_data_erased": self.global_data_erased, "scdw10": self.scdw10,
                "estimates_seconds": self.estimates}


def parse_sanitize_log(data: bytes) -> NvmeSanitizeLog:
    """Parse the first 20 bytes of the Sanitize Status log page."""
    if len(data) < 20:
        raise IdentifyParseError(f"NVMe Sanitize Status log: {len(data)} bytes, need 20")
    sstat = int.from_bytes(data[2:4], "little")

    def estimate(start: int) -> int | None:
        value = int.from_bytes(data[start : start + 4], "little")
        return None if value == 0xFFFFFFFF else value

    return NvmeSanitizeLog(
        sprog=int.from_bytes(data[0:2], "little"),
        status=sstat & 0x7,
        passes=(sstat >> 3) & 0x1F,
        global_data_erased=bool(sstat & 0x100),
        scdw10=int.from_bytes(data[4:8], "little"),
        estimates={"overwrite": estimate(8), "block": estimate(12), "crypto": estimate(16)},
    )


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


def interface_for(transport_kind: str) -> str | None:
    """The command set to speak for a DriveIdentity.transport value (None: no pass-through)."""
    return {"sata": "ata", "usb": "ata", "nvme": "nvme", "scsi": "scsi"}.get(transport_kind)


# --- ATA --------------------------------------------------------------------------------------------
def ata_identify(transport: Transport) -> AtaIdentify:
    """IDENTIFY DEVICE, parsed."""
    # ACS-4 IDENTIFY DEVICE (ECh), PIO data-in, one 512-byte block
    completion = transport.execute(AtaCommand(ATA_IDENTIFY_DEVICE, AtaProtocol.PIO_IN, count=1, data_in_length=512))
    return parse_ata_identify(completion.data)


def ata_sanitize_status(transport: Transport, *, clear_failure: bool = False) -> SanitizeState:
    """SANITIZE STATUS EXT; an abort with reason 01h means the last sanitize failed (SD2)."""
    # ACS-4 7.43 SANITIZE DEVICE - SANITIZE STATUS EXT (B4h/0000h); COUNT bit 0 = CLEAR SANITIZE OPERATION FAILED
    command = AtaCommand(ATA_SANITIZE_DEVICE, features=ATA_SANITIZE_STATUS_EXT, count=1 if clear_failure else 0,
                         extend=True)
    try:
        completion = transport.execute(command)
    except CommandFailed as exc:
        registers = exc.completion.ata
        if registers is not None and registers.aborted and registers.lba & 0xFF == ATA_SANITIZE_REASON_UNSUCCESSFUL:
            return SanitizeState("failed", last_success=False,
                                 detail="SANITIZE STATUS EXT aborted: sanitize operation unsuccessful (SD2)")
        raise
    registers = completion.ata
    if registers is None or registers.partial:
        raise CommandError("SANITIZE STATUS EXT: the SAT layer returned incomplete ATA registers (fixed-format sense); "
                           "COUNT 15:8 is needed", opcode=ATA_SANITIZE_DEVICE)
    count = registers.count
    # ACS-4 7.43 normal output: COUNT bit 15 completed without error, 14 in progress, 13 frozen; LBA 15:0 progress
    if count & 0x4000:
        return SanitizeState("in_progress", progress=(registers.lba & 0xFFFF) / 65536.0, frozen=bool(count & 0x2000),
                             detail="SANITIZE IN PROGRESS")
    return SanitizeState("idle", frozen=bool(count & 0x2000), last_success=bool(count & 0x8000),
                         detail=f"SANITIZE STATUS COUNT={count:04X}h")


# --- NVMe -------------------------------------------------------------------------------------------
def nvme_sanitize_log(transport: Transport) -> NvmeSanitizeLog:
    """Read the Sanitize Status log page (allowed while a sanitize runs)."""
    dwords = 512 // 4 - 1  # NUMD is 0-based
    # NVMe Base 2.0 5.16 Get Log Page (02h): CDW10 LID 7:0, NUMDL 31:16; LID 81h Sanitize Status
    command = NvmeAdminCommand(NVME_GET_LOG_PAGE, nsid=0xFFFFFFFF,
                               cdw10=NVME_LOG_SANITIZE_STATUS | (dwords & 0xFFFF) << 16, data_in_length=512)
    return parse_sanitize_log(transport.execute(command).data)


def nvme_state(log: NvmeSanitizeLog) -> SanitizeState:
    """SanitizeState from the Sanitize Status log page."""
    if log.status == 0b010:
        return SanitizeState("in_progress", progress=log.sprog / 65536.0, detail="SSTAT 010b: sanitize in progress")
    if log.status == 0b011:
        return SanitizeState("failed", last_success=False, detail="SSTAT 011b: the most recent sanitize failed")
    success = None if log.status == 0 else log.status in (0b001, 0b100)
    return SanitizeState("idle", last_success=success, detail=f"SSTAT {log.status:03b}b")


def _nvme_identify(transport: Transport, cns: int, nsid: int) -> bytes:
    # NVMe Base 2.0 5.17 Identify (06h): CDW10 CNS 7:0 (01h controller, 00h namespace)
    return transport.execute(NvmeAdminCommand(NVME_IDENTIFY, nsid=nsid, cdw10=cns, data_in_length=4096)).data


def parse_namespace_list(data: bytes) -> tuple[int, ...]:
    """An Identify namespace ID list: up to 1024 little-endian NSIDs in increasing order, 0 ends it."""
    found: list[int] = []
    for offset in range(0, min(len(data), 4096) - 3, 4):
        nsid = int.from_bytes(data[offset : offset + 4], "little")
        if nsid == 0:
            break
        found.append(nsid)
    return tuple(found)


def nvme_namespaces(transport: Transport, controller: NvmeIdController) -> tuple[int, ...] | None:
    """Which namespaces exist. NN in Identify Controller is the highest *possible* NSID, not a count
    (QEMU reports 256 with one namespace), so it cannot tell whether a Format leaves others behind."""
    # NVMe Base 2.0 Identify CNS 10h: Allocated Namespace ID list (attached or not; needs NS management)
    # and CNS 02h: Active Namespace ID list (attached to this controller); NSID 0 = list from the start
    for cns in ((0x10, 0x02) if controller.oacs.ns_management else (0x02,)):
        try:
            return parse_namespace_list(_nvme_identify(transport, cns, 0))
        except CommandError:
            continue
    return None


# --- SCSI -------------------------------------------------------------------------------------------
def scsi_sanitize_state(transport: Transport) -> SanitizeState:
    """REQUEST SENSE: NOT READY / SANITIZE IN PROGRESS with progress, or MEDIUM ERROR / SANITIZE COMMAND FAILED."""
    # SPC-5 REQUEST SENSE (03h), DESC=0, allocation length 252
    completion = transport.execute(ScsiCommand(bytes([SCSI_REQUEST_SENSE, 0, 0, 0, 252, 0]), data_in_length=252))
    sense = decode_sense(completion.data)
    if sense is None:
        return SanitizeState("idle", detail="REQUEST SENSE: no sense")
    if sense.asc_ascq == ASC_NOT_READY_SANITIZE_IN_PROGRESS:
        return SanitizeState("in_progress", progress=sense.progress_fraction, detail=sense.describe())
    if sense.asc_ascq == ASC_SANITIZE_COMMAND_FAILED:
        return SanitizeState("failed", last_success=False, detail=sense.describe())
    return SanitizeState("idle", detail=sense.describe())


def _scsi_rotation(transport: Transport, errors: list[str]) -> int | None:
    """MEDIUM ROTATION RATE from the Block Device Characteristics VPD page, None if not reported."""
    try:
        # SPC-5 INQUIRY (12h) EVPD=1, page B1h: SBC-4 Block Device Characteristics
        data = transport.execute(ScsiCommand(bytes((0x12, 0x01, 0xB1, 0, 64, 0)), data_in_length=64)).data
        rate = parse_block_device_characteristics_vpd(data).rotation_rate
    except (CommandError, IdentifyParseError) as exc:
        errors.append(f"VPD B1h: {exc.message}")
        return None
    return rate


def _scsi_sanitize_support(transport: Transport) -> ScsiSanitizeSupport:
    cdb = bytearray(12)
    # SPC-5 REPORT SUPPORTED OPERATION CODES (A3h/0Ch), REPORTING OPTIONS 000b: all commands
    cdb[0], cdb[1] = SCSI_MAINTENANCE_IN, 0x0C
    cdb[6:10] = (8192).to_bytes(4, "big")
    return parse_report_supported_opcodes_sanitize(transport.execute(ScsiCommand(bytes(cdb), data_in_length=8192)).data)


# --- the probe --------------------------------------------------------------------------------------
def probe_capabilities(transport: Transport, interface: str, *, usb: bool = False) -> Capabilities:
    """Identify the drive and read its sanitize state; pass-through refusal is recorded, not raised."""
    errors: list[str] = []
    try:
        if interface == "ata":
            identify = ata_identify(transport)
            state = SanitizeState()
            if identify.sanitize.supported:
                state = ata_sanitize_status(transport)
            return Capabilities("ata", usb, ata=identify, sanitize=state)
        if interface == "nvme":
            controller = parse_nvme_id_ctrl(_nvme_identify(transport, 0x01, 0))
            namespace, dlfeat = None, None
            try:
                raw = _nvme_identify(transport, 0x00, 1)
                namespace, dlfeat = parse_nvme_id_ns(raw), raw[33]
            except (CommandError, IdentifyParseError) as exc:
                errors.append(f"namespace 1: {exc.message}")
            log, state = None, SanitizeState()
            if controller.sanicap.supported:
                log = nvme_sanitize_log(transport)
                state = nvme_state(log)
            namespaces = nvme_namespaces(transport, controller)
            if namespaces is None:
                errors.append("namespace list: Identify CNS 02h/10h refused; NN taken as the namespace count")
            return Capabilities("nvme", usb, nvme=controller, nvme_namespace=namespace, nvme_dlfeat=dlfeat,
                                nvme_sanitize_log=log, nvme_namespaces=namespaces, sanitize=state,
                                errors=tuple(errors))
        if interface == "scsi":
            try:
                support: ScsiSanitizeSupport | None = _scsi_sanitize_support(transport)
            except CommandError as exc:
                support = None
                errors.append(f"REPORT SUPPORTED OPERATION CODES: {exc.message}")
            rotation = _scsi_rotation(transport, errors)
            return Capabilities("scsi", usb, scsi_sanitize=support, scsi_rotation_rate=rotation,
                                sanitize=scsi_sanitize_state(transport),
                                errors=tuple(errors))
    except PassThroughBlocked as exc:
        return Capabilities(interface, usb, blocked=exc.message)
    raise ValueError(f"unknown interface {interface!r}")


def capabilities_of(target: Target, interface: str, method: str) -> Capabilities:
    """The target's capabilities for ``interface``, or raise why the method cannot even be judged."""
    capabilities = target.capabilities
    if target.transport is None:
        raise NotSupported(f"{method}: no pass-through transport to this drive "
                           f"({target.identity.transport} device; firmware commands cannot reach it)")
    if capabilities is None:
        raise NotSupported(f"{method}: the drive's capabilities could not be read through its transport "
                           "(see the capabilities-error journal event)")
    if not isinstance(capabilities, Capabilities):
        raise NotSupported(f"{method}: drive capabilities were not probed")
    if capabilities.blocked is not None:
        via = "a USB bridge" if capabilities.usb else "the adapter between host and drive"
        instruction = PASSTHROUGH_INSTRUCTION
        if capabilities.usb and target.identity.removable:
            instruction = ("if this is a USB flash stick or memory card it has no firmware purge: Clear it by "
                           "overwrite (nist-clear-overwrite) or destroy it; if it is a drive in a USB enclosure, "
                           + PASSTHROUGH_INSTRUCTION)
        raise Blocked("passthrough-blocked", f"{via} refused the {capabilities.interface.upper()} pass-through "
                      "commands firmware erase needs (not a missing drive feature)", instruction)
    if capabilities.interface != interface:
        raise NotSupported(f"{method}: this is an {capabilities.interface.upper()} drive, not {interface.upper()}")
    return capabilities


def media_of(target: Target) -> str:
    """``hdd`` or ``ssd`` for level decisions. Several techniques are Purge on magnetic media only, so
    "hdd" needs positive evidence from the drive itself — ATA IDENTIFY word 217 or SCSI VPD B1h rotation
    rate above 1. The kernel's ``rotational`` flag is not enough: it defaults to 1 for a SCSI disk that
    reports nothing (SAS SSDs behind some HBAs). Without evidence the drive is treated as flash, the
    stricter rules."""
    capabilities = target.capabilities
    if isinstance(capabilities, Capabilities):
        if capabilities.ata is not None:
            rate = capabilities.ata.rotation_rate
        elif capabilities.interface == "scsi":
            rate = capabilities.scsi_rotation_rate
        else:
            rate = None  # NVMe: flash
        return "hdd" if rate is not None and rate > 1 else "ssd"
    return "hdd" if target.identity.media == "hdd" else "ssd"


def refuse_sanitize_states(state: SanitizeState, method: str, *, what: str = "sanitize") -> None:
    """Raise Blocked for a sanitize in progress or a failed sanitize (both persist across power cycles)."""
    if state.state == "in_progress":
        percent = f" ({state.progress * 100:.0f}% done)" if state.progress is not None else ""
        raise Blocked("sanitize-in-progress", f"{method}: a sanitize is already running on this drive{percent}",
                      "leave the drive powered in its bay and wait: the sanitize continues across resets and power "
                      "loss; poll with 'wipe-agent inspect' and run the job again once it has finished — do not start "
                      "another", route="hold")
    if state.state == "failed":
        raise Blocked("sanitize-failed", f"{method}: the drive reports that its last sanitize FAILED ({state.detail}); "
                      f"it blocks {what} and media access until a sanitize succeeds",
                      "route the drive to destruction (a supervised retry of the sanitize is the only other way out; "
                      "nothing about its data can be assumed)", route="destroy")
