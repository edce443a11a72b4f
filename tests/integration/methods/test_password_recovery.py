"""A drive this station locked itself (its SECURITY ERASE cut short) is unlocked by the next job, never destroyed.

Every scenario runs real jobs over loop devices whose ATA firmware is emulated (ACS-4 security states
SEC1-SEC6 kept in the JSON sidecar across "power cycles" = new emulator instances). The drive's state
is read back from the emulator — IDENTIFY through a fresh instance and the sidecar — never taken from
a job's outcome alone.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.jobs.certify import CertificateSettings, certify, station_signer
from agent.methods.ata_security_erase import PASSWORD_EVENT
from agent.methods.capabilities import ata_identify
from agent.store.registry import JobRow, Registry
from agent.transport.commands import AtaCommand, AtaProtocol, CommandFailed
from certs import pki
from certs.verify import verify_file
from tests.conftest import LoopDevice
from tests.integration.methods.purge_kit import make_runner, purge
from tests.unit.methods.methods_kit import CountingTransport
from wipe_agent_testing.emulated import DriveModel, EmulatedAtaDrive, Faults, state_path_for

pytestmark = pytest.mark.root
SIZE = 64 << 20
HDD = DriveModel(rotation_rpm=7200, sanitize_block=False, sanitize_overwrite=False)  # nist-purge → enhanced erase
SECURITY_OPCODES = {0xF1, 0xF2, 0xF3, 0xF4, 0xF6}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _block(password: bytes) -> bytes:
    # ACS-4 security command data: word 0 control (user, High), words 1-16 the password
    return bytes(2) + password.ljust(32, b"\0") + bytes(512 - 34)


def _send(drive: EmulatedAtaDrive, opcode: int, password: bytes | None = None) -> None:
    """A security command as an operator's tool (hdparm) would send it."""
    if password is None:
        drive.execute(AtaCommand(opcode, extend=False))
    else:
        drive.execute(AtaCommand(opcode, AtaProtocol.PIO_OUT, count=1, data_out=_block(password), extend=False))


def _changes(drive: CountingTransport) -> list[int]:
    """Commands sent that may change the medium or its password: writes, SECURITY SET/ERASE, any SANITIZE but STATUS."""
    return [command.command for command in drive.sent if isinstance(command, AtaCommand) and (
        command.command in (0x34, 0x35, 0xF1, 0xF3, 0xF4) or (command.command == 0xB4 and command.features))]


def _events(registry: Registry, job_id: str) -> list[str]:
    return [event["event"] for event in registry.events(job_id)]


def _sidecar_password(loop: LoopDevice) -> str | None:
    """The user password the emulated drive keeps across power cycles (hex), read straight from its state file."""
    value = json.loads(state_path_for(loop.backing).read_text())["user_password"]
    return None if value is None else str(value)


def _cut_short(state_dir: Path, loop: LoopDevice, serial: str = "EMU-0001") -> tuple[JobRow, str]:
    """A purge whose drive loses power during SECURITY ERASE UNIT; returns the failed job and its password."""
    drive = EmulatedAtaDrive(loop.backing, model=HDD, faults=Faults(power_loss_after_polls=0))
    runner, registry = make_runner(state_dir, "sata", "hdd", drive, serial)
    job = purge(runner, loop.path)
    password = next(e["data"]["password"] for e in registry.events(job.id) if e["event"] == PASSWORD_EVENT)
    registry.close()
    assert job.state == "failed" and job.error_code == "drive_removed" and job.route == "hold", job.reason
    return job, str(password)


