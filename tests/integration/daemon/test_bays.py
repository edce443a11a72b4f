"""A bay shows only the drive in it; honest ``start``; a CLI ``wipe`` of a bay's drive (root, real daemon + loops)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from agent.cli.bay_view import render_status
from agent.cli.station_commands import InStationBay, refuse_if_in_station_bay
from agent.store.registry import Registry
from certs.verify import verify_file
from tests.conftest import run_cli
from tests.integration.daemon.conftest import Backing, Daemon
from tests.integration.daemon.test_daemon import _running, _station_key, _zeroed

pytestmark = pytest.mark.root

MiB = 1 << 20


def _bay(status: dict[str, Any], name: str = "bay-1") -> dict[str, Any]:
    return next(entry for entry in status["bays"] if entry["name"] == name)


def _state(name: str, state: str) -> Callable[[dict[str, Any]], bool]:
    return lambda status: _bay(status, name)["state"] == state


def _settled(status: dict[str, Any]) -> bool:
    """The drive is in bay-1 and nothing holds it for a moment any more (udev's probe of a new medium)."""
    return _bay(status)["drive"] is not None and _bay(status)["state"] != "waiting"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _status_json(daemon: Daemon) -> dict[str, Any]:
    result = daemon.run_cli("status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def _watch_80(daemon: Daemon) -> str:
    """``watch`` as an operator at an 80-column console sees it (one refresh)."""
    result = subprocess.run([*daemon_cli(), "watch", "--count", "1", "--interval", "0.01", "--config",
                             str(daemon.config)], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "COLUMNS": "80", "LINES": "24"})
    assert result.returncode == 0, result.stderr
    return result.stdout


def daemon_cli() -> list[str]:
    from tests.integration.daemon.conftest import STATION

    return list(STATION)


def _row(screen: str, bay: str) -> str:
    return next(line for line in screen.splitlines() if line.startswith(bay + " "))


def _evidence(size: int) -> bytes:
    """A never-wiped drive's content: case files, exactly ``size`` bytes (whole sectors)."""
    line = b"OFFICIAL-SENSITIVE case 4711\n"
    return (line * (size // len(line) + 1))[:size]


def _reseat(backing: Backing, content: bytes) -> str:
    """Pull the drive and seat another one in the same bay: a new medium at the same backing path,
    so even the loop's "serial" (its backing path) is the same - the hardest look-alike."""
    backing.detach()
    backing.path.unlink()
    with open(backing.path, "wb") as handle:
        handle.write(content)
    return backing.attach()


def test_a_never_wiped_drive_seated_after_a_sanitised_one_is_not_shown_sanitised(
        station: Callable[..., Daemon]) -> None:
    daemon = station([16 * MiB], auto_start=False)
    daemon.start()
    backing = daemon.backings[0]
    backing.attach()
    daemon.wait_for(_state("bay-1", "present"), timeout=10, what="drive A present")
    started = daemon.run_cli("start", "bay-1", "--json")
    assert started.returncode == 0, started.stderr
    job_a = json.loads(started.stdout)["job_id"]
    assert job_a, started.stdout  # the answer is the job id, after the guard and the checks passed
    status = daemon.wait_for(_state("bay-1", "sanitised"), what="drive A sanitised")
    bay = _bay(status)
    assert bay["outcome"]["job_id"] == job_a and bay["safe_to_pull"] and bay["pull"] == "safe to pull"
    assert "no certificate" in _watch_80(daemon)  # this station has no signing key: the screen says so

    evidence = _evidence(16 * MiB)
    backing.detach()
    daemon.wait_for(_state("bay-1", "empty"), timeout=10, what="drive A pulled")
    device = _reseat(backing, evidence)
    # B seated (a new diskseq), and no longer held by losetup/udev's probe of the new medium ("waiting")
    daemon.wait_for(lambda s: _bay(s)["drive"] is not None and _bay(s)["seating"]["diskseq"] != bay[
        "seating"]["diskseq"] and _bay(s)["state"] != "waiting", timeout=10, what="drive B seated")
    status = _status_json(daemon)
    bay_b = _bay(status)
    assert bay_b["drive"]["device"] == device
    assert bay_b["state"] == "present" and bay_b["outcome"] is None, bay_b  # never A's outcome
    assert bay_b["previous"]["job_id"] == job_a and bay_b["previous"]["outcome"] == "sanitised"
    assert bay_b["previous"]["label"].startswith("previous drive S/N ")
    screen = _watch_80(daemon)
    row = _row(screen, "bay-1")
    assert "present" in row and "sanitised" not in row, screen
    assert all(len(line) <= 80 for line in screen.splitlines()), screen
    rendered = io.StringIO()
    Console(file=rendered, width=80, color_system=None).print(render_status(status, 80))
    assert "sanitised" not in _row(rendered.getvalue(), "bay-1")
    human = daemon.run_cli("status")
    assert "previous drive S/N" in human.stdout and "not the drive in the bay now" in human.stdout
    with open(backing.path, "rb") as handle:
        assert handle.read(29) == b"OFFICIAL-SENSITIVE case 4711\n"  # B was never touched


def test_a_look_alike_seated_while_the_station_was_down_is_wiped_not_shown_sanitised(
        station: Callable[..., Daemon]) -> None:
    """Issue 12 / attack B1: after a restart, the same serial is not the same medium."""
    daemon = station([16 * MiB])
    daemon.start()
    backing = daemon.backings[0]
    backing.attach()
    daemon.wait_for(_state("bay-1", "sanitised"), what="drive A sanitised")
    daemon.stop()
    _reseat(backing, _evidence(16 * MiB))
    daemon.start()
    status = daemon.wait_for(_state("bay-1", "sanitised"), what="drive B wiped in its turn")
    registry = Registry(daemon.state_dir).open()
    try:
        rows = registry.jobs(10)
        assert [row.state for row in rows] == ["sanitised", "sanitised"]  # B got a job of its own
        registry_jobs = [row.id for row in rows]  # newest first
    finally:
        registry.close()
    assert _bay(status)["outcome"]["job_id"] == registry_jobs[0]  # the bay shows B's own job
    assert _zeroed(backing)


def test_a_restart_with_the_same_medium_seated_keeps_it_sanitised(station: Callable[..., Daemon]) -> None:
    daemon = station([16 * MiB])
    daemon.start()
    daemon.backings[0].attach()
    job = _bay(daemon.wait_for(_state("bay-1", "sanitised"), what="sanitised"))["outcome"]["job_id"]
    daemon.stop()
    daemon.start()
    bay = _bay(daemon.wait_for(_settled, timeout=10, what="drive seen again"))
    assert bay["state"] == "sanitised" and bay["outcome"]["job_id"] == job and bay["job"] is None
    assert "never pulled since" in bay["outcome"]["note"]


def test_start_refused_for_the_media_answers_exit_2_and_keeps_the_intake(station: Callable[..., Daemon]) -> None:
    daemon = station([16 * MiB], auto_start=False)
    bundle = _station_key(daemon)
    daemon.start()
    intake = daemon.run_cli("intake", "--asset", "MPS-LAP-0042", "--host-serial", "PF3ABC", "--bay", "bay-1")
    assert intake.returncode == 0, intake.stderr
    daemon.backings[0].attach()
    daemon.wait_for(_state("bay-1", "present"), timeout=10, what="drive present")
    assert _bay(daemon.status())["asset_tag"] == "MPS-LAP-0042"  # the pending link is shown on the bay
    refused = daemon.run_cli("start", "bay-1", "--profile", "nist-purge", "--json")
    assert refused.returncode == 2, refused.stdout
    error = json.loads(refused.stdout)["error"]
    assert error["code"] == "profile_media" and "does not take virtual media" in error["message"], error
    human = daemon.run_cli("start", "bay-1", "--profile", "nist-purge")
    assert human.returncode == 2 and human.stderr.count("\n") == 1 and "virtual media" in human.stderr
    bay = _bay(_status_json(daemon))
    assert bay["state"] == "refused" and "does not take virtual media" in bay["reason"]
    assert bay["pending_intake"]["asset_tag"] == "MPS-LAP-0042" and bay["pending_intake"]["claimed_serial"] is None
    assert "refused: profile nist-purge does not take virtual media" in _watch_80(daemon).replace("\n", " ")
    assert "does not take virtual media" in daemon.run_cli("status").stdout
    assert "start refused" in daemon.log.read_text()

    started = daemon.run_cli("start", "bay-1", "--json")  # the bay's own profile fits
    assert started.returncode == 0, started.stderr
    bay = _bay(daemon.wait_for(_state("bay-1", "sanitised"), what="the later job"))
    registry = Registry(daemon.state_dir).open()
    try:
        job = registry.job(bay["outcome"]["job_id"])
    finally:
        registry.close()
    assert job.asset_tag == "MPS-LAP-0042" and job.host["serial"] == "PF3ABC"
    report = verify_file(Path(str(job.certificate_path)), bundle)
    assert report.valid and report.record is not None, report.reason
    assert report.record.media.host_device == "MPS-LAP-0042"  # the certificate names the laptop
    assert _bay(daemon.status())["pending_intake"] is None  # used up by the certified job, only by it


def test_a_job_the_worker_refuses_leaves_the_intake_and_shows_why(station: Callable[..., Daemon]) -> None:
    daemon = station([16 * MiB], profile="nist-purge")  # auto-start with a profile that cannot take loops
    daemon.start()
    assert daemon.run_cli("intake", "--asset", "MPS-LAP-0043", "--bay", "bay-1").returncode == 0
    daemon.backings[0].attach()
    bay = _bay(daemon.wait_for(_state("bay-1", "refused"), what="worker refusal"))
    assert "virtual" in bay["reason"], bay
    assert bay["pending_intake"] is not None and bay["pending_intake"]["claimed_serial"] is None
    assert "job did not sanitise the drive" in daemon.log.read_text()


def test_a_cli_wipe_of_a_drive_in_a_daemon_bay_is_refused(station: Callable[..., Daemon]) -> None:
    daemon = station([16 * MiB], auto_start=False)
    daemon.start()
    device = daemon.backings[0].attach()
    daemon.wait_for(_state("bay-1", "present"), timeout=10, what="drive present")
    before = _digest(daemon.backings[0].path)
    env = {"WIPE_AGENT_CONFIG": str(daemon.config)}
    result = run_cli("wipe", device, "--profile", "nist-clear-overwrite", "--yes", "--json", env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "drive_in_station_bay"
    assert "drive is in bay bay-1 of the running station daemon: use `wipe-agent start bay-1`" in error["message"]
    human = run_cli("wipe", device, "--profile", "nist-clear-overwrite", "--yes", env=env)
    assert human.returncode == 2 and "use `wipe-agent start bay-1`" in human.stderr and "Traceback" not in human.stderr
    assert _digest(daemon.backings[0].path) == before
    assert _bay(daemon.status())["state"] == "present"


@pytest.fixture
def plain_loop(tmp_path: Path) -> Iterator[str]:
    image = tmp_path / "plain.img"
    image.write_bytes(b"\x5a" * MiB)
    device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True, capture_output=True,
                            text=True).stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


def test_wipe_asks_the_daemon_and_refuses_when_it_cannot(plain_loop: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    sock = Path("/tmp") / f"wa-claim-{os.getpid()}.sock"
    config = tmp_path / "station.toml"
    config.write_text(f'station_id = "s"\nstate_dir = "{tmp_path}/state"\napi_socket = "{sock}"\n')
    monkeypatch.setenv("WIPE_AGENT_CONFIG", str(config))
    monkeypatch.setattr("agent.cli.station_commands.DEFAULT_API_SOCKET", str(tmp_path / "none.sock"))
    refuse_if_in_station_bay(plain_loop)  # no socket: no daemon, go ahead
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(sock))  # a socket file nobody listens on (a daemon killed with -9): the kernel says so
    try:
        refuse_if_in_station_bay(plain_loop)
    finally:
        stale.close()
        sock.unlink()
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.bind(str(sock))
    mute.listen(4)

    def hang_up() -> None:  # something listens there but never answers a request
        connection, _ = mute.accept()
        connection.close()
        connection, _ = mute.accept()
        connection.close()

    thread = threading.Thread(target=hang_up, daemon=True)
    thread.start()
    try:
        with pytest.raises(InStationBay) as refused:
            refuse_if_in_station_bay(plain_loop)
        assert "refusing to be safe" in refused.value.message
    finally:
        thread.join(10)
        mute.close()
        sock.unlink()


def test_an_interrupted_drive_in_a_manual_bay_shows_needs_re_run(station: Callable[..., Daemon]) -> None:
    daemon = station([1024 * MiB], profile="nist-clear-overwrite-full", auto_start=False)
    daemon.start()
    daemon.backings[0].attach()
    daemon.wait_for(_state("bay-1", "present"), timeout=10, what="drive present")
    assert daemon.run_cli("start", "bay-1").returncode == 0
    status = daemon.wait_for(_running("bay-1"), timeout=20, what="job running")
    job = _bay(status)["job"]
    assert _bay(status)["pull"] == "do not pull" and not _bay(status)["safe_to_pull"]
    assert job["overall_progress"] is not None and job["elapsed_seconds"] is not None
    os.kill(job["pid"], signal.SIGSTOP)  # hold it mid-way so the cancel lands before it finishes
    try:
        assert daemon.run_cli("cancel", "--bay", "bay-1").returncode == 0
    finally:
        os.kill(job["pid"], signal.SIGCONT)
    bay = _bay(daemon.wait_for(_state("bay-1", "interrupted"), timeout=20, what="interrupted"))
    assert bay["needs_rerun"] and bay["reason"].startswith("needs re-run")
    assert "needs re-run" in _row(_watch_80(daemon), "bay-1")
    daemon.stop()
    daemon.start()  # the station restarts with the drive still seated in its manual bay
    bay = _bay(daemon.wait_for(_settled, timeout=10, what="drive seen again"))
    assert bay["state"] == "interrupted" and bay["needs_rerun"] and bay["job"] is None, bay
    assert "needs re-run" in _row(_watch_80(daemon), "bay-1")


def test_a_partition_of_a_bay_drive_is_the_bay_s_too(station: Callable[..., Daemon]) -> None:
    daemon = station([16 * MiB], auto_start=False)
    daemon.start()
    device = daemon.backings[0].attach()
    daemon.wait_for(_state("bay-1", "present"), timeout=10, what="drive present")
    subprocess.run(["sfdisk", "-q", device], input="start=2048, size=8192\n", text=True, check=True,
                   capture_output=True)
    subprocess.run(["partx", "-a", device], check=False, capture_output=True)
    partition = f"{device}p1"
    deadline = time.monotonic() + 5
    while not os.path.exists(partition) and time.monotonic() < deadline:
        time.sleep(0.05)
    if not os.path.exists(partition):
        pytest.skip("the kernel did not create the partition node (no udev/devtmpfs update)")
    with pytest.raises(InStationBay) as refused:
        refuse_if_in_station_bay(partition, str(daemon.config))  # asked by the whole disk's dev_t
    assert "bay bay-1" in refused.value.message


def test_a_sanitised_drive_that_grows_in_its_bay_is_no_longer_shown_sanitised(
        station: Callable[..., Daemon]) -> None:
    daemon = station([16 * MiB], auto_start=False)
    daemon.start()
    backing = daemon.backings[0]
    device = backing.attach()
    daemon.wait_for(_state("bay-1", "present"), timeout=10, what="drive present")
    assert daemon.run_cli("start", "bay-1").returncode == 0
    seating = _bay(daemon.wait_for(_state("bay-1", "sanitised"), what="sanitised"))["seating"]
    with open(backing.path, "r+b") as handle:
        handle.truncate(32 * MiB)  # a tail the job never wrote
    subprocess.run(["losetup", "-c", device], check=True)
    bay = _bay(_status_json(daemon))
    assert bay["state"] == "present" and bay["outcome"] is None, bay
    assert bay["seating"]["number"] == seating["number"]  # the same seating: only its outcome no longer holds
    assert "size changed" in bay["previous"]["label"] and bay["job"] is None
    assert "changed after its job" in daemon.log.read_text() and "its size changed" in daemon.log.read_text()


def test_a_loop_stacked_on_a_bay_drive_is_the_bay_s_too(station: Callable[..., Daemon]) -> None:
    daemon = station([16 * MiB], auto_start=False)
    daemon.start()
    device = daemon.backings[0].attach()
    daemon.wait_for(_state("bay-1", "present"), timeout=10, what="drive present")
    upper = subprocess.run(["losetup", "--find", "--show", device], check=True, capture_output=True,
                           text=True).stdout.strip()
    try:
        with pytest.raises(InStationBay) as refused:
            refuse_if_in_station_bay(upper, str(daemon.config))  # writing the upper loop writes the bay's drive
        assert "bay bay-1" in refused.value.message and f"built on {device}" in refused.value.message
    finally:
        subprocess.run(["losetup", "-d", upper], check=False)


def test_a_drive_written_in_its_bay_after_its_job_is_no_longer_green(station: Callable[..., Daemon]) -> None:
    """Attack B5: an automounter, a copy or a VM writes to the seated drive after it was sanitised."""
    daemon = station([16 * MiB])
    daemon.start()
    device = daemon.backings[0].attach()
    job = _bay(daemon.wait_for(_state("bay-1", "sanitised"), what="sanitised"))["outcome"]["job_id"]
    with open(device, "r+b", buffering=0) as handle:
        handle.write(_evidence(8 * MiB))
        os.fsync(handle.fileno())
    bay = _bay(_status_json(daemon))
    assert bay["state"] == "present" and bay["modified_since_job"] and bay["needs_rerun"], bay
    assert "written after its job" in bay["reason"] and bay["previous"]["job_id"] == job
    assert "sanitised" not in _row(_watch_80(daemon), "bay-1")
    assert "changed after its job" in daemon.log.read_text()
    assert bay["job"] is None  # the operator re-runs it: nothing is started by itself on a changed drive
    daemon.stop()
    daemon.start()  # and a restart does not make it green again: the seating record no longer holds
    bay = _bay(daemon.wait_for(_settled, timeout=10, what="drive seen again"))
    assert bay["state"] != "sanitised" or bay["outcome"]["job_id"] != job, bay
