"""Emulated-firmware drives: Transports whose state machines follow ACS-4, SBC-4/SPC-5 and NVMe Base 2.0
closely enough to test every firmware method, including the states that block a wipe.

* User data lives in a backing file (``data_path``) that other code may read and write directly;
  erase operations really change it (zeros, a pattern, or pseudo-random "crypto" garbage).
* Persistent drive state (security passwords, sanitize in progress / failed, NVMe format) lives
  in a JSON sidecar ``<data_path>.state.json``. Constructing a new instance on the same file is a
  power cycle: volatile state (security and sanitize freeze, unlock, password attempts) resets,
  persistent state — including a sanitize in progress — carries over and the sanitize resumes.
* Time is simulated through an injectable clock (default: a clock that advances one second per
  command), so a sanitize "takes" ``DriveModel.operation_seconds`` without sleeping.
* Failure injection through :class:`Faults`.

ATA commands arrive as ATA PASS-THROUGH (16) CDBs built by the real CDB builder and answer with
descriptor sense carrying the ATA Status Return descriptor, decoded by the same code as SG_IO
results — the emulator exercises the real encode/decode paths.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import random
import secrets
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from agent.drive.opcodes import (
    AMAC_FREEZE,
    AMAC_GET_NATIVE_MAX,
    AMAC_SET_ACCESSIBLE_MAX,
    ATA_ACCESSIBLE_MAX_ADDRESS,
    ATA_BLOCK_ERASE_EXT,
    ATA_BLOCK_ERASE_KEY,
    ATA_CRYPTO_SCRAMBLE_EXT,
    ATA_CRYPTO_SCRAMBLE_KEY,
    ATA_DEVICE_CONFIGURATION,
    ATA_ERROR_ABRT,
    ATA_ERROR_IDNF,
    ATA_IDENTIFY_DEVICE,
    ATA_OVERWRITE_EXT,
    ATA_OVERWRITE_KEY,
    ATA_READ_DMA_EXT,
    ATA_READ_NATIVE_MAX_ADDRESS_EXT,
    ATA_READ_SECTORS_EXT,
    ATA_SANITIZE_ANTIFREEZE_LOCK_EXT,
    ATA_SANITIZE_ANTIFREEZE_LOCK_KEY,
    ATA_SANITIZE_DEVICE,
    ATA_SANITIZE_FREEZE_LOCK_EXT,
    ATA_SANITIZE_FREEZE_LOCK_KEY,
    ATA_SANITIZE_REASON_ANTIFREEZE,
    ATA_SANITIZE_REASON_FROZEN,
    ATA_SANITIZE_REASON_UNSUCCESSFUL,
    ATA_SANITIZE_REASON_UNSUPPORTED,
    ATA_SANITIZE_STATUS_EXT,
    ATA_SECURITY_DISABLE_PASSWORD,
    ATA_SECURITY_ERASE_PREPARE,
    ATA_SECURITY_ERASE_UNIT,
    ATA_SECURITY_FREEZE_LOCK,
    ATA_SECURITY_SET_PASSWORD,
    ATA_SECURITY_UNLOCK,
    ATA_SET_MAX_ADDRESS_EXT,
    ATA_STATUS_ERR,
    ATA_STATUS_OK,
    ATA_WRITE_DMA_EXT,
    ATA_WRITE_SECTORS_EXT,
    DCO_FREEZE_LOCK,
    DCO_IDENTIFY,
    DCO_RESTORE,
    NVME_ABORT,
    NVME_FORMAT_NVM,
    NVME_GET_FEATURES,
    NVME_GET_LOG_PAGE,
    NVME_IDENTIFY,
    NVME_IO_READ,
    NVME_IO_WRITE,
    NVME_LOG_SANITIZE_STATUS,
    NVME_LOG_SMART,
    NVME_SANACT_BLOCK,
    NVME_SANACT_CRYPTO,
    NVME_SANACT_EXIT_FAILURE,
    NVME_SANACT_OVERWRITE,
    NVME_SANITIZE,
    NVME_SC_ABORT_REQUESTED,
    NVME_SC_INVALID_FIELD,
    NVME_SC_INVALID_NAMESPACE,
    NVME_SC_INVALID_OPCODE,
    NVME_SC_LBA_OUT_OF_RANGE,
    NVME_SC_SANITIZE_FAILED,
    NVME_SC_SANITIZE_IN_PROGRESS,
    NVME_SCT1_INVALID_FORMAT,
    NVME_SCT1_INVALID_LOG_PAGE,
    NVME_SSTAT_FAILED,
    NVME_SSTAT_IN_PROGRESS,
    NVME_SSTAT_NEVER,
    NVME_SSTAT_SUCCESS,
    NVME_SSTAT_SUCCESS_DEALLOCATED,
    SCSI_INQUIRY,
    SCSI_MAINTENANCE_IN,
    SCSI_MODE_SELECT_10,
    SCSI_MODE_SENSE_10,
    SCSI_READ_10,
    SCSI_READ_16,
    SCSI_REQUEST_SENSE,
    SCSI_SANITIZE,
    SCSI_SANITIZE_BLOCK_ERASE,
    SCSI_SANITIZE_CRYPTOGRAPHIC_ERASE,
    SCSI_SANITIZE_EXIT_FAILURE_MODE,
    SCSI_SANITIZE_OVERWRITE,
    SCSI_SERVICE_ACTION_IN_16,
    SCSI_STATUS_CHECK_CONDITION,
    SCSI_STATUS_GOOD,
    SCSI_TEST_UNIT_READY,
    SCSI_WRITE_10,
    SCSI_WRITE_16,
)
from agent.errors import CommandError, DriveRemoved
from agent.transport.commands import (
    AtaCommand,
    Command,
    CommandTimeout,
    Completion,
    NvmeAdminCommand,
    NvmeIoCommand,
    NvmeStatus,
    ScsiCommand,
    command_label,
    map_os_error,
    nvme_completion,
)
from agent.transport.sat import (
    build_ata_pass_through_16,
    interpret_ata_result,
    interpret_scsi_result,
    parse_ata_pass_through_16,
)
from agent.transport.sense import (
    ASC_ATA_PASS_THROUGH_INFORMATION,
    ASC_INVALID_COMMAND_OPERATION_CODE,
    ASC_INVALID_FIELD_IN_CDB,
    ASC_INVALID_FIELD_IN_PARAMETER_LIST,
    ASC_LBA_OUT_OF_RANGE,
    ASC_NOT_READY_SANITIZE_IN_PROGRESS,
    ASC_SANITIZE_COMMAND_FAILED,
    AtaRegisters,
    SenseKey,
    encode_descriptor_sense,
    encode_fixed_ata_sense,
    encode_fixed_sense,
)

__all__ = [
    "DriveModel",
    "EmulatedAtaDrive",
    "EmulatedNvmeDrive",
    "EmulatedScsiDrive",
    "Faults",
    "ManualClock",
    "StepClock",
    "set_loop_capacity",
    "state_path_for",
]

Clock = Callable[[], float]
_CHUNK = 1 << 20
_ATA_BLOCK = 512

# --- ATA opcodes and constants (ACS-4) -----------------------------------------------------------

# ACS-4 7.43: each sanitize sub-command carries a key in the LBA field
# ACS-4 7.43 SANITIZE DEVICE error reason, returned in LBA 7:0 of an aborted sanitize command

MAX_PASSWORD_ATTEMPTS = 5  # ACS-4: the password attempt counter expires after five failures

# --- NVMe opcodes and status (NVMe Base 2.0 / NVM Command Set) -------------------------------

# --- SCSI (SPC-5 / SBC-4) ------------------------------------------------------------------------


# --- clocks --------------------------------------------------------------------------------------
class StepClock:
    """A clock that advances ``step`` seconds every time it is read: one command ≈ one second."""

    def __init__(self, step: float = 1.0, start: float = 0.0) -> None:
        self.step = step
        self.now = start

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class ManualClock:
    """A clock that moves only when the test calls :meth:`advance`."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


# --- configuration -------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriveModel:
    """What the emulated drive is and supports (identity and capabilities)."""

    serial: str = "EMU-0001"
    model: str = "Emulated Firmware Drive"
    firmware: str = "EMU1.0"
    rotation_rpm: int = 0  # 0 = non-rotating (SSD); ACS-4 word 217 / SBC-4 VPD B1h
    security_supported: bool = True
    enhanced_erase_supported: bool = True
    sanitize_crypto: bool = True
    sanitize_block: bool = True
    sanitize_overwrite: bool = True
    antifreeze_supported: bool = True
    operation_seconds: float = 4.0
    erase_unit_minutes: int = 2
    block_erase_fill: int = 0x00  # what a block erase leaves behind: 0x00 or 0xFF
    master_password: bytes = b"EMULATED-MASTER"
    master_password_identifier: int = 0xFFFE
    # hidden-area feature sets: HPA (word 82 bit 10; obsolete since ACS-3), DCO (word 83 bit 11;
    # obsolete since ACS-3), Accessible Max Address Configuration (word 119 bit 8; ACS-3/ACS-4)
    hpa_supported: bool = False
    dco_supported: bool = False
    amac_supported: bool = False
    nvme_format_all_namespaces: bool = True  # FNA bit 0
    nvme_secure_erase_all_namespaces: bool = True  # FNA bit 1
    nvme_crypto_format_supported: bool = True  # FNA bit 2
    nvme_no_deallocate_inhibited: bool = False  # SANICAP NDI
    nvme_deallocate_after_sanitize: bool = True  # deallocated blocks read as zeros (DLFEAT 001b)
    # SAT-2 and later SATLs may answer ATA PASS-THROUGH in fixed format (COUNT 7:0, LBA 23:0 only)
    # unless D_SENSE is set (SAT-4 "Fixed format sense data"; recent libata does); False models the
    # older always-descriptor behaviour.
    satl_fixed_sense_unless_d_sense: bool = False


