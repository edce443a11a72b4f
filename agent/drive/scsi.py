"""SCSI parameter data: standard INQUIRY, READ CAPACITY (16), Block Device Characteristics VPD
page and REPORT SUPPORTED OPERATION CODES for the SANITIZE service actions.

References: SPC-5 (INCITS 502) for INQUIRY and REPORT SUPPORTED OPERATION CODES, SBC-4
(INCITS 506) for READ CAPACITY (16), the Block Device Characteristics VPD page and SANITIZE.
SCSI integers are big-endian.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.drive._raw import ascii_field, be, bit, require_minimum
from agent.drive.errors import IdentifyParseError
from agent.drive.opcodes import (
    SCSI_SANITIZE,
    SCSI_SANITIZE_BLOCK_ERASE,
    SCSI_SANITIZE_CRYPTOGRAPHIC_ERASE,
    SCSI_SANITIZE_EXIT_FAILURE_MODE,
    SCSI_SANITIZE_OVERWRITE,
    SCSI_VPD_BLOCK_DEVICE_CHARACTERISTICS,
)


def _rotation(value: int) -> int | None:
    # SBC-4 MEDIUM ROTATION RATE: 0000h not reported, 0001h non-rotating, 0401h-FFFEh rpm,
    # 0002h-0400h and FFFFh reserved (reported here as None).
    if value == 0x0001 or 0x0401 <= value <= 0xFFFE:
        return value
    return None


@dataclass(frozen=True)
class ScsiInquiry:
    """Standard INQUIRY data (SPC-5)."""

    peripheral_qualifier: int
    device_type: int
    removable: bool
    version: int
    response_data_format: int
    protect: bool
    vendor: str
    model: str
    firmware: str

    def to_json(self) -> dict[str, Any]:
        """``model``/``firmware`` are PRODUCT IDENTIFICATION / PRODUCT REVISION LEVEL."""
        return {
            "kind": "scsi-inquiry",
            "vendor": self.vendor,
            "model": self.model,
            "firmware": self.firmware,
            "device_type": self.device_type,
            "removable": self.removable,
            "version": self.version,
            "protect": self.protect,
        }


@dataclass(frozen=True)
class ScsiReadCapacity16:
    """READ CAPACITY (16) parameter data (SBC-4)."""

    last_lba: int
    logical_block_length: int
    protection_enabled: bool
    protection_type_code: int
    logical_per_physical_exponent: int
    lbpme: bool
    lbprz: bool
    lowest_aligned_lba: int

    @property
    def block_count(self) -> int:
        """Number of logical blocks (RETURNED LOGICAL BLOCK ADDRESS + 1)."""
        return self.last_lba + 1

    @property
    def capacity_bytes(self) -> int:
        """Capacity in bytes."""
        return self.block_count * self.logical_block_length

    @property
    def physical_block_length(self) -> int:
        """Physical block length: logical length x 2^(LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT)."""
        return self.logical_block_length << self.logical_per_physical_exponent

    def to_json(self) -> dict[str, Any]:
        """``max_lba`` is the last LBA, named like the ATA key."""
        return {
            "kind": "scsi-read-capacity16",
            "max_lba": self.last_lba,
            "block_count": self.block_count,
            "logical_block_length": self.logical_block_length,
            "physical_block_length": self.physical_block_length,
            "capacity_bytes": self.capacity_bytes,
            "protection_enabled": self.protection_enabled,
            "protection_type_code": self.protection_type_code,
            "lbpme": self.lbpme,
            "lbprz": self.lbprz,
            "lowest_aligned_lba": self.lowest_aligned_lba,
        }


@dataclass(frozen=True)
class ScsiBlockDeviceCharacteristics:
    """Block Device Characteristics VPD page B1h (SBC-4)."""

    rotation_rate: int | None
    product_type: int
    nominal_form_factor: int

    @property
    def solid_state(self) -> bool:
        """MEDIUM ROTATION RATE 0001h: non-rotating medium."""
        return self.rotation_rate == 1

    def to_json(self) -> dict[str, Any]:
        """``rotation_rate`` uses the ATA meaning: 1 = solid state, None = not reported."""
        return {
            "kind": "scsi-vpd-b1",
            "rotation_rate": self.rotation_rate,
            "solid_state": self.solid_state,
            "product_type": self.product_type,
            "nominal_form_factor": self.nominal_form_factor,
        }


@dataclass(frozen=True)
class ScsiSanitizeSupport:
    """Which SANITIZE (48h) service actions REPORT SUPPORTED OPERATION CODES lists."""

    overwrite: bool
    block: bool
    crypto: bool
    exit_failure_mode: bool

    @property
    def supported(self) -> bool:
        """True when any sanitize action other than EXIT FAILURE MODE is supported."""
        return self.overwrite or self.block or self.crypto

    def to_json(self) -> dict[str, Any]:
        """Same key names as the ATA ``sanitize`` object."""
        return {
            "kind": "scsi-rsoc-sanitize",
            "supported": self.supported,
            "crypto": self.crypto,
            "block": self.block,
            "overwrite": self.overwrite,
            "exit_failure_mode": self.exit_failure_mode,
        }


def parse_inquiry(data: bytes) -> ScsiInquiry:
    """Parse standard INQUIRY data (at least the 36 bytes SPC-5 makes mandatory)."""
    what = "SCSI INQUIRY"
    require_minimum(data, 36, what)
    data = bytes(data)
    qualifier = data[0] >> 5  # byte 0 bits 7:5 PERIPHERAL QUALIFIER
    if qualifier == 0b011:
        raise IdentifyParseError(f"{what}: peripheral qualifier 011b: no logical unit is present")
    if data[4] < 31:  # byte 4 ADDITIONAL LENGTH (n-4), >= 31 for the 36 mandatory bytes
        raise IdentifyParseError(f"{what}: ADDITIONAL LENGTH {data[4]} is below the mandatory 31")
    response_data_format = data[3] & 0x0F  # byte 3 bits 3:0 RESPONSE DATA FORMAT (2 since SPC-2)
    if response_data_format > 2:
        raise IdentifyParseError(f"{what}: RESPONSE DATA FORMAT {response_data_format} is reserved")
    vendor = ascii_field(data[8:16], "T10 VENDOR IDENTIFICATION (bytes 8-15)", what)  # bytes 8-15
    model = ascii_field(data[16:32], "PRODUCT IDENTIFICATION (bytes 16-31)", what)  # bytes 16-31
    firmware = ascii_field(data[32:36], "PRODUCT REVISION LEVEL (bytes 32-35)", what)  # bytes 32-35
    return ScsiInquiry(
        peripheral_qualifier=qualifier,
        device_type=data[0] & 0x1F,  # byte 0 bits 4:0 PERIPHERAL DEVICE TYPE
        removable=bit(data[1], 7),  # byte 1 bit 7 RMB
        version=data[2],  # byte 2 VERSION
        response_data_format=response_data_format,
        protect=bit(data[5], 0),  # byte 5 bit 0 PROTECT
        vendor=vendor,
        model=model,
        firmware=firmware,
    )


def parse_read_capacity16(data: bytes) -> ScsiReadCapacity16:
    """Parse the 32-byte READ CAPACITY (16) parameter data."""
    what = "SCSI READ CAPACITY (16)"
    require_minimum(data, 32, what)
    data = bytes(data)
    block_length = be(data, 8, 4)  # bytes 8-11 LOGICAL BLOCK LENGTH IN BYTES
    if block_length == 0:
        raise IdentifyParseError(f"{what}: LOGICAL BLOCK LENGTH is 0")
    return ScsiReadCapacity16(
        last_lba=be(data, 0, 8),  # bytes 0-7 RETURNED LOGICAL BLOCK ADDRESS
        logical_block_length=block_length,
        protection_enabled=bit(data[12], 0),  # byte 12 bit 0 PROT_EN
        protection_type_code=(data[12] >> 1) & 0b111,  # byte 12 bits 3:1 P_TYPE
        logical_per_physical_exponent=data[13] & 0x0F,  # byte 13 bits 3:0
        lbpme=bit(data[14], 7),  # byte 14 bit 7 LBPME
        lbprz=bit(data[14], 6),  # byte 14 bit 6 LBPRZ
        lowest_aligned_lba=be(data, 14, 2) & 0x3FFF,  # bytes 14-15 bits 13:0 LOWEST ALIGNED LBA
    )


def parse_block_device_characteristics_vpd(data: bytes) -> ScsiBlockDeviceCharacteristics:
    """Parse the Block Device Characteristics VPD page (B1h), at least its first 8 bytes."""
    what = "SCSI Block Device Characteristics VPD page"
    require_minimum(data, 8, what)
    data = bytes(data)
    if data[1] != SCSI_VPD_BLOCK_DEVICE_CHARACTERISTICS:  # byte 1 PAGE CODE
        raise IdentifyParseError(f"{what}: page code is {data[1]:#04x}, expected 0xb1")
    if be(data, 2, 2) < 4:  # bytes 2-3 PAGE LENGTH (003Ch in SBC-4)
        raise IdentifyParseError(f"{what}: PAGE LENGTH {be(data, 2, 2)} is too short")
    return ScsiBlockDeviceCharacteristics(
        rotation_rate=_rotation(be(data, 4, 2)),  # bytes 4-5 MEDIUM ROTATION RATE
        product_type=data[6],  # byte 6 PRODUCT TYPE
        nominal_form_factor=data[7] & 0x0F,  # byte 7 bits 3:0 NOMINAL FORM FACTOR
    )


def parse_report_supported_opcodes_sanitize(data: bytes) -> ScsiSanitizeSupport:
    """Find the SANITIZE service actions in REPORT SUPPORTED OPERATION CODES parameter data.

    Parses the all_commands format (REPORTING OPTIONS 000b, SPC-5 "All_commands parameter
    data"): one request lists every service action, so no per-action round trip is needed.
    Each command descriptor is 8 bytes, or 20 when CTDP = 1 (a 12-byte command timeouts
    descriptor follows).  Truncated data is an error: a missing tail could hide a SANITIZE
    entry and turn "supported" into a false "not supported".
    """
    what = "SCSI REPORT SUPPORTED OPERATION CODES (all_commands)"
    require_minimum(data, 4, what)
    data = bytes(data)
    length = be(data, 0, 4)  # bytes 0-3 COMMAND DATA LENGTH (n-3)
    end = 4 + length
    if end > len(data):
        raise IdentifyParseError(
            f"{what}: COMMAND DATA LENGTH {length} needs {end} bytes but only {len(data)} were given "
            "(allocation length too small?)"
        )
    actions: set[int] = set()
    offset = 4
    while offset < end:
        if offset + 8 > end:
            raise IdentifyParseError(f"{what}: command descriptor at byte {offset} is cut short")
        opcode = data[offset]  # descriptor byte 0 OPERATION CODE
        service_action = be(data, offset + 2, 2)  # descriptor bytes 2-3 SERVICE ACTION
        flags = data[offset + 5]  # descriptor byte 5: bit 1 CTDP, bit 0 SERVACTV
        size = 20 if bit(flags, 1) else 8
        if offset + size > end:
            raise IdentifyParseError(f"{what}: command descriptor at byte {offset} is cut short")
        if opcode == SCSI_SANITIZE and bit(flags, 0):
            actions.add(service_action)
        offset += size
    return ScsiSanitizeSupport(
        overwrite=SCSI_SANITIZE_OVERWRITE in actions,
        block=SCSI_SANITIZE_BLOCK_ERASE in actions,
        crypto=SCSI_SANITIZE_CRYPTOGRAPHIC_ERASE in actions,
        exit_failure_mode=SCSI_SANITIZE_EXIT_FAILURE_MODE in actions,
    )
