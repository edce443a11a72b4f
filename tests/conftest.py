"""Shared fixtures: root detection, real loop devices on /dev/shm, temporary state directories."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.fleet.localdb import PostgresServer
from agent.fleet.localdb import unavailable_reason as postgres_unavailable
from wipe_agent_testing.emulated import state_path_for

IS_ROOT = os.geteuid() == 0
WIPE_AGENT = [sys.executable, "-m", "agent.cli.main"]


def skip_unless_user_can_run_checkout(user: int | str, group: int | None = None) -> None:
    """Skip (with the reason) when ``user`` cannot run this checkout's interpreter or read its code — a
    checkout under /root, as on a fresh CI machine's chroot; the test's subject is then not reachable."""
    checkout = Path(__file__).resolve().parent.parent
    probe = subprocess.run(["sh", "-c", 'test -x "$1" && test -r "$2"', "probe", sys.executable,
                            str(checkout / "agent" / "__init__.py")],
                           user=user, group=group, extra_groups=[] if group is not None else None,
                           cwd="/", check=False)
    if probe.returncode != 0:
        pytest.skip(f"an unprivileged user ({user}) cannot run this checkout's {sys.executable} or read its code "
                    "(a checkout under /root?)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``root`` skip with a reason when not root (CI runs as root, so they run there)."""
    if IS_ROOT and shutil.which("losetup"):
        return
    if os.environ.get("WIPE_AGENT_REQUIRE_ROOT") == "1":
        raise pytest.UsageError("WIPE_AGENT_REQUIRE_ROOT=1 but root tests cannot run (not root or no losetup)")
    reason = "needs root and losetup (loop devices, mounts, swap); CI runs these as root"
    for item in items:
        if "root" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


class LoopDevice:
    """A real loop device over a file in /dev/shm (fast: the software is the bottleneck)."""

    def __init__(self, backing: Path, device: str) -> None:
        self.backing = backing
        self.path = device

    @property
    def size(self) -> int:
        """Size in bytes."""
        return self.backing.stat().st_size

    def read(self, offset: int = 0, length: int | None = None) -> bytes:
        """Buffered read through the device after dropping its page cache (independent of the agent)."""
        with open(self.path, "rb", buffering=0) as handle:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
            handle.seek(offset)
            return handle.read(self.size - offset if length is None else length)

    def write(self, offset: int, data: bytes) -> None:
        """Write through the device and flush."""
        with open(self.path, "r+b", buffering=0) as handle:
            handle.seek(offset)
            handle.write(data)
            os.fsync(handle.fileno())


@pytest.fixture
def loop_factory(tmp_path: Path) -> Iterator[Callable[..., LoopDevice]]:
    """Make loop devices; all are detached and their files removed afterwards."""
    made: list[LoopDevice] = []
    scratch = Path("/dev/shm") if Path("/dev/shm").is_dir() else tmp_path

    def make(size: int = 64 << 20, *, fill: bytes | None = None, read_only: bool = False,
             direct_io: bool = True) -> LoopDevice:
        backing = scratch / f"wipe-agent-test-{os.getpid()}-{len(made)}-{tmp_path.name}.img"
        with open(backing, "wb") as handle:
            if fill is None:
                handle.write(os.urandom(size))
            else:
                handle.write((fill * (size // len(fill) + 1))[:size])
        args = ["losetup", "--find", "--show"]
        if direct_io:
            args.append("--direct-io=on")
        if read_only:
            args.append("--read-only")
        device = subprocess.run([*args, str(backing)], check=True, capture_output=True, text=True).stdout.strip()
        loop = LoopDevice(backing, device)
        made.append(loop)
        return loop

    yield make
    for loop in made:
        subprocess.run(["losetup", "-d", loop.path], check=False, capture_output=True)
        loop.backing.unlink(missing_ok=True)
        # an emulated-firmware drive over this image keeps its state beside it
        state_path_for(loop.backing).unlink(missing_ok=True)


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private registry directory, also exported for subprocesses."""
    directory = tmp_path / "state"
    monkeypatch.setenv("WIPE_AGENT_STATE_DIR", str(directory))
    return directory


TEST_ORGANISATION = """[organisation]
name = "Test Constabulary"
location = "Test wipe room, Building 7"
phone = "+44 1632 960000"
"""


@pytest.fixture
def configured_station(state_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A station.toml for ``state_dir`` naming an organisation (without one no certificate is issued),
    exported as $WIPE_AGENT_CONFIG for subprocesses; returns its path."""
    config = tmp_path / "station.toml"
    config.write_text(f'station_id = "station-07"\nstate_dir = "{state_dir}"\n{TEST_ORGANISATION}')
    monkeypatch.setenv("WIPE_AGENT_CONFIG", str(config))
    return config


def run_cli(*args: str, check: bool = False, timeout: float = 120, input_text: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real command line in a subprocess."""
    result = subprocess.run(
        [*WIPE_AGENT, *args], capture_output=True, text=True, timeout=timeout, input=input_text,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"wipe-agent {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session (agent/fleet/localdb.py); skipped with the reason where
    it cannot start, except under WIPE_AGENT_REQUIRE_ROOT=1 (CI), where that is a failure."""
    reason = postgres_unavailable()
    if reason is not None:
        if os.environ.get("WIPE_AGENT_REQUIRE_ROOT") == "1":
            pytest.fail(f"WIPE_AGENT_REQUIRE_ROOT=1 but the PostgreSQL tests cannot run: {reason}")
        pytest.skip(reason)
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> str:
    """The connection string of a new, empty database of this test's own on the session's server."""
    name = "t_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name.lower())[:40]
    name = f"{name}_{len(_databases)}"
    _databases.append(name)
    return postgres_server.create_database(name)


_databases: list[str] = []