SanitizeFailureMode = Literal["restricted", "unrestricted"]


@dataclass(frozen=True)
class Faults:
    """Injected failures and initial conditions.

    ``abort_on``: opcodes (ATA command byte, SCSI operation code, NVMe opcode) the drive aborts.
    ``frozen``: ATA security and sanitize are frozen at every power-on (a BIOS froze them).
    ``locked_with_password``: fresh state starts with this user password set, locked (SEC4).
    ``sanitize_fails``: fresh state starts in the sanitize-failed state of that mode, and every
    sanitize started by this instance fails too (mode then follows the command's AUSE / FAILURE
    MODE bit, as the specs say).
    ``power_loss_after_polls``: after this many progress polls during an operation (0 = during
    a synchronous SECURITY ERASE UNIT) the drive loses power: the command raises DriveRemoved,
    the instance is dead, and the state file keeps the operation in progress.
    ``passthrough_blocked``: behaves like a USB bridge rejecting ATA PASS-THROUGH / NVMe admin.
    ``lies_about_success``: erase commands report success and change nothing.
    ``hpa_sectors`` / ``dco_sectors``: fresh state starts with this many sectors at the end of the
    medium hidden by SET MAX ADDRESS (or SET ACCESSIBLE MAX ADDRESS) / by DEVICE CONFIGURATION SET.
    ``dco_frozen``: DEVICE CONFIGURATION FREEZE LOCK at every power-on (every DCO command aborts).
    ``max_address_frozen``: SET MAX FREEZE LOCK / FREEZE ACCESSIBLE MAX ADDRESS at every power-on.
    ``stale_kernel_capacity``: a kernel rescan does not pick up a new capacity (libata answering
    READ CAPACITY from the sector count it cached at probe time).
    """

    abort_on: frozenset[int] = frozenset()
    frozen: bool = False
    locked_with_password: bytes | None = None
    sanitize_fails: SanitizeFailureMode | None = None
    power_loss_after_polls: int | None = None
    passthrough_blocked: bool = False
    lies_about_success: bool = False
    hpa_sectors: int = 0
    dco_sectors: int = 0
    dco_frozen: bool = False
    max_address_frozen: bool = False
    stale_kernel_capacity: bool = False


# --- persistent state ----------------------------------------------------------------------------
@dataclass
class _Operation:
    action: str  # "crypto" | "block" | "overwrite"
    duration_s: float
    unrestricted: bool
    pattern_hex: str = "00"
    passes: int = 1
    invert: bool = False
    no_deallocate: bool = False
    key: str = ""
    elapsed_s: float = 0.0
    erased_bytes: int = 0
    will_fail: bool = False
    cdw10: int = 0


@dataclass
class _State:
    user_password: str | None = None  # hex; None = security disabled
    master_password: str = ""
    master_identifier: int = 0xFFFE
    capability_maximum: bool = False
    sanitize: str = "idle"  # idle | in_progress | failed
    last_result: str = "never"  # never | success | success_deallocated | failed
    failure_unrestricted: bool = False
    operation: _Operation | None = None
    last_cdw10: int = 0
    passes_done: int = 0
    erased_mtime_ns: int | None = None
    nvme_lbaf: int = 0
    dco_max_lba: int | None = None  # native max set by DEVICE CONFIGURATION SET; None: factory setting
    accessible_max_lba: int | None = None  # set by non-volatile SET MAX / SET ACCESSIBLE MAX; None: native max

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> _State:
        operation = raw.pop("operation", None)
        state = cls(**raw)
        state.operation = _Operation(**operation) if operation else None
        return state


def state_path_for(data_path: Path) -> Path:
    """The JSON sidecar that holds an emulated drive's persistent state."""
    return data_path.with_name(data_path.name + ".state.json")


# linux/loop.h: LOOP_SET_STATUS64 / LOOP_GET_STATUS64 and struct loop_info64 (232 bytes, lo_inode at
# byte 8, lo_sizelimit at byte 32)
_LOOP_SET_STATUS64 = 0x4C04
_LOOP_GET_STATUS64 = 0x4C05
_LOOP_INFO64 = struct.Struct("=QQQQQIIII64s64s32sQQ")


