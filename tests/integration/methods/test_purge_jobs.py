"""nist-purge end to end on loop devices with emulated firmware: choice and reasons, proof, refusals, resume."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.store.registry import Registry
from tests.conftest import LoopDevice
from tests.integration.methods.purge_kit import make_runner, purge
from tests.unit.methods.methods_kit import CountingTransport
from wipe_agent_testing.emulated import DriveModel, EmulatedAtaDrive, EmulatedNvmeDrive, EmulatedScsiDrive, Faults

pytestmark = pytest.mark.root
SIZE = 64 << 20


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_nvme_purge_takes_block_erase_and_records_why(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    loop = loop_factory(SIZE)
    drive = EmulatedNvmeDrive(loop.backing)
    runner, registry = make_runner(state_dir, "nvme", "ssd", drive)
    job = purge(runner, loop.path)
    assert job.state == "sanitised", (job.reason, job.method_details)
    assert job.method == "nvme.sanitize.block" and job.level == "purge" and job.route == "reuse"
    decisions = {d["method"]: d for d in job.decisions}
    crypto = decisions["nvme.sanitize.crypto"]
    assert not crypto["taken"] and "clear" in crypto["reason"] and "validated" in crypto["reason"]
    assert decisions["nvme.sanitize.block"]["taken"]
    details = job.method_details
    assert details is not None and details["canaries"]["passed"] and details["canaries"]["checked"] == 64
    assert details["deallocation"]["ndas_requested"] is True
    verification = job.verification
    assert verification is not None and verification["passed"] and verification["mode"] == "sampling"
    assert verification["expectation"]["kind"] == "erased" and verification["coverage"] >= 0.10
    events = [event["event"] for event in registry.events(job.id)]
    assert events.index("method-start") < events.index("canaries-planted") < events.index("firmware-command")
    assert loop.read() == bytes(SIZE)  # independent read-back through the kernel
    registry.close()


def test_lying_drive_fails_and_goes_to_destruction(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    loop = loop_factory(SIZE)
    runner, registry = make_runner(state_dir, "nvme", "ssd",
                                   EmulatedNvmeDrive(loop.backing, faults=Faults(lies_about_success=True)))
    job = purge(runner, loop.path)
    assert job.state == "failed" and job.route == "destroy" and "canary" in (job.reason or "")
    registry.close()


@pytest.mark.parametrize(
    ("faults", "error_code", "route", "words"),
    [
        (Faults(frozen=True), "blocked_sanitize_frozen", "hold", "re-plug"),
        (Faults(locked_with_password=b"owner"), "blocked_security_locked", "destroy", "destruction"),
        (Faults(sanitize_fails="restricted"), "blocked_sanitize_failed", "destroy", "FAILED"),
        (Faults(passthrough_blocked=True), "blocked_passthrough_blocked", "hold", "direct-attach bay"),
    ],
)
def test_blocking_states_are_refused_untouched(loop_factory: Callable[..., LoopDevice], state_dir: Path,
                                               faults: Faults, error_code: str, route: str,
                                               words: str) -> None:
    loop = loop_factory(SIZE)
    before = _digest(loop.backing)
    transport = "usb" if faults.passthrough_blocked else "sata"
    runner, registry = make_runner(state_dir, transport, "ssd", EmulatedAtaDrive(loop.backing, faults=faults))
    job = purge(runner, loop.path)
    assert job.state == "refused" and job.error_code == error_code, (job.error_code, job.reason)
    assert words in (job.reason or "") and job.route == route
    if faults.passthrough_blocked:
        assert (job.reason or "").startswith("no purge method available for this drive: a USB bridge refused")
    assert job.decisions and all(not d["taken"] for d in job.decisions)
    assert _digest(loop.backing) == before  # no attempt: not a byte written
    registry.close()


def test_sanitize_in_progress_is_refused_with_wait(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    from agent.transport.commands import ScsiCommand
    from wipe_agent_testing.emulated import ManualClock

    loop = loop_factory(SIZE)
    drive = EmulatedScsiDrive(loop.backing, clock=ManualClock())
    drive.execute(ScsiCommand(bytes([0x48, 0x82, 0, 0, 0, 0, 0, 0, 0, 0])))
    runner, registry = make_runner(state_dir, "scsi", "ssd", drive)
    job = purge(runner, loop.path)
    assert job.state == "refused" and job.error_code == "blocked_sanitize_in_progress"
    assert "wait" in (job.reason or "") and "do not start another" in (job.reason or "")
    registry.close()


def test_ata_hdd_purge_and_scsi_ssd_purge(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    hdd = loop_factory(SIZE)
    model = DriveModel(rotation_rpm=7200, sanitize_block=False, sanitize_overwrite=False)
    runner, registry = make_runner(state_dir, "sata", "hdd", EmulatedAtaDrive(hdd.backing, model=model))
    job = purge(runner, hdd.path)
    assert job.state == "sanitised" and job.method == "ata.security_erase.enhanced" and job.level == "purge"
    assert job.method_details is not None and job.method_details["hidden_areas"]["max_lba_after"] == SIZE // 512 - 1
    ssd = loop_factory(SIZE)
    runner, registry = make_runner(state_dir, "scsi", "ssd", EmulatedScsiDrive(ssd.backing))
    job = purge(runner, ssd.path)
    assert job.state == "sanitised" and job.method == "scsi.sanitize.block"
    registry.close()


def test_crypto_only_drive_is_refused_with_the_reason(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    loop = loop_factory(SIZE)
    model = DriveModel(sanitize_block=False, sanitize_overwrite=False, security_supported=False)
    runner, registry = make_runner(state_dir, "sata", "ssd", EmulatedAtaDrive(loop.backing, model=model))
    job = purge(runner, loop.path)
    assert job.state == "refused" and "no purge method available" in (job.reason or "")
    assert "recorded as Clear" in (job.reason or "")
    registry.close()


def test_power_loss_then_a_new_process_resumes_without_restarting(
    loop_factory: Callable[..., LoopDevice], state_dir: Path
) -> None:
    loop = loop_factory(SIZE)
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.methods.power_loss_child", loop.path, str(loop.backing),
         str(state_dir)],
        cwd=Path(__file__).resolve().parents[3], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    registry = Registry(state_dir).open()
    try:
        deadline = time.monotonic() + 30
        while True:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline
            jobs = registry.jobs() if registry.path.exists() else []
            if jobs and "firmware-started" in [e["event"] for e in registry.events(jobs[0].id)]:
                break
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)  # the station loses power mid-sanitize
    finally:
        child.communicate(timeout=30)
    job_id = registry.jobs()[0].id
    assert registry.job(job_id).state == "running"
    assert registry.orphaned_jobs() == [job_id]
    # power returns: a new drive instance (power cycle) and a new process (this one) resume the job
    drive = CountingTransport(EmulatedNvmeDrive(loop.backing))
    runner, registry = make_runner(state_dir, "nvme", "ssd", drive)
    job = runner.resume(job_id)
    assert job is not None and job.state == "sanitised", (job and job.reason)
    assert 0x84 not in [getattr(command, "opcode", None) for command in drive.sent]  # never a second sanitize
    events = [event["event"] for event in registry.events(job_id)]
    assert events.count("firmware-command") == 1 and "resumed" in events and "firmware-resumed" in events
    assert job.method_details is not None and job.method_details["canaries"]["passed"]
    assert registry.orphaned_jobs() == []
    registry.close()


def test_resume_declines_when_nothing_is_in_progress(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    loop = loop_factory(SIZE)
    runner, registry = make_runner(state_dir, "nvme", "ssd", EmulatedNvmeDrive(loop.backing))
    job = purge(runner, loop.path, "nist-clear-overwrite")
    assert job.state == "sanitised"
    assert runner.resume(job.id) is None  # finished jobs and overwrite jobs are never adopted
    registry.close()


def test_no_transport_means_no_firmware_purge(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    loop = loop_factory(SIZE)
    runner, registry = make_runner(state_dir, "nvme", "ssd", None)
    job = purge(runner, loop.path)
    assert job.state == "refused" and "no pass-through transport" in (job.reason or "")
    os.sync()
    registry.close()


def test_security_erase_cut_short_leaves_no_unknown_password(loop_factory: Callable[..., LoopDevice],
                                                              state_dir: Path) -> None:
    from agent.methods.capabilities import ata_identify

    loop = loop_factory(SIZE)
    model = DriveModel(rotation_rpm=7200, sanitize_block=False, sanitize_overwrite=False)
    drive = EmulatedAtaDrive(loop.backing, model=model, faults=Faults(power_loss_after_polls=0))
    runner, registry = make_runner(state_dir, "sata", "hdd", drive)
    job = purge(runner, loop.path)
    assert job.state == "failed" and job.error_code == "drive_removed"
    assert "ata-temporary-password" in (job.reason or "")
    revived = EmulatedAtaDrive(loop.backing, model=model)
    assert ata_identify(revived).security.locked  # came back locked with the station's password
    runner, registry = make_runner(state_dir, "sata", "hdd", revived)
    assert runner.resume(job.id) is None  # a finished job is not resumed ...
    released = runner.release_security_password(job.id)  # ... but its password is removed
    assert released is not None and not ata_identify(revived).security.enabled
    assert "password-cleanup" in [event["event"] for event in registry.events(job.id)]
    registry.close()


def test_cancel_during_sanitize_is_deferred_not_abandoned(loop_factory: Callable[..., LoopDevice],
                                                          state_dir: Path) -> None:
    from agent.discovery.guard import Authorisation
    from agent.jobs.runner import JobRequest
    from agent.policy.profiles import load_profile

    loop = loop_factory(SIZE)
    drive = EmulatedNvmeDrive(loop.backing)
    runner, registry = make_runner(state_dir, "nvme", "ssd", drive)
    # the operator cancels once the sanitize is running (a cancel before it would stop the job untouched)
    latch: list[bool] = []

    def cancelled() -> bool:
        if drive.sanitize_in_progress:
            latch.append(True)
        return bool(latch)

    job = runner.run(JobRequest(loop.path, load_profile("nist-purge"), Authorisation(loop.path, "tester")),
                     cancelled=cancelled)
    events = [event["event"] for event in registry.events(job.id)]
    assert "cancel-deferred" in events and "canaries-checked" in events  # polled to the end, proved, then stopped
    assert job.state == "interrupted" and not drive.sanitize_in_progress
    registry.close()


def test_cancel_before_anything_is_written_leaves_the_drive_untouched(loop_factory: Callable[..., LoopDevice],
                                                                       state_dir: Path) -> None:
    from agent.discovery.guard import Authorisation
    from agent.jobs.runner import JobRequest
    from agent.policy.profiles import load_profile

    loop = loop_factory(SIZE)
    before = loop.backing.read_bytes()
    drive = EmulatedNvmeDrive(loop.backing)
    runner, registry = make_runner(state_dir, "nvme", "ssd", drive)
    job = runner.run(JobRequest(loop.path, load_profile("nist-purge"), Authorisation(loop.path, "tester")),
                     cancelled=lambda: True)
    assert job.state == "interrupted" and "before anything was written" in (job.reason or "")
    assert "running" not in [event["state"] for event in registry.events(job.id)]
    assert loop.backing.read_bytes() == before
    registry.close()
