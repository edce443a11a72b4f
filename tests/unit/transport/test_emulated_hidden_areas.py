"""The emulated ATA drive's hidden areas: HPA (ACS-2), Accessible Max Address (ACS-4), DCO (ATA8-ACS).

What the host overwrite relies on: IDENTIFY and READ CAPACITY report the accessible maximum, the
native maximum is read by READ NATIVE MAX / GET NATIVE MAX, the restore commands follow the
ordering rules of the standards, freeze locks abort them, and I/O stops at the accessible maximum.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.methods.capabilities import probe_capabilities
from agent.methods.hidden_areas import detect_hidden_areas, restore_hidden_areas
from agent.transport.commands import AtaCommand, AtaProtocol, CommandFailed, ScsiCommand
from wipe_agent_testing.emulated import DriveModel, EmulatedAtaDrive, Faults

from .transport_helpers import identify, read_sectors, words

SIZE = 1 << 20
SECTORS = SIZE // 512
HIDDEN_MODEL = DriveModel(hpa_supported=True, dco_supported=True)


def make(tmp_path: Path, model: DriveModel = HIDDEN_MODEL, **faults: object) -> EmulatedAtaDrive:
    return EmulatedAtaDrive(tmp_path / "hidden.img", size_bytes=SIZE, model=model,
                            faults=Faults(**faults))  # type: ignore[arg-type]


def identify_sectors(drive: EmulatedAtaDrive) -> int:
    word = words(drive.execute(identify()).data)
    return sum(word[100 + index] << (16 * index) for index in range(4))


def read_native_max() -> AtaCommand:
    return AtaCommand(0x27, extend=True)  # ACS-2 READ NATIVE MAX ADDRESS EXT


def set_max(lba: int, *, volatile: bool = False) -> AtaCommand:
    return AtaCommand(0x37, count=0 if volatile else 1, lba=lba, extend=True)  # ACS-2 SET MAX ADDRESS EXT


def dco(features: int) -> AtaCommand:
    if features == 0xC2:  # DEVICE CONFIGURATION IDENTIFY, PIO data-in
        return AtaCommand(0xB1, AtaProtocol.PIO_IN, features=features, count=1, data_in_length=512, extend=False)
    return AtaCommand(0xB1, features=features, extend=False)


def read_capacity_last_lba(drive: EmulatedAtaDrive) -> int:
    cdb = bytes([0x9E, 0x10]) + bytes(8) + (32).to_bytes(4, "big") + bytes(2)
    return int.from_bytes(drive.execute(ScsiCommand(cdb, data_in_length=32)).data[0:8], "big")


def test_hpa_shrinks_identify_and_read_capacity_but_not_native_max(tmp_path: Path) -> None:
    drive = make(tmp_path, hpa_sectors=100)
    assert identify_sectors(drive) == SECTORS - 100 and read_capacity_last_lba(drive) == SECTORS - 101
    registers = drive.execute(read_native_max()).ata
    assert registers is not None and registers.lba == SECTORS - 1
    word = words(drive.execute(identify()).data)
    assert word[82] & 0x0400 and word[83] & 0x0800  # HPA and DCO feature sets supported


def test_set_max_must_directly_follow_read_native_max_and_persists(tmp_path: Path) -> None:
    drive = make(tmp_path, hpa_sectors=100)
    with pytest.raises(CommandFailed):
        drive.execute(set_max(SECTORS - 1))  # not preceded by READ NATIVE MAX ADDRESS EXT
    drive.execute(read_native_max())
    drive.execute(identify())
    with pytest.raises(CommandFailed):
        drive.execute(set_max(SECTORS - 1))  # another command in between
    drive.execute(read_native_max())
    drive.execute(set_max(SECTORS - 1))
    assert identify_sectors(drive) == SECTORS
    drive.power_cycle()
    assert identify_sectors(drive) == SECTORS  # VV=1: kept across power cycles


def test_volatile_set_max_is_lost_at_power_cycle(tmp_path: Path) -> None:
    drive = make(tmp_path, hpa_sectors=100)
    drive.execute(read_native_max())
    drive.execute(set_max(SECTORS - 1, volatile=True))
    assert identify_sectors(drive) == SECTORS
    drive.power_cycle()
    assert identify_sectors(drive) == SECTORS - 100


def test_io_stops_at_the_accessible_maximum(tmp_path: Path) -> None:
    drive = make(tmp_path, hpa_sectors=8)
    drive.execute(read_sectors(SECTORS - 9, 1))
    with pytest.raises(CommandFailed) as failure:
        drive.execute(read_sectors(SECTORS - 8, 1))
    registers = failure.value.completion.ata
    assert registers is not None and registers.error & 0x10  # IDNF


def test_set_max_freeze_lock_aborts_the_restore(tmp_path: Path) -> None:
    drive = make(tmp_path, hpa_sectors=100, max_address_frozen=True)
    drive.execute(read_native_max())
    with pytest.raises(CommandFailed):
        drive.execute(set_max(SECTORS - 1))
    assert identify_sectors(drive) == SECTORS - 100


def test_dco_identify_reports_the_factory_max_and_restore_waits_for_the_hpa(tmp_path: Path) -> None:
    drive = make(tmp_path, hpa_sectors=100, dco_sectors=200)
    assert identify_sectors(drive) == SECTORS - 300
    native = drive.execute(read_native_max()).ata
    assert native is not None and native.lba == SECTORS - 201  # the DCO sets the native maximum
    data = drive.execute(dco(0xC2)).data
    assert int.from_bytes(data[6:14], "little") == SECTORS - 1 and sum(data) % 256 == 0
    with pytest.raises(CommandFailed):
        drive.execute(dco(0xC0))  # DEVICE CONFIGURATION RESTORE is aborted while an HPA is set
    drive.execute(read_native_max())
    drive.execute(set_max(SECTORS - 201))
    drive.execute(dco(0xC0))
    assert identify_sectors(drive) == SECTORS


def test_dco_freeze_lock_aborts_every_dco_command_until_power_off(tmp_path: Path) -> None:
    drive = make(tmp_path, dco_sectors=200)
    drive.execute(dco(0xC1))
    for features in (0xC2, 0xC0, 0xC1):
        with pytest.raises(CommandFailed):
            drive.execute(dco(features))
    drive.power_cycle()
    drive.execute(dco(0xC2))


def test_amac_get_native_and_set_accessible_max(tmp_path: Path) -> None:
    drive = make(tmp_path, DriveModel(amac_supported=True), hpa_sectors=64)
    capabilities = probe_capabilities(drive, "ata")
    assert capabilities.ata is not None and capabilities.ata.amac_supported and not capabilities.ata.hpa_supported
    with pytest.raises(CommandFailed):
        drive.execute(read_native_max())  # no HPA feature set on this drive
    report = restore_hidden_areas(drive, capabilities)
    assert report.complete and report.max_lba_after == SECTORS - 1 and report.actions[0].startswith("AMAC")
    assert read_capacity_last_lba(drive) == SECTORS - 1


def test_detect_changes_nothing(tmp_path: Path) -> None:
    drive = make(tmp_path, hpa_sectors=100, dco_sectors=200)
    report = detect_hidden_areas(drive, probe_capabilities(drive, "ata"))
    assert report.hidden and not report.errors and report.max_lba_after == report.max_lba_before == SECTORS - 301
    assert report.native_max_lba == SECTORS - 201 and report.dco_max_lba == SECTORS - 1
    assert identify_sectors(drive) == SECTORS - 300


def test_detect_reports_a_frozen_dco_as_refused(tmp_path: Path) -> None:
    drive = make(tmp_path, dco_sectors=200, dco_frozen=True)
    report = detect_hidden_areas(drive, probe_capabilities(drive, "ata"))
    assert report.refused == "dco-identify" and report.errors and not report.passthrough_blocked


def test_defaults_have_no_hidden_area_features(tmp_path: Path) -> None:
    drive = make(tmp_path, DriveModel())
    word = words(drive.execute(identify()).data)
    assert not word[82] & 0x0400 and not word[83] & 0x0800 and not word[86] & 0x8000