def test_power_loss_mid_erase_then_reinsert_removes_our_password_and_sanitises(
    loop_factory: Callable[..., LoopDevice], state_dir: Path, tmp_path: Path
) -> None:
    pki.init_ca("Test Constabulary", tmp_path / "ca")
    pki.issue_station(tmp_path / "ca", "station-test", state_dir)
    bundle = pki.make_bundle(tmp_path / "ca", tmp_path / "bundle.pem")
    loop = loop_factory(SIZE)
    old, password = _cut_short(state_dir, loop)
    assert "password-cleanup" not in _events(Registry(state_dir).open(), old.id)
    assert _sidecar_password(loop) == password.encode().ljust(32, b"\0").hex()
    # re-inserted: powers up locked (SEC4) with the password the old job journalled
    drive = CountingTransport(EmulatedAtaDrive(loop.backing, model=HDD))
    assert ata_identify(drive.inner).security.locked
    runner, registry = make_runner(state_dir, "sata", "hdd", drive)
    job = purge(runner, loop.path)
    assert job.state == "sanitised" and job.route == "reuse", job.reason
    assert job.method == "ata.security_erase.enhanced" and job.level == "purge"
    assert job.method_details is not None and job.method_details["canaries"]["passed"]
    # the chain: the old job says who removed its password, the new one says whose it removed
    old_events = registry.events(old.id)
    cleanup = [e for e in old_events if e["event"] == "password-cleanup"]
    assert len(cleanup) == 1 and cleanup[0]["data"] == {"result": "temporary password removed", "by_job": job.id}
    assert [e["event"] for e in old_events].index(PASSWORD_EVENT) < [e["event"] for e in old_events].index(
        "password-cleanup")
    new_events = registry.events(job.id)
    released = [e for e in new_events if e["event"] == "ata-password-released"]
    assert len(released) == 1 and released[0]["data"]["job"] == old.id and released[0]["state"] == "checking"
    names = [e["event"] for e in new_events]
    assert names.index("ata-password-released") < names.index("method-start")
    # unlocked once, then the job's own erase ran with a fresh password of its own
    opcodes = drive.opcodes()
    assert opcodes.count(0xF2) == 1 and opcodes.index(0xF2) < opcodes.index(0xF6) < opcodes.index(0xF1)
    own = next(e["data"]["password"] for e in new_events if e["event"] == PASSWORD_EVENT)
    assert own != password
    # read back from the drive after a power cycle: no password left
    assert _sidecar_password(loop) is None
    assert not ata_identify(EmulatedAtaDrive(loop.backing, model=HDD)).security.enabled
    signer = station_signer(state_dir)
    assert signer is not None
    certificate = certify(registry, job, signer, CertificateSettings(organisation="Test Constabulary"))
    assert certificate is not None
    report = verify_file(certificate, bundle)
    assert report.valid, report.reason
    assert report.record is not None and report.record.level == "Purge" and report.record.job_id == job.id
    registry.close()


def test_drive_locked_by_someone_else_is_refused_and_says_our_passwords_were_tried(
    loop_factory: Callable[..., LoopDevice], state_dir: Path
) -> None:
    loop = loop_factory(SIZE)
    old, password = _cut_short(state_dir, loop)
    # meanwhile its owner took it back: our password off, theirs on, power cycle → SEC4 with theirs
    owner = EmulatedAtaDrive(loop.backing, model=HDD)
    _send(owner, 0xF2, password.encode())
    _send(owner, 0xF6, password.encode())
    _send(owner, 0xF1, b"owner-secret")
    before = _digest(loop.backing)
    drive = CountingTransport(EmulatedAtaDrive(loop.backing, model=HDD))
    runner, registry = make_runner(state_dir, "sata", "hdd", drive)
    job = purge(runner, loop.path)
    assert job.state == "refused" and job.error_code == "blocked_security_locked"
    reason = job.reason or ""
    assert "were tried and refused" in reason and old.id in reason and "password this station did not set" in reason
    assert job.route == "destroy"  # today's policy for a stranger's lock; nothing of ours is on it
    assert drive.opcodes().count(0xF2) == 1 and _changes(drive) == []
    assert _digest(loop.backing) == before
    assert "password-cleanup" not in _events(registry, old.id)
    assert "ata-passwords-rejected" in _events(registry, job.id)
    # read back: still locked with the owner's password, the attempt counter not expired — the owner can unlock
    security = ata_identify(drive.inner).security
    assert security.locked and not security.count_expired
    _send(drive.inner, 0xF2, b"owner-secret")
    assert not ata_identify(drive.inner).security.locked
    registry.close()


def test_a_stranger_lock_with_nothing_journalled_says_so(loop_factory: Callable[..., LoopDevice],
                                                         state_dir: Path) -> None:
    loop = loop_factory(SIZE)
    drive = CountingTransport(EmulatedAtaDrive(loop.backing, model=HDD, faults=Faults(locked_with_password=b"x")))
    runner, registry = make_runner(state_dir, "sata", "hdd", drive)
    job = purge(runner, loop.path)
    assert job.state == "refused" and job.route == "destroy"
    assert "no temporary password of this station is journalled for this drive" in (job.reason or "")
    assert "none was tried" in (job.reason or "")
    assert not set(drive.opcodes()) & SECURITY_OPCODES  # no password guessed
    registry.close()


