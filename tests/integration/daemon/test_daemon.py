"""The station daemon as a subprocess, driven by real kernel uevents from loop devices (root)."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.api.client import RemoteError
from agent.operators import VIA_API, unnamed_text
from agent.store.registry import Registry
from certs.verify import verify_file
from tests.conftest import run_cli
from tests.integration.daemon.conftest import Backing, Daemon

pytestmark = pytest.mark.root

MiB = 1 << 20


def _last(status: dict[str, Any], bay: str) -> dict[str, Any] | None:
    for entry in status["bays"]:
        if entry["name"] == bay:
            return entry["outcome"]  # type: ignore[no-any-return]
    raise AssertionError(f"no bay {bay}")


def _bay(status: dict[str, Any], bay: str) -> dict[str, Any]:
    return next(entry for entry in status["bays"] if entry["name"] == bay)


def _finished(bay: str, outcome: str = "sanitised") -> Callable[[dict[str, Any]], bool]:
    return lambda status: (_last(status, bay) or {}).get("outcome") == outcome


def _running(bay: str) -> Callable[[dict[str, Any]], bool]:
    def check(status: dict[str, Any]) -> bool:
        job = _bay(status, bay)["job"]
        # mid-job: writing, or (full verification) reading back — never finished
        return bool(job and job["state"] in ("running", "verifying") and job["done"] > 0 and job["pid"])
    return check


def _wait_pending(pid: int, number: int, timeout: float = 10) -> None:
    """Until ``number`` is pending for the (stopped) process ``pid``."""
    bit = 1 << (number - 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/status") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        if (int(fields["ShdPnd"], 16) | int(fields["SigPnd"], 16)) & bit:
            return
        time.sleep(0.01)
    raise AssertionError(f"signal {number} never reached {pid}")


def _registry_job(daemon: Daemon, job_id: str) -> Any:
    registry = Registry(daemon.state_dir).open()
    try:
        return registry.job(job_id)
    finally:
        registry.close()


def _zeroed(backing: Backing) -> bool:
    with open(backing.path, "rb") as handle:
        while chunk := handle.read(8 * MiB):
            if chunk.count(0) != len(chunk):
                return False
    return True


def _station_key(daemon: Daemon) -> Path:
    """An organisation CA and this station's signing key, through the real CLI; returns the trust bundle."""
    ca, bundle = daemon.directory / "ca", daemon.directory / "bundle.pem"
    for args in (["pki", "init-ca", "--org", "Test Constabulary", "--out", str(ca)],
                 ["pki", "issue-station", "--ca", str(ca), "--station-id", "test-station", "--state-dir",
                  str(daemon.state_dir)],
                 ["pki", "bundle", "--ca", str(ca), "--out", str(bundle)]):
        run_cli(*args, check=True)
    return bundle


