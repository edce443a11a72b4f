"""D_SENSE: fixed-format ATA PASS-THROUGH results lose COUNT(15:8), where SANITIZE STATUS EXT
reports "in progress"; enable_descriptor_sense() fixes that on the emulated SATL and SAS disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.transport.commands import CommandFailed, ScsiCommand
from agent.transport.sat import enable_descriptor_sense
from wipe_agent_testing.emulated import DriveModel, EmulatedAtaDrive, EmulatedScsiDrive

from .transport_helpers import CRYPTO, sanitize, sanitize_status, scsi_sanitize, tur

SIZE = 64 * 1024


def test_newer_libata_fixed_format_hides_sanitize_in_progress_until_d_sense(tmp_path: Path) -> None:
    model = DriveModel(satl_fixed_sense_unless_d_sense=True, operation_seconds=50)
    drive = EmulatedAtaDrive(tmp_path / "a.img", size_bytes=SIZE, model=model)
    drive.execute(sanitize(*CRYPTO))
    registers = drive.execute(sanitize_status()).ata
    assert registers is not None and registers.partial
    assert registers.count & 0x4000 == 0  # the IN PROGRESS bit was lost on the way
    assert enable_descriptor_sense(drive) is True
    registers = drive.execute(sanitize_status()).ata
    assert registers is not None and not registers.partial and registers.count & 0x4000
    assert enable_descriptor_sense(drive) is False  # already set
    drive.power_cycle()  # D_SENSE is a current (volatile) value
    assert enable_descriptor_sense(drive) is True


def test_satl_side_of_the_ata_drive(tmp_path: Path) -> None:
    drive = EmulatedAtaDrive(tmp_path / "a.img", size_bytes=SIZE, model=DriveModel(operation_seconds=50))
    inquiry = drive.execute(ScsiCommand(bytes([0x12, 0, 0, 0, 36, 0]), data_in_length=36)).data
    assert inquiry[8:16] == b"ATA     "
    capacity = drive.execute(
        ScsiCommand(bytes([0x9E, 0x10]) + bytes(8) + (32).to_bytes(4, "big") + bytes(2), data_in_length=32)
    ).data
    assert int.from_bytes(capacity[0:8], "big") == SIZE // 512 - 1
    drive.execute(tur())
    drive.execute(sanitize(*CRYPTO))
    with pytest.raises(CommandFailed) as caught:
        drive.execute(tur())
    assert caught.value.completion.sense is not None and caught.value.completion.sense.progress is not None
    with pytest.raises(CommandFailed):
        drive.execute(ScsiCommand(bytes([0x48, 0x83, 0, 0, 0, 0, 0, 0, 0, 0])))  # SAT has no SANITIZE here


def test_scsi_drive_sense_format_follows_d_sense(tmp_path: Path) -> None:
    model = DriveModel(operation_seconds=50)
    drive = EmulatedScsiDrive(tmp_path / "s.img", size_bytes=SIZE, model=model)
    drive.execute(scsi_sanitize(0x03))
    with pytest.raises(CommandFailed) as fixed:
        drive.execute(tur())
    assert fixed.value.completion.sense is not None and not fixed.value.completion.sense.descriptor_format
    with pytest.raises(CommandFailed):
        enable_descriptor_sense(drive)  # MODE SENSE ends NOT READY while sanitizing

    other = EmulatedScsiDrive(tmp_path / "t.img", size_bytes=SIZE, model=model)
    assert enable_descriptor_sense(other)
    other.execute(scsi_sanitize(0x03))
    with pytest.raises(CommandFailed) as descriptor:
        other.execute(tur())
    sense = descriptor.value.completion.sense
    assert sense is not None and sense.descriptor_format and sense.progress is not None


def test_mode_sense_changeable_and_invalid(tmp_path: Path) -> None:
    drive = EmulatedScsiDrive(tmp_path / "s.img", size_bytes=SIZE)
    changeable = drive.execute(ScsiCommand(bytes([0x5A, 0x08, 0x4A, 0, 0, 0, 0, 0, 64, 0]), data_in_length=64)).data
    assert changeable[8] == 0x0A and changeable[10] == 0x04
    with pytest.raises(CommandFailed):
        drive.execute(ScsiCommand(bytes([0x5A, 0x08, 0x08, 0, 0, 0, 0, 0, 64, 0]), data_in_length=64))
    with pytest.raises(CommandFailed):  # PF=0
        drive.execute(ScsiCommand(bytes([0x55, 0, 0, 0, 0, 0, 0, 0, 20, 0]), data_out=bytes(20)))
    with pytest.raises(CommandFailed):  # not the control page
        drive.execute(
            ScsiCommand(bytes([0x55, 0x10, 0, 0, 0, 0, 0, 0, 20, 0]), data_out=bytes(8) + b"\x08\x0a" + bytes(10))
        )
