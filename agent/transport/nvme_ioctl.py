"""The real NVMe transport: NVME_IOCTL_ADMIN_CMD / NVME_IOCTL_IO_CMD (include/uapi/linux/nvme_ioctl.h).

Works on the controller character device (``/dev/nvme0``), a namespace block device
(``/dev/nvme0n1``) or a generic node (``/dev/ng0n1``). The ioctl returns 0, the positive 15-bit
NVMe Status Field, or fails with an errno.
"""

from __future__ import annotations

import ctypes
import fcntl

from agent.errors import CommandError
from agent.transport.commands import (
    AtaCommand,
    Command,
    Completion,
    NvmeAdminCommand,
    NvmeIoCommand,
    ScsiCommand,
    map_os_error,
    nvme_completion,
)
from agent.transport.sgio import DeviceDescriptor

__all__ = ["NVME_IOCTL_ADMIN_CMD", "NVME_IOCTL_IO_CMD", "NvmeIoctlTransport", "NvmePassthruCmd"]


class NvmePassthruCmd(ctypes.Structure):
    """``struct nvme_passthru_cmd`` (alias ``nvme_admin_cmd``), 72 bytes."""

    _fields_ = [
        ("opcode", ctypes.c_uint8),
        ("flags", ctypes.c_uint8),
        ("rsvd1", ctypes.c_uint16),
        ("nsid", ctypes.c_uint32),
        ("cdw2", ctypes.c_uint32),
        ("cdw3", ctypes.c_uint32),
        ("metadata", ctypes.c_uint64),
        ("addr", ctypes.c_uint64),
        ("metadata_len", ctypes.c_uint32),
        ("data_len", ctypes.c_uint32),
        ("cdw10", ctypes.c_uint32),
        ("cdw11", ctypes.c_uint32),
        ("cdw12", ctypes.c_uint32),
        ("cdw13", ctypes.c_uint32),
        ("cdw14", ctypes.c_uint32),
        ("cdw15", ctypes.c_uint32),
        ("timeout_ms", ctypes.c_uint32),
        ("result", ctypes.c_uint32),
    ]


def _iowr(kind: str, number: int, size: int) -> int:
    # asm-generic/ioctl.h: dir(2 bits, 3 = read|write) << 30 | size << 16 | type << 8 | nr
    return (3 << 30) | (size << 16) | (ord(kind) << 8) | number


NVME_IOCTL_ADMIN_CMD = _iowr("N", 0x41, ctypes.sizeof(NvmePassthruCmd))
NVME_IOCTL_IO_CMD = _iowr("N", 0x43, ctypes.sizeof(NvmePassthruCmd))


class NvmeIoctlTransport(DeviceDescriptor):
    """Transport over the NVMe pass-through ioctls."""

    def __init__(self, device_path: str, *, fd: int | None = None) -> None:
        super().__init__(device_path, fd)

    def execute(self, command: Command) -> Completion:
        """Send an NvmeAdminCommand (admin queue) or NvmeIoCommand (I/O queue)."""
        if isinstance(command, AtaCommand | ScsiCommand):
            raise CommandError(f"{self.device_path}: ATA/SCSI commands need the SG_IO transport")
        if self._fd is None:
            raise CommandError(f"{self.device_path}: transport is closed", opcode=command.opcode)
        request = build_passthru(command)
        buffer: ctypes.Array[ctypes.c_char] | None = None
        if command.data_out:
            buffer = ctypes.create_string_buffer(command.data_out, len(command.data_out))
        elif command.data_in_length:
            buffer = ctypes.create_string_buffer(command.data_in_length)
        if buffer is not None:
            request.addr = ctypes.addressof(buffer)
            request.data_len = len(buffer)
        number = NVME_IOCTL_IO_CMD if isinstance(command, NvmeIoCommand) else NVME_IOCTL_ADMIN_CMD
        try:
            status = fcntl.ioctl(self._fd, number, request, True)
        except OSError as exc:
            raise map_os_error(exc, command, self.device_path) from exc
        data = bytes(buffer.raw) if buffer is not None and command.data_in_length else b""
        return nvme_completion(command, status, request.result, data)


def build_passthru(command: NvmeAdminCommand) -> NvmePassthruCmd:
    """Fill ``struct nvme_passthru_cmd`` from a command (no data pointer yet)."""
    request = NvmePassthruCmd()
    request.opcode = command.opcode
    request.nsid = command.nsid
    request.cdw10, request.cdw11, request.cdw12 = command.cdw10, command.cdw11, command.cdw12
    request.cdw13, request.cdw14, request.cdw15 = command.cdw13, command.cdw14, command.cdw15
    request.timeout_ms = max(1, min(int(command.timeout_s * 1000), 0xFFFFFFFF))
    return request
