"""What a drive can do and what state it is in, read through its pass-through transport.

The job runner probes once before selection (:func:`probe_capabilities`) and puts the result in
``Target.capabilities``; firmware methods probe again right before their destructive command, so
a state that changed in between (a re-plug froze security, someone started a sanitize) is caught.

The commands themselves belong to the drive models in :mod:`agent.drive.device` (the ones
``inspect`` uses too); only commands that change nothing are sent: ATA IDENTIFY DEVICE and SANITIZE
STATUS EXT (without CLEAR), NVMe Identify and the Sanitize Status log page, SCSI REPORT SUPPORTED
OPERATION CODES / INQUIRY VPD B1h and REQUEST SENSE. A USB bridge that refuses pass-through is
recorded as ``blocked`` — a state with an operator instruction, not a missing feature.
"""

from __future__ import annotations

from agent.drive.ata import AtaIdentify
from agent.drive.device import AtaDrive, Capabilities, NvmeDrive, ScsiDrive, drive_for, nvme_state
from agent.drive.nvme import NvmeIdController, NvmeSanitizeLog, parse_namespace_list, parse_sanitize_log
from agent.drive.state import SanitizeState
from agent.errors import NotSupported
from agent.methods.base import Blocked, Target
from agent.transport.commands import PassThroughBlocked, Transport

# The drive model and its parsers live in agent.drive; these names stay importable from here for the
# methods and the runner, which judge them.
__all__ = [
    "PASSTHROUGH_INSTRUCTION",
    "Capabilities",
    "NvmeSanitizeLog",
    "SanitizeState",
    "ata_identify",
    "ata_sanitize_status",
    "capabilities_of",
    "interface_for",
    "media_of",
    "nvme_namespaces",
    "nvme_sanitize_log",
    "nvme_state",
    "parse_namespace_list",
    "parse_sanitize_log",
    "probe_capabilities",
    "refuse_sanitize_states",
    "scsi_sanitize_state",
]

PASSTHROUGH_INSTRUCTION = (
    "move the drive to a direct-attach bay (SATA/SAS/NVMe port, not a USB adapter) and run the job again"
)


def interface_for(transport_kind: str) -> str | None:
    """The command set to speak for a DriveIdentity.transport value (None: no pass-through)."""
    return {"sata": "ata", "usb": "ata", "nvme": "nvme", "scsi": "scsi"}.get(transport_kind)


# --- one command each, sent by the drive model ---------------------------------------------------
def ata_identify(transport: Transport) -> AtaIdentify:
    """IDENTIFY DEVICE, parsed."""
    return AtaDrive(transport).identify()


def ata_sanitize_status(transport: Transport, *, clear_failure: bool = False) -> SanitizeState:
    """SANITIZE STATUS EXT; an abort with reason 01h means the last sanitize failed (SD2)."""
    return AtaDrive(transport).sanitize_state(clear_failure=clear_failure)


def nvme_sanitize_log(transport: Transport) -> NvmeSanitizeLog:
    """Read the Sanitize Status log page (allowed while a sanitize runs)."""
    return NvmeDrive(transport).sanitize_log()


def nvme_namespaces(transport: Transport, controller: NvmeIdController) -> tuple[int, ...] | None:
    """Which namespaces exist (see :meth:`NvmeDrive.namespaces`)."""
    return NvmeDrive(transport).namespaces(controller)


def scsi_sanitize_state(transport: Transport) -> SanitizeState:
    """REQUEST SENSE: NOT READY / SANITIZE IN PROGRESS with progress, or MEDIUM ERROR / SANITIZE COMMAND FAILED."""
    return ScsiDrive(transport).sanitize_state()


# --- the probe --------------------------------------------------------------------------------------
def probe_capabilities(transport: Transport, interface: str, *, usb: bool = False) -> Capabilities:
    """Identify the drive and read its sanitize state; pass-through refusal is recorded, not raised."""
    drive = drive_for(transport, interface)
    try:
        return drive.capabilities(usb)
    except PassThroughBlocked as exc:
        return Capabilities(interface, usb, blocked=exc.message)


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
