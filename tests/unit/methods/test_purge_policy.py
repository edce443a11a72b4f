"""nist-purge over emulated drives: what is chosen, why each rung was skipped, and refusals with instructions."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent.methods.base import Level
from agent.policy.profiles import load_profile
from agent.policy.select import NoMethod, select_method
from wipe_agent_testing.emulated import DriveModel, EmulatedAtaDrive, EmulatedNvmeDrive, EmulatedScsiDrive, Faults

from .methods_kit import target

SIZE = 1 << 20


def _reasons(decisions: tuple) -> dict[str, str]:  # type: ignore[type-arg]
    return {decision.method: decision.reason for decision in decisions}


def test_nvme_takes_block_erase_after_recording_crypto_as_clear(data_path: Path) -> None:
    selection = select_method(load_profile("nist-purge"), target(EmulatedNvmeDrive(data_path), data_path))
    assert selection.method.name == "nvme.sanitize.block" and selection.applicability.level is Level.PURGE
    reasons = _reasons(selection.decisions)
    assert "achieves only clear" in reasons["nvme.sanitize.crypto"] and "validated" in reasons["nvme.sanitize.crypto"]
    assert "not ATA" in reasons["ata.sanitize.crypto"]


def test_nvme_without_block_or_overwrite_falls_to_format_user_erase(data_path: Path) -> None:
    drive = EmulatedNvmeDrive(data_path, model=DriveModel(sanitize_block=False, sanitize_overwrite=False))
    selection = select_method(load_profile("nist-purge"), target(drive, data_path))
    assert selection.method.name == "nvme.format.user_erase"
    assert "does not offer" in _reasons(selection.decisions)["nvme.sanitize.block"]


def test_ata_hdd_takes_overwrite_sanitize(data_path: Path) -> None:
    drive = EmulatedAtaDrive(data_path, model=DriveModel(rotation_rpm=7200))
    selection = select_method(load_profile("nist-purge"), target(drive, data_path, transport="sata", media="hdd"))
    assert selection.method.name == "ata.sanitize.overwrite"
    assert "magnetic" in _reasons(selection.decisions)["ata.sanitize.block"]


def test_sas_ssd_takes_block_erase(data_path: Path) -> None:
    selection = select_method(load_profile("nist-purge"), target(EmulatedScsiDrive(data_path), data_path,
                                                                    transport="scsi"))
    assert selection.method.name == "scsi.sanitize.block"


def test_drive_in_usb_enclosure_is_judged_by_what_it_reports(data_path: Path) -> None:
    drive = EmulatedAtaDrive(data_path, model=DriveModel(rotation_rpm=5400, sanitize_block=False))
    tgt = target(drive, data_path, transport="usb", media="usb")
    selection = select_method(load_profile("nist-purge"), tgt)
    assert selection.method.name == "ata.sanitize.overwrite" and selection.applicability.level is Level.PURGE


@pytest.mark.parametrize(
    ("faults", "code", "route"),
    [
        (Faults(frozen=True), "blocked_sanitize_frozen", "hold"),
        (Faults(locked_with_password=b"x"), "blocked_security_locked", "destroy"),
        (Faults(sanitize_fails="unrestricted"), "blocked_sanitize_failed", "destroy"),
    ],
)
def test_blocking_states_refuse_with_instruction(data_path: Path, faults: Faults, code: str, route: str) -> None:
    tgt = target(EmulatedAtaDrive(data_path, faults=faults), data_path, transport="sata")
    with pytest.raises(NoMethod) as caught:
        select_method(load_profile("nist-purge"), tgt)
    assert caught.value.code == code and caught.value.route == route and caught.value.instruction
    assert caught.value.message.startswith("no purge method available for this drive: ")


def test_usb_stick_gets_the_stick_instruction(data_path: Path) -> None:
    tgt = target(EmulatedAtaDrive(data_path, faults=Faults(passthrough_blocked=True)), data_path, transport="usb",
                 media="usb")
    stick = dataclasses.replace(tgt, identity=dataclasses.replace(tgt.identity, removable=True))
    with pytest.raises(NoMethod) as caught:
        select_method(load_profile("nist-purge"), stick)
    assert "flash stick" in caught.value.message and "direct-attach bay" in caught.value.message
    with pytest.raises(NoMethod) as enclosure:
        select_method(load_profile("nist-purge"), tgt)
    assert "flash stick" not in enclosure.value.message and "direct-attach bay" in enclosure.value.message
