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
REPO = Path(__file__).resolve().parents[3]  # the CLI run as another user imports this tree, as run_cli does


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


def test_operator_sign_in_run_by_a_non_root_user_goes_through_the_daemon(
        served: tuple[Station, Path, int], tmp_path: Path) -> None:
    """The real command line as ``nobody`` (primary group: the API group, as the other socket tests run
    it): it cannot open the registry, so it asks the daemon, which signs in nobody's uid."""
    import os
    import subprocess

    from tests.conftest import WIPE_AGENT, skip_unless_user_can_run_checkout

    station, socket_path, gid = served
    config = socket_path.parent / "station.toml"  # in the socket's 0755 directory: nobody can read it there
    config.write_text(f'station_id = "s1"\nstate_dir = "{station.config.state_dir}"\napi_socket = "{socket_path}"\n')
    config.chmod(0o644)
    nobody = pwd.getpwnam("nobody")
    skip_unless_user_can_run_checkout(nobody.pw_uid, gid)
    result = subprocess.run([*WIPE_AGENT, "--config", str(config), "operator", "sign-in", "PC Dana Reid", "--title",
                             "Wipe technician", "--json"], capture_output=True, text=True, timeout=60,
                            user=nobody.pw_uid, group=gid, extra_groups=[],
                            env={**os.environ, "HOME": "/nonexistent"}, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["uid"] == nobody.pw_uid
    assert station._registry is not None
    [active] = Operators(station._registry).active()
    assert (active.name, active.uid) == ("PC Dana Reid", nobody.pw_uid)
    # and out again, by the same way; another's NAME is root's to sign out
    refused = subprocess.run([*WIPE_AGENT, "--config", str(config), "operator", "sign-out", "Someone Else"],
                             capture_output=True, text=True, timeout=60, user=nobody.pw_uid, group=gid,
                             extra_groups=[], env={**os.environ, "HOME": "/nonexistent"}, cwd=REPO)
    assert refused.returncode != 0 and "sign out yourself only" in refused.stderr
    ended = subprocess.run([*WIPE_AGENT, "--config", str(config), "operator", "sign-out"], capture_output=True,
                           text=True, timeout=60, user=nobody.pw_uid, group=gid, extra_groups=[],
                           env={**os.environ, "HOME": "/nonexistent"}, cwd=REPO)
    assert ended.returncode == 0 and "PC Dana Reid signed out" in ended.stdout, ended.stderr
