"""Command builders shared by the transport tests (what the firmware methods will send)."""

from __future__ import annotations

from agent.transport.commands import AtaCommand, AtaProtocol, NvmeAdminCommand, NvmeIoCommand, ScsiCommand


def identify() -> AtaCommand:
    return AtaCommand(0xEC, AtaProtocol.PIO_IN, count=1, data_in_length=512)


def words(data: bytes) -> list[int]:
    return [int.from_bytes(data[index : index + 2], "little") for index in range(0, 512, 2)]


def security(
    opcode: int,
    password: bytes = b"",
    *,
    master: bool = False,
    enhanced: bool = False,
    maximum: bool = False,
    identifier: int = 0,
) -> AtaCommand:
    if opcode in (0xF3, 0xF5):
        return AtaCommand(opcode)
    control = (1 if master else 0) | (2 if enhanced else 0) | (0x100 if maximum else 0)
    payload = bytearray(512)
    payload[0:2] = control.to_bytes(2, "little")
    payload[2:34] = password.ljust(32, b"\x00")
    payload[34:36] = identifier.to_bytes(2, "little")
    # SECURITY ERASE UNIT runs for the IDENTIFY words 89/90 estimate: give it that long
    timeout_s = 4 * 3600.0 if opcode == 0xF4 else 30.0
    return AtaCommand(opcode, AtaProtocol.PIO_OUT, count=1, data_out=bytes(payload), timeout_s=timeout_s)


def sanitize(features: int, lba: int = 0, count: int = 0) -> AtaCommand:
    return AtaCommand(0xB4, features=features, count=count, lba=lba, extend=True)


def sanitize_status(clear: bool = False) -> AtaCommand:
    return sanitize(0x0000, count=1 if clear else 0)


CRYPTO = (0x0011, 0x43727970)
BLOCK = (0x0012, 0x426B4572)
FREEZE = (0x0020, 0x46724C6B)
ANTIFREEZE = (0x0040, 0x416E7469)


def overwrite(pattern: int, passes: int = 1, *, invert: bool = False, failure_mode: bool = False) -> AtaCommand:
    count = (passes & 0xF) | (0x80 if invert else 0) | (0x10 if failure_mode else 0)
    return sanitize(0x0014, lba=0x4F57 << 32 | pattern, count=count)


def read_sectors(lba: int, count: int) -> AtaCommand:
    return AtaCommand(0x24, AtaProtocol.PIO_IN, count=count, lba=lba, data_in_length=512 * count)


def nvme_identify(cns: int, nsid: int = 0) -> NvmeAdminCommand:
    return NvmeAdminCommand(0x06, nsid=nsid, cdw10=cns, data_in_length=4096)


def nvme_sanitize(
    sanact: int,
    *,
    ause: bool = False,
    ndas: bool = False,
    owpass: int = 1,
    oipbp: bool = False,
    pattern: int = 0,
) -> NvmeAdminCommand:
    cdw10 = sanact | (8 if ause else 0) | (owpass & 0xF) << 4 | (0x100 if oipbp else 0) | (0x200 if ndas else 0)
    return NvmeAdminCommand(0x84, cdw10=cdw10, cdw11=pattern)


def nvme_sanitize_log() -> NvmeAdminCommand:
    return NvmeAdminCommand(0x02, nsid=0xFFFFFFFF, cdw10=0x81 | (127 << 16), data_in_length=512)


def nvme_format(lbaf: int = 0, ses: int = 0, nsid: int = 1) -> NvmeAdminCommand:
    return NvmeAdminCommand(0x80, nsid=nsid, cdw10=(lbaf & 0xF) | ses << 9)


def nvme_read(lba: int, blocks: int, block_size: int = 512) -> NvmeIoCommand:
    return NvmeIoCommand(0x02, nsid=1, cdw10=lba, cdw12=blocks - 1, data_in_length=blocks * block_size)


def nvme_write(lba: int, data: bytes, block_size: int = 512) -> NvmeIoCommand:
    return NvmeIoCommand(0x01, nsid=1, cdw10=lba, cdw12=len(data) // block_size - 1, data_out=data)


def scsi_sanitize(action: int, *, immediate: bool = True, ause: bool = False, parameters: bytes = b"") -> ScsiCommand:
    byte1 = action | (0x80 if immediate else 0) | (0x20 if ause else 0)
    cdb = bytes([0x48, byte1, 0, 0, 0, 0, 0]) + len(parameters).to_bytes(2, "big") + b"\x00"
    return ScsiCommand(cdb, data_out=parameters)


def request_sense(descriptor: bool = False) -> ScsiCommand:
    return ScsiCommand(bytes([0x03, 1 if descriptor else 0, 0, 0, 252, 0]), data_in_length=252)


def scsi_read16(lba: int, blocks: int) -> ScsiCommand:
    cdb = bytes([0x88, 0]) + lba.to_bytes(8, "big") + blocks.to_bytes(4, "big") + b"\x00\x00"
    return ScsiCommand(cdb, data_in_length=512 * blocks)


def tur() -> ScsiCommand:
    return ScsiCommand(bytes(6))
