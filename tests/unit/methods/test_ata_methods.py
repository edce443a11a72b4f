"""ATA Sanitize and Security Erase through the emulated ATA drive (real SAT CDBs and sense decoding)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.errors import AgentError, DriveRemoved, VerificationFailed
from agent.methods.ata_security_erase import PASSWORD_EVENT, PasswordRejected, release_password
from agent.methods.base import Blocked, Level
from agent.methods.canary import CanarySet
from agent.methods.capabilities import ata_identify
from agent.methods.expectations import ErasedState, Indeterminate
from agent.methods.firmware import SanitizeFailed
from agent.verify.expectation import Pattern, Zero
from wipe_agent_testing.emulated import DriveModel, EmulatedAtaDrive, Faults

from .methods_kit import CountingTransport, FileDevice, Recorder, build, context, expectation_holds, run, target

SIZE = 4 << 20
HDD = DriveModel(rotation_rpm=7200, sanitize_block=False)


def _drive(path: Path, **kwargs: object) -> EmulatedAtaDrive:
    return EmulatedAtaDrive(path, **kwargs)  # type: ignore[arg-type]


def test_block_erase_on_ssd_is_purge(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path)
    recorder = Recorder()
    outcome = run("ata.sanitize.block", target(drive, data_path, transport="sata"), device, recorder)
    assert outcome.level is Level.PURGE and isinstance(outcome.expectation, ErasedState)
    assert outcome.details["command"]["features"] == 0x0012 and outcome.details["command"]["lba"] == 0x426B4572
    assert outcome.details["canaries"]["passed"] and expectation_holds(outcome, data_path)
    hidden = outcome.details["hidden_areas"]
    assert hidden["max_lba_before"] == hidden["max_lba_after"] == SIZE // 512 - 1
    assert any(phase == "sanitize" and 0 < done < total for phase, done, total in recorder.progress)


def test_overwrite_on_hdd_is_purge_and_on_ssd_clear(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path, model=HDD)
    outcome = run("ata.sanitize.overwrite", target(drive, data_path, transport="sata", media="hdd"), device, Recorder())
    assert outcome.level is Level.PURGE and outcome.expectation.inner == Pattern(bytes.fromhex("a5a5a5a5"))  # type: ignore[union-attr]
    assert expectation_holds(outcome, data_path)
    ssd = build("ata.sanitize.overwrite").check(target(_drive(data_path), data_path, transport="sata"))
    assert ssd.level is Level.CLEAR and "flash" in ssd.reason


def test_crypto_scramble_is_clear_and_verified_by_canaries(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path)
    tgt = target(drive, data_path, transport="sata")
    assert build("ata.sanitize.crypto").check(tgt).level is Level.CLEAR
    outcome = run("ata.sanitize.crypto", tgt, device, Recorder())
    assert isinstance(outcome.expectation, Indeterminate) and outcome.details["canaries"]["passed"]


def test_frozen_blocks_sanitize_and_security_erase_with_replug_instruction(data_path: Path) -> None:
    tgt = target(_drive(data_path, faults=Faults(frozen=True)), data_path, transport="sata")
    for name, state in (("ata.sanitize.block", "sanitize-frozen"), ("ata.security_erase.enhanced", "security-frozen")):
        with pytest.raises(Blocked) as caught:
            build(name).check(tgt)
        assert caught.value.state == state and "re-plug" in caught.value.instruction


def test_locked_drive_goes_to_destroy_route(data_path: Path) -> None:
    tgt = target(_drive(data_path, faults=Faults(locked_with_password=b"owner")), data_path, transport="sata")
    for name in ("ata.sanitize.block", "ata.security_erase.enhanced"):
        with pytest.raises(Blocked) as caught:
            build(name).check(tgt)
        assert caught.value.state == "security-locked" and caught.value.route == "destroy"
        assert "destruction" in caught.value.instruction


def test_failed_sanitize_blocks(data_path: Path) -> None:
    tgt = target(_drive(data_path, faults=Faults(sanitize_fails="restricted")), data_path, transport="sata")
    with pytest.raises(Blocked) as caught:
        build("ata.sanitize.block").check(tgt)
    assert caught.value.state == "sanitize-failed"


def test_restricted_and_unrestricted_sanitize_failure(data_path: Path, device: FileDevice) -> None:
    _drive(data_path)
    drive = _drive(data_path, faults=Faults(sanitize_fails="restricted"))
    with pytest.raises(SanitizeFailed) as restricted:
        run("ata.sanitize.block", target(drive, data_path, transport="sata"), device, Recorder())
    assert restricted.value.route == "destroy"
    assert target(_drive(data_path), data_path, transport="sata").capabilities.sanitize.state == "failed"

    fresh = data_path.with_name("fresh.img")
    fresh.write_bytes(os.urandom(SIZE))
    _drive(fresh)
    second = FileDevice(fresh)
    try:
        drive = _drive(fresh, faults=Faults(sanitize_fails="unrestricted"))
        recorder = Recorder()
        with pytest.raises(SanitizeFailed) as unrestricted:
            run("ata.sanitize.block", target(drive, fresh, transport="sata"), second, recorder,
                failure_mode="unrestricted")
        assert unrestricted.value.route == "hold" and "exit-failure-mode" in recorder.names()
        assert recorder.data("firmware-command")["count"] & 0x0010  # FAILURE MODE bit sent
        assert target(_drive(fresh), fresh, transport="sata").capabilities.sanitize.state == "idle"
    finally:
        second.close()


def test_lying_sanitize_is_caught(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path, faults=Faults(lies_about_success=True))
    with pytest.raises(VerificationFailed):
        run("ata.sanitize.block", target(drive, data_path, transport="sata"), device, Recorder())


def test_usb_bridge_blocking_pass_through(data_path: Path) -> None:
    tgt = target(_drive(data_path, faults=Faults(passthrough_blocked=True)), data_path, transport="usb")
    assert tgt.capabilities.blocked
    with pytest.raises(Blocked) as caught:
        build("ata.sanitize.block").check(tgt)
    assert caught.value.state == "passthrough-blocked" and "direct-attach bay" in caught.value.instruction


def test_power_loss_during_sanitize_then_resume(data_path: Path, device: FileDevice) -> None:
    slow = DriveModel(operation_seconds=30)
    recorder = Recorder()
    with pytest.raises(DriveRemoved):
        run("ata.sanitize.block", target(_drive(data_path, model=slow, faults=Faults(power_loss_after_polls=2)),
                                         data_path, transport="sata"), device, recorder)
    revived = CountingTransport(_drive(data_path, model=slow))
    tgt = target(revived, data_path, transport="sata")
    assert tgt.capabilities.sanitize.state == "in_progress"
    outcome = build("ata.sanitize.block").resume(  # type: ignore[attr-defined]
        context(tgt, device, Recorder()), CanarySet.from_json(recorder.data("canaries-planted")))
    started = [c for c in revived.sent if getattr(c, "command", None) == 0xB4 and c.features != 0]  # type: ignore[union-attr]
    assert started == [] and outcome.details["canaries"]["passed"]


# --- security erase -----------------------------------------------------------------------------------
def test_enhanced_security_erase_on_hdd_is_purge_and_leaves_no_password(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path, model=HDD)
    recorder = Recorder()
    outcome = run("ata.security_erase.enhanced", target(drive, data_path, transport="sata", media="hdd"), device,
                  recorder)
    assert outcome.level is Level.PURGE and isinstance(outcome.expectation, Indeterminate)
    names = recorder.names()
    assert names.index("canaries-planted") < names.index(PASSWORD_EVENT) < names.index("firmware-started")
    assert len(recorder.data(PASSWORD_EVENT)["password"]) == 32
    assert not ata_identify(drive).security.enabled
    assert outcome.details["canaries"]["passed"]


def test_security_erase_levels(data_path: Path) -> None:
    ssd = target(_drive(data_path), data_path, transport="sata")
    assert build("ata.security_erase.enhanced").check(ssd).level is Level.CLEAR
    hdd = target(_drive(data_path, model=HDD), data_path, transport="sata", media="hdd")
    normal = build("ata.security_erase.normal").check(hdd)
    assert normal.level is Level.CLEAR and "native max" in normal.reason


def test_normal_erase_writes_zeros(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path, model=HDD)
    outcome = run("ata.security_erase.normal", target(drive, data_path, transport="sata", media="hdd"), device,
                  Recorder())
    assert outcome.expectation.inner == Zero() and expectation_holds(outcome, data_path)


def test_aborted_erase_removes_the_temporary_password(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path, model=HDD, faults=Faults(abort_on=frozenset({0xF4})))
    recorder = Recorder()
    with pytest.raises(AgentError):
        run("ata.security_erase.enhanced", target(drive, data_path, transport="sata", media="hdd"), device, recorder)
    assert recorder.data("password-cleanup")["result"] == "temporary password removed"
    assert not ata_identify(drive).security.enabled


def test_lying_security_erase_is_caught_and_password_removed(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path, model=HDD, faults=Faults(lies_about_success=True))
    with pytest.raises(VerificationFailed):
        run("ata.security_erase.enhanced", target(drive, data_path, transport="sata", media="hdd"), device, Recorder())
    assert not ata_identify(drive).security.enabled


def test_power_loss_during_erase_leaves_a_password_the_journal_can_remove(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path, model=HDD, faults=Faults(power_loss_after_polls=0))
    recorder = Recorder()
    with pytest.raises(DriveRemoved, match=PASSWORD_EVENT):
        run("ata.security_erase.enhanced", target(drive, data_path, transport="sata", media="hdd"), device, recorder)
    revived = _drive(data_path, model=HDD)
    assert ata_identify(revived).security.locked
    assert release_password(revived, recorder.data(PASSWORD_EVENT)["password"].encode()) == "temporary password removed"
    assert not ata_identify(revived).security.enabled


def _locked_with(data_path: Path, password: bytes, **kwargs: object) -> EmulatedAtaDrive:
    return _drive(data_path, model=HDD, faults=Faults(locked_with_password=password), **kwargs)


def test_release_with_a_wrong_password_is_rejected_and_counts_an_attempt(data_path: Path) -> None:
    drive = _locked_with(data_path, b"ours")
    for attempt in range(5):  # ACS-4: the attempt counter expires after five failed UNLOCKs
        assert not ata_identify(drive).security.count_expired
        with pytest.raises(PasswordRejected, match="SECURITY UNLOCK refused"):
            release_password(drive, b"wrong")
        assert ata_identify(drive).security.locked, attempt
    assert ata_identify(drive).security.count_expired
    with pytest.raises(PasswordRejected):  # even the right one, until a power cycle
        release_password(drive, b"ours")
    drive.power_cycle()
    assert release_password(drive, b"ours") == "temporary password removed"
    assert not ata_identify(drive).security.enabled


def test_release_on_an_unlocked_drive_rejects_a_wrong_password_at_disable(data_path: Path) -> None:
    from agent.transport.commands import AtaCommand, AtaProtocol

    drive = _locked_with(data_path, b"ours")
    block = bytes(2) + b"ours".ljust(32, b"\0") + bytes(512 - 34)
    drive.execute(AtaCommand(0xF2, AtaProtocol.PIO_OUT, count=1, data_out=block, extend=False))  # SEC4 -> SEC5
    with pytest.raises(PasswordRejected, match="DISABLE PASSWORD refused"):
        release_password(drive, b"not-ours")
    security = ata_identify(drive).security
    assert security.enabled and not security.locked
    assert release_password(drive, b"ours") == "temporary password removed"


def test_release_whose_disable_fails_after_unlock_is_not_a_rejection(data_path: Path) -> None:
    _locked_with(data_path, b"ours")
    faulty = _drive(data_path, model=HDD, faults=Faults(abort_on=frozenset({0xF6})))  # same drive, re-plugged
    with pytest.raises(AgentError) as caught:
        release_password(faulty, b"ours")
    assert not isinstance(caught.value, PasswordRejected)
    security = ata_identify(faulty).security
    assert security.enabled and not security.locked  # unlocked (SEC5), password still set


def test_password_is_committed_to_the_journal_before_it_is_set(data_path: Path, device: FileDevice) -> None:
    sequence: list[str] = []

    class Sequenced(CountingTransport):
        def execute(self, command):  # type: ignore[no-untyped-def]
            sequence.append(f"ATA {getattr(command, 'command', 0):02X}h")
            return super().execute(command)

    drive = Sequenced(_drive(data_path, model=HDD))
    tgt = target(drive, data_path, transport="sata", media="hdd")
    ctx = context(tgt, device, Recorder())
    ctx.journal = lambda event, _data: sequence.append(event)
    build("ata.security_erase.enhanced").run(ctx)
    assert sequence.index(PASSWORD_EVENT) < sequence.index("ATA F1h") < sequence.index("ATA F4h")
    assert sequence.index("canaries-planted") < sequence.index("ATA F1h")
    assert sequence.index("ATA F4h") < sequence.index("password-cleanup")
