"""overwrite.* and hidden areas without root: what is recorded when they cannot be checked, and refusals.

The end-to-end cases (restore, kernel rescan, whole-medium read-back) run over loop devices in
tests/integration/methods/test_overwrite_hidden_areas.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.methods.base import Blocked
from wipe_agent_testing.emulated import DriveModel, EmulatedAtaDrive, EmulatedNvmeDrive, Faults

from .methods_kit import FileDevice, Recorder, build, context, target

SIZE = 1 << 20
HDD = DriveModel(rotation_rpm=7200, hpa_supported=True, dco_supported=True)


def test_usb_bridge_without_pass_through_is_overwritten_and_recorded_unchecked(data_path: Path) -> None:
    drive = EmulatedAtaDrive(data_path, model=HDD, faults=Faults(passthrough_blocked=True, hpa_sectors=64))
    tgt = target(drive, data_path, transport="usb", media="hdd")
    method = build("overwrite.zero")
    assert "not checked: a USB bridge refused ATA pass-through" in method.check(tgt).reason
    device, recorder = FileDevice(data_path), Recorder()
    try:
        outcome = method.run(context(tgt, device, recorder))
    finally:
        device.close()
    hidden = outcome.details["hidden_areas"]
    assert hidden["checked"] is False and "USB bridge refused ATA pass-through" in hidden["reason"]
    assert "may be fewer than the medium holds" in hidden["reason"] and data_path.read_bytes() == bytes(SIZE)


def test_nvme_drive_records_that_ata_hidden_areas_do_not_apply(data_path: Path) -> None:
    drive = EmulatedNvmeDrive(data_path)
    tgt = target(drive, data_path, transport="nvme", media="ssd")
    device = FileDevice(data_path)
    try:
        outcome = build("overwrite.zero").run(context(tgt, device, Recorder()))
    finally:
        device.close()
    assert outcome.details["hidden_areas"]["checked"] is False
    assert "NVME drive" in outcome.details["hidden_areas"]["reason"]


def test_native_max_refused_is_refused_before_writing(data_path: Path) -> None:
    drive = EmulatedAtaDrive(data_path, model=HDD, faults=Faults(abort_on=frozenset({0x27})))
    tgt = target(drive, data_path, transport="sata", media="hdd")
    before = data_path.read_bytes()
    device, recorder = FileDevice(data_path), Recorder()
    try:
        with pytest.raises(Blocked) as refused:
            build("overwrite.zero").run(context(tgt, device, recorder))
    finally:
        device.close()
    assert refused.value.state == "hidden-area-unchecked" and refused.value.route == "hold"
    assert "power-cycle" in refused.value.instruction and recorder.data("hidden-areas-detected")["refused"]
    assert "overwrite-start" not in recorder.names() and data_path.read_bytes() == before


def test_ata_check_reason_promises_the_restore(data_path: Path) -> None:
    drive = EmulatedAtaDrive(data_path, model=HDD)
    reason = build("overwrite.random").check(target(drive, data_path, transport="sata", media="hdd")).reason
    assert "restored" in reason and "else the job is refused" in reason
