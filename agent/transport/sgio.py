"""The real SG_IO transport: ATA PASS-THROUGH (16) and plain SCSI CDBs through the Linux sg driver.

Works on a whole-disk block device (``/dev/sdX``) or an sg node (``/dev/sgN``). The layout of
``struct sg_io_hdr`` follows ``include/scsi/sg.h`` (interface 'S', 88 bytes on LP64).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
from types import TracebackType
from typing import Self

from agent.errors import CommandError, DriveBusy, DriveNotFound
from agent.transport.commands import (
    AtaCommand,
    Command,
    Completion,
    DataDirection,
    NvmeAdminCommand,
    ScsiCommand,
    map_os_error,
)
from agent.transport.sat import (
    build_ata_pass_through_16,
    enable_descriptor_sense,
    interpret_ata_result,
    interpret_scsi_result,
)

__all__ = ["SG_IO", "SgIoHeader", "SgIoTransport", "open_device_fd"]

SG_IO = 0x2285  # include/scsi/sg.h
SG_INTERFACE_ID_ORIG = ord("S")
SG_DXFER_NONE = -1
SG_DXFER_TO_DEV = -2
SG_DXFER_FROM_DEV = -3
SENSE_BUFFER_LENGTH = 64  # room for descriptor sense with an ATA Status Return descriptor


class SgIoHeader(ctypes.Structure):
    """``struct sg_io_hdr`` (include/scsi/sg.h)."""

    _fields_ = [
        ("interface_id", ctypes.c_int),
        ("dxfer_direction", ctypes.c_int),
        ("cmd_len", ctypes.c_ubyte),
        ("mx_sb_len", ctypes.c_ubyte),
        ("iovec_count", ctypes.c_ushort),
        ("dxfer_len", ctypes.c_uint),
        ("dxferp", ctypes.c_void_p),
        ("cmdp", ctypes.c_void_p),
        ("sbp", ctypes.c_void_p),
        ("timeout", ctypes.c_uint),
        ("flags", ctypes.c_uint),
        ("pack_id", ctypes.c_int),
        ("usr_ptr", ctypes.c_void_p),
        ("status", ctypes.c_ubyte),
        ("masked_status", ctypes.c_ubyte),
        ("msg_status", ctypes.c_ubyte),
        ("sb_len_wr", ctypes.c_ubyte),
        ("host_status", ctypes.c_ushort),
        ("driver_status", ctypes.c_ushort),
        ("resid", ctypes.c_int),
        ("duration", ctypes.c_uint),
        ("info", ctypes.c_uint),
    ]


def open_device_fd(path: str) -> int:
    """Open a device for pass-through (O_RDWR|O_NONBLOCK), mapping errors to the agent's tree."""
    try:
        return os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as exc:
        raise DriveNotFound(f"{path}: no such device") from exc
    except PermissionError as exc:
        raise CommandError(f"{path}: permission denied opening for pass-through (needs root)") from exc
    except OSError as exc:
        if exc.errno == 16:  # EBUSY
            raise DriveBusy(f"{path}: device is busy") from exc
        raise CommandError(f"{path}: cannot open: {exc.strerror}") from exc


