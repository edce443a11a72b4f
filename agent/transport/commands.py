"""Commands, completions and the Transport protocol: the one seam every firmware method uses.

A method builds a frozen command (:class:`AtaCommand`, :class:`ScsiCommand`,
:class:`NvmeAdminCommand`, :class:`NvmeIoCommand`) and hands it to ``Transport.execute``. A
successful command returns a :class:`Completion`; a failed one raises a
:class:`~agent.errors.CommandError` subclass carrying opcode, status and raw sense — never a bare
OSError. Real transports live in ``sgio.py`` / ``nvme_ioctl.py``; fakes in ``replay.py`` and, for
tests only (not installed), ``wipe_agent_testing/emulated.py`` at the repository root.
"""

from __future__ import annotations

import enum
import errno
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from agent.errors import AgentError, CommandError, DriveRemoved
from agent.transport.sense import AtaRegisters, SenseData

__all__ = [
    "AtaCommand",
    "AtaProtocol",
    "Command",
    "CommandFailed",
    "CommandTimeout",
    "Completion",
    "DataDirection",
    "NvmeAdminCommand",
    "NvmeIoCommand",
    "NvmeStatus",
    "PassThroughBlocked",
    "ScsiCommand",
    "Transport",
    "command_opcode",
    "map_os_error",
    "nvme_completion",
]

DEFAULT_TIMEOUT_S = 30.0

# 48-bit (EXT) ATA commands whose taskfile must be sent with EXTEND=1 (ACS-4 command descriptions).
_ATA_EXT_COMMANDS = frozenset(
    {
        0x06, 0x07,  # DATA SET MANAGEMENT (XL)
        0x24, 0x25, 0x27, 0x29, 0x2F,  # READ SECTORS/DMA/NATIVE MAX/MULTIPLE/LOG EXT
        0x34, 0x35, 0x37, 0x39, 0x3D, 0x3F,  # WRITE SECTORS/DMA EXT, SET MAX EXT, WRITE MULTIPLE/DMA FUA/LOG EXT
        0x42, 0x44, 0x45, 0x47, 0x57,  # READ VERIFY, ZERO, WRITE UNCORRECTABLE, READ/WRITE LOG DMA EXT
        0x60, 0x61, 0x64, 0x65,  # NCQ (FPDMA) commands
        0xB4, 0xCE, 0xEA,  # SANITIZE DEVICE, WRITE MULTIPLE FUA EXT, FLUSH CACHE EXT
    }
)  # fmt: skip


class AtaProtocol(enum.IntEnum):
    """SAT-4 ATA PASS-THROUGH PROTOCOL field values."""

    HARD_RESET = 0
    SOFT_RESET = 1
    NON_DATA = 3
    PIO_IN = 4
    PIO_OUT = 5
    DMA = 6
    DEVICE_DIAGNOSTIC = 8
    DEVICE_RESET = 9
    UDMA_IN = 10
    UDMA_OUT = 11
    FPDMA = 12
    RETURN_RESPONSE_INFORMATION = 15


class DataDirection(enum.Enum):
    """Direction of the data phase, as seen from the host."""

    NONE = "none"
    TO_DEVICE = "to_device"
    FROM_DEVICE = "from_device"


def _check_buffers(data_out: bytes, data_in_length: int, timeout_s: float) -> None:
    if data_out and data_in_length:
        raise ValueError("a command moves data in one direction only")
    if data_in_length < 0:
        raise ValueError("data_in_length must be >= 0")
    if timeout_s <= 0:
        raise ValueError("timeout_s must be > 0")


