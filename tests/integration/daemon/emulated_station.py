"""The station daemon with emulated NVMe firmware on its loop drives (test entry point, root).

``python -m tests.integration.daemon.emulated_station CONFIG`` runs the real :class:`Station`, API
and kernel uevents, but identifies each loop device as the NVMe SSD that
``wipe_agent_testing.emulated.EmulatedNvmeDrive`` plays over the loop's backing file, and starts its
job workers with ``python -m tests.integration.daemon.emulated_station --worker``, whose
:class:`agent.app.Application` has the emulating identify and transports (seams: no module is
patched), so the runner sends firmware commands to the emulator. With ``WIPE_AGENT_TEST_FROZEN=1``
the emulator's clock stands still: a sanitize stays "in progress" until the process dies (a power
cut mid-sanitize).
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

from agent.discovery import udev
from agent.discovery.identity import DriveIdentity
from agent.transport.commands import Transport

SERIAL_PREFIX = "EMU-"
_real_identify = udev.identify


def identify(path: str, context: object = None) -> DriveIdentity:
    """A loop device presented as the emulated NVMe SSD (serial derived from the backing file)."""
    base = _real_identify(path)
    if not base.name.startswith("loop"):
        return base
    return dataclasses.replace(base, transport="nvme", media="ssd", rotational=False,
                               model="Emulated Firmware Drive", serial=SERIAL_PREFIX + base.serial[-12:])


def transports(identity: DriveIdentity) -> Transport | None:
    """The emulator over the loop device's backing file."""
    from wipe_agent_testing.emulated import EmulatedNvmeDrive, ManualClock

    backing = open(f"/sys/block/{identity.name}/loop/backing_file").read().strip()
    if os.environ.get("WIPE_AGENT_TEST_FROZEN") == "1":
        return EmulatedNvmeDrive(backing, clock=ManualClock())
    return EmulatedNvmeDrive(backing)


def _sleep(seconds: float) -> None:
    time.sleep(0.01)  # the emulator's sanitize progresses by wall clock: poll it often


def worker() -> int:
    """A job worker whose application identifies loops as the emulated drive and talks to the emulator."""
    from agent.app import Application
    from agent.contracts import WorkerRequest
    from agent.daemon import worker as real_worker

    def build(request: WorkerRequest) -> Application:
        return Application.for_worker(request, identify=identify, transports=transports, sleep=_sleep)

    return real_worker.main(build)


def station(config_path: str) -> int:
    """The daemon, as ``wipe-agent run`` builds it, with the emulating identify and workers."""
    from agent.api.server import ApiServer
    from agent.app import Application
    from agent.config import load_config
    from agent.daemon.launcher import SubprocessLauncher
    from agent.daemon.notify import setup_logging
    from agent.daemon.station import Station
    from agent.discovery.monitor import UdevDriveSource

    config = load_config(config_path)
    logger = setup_logging()
    launcher = SubprocessLauncher([sys.executable, "-m", "tests.integration.daemon.emulated_station", "--worker"])
    app = Application.from_config(config, identify=identify, launcher=launcher)
    daemon = Station(app, UdevDriveSource("kernel"), logger=logger)
    daemon.install_signal_handlers()
    return daemon.serve(lambda service: ApiServer(config.api_socket, service, config.api_group))


if __name__ == "__main__":
    sys.exit(worker() if sys.argv[1:] == ["--worker"] else station(sys.argv[1]))
