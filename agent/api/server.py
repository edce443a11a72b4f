"""The station's local HTTP/JSON API on a Unix socket.

Who may call: the socket is mode 0660, group ``wipe-operators`` (so other users cannot even
connect), and each connection's caller is identified by ``SO_PEERCRED`` — the uid the kernel vouches
for, never a name the client sends — and recorded as the operator. A caller that is not root, not
the daemon's own user and not in the group is refused with 403 even if the file mode was loosened.

``GET`` is read-only; ``POST`` changes state. Every error is JSON ``{"error": {"code", "message"}}``
with a 4xx/5xx status and a stable code; a handler's exception never reaches the serving loop.

==========================  ======  ===================================================
path                        method  does
==========================  ======  ===================================================
/v1/health                  GET     liveness
/v1/status                  GET     bays, drives, jobs, progress, rate, ETA, outcome
/v1/jobs?limit=N            GET     recent jobs
/v1/jobs/{id}               GET     one job with its journal
/v1/claims?dev_t=N&diskseq  GET     which bay holds the medium with this kernel identity (CLI ``wipe``)
/v1/bays/{bay}/start        POST    {"profile", "serial", "console": optional} queue a job for the bay's drive
/v1/bays/{bay}/cancel       POST    {"console": optional} cancel the bay's job: queued or running (→ interrupted)
/v1/jobs/{id}/cancel        POST    cancel a queued or running job by id (prefix)
/v1/intake                  POST    {"bay", "asset_tag", "host_serial", "make", "model"}
/v1/operators/sign-in       POST    {"name", "title", "bays": [..] or "all", "shift_hours"} for the caller's uid
/v1/operators/sign-out      POST    end the caller's own sign-in
/v1/console/audit           POST    {"kind": "web-…", "subject", "data"}: the web console's audit entry
==========================  ======  ===================================================

The web console is one uid for many people. A start or cancel may carry ``"console": {"account",
"title"}``, the web account signed in at the console; the station honours it only when the caller's
``SO_PEERCRED`` uid is its ``[web] console_user`` (:meth:`agent.daemon.station.Station.console_stamp`),
and the same holds for ``/v1/console/audit``: another member of the API group is refused (403), never
recorded as someone else.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import socket
import socketserver
import stat
import struct
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from agent.errors import AgentError, RequestRefused
from agent.jsontext import JsonInputError, parse_json
from agent.operators import ConsoleAccount
from certs.files import make_private_directory

MAX_BODY = 64 * 1024
SOCKET_DIRECTORY_MODE = 0o755  # what systemd's RuntimeDirectory gives it: the socket's own 0660 decides who calls
MAX_BODY_DEPTH = 8  # the deepest body any endpoint takes is a flat object (1)
REQUEST_TIMEOUT = 10.0  # for the whole request: a client trickling bytes cannot hold its thread longer
MAX_CONNECTIONS = 32  # connections served at once; more are answered 503 at once and closed


class StationService(Protocol):
    """What the API needs from the station (``agent.daemon.station.Station`` provides it)."""

    def status(self) -> dict[str, Any]: ...
    def jobs(self, limit: int) -> dict[str, Any]: ...
    def job(self, job_id: str) -> dict[str, Any]: ...
    def start_bay(self, name: str, profile: str | None, operator: str, serial: str | None = None, *,
                  caller_uid: int | None = None, console: ConsoleAccount | None = None) -> dict[str, Any]:
        ...
    def cancel(self, job_id: str, operator: str) -> dict[str, Any]: ...
    def cancel_bay(self, name: str, operator: str, *, caller_uid: int | None = None,
                   console: ConsoleAccount | None = None) -> dict[str, Any]:
        ...
    def console_audit(self, kind: str, subject: str, data: dict[str, Any], *, caller_uid: int) -> dict[str, Any]:
        ...
    def intake(self, bay: str, asset_tag: str, host_serial: str | None, make: str | None,
               model: str | None, operator: str) -> dict[str, Any]: ...
    def claims(self, dev_t: int | None, diskseq: int | None, name: str | None) -> dict[str, Any]: ...
    def sign_in(self, name: str, title: str, bays: tuple[str, ...] | None, shift_hours: float, *,
                caller_uid: int) -> dict[str, Any]:
        ...
    def sign_out(self, *, caller_uid: int) -> dict[str, Any]: ...


class ApiError(RequestRefused):
    """An API-level refusal; ``code`` is one of ``RequestRefused.codes``, whose declared status it is answered with."""

    http_status = 400


class Caller:
    """The peer of one connection, as the kernel reports it."""

    def __init__(self, pid: int, uid: int, gid: int) -> None:
        self.pid, self.uid, self.gid = pid, uid, gid
        try:
            self.name = pwd.getpwuid(uid).pw_name
        except KeyError:
            self.name = f"uid:{uid}"

    def in_group(self, group: str) -> bool:
        """True when the caller is root, the daemon's own user, or a member of ``group``."""
        if self.uid in (0, os.geteuid()):
            return True
        try:
            gid = grp.getgrnam(group).gr_gid
        except KeyError:
            return False
        if self.gid == gid:
            return True
        try:
            return gid in os.getgrouplist(self.name, self.gid)
        except (KeyError, OSError):
            return False


