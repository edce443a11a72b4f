"""Jobs over real loop devices whose firmware is emulated: real guard, O_EXCL, canaries and read-back.

The emulated drive keeps its user data in the loop device's backing file, so block I/O goes through
the kernel (loop, O_DIRECT) while firmware commands go to the emulator through the runner's
transport factory.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from agent.discovery import udev
from agent.discovery.guard import Authorisation, Guard
from agent.discovery.identity import DriveIdentity
from agent.jobs.runner import JobRequest, JobRunner
from agent.policy.profiles import load_profile
from agent.store.registry import JobRow, Registry
from agent.transport.commands import Transport


def identify_as(transport: str, media: str, serial: str = "EMU-0001") -> Callable[[str], DriveIdentity]:
    """udev identity of the loop device, presented as the drive the emulator plays."""

    def identify(path: str) -> DriveIdentity:
        base = udev.identify(path)
        return dataclasses.replace(base, transport=transport, media=media, rotational=media == "hdd",
                                   model="Emulated Firmware Drive", serial=serial)

    return identify


def make_runner(state_dir: Path, transport: str, media: str, drive: Transport | None,
                serial: str = "EMU-0001") -> tuple[JobRunner, Registry]:
    registry = Registry(state_dir).open()
    # loop_windows: an emulated drive's loop may play a kernel capacity below its native one (hidden areas)
    runner = JobRunner(registry, Guard(loop_windows=True), identify_as(transport, media, serial),
                       transports=lambda _identity: drive, sleep=lambda _seconds: None)
    return runner, registry


def purge(runner: JobRunner, device_path: str, profile: str = "nist-purge") -> JobRow:
    request = JobRequest(device_path, load_profile(profile), Authorisation(device_path, "tester"))
    return runner.run(request)
