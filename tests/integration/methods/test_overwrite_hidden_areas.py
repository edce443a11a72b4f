"""A host overwrite over an ATA drive with hidden areas: restored and written, or refused untouched.

Loop devices whose firmware is emulated (the emulated drive's user data is the loop device's backing
file; its block device is the loop device, sized by the emulator's model of sd's rescan). Every
outcome is checked by reading the backing file — the whole medium, hidden area included — never by
a return code alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.discovery import udev
from agent.discovery.guard import Guard
from agent.jobs.certify import CertificateSettings, build_record
from agent.jobs.runner import JobRunner
from agent.store.registry import Registry
from tests.conftest import LoopDevice
from tests.integration.methods.purge_kit import make_runner, purge
from wipe_agent_testing.emulated import DriveModel, EmulatedAtaDrive, Faults, set_loop_capacity

pytestmark = pytest.mark.root
SIZE = 32 << 20
SECTORS = SIZE // 512
HIDDEN = 4096  # sectors (2 MiB) hidden at the end of the medium
HDD = DriveModel(rotation_rpm=7200, hpa_supported=True, dco_supported=True)
PROFILE = "nist-clear-overwrite-full"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _drive(loop: LoopDevice, model: DriveModel = HDD, **faults: object) -> EmulatedAtaDrive:
    """The emulated drive over the loop's file; the loop device then shows what the kernel would."""
    drive = EmulatedAtaDrive(loop.backing, model=model, faults=Faults(**faults))  # type: ignore[arg-type]
    drive.rescan_kernel_capacity(loop.path)  # as at boot: the kernel sees the accessible capacity
    return drive


def _hidden_tail(loop: LoopDevice, sectors: int) -> bytes:
    with open(loop.backing, "rb") as handle:
        handle.seek(SIZE - sectors * 512)
        return handle.read()


