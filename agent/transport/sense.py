"""Pure decoding (and, for emulators and tests, encoding) of SCSI sense data.

Covers SPC-5 "Fixed format sense data" (70h/71h), SPC-5 "Descriptor format sense data"
(72h/73h), the "Progress indication" sense-key-specific field used while SANITIZE or FORMAT UNIT
runs, the progress indication descriptor (0Ah), and SAT-4 "ATA Status Return sense data
descriptor" (09h) that a SAT layer returns after ATA PASS-THROUGH with CK_COND=1. Nothing here does
I/O. Citations name the clause by title: clause numbers move between T10 draft revisions.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "AtaRegisters",
    "SenseData",
    "SenseKey",
    "decode_sense",
    "encode_ata_status_descriptor",
    "encode_descriptor_sense",
    "encode_fixed_ata_sense",
    "encode_fixed_sense",
]


class SenseKey(enum.IntEnum):
    """SPC-5 "Sense key and sense code definitions" — sense key values."""

    NO_SENSE = 0x0
    RECOVERED_ERROR = 0x1
    NOT_READY = 0x2
    MEDIUM_ERROR = 0x3
    HARDWARE_ERROR = 0x4
    ILLEGAL_REQUEST = 0x5
    UNIT_ATTENTION = 0x6
    DATA_PROTECT = 0x7
    BLANK_CHECK = 0x8
    VENDOR_SPECIFIC = 0x9
    COPY_ABORTED = 0xA
    ABORTED_COMMAND = 0xB
    RESERVED_C = 0xC
    VOLUME_OVERFLOW = 0xD
    MISCOMPARE = 0xE
    COMPLETED = 0xF


# Additional sense codes the transport and the emulator use (SPC-5 ASC/ASCQ assignments annex, SBC-4).
ASC_NO_ADDITIONAL = (0x00, 0x00)
ASC_ATA_PASS_THROUGH_INFORMATION = (0x00, 0x1D)  # SAT-4: returned with CK_COND=1
ASC_NOT_READY_FORMAT_IN_PROGRESS = (0x04, 0x04)
ASC_NOT_READY_SANITIZE_IN_PROGRESS = (0x04, 0x1B)
ASC_INVALID_COMMAND_OPERATION_CODE = (0x20, 0x00)
ASC_LBA_OUT_OF_RANGE = (0x21, 0x00)
ASC_INVALID_FIELD_IN_CDB = (0x24, 0x00)
ASC_INVALID_FIELD_IN_PARAMETER_LIST = (0x26, 0x00)
ASC_POWER_ON_RESET = (0x29, 0x00)
ASC_SANITIZE_COMMAND_FAILED = (0x31, 0x03)
ASC_COMMAND_SEQUENCE_ERROR = (0x2C, 0x00)


@dataclass(frozen=True)
class AtaRegisters:
    """ATA output registers returned by a SAT layer (or an emulated device).

    ``lba`` is 48-bit, ``count`` 16-bit; for a non-extended (28-bit) command only the low parts
    are meaningful. ``error`` bit 2 is ABRT; ``status`` bit 0 is ERR, bit 5 DF, bit 7 BSY.
    ``partial`` is True when fixed-format sense said COUNT(15:8) or LBA(47:24) were non-zero but
    could not carry them: only COUNT(7:0) and LBA(23:0) are known (set D_SENSE to get them all).
    """

    error: int
    status: int
    count: int
    lba: int
    device: int
    extend: bool = True
    partial: bool = False

    @property
    def failed(self) -> bool:
        """True when ERR or DEVICE FAULT is set in the status register."""
        return bool(self.status & 0x21)

    @property
    def aborted(self) -> bool:
        """True when ABRT is set in the error register."""
        return bool(self.error & 0x04)


@dataclass(frozen=True)
class SenseData:
    """Decoded sense data; unknown descriptors are kept raw in ``raw``."""

    response_code: int
    sense_key: SenseKey
    asc: int
    ascq: int
    descriptor_format: bool
    deferred: bool
    information: int | None = None
    command_specific: int | None = None
    sense_key_specific: bytes | None = None
    progress: int | None = None
    ata: AtaRegisters | None = None
    raw: bytes = b""

    @property
    def progress_fraction(self) -> float | None:
        """Progress as 0.0..1.0 (SPC-5: numerator over 65536), or None when not reported."""
        return None if self.progress is None else self.progress / 65536.0

    @property
    def asc_ascq(self) -> tuple[int, int]:
        """The additional sense code and qualifier as a pair."""
        return (self.asc, self.ascq)

    def describe(self) -> str:
        """A one-line human description, e.g. ``ILLEGAL_REQUEST 20h/00h``."""
        text = f"{self.sense_key.name} {self.asc:02X}h/{self.ascq:02X}h"
        if self.progress is not None:
            text += f" progress {self.progress * 100 // 65536}%"
        return text


def decode_sense(buffer: bytes, *, ata_pass_through: bool = False) -> SenseData | None:
    """Decode a sense buffer; returns None when it is empty or carries no sense (response code 0).

    ``ata_pass_through`` says the sense answers an ATA PASS-THROUGH command, so a fixed-format
    INFORMATION field holds ATA registers (descriptor format is self-describing).
    """
    if len(buffer) < 2:
        return None
    response_code = buffer[0] & 0x7F
    if response_code in (0x70, 0x71):
        return _decode_fixed(bytes(buffer), response_code, ata_pass_through)
    if response_code in (0x72, 0x73):
        return _decode_descriptor(bytes(buffer), response_code)
    return None


def _byte(buffer: bytes, index: int) -> int:
    return buffer[index] if index < len(buffer) else 0


def _decode_fixed(buffer: bytes, response_code: int, ata_pass_through: bool) -> SenseData:
    # SPC-5 fixed format sense data
    valid = bool(buffer[0] & 0x80)
    sense_key = SenseKey(_byte(buffer, 2) & 0x0F)
    additional_length = _byte(buffer, 7)
    end = min(len(buffer), 8 + additional_length)
    information = int.from_bytes(buffer[3:7], "big") if valid and len(buffer) >= 7 else None
    command_specific = int.from_bytes(buffer[8:12], "big") if end >= 12 else None
    asc, ascq = _byte(buffer, 12) if end > 12 else 0, _byte(buffer, 13) if end > 13 else 0
    sks = buffer[15:18] if end >= 18 else None
    progress = None
    if sks is not None and sks[0] & 0x80 and sense_key in (SenseKey.NO_SENSE, SenseKey.NOT_READY):
        # SPC-5 progress indication in the sense-key-specific bytes
        progress = int.from_bytes(sks[1:3], "big")
    ata = None
    if ata_pass_through and end >= 12 and valid:
        # SAT-4: fixed-format ATA PASS-THROUGH results; INFORMATION = ERROR STATUS DEVICE COUNT
        flags = buffer[8]
        ata = AtaRegisters(
            error=buffer[3],
            status=buffer[4],
            device=buffer[5],
            count=buffer[6],
            lba=buffer[9] | buffer[10] << 8 | buffer[11] << 16,
            extend=bool(flags & 0x80),
            partial=bool(flags & 0x60),  # COUNT UPPER NONZERO / LBA UPPER NONZERO
        )
    return SenseData(
        response_code=response_code,
        sense_key=sense_key,
        asc=asc,
        ascq=ascq,
        descriptor_format=False,
        deferred=response_code == 0x71,
        information=information,
        command_specific=command_specific,
        sense_key_specific=bytes(sks) if sks is not None and sks[0] & 0x80 else None,
        progress=progress,
        ata=ata,
        raw=buffer,
    )


def _decode_descriptor(buffer: bytes, response_code: int) -> SenseData:
    # SPC-5 descriptor format sense data
    sense_key = SenseKey(_byte(buffer, 1) & 0x0F)
    asc, ascq = _byte(buffer, 2), _byte(buffer, 3)
    additional_length = _byte(buffer, 7)
    end = min(len(buffer), 8 + additional_length)
    information = command_specific = progress = None
    sks: bytes | None = None
    ata: AtaRegisters | None = None
    offset = 8
    while offset + 2 <= end:
        kind, length = buffer[offset], buffer[offset + 1]
        body = buffer[offset : offset + 2 + length]
        if offset + 2 + length > end:
            break
        if kind == 0x00 and length >= 0x0A and body[2] & 0x80:
            information = int.from_bytes(body[4:12], "big")  # SPC-5 information
        elif kind == 0x01 and length >= 0x0A:
            command_specific = int.from_bytes(body[4:12], "big")  # SPC-5 command-specific
        elif kind == 0x02 and length >= 0x06 and body[4] & 0x80:
            sks = bytes(body[4:7])  # SPC-5 sense key specific
            if sense_key in (SenseKey.NO_SENSE, SenseKey.NOT_READY):
                progress = int.from_bytes(body[5:7], "big")
        elif kind == 0x0A and length >= 0x06 and progress is None:
            progress = int.from_bytes(body[6:8], "big")  # SPC-5 progress indication
        elif kind == 0x09 and length >= 0x0C:
            # SAT-4 ATA Status Return descriptor
            lba = body[7] | body[9] << 8 | body[11] << 16 | body[6] << 24 | body[8] << 32 | body[10] << 40
            ata = AtaRegisters(
                error=body[3],
                status=body[13],
                count=body[5] | body[4] << 8,
                lba=lba,
                device=body[12],
                extend=bool(body[2] & 0x01),
            )
        offset += 2 + length
    return SenseData(
        response_code=response_code,
        sense_key=sense_key,
        asc=asc,
        ascq=ascq,
        descriptor_format=True,
        deferred=response_code == 0x73,
        information=information,
        command_specific=command_specific,
        sense_key_specific=sks,
        progress=progress,
        ata=ata,
        raw=buffer,
    )


def encode_fixed_sense(
    sense_key: int,
    asc: int,
    ascq: int,
    *,
    progress: int | None = None,
    information: int | None = None,
) -> bytes:
    """Build an 18-byte fixed-format (70h) sense buffer (SPC-5)."""
    buffer = bytearray(18)
    buffer[0] = 0x70 | (0x80 if information is not None else 0)
    buffer[2] = sense_key & 0x0F
    if information is not None:
        buffer[3:7] = (information & 0xFFFFFFFF).to_bytes(4, "big")
    buffer[7] = 10
    buffer[12], buffer[13] = asc, ascq
    if progress is not None:
        buffer[15] = 0x80
        buffer[16:18] = (progress & 0xFFFF).to_bytes(2, "big")
    return bytes(buffer)


def encode_fixed_ata_sense(sense_key: int, asc: int, ascq: int, registers: AtaRegisters) -> bytes:
    """Fixed-format sense carrying ATA registers (SAT-4 ATA PASS-THROUGH fixed format results).

    Only COUNT(7:0) and LBA(23:0) fit; the UPPER NONZERO flags say when more was lost.
    """
    buffer = bytearray(encode_fixed_sense(sense_key, asc, ascq))
    buffer[0] |= 0x80  # VALID: INFORMATION holds ERROR, STATUS, DEVICE, COUNT(7:0)
    buffer[3:7] = bytes([registers.error, registers.status, registers.device, registers.count & 0xFF])
    flags = 0x80 if registers.extend else 0
    flags |= 0x40 if registers.count >> 8 else 0  # COUNT UPPER NONZERO
    flags |= 0x20 if registers.lba >> 24 else 0  # LBA UPPER NONZERO
    buffer[8] = flags
    buffer[9:12] = bytes([registers.lba & 0xFF, (registers.lba >> 8) & 0xFF, (registers.lba >> 16) & 0xFF])
    return bytes(buffer)


def encode_ata_status_descriptor(registers: AtaRegisters) -> bytes:
    """Build the 14-byte ATA Status Return descriptor (SAT-4)."""
    lba = registers.lba
    return bytes(
        [
            0x09,
            0x0C,
            0x01 if registers.extend else 0x00,
            registers.error & 0xFF,
            (registers.count >> 8) & 0xFF,
            registers.count & 0xFF,
            (lba >> 24) & 0xFF,
            lba & 0xFF,
            (lba >> 32) & 0xFF,
            (lba >> 8) & 0xFF,
            (lba >> 40) & 0xFF,
            (lba >> 16) & 0xFF,
            registers.device & 0xFF,
            registers.status & 0xFF,
        ]
    )


def encode_descriptor_sense(
    sense_key: int,
    asc: int,
    ascq: int,
    *,
    progress: int | None = None,
    ata: AtaRegisters | None = None,
) -> bytes:
    """Build a descriptor-format (72h) sense buffer (SPC-5) with optional descriptors."""
    descriptors = b""
    if progress is not None:
        descriptors += bytes([0x02, 0x06, 0, 0, 0x80]) + (progress & 0xFFFF).to_bytes(2, "big") + b"\x00"
    if ata is not None:
        descriptors += encode_ata_status_descriptor(ata)
    header = bytes([0x72, sense_key & 0x0F, asc, ascq, 0, 0, 0, len(descriptors)])
    return header + descriptors
