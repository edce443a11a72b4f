"""Child process for the station-crash test: a purge whose SECURITY ERASE UNIT never returns, until killed.

The temporary password is set (SEC5, persisted in the emulator's sidecar); the erase then blocks, so
the parent can kill this process between SET PASSWORD and the journal's password-cleanup.

Usage: python -m tests.integration.methods.security_erase_crash_child DEVICE BACKING STATE_DIR
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from agent.discovery.guard import Guard
from agent.jobs.runner import JobRunner
from agent.store.registry import Registry
from agent.transport.commands import Command, Completion
from tests.integration.methods.purge_kit import identify_as, purge
from wipe_agent_testing.emulated import DriveModel, EmulatedAtaDrive

HDD = DriveModel(rotation_rpm=7200, sanitize_block=False, sanitize_overwrite=False)


class HangsAtEraseUnit:
    """The emulated drive, except that SECURITY ERASE UNIT (F4h) never completes."""

    def __init__(self, inner: EmulatedAtaDrive) -> None:
        self.inner = inner

    def execute(self, command: Command) -> Completion:
        if getattr(command, "command", None) == 0xF4:
            threading.Event().wait()
        return self.inner.execute(command)

    def close(self) -> None:
        self.inner.close()


def main() -> None:
    device, backing, state_dir = sys.argv[1:4]
    drive = HangsAtEraseUnit(EmulatedAtaDrive(backing, model=HDD))
    registry = Registry(Path(state_dir)).open()
    runner = JobRunner(registry, Guard(), identify_as("sata", "hdd"), transports=lambda _identity: drive,
                       sleep=lambda _seconds: None)
    purge(runner, device)


if __name__ == "__main__":
    main()
