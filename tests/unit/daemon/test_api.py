"""The Unix-socket API against a fake station: routes, stable error codes, peer credentials."""

from __future__ import annotations

import os
import pwd
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.api.client import ApiClient, RemoteError, StationUnavailable
from agent.api.server import ApiServer, Caller
from agent.errors import AgentError, ProfileError


class FakeStation:
    """Records calls; raises what the test asks."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.start_uids: list[int | None] = []

    def status(self) -> dict[str, Any]:
        return {"bays": []}

    def jobs(self, limit: int) -> dict[str, Any]:
        self.calls.append(("jobs", (limit,)))
        return {"jobs": []}

    def job(self, job_id: str) -> dict[str, Any]:
        if job_id == "boom":
            raise RuntimeError("bug in a handler")
        return {"job_id": job_id}

    def start_bay(self, name: str, profile: str | None, operator: str, serial: str | None = None, *,
                  caller_uid: int | None = None, console: Any = None) -> dict[str, Any]:
        self.calls.append(("start", (name, profile, operator) + ((serial,) if serial else ())))
        self.start_uids.append(caller_uid)  # SO_PEERCRED's uid: whom the station attributes the job to
        if profile == "bogus":
            raise ProfileError("no profile 'bogus'")
        return {"bay": name, "operator": operator}

    def cancel(self, job_id: str, operator: str) -> dict[str, Any]:
        self.calls.append(("cancel", (job_id, operator)))
        return {"job_id": job_id}

    def cancel_bay(self, name: str, operator: str, *, caller_uid: int | None = None,
                   console: Any = None) -> dict[str, Any]:
        self.calls.append(("cancel_bay", (name, operator)))
        return {"bay": name, "job_id": None}

    def intake(self, bay: str, asset_tag: str, host_serial: str | None, make: str | None, model: str | None,
               operator: str) -> dict[str, Any]:
        self.calls.append(("intake", (bay, asset_tag, host_serial, make, model, operator)))
        return {"bay": bay}

    def claims(self, dev_t: int | None, diskseq: int | None, name: str | None) -> dict[str, Any]:
        self.calls.append(("claims", (dev_t, diskseq, name)))
        return {"claimed": dev_t == 7, "bay": "bay-1" if dev_t == 7 else None}


@pytest.fixture
def api() -> Iterator[tuple[ApiClient, FakeStation, Path, list[BaseException]]]:
    directory = Path(tempfile.mkdtemp(prefix="wa-api-", dir="/tmp"))
    station = FakeStation()
    errors: list[BaseException] = []
    server = ApiServer(directory / "api.sock", station, "wipe-operators-test-nonexistent", on_error=errors.append)
    try:
        yield ApiClient(directory / "api.sock", timeout=5), station, directory / "api.sock", errors
    finally:
        server.close()
        directory.rmdir()


def _raw(path: Path, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(5)
        connection.connect(str(path))
        connection.sendall(payload)
        connection.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    return data


def test_reads_and_writes(api: tuple[ApiClient, FakeStation, Path, list[BaseException]]) -> None:
    client, station, path, _ = api
    me = pwd.getpwuid(os.geteuid()).pw_name
    assert client.get("/v1/health") == {"ok": True}
    assert client.get("/v1/status") == {"bays": []}
    assert client.get("/v1/jobs?limit=7") == {"jobs": []}
    assert client.post("/v1/bays/bay-1/start", {"profile": "nist-purge"}) == {"bay": "bay-1", "operator": me}
    client.post("/v1/bays/bay-3/start", {"serial": "S123"})
    client.post("/v1/jobs/abc/cancel")
    client.post("/v1/bays/bay-1/cancel")
    client.post("/v1/intake", {"bay": "bay-2", "asset_tag": "A-1", "make": "Dell"})
    assert station.start_uids == [os.geteuid(), os.geteuid()]
    assert station.calls == [("jobs", (7,)), ("start", ("bay-1", "nist-purge", me)),
                             ("start", ("bay-3", None, me, "S123")), ("cancel", ("abc", me)),
                             ("cancel_bay", ("bay-1", me)),
                             ("intake", ("bay-2", "A-1", None, "Dell", None, me))]
    assert oct(path.stat().st_mode & 0o777) == "0o660"


def test_claims_by_kernel_identity(api: tuple[ApiClient, FakeStation, Path, list[BaseException]]) -> None:
    client, station, _, _ = api
    assert client.get("/v1/claims?dev_t=7&diskseq=12&name=loop3") == {"claimed": True, "bay": "bay-1"}
    assert client.get("/v1/claims?dev_t=8")["claimed"] is False
    assert station.calls == [("claims", (7, 12, "loop3")), ("claims", (8, None, None))]
    for bad in ("dev_t=x", "dev_t=-1", f"diskseq={1 << 64}"):
        with pytest.raises(RemoteError) as error:
            client.get(f"/v1/claims?{bad}")
        assert (error.value.code, error.value.status) == ("bad_request", 400)
    with pytest.raises(RemoteError) as error:
        client.post("/v1/claims", {})
    assert error.value.code == "method_not_allowed"


@pytest.mark.parametrize(
    ("method", "path", "body", "code", "status"),
    [
        ("GET", "/", None, "not_found", 404),
        ("GET", "/v2/status", None, "not_found", 404),
        ("PUT", "/v1/status", None, "method_not_allowed", 405),
        ("GET", "/v1/intake", None, "method_not_allowed", 405),
        ("POST", "/v1/intake", {"bay": "b"}, "bad_request", 400),
        ("POST", "/v1/intake", {"bay": "b", "asset_tag": "x" * 300}, "bad_request", 400),
        ("POST", "/v1/intake", {"bay": "b", "asset_tag": "a", "extra": 1}, "unknown_field", 400),
        ("POST", "/v1/bays/b/start", {"profile": "bogus"}, "bad_profile", 400),
        ("POST", "/v1/jobs/x/cancel", {"force": True}, "unknown_field", 400),
        ("POST", "/v1/bays/b/cancel", {"force": True}, "unknown_field", 400),
        ("GET", "/v1/bays/b/cancel", None, "method_not_allowed", 405),
        ("POST", "/v1/bays/b/start", {"serial": 7}, "bad_request", 400),
        ("GET", "/v1/jobs?limit=0", None, "bad_request", 400),
        ("GET", "/v1/jobs/boom", None, "internal", 500),
    ],
)
def test_errors_have_stable_codes(api: tuple[ApiClient, FakeStation, Path, list[BaseException]], method: str,
                                  path: str, body: dict[str, Any] | None, code: str, status: int) -> None:
    client, _, _, errors = api
    with pytest.raises(RemoteError) as error:
        client.request(method, path, body)
    assert (error.value.code, error.value.status) == (code, status)
    assert client.get("/v1/health") == {"ok": True}  # still alive
    if code == "internal":
        assert isinstance(errors[0], RuntimeError)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"\x00\xff\r\n\r\n", b"HTTP/1.0 400"),
        (b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 200 + b"\r\n", b"HTTP/1.0 431"),
        (b"POST /v1/intake HTTP/1.0\r\nContent-Length: 3\r\n\r\n[1]", b"HTTP/1.0 400"),
        (b"POST /v1/intake HTTP/1.0\r\nContent-Length: -4\r\n\r\n", b"HTTP/1.0 400"),
        (b"POST /v1/intake HTTP/1.0\r\nContent-Length: ten\r\n\r\n", b"HTTP/1.0 400"),
        (b"POST /v1/intake HTTP/1.0\r\nContent-Length: 99999999\r\n\r\n", b"HTTP/1.0 413"),
        (b"POST /v1/intake HTTP/1.0\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}", b"HTTP/1.0 415"),
        (b"POST /v1/intake HTTP/1.0\r\nContent-Length: 4\r\n\r\n\xff\xfe{}", b"HTTP/1.0 400"),
        (b"", b""),
    ],
)
def test_malformed_http_never_kills_the_server(api: tuple[ApiClient, FakeStation, Path, list[BaseException]],
                                               payload: bytes, expected: bytes) -> None:
    client, _, path, _ = api
    assert _raw(path, payload).startswith(expected)
    assert client.get("/v1/health") == {"ok": True}


def test_peer_groups() -> None:
    assert Caller(1, 0, 0).in_group("no-such-group-xyz")  # root
    assert Caller(1, os.geteuid(), 0).in_group("no-such-group-xyz")  # the daemon's own user
    nobody = pwd.getpwnam("nobody")
    assert not Caller(1, nobody.pw_uid, nobody.pw_gid).in_group("no-such-group-xyz")
    assert not Caller(1, nobody.pw_uid, nobody.pw_gid).in_group("root")


def test_client_reports_a_missing_daemon(tmp_path: Path) -> None:
    with pytest.raises(StationUnavailable, match="not running"):
        ApiClient(tmp_path / "none.sock").get("/v1/status")
    assert issubclass(StationUnavailable, AgentError)


def _connect_as_nobody(path: Path, gid: int | None = None, request: bytes = b"GET /v1/status HTTP/1.0\r\n\r\n",
                       length: int = 12) -> str:
    """Fork, drop to ``nobody`` (primary group ``gid`` if given), try the API; report through a pipe."""
    nobody = pwd.getpwnam("nobody")
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        result = b"?"
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid if gid is None else gid)
            os.setuid(nobody.pw_uid)
            result = _raw(path, request)[:length]
        except PermissionError:
            result = b"EACCES"
        except BaseException as exc:
            result = repr(exc).encode()
        finally:
            os.write(write_end, result)
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(child, 0)
    return data.decode()


@pytest.mark.root
def test_users_outside_the_group_cannot_connect_or_are_refused(
        api: tuple[ApiClient, FakeStation, Path, list[BaseException]]) -> None:
    client, _, path, _ = api
    path.parent.chmod(0o755)
    assert _connect_as_nobody(path) == "EACCES"  # 0660 root:wipe-operators: connect() is refused
    path.chmod(0o666)  # even if someone loosens the mode, SO_PEERCRED still says who it is
    assert _connect_as_nobody(path) == "HTTP/1.0 403"
    assert client.get("/v1/health") == {"ok": True}


@pytest.mark.root
def test_a_member_of_the_operators_group_is_served_and_recorded_as_the_operator(tmp_path: Path) -> None:
    """Not root, not the daemon's user: only the group lets ``nobody`` in (a group that exists on any
    Debian stands in for wipe-operators, so the test adds no group to the machine)."""
    import grp

    group = grp.getgrnam("disk")
    directory = Path(tempfile.mkdtemp(prefix="wa-api-", dir="/tmp"))
    directory.chmod(0o755)
    station = FakeStation()
    server = ApiServer(directory / "api.sock", station, group.gr_name)
    try:
        socket_path = directory / "api.sock"
        assert (socket_path.stat().st_gid, socket_path.stat().st_mode & 0o777) == (group.gr_gid, 0o660)
        body = b'{"profile": "nist-purge"}'
        request = (b"POST /v1/bays/bay-1/start HTTP/1.0\r\nContent-Type: application/json\r\n"
                   b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        answer = _connect_as_nobody(socket_path, gid=group.gr_gid, request=request, length=4096)
        assert answer.startswith("HTTP/1.0 200"), answer
        assert station.calls == [("start", ("bay-1", "nist-purge", "nobody"))]
        # the kernel's uid of the caller, not a name it could send, is what the job is attributed by
        assert station.start_uids == [pwd.getpwnam("nobody").pw_uid]
        assert _connect_as_nobody(socket_path) == "EACCES"  # the same user without the group
    finally:
        server.close()
        for leftover in directory.iterdir():
            leftover.unlink()
        directory.rmdir()


def test_the_socket_directory_is_made_without_write_for_others_under_umask_000() -> None:
    """H4's class: under umask 000 the socket's new directory came out 0777, so anyone could replace the socket."""
    import stat as stat_module

    base = Path(tempfile.mkdtemp(prefix="wa-api-", dir="/tmp"))
    previous = os.umask(0)
    try:
        server = ApiServer(base / "run" / "api.sock", FakeStation(), "wipe-operators-test-nonexistent")
    finally:
        os.umask(previous)
    try:
        assert stat_module.S_IMODE((base / "run").stat().st_mode) == 0o755
    finally:
        server.close()
        for leftover in (base / "run").iterdir():
            leftover.unlink()
        (base / "run").rmdir()
        base.rmdir()
