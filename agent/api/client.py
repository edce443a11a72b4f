"""Client of the station API: HTTP/1.0 over the daemon's Unix socket (used by the CLI)."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any

from agent.errors import AgentError, ConfigError


class StationUnavailable(ConfigError):
    """The daemon is not running (or this user may not connect to its socket)."""

    code = "daemon_unavailable"


class RemoteError(AgentError):
    """The daemon refused a request; ``code`` is its stable error code."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code  # the daemon's, as it sent it: a newer daemon may send a code this client does not know
        self.status = status
        self.http_status = status
        self.exit_code = 2 if 400 <= status < 500 else 1


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class ApiClient:
    """``get``/``post`` JSON to the station; raises :class:`RemoteError` with the daemon's code."""

    def __init__(self, socket_path: str | Path, timeout: float = 10.0) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """One request; the parsed JSON response."""
        connection = _UnixConnection(self.socket_path, self.timeout)
        try:
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload is not None else {}
            try:
                connection.request(method, path, body=payload, headers=headers)
                response = connection.getresponse()
                raw = response.read()
            except FileNotFoundError:
                raise StationUnavailable(f"station daemon not running (no socket {self.socket_path})") from None
            except ConnectionRefusedError:
                raise StationUnavailable(f"station daemon not running: nothing listens on {self.socket_path}") from None
            except PermissionError:
                raise StationUnavailable(f"{self.socket_path}: permission denied (not in wipe-operators?)") from None
            except (OSError, http.client.HTTPException) as exc:
                raise StationUnavailable(f"station daemon at {self.socket_path}: {exc}") from exc
        finally:
            connection.close()
        try:
            data = json.loads(raw)
        except ValueError:
            raise RemoteError("bad_response", f"daemon sent non-JSON (HTTP {response.status})", 500) from None
        if response.status >= 400:
            error = data.get("error", {}) if isinstance(data, dict) else {}
            raise RemoteError(str(error.get("code", "internal")), str(error.get("message", "request failed")),
                              response.status)
        if not isinstance(data, dict):
            raise RemoteError("bad_response", "daemon sent a non-object", 500)
        return data

    def get(self, path: str) -> dict[str, Any]:
        """Read-only query."""
        return self.request("GET", path)

    def post(self, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """State-changing call."""
        return self.request("POST", path, body or {})
