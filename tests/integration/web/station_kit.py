"""Helpers for the bay wall's tests and bench: a station behind the real API server whose bays a test sets (the
console's server, HTTP client and Chromium are tests/web_kit.py's).

``FakeStation`` stands in for the daemon's :class:`~agent.api.server.StationService` only (the API server,
its socket, peer credentials and the console's client are the real ones); the browser tests use the real
daemon (tests/integration/daemon/conftest.py).
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any

from agent.api.server import ApiServer
from agent.config import StationConfig, parse_config


def station_config(socket_path: Path, bays: int, *, console_user: str | None = "root") -> StationConfig:
    """A station.toml with ``bays`` bays (matched by a backing file no test creates) and the console's user."""
    text = f'station_id = "wall-test"\napi_socket = "{socket_path}"\n'
    text += "".join(f'[[bays]]\nname = "bay-{index}"\nmatch = {{ WIPE_BACKING_FILE = "/nonexistent/{index}" }}\n'
                    for index in range(1, bays + 1))
    if console_user is not None:
        text += f'[web]\nconsole_user = "{console_user}"\n'
    return parse_config(text, "station.toml", check_profiles=False)


def bay(name: str, state: str = "empty", *, pull: str | None = None, progress: float | None = None,
        serial: str = "S3Z9NB0K812345X", reason: str | None = None) -> dict[str, Any]:
    """One bay as ``/v1/status`` gives it."""
    present = state != "empty"
    advice = pull or ("bay empty" if not present else "do not pull" if state in ("running", "starting")
                      else "safe to pull")
    job = None
    if state in ("running", "starting", "queued"):
        job = {"state": state, "phase": "overwrite" if state == "running" else None, "overall_progress": progress,
               "eta_seconds": 754.0 if progress is not None else None, "quiet_seconds": 0.5}
    return {"name": name, "state": state, "pull": advice, "safe_to_pull": advice == "safe to pull",
            "reason": reason, "needs_rerun": False, "job": job, "outcome": (
                {"outcome": state, "certificate": "/c.pdf"} if state == "sanitised" else None),
            "drive": {"device": "/dev/sdx", "model": "Samsung SSD 860 EVO 500GB", "serial": serial,
                      "media": "ssd"} if present else None,
            "asset_tag": "PC-004711" if present else None}


class FakeStation:
    """The daemon's service as far as the wall reads it: a status a test changes."""

    def __init__(self, bays: list[dict[str, Any]]) -> None:
        self.bays = bays
        self.lock = threading.Lock()
        self.calls = 0
        self.audit: list[tuple[str, str]] = []

    def set(self, index: int, entry: dict[str, Any]) -> None:
        with self.lock:
            self.bays[index] = entry

    def status(self) -> dict[str, Any]:
        with self.lock:
            self.calls += 1
            return {"station_id": "wall-test", "stopping": False, "running": 0, "queued": 0,
                    "bays": [dict(entry) for entry in self.bays], "unbayed_drives": []}

    def console_audit(self, kind: str, subject: str, data: dict[str, Any], *, caller_uid: int) -> dict[str, Any]:
        with self.lock:
            self.audit.append((kind, subject))
        return {"seq": len(self.audit)}


def serve_fake(station: FakeStation, directory: Path | None = None) -> tuple[ApiServer, Path]:
    """The real API server on a fresh socket, in front of ``station``."""
    where = Path(directory or tempfile.mkdtemp(prefix="wa-wall-", dir="/tmp")) / "api.sock"
    return ApiServer(where, station, "root"), where
