"""The emulator's IDENTIFY / Identify / INQUIRY data, read by the project's own pure parsers
(agent.drive), in every security and capability state: the two must agree."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.drive.ata import parse_ata_identify
from agent.drive.nvme import parse_nvme_id_ctrl, parse_nvme_id_ns
from agent.drive.scsi import (
    parse_block_device_characteristics_vpd,
    parse_inquiry,
    parse_read_capacity16,
    parse_report_supported_opcodes_sanitize,
)
from agent.transport.commands import CommandFailed, ScsiCommand
from wipe_agent_testing.emulated import (
    DriveModel,
    EmulatedAtaDrive,
    EmulatedNvmeDrive,
    EmulatedScsiDrive,
    Faults,
)

from .transport_helpers import identify, nvme_format, nvme_identify, security

SIZE = 1024 * 1024


def test_ata_identify_states_parse(tmp_path: Path) -> None:
    model = DriveModel(
        serial="WD-1234",
        model="Emulated HDD",
        firmware="01.02",
        rotation_rpm=5400,
        sanitize_crypto=False,
        erase_unit_minutes=120,
    )
    drive = EmulatedAtaDrive(tmp_path / "a.img", size_bytes=SIZE, model=model)
    parsed = parse_ata_identify(drive.execute(identify()).data)
    assert (parsed.serial, parsed.model, parsed.firmware) == ("WD-1234", "Emulated HDD", "01.02")
    assert parsed.checksum_verified and parsed.lba48_supported
    assert parsed.user_addressable_sectors == SIZE // 512 and parsed.logical_sector_size == 512
    assert parsed.rotation_rate == 5400 and not parsed.solid_state
    assert parsed.sanitize.supported and parsed.sanitize.block and parsed.sanitize.overwrite
    assert not parsed.sanitize.crypto and parsed.sanitize.antifreeze_lock_supported
    security_state = parsed.security
    assert security_state.supported and not security_state.enabled and not security_state.frozen
    assert security_state.enhanced_erase_supported and security_state.erase_minutes == 120

    drive.execute(security(0xF1, b"pw", maximum=True))
    drive.execute(security(0xF5))
    state = parse_ata_identify(drive.execute(identify()).data).security
    assert state.enabled and state.frozen and not state.locked and state.master_password_maximum  # SEC6

    drive.power_cycle()
    state = parse_ata_identify(drive.execute(identify()).data).security
    assert state.enabled and state.locked and not state.frozen  # SEC4


def test_ata_identify_ssd_frozen_count_expired(tmp_path: Path) -> None:
    drive = EmulatedAtaDrive(tmp_path / "a.img", size_bytes=SIZE, faults=Faults(frozen=True))
    parsed = parse_ata_identify(drive.execute(identify()).data)
    assert parsed.solid_state and parsed.trim_supported and parsed.security.frozen
    locked = EmulatedAtaDrive(tmp_path / "b.img", size_bytes=SIZE, faults=Faults(locked_with_password=b"x"))
    for _ in range(5):
        with pytest.raises(CommandFailed):
            locked.execute(security(0xF2, b"wrong"))
    state = parse_ata_identify(locked.execute(identify()).data).security
    assert state.locked and state.count_expired


def test_nvme_identify_parses(tmp_path: Path) -> None:
    model = DriveModel(
        serial="NV-9",
        model="Emulated NVMe",
        sanitize_overwrite=False,
        nvme_crypto_format_supported=False,
        nvme_no_deallocate_inhibited=True,
    )
    drive = EmulatedNvmeDrive(tmp_path / "n.img", size_bytes=SIZE, model=model)
    controller = parse_nvme_id_ctrl(drive.execute(nvme_identify(0x01)).data)
    assert (controller.serial, controller.model) == ("NV-9", "Emulated NVMe")
    assert controller.oacs.format and controller.namespace_count == 1
    assert controller.sanicap.crypto and controller.sanicap.block and not controller.sanicap.overwrite
    assert controller.sanicap.ndi
    assert controller.fna.format_all_namespaces and not controller.fna.crypto_erase_supported
    namespace = parse_nvme_id_ns(drive.execute(nvme_identify(0x00, nsid=1)).data)
    assert namespace.size_blocks == SIZE // 512 and namespace.block_size == 512
    assert [fmt.data_size for fmt in namespace.lba_formats] == [512, 4096]
    drive.execute(nvme_format(lbaf=1, ses=1))
    namespace = parse_nvme_id_ns(drive.execute(nvme_identify(0x00, nsid=1)).data)
    assert namespace.block_size == 4096 and namespace.size_bytes == SIZE


def test_scsi_data_parses(tmp_path: Path) -> None:
    drive = EmulatedScsiDrive(
        tmp_path / "s.img", size_bytes=SIZE, model=DriveModel(rotation_rpm=0, sanitize_overwrite=False)
    )
    inquiry = parse_inquiry(drive.execute(ScsiCommand(bytes([0x12, 0, 0, 0, 96, 0]), data_in_length=96)).data)
    assert inquiry.vendor == "EMULATED"
    capacity = parse_read_capacity16(
        drive.execute(
            ScsiCommand(bytes([0x9E, 0x10]) + bytes(8) + (32).to_bytes(4, "big") + bytes(2), data_in_length=32)
        ).data
    )
    assert capacity.logical_block_length == 512
    vpd = drive.execute(ScsiCommand(bytes([0x12, 1, 0xB1, 0, 64, 0]), data_in_length=64)).data
    assert parse_block_device_characteristics_vpd(vpd).rotation_rate == 1
    listing = drive.execute(
        ScsiCommand(bytes([0xA3, 0x0C, 0, 0, 0, 0]) + (4096).to_bytes(4, "big") + bytes(2), data_in_length=4096)
    ).data
    support = parse_report_supported_opcodes_sanitize(listing)
    assert support.block and support.crypto and not support.overwrite
