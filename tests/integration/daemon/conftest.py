"""A real station daemon in a subprocess, with bays that match loop devices by their backing file.

Events come from ``source="kernel"`` netlink: real uevents from the kernel (``losetup`` gives a
``change`` with the medium's size, ``losetup -d`` a ``change`` to size 0) without depending on udevd
being installed; bays match ``WIPE_BACKING_FILE``, which the drive source adds from sysfs because
loop devices have no ``ID_PATH``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.api.client import ApiClient
from agent.errors import AgentError
from wipe_agent_testing.emulated import state_path_for

STATION = [sys.executable, "-m", "agent.cli.station_commands"]


class Backing:
    """A file under /dev/shm a bay matches, attached to a loop device on demand."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        self.device: str | None = None

    def attach(self) -> str:
        """``losetup``: the kernel sends a real uevent (change, size > 0)."""
        self.device = subprocess.run(["losetup", "--find", "--show", "--direct-io=on", str(self.path)], check=True,
                                     capture_output=True, text=True).stdout.strip()
        return self.device

    def detach(self) -> None:
        """Detach (deferred by the kernel while a job holds the device open)."""
        if self.device is not None:
            subprocess.run(["losetup", "-d", self.device], check=False, capture_output=True)
            self.device = None


class Daemon:
    """``wipe-agent run`` under test."""

    def __init__(self, directory: Path, backings: list[Backing], profile: str, parallel: int,
                 auto_start: bool = True) -> None:
        self.directory = directory
        self.backings = backings
        self.config = directory / "station.toml"
        self.socket = directory / "api.sock"
        self.state_dir = directory / "state"
        bays = "".join(
            f'[[bays]]\nname = "bay-{index}"\nmatch = {{ WIPE_BACKING_FILE = "{backing.path}" }}\n'
            f'auto_start = {str(auto_start).lower()}\nprofile = "{profile}"\n'
            for index, backing in enumerate(backings, start=1)
        )
        self.config.write_text(
            f'station_id = "test-station"\nstate_dir = "{self.state_dir}"\napi_socket = "{self.socket}"\n'
            f"max_parallel_jobs = {parallel}\n{bays}"
            # without an organisation the station records its jobs but issues no certificate
            '[organisation]\nname = "Test Constabulary"\nlocation = "Test wipe room"\nphone = "+44 1632 960000"\n'
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "daemon.log"
        self.client = ApiClient(self.socket, timeout=5)

    def start(self, timeout: float = 15, command: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        """Start (``wipe-agent run`` unless ``command`` is given) and wait until the API answers."""
        command = command or [*STATION, "run", "--config", str(self.config), "--udev-source", "kernel"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited {self.process.returncode}: {self.log.read_text()}")
            try:
                self.client.get("/v1/health")
                return
            except AgentError:
                time.sleep(0.05)
        raise AssertionError("daemon API did not come up: " + self.log.read_text())

    def status(self) -> dict[str, Any]:
        """``GET /v1/status``."""
        return self.client.get("/v1/status")

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 60, what: str = "") -> dict[
            str, Any]:
        """Poll status until ``predicate`` holds (a deadline, never a fixed sleep)."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log.read_text()
            status = self.status()
            if predicate(status):
                return status
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}: {status}\n{self.log.read_text()}")

    def stop(self, timeout: float = 10) -> float:
        """SIGTERM; returns how long the exit took."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL (a crash or power cut as far as the daemon is concerned)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def run_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A station CLI command against this daemon (a wide terminal for ``watch``)."""
        return subprocess.run([*STATION, *args, "--config", str(self.config)], capture_output=True, text=True,
                              timeout=30, env={**os.environ, "COLUMNS": "200"})


@pytest.fixture
def station() -> Iterator[Callable[..., Daemon]]:
    """``station(sizes=[…], profile=…, parallel=…)`` → a Daemon with one bay per backing file (not started)."""
    made: list[Daemon] = []
    directory = Path(tempfile.mkdtemp(prefix="wa-", dir="/tmp"))  # short: Unix socket paths are ≤107 bytes

    counter = [0]

    def make(sizes: list[int], profile: str = "nist-clear-overwrite", parallel: int = 8,
             auto_start: bool = True) -> Daemon:
        backings = []
        for size in sizes:
            counter[0] += 1
            path = Path("/dev/shm") / f"wipe-agent-daemon-{os.getpid()}-{directory.name}-{counter[0]}.img"
            with open(path, "wb") as handle:
                handle.truncate(size)
                handle.write(b"secret data " * 1000)
            backings.append(Backing(path, size))
        daemon = Daemon(directory, backings, profile, parallel, auto_start)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        if daemon.process is not None and daemon.process.poll() is None:
            try:
                daemon.stop()
            except subprocess.TimeoutExpired:
                daemon.kill()
        for backing in daemon.backings:
            backing.detach()
            backing.path.unlink(missing_ok=True)
            state_path_for(backing.path).unlink(missing_ok=True)  # an emulated drive's sidecar
    shutil.rmtree(directory, ignore_errors=True)