@dataclass(frozen=True)
class AtaCommand:
    """An ATA taskfile sent through ATA PASS-THROUGH (16) (SAT-4).

    ``lba`` is 48-bit, ``count`` and ``features`` 16-bit. ``extend`` None means: decide from the
    opcode (known EXT commands) or from values that do not fit a 28-bit taskfile.
    """

    command: int
    protocol: AtaProtocol = AtaProtocol.NON_DATA
    features: int = 0
    count: int = 0
    lba: int = 0
    device: int = 0x40  # LBA mode bit (ACS-4 Device field bit 6)
    data_out: bytes = b""
    data_in_length: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S
    extend: bool | None = None

    def __post_init__(self) -> None:
        _check_buffers(self.data_out, self.data_in_length, self.timeout_s)
        if not 0 <= self.command <= 0xFF:
            raise ValueError("ATA command is one byte")
        if not 0 <= self.lba < 1 << 48 or not 0 <= self.count <= 0xFFFF or not 0 <= self.features <= 0xFFFF:
            raise ValueError("ATA taskfile value out of range")
        if self.extend is False and (self.lba >> 28 or self.count >> 8 or self.features >> 8):
            raise ValueError("value does not fit a 28-bit taskfile; use extend=True")
        if self.protocol in (AtaProtocol.PIO_IN, AtaProtocol.UDMA_IN) and self.data_in_length <= 0:
            raise ValueError("a data-in protocol needs data_in_length")
        if self.protocol in (AtaProtocol.PIO_OUT, AtaProtocol.UDMA_OUT) and not self.data_out:
            raise ValueError("a data-out protocol needs data_out")
        if self.protocol == AtaProtocol.NON_DATA and (self.data_out or self.data_in_length):
            raise ValueError("NON_DATA carries no data")
        if len(self.data_out) % 512 or self.data_in_length % 512:
            raise ValueError("ATA data transfers are whole 512-byte blocks")

    @property
    def is_extended(self) -> bool:
        """True when the taskfile goes out as a 48-bit (EXT) command."""
        if self.extend is not None:
            return self.extend
        return self.command in _ATA_EXT_COMMANDS or bool(self.lba >> 28 or self.count >> 8 or self.features >> 8)

    @property
    def direction(self) -> DataDirection:
        """Direction of the data phase."""
        if self.data_out:
            return DataDirection.TO_DEVICE
        if self.data_in_length:
            return DataDirection.FROM_DEVICE
        return DataDirection.NONE


@dataclass(frozen=True)
class ScsiCommand:
    """A SCSI CDB with its data buffer; ``direction`` None is derived from the buffers."""

    cdb: bytes
    data_out: bytes = b""
    data_in_length: int = 0
    direction: DataDirection | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        _check_buffers(self.data_out, self.data_in_length, self.timeout_s)
        if not 6 <= len(self.cdb) <= 32:
            raise ValueError("a CDB is 6 to 32 bytes")
        if self.direction is None:
            derived = (
                DataDirection.TO_DEVICE
                if self.data_out
                else DataDirection.FROM_DEVICE
                if self.data_in_length
                else DataDirection.NONE
            )
            object.__setattr__(self, "direction", derived)

    @property
    def opcode(self) -> int:
        """The CDB operation code (byte 0)."""
        return self.cdb[0]


@dataclass(frozen=True)
class NvmeAdminCommand:
    """An NVMe admin command (NVMe Base 2.0 Admin Command Set) sent with NVME_IOCTL_ADMIN_CMD."""

    opcode: int
    nsid: int = 0
    cdw10: int = 0
    cdw11: int = 0
    cdw12: int = 0
    cdw13: int = 0
    cdw14: int = 0
    cdw15: int = 0
    data_out: bytes = b""
    data_in_length: int = 0
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        _check_buffers(self.data_out, self.data_in_length, self.timeout_s)
        if not 0 <= self.opcode <= 0xFF or not 0 <= self.nsid <= 0xFFFFFFFF:
            raise ValueError("opcode is one byte, nsid 32-bit")
        for name in ("cdw10", "cdw11", "cdw12", "cdw13", "cdw14", "cdw15"):
            if not 0 <= getattr(self, name) <= 0xFFFFFFFF:
                raise ValueError(f"{name} is a 32-bit dword")