class DeviceDescriptor:
    """A pass-through transport's descriptor: opened here (and closed by ``close``) or lent by the caller."""

    def __init__(self, device_path: str, fd: int | None) -> None:
        self.device_path = device_path
        self._owns_fd = fd is None
        self._fd: int | None = open_device_fd(device_path) if fd is None else fd

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the descriptor if this transport opened it."""
        if self._fd is not None and self._owns_fd:
            os.close(self._fd)
        self._fd = None


def _timeout_ms(timeout_s: float) -> int:
    return max(1, min(int(timeout_s * 1000), 0xFFFFFFFF))


class SgIoTransport(DeviceDescriptor):
    """Transport over the SG_IO ioctl. Pass ``fd`` to reuse a descriptor the caller opened (it is
    then not closed by :meth:`close`).

    With ``descriptor_sense`` (the default) the first ATA command is preceded by a best-effort
    MODE SELECT that sets D_SENSE: SAT-2 and later SATLs (recent libata, many bridges) may return
    fixed-format sense otherwise, and that cannot carry COUNT(15:8), where SANITIZE STATUS EXT
    reports its state.
    """

    def __init__(self, device_path: str, *, fd: int | None = None, descriptor_sense: bool = True) -> None:
        super().__init__(device_path, fd)
        self._want_descriptor_sense = descriptor_sense

    def execute(self, command: Command) -> Completion:
        """Send an AtaCommand (as ATA PASS-THROUGH 16) or a ScsiCommand through SG_IO."""
        if isinstance(command, AtaCommand):
            if self._want_descriptor_sense:
                self._want_descriptor_sense = False
                try:
                    enable_descriptor_sense(self)
                except CommandError:
                    pass  # some bridges refuse MODE SELECT; partial registers are then flagged
            cdb = build_ata_pass_through_16(command)
            status, sense, data, host = self._sg_io(
                command, cdb, command.direction, command.data_out, command.data_in_length, command.timeout_s
            )
            return interpret_ata_result(command, status, sense, data, host_status=host, device=self.device_path)
        if isinstance(command, ScsiCommand):
            direction = command.direction or DataDirection.NONE
            status, sense, data, host = self._sg_io(
                command, command.cdb, direction, command.data_out, command.data_in_length, command.timeout_s
            )
            return interpret_scsi_result(command, status, sense, data, host_status=host, device=self.device_path)
        if isinstance(command, NvmeAdminCommand):
            raise CommandError(f"{self.device_path}: NVMe commands need the NVMe transport", opcode=command.opcode)
        raise TypeError(f"unknown command type {type(command).__name__}")

    def _sg_io(
        self,
        command: Command,
        cdb: bytes,
        direction: DataDirection,
        data_out: bytes,
        data_in_length: int,
        timeout_s: float,
    ) -> tuple[int, bytes, bytes, int]:
        if self._fd is None:
            raise CommandError(f"{self.device_path}: transport is closed")
        cdb_buffer = ctypes.create_string_buffer(cdb, len(cdb))
        sense_buffer = ctypes.create_string_buffer(SENSE_BUFFER_LENGTH)
        header = SgIoHeader()
        header.interface_id = SG_INTERFACE_ID_ORIG
        header.cmd_len = len(cdb)
        header.mx_sb_len = SENSE_BUFFER_LENGTH
        header.cmdp = ctypes.addressof(cdb_buffer)
        header.sbp = ctypes.addressof(sense_buffer)
        header.timeout = _timeout_ms(timeout_s)
        data_buffer: ctypes.Array[ctypes.c_char] | None = None
        if direction is DataDirection.TO_DEVICE:
            data_buffer = ctypes.create_string_buffer(data_out, len(data_out))
            header.dxfer_direction = SG_DXFER_TO_DEV
            header.dxfer_len = len(data_out)
        elif direction is DataDirection.FROM_DEVICE:
            data_buffer = ctypes.create_string_buffer(data_in_length)
            header.dxfer_direction = SG_DXFER_FROM_DEV
            header.dxfer_len = data_in_length
        else:
            header.dxfer_direction = SG_DXFER_NONE
        if data_buffer is not None:
            header.dxferp = ctypes.addressof(data_buffer)
        try:
            fcntl.ioctl(self._fd, SG_IO, header, True)
        except OSError as exc:
            raise map_os_error(exc, command, self.device_path) from exc
        sense = bytes(sense_buffer.raw[: header.sb_len_wr])
        data = b""
        if direction is DataDirection.FROM_DEVICE and data_buffer is not None:
            data = bytes(data_buffer.raw[: max(0, data_in_length - max(0, header.resid))])
        return header.status, sense, data, header.host_status
