"""The emulated SCSI/SAS disk: INQUIRY/VPD, READ CAPACITY (16), REPORT SUPPORTED OPERATION CODES,
SANITIZE with IMMED and progress via REQUEST SENSE, sanitize-failed condition."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import DriveRemoved
from agent.transport.commands import CommandFailed, PassThroughBlocked, ScsiCommand
from agent.transport.sense import SenseKey, decode_sense
from wipe_agent_testing.emulated import DriveModel, EmulatedScsiDrive, Faults

from .transport_helpers import identify, request_sense, scsi_read16, scsi_sanitize, tur

SIZE = 256 * 1024
CANARY = b"SCSI-CANARY-" * 40


def make(tmp_path: Path, model: DriveModel | None = None, **faults: object) -> EmulatedScsiDrive:
    path = tmp_path / "scsi.img"
    fresh = not path.exists()
    drive = EmulatedScsiDrive(path, size_bytes=SIZE, model=model, faults=Faults(**faults))  # type: ignore[arg-type]
    if fresh:
        path.write_bytes(CANARY.ljust(SIZE, b"\x01"))
    return drive


def sense_of(drive: EmulatedScsiDrive, descriptor: bool = False) -> tuple[SenseKey, tuple[int, int], int | None]:
    sense = decode_sense(drive.execute(request_sense(descriptor)).data)
    assert sense is not None
    return sense.sense_key, sense.asc_ascq, sense.progress


def wait(drive: EmulatedScsiDrive, limit: int = 50) -> None:
    for _ in range(limit):
        _key, asc, _progress = sense_of(drive)
        if asc != (0x04, 0x1B):
            return
    raise AssertionError("sanitize never finished")


def test_inquiry_and_vpd(tmp_path: Path) -> None:
    drive = make(tmp_path, model=DriveModel(serial="SAS42", rotation_rpm=10000))
    standard = drive.execute(ScsiCommand(bytes([0x12, 0, 0, 0, 36, 0]), data_in_length=36)).data
    assert standard[0] == 0 and standard[2] == 0x07 and standard[8:16] == b"EMULATED"
    pages = drive.execute(ScsiCommand(bytes([0x12, 1, 0x00, 0, 255, 0]), data_in_length=255)).data
    assert pages[1] == 0x00 and pages[4:7] == bytes([0x00, 0x80, 0xB1])
    serial = drive.execute(ScsiCommand(bytes([0x12, 1, 0x80, 0, 255, 0]), data_in_length=255)).data
    assert serial[4:] == b"SAS42"
    characteristics = drive.execute(ScsiCommand(bytes([0x12, 1, 0xB1, 0, 64, 0]), data_in_length=64)).data
    assert characteristics[1] == 0xB1 and int.from_bytes(characteristics[2:4], "big") == 0x3C
    assert int.from_bytes(characteristics[4:6], "big") == 10000  # MEDIUM ROTATION RATE
    with pytest.raises(CommandFailed):
        drive.execute(ScsiCommand(bytes([0x12, 1, 0x83, 0, 255, 0]), data_in_length=255))


def test_read_capacity_16(tmp_path: Path) -> None:
    data = (
        make(tmp_path)
        .execute(ScsiCommand(bytes([0x9E, 0x10]) + bytes(8) + (32).to_bytes(4, "big") + bytes(2), data_in_length=32))
        .data
    )
    assert int.from_bytes(data[0:8], "big") == SIZE // 512 - 1 and int.from_bytes(data[8:12], "big") == 512
    assert data[14] & 0x80  # LBPME on flash


def test_report_supported_operation_codes(tmp_path: Path) -> None:
    drive = make(tmp_path, model=DriveModel(sanitize_overwrite=False))
    listing = drive.execute(
        ScsiCommand(bytes([0xA3, 0x0C, 0, 0, 0, 0]) + (4096).to_bytes(4, "big") + bytes(2), data_in_length=4096)
    ).data
    length = int.from_bytes(listing[0:4], "big")
    entries = {(listing[4 + i], int.from_bytes(listing[6 + i : 8 + i], "big")) for i in range(0, length, 8)}
    assert (0x48, 0x02) in entries and (0x48, 0x03) in entries and (0x48, 0x1F) in entries
    assert (0x48, 0x01) not in entries

    def one(opcode: int, action: int) -> int:
        cdb = bytes([0xA3, 0x0C, 0x02, opcode]) + action.to_bytes(2, "big") + (64).to_bytes(4, "big") + bytes(2)
        return drive.execute(ScsiCommand(cdb, data_in_length=64)).data[1] & 0x07

    assert one(0x48, 0x03) == 0b011 and one(0x48, 0x01) == 0b001


def test_sanitize_immediate_progress_and_blocking(tmp_path: Path) -> None:
    drive = make(tmp_path, model=DriveModel(operation_seconds=20))
    assert sense_of(drive)[0] is SenseKey.NO_SENSE
    drive.execute(scsi_sanitize(0x03))  # CRYPTOGRAPHIC ERASE, IMMED
    key, asc, progress = sense_of(drive)
    assert key is SenseKey.NOT_READY and asc == (0x04, 0x1B) and progress is not None and progress > 0
    key, asc, progress = sense_of(drive, descriptor=True)
    assert asc == (0x04, 0x1B) and progress is not None
    with pytest.raises(CommandFailed) as caught:
        drive.execute(tur())
    sense = caught.value.completion.sense
    assert sense is not None and sense.asc_ascq == (0x04, 0x1B) and sense.progress is not None
    with pytest.raises(CommandFailed):
        drive.execute(scsi_read16(0, 1))
    with pytest.raises(CommandFailed):
        drive.execute(scsi_sanitize(0x02))
    wait(drive)
    drive.execute(tur())
    data = drive.data_path.read_bytes()
    assert CANARY not in data and data != bytes(SIZE)


def test_sanitize_without_immed_completes_in_the_command(tmp_path: Path) -> None:
    drive = make(tmp_path, model=DriveModel(block_erase_fill=0xFF))
    drive.execute(scsi_sanitize(0x02, immediate=False))
    assert not drive.sanitize_in_progress
    assert drive.data_path.read_bytes() == b"\xff" * SIZE


def test_overwrite_parameters(tmp_path: Path) -> None:
    drive = make(tmp_path)
    parameters = bytes([0x80 | 2, 0]) + (4).to_bytes(2, "big") + bytes.fromhex("a5a55a5a")
    drive.execute(scsi_sanitize(0x01, immediate=False, parameters=parameters))
    assert drive.data_path.read_bytes() == bytes.fromhex("5a5aa5a5") * (SIZE // 4)  # inverted last pass
    for bad in (bytes([0, 0, 0, 4]) + b"abcd", bytes([1, 0, 0, 0, 0])):  # zero passes, zero-length pattern
        with pytest.raises(CommandFailed) as caught:
            drive.execute(scsi_sanitize(0x01, parameters=bad))
        assert caught.value.completion.sense is not None
        assert caught.value.completion.sense.sense_key is SenseKey.ILLEGAL_REQUEST
    with pytest.raises(CommandFailed):
        drive.execute(scsi_sanitize(0x01))  # no parameter list
    with pytest.raises(CommandFailed):
        drive.execute(scsi_sanitize(0x03, parameters=b"x"))  # crypto takes no parameters
    with pytest.raises(CommandFailed):
        drive.execute(scsi_sanitize(0x07))


def test_sanitize_failed_restricted_and_unrestricted(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    restricted = make(tmp_path / "r", sanitize_fails="restricted")
    assert sense_of(restricted)[1] == (0x31, 0x03)
    with pytest.raises(CommandFailed) as caught:
        restricted.execute(scsi_read16(0, 1))
    assert caught.value.completion.sense is not None
    assert caught.value.completion.sense.sense_key is SenseKey.MEDIUM_ERROR
    with pytest.raises(CommandFailed):
        restricted.execute(scsi_sanitize(0x1F))  # EXIT FAILURE MODE refused
    healthy = EmulatedScsiDrive(restricted.data_path)
    healthy.execute(scsi_sanitize(0x02, immediate=False))
    healthy.execute(scsi_read16(0, 1))

    (tmp_path / "u").mkdir()
    drive = make(tmp_path / "u")
    failing = EmulatedScsiDrive(drive.data_path, faults=Faults(sanitize_fails="restricted"))
    with pytest.raises(CommandFailed) as failed:
        failing.execute(scsi_sanitize(0x03, immediate=False, ause=True))
    assert failed.value.completion.sense is not None
    assert failed.value.completion.sense.asc_ascq == (0x31, 0x03)
    failing.execute(scsi_sanitize(0x1F))  # AUSE=1: exit failure mode allowed
    failing.execute(scsi_read16(0, 1))


def test_power_loss_mid_sanitize_persists(tmp_path: Path) -> None:
    drive = make(tmp_path, power_loss_after_polls=1)
    drive.execute(scsi_sanitize(0x03))
    sense_of(drive)
    with pytest.raises(DriveRemoved):
        sense_of(drive)
    reopened = EmulatedScsiDrive(drive.data_path)
    assert reopened.sanitize_in_progress
    wait(reopened)
    assert CANARY not in reopened.data_path.read_bytes()


def test_faults(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(CommandFailed):
        make(tmp_path / "a", abort_on=frozenset({0x48})).execute(scsi_sanitize(0x03))
    (tmp_path / "b").mkdir()
    liar = make(tmp_path / "b", lies_about_success=True)
    before = liar.data_path.read_bytes()
    liar.execute(scsi_sanitize(0x03, immediate=False))
    liar.execute(tur())
    assert liar.data_path.read_bytes() == before


def test_ata_pass_through_to_sas_drive(tmp_path: Path) -> None:
    with pytest.raises(PassThroughBlocked):
        make(tmp_path).execute(identify())


def test_read_write_commands(tmp_path: Path) -> None:
    drive = make(tmp_path)
    write10 = ScsiCommand(bytes([0x2A, 0, 0, 0, 0, 4, 0, 0, 1, 0]), data_out=b"\x77" * 512)
    drive.execute(write10)
    assert (
        drive.execute(ScsiCommand(bytes([0x28, 0, 0, 0, 0, 4, 0, 0, 1, 0]), data_in_length=512)).data == b"\x77" * 512
    )
    with pytest.raises(CommandFailed):
        drive.execute(scsi_read16(SIZE // 512, 1))
    with pytest.raises(CommandFailed):
        drive.execute(ScsiCommand(bytes([0xC1, 0, 0, 0, 0, 0])))


def test_sanitize_without_immed_and_a_short_timeout_keeps_running(tmp_path: Path) -> None:
    from dataclasses import replace

    from agent.transport.commands import CommandTimeout

    drive = make(tmp_path, model=DriveModel(operation_seconds=600))
    with pytest.raises(CommandTimeout):
        drive.execute(replace(scsi_sanitize(0x02, immediate=False), timeout_s=60))
    assert drive.sanitize_in_progress
    assert sense_of(drive)[1] == (0x04, 0x1B)
