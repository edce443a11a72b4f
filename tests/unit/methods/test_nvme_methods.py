"""NVMe Sanitize and Format NVM through the emulated controller: levels, blocking states, failures, resume."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from agent.errors import CommandError, DriveRemoved, NotSupported, VerificationFailed
from agent.methods.base import Blocked, Level, Target
from agent.methods.canary import CanarySet
from agent.methods.capabilities import parse_namespace_list
from agent.methods.expectations import DeallocatedZero, ErasedState, Indeterminate
from agent.methods.firmware import SanitizeFailed
from agent.verify.expectation import Pattern
from wipe_agent_testing.emulated import DriveModel, EmulatedNvmeDrive, Faults

from .methods_kit import CountingTransport, FileDevice, Recorder, build, context, expectation_holds, run, target

SIZE = 4 << 20


def _drive(path: Path, **kwargs: object) -> EmulatedNvmeDrive:
    return EmulatedNvmeDrive(path, **kwargs)  # type: ignore[arg-type]


def test_block_erase_is_purge_and_proves_canaries(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path)
    recorder = Recorder()
    tgt = target(drive, data_path)
    applicability = build("nvme.sanitize.block").check(tgt)
    assert applicability.level is Level.PURGE and "Purge" in applicability.reason
    outcome = run("nvme.sanitize.block", tgt, device, recorder)
    assert outcome.level is Level.PURGE
    assert isinstance(outcome.expectation, ErasedState)
    # journal order: canaries committed before the command, the command before it was sent
    names = recorder.names()
    assert names.index("canaries-planted") < names.index("firmware-command") < names.index("firmware-started")
    assert len(recorder.data("canaries-planted")["offsets"]) == 64
    details = outcome.details
    assert details["canaries"]["passed"] and details["canaries"]["checked"] == 64
    assert details["command"]["ndas"] is True and details["command"]["cdw10"] & 0x7 == 0b010
    assert details["deallocation"]["deallocated"] is False and details["deallocation"]["ndi"] is False
    assert details["polls"] >= 2  # SANITIZE STATUS log polled until done
    assert any(phase == "sanitize" and 0 < done < total for phase, done, total in recorder.progress)
    assert expectation_holds(outcome, data_path)


def test_crypto_erase_is_recorded_as_clear_with_the_reason(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path)
    tgt = target(drive, data_path)
    applicability = build("nvme.sanitize.crypto").check(tgt)
    assert applicability.level is Level.CLEAR
    assert "validated" in applicability.reason and "first use" in applicability.reason
    outcome = run("nvme.sanitize.crypto", tgt, device, Recorder())
    assert isinstance(outcome.expectation, Indeterminate)
    described = outcome.expectation.describe()
    assert "canary" in described["proof"] and "cannot show" in described["caution"]
    assert expectation_holds(outcome, data_path)


def test_overwrite_leaves_the_pattern(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path)
    outcome = run("nvme.sanitize.overwrite", target(drive, data_path), device, Recorder())
    assert outcome.level is Level.PURGE
    assert outcome.expectation.inner == Pattern(bytes.fromhex("a5a5a5a5"))  # type: ignore[union-attr]
    assert data_path.read_bytes()[:8] == bytes.fromhex("a5a5a5a5a5a5a5a5")


def test_no_deallocate_inhibited_records_deallocation_and_never_zero_alone(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path, model=DriveModel(nvme_no_deallocate_inhibited=True))
    outcome = run("nvme.sanitize.block", target(drive, data_path), device, Recorder())
    assert outcome.details["command"]["ndas"] is False  # NDI: asking for no-deallocate would be ignored
    assert outcome.details["deallocation"]["deallocated"] is True
    assert "not proof" in outcome.details["deallocation"]["note"]
    assert isinstance(outcome.expectation, DeallocatedZero)
    assert "not proof" in outcome.expectation.describe()["caution"]
    assert outcome.details["canaries"]["passed"]


def test_a_drive_that_lies_about_success_fails_on_the_canaries(data_path: Path, device: FileDevice) -> None:
    before = data_path.read_bytes()
    drive = _drive(data_path, faults=Faults(lies_about_success=True))
    recorder = Recorder()
    with pytest.raises(VerificationFailed, match=r"canary blocks .* still on the medium"):
        run("nvme.sanitize.block", target(drive, data_path), device, recorder)
    assert recorder.data("canaries-checked")["survivors"]
    assert data_path.read_bytes() != before  # only the canaries changed it


def test_failed_sanitize_state_blocks_with_destroy_route(data_path: Path) -> None:
    drive = _drive(data_path, faults=Faults(sanitize_fails="restricted"))
    tgt = target(drive, data_path)
    for name in ("nvme.sanitize.block", "nvme.format.user_erase"):
        with pytest.raises(Blocked) as caught:
            build(name).check(tgt)
        assert caught.value.state == "sanitize-failed" and caught.value.route == "destroy"
        assert "destruction" in caught.value.message


def test_restricted_failure_stays_failed_and_sends_no_exit(data_path: Path, device: FileDevice) -> None:
    _drive(data_path)  # state file: idle
    inner = _drive(data_path, faults=Faults(sanitize_fails="restricted"))  # this instance's sanitizes fail
    drive = CountingTransport(inner)
    with pytest.raises(SanitizeFailed) as caught:
        run("nvme.sanitize.block", target(drive, data_path), device, Recorder())
    assert caught.value.route == "destroy"
    commands = [c for c in drive.sent if getattr(c, "opcode", None) == 0x84]
    assert len(commands) == 1  # the sanitize; no Exit Failure Mode
    assert inner.sanitize_status_log()[2] & 0x7 == 0b011


def test_unrestricted_failure_exits_failure_mode(data_path: Path, device: FileDevice) -> None:
    _drive(data_path)
    inner = _drive(data_path, faults=Faults(sanitize_fails="unrestricted"))
    drive = CountingTransport(inner)
    recorder = Recorder()
    with pytest.raises(SanitizeFailed) as caught:
        run("nvme.sanitize.block", target(drive, data_path), device, recorder, failure_mode="unrestricted")
    assert caught.value.route == "hold" and "NOT sanitised" in caught.value.message
    sanitize = [c.cdw10 & 0xF for c in drive.sent if getattr(c, "opcode", None) == 0x84]
    assert sanitize == [0b1010, 0b0001]  # block erase with AUSE, then Exit Failure Mode
    assert "exit-failure-mode" in recorder.names()


def test_sanitize_in_progress_blocks_and_says_wait(data_path: Path) -> None:
    from agent.transport.commands import NvmeAdminCommand
    from wipe_agent_testing.emulated import ManualClock

    drive = _drive(data_path, clock=ManualClock())
    drive.execute(NvmeAdminCommand(0x84, cdw10=0b010))  # someone else's sanitize, still running
    with pytest.raises(Blocked) as caught:
        build("nvme.sanitize.block").check(target(drive, data_path))
    assert caught.value.state == "sanitize-in-progress" and "wait" in caught.value.instruction


def test_passthrough_blocked_tells_the_operator_to_move_the_drive(data_path: Path) -> None:
    drive = _drive(data_path, faults=Faults(passthrough_blocked=True))
    tgt = target(drive, data_path)
    with pytest.raises(Blocked) as caught:
        build("nvme.sanitize.block").check(tgt)
    assert caught.value.state == "passthrough-blocked" and "direct-attach bay" in caught.value.message


def test_an_aborted_sanitize_fails_the_method(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path, faults=Faults(abort_on=frozenset({0x84})))
    with pytest.raises(CommandError, match="Command Abort Requested"):
        run("nvme.sanitize.block", target(drive, data_path), device, Recorder())


def test_power_loss_mid_sanitize_then_resume_polls_to_completion(data_path: Path, device: FileDevice) -> None:
    slow = DriveModel(operation_seconds=20)  # long enough to still run after the power cycle
    drive = _drive(data_path, model=slow, faults=Faults(power_loss_after_polls=1))
    recorder = Recorder()
    with pytest.raises(DriveRemoved):
        run("nvme.sanitize.block", target(drive, data_path), device, recorder)
    canaries = CanarySet.from_json(recorder.data("canaries-planted"))
    # power returns: a new instance is a power cycle; the sanitize carries on from the persisted state
    revived = CountingTransport(_drive(data_path, model=slow))
    tgt = target(revived, data_path)
    assert tgt.capabilities.sanitize.state == "in_progress"
    method = build("nvme.sanitize.block")
    resumed = Recorder()
    outcome = method.resume(context(tgt, device, resumed), canaries)  # type: ignore[attr-defined]
    assert outcome.details["resumed_after_restart"] and outcome.details["canaries"]["passed"]
    assert 0x84 not in [getattr(c, "opcode", None) for c in revived.sent]  # never a second sanitize
    assert expectation_holds(outcome, data_path)


def test_format_user_erase_is_purge_and_crypto_format_is_clear(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path)
    tgt = target(drive, data_path)
    assert build("nvme.format.crypto").check(tgt).level is Level.CLEAR
    assert "of every namespace (FNA bit 1): Purge" in build("nvme.format.user_erase").check(tgt).reason
    outcome = run("nvme.format.user_erase", tgt, device, Recorder())
    assert outcome.level is Level.PURGE and outcome.details["command"]["ses"] == 1
    assert outcome.details["canaries"]["passed"] and expectation_holds(outcome, data_path)
    crypto = run("nvme.format.crypto", target(drive, data_path), device, Recorder())
    assert isinstance(crypto.expectation, Indeterminate) and crypto.details["canaries"]["passed"]


def test_format_refuses_when_secure_erase_does_not_cover_every_namespace(data_path: Path) -> None:
    drive = _drive(data_path, model=DriveModel(nvme_secure_erase_all_namespaces=False))
    tgt = target(drive, data_path)
    capabilities = tgt.capabilities
    controller = dataclasses.replace(capabilities.nvme, namespace_count=2)
    two = Target(tgt.identity, dataclasses.replace(capabilities, nvme=controller, nvme_namespaces=None), drive)
    with pytest.raises(NotSupported, match=r"2 namespaces .* per namespace"):
        build("nvme.format.user_erase").check(two)
    listed = Target(tgt.identity, dataclasses.replace(capabilities, nvme_namespaces=(1, 7)), drive)
    with pytest.raises(NotSupported, match=r"2 namespaces .* per namespace"):
        build("nvme.format.user_erase").check(listed)
    single = build("nvme.format.user_erase").check(tgt)
    assert single.level is Level.PURGE  # one namespace: covered
    assert "user data erase (SES=001b) of the only namespace: Purge" in single.reason  # the declared rule, scoped


def test_nn_is_the_highest_nsid_not_a_count(data_path: Path) -> None:
    # QEMU 7.2 reports NN=256 with a single namespace: the namespace list decides, not NN
    drive = _drive(data_path, model=DriveModel(nvme_secure_erase_all_namespaces=False))
    tgt = target(drive, data_path)
    capabilities = dataclasses.replace(tgt.capabilities, nvme=dataclasses.replace(tgt.capabilities.nvme,
                                                                                  namespace_count=256),
                                       nvme_namespaces=(1,))
    assert build("nvme.format.user_erase").check(Target(tgt.identity, capabilities, drive)).level is Level.PURGE


def test_namespace_list_parsing() -> None:
    data = (1).to_bytes(4, "little") + (5).to_bytes(4, "little") + bytes(4) + (9).to_bytes(4, "little")
    assert parse_namespace_list(data.ljust(4096, b"\0")) == (1, 5)
    assert parse_namespace_list(bytes(4096)) == ()


def test_format_lying_is_caught(data_path: Path, device: FileDevice) -> None:
    drive = _drive(data_path, faults=Faults(lies_about_success=True))
    with pytest.raises(VerificationFailed):
        run("nvme.format.user_erase", target(drive, data_path), device, Recorder())


def test_no_sanitize_support_is_not_supported(data_path: Path) -> None:
    drive = _drive(data_path, model=DriveModel(sanitize_crypto=False, sanitize_block=False, sanitize_overwrite=False))
    with pytest.raises(NotSupported, match="SANICAP = 0"):
        build("nvme.sanitize.block").check(target(drive, data_path))


class _UnexpectedDeallocation(CountingTransport):
    """Reports SSTAT 100b once the sanitize is done: deallocated although no-deallocate was requested."""

    def execute(self, command):  # type: ignore[no-untyped-def]
        completion = super().execute(command)
        if getattr(command, "opcode", None) == 0x02 and completion.data[2] & 0x7 == 0b001:
            data = bytearray(completion.data)
            data[2] = (data[2] & ~0x7) | 0b100
            return dataclasses.replace(completion, data=bytes(data))
        return completion


def test_unexpected_deallocation_is_recorded_and_zero_is_not_proof(data_path: Path, device: FileDevice) -> None:
    drive = _UnexpectedDeallocation(_drive(data_path))
    outcome = run("nvme.sanitize.block", target(drive, data_path), device, Recorder())
    facts = outcome.details["deallocation"]
    assert facts["ndas_requested"] and facts["unexpected_deallocation"] and facts["deallocated"]
    assert isinstance(outcome.expectation, DeallocatedZero)
    assert outcome.details["canaries"]["passed"]
