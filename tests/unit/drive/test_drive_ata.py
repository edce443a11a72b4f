"""ATA IDENTIFY DEVICE parser: recorded real drives first, then constructed edge cases."""

from __future__ import annotations

import pytest

from agent.drive import IdentifyParseError, parse_ata_identify
from agent.errors import AgentError
from tests.unit.drive.drive_builders import ata_identify, ata_identify_words, ata_words_to_bytes, recorded

ISSUE_KEYS = {
    "model", "serial", "firmware", "security", "sanitize",
    "hpa_supported", "dco_supported", "rotation_rate", "max_lba",
}  # fmt: skip
SECURITY_KEYS = {
    "supported", "enabled", "locked", "frozen", "enhanced_erase_supported",
    "erase_minutes", "enhanced_erase_minutes",
}  # fmt: skip
SANITIZE_KEYS = {"supported", "crypto", "block", "overwrite"}


# --- recorded real devices (sources: tests/data/identify/README.md) -----------------------


def test_real_samsung_870_evo_ssd() -> None:
    identify = parse_ata_identify(recorded("ata-samsung-ssd-870-evo.bin"))
    assert identify.model == "Samsung SSD 870 EVO 2TB"
    assert identify.serial == "S6PPNX0W203715P"
    assert identify.firmware == "SVT02B6Q"
    assert identify.rotation_rate == 1 and identify.solid_state
    assert identify.user_addressable_sectors == 3_907_029_168
    assert identify.max_lba == 3_907_029_167
    assert (identify.logical_sector_size, identify.physical_sector_size) == (512, 512)
    assert identify.lba48_supported and identify.trim_supported
    assert identify.deterministic_read_after_trim and identify.read_zeros_after_trim
    assert identify.encrypts_all_user_data  # word 69 bit 4: Samsung SED
    security = identify.security
    assert security.supported and security.enhanced_erase_supported
    assert not (security.enabled or security.locked or security.frozen or security.count_expired)
    assert (security.erase_minutes, security.enhanced_erase_minutes) == (4, 8)  # words 89/90 = 2, 4
    assert not identify.sanitize.supported  # word 59 = 0101h
    assert identify.hpa_supported and identify.dco_supported and not identify.amac_supported
    assert identify.checksum_verified


def test_real_hitachi_hdd_behind_libata_is_frozen() -> None:
    identify = parse_ata_identify(recorded("ata-hitachi-hde721010sla330.bin"))
    assert identify.model == "Hitachi HDE721010SLA330"
    assert identify.serial == "STR607MS2APNLS"  # leading spaces in the raw field are padding
    assert identify.firmware == "ST6OA3AA"
    assert identify.rotation_rate == 7200 and not identify.solid_state
    assert identify.max_lba == 1_953_525_167
    assert identify.security.supported and identify.security.frozen
    assert not identify.security.enhanced_erase_supported
    assert identify.security.erase_minutes == 324  # word 89 = 00A2h -> 162 x 2 min
    assert identify.security.enhanced_erase_minutes is None
    assert not identify.trim_supported and not identify.sanitize.supported
    assert identify.checksum_verified


def test_real_identify_rewritten_by_sas_hba_fails_checksum() -> None:
    data = recorded("ata-hitachi-hua722010cla330.bin")
    with pytest.raises(IdentifyParseError, match="checksum mismatch"):
        parse_ata_identify(data)
    identify = parse_ata_identify(data, verify_checksum=False)
    assert identify.model == "Hitachi HUA722010CLA330"
    assert identify.firmware == "JP4OA3EA"
    assert not identify.checksum_verified
    assert identify.security.supported and not identify.security.frozen


@pytest.mark.parametrize("name", ["ata-samsung-ssd-870-evo.bin", "ata-hitachi-hde721010sla330.bin"])
def test_json_has_exactly_the_issue_keys(name: str) -> None:
    report = parse_ata_identify(recorded(name)).to_json()
    assert ISSUE_KEYS <= report.keys()
    assert SECURITY_KEYS <= report["security"].keys()
    assert SANITIZE_KEYS <= report["sanitize"].keys()


# --- constructed: security word 128 --------------------------------------------------------


@pytest.mark.parametrize(
    ("bit", "field"),
    [
        (0, "supported"),
        (1, "enabled"),
        (2, "locked"),
        (3, "frozen"),
        (4, "count_expired"),
        (5, "enhanced_erase_supported"),
        (8, "master_password_maximum"),
    ],
)
def test_security_bits(bit: int, field: str) -> None:
    security = parse_ata_identify(ata_identify(security=1 << bit)).security
    flags = {name: getattr(security, name) for name in (
        "supported", "enabled", "locked", "frozen", "count_expired",
        "enhanced_erase_supported", "master_password_maximum",
    )}  # fmt: skip
    assert flags == {name: name == field for name in flags}