def set_loop_capacity(device_path: str, backing: Path, capacity: int) -> None:
    """Make the loop device ``device_path`` over ``backing`` expose ``capacity`` bytes (its size limit).

    Refuses a loop device over another file: the emulator resizes only its own block device.
    """
    fd = os.open(device_path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        raw = bytearray(_LOOP_INFO64.size)
        fcntl.ioctl(fd, _LOOP_GET_STATUS64, raw)
        fields = list(_LOOP_INFO64.unpack(raw))
        if fields[1] != os.stat(backing).st_ino:
            raise ValueError(f"{device_path} is not a loop device over {backing}")
        fields[4] = capacity
        for _attempt in range(50):
            try:
                fcntl.ioctl(fd, _LOOP_SET_STATUS64, _LOOP_INFO64.pack(*fields))
                return
            except BlockingIOError:  # EAGAIN: pages were dirtied while the loop driver resized; try again
                os.fsync(fd)
        raise OSError(errno.EAGAIN, f"{device_path}: LOOP_SET_STATUS64 kept answering EAGAIN")
    finally:
        os.close(fd)


class _PowerLost(Exception):
    pass


class _HostTimeout(Exception):
    """The command outlived the host's timeout: the kernel gives up, the drive carries on."""


# --- the shared machinery ------------------------------------------------------------------------
class _EmulatedDrive:
    """Backing file, sidecar state, clock, power cycle and sanitize progress shared by all kinds."""

    block_size = _ATA_BLOCK

    def __init__(
        self,
        data_path: str | os.PathLike[str],
        *,
        size_bytes: int | None = None,
        model: DriveModel | None = None,
        faults: Faults | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.data_path = Path(data_path)
        self.state_path = state_path_for(self.data_path)
        self.model = model or DriveModel()
        self.faults = faults or Faults()
        self._clock: Clock = clock or StepClock()
        if not self.data_path.exists():
            if size_bytes is None:
                raise FileNotFoundError(f"{self.data_path}: backing file missing and no size_bytes given")
            with open(self.data_path, "wb") as handle:
                handle.truncate(size_bytes)
        if os.path.getsize(self.data_path) % 4096:
            raise ValueError("backing file size must be a multiple of 4096")
        self._power_on()

    def _power_on(self) -> None:
        """Load persistent state and reset volatile state, as at power-on."""
        if self.state_path.exists():
            self._state = _State.from_json(json.loads(self.state_path.read_text()))
        else:
            self._state = _State(
                master_password=self.model.master_password.hex(),
                master_identifier=self.model.master_password_identifier,
            )
            if self.faults.locked_with_password is not None:
                self._state.user_password = _pad_password(self.faults.locked_with_password).hex()
            if self.faults.sanitize_fails is not None:
                self._state.sanitize = "failed"
                self._state.last_result = "failed"
                self._state.failure_unrestricted = self.faults.sanitize_fails == "unrestricted"
            factory_max = self.size_bytes // _ATA_BLOCK - 1
            if self.faults.dco_sectors:
                self._state.dco_max_lba = factory_max - self.faults.dco_sectors
            if self.faults.hpa_sectors:
                self._state.accessible_max_lba = factory_max - self.faults.dco_sectors - self.faults.hpa_sectors
            self._save()
        # Volatile state: what a power cycle resets (ACS-4 Security and Sanitize Device feature sets).
        self._security_frozen = self.faults.frozen
        self._sanitize_frozen = self.faults.frozen
        self._antifreeze = False
        self._unlocked = False
        self._attempts = 0
        self._erase_prepared = False
        self._polls = 0
        self._dead = False
        self._d_sense = False  # SPC-5 Control mode page D_SENSE (current value, volatile)
        self._dco_frozen = self.faults.dco_frozen
        self._max_address_frozen = self.faults.max_address_frozen
        self._volatile_max_lba: int | None = None  # SET MAX ADDRESS EXT with VV=0 lasts until power-off
        self._native_max_read = False  # READ NATIVE MAX ADDRESS EXT was the previous command
        self._last_time = self._clock()

    # -- public helpers --
    @property
    def size_bytes(self) -> int:
        """Capacity of the backing file in bytes."""
        return os.path.getsize(self.data_path)

    @property
    def sanitize_in_progress(self) -> bool:
        """True while a sanitize operation runs (persists across instances)."""
        return self._state.sanitize == "in_progress"

    def close(self) -> None:
        """Nothing to release; the state is saved after every change."""

    def power_cycle(self) -> None:
        """Reset volatile state as a power cycle would (same as opening a new instance)."""
        self._power_on()

    def execute(self, command: Command) -> Completion:
        """Run ``command`` against the emulated firmware."""
        if self._dead:
            raise DriveRemoved(f"{self.data_path}: emulated drive lost power")
        try:
            self._tick()
            return self._dispatch(command)
        except _PowerLost as exc:
            self._dead = True
            self._save()
            raise DriveRemoved(f"{self.data_path}: emulated drive lost power mid-operation") from exc

    def _dispatch(self, command: Command) -> Completion:
        raise NotImplementedError

    def _scsi_sense(self, key: int, asc: tuple[int, int], progress: int | None = None) -> bytes:
        if self._d_sense:
            return encode_descriptor_sense(key, *asc, progress=progress)
        return encode_fixed_sense(key, *asc, progress=progress)

    def _control_mode_page(self) -> bytes:
        # SPC-5 Control mode page (0Ah), 12 bytes; byte 2 bit 2 D_SENSE
        page = bytearray(12)
        page[0], page[1] = 0x0A, 0x0A
        page[2] = 0x04 if self._d_sense else 0x00
        return bytes(page)

    def _mode_sense_10(self, cdb: bytes) -> bytes:
        """SPC-5 MODE SENSE (10) for the Control mode page (current and changeable values)."""
        page_control, page_code = cdb[2] >> 6, cdb[2] & 0x3F
        if page_code not in (0x0A, 0x3F) or page_control == 0b11:
            raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB)
        page = bytearray(self._control_mode_page())
        if page_control == 0b01:  # changeable values: only D_SENSE
            page[2:] = bytes([0x04]) + bytes(9)
        header = (6 + len(page)).to_bytes(2, "big") + bytes(6)  # MODE DATA LENGTH excludes itself
        return header + bytes(page)

    def _mode_select_10(self, command: ScsiCommand) -> None:
        """SPC-5 MODE SELECT (10): accepts the Control mode page and applies D_SENSE."""
        cdb, parameters = command.cdb, command.data_out
        length = int.from_bytes(cdb[7:9], "big")
        if not cdb[1] & 0x10 or len(parameters) < length or length < 8 + 4:
            raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB)
        start = 8 + int.from_bytes(parameters[6:8], "big")
        if start + 4 > length or parameters[start] & 0x3F != 0x0A:
            raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAMETER_LIST)
        self._d_sense = bool(parameters[start + 2] & 0x04)

    # -- state --
    def _save(self) -> None:
        temporary = self.state_path.with_name(self.state_path.name + ".tmp")
        temporary.write_text(json.dumps(self._state.to_json(), indent=1, sort_keys=True))
        os.replace(temporary, self.state_path)

    @property
    def _security_enabled(self) -> bool:
        return self._state.user_password is not None

    @property
    def _locked(self) -> bool:
        return self._security_enabled and not self._unlocked

    # -- time and sanitize progress --
    def _tick(self) -> None:
        now = self._clock()
        delta, self._last_time = max(0.0, now - self._last_time), now
        operation = self._state.operation
        if self._state.sanitize != "in_progress" or operation is None:
            return
        operation.elapsed_s += delta
        fraction = min(1.0, operation.elapsed_s / operation.duration_s) if operation.duration_s else 1.0
        limit = self.size_bytes // 2 if operation.will_fail else self.size_bytes
        target = min(limit, int(self.size_bytes * fraction) // 4096 * 4096)
        if target > operation.erased_bytes:
            self._apply(operation, operation.erased_bytes, target)
            operation.erased_bytes = target
        if fraction >= 1.0:
            self._finish(operation)
        self._save()

    def _progress(self) -> int:
        operation = self._state.operation
        if operation is None or self._state.sanitize != "in_progress" or not operation.duration_s:
            return 0xFFFF
        return min(0xFFFF, int(operation.elapsed_s / operation.duration_s * 0x10000))

    def _poll(self) -> None:
        """Count a progress poll; lose power once the injected budget is spent."""
        if self._state.sanitize != "in_progress" or self.faults.power_loss_after_polls is None:
            return
        self._polls += 1
        if self._polls > self.faults.power_loss_after_polls:
            raise _PowerLost()

    def _start(self, operation: _Operation) -> None:
        operation.will_fail = self.faults.sanitize_fails is not None
        operation.key = secrets.token_hex(16)
        self._state.operation = operation
        self._state.sanitize = "in_progress"
        self._state.last_cdw10 = operation.cdw10
        self._polls = 0
        self._save()

    def _finish(self, operation: _Operation) -> None:
        self._state.operation = None
        if operation.will_fail:
            self._state.sanitize = "failed"
            self._state.last_result = "failed"
            self._state.failure_unrestricted = operation.unrestricted
            self._state.passes_done = 0
            return
        self._state.sanitize = "idle"
        self._state.last_result = "success"
        self._state.passes_done = operation.passes if operation.action == "overwrite" else 0
        self._after_success(operation)
        self._state.erased_mtime_ns = os.stat(self.data_path).st_mtime_ns

    def _after_success(self, operation: _Operation) -> None:
        """Hook for interface-specific completion effects (NVMe deallocation)."""

    def _fake_success(self, operation: _Operation) -> None:
        """``lies_about_success``: record a completed operation that changed nothing."""
        self._state.sanitize = "idle"
        self._state.last_result = "success"
        self._state.last_cdw10 = operation.cdw10
        self._state.operation = None
        self._save()

    # -- media --
    def _apply(self, operation: _Operation, start: int, end: int) -> None:
        if operation.action == "crypto":
            self._fill_random(operation.key, start, end)
        elif operation.action == "block":
            self._fill_pattern(bytes([self.model.block_erase_fill]), start, end)
        else:
            pattern = bytes.fromhex(operation.pattern_hex)
            if operation.invert and operation.passes % 2 == 0:
                pattern = bytes(byte ^ 0xFF for byte in pattern)  # the last pass writes the inverse
            self._fill_pattern(pattern, start, end)

    def _fill_pattern(self, pattern: bytes, start: int, end: int) -> None:
        period = pattern * (_CHUNK // len(pattern) + 2)
        with open(self.data_path, "r+b") as handle:
            position = start
            while position < end:
                length = min(_CHUNK, end - position)
                phase = position % len(pattern)
                handle.seek(position)
                handle.write(period[phase : phase + length])
                position += length

    def _fill_random(self, key: str, start: int, end: int) -> None:
        # Data read through a new media key: deterministic garbage per (key, chunk).
        with open(self.data_path, "r+b") as handle:
            position = start
            while position < end:
                chunk = position // _CHUNK
                block = random.Random(f"{key}:{chunk}").randbytes(_CHUNK)
                offset = position - chunk * _CHUNK
                length = min(_CHUNK - offset, end - position)
                handle.seek(position)
                handle.write(block[offset : offset + length])
                position += length

    def _read(self, offset: int, length: int) -> bytes:
        with open(self.data_path, "rb") as handle:
            handle.seek(offset)
            return handle.read(length)

    def _write(self, offset: int, data: bytes) -> None:
        with open(self.data_path, "r+b") as handle:
            handle.seek(offset)
            handle.write(data)

    def _abort_injected(self, opcode: int) -> bool:
        return opcode in self.faults.abort_on


def _pad_password(password: bytes) -> bytes:
    if len(password) > 32:
        raise ValueError("ATA passwords are at most 32 bytes")
    return password.ljust(32, b"\x00")


def _ata_string(text: str, length: int) -> bytes:
    # ACS-4: ATA strings are space padded and byte-swapped within each word
    raw = text.encode("ascii")[:length].ljust(length, b" ")
    return b"".join(raw[index + 1 : index + 2] + raw[index : index + 1] for index in range(0, length, 2))


# --- ATA -----------------------------------------------------------------------------------------
class _AtaAbort(Exception):
    def __init__(self, lba: int = 0, count: int = 0, error: int = ATA_ERROR_ABRT) -> None:
        super().__init__("abort")
        self.lba = lba
        self.count = count
        self.error = error


class EmulatedAtaDrive(_EmulatedDrive):
    """An ATA drive behind a SAT layer: security feature set, sanitize, IDENTIFY, PIO/DMA I/O."""

    def _dispatch(self, command: Command) -> Completion:
        if isinstance(command, AtaCommand):
            return self._ata(command)
        if isinstance(command, ScsiCommand):
            return self._satl(command)
        raise map_os_error(OSError(errno.ENOTTY, "Inappropriate ioctl for device"), command, str(self.data_path))

    def _ata(self, command: AtaCommand) -> Completion:
        cdb = build_ata_pass_through_16(command)
        if self.faults.passthrough_blocked:
            # What USB bridges without SAT pass-through answer (fixed format, no ATA registers).
            sense = encode_fixed_sense(SenseKey.ILLEGAL_REQUEST, *ASC_INVALID_COMMAND_OPERATION_CODE)
            return interpret_ata_result(command, SCSI_STATUS_CHECK_CONDITION, sense, b"", device=str(self.data_path))
        protocol, opcode, features, count, lba, _device, extend = parse_ata_pass_through_16(cdb)
        previous_prepared, self._erase_prepared = self._erase_prepared, False
        native_max_read, self._native_max_read = self._native_max_read, False
        data = b""
        out_count, out_lba = count, lba
        try:
            if self._abort_injected(opcode):
                raise _AtaAbort()
            if opcode == ATA_IDENTIFY_DEVICE:  # ACS-4 IDENTIFY DEVICE (ECh), PIO data-in
                data = self.identify_device()
            elif opcode == ATA_SANITIZE_DEVICE:
                out_count, out_lba = self._sanitize(features, count, lba)
            elif opcode in (
                ATA_SECURITY_SET_PASSWORD,
                ATA_SECURITY_UNLOCK,
                ATA_SECURITY_ERASE_PREPARE,
                ATA_SECURITY_ERASE_UNIT,
                ATA_SECURITY_FREEZE_LOCK,
                ATA_SECURITY_DISABLE_PASSWORD,
            ):
                self._block_when_sanitizing()
                self._security(opcode, command.data_out, previous_prepared, command.timeout_s)
            elif opcode in (ATA_READ_SECTORS_EXT, ATA_READ_DMA_EXT, ATA_WRITE_SECTORS_EXT, ATA_WRITE_DMA_EXT):
                self._block_media_access()
                data = self._ata_io(opcode, count, lba, command)
            elif opcode in (ATA_READ_NATIVE_MAX_ADDRESS_EXT, ATA_SET_MAX_ADDRESS_EXT, ATA_ACCESSIBLE_MAX_ADDRESS):
                self._block_when_sanitizing()
                out_lba = self._max_address(opcode, features, count, lba, native_max_read)
            elif opcode == ATA_DEVICE_CONFIGURATION:
                self._block_when_sanitizing()
                data = self._device_configuration(features)
            else:
                raise _AtaAbort()
        except _HostTimeout as exc:
            raise CommandTimeout(
                f"{self.data_path}: {command_label(command)} timed out after {command.timeout_s:g} s "
                f"(IDENTIFY words 89/90 estimate {self.model.erase_unit_minutes} min)",
                opcode=opcode,
            ) from exc
        except _AtaAbort as abort:
            registers = AtaRegisters(
                error=abort.error,
                status=ATA_STATUS_ERR,
                count=abort.count,
                lba=abort.lba,
                device=0x40,
                extend=extend,
            )
            sense = self._ata_sense(SenseKey.ABORTED_COMMAND, (0, 0), registers)
            return interpret_ata_result(command, SCSI_STATUS_CHECK_CONDITION, sense, b"", device=str(self.data_path))
        registers = AtaRegisters(
            error=0, status=ATA_STATUS_OK, count=out_count, lba=out_lba, device=0x40, extend=extend
        )
        sense = self._ata_sense(SenseKey.RECOVERED_ERROR, ASC_ATA_PASS_THROUGH_INFORMATION, registers)
        del protocol
        return interpret_ata_result(command, SCSI_STATUS_CHECK_CONDITION, sense, data, device=str(self.data_path))

    def _ata_sense(self, key: int, asc: tuple[int, int], registers: AtaRegisters) -> bytes:
        if self.model.satl_fixed_sense_unless_d_sense and not self._d_sense:
            return encode_fixed_ata_sense(key, *asc, registers)
        return encode_descriptor_sense(key, *asc, ata=registers)

    def _satl(self, command: ScsiCommand) -> Completion:
        """The SCSI side of a SAT layer (libata's SATL): enough to probe the disk and set D_SENSE."""
        device = str(self.data_path)
        cdb = command.cdb
        try:
            if cdb[0] == SCSI_INQUIRY and not cdb[1] & 0x01 and not cdb[2]:
                data = bytearray(36)  # SAT-4 standard INQUIRY data: VENDOR IDENTIFICATION "ATA"
                data[2], data[3], data[4] = 0x07, 0x02, 31
                data[8:16] = b"ATA     "
                data[16:32] = self.model.model.encode("ascii")[:16].ljust(16, b" ")
                data[32:36] = self.model.firmware.encode("ascii")[-4:].ljust(4, b" ")
                payload = bytes(data)
            elif cdb[0] == SCSI_TEST_UNIT_READY:
                if self._state.sanitize == "in_progress":
                    raise _ScsiCheck(SenseKey.NOT_READY, ASC_NOT_READY_SANITIZE_IN_PROGRESS, progress=self._progress())
                payload = b""
            elif cdb[0] == SCSI_SERVICE_ACTION_IN_16 and cdb[1] & 0x1F == 0x10:  # SBC-4 READ CAPACITY (16)
                # SAT-4: RETURNED LOGICAL BLOCK ADDRESS is the accessible maximum (what IDENTIFY reports)
                payload = self.accessible_max_lba.to_bytes(8, "big") + (512).to_bytes(4, "big")
                payload += bytes(20)
            elif cdb[0] == SCSI_MODE_SENSE_10:
                payload = self._mode_sense_10(cdb)
            elif cdb[0] == SCSI_MODE_SELECT_10:
                self._mode_select_10(command)
                payload = b""
            else:
                raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_INVALID_COMMAND_OPERATION_CODE)
        except _ScsiCheck as check:
            sense = self._scsi_sense(check.key, check.asc, check.progress)
            return _scsi_reply(command, SCSI_STATUS_CHECK_CONDITION, sense, device=device)
        if command.data_in_length:
            payload = payload[: command.data_in_length]
        return _scsi_reply(command, SCSI_STATUS_GOOD, b"", payload, device=device)

    # -- blocking states --
    def _block_when_sanitizing(self) -> None:
        # ACS-4: in SD2 (failed) and SD3 (in progress) only sanitize-related commands run
        if self._state.sanitize in ("in_progress", "failed"):
            raise _AtaAbort()

    def _block_media_access(self) -> None:
        self._block_when_sanitizing()
        if self._locked:  # ACS-4 SEC4: media access commands are aborted
            raise _AtaAbort()

    def _ata_io(self, opcode: int, count: int, lba: int, command: AtaCommand) -> bytes:
        blocks = count or 65536
        if lba + blocks > self.accessible_max_lba + 1:  # ACS-4: beyond the accessible maximum -> IDNF
            raise _AtaAbort(lba=lba, error=ATA_ERROR_IDNF)
        if opcode in (ATA_READ_SECTORS_EXT, ATA_READ_DMA_EXT):  # ACS-4 READ SECTORS EXT / READ DMA EXT
            if command.data_in_length != blocks * _ATA_BLOCK:
                raise _AtaAbort()
            return self._read(lba * _ATA_BLOCK, blocks * _ATA_BLOCK)
        if len(command.data_out) != blocks * _ATA_BLOCK:  # ACS-4 WRITE SECTORS EXT / WRITE DMA EXT
            raise _AtaAbort()
        self._write(lba * _ATA_BLOCK, command.data_out)
        return b""

    # -- hidden areas: HPA (ACS-2), AMAC (ACS-4), DCO (ATA8-ACS) --
    @property
    def factory_max_lba(self) -> int:
        """The last LBA of the whole medium (the backing file)."""
        return self.size_bytes // _ATA_BLOCK - 1

    @property
    def native_max_lba(self) -> int:
        """The native maximum: the factory maximum, or what a DCO reduced it to."""
        dco = self._state.dco_max_lba
        return self.factory_max_lba if dco is None else dco

    @property
    def accessible_max_lba(self) -> int:
        """The maximum the host can address (IDENTIFY words 60-61 / 100-103 minus one)."""
        if self._volatile_max_lba is not None:
            return self._volatile_max_lba
        accessible = self._state.accessible_max_lba
        return self.native_max_lba if accessible is None else accessible

    def _max_address(self, opcode: int, features: int, count: int, lba: int, native_max_read: bool) -> int:
        if opcode == ATA_READ_NATIVE_MAX_ADDRESS_EXT:  # ACS-2 READ NATIVE MAX ADDRESS EXT (27h)
            if not self.model.hpa_supported:
                raise _AtaAbort()
            self._native_max_read = True
            return self.native_max_lba
        if opcode == ATA_SET_MAX_ADDRESS_EXT:  # ACS-2 SET MAX ADDRESS EXT (37h)
            # aborted unless immediately preceded by READ NATIVE MAX ADDRESS EXT, or while SET MAX is frozen
            if not self.model.hpa_supported or not native_max_read or self._max_address_frozen:
                raise _AtaAbort()
            self._set_accessible_max(lba, volatile=not count & 0x0001)  # COUNT bit 0: VV (value volatile)
            return lba
        if not self.model.amac_supported:
            raise _AtaAbort()
        if features == AMAC_GET_NATIVE_MAX:  # ACS-4 GET NATIVE MAX ADDRESS EXT (78h/0000h)
            return self.native_max_lba
        if features == AMAC_SET_ACCESSIBLE_MAX:  # ACS-4 SET ACCESSIBLE MAX ADDRESS EXT (78h/0001h), non-volatile
            if self._max_address_frozen:
                raise _AtaAbort()
            self._set_accessible_max(lba, volatile=False)
            return 0
        if features == AMAC_FREEZE:  # ACS-4 FREEZE ACCESSIBLE MAX ADDRESS EXT (78h/0002h)
            self._max_address_frozen = True
            return 0
        raise _AtaAbort()

    def _set_accessible_max(self, lba: int, *, volatile: bool) -> None:
        if lba > self.native_max_lba:
            raise _AtaAbort(lba=lba, error=ATA_ERROR_IDNF | ATA_ERROR_ABRT)
        if volatile:
            self._volatile_max_lba = lba
            return
        self._volatile_max_lba = None
        self._state.accessible_max_lba = None if lba == self.native_max_lba else lba
        self._save()

    def _device_configuration(self, features: int) -> bytes:
        # ATA8-ACS DEVICE CONFIGURATION FREEZE LOCK: every DCO command aborts until power-off
        if not self.model.dco_supported or self._dco_frozen:
            raise _AtaAbort()
        if features == DCO_FREEZE_LOCK:  # ATA8-ACS DEVICE CONFIGURATION FREEZE LOCK (B1h/C1h)
            self._dco_frozen = True
            return b""
        if features == DCO_IDENTIFY:  # ATA8-ACS DEVICE CONFIGURATION IDENTIFY (B1h/C2h), PIO data-in
            words = [0] * 256
            words[0] = 0x0002  # data structure revision
            for index in range(4):  # words 3-6: maximum LBA the device can be configured to
                words[3 + index] = (self.factory_max_lba >> (16 * index)) & 0xFFFF
            data = bytearray(b"".join(word.to_bytes(2, "little") for word in words))
            data[510] = 0xA5  # word 255: integrity signature and checksum, as in IDENTIFY DEVICE
            data[511] = (-sum(data[:511])) & 0xFF
            return bytes(data)
        if features == DCO_RESTORE:  # ATA8-ACS DEVICE CONFIGURATION RESTORE (B1h/C0h)
            if self.accessible_max_lba < self.native_max_lba:
                raise _AtaAbort()  # aborted while a host protected area is set
            self._state.dco_max_lba = None
            self._state.accessible_max_lba = None
            self._save()
            return b""
        raise _AtaAbort()  # DEVICE CONFIGURATION SET is not modelled

    def rescan_kernel_capacity(self, device_path: str) -> None:
        """Play the kernel's rescan of this drive (``echo 1 > /sys/class/block/sdX/device/rescan``).

        sd re-reads READ CAPACITY (16) through the SATL and resizes the block device. The emulated
        drive's block device is a loop device over its backing file, so the loop device's size limit
        becomes the capacity the SATL reports. With ``Faults.stale_kernel_capacity`` nothing changes,
        as with libata answering from the sector count it cached when it probed the disk.
        """
        if self.faults.stale_kernel_capacity:
            return
        # SBC-4 READ CAPACITY (16): SERVICE ACTION IN (16) 9Eh / 10h, allocation length 32
        cdb = bytes([SCSI_SERVICE_ACTION_IN_16, 0x10]) + bytes(8) + (32).to_bytes(4, "big") + bytes(2)
        data = self.execute(ScsiCommand(cdb, data_in_length=32)).data
        capacity = (int.from_bytes(data[0:8], "big") + 1) * int.from_bytes(data[8:12], "big")
        set_loop_capacity(device_path, self.data_path, capacity)

    # -- ACS-4 security feature set --
    def _security(self, opcode: int, payload: bytes, prepared: bool, timeout_s: float) -> None:
        if not self.model.security_supported:
            raise _AtaAbort()
        if opcode == ATA_SECURITY_FREEZE_LOCK:  # ACS-4 SECURITY FREEZE LOCK (F5h): SEC1→SEC2, SEC5→SEC6
            if self._locked:
                raise _AtaAbort()
            self._security_frozen = True
            return
        if opcode == ATA_SECURITY_ERASE_PREPARE:  # ACS-4 SECURITY ERASE PREPARE (F3h)
            if self._security_frozen:
                raise _AtaAbort()
            self._erase_prepared = True
            return
        if self._security_frozen or len(payload) < _ATA_BLOCK:
            raise _AtaAbort()
        control = int.from_bytes(payload[0:2], "little")
        master = bool(control & 0x0001)
        password = payload[2:34]
        if opcode == ATA_SECURITY_SET_PASSWORD:  # ACS-4 SECURITY SET PASSWORD (F1h)
            if self._locked:
                raise _AtaAbort()
            if master:
                self._state.master_password = password.hex()
                identifier = int.from_bytes(payload[34:36], "little")
                if identifier not in (0x0000, 0xFFFF):
                    self._state.master_identifier = identifier
            else:
                self._state.user_password = password.hex()
                self._state.capability_maximum = bool(control & 0x0100)
                self._unlocked = True  # SEC1 → SEC5
            self._save()
            return
        if opcode == ATA_SECURITY_UNLOCK:  # ACS-4 SECURITY UNLOCK (F2h): SEC4 → SEC5
            if not self._security_enabled or self._attempts >= MAX_PASSWORD_ATTEMPTS:
                raise _AtaAbort()
            if master and self._state.capability_maximum:
                self._fail_attempt()  # Maximum capability: master cannot unlock
            if not self._password_matches(master, password):
                self._fail_attempt()
            self._unlocked = True
            return
        if opcode == ATA_SECURITY_DISABLE_PASSWORD:  # ACS-4 SECURITY DISABLE PASSWORD (F6h): SEC5 → SEC1
            if not self._security_enabled or self._locked:
                raise _AtaAbort()
            if master and self._state.capability_maximum:
                self._fail_attempt()
            if not self._password_matches(master, password):
                self._fail_attempt()
            self._state.user_password = None
            self._save()
            return
        # ACS-4 SECURITY ERASE UNIT (F4h): must directly follow SECURITY ERASE PREPARE
        if not prepared or self._attempts >= MAX_PASSWORD_ATTEMPTS:
            raise _AtaAbort()
        enhanced = bool(control & 0x0002)
        if enhanced and not self.model.enhanced_erase_supported:
            raise _AtaAbort()
        if not self._security_enabled and not master:
            raise _AtaAbort()
        if not self._password_matches(master, password):
            self._fail_attempt()
        if self.faults.lies_about_success:
            return
        operation = _Operation(action="block", duration_s=0.0, unrestricted=False, key=secrets.token_hex(16))
        if self.faults.power_loss_after_polls == 0:
            self._fill_pattern(b"\x00", 0, self.size_bytes // 2)
            raise _PowerLost()  # the password stays set: the drive comes back locked (SEC4)
        if enhanced:
            self._fill_random(operation.key, 0, self.size_bytes)  # vendor-specific pattern
        else:
            self._fill_pattern(b"\x00", 0, self.size_bytes)
        self._state.user_password = None  # successful erase leaves security disabled (SEC1)
        self._attempts = 0
        self._unlocked = False
        self._save()
        if timeout_s < self.model.erase_unit_minutes * 60:
            raise _HostTimeout()  # the erase finished; the host stopped waiting long before

    def _password_matches(self, master: bool, password: bytes) -> bool:
        stored = self._state.master_password if master else self._state.user_password
        return stored is not None and bytes.fromhex(stored).ljust(32, b"\x00") == password

    def _fail_attempt(self) -> None:
        self._attempts += 1
        raise _AtaAbort()

    # -- ACS-4 7.43 SANITIZE DEVICE --
    def _sanitize(self, features: int, count: int, lba: int) -> tuple[int, int]:
        state = self._state
        if features == ATA_SANITIZE_STATUS_EXT:  # ACS-4 7.43 SANITIZE STATUS EXT (B4h/0000h)
            self._poll()
            if state.sanitize == "failed":
                if count & 0x0001 and state.failure_unrestricted:
                    state.sanitize = "idle"  # CLEAR SANITIZE OPERATION FAILED honoured
                    self._save()
                else:
                    raise _AtaAbort(lba=ATA_SANITIZE_REASON_UNSUCCESSFUL)
            return self._sanitize_status_count(), self._progress()
        if not self._sanitize_supported(features):
            raise _AtaAbort(lba=ATA_SANITIZE_REASON_UNSUPPORTED)
        if state.sanitize == "in_progress" or self._locked:
            raise _AtaAbort(lba=ATA_SANITIZE_REASON_UNSUCCESSFUL)
        if features == ATA_SANITIZE_ANTIFREEZE_LOCK_EXT:  # ACS-4 7.43 SANITIZE ANTIFREEZE LOCK EXT (B4h/0040h)
            if lba != ATA_SANITIZE_ANTIFREEZE_LOCK_KEY:
                raise _AtaAbort()
            self._antifreeze = True
            return self._sanitize_status_count(), 0
        if self._sanitize_frozen:
            raise _AtaAbort(lba=ATA_SANITIZE_REASON_FROZEN)
        if features == ATA_SANITIZE_FREEZE_LOCK_EXT:  # ACS-4 7.43 SANITIZE FREEZE LOCK EXT (B4h/0020h)
            if lba != ATA_SANITIZE_FREEZE_LOCK_KEY:
                raise _AtaAbort()
            if self._antifreeze:
                raise _AtaAbort(lba=ATA_SANITIZE_REASON_ANTIFREEZE)
            self._sanitize_frozen = True
            return self._sanitize_status_count(), 0
        unrestricted = bool(count & 0x0010)  # FAILURE MODE bit
        if features == ATA_CRYPTO_SCRAMBLE_EXT:  # ACS-4 7.43 CRYPTO SCRAMBLE EXT (B4h/0011h)
            if lba != ATA_CRYPTO_SCRAMBLE_KEY:
                raise _AtaAbort()
            operation = _Operation("crypto", self.model.operation_seconds, unrestricted, cdw10=features)
        elif features == ATA_BLOCK_ERASE_EXT:  # ACS-4 7.43 BLOCK ERASE EXT (B4h/0012h)
            if lba != ATA_BLOCK_ERASE_KEY:
                raise _AtaAbort()
            operation = _Operation("block", self.model.operation_seconds, unrestricted, cdw10=features)
        else:  # ACS-4 7.43 OVERWRITE EXT (B4h/0014h): LBA 31:0 pattern, LBA 47:32 key
            if lba >> 32 != ATA_OVERWRITE_KEY:
                raise _AtaAbort()
            passes = count & 0x0F or 16
            operation = _Operation(
                "overwrite",
                self.model.operation_seconds,
                unrestricted,
                pattern_hex=(lba & 0xFFFFFFFF).to_bytes(4, "big").hex(),
                passes=passes,
                invert=bool(count & 0x0080),
                cdw10=features,
            )
        if self.faults.lies_about_success:
            self._fake_success(operation)
        else:
            self._start(operation)
        return count, lba

    def _sanitize_supported(self, features: int) -> bool:
        return {
            ATA_CRYPTO_SCRAMBLE_EXT: self.model.sanitize_crypto,
            ATA_BLOCK_ERASE_EXT: self.model.sanitize_block,
            ATA_OVERWRITE_EXT: self.model.sanitize_overwrite,
            ATA_SANITIZE_FREEZE_LOCK_EXT: True,
            ATA_SANITIZE_ANTIFREEZE_LOCK_EXT: self.model.antifreeze_supported,
        }.get(features, False) and self._sanitize_feature_set

    @property
    def _sanitize_feature_set(self) -> bool:
        return self.model.sanitize_crypto or self.model.sanitize_block or self.model.sanitize_overwrite

    def _sanitize_status_count(self) -> int:
        # ACS-4 7.43: COUNT 15 completed without error, 14 in progress, 13 frozen, 12 antifreeze
        value = 0
        if self._state.sanitize == "idle" and self._state.last_result == "success":
            value |= 0x8000
        if self._state.sanitize == "in_progress":
            value |= 0x4000
        if self._sanitize_frozen:
            value |= 0x2000
        if self._antifreeze:
            value |= 0x1000
        return value

    # -- ACS-4 IDENTIFY DEVICE data --
    def identify_device(self) -> bytes:
        """The 512-byte IDENTIFY DEVICE data for the current state (ACS-4 layout)."""
        words = [0] * 256
        words[0] = 0x0040  # ATA device, fixed
        words[47] = 0x8010
        words[49] = 0x0F00  # LBA, DMA, IORDY supported
        words[50] = 0x4000
        words[53] = 0x0006  # words 64-70 and 88 valid
        sanitize_bits = 0x0110  # multiple sector setting valid, 16 sectors
        if self._sanitize_feature_set:
            sanitize_bits |= 0x1000  # SANITIZE FEATURE SUPPORTED
            sanitize_bits |= 0x2000 if self.model.sanitize_crypto else 0
            sanitize_bits |= 0x4000 if self.model.sanitize_overwrite else 0
            sanitize_bits |= 0x8000 if self.model.sanitize_block else 0
            sanitize_bits |= 0x0800  # commands allowed during sanitize follow ACS-3 and later
            sanitize_bits |= 0x0400 if self.model.antifreeze_supported else 0  # ANTIFREEZE LOCK EXT
        words[59] = sanitize_bits
        sectors = self.accessible_max_lba + 1  # words 60-61 and 100-103 follow SET MAX / DCO
        words[60] = min(sectors, 0x0FFFFFFF) & 0xFFFF
        words[61] = min(sectors, 0x0FFFFFFF) >> 16
        words[69] = 0x0000
        words[80] = 0x0FF0  # ATA/ATAPI-4 .. ACS-4
        security = 0x0002 if self.model.security_supported else 0
        hpa = 0x0400 if self.model.hpa_supported else 0  # bit 10: Host Protected Area feature set
        words[82] = 0x4061 | security | hpa  # NOP, look-ahead, write cache, SMART, security
        words[83] = 0x7400 | (0x0800 if self.model.dco_supported else 0)  # 48-bit, FLUSH CACHE (EXT); bit 11 DCO
        words[84] = 0x4000
        words[85] = 0x4061 | (0x0002 if self._security_enabled else 0) | hpa
        words[86] = 0x3400
        if self.model.amac_supported:
            words[86] |= 0x8000  # words 119-120 valid
            words[119] = 0x4000 | 0x0100  # bit 8: Accessible Max Address Configuration feature set
            words[120] = 0x4000
        words[87] = 0x4000
        words[88] = 0x007F
        words[89] = 0x8000 | min(0x7FFF, max(1, self.model.erase_unit_minutes // 2))
        words[90] = 0x8000 | min(0x7FFF, max(1, self.model.erase_unit_minutes // 2))
        words[92] = self._state.master_identifier
        for index in range(4):  # words 100-103: total user addressable logical sectors
            words[100 + index] = (sectors >> (16 * index)) & 0xFFFF
        words[106] = 0x4000  # one logical sector per physical, 512-byte logical sectors
        if self.model.security_supported:  # word 128 security status
            value = 0x0001
            value |= 0x0002 if self._security_enabled else 0
            value |= 0x0004 if self._locked else 0
            value |= 0x0008 if self._security_frozen else 0
            value |= 0x0010 if self._attempts >= MAX_PASSWORD_ATTEMPTS else 0
            value |= 0x0020 if self.model.enhanced_erase_supported else 0
            value |= 0x0100 if self._state.capability_maximum else 0
            words[128] = value
        words[169] = 0x0001 if self.model.rotation_rpm == 0 else 0  # TRIM on flash
        words[217] = 0x0001 if self.model.rotation_rpm == 0 else self.model.rotation_rpm
        data = bytearray(b"".join(word.to_bytes(2, "little") for word in words))
        data[20:40] = _ata_string(self.model.serial, 20)  # words 10-19
        data[46:54] = _ata_string(self.model.firmware, 8)  # words 23-26
        data[54:94] = _ata_string(self.model.model, 40)  # words 27-46
        data[510] = 0xA5  # ACS-4 word 255: checksum signature, then two's-complement checksum
        data[511] = (-sum(data[:511])) & 0xFF
        return bytes(data)


# --- NVMe ----------------------------------------------------------------------------------------
class _NvmeFailure(Exception):
    def __init__(self, sct: int, sc: int, *, dnr: bool = True) -> None:
        super().__init__(f"{sct}/{sc}")
        self.status = NvmeStatus.of(sct, sc, dnr=dnr)


_NVME_LBA_FORMATS = (9, 12)  # LBAF0 512 B, LBAF1 4 KiB


class EmulatedNvmeDrive(_EmulatedDrive):
    """An NVMe controller with one namespace: Identify, Get Log Page, Sanitize, Format NVM, Read/Write."""

    @property
    def block_size(self) -> int:  # type: ignore[override]
        """Current LBA data size from the formatted LBAF."""
        return 1 << _NVME_LBA_FORMATS[self._state.nvme_lbaf]

    def _dispatch(self, command: Command) -> Completion:
        if not isinstance(command, NvmeAdminCommand):
            raise CommandError(f"{self.data_path}: an NVMe controller takes NVMe commands only")
        if self.faults.passthrough_blocked:
            # NVMe behind a USB bridge shows up as SCSI: the NVMe ioctl does not exist there
            raise map_os_error(OSError(errno.ENOTTY, "Inappropriate ioctl for device"), command, str(self.data_path))
        result, data = 0, b""
        try:
            if self._abort_injected(command.opcode):
                raise _NvmeFailure(0, NVME_SC_ABORT_REQUESTED, dnr=False)
            if isinstance(command, NvmeIoCommand):
                data = self._io(command)
            else:
                data = self._admin(command)
        except _NvmeFailure as failure:
            return nvme_completion(command, failure.status.raw, 0, b"")
        if command.data_in_length:
            data = data[: command.data_in_length].ljust(command.data_in_length, b"\x00")
        return nvme_completion(command, 0, result, data)

    def _admin(self, command: NvmeAdminCommand) -> bytes:
        state = self._state
        opcode = command.opcode
        if opcode == NVME_IDENTIFY:  # NVMe Base 2.0
            return self._identify(command)
        if opcode == NVME_GET_LOG_PAGE:  # NVMe Base 2.0
            return self._get_log_page(command)
        if opcode in (NVME_GET_FEATURES, NVME_ABORT):
            return b""
        # NVMe Base 2.0: while sanitizing, only a few admin commands are processed
        if state.sanitize == "in_progress":
            raise _NvmeFailure(0, NVME_SC_SANITIZE_IN_PROGRESS)
        if opcode == NVME_SANITIZE:
            self._sanitize(command)
            return b""
        if opcode == NVME_FORMAT_NVM:
            if state.sanitize == "failed":
                raise _NvmeFailure(0, NVME_SC_SANITIZE_FAILED)
            self._format(command)
            return b""
        raise _NvmeFailure(0, NVME_SC_INVALID_OPCODE)

    def _identify(self, command: NvmeAdminCommand) -> bytes:
        cns = command.cdw10 & 0xFF
        if cns == 0x01:  # NVMe Base 2.0: Identify Controller data structure
            return self.identify_controller()
        if cns == 0x00:  # NVM Command Set: Identify Namespace data structure
            if command.nsid not in (1, 0xFFFFFFFF):
                raise _NvmeFailure(0, NVME_SC_INVALID_NAMESPACE)
            return self.identify_namespace()
        raise _NvmeFailure(0, NVME_SC_INVALID_FIELD)

    def identify_controller(self) -> bytes:
        """4096-byte Identify Controller data (NVMe Base 2.0)."""
        data = bytearray(4096)
        data[0:2] = (0x1B36).to_bytes(2, "little")  # VID
        data[2:4] = (0x1AF4).to_bytes(2, "little")  # SSVID
        data[4:24] = self.model.serial.encode("ascii")[:20].ljust(20, b" ")  # SN
        data[24:64] = self.model.model.encode("ascii")[:40].ljust(40, b" ")  # MN
        data[64:72] = self.model.firmware.encode("ascii")[:8].ljust(8, b" ")  # FR
        data[80:84] = (0x00020000).to_bytes(4, "little")  # VER 2.0.0
        data[111] = 0x01  # CNTRLTYPE: I/O controller
        data[256:258] = (0x0002).to_bytes(2, "little")  # OACS: Format NVM supported
        data[260] = 0x02  # FRMW
        data[261] = 0x02  # LPA
        sanicap = 0
        sanicap |= 0x1 if self.model.sanitize_crypto else 0  # CES
        sanicap |= 0x2 if self.model.sanitize_block else 0  # BES
        sanicap |= 0x4 if self.model.sanitize_overwrite else 0  # OWS
        sanicap |= 1 << 29 if self.model.nvme_no_deallocate_inhibited else 0  # NDI
        data[328:332] = sanicap.to_bytes(4, "little")  # SANICAP
        data[512] = 0x66  # SQES
        data[513] = 0x44  # CQES
        data[516:520] = (1).to_bytes(4, "little")  # NN
        fna = 0
        fna |= 0x1 if self.model.nvme_format_all_namespaces else 0
        fna |= 0x2 if self.model.nvme_secure_erase_all_namespaces else 0
        fna |= 0x4 if self.model.nvme_crypto_format_supported else 0
        data[524] = fna  # FNA
        return bytes(data)

    def identify_namespace(self) -> bytes:
        """4096-byte Identify Namespace data (NVM Command Set)."""
        data = bytearray(4096)
        blocks = self.size_bytes // self.block_size
        data[0:8] = blocks.to_bytes(8, "little")  # NSZE
        data[8:16] = blocks.to_bytes(8, "little")  # NCAP
        data[16:24] = blocks.to_bytes(8, "little")  # NUSE
        data[24] = 0x00  # NSFEAT
        data[25] = len(_NVME_LBA_FORMATS) - 1  # NLBAF (zero-based)
        data[26] = self._state.nvme_lbaf & 0x0F  # FLBAS
        data[33] = 0x01  # DLFEAT: deallocated blocks read as zeros
        for index, lbads in enumerate(_NVME_LBA_FORMATS):
            data[128 + 4 * index : 132 + 4 * index] = (lbads << 16).to_bytes(4, "little")  # LBAF: LBADS
        return bytes(data)

    def _get_log_page(self, command: NvmeAdminCommand) -> bytes:
        log_id = command.cdw10 & 0xFF
        dwords = ((command.cdw11 & 0xFFFF) << 16 | command.cdw10 >> 16) + 1
        offset = command.cdw13 << 32 | command.cdw12
        if log_id == NVME_LOG_SANITIZE_STATUS:
            self._poll()
            page = self.sanitize_status_log()
        elif log_id == NVME_LOG_SMART:
            page = bytes(512)
        else:
            raise _NvmeFailure(1, NVME_SCT1_INVALID_LOG_PAGE)
        return page[offset : offset + dwords * 4]

    def sanitize_status_log(self) -> bytes:
        """512-byte Sanitize Status log page 81h (NVMe Base 2.0)."""
        state = self._state
        data = bytearray(512)
        data[0:2] = self._progress().to_bytes(2, "little")  # SPROG
        status = {
            "never": NVME_SSTAT_NEVER,
            "success": NVME_SSTAT_SUCCESS,
            "success_deallocated": NVME_SSTAT_SUCCESS_DEALLOCATED,
            "failed": NVME_SSTAT_FAILED,
        }[state.last_result]
        if state.sanitize == "in_progress":
            status = NVME_SSTAT_IN_PROGRESS
        sstat = status | (state.passes_done & 0x1F) << 3
        unchanged = state.erased_mtime_ns is not None and os.stat(self.data_path).st_mtime_ns == state.erased_mtime_ns
        if state.last_result.startswith("success") and state.sanitize == "idle" and unchanged:
            sstat |= 0x0100  # GDE: nothing written since the sanitize
        data[2:4] = sstat.to_bytes(2, "little")  # SSTAT
        data[4:8] = state.last_cdw10.to_bytes(4, "little")  # SCDW10
        estimate = max(1, int(self.model.operation_seconds)).to_bytes(4, "little")
        data[8:12] = estimate if self.model.sanitize_overwrite else b"\xff" * 4  # EToW
        data[12:16] = estimate if self.model.sanitize_block else b"\xff" * 4  # ETBE
        data[16:20] = estimate if self.model.sanitize_crypto else b"\xff" * 4  # ETCE
        return bytes(data)

    def _sanitize(self, command: NvmeAdminCommand) -> None:
        # NVMe Base 2.0 Sanitize: CDW10 SANACT 2:0, AUSE 3, OWPASS 7:4, OIPBP 8, NDAS 9
        cdw10 = command.cdw10
        action = cdw10 & 0x7
        unrestricted = bool(cdw10 & 0x8)
        state = self._state
        if not (self.model.sanitize_block or self.model.sanitize_overwrite or self.model.sanitize_crypto):
            raise _NvmeFailure(0, NVME_SC_INVALID_OPCODE)  # SANICAP = 0: no Sanitize command at all (as QEMU)
        if action == NVME_SANACT_EXIT_FAILURE:
            if state.sanitize == "failed":
                if not state.failure_unrestricted:
                    raise _NvmeFailure(0, NVME_SC_SANITIZE_FAILED)  # restricted: only a new sanitize clears it
                state.sanitize = "idle"
                self._save()
            return
        supported = {
            NVME_SANACT_BLOCK: self.model.sanitize_block,
            NVME_SANACT_OVERWRITE: self.model.sanitize_overwrite,
            NVME_SANACT_CRYPTO: self.model.sanitize_crypto,
        }
        if not supported.get(action, False):
            raise _NvmeFailure(0, NVME_SC_INVALID_FIELD)
        name = {NVME_SANACT_BLOCK: "block", NVME_SANACT_OVERWRITE: "overwrite", NVME_SANACT_CRYPTO: "crypto"}[action]
        operation = _Operation(
            name,
            self.model.operation_seconds,
            unrestricted,
            pattern_hex=command.cdw11.to_bytes(4, "little").hex(),
            passes=((cdw10 >> 4) & 0xF) or 16,
            invert=bool(cdw10 & 0x100),
            no_deallocate=bool(cdw10 & 0x200),
            cdw10=cdw10,
        )
        if self.faults.lies_about_success:
            self._fake_success(operation)
        else:
            self._start(operation)

    def _after_success(self, operation: _Operation) -> None:
        deallocate = self.model.nvme_deallocate_after_sanitize and (
            not operation.no_deallocate or self.model.nvme_no_deallocate_inhibited
        )
        if deallocate:
            self._fill_pattern(b"\x00", 0, self.size_bytes)  # deallocated blocks read as zeros (DLFEAT)
        if operation.no_deallocate and self.model.nvme_no_deallocate_inhibited:
            self._state.last_result = "success_deallocated"  # SSTAT 100b

    def _format(self, command: NvmeAdminCommand) -> None:
        # NVMe Base 2.0 Format NVM: CDW10 LBAFL 3:0, MSET 4, PI 7:5, PIL 8, SES 11:9, LBAFU 13:12
        if command.nsid not in (1, 0xFFFFFFFF):
            raise _NvmeFailure(0, NVME_SC_INVALID_NAMESPACE)
        lbaf = (command.cdw10 & 0xF) | ((command.cdw10 >> 12) & 0x3) << 4
        ses = (command.cdw10 >> 9) & 0x7
        if lbaf >= len(_NVME_LBA_FORMATS):
            raise _NvmeFailure(1, NVME_SCT1_INVALID_FORMAT)
        if ses > 2 or (ses == 2 and not self.model.nvme_crypto_format_supported):
            raise _NvmeFailure(0, NVME_SC_INVALID_FIELD)
        if self.faults.lies_about_success:
            return
        self._state.nvme_lbaf = lbaf
        if ses == 2:
            self._fill_random(secrets.token_hex(16), 0, self.size_bytes)  # new media key, nothing deallocated
        else:
            self._fill_pattern(b"\x00", 0, self.size_bytes)
        self._save()

    def _io(self, command: NvmeIoCommand) -> bytes:
        # NVM Command Set: Read (02h) / Write (01h); SLBA in CDW11:10, NLB (0-based) in CDW12 15:0
        if self._state.sanitize == "in_progress":
            raise _NvmeFailure(0, NVME_SC_SANITIZE_IN_PROGRESS)
        if self._state.sanitize == "failed":
            raise _NvmeFailure(0, NVME_SC_SANITIZE_FAILED)
        if command.opcode not in (NVME_IO_READ, NVME_IO_WRITE):
            raise _NvmeFailure(0, NVME_SC_INVALID_OPCODE)
        if command.nsid != 1:
            raise _NvmeFailure(0, NVME_SC_INVALID_NAMESPACE)
        start = command.cdw11 << 32 | command.cdw10
        blocks = (command.cdw12 & 0xFFFF) + 1
        size = self.block_size
        if (start + blocks) * size > self.size_bytes:
            raise _NvmeFailure(0, NVME_SC_LBA_OUT_OF_RANGE)
        if command.opcode == NVME_IO_READ:
            return self._read(start * size, blocks * size)
        if len(command.data_out) != blocks * size:
            raise _NvmeFailure(0, NVME_SC_INVALID_FIELD)
        self._write(start * size, command.data_out)
        return b""


# --- SCSI ----------------------------------------------------------------------------------------
class _ScsiCheck(Exception):
    def __init__(self, key: int, asc: tuple[int, int], *, progress: int | None = None) -> None:
        super().__init__(f"{key}/{asc}")
        self.key = key
        self.asc = asc
        self.progress = progress


def _scsi_reply(
    command: ScsiCommand, status: int, sense: bytes, data: bytes = b"", device: str = "emulated"
) -> Completion:
    return interpret_scsi_result(command, status, sense, data, device=device)


_SCSI_SUPPORTED = (
    (SCSI_TEST_UNIT_READY, 0, 6),
    (SCSI_REQUEST_SENSE, 0, 6),
    (SCSI_INQUIRY, 0, 6),
    (SCSI_READ_10, 0, 10),
    (SCSI_WRITE_10, 0, 10),
    (SCSI_READ_16, 0, 16),
    (SCSI_WRITE_16, 0, 16),
    (SCSI_SERVICE_ACTION_IN_16, 0x10, 16),
    (SCSI_MAINTENANCE_IN, 0x0C, 12),
    (SCSI_MODE_SELECT_10, 0, 10),
    (SCSI_MODE_SENSE_10, 0, 10),
)


class EmulatedScsiDrive(_EmulatedDrive):
    """A SAS/SCSI disk: INQUIRY (+VPD 00h/80h/B1h), READ CAPACITY (16), REPORT SUPPORTED OPERATION
    CODES, SANITIZE (overwrite, block, crypto, exit failure mode; IMMED), REQUEST SENSE progress."""

    def _dispatch(self, command: Command) -> Completion:
        device = str(self.data_path)
        if isinstance(command, AtaCommand):  # a SAS drive has no SATL: the 85h CDB is unknown
            sense = encode_fixed_sense(SenseKey.ILLEGAL_REQUEST, *ASC_INVALID_COMMAND_OPERATION_CODE)
            return interpret_ata_result(command, SCSI_STATUS_CHECK_CONDITION, sense, b"", device=device)
        if not isinstance(command, ScsiCommand):
            raise map_os_error(OSError(errno.ENOTTY, "Inappropriate ioctl for device"), command, device)
        try:
            if self._abort_injected(command.opcode):
                raise _ScsiCheck(SenseKey.ABORTED_COMMAND, (0x00, 0x00))
            data = self._scsi(command)
        except _ScsiCheck as check:
            sense = self._scsi_sense(check.key, check.asc, check.progress)
            return _scsi_reply(command, SCSI_STATUS_CHECK_CONDITION, sense, device=device)
        if command.data_in_length:
            data = data[: command.data_in_length]
        return _scsi_reply(command, SCSI_STATUS_GOOD, b"", data, device=device)

    def _not_ready_check(self) -> None:
        if self._state.sanitize == "in_progress":  # SBC-4: NOT READY, SANITIZE IN PROGRESS + progress
            raise _ScsiCheck(SenseKey.NOT_READY, ASC_NOT_READY_SANITIZE_IN_PROGRESS, progress=self._progress())
        if self._state.sanitize == "failed":  # SBC-4: MEDIUM ERROR, SANITIZE COMMAND FAILED
            raise _ScsiCheck(SenseKey.MEDIUM_ERROR, ASC_SANITIZE_COMMAND_FAILED)

    def _scsi(self, command: ScsiCommand) -> bytes:
        cdb = command.cdb
        opcode = cdb[0]
        if opcode == SCSI_INQUIRY:  # SPC-5 INQUIRY
            return self._inquiry(cdb)
        if opcode == SCSI_REQUEST_SENSE:  # SPC-5 REQUEST SENSE: progress while sanitizing
            self._poll()
            descriptor = bool(cdb[1] & 0x01)
            key, asc, progress = SenseKey.NO_SENSE, (0, 0), None
            if self._state.sanitize == "in_progress":
                key, asc, progress = SenseKey.NOT_READY, ASC_NOT_READY_SANITIZE_IN_PROGRESS, self._progress()
            elif self._state.sanitize == "failed":
                key, asc = SenseKey.MEDIUM_ERROR, ASC_SANITIZE_COMMAND_FAILED
            if descriptor:
                return encode_descriptor_sense(key, *asc, progress=progress)
            return encode_fixed_sense(key, *asc, progress=progress)
        if opcode == SCSI_MAINTENANCE_IN and cdb[1] & 0x1F == 0x0C:  # SPC-5 REPORT SUPPORTED OP CODES
            return self._report_opcodes(cdb)
        if opcode == SCSI_SANITIZE:  # SBC-4 SANITIZE
            return self._sanitize(command)
        if self._state.sanitize == "in_progress":
            self._poll()  # SBC-4: while sanitizing, other commands end NOT READY, SANITIZE IN PROGRESS
            self._not_ready_check()
        if opcode == SCSI_MODE_SENSE_10:
            return self._mode_sense_10(cdb)
        if opcode == SCSI_MODE_SELECT_10:
            self._mode_select_10(command)
            return b""
        self._not_ready_check()
        if opcode == SCSI_TEST_UNIT_READY:
            return b""
        if opcode == SCSI_SERVICE_ACTION_IN_16 and cdb[1] & 0x1F == 0x10:  # SBC-4 READ CAPACITY (16)
            data = bytearray(32)
            data[0:8] = (self.size_bytes // self.block_size - 1).to_bytes(8, "big")
            data[8:12] = self.block_size.to_bytes(4, "big")
            data[14] = 0xC0 if self.model.rotation_rpm == 0 else 0x00  # LBPME, LBPRZ on flash
            return bytes(data)
        if opcode in (SCSI_READ_10, SCSI_WRITE_10, SCSI_READ_16, SCSI_WRITE_16):
            return self._read_write(command)
        raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_INVALID_COMMAND_OPERATION_CODE)

    def _inquiry(self, cdb: bytes) -> bytes:
        if cdb[1] & 0x01:
            page = cdb[2]
            if page == 0x00:  # SPC-5 Supported VPD Pages
                body = bytes([0x00, 0x80, 0xB1])
            elif page == 0x80:  # SPC-5 Unit Serial Number
                body = self.model.serial.encode("ascii")
            elif page == 0xB1:  # SBC-4 Block Device Characteristics
                rate = 0x0001 if self.model.rotation_rpm == 0 else self.model.rotation_rpm
                body = rate.to_bytes(2, "big") + bytes(58)
            else:
                raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB)
            return bytes([0x00, page]) + len(body).to_bytes(2, "big") + body
        if cdb[2]:
            raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB)
        data = bytearray(36)  # SPC-5 standard INQUIRY data
        data[0] = 0x00  # direct access block device
        data[2] = 0x07  # SPC-5
        data[3] = 0x02  # response data format
        data[4] = len(data) - 5
        data[8:16] = b"EMULATED"
        data[16:32] = self.model.model.encode("ascii")[:16].ljust(16, b" ")
        data[32:36] = self.model.firmware.encode("ascii")[:4].ljust(4, b" ")
        return bytes(data)

    def _supported_opcodes(self) -> list[tuple[int, int, int]]:
        entries = list(_SCSI_SUPPORTED)
        actions = [
            (SCSI_SANITIZE_OVERWRITE, self.model.sanitize_overwrite),
            (SCSI_SANITIZE_BLOCK_ERASE, self.model.sanitize_block),
            (SCSI_SANITIZE_CRYPTOGRAPHIC_ERASE, self.model.sanitize_crypto),
        ]
        offered = [action for action, supported in actions if supported]
        if offered:
            entries += [(SCSI_SANITIZE, action, 10) for action in [*offered, SCSI_SANITIZE_EXIT_FAILURE_MODE]]
        return entries

    def _report_opcodes(self, cdb: bytes) -> bytes:
        options = cdb[2] & 0x07
        entries = self._supported_opcodes()
        service_action_commands = {opcode for opcode, action, _length in entries if action}
        if options == 0:  # all commands: 4-byte header, 8-byte descriptors
            body = b"".join(
                bytes([opcode, 0])
                + action.to_bytes(2, "big")
                + bytes([0, 0x01 if opcode in service_action_commands else 0x00])
                + length.to_bytes(2, "big")
                for opcode, action, length in entries
            )
            return len(body).to_bytes(4, "big") + body
        requested_opcode = cdb[3]
        requested_action = int.from_bytes(cdb[4:6], "big")
        if options not in (1, 2, 3):
            raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB)
        match = [
            length
            for opcode, action, length in entries
            if opcode == requested_opcode and (options == 1 or action == requested_action)
        ]
        if options == 1 and requested_opcode in service_action_commands:
            raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB)
        support = 0b011 if match else 0b001
        length = match[0] if match else 0
        return bytes([0, support]) + length.to_bytes(2, "big") + bytes(length)

    def _sanitize(self, command: ScsiCommand) -> bytes:
        cdb = command.cdb
        immediate = bool(cdb[1] & 0x80)
        unrestricted = bool(cdb[1] & 0x20)  # AUSE
        action = cdb[1] & 0x1F
        parameter_length = int.from_bytes(cdb[7:9], "big")
        state = self._state
        if state.sanitize == "in_progress":
            raise _ScsiCheck(SenseKey.NOT_READY, ASC_NOT_READY_SANITIZE_IN_PROGRESS, progress=self._progress())
        if action == SCSI_SANITIZE_EXIT_FAILURE_MODE:  # SBC-4 EXIT FAILURE MODE service action
            if state.sanitize == "failed" and not state.failure_unrestricted:
                raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB)
            state.sanitize = "idle"
            self._save()
            return b""
        supported = {
            SCSI_SANITIZE_OVERWRITE: self.model.sanitize_overwrite,
            SCSI_SANITIZE_BLOCK_ERASE: self.model.sanitize_block,
            SCSI_SANITIZE_CRYPTOGRAPHIC_ERASE: self.model.sanitize_crypto,
        }
        if not supported.get(action, False):
            raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB)
        if action == SCSI_SANITIZE_OVERWRITE:  # SBC-4 OVERWRITE parameter list
            parameters = command.data_out
            if parameter_length < 5 or len(parameters) < parameter_length:
                raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB)
            passes = parameters[0] & 0x1F
            pattern_length = int.from_bytes(parameters[2:4], "big")
            if (
                not passes
                or not pattern_length
                or pattern_length > self.block_size
                or (4 + pattern_length != parameter_length)
            ):
                raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_PARAMETER_LIST)
            operation = _Operation(
                "overwrite",
                self.model.operation_seconds,
                unrestricted,
                pattern_hex=parameters[4 : 4 + pattern_length].hex(),
                passes=passes,
                invert=bool(parameters[0] & 0x80),
                cdw10=action,
            )
        else:
            if parameter_length:
                raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB)
            name = "block" if action == SCSI_SANITIZE_BLOCK_ERASE else "crypto"
            operation = _Operation(name, self.model.operation_seconds, unrestricted, cdw10=action)
        if self.faults.lies_about_success:
            self._fake_success(operation)
            return b""
        self._start(operation)
        if not immediate and command.timeout_s < operation.duration_s:
            # The host gives up; the sanitize carries on (it survives the reset that follows).
            raise CommandTimeout(
                f"{self.data_path}: SANITIZE without IMMED timed out after {command.timeout_s:g} s",
                opcode=SCSI_SANITIZE,
            )
        if not immediate:
            # Without IMMED the command returns when the sanitize is done (or has failed).
            operation.elapsed_s = operation.duration_s
            self._last_time = self._clock()
            self._tick_complete(operation)
            self._not_ready_check()
        return b""

    def _tick_complete(self, operation: _Operation) -> None:
        limit = self.size_bytes // 2 if operation.will_fail else self.size_bytes
        self._apply(operation, operation.erased_bytes, limit)
        operation.erased_bytes = limit
        self._finish(operation)
        self._save()

    def _read_write(self, command: ScsiCommand) -> bytes:
        cdb = command.cdb
        if cdb[0] in (SCSI_READ_10, SCSI_WRITE_10):
            lba, blocks = int.from_bytes(cdb[2:6], "big"), int.from_bytes(cdb[7:9], "big")
        else:
            lba, blocks = int.from_bytes(cdb[2:10], "big"), int.from_bytes(cdb[10:14], "big")
        size = self.block_size
        if (lba + blocks) * size > self.size_bytes:
            raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_LBA_OUT_OF_RANGE)
        if cdb[0] in (SCSI_READ_10, SCSI_READ_16):
            return self._read(lba * size, blocks * size)
        if len(command.data_out) != blocks * size:
            raise _ScsiCheck(SenseKey.ILLEGAL_REQUEST, ASC_INVALID_FIELD_IN_CDB)
        self._write(lba * size, command.data_out)
        return b""