def test_serial_less_drives_never_get_each_others_password(loop_factory: Callable[..., LoopDevice],
                                                            state_dir: Path) -> None:
    first, second = loop_factory(SIZE), loop_factory(SIZE)
    old, password = _cut_short(state_dir, first, serial="unknown")
    # a second drive of the same model without a serial, locked by someone else
    other = CountingTransport(EmulatedAtaDrive(second.backing, model=HDD, faults=Faults(locked_with_password=b"x")))
    runner, registry = make_runner(state_dir, "sata", "hdd", other, serial="unknown")
    job = purge(runner, second.path)
    assert job.state == "refused" and "no model or serial number" in (job.reason or "")
    assert not set(other.opcodes()) & SECURITY_OPCODES
    assert registry.open_events("Emulated Firmware Drive", "unknown", PASSWORD_EVENT, "password-cleanup") == []
    # not even the drive that really carries it: without a serial nothing says it is the same drive
    revived = CountingTransport(EmulatedAtaDrive(first.backing, model=HDD))
    runner, registry = make_runner(state_dir, "sata", "hdd", revived, serial="unknown")
    job = purge(runner, first.path)
    assert job.state == "refused" and not set(revived.opcodes()) & SECURITY_OPCODES
    assert runner.release_security_password(old.id) is None  # the per-job path declines as well
    assert _sidecar_password(first) == password.encode().ljust(32, b"\0").hex()
    assert "password-cleanup" not in _events(registry, old.id)
    registry.close()


def test_cleanup_that_fails_stops_the_job_before_anything_else(loop_factory: Callable[..., LoopDevice],
                                                               state_dir: Path) -> None:
    loop = loop_factory(SIZE)
    old, password = _cut_short(state_dir, loop)
    before = _digest(loop.backing)
    # the drive accepts the password but aborts SECURITY DISABLE PASSWORD
    drive = CountingTransport(EmulatedAtaDrive(loop.backing, model=HDD, faults=Faults(abort_on=frozenset({0xF6}))))
    runner, registry = make_runner(state_dir, "sata", "hdd", drive)
    job = purge(runner, loop.path)
    assert job.state == "failed" and job.error_code == "password_cleanup_failed" and job.route == "hold"
    reason = job.reason or ""
    assert old.id in reason and "nothing was erased" in reason and PASSWORD_EVENT in reason
    assert drive.opcodes().count(0xF2) == 1 and drive.opcodes().count(0xF6) == 1
    assert _changes(drive) == []
    assert "method-start" not in _events(registry, job.id)
    assert _digest(loop.backing) == before
    failed = [e["data"] for e in registry.events(old.id) if e["event"] == "password-cleanup-failed"]
    assert failed and failed[-1]["by_job"] == job.id
    # read back: unlocked for this power cycle (SEC5), password still set
    security = ata_identify(drive.inner).security
    assert security.enabled and not security.locked
    assert _sidecar_password(loop) == password.encode().ljust(32, b"\0").hex()
    # re-plugged without the fault: the next job removes it and sanitises
    runner, registry = make_runner(state_dir, "sata", "hdd", EmulatedAtaDrive(loop.backing, model=HDD))
    job = purge(runner, loop.path)
    assert job.state == "sanitised", job.reason
    assert _sidecar_password(loop) is None
    registry.close()


def test_newest_journalled_password_first_then_older_ones(loop_factory: Callable[..., LoopDevice],
                                                          state_dir: Path) -> None:
    loop = loop_factory(SIZE)
    old, _password = _cut_short(state_dir, loop)
    registry = Registry(state_dir).open()
    # a later job of the same drive journalled a password that never reached it (station died before SET)
    newer = registry.create_job(registry.job(old.id).drive, "nist-purge", "tester", "test")
    registry.journal(newer, PASSWORD_EVENT, {"password": "0" * 32, "identifier": "user"})
    registry.transition(newer, "interrupted", "owner-gone")
    registry.close()
    drive = CountingTransport(EmulatedAtaDrive(loop.backing, model=HDD))
    runner, registry = make_runner(state_dir, "sata", "hdd", drive)
    job = purge(runner, loop.path)
    assert job.state == "sanitised", job.reason
    released = next(e["data"] for e in registry.events(job.id) if e["event"] == "ata-password-released")
    assert released["job"] == old.id and [item["job"] for item in released["rejected_before"]] == [newer]
    assert drive.opcodes().count(0xF2) == 2  # the newest (wrong) one, then the right one
    # both are answered now: the next job tries nothing
    assert registry.open_events("Emulated Firmware Drive", "EMU-0001", PASSWORD_EVENT, "password-cleanup") == []
    assert registry.events(newer)[-1]["data"] == {"result": "security already disabled", "by_job": job.id}
    registry.close()


