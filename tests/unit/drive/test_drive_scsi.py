"""SCSI INQUIRY, READ CAPACITY (16), VPD B1h and REPORT SUPPORTED OPERATION CODES parsers."""

from __future__ import annotations

import pytest

from agent.drive import (
    IdentifyParseError,
    parse_block_device_characteristics_vpd,
    parse_inquiry,
    parse_read_capacity16,
    parse_report_supported_opcodes_sanitize,
)
from tests.unit.drive.drive_builders import (
    rsoc_all_commands,
    rsoc_descriptor,
    scsi_inquiry,
    scsi_read_capacity16,
    scsi_vpd_b1,
)


def test_inquiry() -> None:
    inquiry = parse_inquiry(scsi_inquiry())
    assert (inquiry.vendor, inquiry.model, inquiry.firmware) == ("SEAGATE", "ST4000NM0025", "E002")
    assert inquiry.device_type == 0 and not inquiry.removable
    assert inquiry.to_json()["model"] == "ST4000NM0025"


def test_inquiry_36_bytes_is_enough() -> None:
    assert parse_inquiry(scsi_inquiry()[:36]).vendor == "SEAGATE"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({0: 0x7F}, "no logical unit"),
        ({4: 10}, "ADDITIONAL LENGTH"),
        ({3: 0x03}, "RESPONSE DATA FORMAT"),
        ({20: 0x80}, "PRODUCT IDENTIFICATION"),
    ],
)
def test_inquiry_invalid(patch: dict[int, int], message: str) -> None:
    data = bytearray(scsi_inquiry())
    for offset, value in patch.items():
        data[offset] = value
    with pytest.raises(IdentifyParseError, match=message):
        parse_inquiry(bytes(data))


def test_inquiry_short() -> None:
    with pytest.raises(IdentifyParseError, match="at least 36"):
        parse_inquiry(scsi_inquiry()[:35])


def test_read_capacity16_512e() -> None:
    capacity = parse_read_capacity16(scsi_read_capacity16(last_lba=7_814_037_167, exponent=3, byte14=0xC0))
    assert capacity.block_count == 7_814_037_168
    assert capacity.capacity_bytes == 7_814_037_168 * 512
    assert capacity.physical_block_length == 4096
    assert capacity.lbpme and capacity.lbprz
    assert capacity.to_json()["max_lba"] == 7_814_037_167


def test_read_capacity16_invalid() -> None:
    with pytest.raises(IdentifyParseError, match="LOGICAL BLOCK LENGTH"):
        parse_read_capacity16(scsi_read_capacity16(last_lba=10, block=0))
    with pytest.raises(IdentifyParseError, match="at least 32"):
        parse_read_capacity16(bytes(12))


@pytest.mark.parametrize(
    ("rotation", "rate", "solid_state"),
    [
        (0x0000, None, False),
        (0x0001, 1, True),
        (0x1C20, 7200, False),
        (0x3A98, 15000, False),
        (0xFFFF, None, False),
    ],
)
def test_block_device_characteristics(rotation: int, rate: int | None, solid_state: bool) -> None:
    page = parse_block_device_characteristics_vpd(scsi_vpd_b1(rotation=rotation))
    assert page.rotation_rate == rate and page.solid_state is solid_state
    assert page.nominal_form_factor == 2


def test_block_device_characteristics_wrong_page() -> None:
    data = bytearray(scsi_vpd_b1(rotation=1))
    data[1] = 0x80
    with pytest.raises(IdentifyParseError, match="page code"):
        parse_block_device_characteristics_vpd(bytes(data))


def test_rsoc_finds_sanitize_service_actions_among_other_commands() -> None:
    data = rsoc_all_commands(
        rsoc_descriptor(0x28),  # READ (10)
        rsoc_descriptor(0x9E, 0x10, servactv=True),  # READ CAPACITY (16)
        rsoc_descriptor(0x48, 0x01, servactv=True),  # SANITIZE OVERWRITE
        rsoc_descriptor(0x48, 0x03, servactv=True, ctdp=True),  # CRYPTO ERASE, with timeouts
        rsoc_descriptor(0x48, 0x1F, servactv=True),  # EXIT FAILURE MODE
        rsoc_descriptor(0x2A),
    )
    support = parse_report_supported_opcodes_sanitize(data)
    assert support.overwrite and support.crypto and support.exit_failure_mode
    assert not support.block
    assert support.supported


def test_rsoc_without_sanitize() -> None:
    support = parse_report_supported_opcodes_sanitize(rsoc_all_commands(rsoc_descriptor(0x28)))
    assert not support.supported and not support.exit_failure_mode


def test_rsoc_ignores_sanitize_opcode_without_servactv() -> None:
    support = parse_report_supported_opcodes_sanitize(rsoc_all_commands(rsoc_descriptor(0x48, 0x02)))
    assert not support.block


def test_rsoc_empty_list() -> None:
    assert not parse_report_supported_opcodes_sanitize(bytes(4)).supported


def test_rsoc_truncated_by_allocation_length_is_an_error() -> None:
    data = rsoc_all_commands(rsoc_descriptor(0x28), rsoc_descriptor(0x48, 0x02, servactv=True))
    with pytest.raises(IdentifyParseError, match="allocation length"):
        parse_report_supported_opcodes_sanitize(data[:-4])


def test_rsoc_descriptor_cut_short() -> None:
    body = rsoc_descriptor(0x48, 0x03, servactv=True, ctdp=True)[:12]
    with pytest.raises(IdentifyParseError, match="cut short"):
        parse_report_supported_opcodes_sanitize(len(body).to_bytes(4, "big") + body)


def test_qemu_scsi_hd_inquiry() -> None:
    from tests.unit.drive.drive_builders import recorded

    inquiry = parse_inquiry(recorded("qemu-7.2-scsi-hd-inquiry.bin"))
    assert (inquiry.vendor, inquiry.model, inquiry.firmware) == ("QEMU", "QEMU HARDDISK", "2.5+")
    assert inquiry.version == 5
