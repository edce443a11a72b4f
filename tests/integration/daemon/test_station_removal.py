"""Drive removal mid-job, through the station in-process with the pipe-backed drive source (root).

A loop device cannot be pulled while a job holds it open (the kernel defers the detach), so the
removal event comes from the fake source while the job writes to a real loop device; in the QEMU
guest the same path runs with a real ``device_del``.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.app import Application
from agent.config import parse_config
from agent.daemon.station import Station
from agent.discovery.monitor import INSERTED, REMOVED, DriveEvent, PipeDriveSource, station_properties
from agent.store.registry import Registry
from tests.conftest import LoopDevice

pytestmark = pytest.mark.root

MiB = 1 << 20


def _event(action: str, loop: LoopDevice) -> DriveEvent:
    name = os.path.basename(loop.path)
    return DriveEvent(action, name, loop.path, station_properties(name, {"DEVNAME": loop.path}), loop.size, "fake")


@pytest.fixture
def running_station(loop_factory: Callable[..., LoopDevice]) -> Iterator[tuple[Station, PipeDriveSource, list[
        LoopDevice]]]:
    loops = [loop_factory(1024 * MiB, fill=b"\x5a"), loop_factory(64 * MiB, fill=b"\x5a")]
    directory = Path(tempfile.mkdtemp(prefix="wa-st-", dir="/tmp"))
    bays = "".join(f'[[bays]]\nname = "bay-{index}"\nmatch = {{ WIPE_BACKING_FILE = "{loop.backing}" }}\n'
                   f'auto_start = true\nprofile = "nist-clear-overwrite-full"\n'
                   for index, loop in enumerate(loops, start=1))
    config = parse_config(f'station_id = "t"\nstate_dir = "{directory}/state"\napi_socket = "{directory}/api.sock"\n'
                          f"{bays}")
    source = PipeDriveSource()
    station = Station(Application.from_config(config), source)
    thread = threading.Thread(target=station.serve, daemon=True)
    thread.start()
    assert station.ready.wait(20)
    try:
        yield station, source, loops
    finally:
        station.request_stop()
        thread.join(15)
        assert not thread.is_alive()
        import shutil

        shutil.rmtree(directory, ignore_errors=True)


def _wait(predicate: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_drive_removed_mid_job_fails_that_job_only(
        running_station: tuple[Station, PipeDriveSource, list[LoopDevice]]) -> None:
    station, source, (big, small) = running_station
    source.push(_event(INSERTED, big))
    _wait(lambda: bool((job := station.slots["bay-1"].job) and job.state in ("running", "verifying") and job.done))
    job = station.slots["bay-1"].job
    assert job is not None and job.process is not None
    os.kill(job.process.pid, signal.SIGSTOP)  # hold it mid-write while the other bay runs a whole job
    source.push(_event(INSERTED, small))
    _wait(lambda: (station.slots["bay-2"].outcome or {}).get("outcome") == "sanitised")
    source.push(_event(REMOVED, big))  # the operator pulls the drive in bay 1
    _wait(lambda: station.slots["bay-1"].drive is None)
    os.kill(job.process.pid, signal.SIGCONT)
    _wait(lambda: station.slots["bay-1"].previous is not None)
    # the drive was pulled: its job's outcome is the previous drive's, labelled, never the empty bay's state
    assert station.slots["bay-1"].outcome is None
    last = station.slots["bay-1"].previous
    assert last is not None and last["label"].startswith("previous drive S/N ")
    assert (last["outcome"], last["error_code"], last["route"]) == ("failed", "drive_removed", "hold")
    assert str(last["reason"]).startswith("drive removed")  # one removal is not a hardware fault
    assert "drive_route" not in last
    registry = Registry(station.config.state_dir).open()
    try:
        states = sorted(row.state for row in registry.jobs())
    finally:
        registry.close()
    assert states == ["failed", "sanitised"]