@pytest.mark.parametrize(
    ("model", "faults", "actions"),
    [
        (HDD, {"hpa_sectors": HIDDEN}, ["HPA removed"]),
        (DriveModel(rotation_rpm=7200, amac_supported=True), {"hpa_sectors": HIDDEN}, ["AMAC"]),
        (HDD, {"hpa_sectors": HIDDEN // 2, "dco_sectors": HIDDEN // 2}, ["HPA removed", "DCO restored"]),
    ],
    ids=["hpa", "amac", "hpa+dco"],
)
def test_hidden_area_is_restored_and_the_whole_medium_overwritten(
    loop_factory: Callable[..., LoopDevice], state_dir: Path, model: DriveModel, faults: dict[str, int],
    actions: list[str],
) -> None:
    loop = loop_factory(SIZE)
    drive = _drive(loop, model, **faults)
    assert loop.size == SIZE and udev.identify(loop.path).size_bytes == SIZE - HIDDEN * 512  # the kernel's view
    assert _hidden_tail(loop, HIDDEN) != bytes(HIDDEN * 512)  # old data in the hidden area
    runner, registry = make_runner(state_dir, "sata", "hdd", drive)
    job = purge(runner, loop.path, PROFILE)
    assert job.state == "sanitised" and job.level == "clear" and job.route == "reuse", (job.reason, job.error_code)
    assert loop.backing.read_bytes() == bytes(SIZE)  # the whole medium, the formerly hidden LBAs included
    assert udev.identify(loop.path).size_bytes == SIZE and job.bytes_written == SIZE
    hidden = job.method_details["hidden_areas"] if job.method_details else {}
    assert hidden["checked"] and hidden["complete"]
    assert hidden["max_lba_before"] == SECTORS - HIDDEN - 1 and hidden["max_lba_after"] == SECTORS - 1
    assert [action.split(":")[0] for action in hidden["actions"]] == actions
    assert hidden["kernel_bytes_before"] == SIZE - HIDDEN * 512 and hidden["kernel_bytes_after"] == SIZE
    assert job.verification is not None and job.verification["passed"] and job.verification["mode"] == "full"
    assert job.verification["bytes_checked"] == SIZE  # read-back covered the restored area too
    events = [event["event"] for event in registry.events(job.id)]
    assert events.index("hidden-areas-detected") < events.index("kernel-capacity") < events.index("overwrite-start")
    record = build_record(job, "station-test", CertificateSettings(), datetime.now(UTC))
    area = record.evidence.hidden_area
    assert (area.max_lba_before, area.max_lba_after, area.native_max_lba) == (SECTORS - HIDDEN - 1, SECTORS - 1,
                                                                              SECTORS - 1)
    assert any(action.startswith(actions[0]) for action in area.actions)
    assert any(action.startswith("kernel capacity") for action in area.actions)
    registry.close()


@pytest.mark.parametrize(
    ("faults", "code", "words"),
    [
        ({"dco_sectors": HIDDEN, "dco_frozen": True}, "blocked_dco_frozen", "DEVICE CONFIGURATION FREEZE LOCK"),
        ({"hpa_sectors": HIDDEN, "max_address_frozen": True}, "blocked_hidden_area_locked", "SET MAX frozen"),
    ],
    ids=["dco-frozen", "set-max-frozen"],
)
def test_hidden_area_that_cannot_be_restored_is_refused_untouched(
    loop_factory: Callable[..., LoopDevice], state_dir: Path, faults: dict[str, object], code: str, words: str,
) -> None:
    loop = loop_factory(SIZE)
    before = _digest(loop.backing)
    runner, registry = make_runner(state_dir, "sata", "hdd", _drive(loop, **faults))
    job = purge(runner, loop.path, PROFILE)
    assert job.state == "refused" and job.error_code == code and job.route == "hold", (job.error_code, job.reason)
    reason = job.reason or ""
    assert words in reason and "nothing was written" in reason and "power-cycle" in reason
    refusal = [event for event in registry.events(job.id) if event["event"] == "refused"][-1]
    assert "hot-plug" in refusal["data"]["instruction"]
    assert "overwrite-start" not in [event["event"] for event in registry.events(job.id)]
    assert _digest(loop.backing) == before  # not a byte written, visible or hidden
    assert job.verification is None
    registry.close()


def test_kernel_keeping_the_old_size_is_refused_then_a_replug_lets_the_job_run(
    loop_factory: Callable[..., LoopDevice], state_dir: Path,
) -> None:
    loop = loop_factory(SIZE)
    before = _digest(loop.backing)
    stale = EmulatedAtaDrive(loop.backing, model=HDD, faults=Faults(hpa_sectors=HIDDEN, stale_kernel_capacity=True))
    set_loop_capacity(loop.path, loop.backing, SIZE - HIDDEN * 512)  # what the kernel read at probe time
    runner, registry = make_runner(state_dir, "sata", "hdd", stale)
    job = purge(runner, loop.path, PROFILE)
    assert job.state == "refused" and job.error_code == "blocked_kernel_capacity_stale" and job.route == "hold"
    assert "re-plug" in (job.reason or "") and f"{SIZE - HIDDEN * 512} bytes" in (job.reason or "")
    assert _digest(loop.backing) == before  # the restore changed the drive's configuration, not its data
    # the operator re-plugs: a fresh kernel view of the same drive (the restore was non-volatile)
    replugged = EmulatedAtaDrive(loop.backing, model=HDD)
    replugged.rescan_kernel_capacity(loop.path)
    runner, registry = make_runner(state_dir, "sata", "hdd", replugged)
    job = purge(runner, loop.path, PROFILE)
    assert job.state == "sanitised", (job.reason, job.error_code)
    assert loop.backing.read_bytes() == bytes(SIZE)
    hidden = job.method_details["hidden_areas"] if job.method_details else {}
    assert hidden["max_lba_before"] == hidden["max_lba_after"] == SECTORS - 1 and hidden["actions"] == []
    registry.close()


def test_no_hidden_area_overwrites_as_before(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    loop = loop_factory(SIZE)
    runner, registry = make_runner(state_dir, "sata", "hdd", _drive(loop))
    job = purge(runner, loop.path, PROFILE)
    assert job.state == "sanitised" and job.bytes_written == SIZE, (job.reason, job.error_code)
    assert loop.backing.read_bytes() == bytes(SIZE)
    hidden = job.method_details["hidden_areas"] if job.method_details else {}
    assert hidden["checked"] and not hidden["actions"] and hidden["kernel_rescan"] is None
    assert hidden["native_max_lba"] == hidden["dco_max_lba"] == hidden["max_lba_after"] == SECTORS - 1
    events = [event["event"] for event in registry.events(job.id)]
    assert "hidden-areas-detected" in events and "hidden-areas" not in events and "kernel-capacity" not in events
    record = build_record(job, "station-test", CertificateSettings(), datetime.now(UTC))
    assert record.evidence.hidden_area.actions == () and record.evidence.hidden_area.max_lba_after == SECTORS - 1
    registry.close()


def test_loop_device_is_overwritten_unchanged_and_recorded_as_unchecked(
    loop_factory: Callable[..., LoopDevice], state_dir: Path,
) -> None:
    loop = loop_factory(SIZE)
    registry = Registry(state_dir).open()
    runner = JobRunner(registry, Guard(), udev.identify)  # the real transport factory: none for a loop device
    job = purge(runner, loop.path, PROFILE)
    assert job.state == "sanitised" and job.bytes_written == SIZE, (job.reason, job.error_code)
    assert loop.read() == bytes(SIZE)
    hidden = job.method_details["hidden_areas"] if job.method_details else {}
    assert hidden["checked"] is False and "not checked" in hidden["reason"]
    assert "no command pass-through" in hidden["reason"]
    taken = next(decision for decision in job.decisions if decision["taken"])
    assert "hidden areas (HPA/DCO/AMAC) not checked" in taken["reason"]
    events = [event["event"] for event in registry.events(job.id)]
    assert not any(event.startswith(("hidden-areas", "kernel-capacity")) for event in events)
    record = build_record(job, "station-test", CertificateSettings(), datetime.now(UTC))
    area = record.evidence.hidden_area
    assert area.max_lba_before is None and area.actions and area.actions[0].startswith(
        "hidden areas (HPA/DCO/AMAC) not checked")
    registry.close()
