"""M7: an operator who is not root signs in through the daemon's socket, as the uid the kernel reports
(SO_PEERCRED), on a real Station behind a real ApiServer; the daemon's own registry keeps working."""

from __future__ import annotations

import grp
import json
import pwd
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.api.server import ApiServer
from agent.audit.log import AuditLog
from agent.daemon.station import Station
from agent.operators import VIA_API, Operators
from agent.store.registry import Registry
from tests.unit.daemon.test_api import _connect_as_nobody
from tests.unit.daemon.test_bays import IDENTITY, _station

pytestmark = pytest.mark.root


def _post(path: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            .encode() + data)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Station, Path, int]]:
    group = grp.getgrnam("disk")  # stands in for wipe-operators (the test adds no group to the machine)
    directory = Path(tempfile.mkdtemp(prefix="wa-api-", dir="/tmp"))
    directory.chmod(0o755)
    station = _station(tmp_path / "state")
    server = ApiServer(directory / "api.sock", station, group.gr_name)
    try:
        yield station, directory / "api.sock", group.gr_gid
    finally:
        server.close()
        assert station._registry is not None
        station._registry.close()
        for leftover in directory.iterdir():
            leftover.unlink()
        directory.rmdir()


def test_a_non_root_member_signs_in_through_the_socket_as_their_own_uid(served: tuple[Station, Path, int]) -> None:
    station, socket_path, gid = served
    nobody = pwd.getpwnam("nobody").pw_uid
    request = _post("/v1/operators/sign-in", {"name": "PC Dana Reid", "title": "Wipe technician",
                                              "bays": ["bay-1"], "shift_hours": 8})
    answer = _connect_as_nobody(socket_path, gid=gid, request=request, length=4096)
    assert answer.startswith("HTTP/1.0 200"), answer
    data = json.loads(answer.split("\r\n\r\n", 1)[1])
    assert (data["name"], data["uid"], data["bays"]) == ("PC Dana Reid", nobody, ["bay-1"])
    assert station._registry is not None
    [active] = Operators(station._registry).active()
    assert (active.name, active.uid) == ("PC Dana Reid", nobody)
    # jobs that uid starts through the socket now name her
    assert station._stamp(VIA_API, nobody, None).name == "PC Dana Reid"
    # the daemon's own long-lived connection still writes (a second Registry on the API thread used to
    # drop its locks: "disk I/O error" on the next job's journal)
    job = station._registry.create_job(IDENTITY, "nist-purge", "x", "test")
    station._registry.transition(job, "checking", "guard")
    assert AuditLog(station._registry.db).verify().valid
    kinds = [entry.kind for entry in AuditLog(station._registry.db).entries()]
    assert "operator-sign-in" in kinds

    ended = _connect_as_nobody(socket_path, gid=gid, request=_post("/v1/operators/sign-out", {}), length=4096)
    assert ended.startswith("HTTP/1.0 200") and "PC Dana Reid" in ended, ended
    assert Operators(station._registry).active() == []


@pytest.mark.parametrize(("body", "status"), [
    ({"name": "PC Dana Reid", "title": "T", "uid": 0}, "HTTP/1.0 400"),   # no uid from the client: the kernel's
    ({"name": "PC Dana Reid", "title": "T", "bays": ["bay-99"]}, "HTTP/1.0 404"),
    ({"name": "PC Dana Reid", "title": "T", "shift_hours": 1e-300}, "HTTP/1.0 400"),
    ({"name": "PC Dana Reid", "title": "T", "shift_hours": True}, "HTTP/1.0 400"),
    ({"name": "PC Dana Reid"}, "HTTP/1.0 400"),
])
def test_bad_sign_in_requests_are_refused_and_record_nothing(served: tuple[Station, Path, int], body: dict,
                                                            status: str) -> None:
    station, socket_path, gid = served
    answer = _connect_as_nobody(socket_path, gid=gid, request=_post("/v1/operators/sign-in", body), length=4096)
    assert answer.startswith(status), answer
    registry = Registry(station.config.state_dir).open()
    try:
        assert Operators(registry).active() == []
    finally:
        registry.close()
