"""Inside the guest, driven by the host: the station daemon, with real udev, wipes a hot-plugged NVMe
drive by itself and fails only the job whose drive is pulled mid-wipe.

Protocol (files in /results): ``daemon-ready`` → the host plugs DAEMONBIG (bay-1);
``big-running`` → the host plugs DAEMONSMALL (bay-2) and unplugs DAEMONBIG with ``device_del``.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.api.client import ApiClient
from agent.errors import AgentError

TIMEOUT = 240.0
CONFIG = """
station_id = "guest-station"
state_dir = "{work}/state"
api_socket = "{work}/api.sock"
[[bays]]
name = "bay-1"
match = {{ ID_SERIAL_SHORT = "DAEMONBIG" }}
auto_start = true
profile = "nist-clear-overwrite-full"
[[bays]]
name = "bay-2"
match = {{ ID_SERIAL_SHORT = "DAEMONSMALL" }}
auto_start = true
profile = "nist-clear-overwrite"
"""


def _bay(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(bay for bay in status["bays"] if bay["name"] == name)


def _wait(client: ApiClient, daemon: subprocess.Popen[bytes], predicate: Callable[[dict[str, Any]], bool],
          what: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        assert daemon.poll() is None, f"daemon exited {daemon.returncode}"
        try:
            status = client.get("/v1/status")
        except AgentError:
            status = {}
        if status and predicate(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {status}")


def test_daemon_wipes_hotplugged_drive_and_fails_only_the_pulled_one(results_directory: Path) -> None:
    work = Path("/var/lib/wipe-agent-guest-daemon")
    work.mkdir(parents=True, exist_ok=True)
    config = work / "station.toml"
    config.write_text(CONFIG.format(work=work))
    with open(results_directory / "daemon.log", "wb") as log:
        daemon = subprocess.Popen([sys.executable, "-m", "agent.cli.station_commands", "run", "--config", str(config),
                                   "--udev-source", "udev"], stdout=log, stderr=log)
        client = ApiClient(work / "api.sock")
        try:
            _wait(client, daemon, lambda status: True, "the daemon's API")
            (results_directory / "daemon-ready").touch()

            def big_running(status: dict[str, Any]) -> bool:
                job = _bay(status, "bay-1")["job"]
                return bool(job and job["state"] in ("running", "verifying") and job["done"] > 0)

            _wait(client, daemon, big_running, "bay-1 to be wiping")
            (results_directory / "big-running").touch()
            # the pulled drive's outcome is no longer the bay's (the bay is empty): it is the previous drive's
            status = _wait(client, daemon, lambda s: bool(_bay(s, "bay-1")["previous"] and _bay(s, "bay-2")["outcome"]),
                           "both outcomes")
            pulled, small = _bay(status, "bay-1"), _bay(status, "bay-2")["outcome"]
            big = pulled["previous"]
            assert pulled["state"] == "empty" and pulled["outcome"] is None, pulled
            assert (big["outcome"], big["error_code"], big["route"]) == ("failed", "drive_removed", "hold"), big
            assert big["label"] == "previous drive S/N DAEMONBIG: failed", big
            assert small["outcome"] == "sanitised" and small["method"] == "overwrite.zero", small
            started = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            assert daemon.wait(15) == 0
            assert time.monotonic() - started < 10
        finally:
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