@dataclass(frozen=True)
class NvmeIoCommand(NvmeAdminCommand):
    """An NVMe I/O command (NVM Command Set) sent with NVME_IOCTL_IO_CMD; same shape as admin."""


Command = AtaCommand | ScsiCommand | NvmeAdminCommand


@dataclass(frozen=True)
class NvmeStatus:
    """The 15-bit NVMe Status Field (NVMe Base 2.0, CQE DW3 bits 31:17 shifted down)."""

    raw: int

    @property
    def sc(self) -> int:
        """Status Code."""
        return self.raw & 0xFF

    @property
    def sct(self) -> int:
        """Status Code Type (0 generic, 1 command specific, 2 media/data integrity, 3 path)."""
        return (self.raw >> 8) & 0x7

    @property
    def crd(self) -> int:
        """Command Retry Delay."""
        return (self.raw >> 11) & 0x3

    @property
    def more(self) -> bool:
        """More information in the Error Information log."""
        return bool(self.raw & 0x2000)

    @property
    def dnr(self) -> bool:
        """Do Not Retry."""
        return bool(self.raw & 0x4000)

    @property
    def ok(self) -> bool:
        """True for Successful Completion (SCT 0, SC 0)."""
        return self.sct == 0 and self.sc == 0

    @classmethod
    def of(cls, sct: int, sc: int, *, dnr: bool = False) -> NvmeStatus:
        """Build a status from its parts."""
        return cls((sct & 7) << 8 | (sc & 0xFF) | (0x4000 if dnr else 0))

    def describe(self) -> str:
        """e.g. ``SCT 0h SC 1Dh (Sanitize In Progress) DNR``."""
        name = _NVME_GENERIC_NAMES.get(self.sc) if self.sct == 0 else _NVME_SPECIFIC_NAMES.get(self.sc)
        text = f"SCT {self.sct:X}h SC {self.sc:02X}h"
        if name and self.sct in (0, 1):
            text += f" ({name})"
        return text + (" DNR" if self.dnr else "")


# NVMe Base 2.0 Generic / Command Specific Status Values — names used in messages.
_NVME_GENERIC_NAMES = {
    0x00: "Successful Completion",
    0x01: "Invalid Command Opcode",
    0x02: "Invalid Field in Command",
    0x04: "Data Transfer Error",
    0x06: "Internal Error",
    0x07: "Command Abort Requested",
    0x0B: "Invalid Namespace or Format",
    0x0C: "Command Sequence Error",
    0x1C: "Sanitize Failed",
    0x1D: "Sanitize In Progress",
    0x23: "Sanitize Prohibited While Persistent Memory Region is Enabled",
}
_NVME_SPECIFIC_NAMES = {
    0x0A: "Invalid Format",
    0x0D: "Feature Not Saveable",
    0x15: "Namespace Is Write Protected",
}


@dataclass(frozen=True)
class Completion:
    """What a device returned. Interface-specific parts are None when they do not apply.

    ``ata``: output registers (from the ATA Status Return descriptor). ``scsi_status`` and
    ``sense``: SCSI status byte and decoded sense (also present for a GOOD ATA PASS-THROUGH with
    CK_COND, where the sense only carries the registers). ``nvme_status`` and ``result``: the NVMe
    Status Field and completion dword 0.
    """

    ok: bool
    data: bytes = b""
    ata: AtaRegisters | None = None
    scsi_status: int | None = None
    sense: SenseData | None = None
    nvme_status: NvmeStatus | None = None
    result: int | None = None
    info: dict[str, str] = field(default_factory=dict, compare=False)


class CommandFailed(CommandError):
    """The device completed the command with an error; ``completion`` holds everything it said."""

    def __init__(self, message: str, completion: Completion, *, opcode: int, status: int | None) -> None:
        super().__init__(
            message,
            opcode=opcode,
            status=status,
            sense=completion.sense.raw if completion.sense is not None else None,
        )
        self.completion = completion