def test_locked_drive() -> None:
    security = parse_ata_identify(ata_identify(security=0b0000_0111)).security
    assert security.supported and security.enabled and security.locked and not security.frozen


# --- constructed: erase time words 89/90 ---------------------------------------------------


@pytest.mark.parametrize(
    ("word", "minutes", "is_minimum"),
    [
        (0x0000, None, False),  # not reported
        (0x0001, 2, False),
        (0x00FE, 508, False),
        (0x00FF, 508, True),  # short format: more than 508 minutes
        (0x7F05, 10, False),  # short format ignores bits 14:8
        (0x8000, None, False),  # extended format, zero = not reported
        (0x8000 | 300, 600, False),  # extended format
        (0x8000 | 0x7FFE, 65_532, False),
        (0xFFFF, 65_532, True),  # extended format: more than 65 532 minutes
    ],
)
def test_erase_time_formats(word: int, minutes: int | None, is_minimum: bool) -> None:
    security = parse_ata_identify(ata_identify(erase_time=word, enhanced_erase_time=word)).security
    assert (security.erase_minutes, security.erase_minutes_is_minimum) == (minutes, is_minimum)
    assert (security.enhanced_erase_minutes, security.enhanced_erase_minutes_is_minimum) == (
        minutes,
        is_minimum,
    )


# --- constructed: sanitize word 59 ---------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        (0x0000, (False, False, False, False, False)),
        (0x1000, (True, False, False, False, False)),
        (0x3000, (True, True, False, False, False)),
        (0x5000, (True, False, False, True, False)),
        (0x9000, (True, False, True, False, False)),
        (0xF400, (True, True, True, True, True)),
        (0x0110, (False, False, False, False, False)),  # multiple-sector bits only
    ],
)
def test_sanitize_bits(word: int, expected: tuple[bool, ...]) -> None:
    sanitize = parse_ata_identify(ata_identify(sanitize=word)).sanitize
    got = (sanitize.supported, sanitize.crypto, sanitize.block, sanitize.overwrite)
    assert (*got, sanitize.antifreeze_lock_supported) == expected


# --- constructed: capacity, sector sizes, rotation ----------------------------------------


def test_extended_sector_count_words_230_233() -> None:
    big = 0x1_0000_0000_0000 + 5
    identify = parse_ata_identify(ata_identify(patch={69: 0x0008, 230: 5, 231: 0, 232: 0, 233: 1}))
    assert identify.user_addressable_sectors == big
    assert identify.max_lba == big - 1


def test_28_bit_only_device_uses_words_60_61() -> None:
    identify = parse_ata_identify(ata_identify(sectors=1_000_000, patch={83: 0x4000}))
    assert not identify.lba48_supported
    assert identify.user_addressable_sectors == 1_000_000


def test_4kn_logical_sectors() -> None:
    # Word 106 bit 12: logical sector > 256 words; words 117-118 = 2048 words = 4096 bytes.
    identify = parse_ata_identify(ata_identify(sectors=1000, patch={106: 0x5000, 117: 2048, 118: 0}))
    assert identify.logical_sector_size == identify.physical_sector_size == 4096
    assert identify.capacity_bytes == 4_096_000


def test_512e_physical_sectors() -> None:
    identify = parse_ata_identify(ata_identify(patch={106: 0x6003}))
    assert (identify.logical_sector_size, identify.physical_sector_size) == (512, 4096)


def test_word_106_ignored_when_not_valid() -> None:
    identify = parse_ata_identify(ata_identify(patch={106: 0x2003}))  # bits 15:14 != 01b
    assert identify.physical_sector_size == 512


def test_bad_logical_sector_size_is_rejected() -> None:
    with pytest.raises(IdentifyParseError, match="117-118"):
        parse_ata_identify(ata_identify(patch={106: 0x5000, 117: 100, 118: 0}))


@pytest.mark.parametrize(
    ("word", "rate"),
    [
        (0x0000, None),
        (0x0001, 1),
        (0x0002, None),
        (0x0400, None),
        (0x0401, 1025),
        (5400, 5400),
        (0xFFFF, None),
    ],
)
def test_rotation_rate(word: int, rate: int | None) -> None:
    assert parse_ata_identify(ata_identify(rotation=word)).rotation_rate == rate