def test_hotplug_starts_job_by_itself_and_status_shows_it(station: Callable[..., Daemon]) -> None:
    daemon = station([64 * MiB])
    bundle = _station_key(daemon)
    daemon.start()
    intake = daemon.run_cli("intake", "--asset", "MPS-LAP-0042", "--host-serial", "PF3ABC", "--make", "Lenovo",
                            "--model", "T14", "--bay", "bay-1", "--json")
    assert intake.returncode == 0, intake.stderr
    started = time.monotonic()
    daemon.backings[0].attach()
    daemon.wait_for(lambda status: _bay(status, "bay-1")["job"] is not None or _last(status, "bay-1") is not None,
                    timeout=10, what="job to start")
    hotplug_to_job = time.monotonic() - started
    daemon.wait_for(_finished("bay-1"), what="job to finish")
    result = daemon.run_cli("status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    last = _last(status, "bay-1")
    assert last is not None and last["outcome"] == "sanitised" and last["method"] == "overwrite.zero"
    assert _bay(status, "bay-1")["drive"]["device"] == daemon.backings[0].device
    job = _registry_job(daemon, last["job_id"])
    assert job.authorised_by == "bay bay-1"
    assert job.asset_tag == "MPS-LAP-0042"
    assert job.host["serial"] == "PF3ABC" and job.host["make"] == "Lenovo" and job.host["model"] == "T14"
    assert last["certificate"] == job.certificate_path is not None
    report = verify_file(Path(job.certificate_path), bundle)  # the host link is on the signed certificate
    assert report.valid and report.record is not None, report.reason
    assert (report.record.media.asset_tag, report.record.media.host_device) == ("MPS-LAP-0042", "MPS-LAP-0042")
    assert _zeroed(daemon.backings[0])
    assert hotplug_to_job < 5, hotplug_to_job  # the bench measures the ≤ 1 s target without polling noise
    human = daemon.run_cli("status")
    assert "bay-1" in human.stdout and "sanitised" in human.stdout
    live = daemon.run_cli("watch", "--count", "1", "--interval", "0.05")
    assert live.returncode == 0 and "bay-1" in live.stdout and "sanitised" in live.stdout, live.stderr


def test_drive_outside_every_bay_is_shown_and_never_touched(station: Callable[..., Daemon]) -> None:
    daemon = station([16 * MiB])
    stranger = Backing(daemon.backings[0].path.with_name(daemon.backings[0].path.name + ".stranger"), 16 * MiB)
    with open(stranger.path, "wb") as handle:
        handle.write(b"evidence" * (2 * MiB))
    daemon.start()
    try:
        device = stranger.attach()
        status = daemon.wait_for(lambda s: any(d["device"] == device for d in s["unbayed_drives"]), timeout=10,
                                 what="unbayed drive")
        assert status["running"] == 0 and _last(status, "bay-1") is None
        with open(stranger.path, "rb") as handle:
            assert handle.read(8) == b"evidence"
        with pytest.raises(RemoteError) as refused:
            daemon.client.post("/v1/bays/bay-1/start", {})
        assert refused.value.code == "no_drive" and refused.value.status == 409
    finally:
        stranger.detach()
        stranger.path.unlink(missing_ok=True)


def test_kill_9_mid_overwrite_then_restart(station: Callable[..., Daemon]) -> None:
    daemon = station([1024 * MiB], profile="nist-clear-overwrite-full")
    bundle = _station_key(daemon)
    daemon.start()
    daemon.backings[0].attach()
    status = daemon.wait_for(_running("bay-1"), timeout=20, what="overwrite running")
    job = _bay(status, "bay-1")["job"]
    worker = int(job["pid"])
    os.kill(worker, signal.SIGSTOP)  # freeze the overwrite mid-way, then cut the power
    daemon.kill()
    os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while os.path.exists(f"/proc/{worker}") and time.monotonic() < deadline:
        time.sleep(0.02)
    first = _registry_job(daemon, job["job_id"])
    assert first.state in ("running", "verifying")  # what the power cut left behind

    daemon.start()
    status = daemon.wait_for(_finished("bay-1"), timeout=60, what="the restarted job")
    second_id = _last(status, "bay-1")["job_id"]  # type: ignore[index]
    assert second_id != job["job_id"]
    first = _registry_job(daemon, job["job_id"])
    assert first.state == "interrupted" and first.certificate_path is None and first.route == "hold"
    second = _registry_job(daemon, second_id)
    assert second.state == "sanitised" and second.bytes_written == 1024 * MiB
    assert second.certificate_path is not None  # the finished attempt is certified, the interrupted one is not
    report = verify_file(Path(second.certificate_path), bundle)
    assert report.valid, report.reason
    assert second.verification is not None and second.verification["mode"] == "full"
    with sqlite3.connect(daemon.state_dir / "registry.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    assert _zeroed(daemon.backings[0])


def test_a_crashed_daemon_s_worker_says_why_it_stopped(station: Callable[..., Daemon]) -> None:
    """kill -9 of the daemon alone: its worker (parent-death signal) stops the overwrite and journals a
    daemon crash - not "cancelled", which an auditor would read as an operator's decision."""
    daemon = station([1024 * MiB], profile="nist-clear-overwrite-full")
    daemon.start()
    daemon.backings[0].attach()
    status = daemon.wait_for(_running("bay-1"), timeout=20, what="overwrite running")
    job, worker = _bay(status, "bay-1")["job"]["job_id"], int(_bay(status, "bay-1")["job"]["pid"])
    daemon.kill()
    deadline = time.monotonic() + 20
    while os.path.exists(f"/proc/{worker}") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not os.path.exists(f"/proc/{worker}")  # it did not run on unsupervised
    row = _registry_job(daemon, job)
    assert row.state == "interrupted" and row.certificate_path is None, row
    assert row.reason is not None and "station daemon stopped" in row.reason, row.reason


def test_sigterm_journals_jobs_and_exits_within_10_seconds(station: Callable[..., Daemon]) -> None:
    daemon = station([1024 * MiB], profile="nist-clear-overwrite-full")
    daemon.start()
    daemon.backings[0].attach()
    status = daemon.wait_for(_running("bay-1"), timeout=20, what="overwrite running")
    job = _bay(status, "bay-1")["job"]
    os.kill(job["pid"], signal.SIGSTOP)  # hold the job mid-way so it cannot finish before the SIGTERM lands
    assert daemon.process is not None
    started = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    _wait_pending(job["pid"], signal.SIGUSR2)  # the daemon told the worker the station is stopping
    os.kill(job["pid"], signal.SIGCONT)
    daemon.process.wait(10)
    elapsed = time.monotonic() - started
    assert elapsed < 10, elapsed
    row = _registry_job(daemon, job["job_id"])
    assert row.state == "interrupted" and row.certificate_path is None
    assert not os.path.exists(f"/proc/{job['pid']}") or open(f"/proc/{job['pid']}/stat").read().split()[2] == "Z"
    assert not daemon.socket.exists()


def test_start_and_cancel_from_the_cli(station: Callable[..., Daemon]) -> None:
    daemon = station([1024 * MiB], profile="nist-clear-overwrite-full", auto_start=False)
    daemon.start()
    daemon.backings[0].attach()
    daemon.wait_for(lambda s: _bay(s, "bay-1")["drive"] is not None, timeout=10, what="drive in bay")
    assert daemon.status()["running"] == 0  # auto_start = false: nothing happens by itself
    started = daemon.run_cli("start", "bay-1", "--json")
    assert started.returncode == 0, started.stderr
    # nobody signed in for root: the job says so, never "root" as if it were a person (agent.operators)
    answer = json.loads(started.stdout)
    assert answer["operator"] == unnamed_text(0, VIA_API) and answer["operator_named"] is False
    status = daemon.wait_for(_running("bay-1"), timeout=20, what="job running")
    job_id, worker = _bay(status, "bay-1")["job"]["job_id"], _bay(status, "bay-1")["job"]["pid"]
    os.kill(worker, signal.SIGSTOP)  # hold the job mid-way so it cannot finish before the cancel lands
    try:
        busy = daemon.run_cli("start", "bay-1", "--json")
        assert busy.returncode == 2 and json.loads(busy.stdout)["error"]["code"] == "bay_busy"
        cancelled = daemon.run_cli("cancel", job_id, "--json")
        assert cancelled.returncode == 0, cancelled.stderr
    finally:
        os.kill(worker, signal.SIGCONT)
    daemon.wait_for(_finished("bay-1", "interrupted"), timeout=20, what="cancelled job")
    assert _registry_job(daemon, job_id).state == "interrupted"
    again = daemon.run_cli("cancel", job_id, "--json")
    assert again.returncode == 2 and json.loads(again.stdout)["error"]["code"] == "not_active"


def test_a_queued_job_is_cancelled_by_bay_and_start_binds_the_serial(station: Callable[..., Daemon]) -> None:
    daemon = station([512 * MiB, 64 * MiB], profile="nist-clear-overwrite-full", parallel=1, auto_start=False)
    marker = b"CASE-FILE-0042".ljust(4096, b"#")
    with open(daemon.backings[1].path, "r+b") as handle:
        handle.write(marker)
    daemon.start()
    for backing in daemon.backings:
        backing.attach()
    daemon.wait_for(lambda s: all(bay["drive"] for bay in s["bays"]), timeout=10, what="drives in bays")
    serial = _bay(daemon.status(), "bay-2")["drive"]["serial"]
    # the operator names the drive they mean: another serial is refused and nothing is queued
    wrong = daemon.run_cli("start", "bay-2", "--serial", "NOT-THIS-ONE", "--json")
    assert wrong.returncode == 2 and json.loads(wrong.stdout)["error"]["code"] == "serial_mismatch"
    assert _bay(daemon.status(), "bay-2")["job"] is None
    assert daemon.run_cli("start", "bay-1").returncode == 0
    status = daemon.wait_for(_running("bay-1"), timeout=20, what="bay-1 running")
    worker = _bay(status, "bay-1")["job"]["pid"]
    os.kill(worker, signal.SIGSTOP)  # bay-1 holds the only slot: bay-2's job has to wait in the queue
    try:
        queued = daemon.run_cli("start", "bay-2", "--serial", serial, "--json")
        assert queued.returncode == 0, queued.stderr
        assert json.loads(queued.stdout)["serial"] == serial
        job = _bay(daemon.status(), "bay-2")["job"]
        assert job["state"] == "queued" and job["job_id"] is None and job["pid"] is None
        no_id = daemon.run_cli("cancel", "--json")
        assert no_id.returncode == 2  # usage: a job id or --bay
        cancelled = daemon.run_cli("cancel", "--bay", "bay-2", "--json")
        assert cancelled.returncode == 0, cancelled.stderr
        assert json.loads(cancelled.stdout)["state"] == "dequeued"
        after = daemon.status()
        assert _bay(after, "bay-2")["job"] is None and after["queued"] == 0
        assert _last(after, "bay-2")["outcome"] == "cancelled"  # type: ignore[index]
        nothing = daemon.run_cli("cancel", "--bay", "bay-2", "--json")
        assert nothing.returncode == 2 and json.loads(nothing.stdout)["error"]["code"] == "no_job"
        assert daemon.run_cli("cancel", "--bay", "bay-1", "--json").returncode == 0  # a running one, by bay
    finally:
        os.kill(worker, signal.SIGCONT)
    daemon.wait_for(_finished("bay-1", "interrupted"), timeout=20, what="bay-1 cancelled")
    with open(daemon.backings[1].path, "rb") as handle:
        assert handle.read(4096) == marker  # the dequeued job never started: the drive is untouched
    registry = Registry(daemon.state_dir).open()
    try:
        assert [row.state for row in registry.jobs(10)] == ["interrupted"]  # no job row for the dequeued one
    finally:
        registry.close()


def test_a_drive_held_open_is_shown_busy_and_starts_once_it_is_free(station: Callable[..., Daemon]) -> None:
    daemon = station([64 * MiB])
    daemon.start()
    backing = daemon.backings[0]
    # another program holds the disk with a plain open (no O_EXCL) - a forensic copy, a curious admin -
    # from before the medium arrives: it opens the unbound loop node, then the backing file is attached
    device = subprocess.run(["losetup", "--find"], check=True, capture_output=True, text=True).stdout.strip()
    holder = subprocess.Popen([sys.executable, "-c", f"import time; f = open({device!r}, 'rb'); "
                               "print('open', flush=True); time.sleep(120)"], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        subprocess.run(["losetup", "--direct-io=on", device, str(backing.path)], check=True)
        backing.device = device
        status = daemon.wait_for(lambda s: any("busy" in reason for reason in _bay(s, "bay-1")["drive"]["protected"])
                                 if _bay(s, "bay-1")["drive"] else False, timeout=15, what="busy drive")
        reasons = _bay(status, "bay-1")["drive"]["protected"]
        assert any(f"pid {holder.pid}" in reason for reason in reasons), reasons
        assert _bay(status, "bay-1")["job"] is None and _last(status, "bay-1") is None
        registry = Registry(daemon.state_dir).open()
        try:
            assert [row.state for row in registry.jobs(10) if row.state != "refused"] == []
        finally:
            registry.close()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    daemon.wait_for(_finished("bay-1"), timeout=30, what="job after the holder let go")
    assert _zeroed(backing)


def _raw(daemon: Daemon, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(5)
        connection.connect(str(daemon.socket))
        connection.sendall(payload)
        connection.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_eight_drives_at_once_and_bad_requests_get_4xx(station: Callable[..., Daemon]) -> None:
    daemon = station([64 * MiB] * 8)
    daemon.start()
    for backing in daemon.backings:
        backing.attach()
    # malformed requests while eight jobs run: each gets a 4xx with a stable code, the daemon lives
    assert _raw(daemon, b"\x00\xffgarbage\r\n\r\n").startswith(b"HTTP/1.0 400")
    bad_json = _raw(daemon, b"POST /v1/intake HTTP/1.0\r\nContent-Type: application/json\r\n"
                            b"Content-Length: 5\r\n\r\n{nope")
    assert bad_json.startswith(b"HTTP/1.0 400") and b'"bad_json"' in bad_json
    huge = _raw(daemon, b"POST /v1/intake HTTP/1.0\r\nContent-Length: 99999999\r\n\r\n")
    assert huge.startswith(b"HTTP/1.0 413") and b'"payload_too_large"' in huge
    for method, path, code, http_status in [
        ("GET", "/v1/nowhere", "not_found", 404),
        ("POST", "/v1/status", "method_not_allowed", 405),
        ("GET", "/v1/bays/bay-1/start", "method_not_allowed", 405),
        ("DELETE", "/v1/jobs/abc/cancel", "method_not_allowed", 405),
        ("POST", "/v1/bays/no-such-bay/start", "not_found", 404),
        ("GET", "/v1/jobs/ffffffffffff", "not_found", 404),
        ("GET", "/v1/jobs?limit=banana", "bad_request", 400),
    ]:
        with pytest.raises(RemoteError) as error:
            daemon.client.request(method, path, {} if method == "POST" else None)
        assert (error.value.code, error.value.status) == (code, http_status), (method, path)
    with pytest.raises(RemoteError) as unknown:
        daemon.client.post("/v1/intake", {"bay": "bay-1", "asset_tag": "A1", "colour": "red"})
    assert unknown.value.code == "unknown_field"
    with pytest.raises(RemoteError) as wrong_type:
        daemon.client.post("/v1/intake", {"bay": "bay-1", "asset_tag": 7})
    assert wrong_type.value.code == "bad_request"

    status = daemon.wait_for(lambda s: all((_last(s, f"bay-{n}") or {}).get("outcome") == "sanitised"
                                           for n in range(1, 9)), timeout=90, what="eight jobs")
    assert status["running"] == 0 and daemon.client.get("/v1/health") == {"ok": True}
    jobs = daemon.client.get("/v1/jobs?limit=20")["jobs"]
    assert sorted(job["state"] for job in jobs) == ["sanitised"] * 8
    assert all(_zeroed(backing) for backing in daemon.backings)