class CommandTimeout(CommandError):
    """The command did not complete within its timeout (the kernel aborted it)."""


class PassThroughBlocked(CommandError):
    """A USB bridge (or other translator) refused ATA/NVMe pass-through — not a missing feature."""

    code = "passthrough_blocked"

    def __init__(
        self,
        message: str = "",
        *,
        opcode: int | None = None,
        status: int | None = None,
        sense: bytes | None = None,
    ) -> None:
        text = (
            "the bridge between host and drive refused the pass-through command; "
            "move the drive to a direct-attach bay (SATA/SAS/NVMe port, not USB) and retry"
        )
        super().__init__(f"{message}: {text}" if message else text, opcode=opcode, status=status, sense=sense)


@runtime_checkable
class Transport(Protocol):
    """Sends one command to one device. Implementations: SgIoTransport, NvmeIoctlTransport,
    Emulated*Drive, ReplayTransport, RecordingTransport."""

    def execute(self, command: Command) -> Completion:
        """Run ``command``; raise a CommandError subclass (or DriveRemoved) when it fails."""
        ...

    def close(self) -> None:
        """Release the device (idempotent)."""
        ...


def command_opcode(command: Command) -> int:
    """The opcode that identifies a command in errors and recordings."""
    if isinstance(command, AtaCommand):
        return command.command
    if isinstance(command, ScsiCommand):
        return command.opcode
    return command.opcode


def command_label(command: Command) -> str:
    """Short label for messages: ``ATA B4h/0011h``, ``SCSI 48h``, ``NVMe admin 84h``."""
    if isinstance(command, AtaCommand):
        return f"ATA {command.command:02X}h/{command.features:04X}h"
    if isinstance(command, ScsiCommand):
        return f"SCSI {command.opcode:02X}h"
    kind = "I/O" if isinstance(command, NvmeIoCommand) else "admin"
    return f"NVMe {kind} {command.opcode:02X}h"


_REMOVED_ERRNOS = frozenset({errno.ENODEV, errno.ENXIO, errno.ENOENT, errno.ESHUTDOWN, errno.ENOMEDIUM})


def map_os_error(exc: OSError, command: Command, device: str) -> AgentError:
    """Turn a kernel OSError from an ioctl into the agent's error tree (caller raises ``from exc``)."""
    label = command_label(command)
    opcode = command_opcode(command)
    code = exc.errno or 0
    if code in _REMOVED_ERRNOS:
        return DriveRemoved(f"{device}: drive went away during {label} ({errno.errorcode.get(code, code)})")
    if code in (errno.ETIMEDOUT, errno.EINTR):
        return CommandTimeout(f"{device}: {label} timed out after {command.timeout_s:g} s", opcode=opcode)
    if code in (errno.ENOTTY, errno.EOPNOTSUPP) and isinstance(command, AtaCommand | NvmeAdminCommand):
        return PassThroughBlocked(f"{device}: the kernel path refused {label}", opcode=opcode)
    name = errno.errorcode.get(code, str(code))
    return CommandError(f"{device}: {label} failed in the kernel: {name} ({exc.strerror})", opcode=opcode)


def nvme_completion(command: NvmeAdminCommand, status_field: int, result: int, data: bytes) -> Completion:
    """Build the completion of an NVMe command, raising CommandFailed for a non-zero status."""
    status = NvmeStatus(status_field & 0x7FFF)
    completion = Completion(ok=status.ok, data=data if status.ok else b"", nvme_status=status, result=result)
    if not status.ok:
        label = command_label(command)
        if status.sct == 3 and status.sc in (0x70, 0x71):
            raise CommandTimeout(
                f"{label}: aborted by the host ({status.describe()})",
                opcode=command.opcode,
                status=status.raw,
            )
        raise CommandFailed(
            f"{label} failed: {status.describe()}", completion, opcode=command.opcode, status=status.raw
        )
    return completion
