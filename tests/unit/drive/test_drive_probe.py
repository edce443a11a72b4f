"""Live probe through the emulated-firmware transports (and a cross-check of their IDENTIFY data).

The emulated drives build IDENTIFY / Identify / SCSI data from their own code in
wipe_agent_testing/emulated.py, so parsing it here checks the two sides against each other.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.drive import probe
from agent.drive.probe import probe_transport
from agent.errors import CommandError
from wipe_agent_testing.emulated import (
    DriveModel,
    EmulatedAtaDrive,
    EmulatedNvmeDrive,
    EmulatedScsiDrive,
    Faults,
)

SIZE = 8 * 1024 * 1024


def test_ata_ssd(tmp_path: Path) -> None:
    drive = EmulatedAtaDrive(
        tmp_path / "ata.img", size_bytes=SIZE, model=DriveModel(serial="S-1", model="Emu SSD")
    )
    report = probe_transport(drive, "ata")
    assert report["interface"] == "ata" and report["kind"] == "ata-identify"
    assert (report["model"], report["serial"], report["firmware"]) == ("Emu SSD", "S-1", "EMU1.0")
    assert report["max_lba"] == SIZE // 512 - 1
    assert report["rotation_rate"] == 1 and report["solid_state"]
    assert report["checksum_verified"]
    assert report["security"]["supported"] and not report["security"]["frozen"]
    assert report["sanitize"]["supported"]
    assert report["sanitize"]["crypto"] and report["sanitize"]["block"] and report["sanitize"]["overwrite"]
    json.dumps(report)


def test_ata_antifreeze_bit_matches_the_emulator_model(tmp_path: Path) -> None:
    # Word 59 bit 10 (ACS-3; hdparm's word-59 table agrees), fixed in emulated.py in 49b115a.
    drive = EmulatedAtaDrive(
        tmp_path / "ata.img", size_bytes=SIZE, model=DriveModel(antifreeze_supported=True)
    )
    assert probe_transport(drive, "ata")["sanitize"]["antifreeze_lock_supported"]


def test_ata_frozen_hdd_with_security_off(tmp_path: Path) -> None:
    model = DriveModel(
        rotation_rpm=7200, sanitize_crypto=False, sanitize_block=False, sanitize_overwrite=False
    )
    drive = EmulatedAtaDrive(tmp_path / "hdd.img", size_bytes=SIZE, model=model, faults=Faults(frozen=True))
    report = probe_transport(drive, "ata")
    assert report["rotation_rate"] == 7200 and not report["solid_state"]
    assert report["security"]["frozen"]
    assert report["security"]["erase_minutes"] == 2  # model erase_unit_minutes, extended format


def test_ata_locked(tmp_path: Path) -> None:
    drive = EmulatedAtaDrive(
        tmp_path / "locked.img", size_bytes=SIZE, faults=Faults(locked_with_password=b"secret")
    )
    security = probe_transport(drive, "ata")["security"]
    assert security["enabled"] and security["locked"]


def test_ata_behind_blocking_usb_bridge(tmp_path: Path) -> None:
    drive = EmulatedAtaDrive(tmp_path / "usb.img", size_bytes=SIZE, faults=Faults(passthrough_blocked=True))
    with pytest.raises(CommandError):
        probe_transport(drive, "ata")


def test_nvme(tmp_path: Path) -> None:
    model = DriveModel(model="Emu NVMe", nvme_no_deallocate_inhibited=True, sanitize_overwrite=False)
    drive = EmulatedNvmeDrive(tmp_path / "nvme.img", size_bytes=SIZE, model=model)
    report = probe_transport(drive, "nvme")
    assert report["kind"] == "nvme-id-ctrl" and report["model"] == "Emu NVMe"
    assert report["oacs"]["format"]
    assert report["sanicap"]["crypto"] and report["sanicap"]["block"] and not report["sanicap"]["overwrite"]
    assert report["sanicap"]["ndi"]
    assert report["fna"] == {
        "format_all_namespaces": True, "erase_all_namespaces": True, "crypto_erase_supported": True,
        "format_broadcast_unsupported": False, "raw": 7,
    }  # fmt: skip
    namespace = report["namespace"]
    assert namespace["nsid"] == 1 and namespace["block_size"] == 512
    assert namespace["size_bytes"] == SIZE
    assert [lba["data_size"] for lba in namespace["lba_formats"]] == [512, 4096]


def test_scsi(tmp_path: Path) -> None:
    model = DriveModel(model="Emu SAS", rotation_rpm=10_000, sanitize_block=False)
    drive = EmulatedScsiDrive(tmp_path / "sas.img", size_bytes=SIZE, model=model)
    report = probe_transport(drive, "scsi")
    assert report["kind"] == "scsi" and report["vendor"] == "EMULATED" and report["model"] == "Emu SAS"
    assert report["max_lba"] == SIZE // 512 - 1
    assert report["rotation_rate"] == 10_000
    assert report["sanitize"]["overwrite"] and report["sanitize"]["crypto"]
    assert not report["sanitize"]["block"]
    assert report["sanitize"]["exit_failure_mode"]


def test_unknown_interface(tmp_path: Path) -> None:
    drive = EmulatedAtaDrive(tmp_path / "x.img", size_bytes=SIZE)
    with pytest.raises(ValueError, match="unknown interface"):
        probe_transport(drive, "usb")


def test_probe_device_on_missing_node_is_drive_not_found() -> None:
    from agent.errors import DriveNotFound

    with pytest.raises(DriveNotFound):
        probe.probe_device("/dev/wipe-agent-test-no-such-disk")