def peer_credentials(connection: socket.socket) -> Caller:
    """``SO_PEERCRED``: pid, uid, gid of the process that connected."""
    raw = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Caller(pid, uid, gid)


def _text(body: dict[str, Any], key: str, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise ApiError("bad_request", f"{key!r} is required")
        return None
    if not isinstance(value, str):
        raise ApiError("bad_request", f"{key!r} must be a string")
    if len(value) > 256:
        raise ApiError("bad_request", f"{key!r} is longer than 256 characters")
    return value


def _only(body: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise ApiError("unknown_field", f"unknown field(s) {sorted(unknown)} (allowed: {sorted(allowed)})")


class _Handler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.0"
    server_version = "wipe-agent"
    sys_version = ""

    def setup(self) -> None:
        timeout = self.server.request_timeout
        self.request.settimeout(timeout)  # a silent client cannot hold a thread forever
        # and one that sends a byte just before each recv times out (slowloris) cannot either: at
        # the deadline the socket is shut down, the pending read returns end-of-file, the thread ends
        self._deadline = threading.Timer(timeout, self._expire)
        self._deadline.daemon = True
        self._deadline.start()
        super().setup()

    def _expire(self) -> None:
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed

    def finish(self) -> None:
        self._deadline.cancel()
        try:
            super().finish()
        except OSError:
            pass  # the client (or the deadline) closed the connection first

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        return  # requests are not worth a journal line each; errors are logged by the station

    def _send(self, status: int, data: dict[str, Any]) -> None:
        body = json.dumps(data, sort_keys=True, default=str).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the caller went away

    def _error(self, error: AgentError) -> None:
        self._send(error.http_status, {"error": error.to_json()})

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (malformed request line, bad headers) as JSON too."""
        self.close_connection = True
        self.request_version = self.protocol_version  # answer with a status line even to garbage
        self._send(code, {"error": {"code": "bad_request" if code < 500 else "internal",  # registered codes
                                    "message": message or "malformed HTTP request"}})

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _body(self) -> dict[str, Any]:
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            return {}
        try:
            length = int(length_text)
        except ValueError:
            raise ApiError("bad_request", "Content-Length is not a number") from None
        if length < 0:
            raise ApiError("bad_request", "Content-Length is negative")
        if length > MAX_BODY:
            raise ApiError("payload_too_large", f"request body over {MAX_BODY} bytes")
        try:
            raw = self.rfile.read(length) if length else b""
        except OSError:  # the request deadline passed mid-body, or the client reset
            raise ApiError("bad_request", "request body not received in time") from None
        if len(raw) < length:
            raise ApiError("bad_request", f"request body ended after {len(raw)} of {length} bytes")
        if not raw:
            return {}
        try:
            data = parse_json(raw, MAX_BODY_DEPTH)
        except JsonInputError as exc:
            code = {"too_deep": "json_too_deep", "not_utf8": "not_utf8"}.get(exc.reason, "bad_json")
            raise ApiError(code, f"request body is {exc.message}" if exc.reason != "not_json"
                           else "request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError("bad_json", "request body must be a JSON object")
        _check_text(data)
        return data

    def _dispatch(self, method: str) -> None:
        try:
            caller = peer_credentials(self.request)
            if not caller.in_group(self.server.group):
                raise ApiError("forbidden", f"{caller.name} is not in group {self.server.group}")
            # read the body before any answer: replying first and closing would break the client's send
            body = self._body() if method != "GET" else {}
            # the deadline bounds how long a client may take to *send* its request; the answer (a
            # start runs the guard first) is bounded by the per-operation socket timeout instead
            self._deadline.cancel()
            parts = urlsplit(self.path)
            segments = [segment for segment in parts.path.split("/") if segment]
            result = self._route(method, segments, parse_qs(parts.query), caller, body)
            self._send(200, result)
        except AgentError as error:
            self._error(error)
        except Exception as exc:  # a bug in one handler must never take the daemon down
            self.server.on_error(exc)
            self._error(AgentError(f"internal error: {type(exc).__name__}"))

    def _route(self, method: str, segments: list[str], query: dict[str, list[str]], caller: Caller,
               body: dict[str, Any]) -> dict[str, Any]:
        service = self.server.service
        if len(segments) < 2 or segments[0] != "v1":
            raise ApiError("not_found", f"no such endpoint {self.path[:100]!r}")
        rest = segments[1:]
        reads: dict[tuple[str, ...], Callable[[], dict[str, Any]]] = {}
        if rest == ["health"]:
            reads[()] = lambda: {"ok": True}
        elif rest == ["status"]:
            reads[()] = service.status
        elif rest == ["jobs"]:
            reads[()] = lambda: service.jobs(_limit(query))
        elif len(rest) == 2 and rest[0] == "jobs":
            reads[()] = lambda: service.job(rest[1])
        elif rest == ["claims"]:
            reads[()] = lambda: service.claims(_number(query, "dev_t"), _number(query, "diskseq"),
                                               _name(query))
        if reads:
            if method != "GET":
                raise ApiError("method_not_allowed", f"{method} not allowed here: read-only endpoint (use GET)")
            return reads[()]()
        writes = (len(rest) == 3 and rest[0] == "bays" and rest[2] in ("start", "cancel")) or (
            len(rest) == 3 and rest[0] == "jobs" and rest[2] == "cancel") or rest == ["intake"] or (
            rest in (["operators", "sign-in"], ["operators", "sign-out"], ["console", "audit"]))
        if not writes:
            raise ApiError("not_found", f"no such endpoint {self.path[:100]!r}")
        if method != "POST":
            raise ApiError("method_not_allowed", f"{method} not allowed here: state-changing endpoint (use POST)")
        content_type = self.headers.get("Content-Type", "application/json").split(";")[0].strip()
        if content_type != "application/json":
            raise ApiError("unsupported_media_type", "request body must be application/json")
        if rest == ["console", "audit"]:
            _only(body, {"kind", "subject", "data"})
            data = body.get("data", {})
            if not isinstance(data, dict):
                raise ApiError("bad_request", "'data' must be an object")
            return service.console_audit(_text(body, "kind", True) or "", _text(body, "subject", True) or "",
                                         data, caller_uid=caller.uid)
        if rest[0] == "bays" and rest[2] == "cancel":
            _only(body, {"console"})
            return service.cancel_bay(rest[1], caller.name, caller_uid=caller.uid, console=_console(body))
        if rest[0] == "bays":
            _only(body, {"profile", "serial", "console"})
            # the job is the person's signed in for this uid (agent.operators), never a name the client sends;
            # a web account's name only from the console's own uid (the station checks it)
            return service.start_bay(rest[1], _text(body, "profile"), caller.name, _text(body, "serial"),
                                     caller_uid=caller.uid, console=_console(body))
        if rest[0] == "jobs":
            _only(body, set())
            return service.cancel(rest[1], caller.name)
        if rest == ["operators", "sign-out"]:
            _only(body, set())
            return service.sign_out(caller_uid=caller.uid)
        if rest[0] == "operators":
            # for the caller's own uid, as the kernel reports it: a member of the API group can sign
            # in (and start jobs) as themselves, never for another login
            _only(body, {"name", "title", "bays", "shift_hours"})
            return service.sign_in(_text(body, "name", True) or "", _text(body, "title", True) or "",
                                   _bays(body), _hours(body), caller_uid=caller.uid)
        _only(body, {"bay", "asset_tag", "host_serial", "make", "model"})
        return service.intake(_text(body, "bay", True) or "", _text(body, "asset_tag", True) or "",
                              _text(body, "host_serial"), _text(body, "make"), _text(body, "model"), caller.name)


def _console(body: dict[str, Any]) -> ConsoleAccount | None:
    """``"console": {"account", "title"}``: the web account a console call acts for (absent: None)."""
    value = body.get("console")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError("bad_request", "'console' must be an object with account and title")
    _only(value, {"account", "title"})
    account, title = _text(value, "account", True) or "", _text(value, "title", True) or ""
    return ConsoleAccount(account, title)


def _bays(body: dict[str, Any]) -> tuple[str, ...] | None:
    """``"bays"``: a list of bay names, or ``"all"`` (None); absent: no bays (jobs the caller starts)."""
    value = body.get("bays", [])
    if value == "all":
        return None
    if not isinstance(value, list) or len(value) > 64 or not all(isinstance(item, str) for item in value):
        raise ApiError("bad_request", "'bays' must be a list of bay names or \"all\"")
    return tuple(value)


def _hours(body: dict[str, Any]) -> float:
    from agent.operators import DEFAULT_SHIFT_HOURS

    value = body.get("shift_hours", DEFAULT_SHIFT_HOURS)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ApiError("bad_request", "'shift_hours' must be a number")
    return float(value)


def _name(query: dict[str, list[str]]) -> str | None:
    values = query.get("name")
    return values[-1][:64] if values else None


def _number(query: dict[str, list[str]], key: str) -> int | None:
    values = query.get(key)
    if not values:
        return None
    try:
        number = int(values[-1])
    except ValueError:
        raise ApiError("bad_request", f"{key} must be an integer") from None
    if not 0 <= number < 1 << 64:
        raise ApiError("bad_request", f"{key} out of range")
    return number


def _control_character(text: str) -> str | None:
    for character in text:
        code = ord(character)
        if code < 0x20 or 0x7F <= code < 0xA0 or 0xD800 <= code < 0xE000 or character in _BIDI_CONTROLS:
            return character
    return None


_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _check_text(body: dict[str, Any]) -> None:
    """Every key and string value of a body is printable UTF-8 text.

    JSON can carry what UTF-8 cannot (a lone surrogate, ``"\\ud800"``) and what a terminal or a
    certificate must never receive raw (NUL, ESC, bidi overrides): both are the client's error,
    400, before any handler sees them (a surrogate used to reach SQLite and come back as a 500)."""
    pending: list[Any] = [body]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            bad = _control_character(item)
            if bad is not None:
                code = "not_utf8" if 0xD800 <= ord(bad) < 0xE000 else "bad_request"
                raise ApiError(code, f"request body has a control or non-text character (U+{ord(bad):04X})")


def _limit(query: dict[str, list[str]]) -> int:
    values = query.get("limit", ["50"])
    try:
        limit = int(values[-1])
    except ValueError:
        raise ApiError("bad_request", "limit must be an integer") from None
    if not 1 <= limit <= 1000:
        raise ApiError("bad_request", "limit must be 1..1000")
    return limit


class ApiServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Serves the API on a Unix socket in a background thread; ``close()`` stops it."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, path: Path, service: StationService, group: str,
                 on_error: Callable[[BaseException], None] | None = None, *,
                 request_timeout: float = REQUEST_TIMEOUT, max_connections: int = MAX_CONNECTIONS) -> None:
        self.path = Path(path)
        self.request_timeout = request_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self.service = service
        self.group = group
        self.on_error = on_error or (lambda exc: None)
        # reachable by the API group, writable by nobody else whatever the umask (a 0777 directory would
        # let any user replace the socket with their own)
        make_private_directory(self.path.parent, SOCKET_DIRECTORY_MODE)
        try:
            if stat.S_ISSOCK(os.lstat(self.path).st_mode):
                self.path.unlink()  # stale socket of a previous run
        except FileNotFoundError:
            pass
        old_umask = os.umask(0o117)  # never world-connectable, even for an instant
        try:
            super().__init__(str(self.path), _Handler)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o660)
        try:
            os.chown(self.path, -1, grp.getgrnam(group).gr_gid)
        except (KeyError, PermissionError):
            pass  # no such group here: only root (and the daemon's user) can connect
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="api", daemon=True)
        self._thread.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve in a thread while a slot is free; otherwise answer 503 at once, without a thread."""
        if not self._slots.acquire(blocking=False):
            busy = ApiError("busy", "too many connections to the station API; try again")
            body = json.dumps({"error": busy.to_json()}).encode()
            try:
                request.settimeout(0.5)  # never let a full peer buffer stall the accepting thread
                request.sendall(f"HTTP/1.0 {busy.http_status} Service Unavailable\r\n".encode()
                                + b"Content-Type: application/json\r\n"
                                b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n"
                                + body)
                request.setblocking(False)
                request.recv(MAX_BODY)  # what the client already sent: closing over unread data would reset
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()  # the thread never started: its slot is free again
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """One connection's thread; its slot is released however it ends."""
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            # the slot is free before the client sees the connection close: a client that reconnects
            # at once is never refused because of its own previous connection
            self._slots.release()
            self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Never print tracebacks to stderr from the serving thread; the station logs instead."""
        import sys

        exc = sys.exc_info()[1]
        if exc is not None:
            self.on_error(exc)

    def close(self) -> None:
        """Stop serving, close the socket and remove its file."""
        self.shutdown()
        self._thread.join(5)
        self.server_close()
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
