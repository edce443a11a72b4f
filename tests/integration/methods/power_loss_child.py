"""Child process for the power-loss test: starts a purge whose sanitize never finishes, until killed.

Usage: python -m tests.integration.methods.power_loss_child DEVICE BACKING STATE_DIR
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from agent.discovery.guard import Guard
from agent.jobs.runner import JobRunner
from agent.store.registry import Registry
from tests.integration.methods.purge_kit import identify_as, purge
from wipe_agent_testing.emulated import EmulatedNvmeDrive, ManualClock


def main() -> None:
    device, backing, state_dir = sys.argv[1:4]
    drive = EmulatedNvmeDrive(backing, clock=ManualClock())  # time stands still: the sanitize stays in progress
    registry = Registry(Path(state_dir)).open()
    runner = JobRunner(registry, Guard(), identify_as("nvme", "ssd"), transports=lambda _identity: drive,
                       sleep=lambda _seconds: time.sleep(0.01))
    purge(runner, device)


if __name__ == "__main__":
    main()