def test_password_journalled_but_drive_not_locked_is_closed_without_a_command(
    loop_factory: Callable[..., LoopDevice], state_dir: Path
) -> None:
    loop = loop_factory(SIZE)
    drive = CountingTransport(EmulatedAtaDrive(loop.backing, model=HDD))
    runner, registry = make_runner(state_dir, "sata", "hdd", drive)
    first = purge(runner, loop.path, "nist-clear-overwrite")
    assert first.state == "sanitised"
    stale = registry.create_job(first.drive, "nist-purge", "tester", "test")
    registry.journal(stale, PASSWORD_EVENT, {"password": "f" * 32, "identifier": "user"})
    registry.transition(stale, "failed", "internal-error")
    drive.sent.clear()
    job = purge(runner, loop.path)
    assert job.state == "sanitised", job.reason
    assert 0xF2 not in drive.opcodes() and 0xF6 not in drive.opcodes()  # nothing tried: the drive had no password
    assert "ata-password-not-set" in _events(registry, job.id)
    assert registry.events(stale)[-1]["event"] == "password-cleanup"
    registry.close()


def test_our_password_on_a_frozen_drive_is_held_not_destroyed(loop_factory: Callable[..., LoopDevice],
                                                              state_dir: Path) -> None:
    loop = loop_factory(SIZE)
    old, password = _cut_short(state_dir, loop)
    # someone unlocked it and a BIOS froze it: SEC6 — DISABLE PASSWORD is aborted until a power cycle
    drive = EmulatedAtaDrive(loop.backing, model=HDD)
    _send(drive, 0xF2, password.encode())
    _send(drive, 0xF5)
    with pytest.raises(CommandFailed):
        _send(drive, 0xF6, password.encode())
    counting = CountingTransport(drive)
    runner, registry = make_runner(state_dir, "sata", "hdd", counting)
    job = purge(runner, loop.path)
    assert job.state == "refused" and job.error_code == "blocked_security_frozen" and job.route == "hold"
    assert old.id in (job.reason or "") and "re-plug" in (job.reason or "")
    assert not set(counting.opcodes()) & SECURITY_OPCODES
    assert _sidecar_password(loop) == password.encode().ljust(32, b"\0").hex()
    registry.close()


def test_station_crash_between_set_password_and_cleanup(loop_factory: Callable[..., LoopDevice],
                                                        state_dir: Path) -> None:
    loop = loop_factory(SIZE)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.methods.security_erase_crash_child", loop.path,
         str(loop.backing), str(state_dir)],
        cwd=Path(__file__).resolve().parents[3], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not (state_path_for(loop.backing).exists() and _sidecar_password(loop) is not None):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)  # the station dies with the password set, before any cleanup
    finally:
        child.communicate(timeout=30)
    registry = Registry(state_dir).open()
    old = registry.jobs()[0]
    assert old.state == "running" and registry.orphaned_jobs() == [old.id]
    assert "password-cleanup" not in _events(registry, old.id)
    registry.close()
    # power returns: the drive comes up locked; the next job on it (no resume ran) removes the password
    drive = CountingTransport(EmulatedAtaDrive(loop.backing, model=HDD))
    assert ata_identify(drive.inner).security.locked
    runner, registry = make_runner(state_dir, "sata", "hdd", drive)
    job = purge(runner, loop.path)
    assert job.state == "sanitised", job.reason
    assert registry.events(old.id)[-1]["data"] == {"result": "temporary password removed", "by_job": job.id}
    assert _sidecar_password(loop) is None
    # the orphan is still the reconciler's to close; its resume finds nothing left to remove
    assert runner.release_security_password(old.id) is None
    assert registry.reconcile() == [old.id]
    registry.close()
