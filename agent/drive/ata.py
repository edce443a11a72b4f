"""ATA IDENTIFY DEVICE (ECh) data: identity and the capabilities that decide a wipe method.

Word and bit positions follow the IDENTIFY DEVICE data tables of ACS-4 (INCITS 529) and ACS-3
(INCITS 522); comments cite the word and bit rather than clause numbers, and say which standard
a field comes from when it was made obsolete or moved.  Words are little-endian 16-bit values;
ATA strings store two characters per word with the first character in the high byte (the ACS-4
ATA string convention), so they read "byte-swapped" from the raw buffer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.drive._raw import ascii_field, bit, require_length
from agent.drive.errors import IdentifyParseError

IDENTIFY_LENGTH = 512
_WHAT = "ATA IDENTIFY DEVICE"
# Word 0 of a CompactFlash device (ACS-4 word 0 = 848Ah): bit 15 set, yet it is an ATA device.
_CFA_SIGNATURE = 0x848A
# Word 217 values (ACS-4 NOMINAL MEDIA ROTATION RATE).
ROTATION_NOT_REPORTED = 0x0000
ROTATION_NON_ROTATING = 0x0001


@dataclass(frozen=True)
class AtaSecurity:
    """Security feature set state (word 128) and erase-time estimates (words 89, 90)."""

    supported: bool
    enabled: bool
    locked: bool
    frozen: bool
    count_expired: bool
    enhanced_erase_supported: bool
    master_password_maximum: bool
    erase_minutes: int | None
    erase_minutes_is_minimum: bool
    enhanced_erase_minutes: int | None
    enhanced_erase_minutes_is_minimum: bool

    def to_json(self) -> dict[str, Any]:
        """Keys per issue 3; ``*_is_minimum`` marks the open-ended ">508 / >65532 minutes"."""
        return {
            "supported": self.supported,
            "enabled": self.enabled,
            "locked": self.locked,
            "frozen": self.frozen,
            "count_expired": self.count_expired,
            "enhanced_erase_supported": self.enhanced_erase_supported,
            "master_password_maximum": self.master_password_maximum,
            "erase_minutes": self.erase_minutes,
            "erase_minutes_is_minimum": self.erase_minutes_is_minimum,
            "enhanced_erase_minutes": self.enhanced_erase_minutes,
            "enhanced_erase_minutes_is_minimum": self.enhanced_erase_minutes_is_minimum,
        }


@dataclass(frozen=True)
class AtaSanitize:
    """Sanitize feature set support (word 59 bits 15:10)."""

    supported: bool
    crypto: bool
    block: bool
    overwrite: bool
    antifreeze_lock_supported: bool

    def to_json(self) -> dict[str, Any]:
        """Keys per issue 3 plus ``antifreeze_lock_supported``."""
        return {
            "supported": self.supported,
            "crypto": self.crypto,
            "block": self.block,
            "overwrite": self.overwrite,
            "antifreeze_lock_supported": self.antifreeze_lock_supported,
        }


@dataclass(frozen=True)
class AtaIdentify:
    """The parts of IDENTIFY DEVICE data that identity, policy and methods need."""

    model: str
    serial: str
    firmware: str
    user_addressable_sectors: int
    lba48_supported: bool
    logical_sector_size: int
    physical_sector_size: int
    rotation_rate: int | None
    trim_supported: bool
    deterministic_read_after_trim: bool
    read_zeros_after_trim: bool
    encrypts_all_user_data: bool
    security: AtaSecurity
    sanitize: AtaSanitize
    hpa_supported: bool
    dco_supported: bool
    amac_supported: bool
    checksum_verified: bool

    @property
    def max_lba(self) -> int | None:
        """Highest user-addressable LBA (sectors - 1), ``None`` when the device reports none."""
        return self.user_addressable_sectors - 1 if self.user_addressable_sectors else None

    @property
    def solid_state(self) -> bool:
        """Word 217 = 0001h: non-rotating media."""
        return self.rotation_rate == ROTATION_NON_ROTATING

    @property
    def capacity_bytes(self) -> int:
        """User-addressable capacity in bytes."""
        return self.user_addressable_sectors * self.logical_sector_size

    def to_json(self) -> dict[str, Any]:
        """JSON object with the issue-3 keys first, then extra facts useful to policy."""
        return {
            "kind": "ata-identify",
            "model": self.model,
            "serial": self.serial,
            "firmware": self.firmware,
            "security": self.security.to_json(),
            "sanitize": self.sanitize.to_json(),
            "hpa_supported": self.hpa_supported,
            "dco_supported": self.dco_supported,
            "rotation_rate": self.rotation_rate,
            "max_lba": self.max_lba,
            "amac_supported": self.amac_supported,
            "solid_state": self.solid_state,
            "user_addressable_sectors": self.user_addressable_sectors,
            "logical_sector_size": self.logical_sector_size,
            "physical_sector_size": self.physical_sector_size,
            "capacity_bytes": self.capacity_bytes,
            "lba48_supported": self.lba48_supported,
            "trim_supported": self.trim_supported,
            "deterministic_read_after_trim": self.deterministic_read_after_trim,
            "read_zeros_after_trim": self.read_zeros_after_trim,
            "encrypts_all_user_data": self.encrypts_all_user_data,
            "checksum_verified": self.checksum_verified,
        }


def _words(data: bytes) -> tuple[int, ...]:
    return tuple(int.from_bytes(data[i : i + 2], "little") for i in range(0, IDENTIFY_LENGTH, 2))


def _ata_string(data: bytes, first_word: int, word_count: int, field: str) -> str:
    raw = bytearray()
    for word in range(first_word, first_word + word_count):
        # ACS-4 ATA string: the first character of each pair is in bits 15:8 of the word.
        raw += bytes((data[2 * word + 1], data[2 * word]))
    return ascii_field(bytes(raw), field, _WHAT)


def _valid_feature_word(value: int) -> bool:
    # ACS-4 words 83/84/87/106/119 etc.: bits 15:14 = 01b mean "this word is valid".
    return (value >> 14) == 0b01


def _erase_minutes(value: int) -> tuple[int | None, bool]:
    """Decode word 89/90 (ACS-3 Table 45, ACS-4 same): time in units of 2 minutes.

    Bit 15 = 1: extended format, bits 14:0 hold the time; 7FFFh means "more than 65 532 min".
    Bit 15 = 0: bits 7:0 hold the time; FFh means "more than 508 min".  0 = not reported.
    """
    if bit(value, 15):
        count, open_ended = value & 0x7FFF, 0x7FFF
    else:
        count, open_ended = value & 0x00FF, 0x00FF
    if count == 0:
        return None, False
    if count == open_ended:
        return (open_ended - 1) * 2, True
    return count * 2, False


def _verify_checksum(data: bytes, word_255: int) -> bool:
    """Word 255 (ACS-4 INTEGRITY WORD): bits 7:0 A5h signature, bits 15:8 checksum.

    When the signature is A5h the sum of all 512 bytes is 0 modulo 256; otherwise the
    checksum is not implemented and nothing can be checked.
    """
    if word_255 & 0xFF != 0xA5:
        return False
    if sum(data) % 256 != 0:
        raise IdentifyParseError(
            f"{_WHAT}: integrity checksum mismatch (word 255 = {word_255:#06x}, byte sum "
            f"{sum(data) % 256:#04x} instead of 0x00): data is corrupt or was rewritten in transit"
        )
    return True


def parse_ata_identify(data: bytes, *, verify_checksum: bool = True) -> AtaIdentify:
    """Parse exactly 512 bytes of IDENTIFY DEVICE data.

    Raises :class:`IdentifyParseError` when the buffer is the wrong length, all zero, IDENTIFY
    PACKET DEVICE data (ATAPI), carries non-ASCII identity strings, or fails the word-255
    checksum.  ``verify_checksum=False`` exists for data known to be rewritten by a SCSI/ATA
    translation layer (some SAS HBAs patch words without fixing the checksum); use it only
    with a recorded reason.
    """
    require_length(data, IDENTIFY_LENGTH, _WHAT)
    data = bytes(data)
    if not any(data):
        raise IdentifyParseError(f"{_WHAT}: all 512 bytes are zero: no device answered")
    word = _words(data)

    # checksum_verified is False when the device has no A5h signature or checking was skipped.
    checksum_verified = _verify_checksum(data, word[255]) if verify_checksum else False

    # Word 0 bit 15: 0 = ATA device; 1 = ATAPI (IDENTIFY PACKET DEVICE data) unless CFA 848Ah.
    if bit(word[0], 15) and word[0] != _CFA_SIGNATURE:
        raise IdentifyParseError(
            f"{_WHAT}: word 0 = {word[0]:#06x} marks an ATAPI (packet) device, not ATA IDENTIFY data"
        )

    serial = _ata_string(data, 10, 10, "serial number (words 10-19)")  # words 10-19 SERIAL NUMBER
    firmware = _ata_string(data, 23, 4, "firmware revision (words 23-26)")  # words 23-26 FIRMWARE REVISION
    model = _ata_string(data, 27, 20, "model number (words 27-46)")  # words 27-46 MODEL NUMBER
    if not model:
        raise IdentifyParseError(f"{_WHAT}: model number (words 27-46) is blank")

    word_82, word_83 = word[82], word[83]
    # Word 83 bits 15:14 = 01b validate words 82-83 (ACS-4); FFFFh/0000h = not reported.
    features_valid = _valid_feature_word(word_83)
    # Word 83 bit 10: 48-bit Address feature set supported (ACS-3; always 1 for ACS-4 devices).
    lba48 = features_valid and bit(word_83, 10)
    # Word 82 bit 10: HPA feature set supported (ATA8-ACS/ACS-3; ACS-4 obsoletes HPA for AMAC).
    hpa = features_valid and bit(word_82, 10)
    # Word 83 bit 11: DCO feature set supported (ATA8-ACS/ACS-2; obsolete since ACS-3).
    dco = features_valid and bit(word_83, 11)

    # Word 86 bit 15: words 119-120 are valid (ACS-3, ACS-4).
    words_119_valid = bit(word[86], 15) and _valid_feature_word(word[119])
    # Word 119 bit 8: Accessible Max Address Configuration feature set supported (ACS-3;
    # ACS-4 also reports it in the IDENTIFY DEVICE data log, Supported Capabilities).
    amac = words_119_valid and bit(word[119], 8)

    # Word 69 (ACS-4 ADDITIONAL SUPPORTED):
    deterministic_read_after_trim = bit(word[69], 14)  # bit 14 DRAT
    read_zeros_after_trim = bit(word[69], 5)  # bit 5 RZAT (meaningful only with DRAT)
    encrypts_all_user_data = bit(word[69], 4)  # bit 4 device encrypts all user data
    extended_sectors_valid = bit(word[69], 3)  # bit 3: words 230-233 are valid

    # Capacity: words 230-233 (ACS-4 EXTENDED NUMBER OF USER ADDRESSABLE SECTORS) when word 69
    # bit 3 is set, else words 100-103 (48-bit), else words 60-61 (28-bit).
    sectors_28 = word[60] | (word[61] << 16)  # words 60-61
    sectors_48 = word[100] | (word[101] << 16) | (word[102] << 32) | (word[103] << 48)  # words 100-103
    sectors_ext = word[230] | (word[231] << 16) | (word[232] << 32) | (word[233] << 48)  # words 230-233
    if extended_sectors_valid and sectors_ext:
        sectors = sectors_ext
    elif lba48 and sectors_48:
        sectors = sectors_48
    else:
        sectors = sectors_28

    # Word 106 (ACS-4 PHYSICAL SECTOR SIZE / LOGICAL SECTOR SIZE), valid when bits 15:14 = 01b.
    logical_sector_size = 512
    physical_per_logical_exponent = 0
    if _valid_feature_word(word[106]):
        if bit(word[106], 12):  # bit 12: logical sector longer than 256 words
            # Words 117-118 LOGICAL SECTOR SIZE, in words (ACS-4).
            logical_words = word[117] | (word[118] << 16)
            if logical_words < 256:
                raise IdentifyParseError(
                    f"{_WHAT}: words 117-118 give a logical sector of {logical_words} words (<256)"
                )
            logical_sector_size = logical_words * 2
        if bit(word[106], 13):  # bit 13: several logical sectors per physical sector
            physical_per_logical_exponent = word[106] & 0x000F  # bits 3:0, 2^X
    physical_sector_size = logical_sector_size << physical_per_logical_exponent

    # Word 217 NOMINAL MEDIA ROTATION RATE: 0 not reported, 1 non-rotating, 0401h-FFFEh rpm.
    rotation_raw = word[217]
    rotation_rate: int | None
    if rotation_raw == ROTATION_NON_ROTATING or 0x0401 <= rotation_raw <= 0xFFFE:
        rotation_rate = rotation_raw
    else:
        rotation_rate = None  # 0000h, reserved 0002h-0400h and FFFFh

    # Word 169 bit 0: DATA SET MANAGEMENT with TRIM supported (ACS-4).
    trim = bit(word[169], 0)

    # Word 128 SECURITY STATUS (ACS-3, ACS-4).
    word_128 = word[128]
    erase_minutes, erase_open = _erase_minutes(word[89])  # word 89 normal erase time
    enhanced_minutes, enhanced_open = _erase_minutes(word[90])  # word 90 enhanced erase time
    security = AtaSecurity(
        supported=bit(word_128, 0),  # bit 0 SECURITY SUPPORTED
        enabled=bit(word_128, 1),  # bit 1 SECURITY ENABLED
        locked=bit(word_128, 2),  # bit 2 SECURITY LOCKED
        frozen=bit(word_128, 3),  # bit 3 SECURITY FROZEN
        count_expired=bit(word_128, 4),  # bit 4 SECURITY COUNT EXPIRED
        enhanced_erase_supported=bit(word_128, 5),  # bit 5 ENHANCED SECURITY ERASE SUPPORTED
        master_password_maximum=bit(word_128, 8),  # bit 8 MASTER PASSWORD CAPABILITY (1 = Maximum)
        erase_minutes=erase_minutes,
        erase_minutes_is_minimum=erase_open,
        enhanced_erase_minutes=enhanced_minutes,
        enhanced_erase_minutes_is_minimum=enhanced_open,
    )

    # Word 59 (ACS-3, ACS-4): sanitize support bits 15:10 (bit 11, "commands allowed by
    # Sanitize", is not needed here); hdparm's identify.c word-59 table agrees.
    word_59 = word[59]
    sanitize = AtaSanitize(
        supported=bit(word_59, 12),  # bit 12 SANITIZE SUPPORTED
        crypto=bit(word_59, 13),  # bit 13 CRYPTO SCRAMBLE EXT supported
        overwrite=bit(word_59, 14),  # bit 14 OVERWRITE EXT supported
        block=bit(word_59, 15),  # bit 15 BLOCK ERASE EXT supported
        antifreeze_lock_supported=bit(word_59, 10),  # bit 10 SANITIZE ANTIFREEZE LOCK EXT supported
    )

    return AtaIdentify(
        model=model,
        serial=serial,
        firmware=firmware,
        user_addressable_sectors=sectors,
        lba48_supported=lba48,
        logical_sector_size=logical_sector_size,
        physical_sector_size=physical_sector_size,
        rotation_rate=rotation_rate,
        trim_supported=trim,
        deterministic_read_after_trim=deterministic_read_after_trim,
        read_zeros_after_trim=read_zeros_after_trim,
        encrypts_all_user_data=encrypts_all_user_data,
        security=security,
        sanitize=sanitize,
        hpa_supported=hpa,
        dco_supported=dco,
        amac_supported=amac,
        checksum_verified=checksum_verified,
    )