def test_no_minimum_lba_reported() -> None:
    identify = parse_ata_identify(ata_identify(sectors=0))
    assert identify.max_lba is None


# --- constructed: hidden-area feature sets ------------------------------------------------


def test_amac_needs_word_86_bit_15_and_valid_word_119() -> None:
    assert parse_ata_identify(ata_identify(patch={119: 0x4100})).amac_supported
    assert not parse_ata_identify(ata_identify(patch={119: 0x4100, 86: 0x3C01})).amac_supported
    assert not parse_ata_identify(ata_identify(patch={119: 0x0100})).amac_supported


def test_hpa_dco_need_valid_word_83() -> None:
    identify = parse_ata_identify(ata_identify(patch={83: 0x3D01}))  # bits 15:14 = 00b
    assert not identify.hpa_supported and not identify.dco_supported and not identify.lba48_supported
    identify = parse_ata_identify(ata_identify(patch={82: 0x0000, 83: 0x4400}))
    assert not identify.hpa_supported and not identify.dco_supported and identify.lba48_supported


# --- constructed: integrity and garbage ----------------------------------------------------


def test_bad_checksum_is_an_error() -> None:
    data = bytearray(ata_identify())
    data[2 * 217] ^= 0x01  # flip one bit of word 217 after the checksum was computed
    with pytest.raises(IdentifyParseError, match="checksum"):
        parse_ata_identify(bytes(data))


def test_missing_signature_means_no_checksum() -> None:
    identify = parse_ata_identify(ata_identify(checksum=False))
    assert not identify.checksum_verified


def test_error_is_in_the_agent_tree_with_bad_dump_code() -> None:
    with pytest.raises(AgentError) as caught:
        parse_ata_identify(b"\x00" * 10)
    assert caught.value.code == "bad_dump"
    assert caught.value.to_json()["code"] == "bad_dump"


@pytest.mark.parametrize("length", [0, 1, 256, 511, 513, 4096])
def test_wrong_length(length: int) -> None:
    with pytest.raises(IdentifyParseError, match="exactly 512 bytes"):
        parse_ata_identify(b"\x40" * length)


def test_all_zero() -> None:
    with pytest.raises(IdentifyParseError, match="zero"):
        parse_ata_identify(bytes(512))


def test_atapi_data_is_rejected() -> None:
    with pytest.raises(IdentifyParseError, match="ATAPI"):
        parse_ata_identify(ata_identify(patch={0: 0x85C0}))


def test_cfa_signature_is_accepted() -> None:
    assert parse_ata_identify(ata_identify(patch={0: 0x848A})).model == "WIPE-TEST SSD 480GB"


def test_non_ascii_model_is_rejected() -> None:
    words = ata_identify_words()
    words[30] = 0xC3A9
    with pytest.raises(IdentifyParseError, match="model"):
        parse_ata_identify(ata_words_to_bytes(words))


def test_blank_model_is_rejected() -> None:
    with pytest.raises(IdentifyParseError, match="blank"):
        parse_ata_identify(ata_identify(model=""))


def test_nul_padded_strings() -> None:
    words = ata_identify_words(serial="")
    words[10:20] = [0x4142, 0x0000] + [0] * 8  # "AB" then NULs
    assert parse_ata_identify(ata_words_to_bytes(words)).serial == "AB"


def test_accepts_bytearray_and_memoryview() -> None:
    data = ata_identify()
    assert parse_ata_identify(bytearray(data)) == parse_ata_identify(data)  # type: ignore[arg-type]
    assert parse_ata_identify(memoryview(data)) == parse_ata_identify(data)  # type: ignore[arg-type]


def test_qemu_ide_hd_identify_through_real_libata() -> None:
    # QEMU 7.2 ide-hd on AHCI, read with SG_IO ATA PASS-THROUGH (16) in a Linux 6.1 guest.
    identify = parse_ata_identify(recorded("qemu-7.2-ide-hd-ata-identify.bin"))
    assert (identify.model, identify.serial, identify.firmware) == ("QEMU SATA TEST", "SATA0001", "2.5+")
    assert identify.max_lba == 65_535
    assert identify.trim_supported and identify.rotation_rate is None
    # HARDWARE-TESTING.md: QEMU's AHCI disk has no security feature set and no SANITIZE.
    assert not identify.security.supported and not identify.sanitize.supported
    assert not identify.checksum_verified  # QEMU does not fill the word-255 signature
