"""SCSI SANITIZE through the emulated SAS disk: progress from sense, failure modes, blocking states."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.methods.base import Blocked, Level
from agent.methods.expectations import ErasedState, Indeterminate
from agent.methods.firmware import SanitizeFailed
from agent.transport.commands import ScsiCommand
from agent.verify.expectation import Pattern
from wipe_agent_testing.emulated import DriveModel, EmulatedScsiDrive, Faults, ManualClock

from .methods_kit import CountingTransport, FileDevice, Recorder, build, expectation_holds, run, target

SIZE = 4 << 20


def test_block_erase_progress_comes_from_sense(data_path: Path, device: FileDevice) -> None:
    drive = EmulatedScsiDrive(data_path, model=DriveModel(operation_seconds=8))
    recorder = Recorder()
    outcome = run("scsi.sanitize.block", target(drive, data_path, transport="scsi"), device, recorder)
    assert outcome.level is Level.PURGE and isinstance(outcome.expectation, ErasedState)
    fractions = [done / total for phase, done, total in recorder.progress if phase == "sanitize"]
    assert any(0 < value < 1 for value in fractions) and fractions == sorted(fractions)
    assert outcome.details["command"]["cdb"].startswith("4882")  # SANITIZE, IMMED | BLOCK ERASE
    assert expectation_holds(outcome, data_path)


def test_overwrite_on_hdd_and_crypto(data_path: Path, device: FileDevice) -> None:
    hdd = EmulatedScsiDrive(data_path, model=DriveModel(rotation_rpm=10000))
    outcome = run("scsi.sanitize.overwrite", target(hdd, data_path, transport="scsi", media="hdd"), device, Recorder())
    assert outcome.level is Level.PURGE and outcome.expectation.inner == Pattern(bytes.fromhex("a5a5a5a5"))  # type: ignore[union-attr]
    assert expectation_holds(outcome, data_path)
    crypto = run("scsi.sanitize.crypto", target(hdd, data_path, transport="scsi", media="hdd"), device, Recorder())
    assert crypto.level is Level.CLEAR and isinstance(crypto.expectation, Indeterminate)


def test_failure_modes(data_path: Path, device: FileDevice) -> None:
    EmulatedScsiDrive(data_path)
    drive = CountingTransport(EmulatedScsiDrive(data_path, faults=Faults(sanitize_fails="unrestricted")))
    with pytest.raises(SanitizeFailed) as caught:
        run("scsi.sanitize.block", target(drive, data_path, transport="scsi"), device, Recorder(),
            failure_mode="unrestricted")
    assert caught.value.route == "hold"
    actions = [c.cdb[1] & 0x1F for c in drive.sent if isinstance(c, ScsiCommand) and c.cdb[0] == 0x48]
    assert actions == [0x02, 0x1F]  # block erase, then EXIT FAILURE MODE
    restricted = CountingTransport(EmulatedScsiDrive(data_path, faults=Faults(sanitize_fails="restricted")))
    with pytest.raises(SanitizeFailed) as second:
        run("scsi.sanitize.block", target(restricted, data_path, transport="scsi"), device, Recorder())
    assert second.value.route == "destroy"
    with pytest.raises(Blocked) as blocked:
        build("scsi.sanitize.block").check(target(EmulatedScsiDrive(data_path), data_path, transport="scsi"))
    assert blocked.value.state == "sanitize-failed"


def test_in_progress_blocks(data_path: Path) -> None:
    drive = EmulatedScsiDrive(data_path, clock=ManualClock())
    drive.execute(ScsiCommand(bytes([0x48, 0x82, 0, 0, 0, 0, 0, 0, 0, 0])))
    with pytest.raises(Blocked) as caught:
        build("scsi.sanitize.crypto").check(target(drive, data_path, transport="scsi"))
    assert caught.value.state == "sanitize-in-progress"


def test_lies_and_unsupported(data_path: Path, device: FileDevice) -> None:
    from agent.errors import NotSupported, VerificationFailed

    with pytest.raises(VerificationFailed):
        run("scsi.sanitize.block", target(EmulatedScsiDrive(data_path, faults=Faults(lies_about_success=True)),
                                          data_path, transport="scsi"), device, Recorder())
    plain = EmulatedScsiDrive(data_path, model=DriveModel(sanitize_block=False))
    with pytest.raises(NotSupported, match="02h"):
        build("scsi.sanitize.block").check(target(plain, data_path, transport="scsi"))


def test_kernel_rotational_flag_alone_never_earns_an_hdd_purge(data_path: Path) -> None:
    # a SAS SSD behind an HBA that reports no rotation rate: the kernel says rotational=1 ("hdd"),
    # but only the drive's own VPD B1h may make SANITIZE OVERWRITE a Purge
    silent = EmulatedScsiDrive(data_path, model=DriveModel(rotation_rpm=1))
    tgt = target(silent, data_path, transport="scsi", media="hdd")
    assert build("scsi.sanitize.overwrite").check(tgt).level is Level.CLEAR
    spinning = EmulatedScsiDrive(data_path, model=DriveModel(rotation_rpm=7200))
    assert build("scsi.sanitize.overwrite").check(target(spinning, data_path, transport="scsi",
                                                         media="hdd")).level is Level.PURGE
