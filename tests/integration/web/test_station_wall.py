"""The bay wall's stream and actions against the real API server: a change within one poll, bounded streams,
no impersonation through the daemon, the console's entries in the station's audit chain."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.api.server import ApiServer
from agent.store.registry import Registry
from agent.web.accounts import Accounts, Role
from agent.web.server import Console
from agent.web.station import station_console
from tests.integration.daemon.conftest import Daemon
from tests.integration.web.station_kit import FakeStation, bay, serve_fake, station_config
from tests.web_kit import Client, ConsoleServer

pytestmark = pytest.mark.root
MiB = 1 << 20
PASSWORD = "correct horse battery"


class Stream:
    """``GET /events`` read line by line (a socket timeout bounds every read)."""

    def __init__(self, url: str, cookies: dict[str, str] | None = None) -> None:
        headers = {"Accept": "text/event-stream"}
        if cookies:
            headers["Cookie"] = "; ".join(f"{key}={value}" for key, value in cookies.items())
        self.response = urllib.request.urlopen(urllib.request.Request(url + "/events", headers=headers), timeout=5)

    def event(self) -> dict[str, Any]:
        data = None
        while True:
            line = self.response.readline().decode()
            if not line:
                raise AssertionError("stream ended")
            if line.startswith("data: "):
                data = dict(json.loads(line[6:]))
            elif line == "\n" and data is not None:
                return data

    def close(self) -> None:
        self.response.close()


Wall = tuple[FakeStation, ConsoleServer, ApiServer, Console]


@pytest.fixture
def fake_wall() -> Iterator[Wall]:
    fake = FakeStation([bay("bay-1", "present"), bay("bay-2", "empty")])
    api, socket_path = serve_fake(fake)
    config = station_config(socket_path, 2)
    console = station_console(config, accounts=Accounts(Path(tempfile.mkdtemp()) / "a.json"), kiosk=True,
                              secure=False, max_clients=2)
    server = ConsoleServer(console.application()).start()
    yield fake, server, api, console
    server.stop()
    api.close()  # (again, after a test closed it: shutdown and unlink are idempotent)


def test_a_change_reaches_the_stream_within_one_poll_and_nothing_is_sent_while_nothing_changes(
        fake_wall: Wall) -> None:
    fake, server, _, console = fake_wall
    feed = console.wall_feed  # type: ignore[attr-defined]
    stream = Stream(server.base)
    try:
        first = stream.event()
        assert set(first["tiles"]) == {"bay-1", "bay-2"} and first["connected"] is True  # the whole wall first
        assert 'data-state="present"' in first["tiles"]["bay-1"] and first["banner"] is None
        polls = feed.polls
        fake.set(0, bay("bay-1", "running", progress=0.1))
        changed = stream.event()
        assert list(changed["tiles"]) == ["bay-1"]  # only the tile that changed
        assert 'data-state="running"' in changed["tiles"]["bay-1"] and "DO NOT PULL" in changed["tiles"]["bay-1"]
        assert feed.polls <= polls + 2  # the poll after the change (one may have been on its way)
        quiet_from = feed.polls
        stream.response.fp.raw._sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            stream.event()  # a second of unchanged status: no event (heartbeats come every 15 s)
        assert feed.polls >= quiet_from + 2  # it was polling all along
    finally:
        stream.close()


def test_streams_are_bounded_and_a_closed_one_frees_its_place(fake_wall: Wall) -> None:
    fake, server, _, _ = fake_wall
    streams = [Stream(server.base), Stream(server.base)]
    for stream in streams:
        stream.event()
    with pytest.raises(urllib.error.HTTPError) as refused:
        Stream(server.base)
    assert refused.value.code == 503
    refused.value.close()
    streams.pop().close()
    fake.set(1, bay("bay-2", "present"))  # the server learns of a closed stream when it next writes to it
    deadline = time.monotonic() + 5
    while True:
        try:
            streams.append(Stream(server.base))
            break
        except urllib.error.HTTPError as error:
            error.close()
            assert error.code == 503 and time.monotonic() < deadline
            fake.set(1, bay("bay-2", "empty" if fake.bays[1]["state"] == "present" else "present"))
            time.sleep(0.3)
    assert streams[-1].event()["tiles"]
    for stream in streams:
        stream.close()


def test_the_wall_says_unknown_not_safe_while_the_daemon_is_away(fake_wall: Wall) -> None:
    _, server, api, _ = fake_wall
    stream = Stream(server.base)
    try:
        first = stream.event()
        assert "SAFE TO PULL" in first["tiles"]["bay-1"]
        api.close()  # the daemon's socket is gone
        lost = stream.event()
        assert lost["connected"] is False and lost["banner"].startswith("daemon restarting… reconnecting")
        assert all('data-pull="unknown"' in html and "SAFE TO PULL" not in html for html in lost["tiles"].values())
    finally:
        stream.close()


# the real daemon ---------------------------------------------------------------------------------------
def _configure(daemon: Daemon) -> None:
    """The API group a second user is in (nogroup: nobody's), and root as the console's user; then the daemon
    started and its drive seated in bay-1."""
    text = daemon.config.read_text()
    daemon.config.write_text('api_group = "nogroup"\n' + text + '[web]\nconsole_user = "root"\n')
    os.chmod(daemon.directory, 0o755)  # nobody must reach the socket to be refused by the daemon itself
    daemon.start()
    daemon.backings[0].attach()
    daemon.wait_for(lambda s: s["bays"][0]["state"] == "present", timeout=10, what="drive present")


_AS_NOBODY = r'''
import http.client, json, socket, sys
class C(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(sys.argv[1])
out = {}
for path, body in json.loads(sys.argv[2]):
    c = C("localhost", timeout=10)
    c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
    r = c.getresponse(); out[path] = [r.status, json.loads(r.read())]
print(json.dumps(out))
'''


def test_another_member_of_the_api_group_cannot_act_or_audit_as_a_web_account(
        station: Callable[..., Daemon]) -> None:
    daemon = station([16 * MiB], auto_start=False)
    _configure(daemon)
    calls = [["/v1/bays/bay-1/start", {"profile": "nist-clear-overwrite",
                                        "console": {"account": "asmith", "title": "Senior operator"}}],
             ["/v1/bays/bay-1/cancel", {"console": {"account": "asmith", "title": "Senior operator"}}],
             ["/v1/console/audit", {"kind": "web-sign-in", "subject": "asmith", "data": {}}]]
    result = subprocess.run(["/usr/bin/python3", "-c", _AS_NOBODY, str(daemon.socket), json.dumps(calls)], user=65534,
                            group=65534, extra_groups=[], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout)
    for path, (status, body) in answers.items():
        assert status == 403 and body["error"]["code"] == "forbidden", (path, body)
        assert "not the web console's user root" in body["error"]["message"]
    status = daemon.status()
    assert status["bays"][0]["state"] == "present" and status["bays"][0]["job"] is None  # nothing started
    registry = Registry(daemon.state_dir).open()
    try:
        assert not [entry for entry in registry.audit.entries() if entry.kind.startswith("web-")]
        assert registry.jobs(5) == []
    finally:
        registry.close()


def test_console_sign_ins_and_starts_are_in_the_station_chain_and_the_job_names_the_web_account(
        station: Callable[..., Daemon], tmp_path: Path) -> None:
    daemon = station([16 * MiB], auto_start=False)
    _configure(daemon)
    accounts = Accounts(tmp_path / "accounts.json")
    accounts.add("asmith", Role.OPERATOR, "Senior operator", PASSWORD)
    accounts.add("vauditor", Role.AUDITOR, "Auditor", PASSWORD)
    from agent.config import load_config

    console = station_console(load_config(daemon.config), accounts=accounts, kiosk=True, secure=False)
    server = ConsoleServer(console.application()).start()
    try:
        viewer = Client(server).signed_in("vauditor", PASSWORD)
        page = viewer.get("/")
        assert page.status == 200 and "/bays/bay-1/start" not in page.body  # an auditor sees no actions
        refused = viewer.post("/bays/bay-1/start", {"csrf": viewer.session_token(), "profile": "x"})
        assert refused.status == 403
        operator = Client(server).signed_in("asmith", PASSWORD)
        token = operator.session_token()
        bad = operator.post("/bays/bay-1/start", {"csrf": token, "profile": "nist-purge-anything"},
                            headers={"Accept": "application/json"})
        assert bad.status == 409 and "not offered here" in json.loads(bad.body)["message"]
        started = operator.post("/bays/bay-1/start", {"csrf": token, "profile": "nist-clear-overwrite"},
                                headers={"Accept": "application/json"})
        assert started.status == 200, started.body
        final = daemon.wait_for(lambda s: s["bays"][0]["state"] == "sanitised", what="sanitised")
        assert final["bays"][0]["outcome"]["job_id"]
    finally:
        server.stop()
    registry = Registry(daemon.state_dir).open()
    try:
        web = [(entry.kind, entry.subject, entry.data) for entry in registry.audit.entries()
               if entry.kind.startswith("web-")]
        kinds = [kind for kind, _, _ in web]
        assert kinds[:2] == ["web-sign-in", "web-sign-in"] and "web-bay-start" in kinds, kinds
        start = next(data for kind, _, data in web if kind == "web-bay-start")
        assert start["account"] == "asmith" and start["profile"] == "nist-clear-overwrite"
        assert all(data["console_uid"] == 0 for _, _, data in web)  # the console's uid, as the kernel said
        assert registry.audit.verify().valid
        job = registry.jobs(1)[0]
        assert (job.operator, job.operator_title, job.operator_via, job.operator_uid) == (
            "asmith", "Senior operator", "the web console", 0)
    finally:
        registry.close()


def test_a_cancel_from_the_console_names_the_web_account_and_a_viewer_cannot_cancel(
        station: Callable[..., Daemon], tmp_path: Path) -> None:
    daemon = station([1024 * MiB], profile="nist-clear-overwrite-full", auto_start=False)
    _configure(daemon)
    accounts = Accounts(tmp_path / "accounts.json")
    accounts.add("asmith", Role.OPERATOR, "Senior operator", PASSWORD)
    from agent.config import load_config

    server = ConsoleServer(station_console(load_config(daemon.config), accounts=accounts, kiosk=True,
                                          secure=False).application()).start()
    try:
        operator = Client(server).signed_in("asmith", PASSWORD)
        token = operator.session_token()
        started = operator.post("/bays/bay-1/start", {"csrf": token, "profile": "nist-clear-overwrite-full"},
                                headers={"Accept": "application/json"})
        assert started.status == 200, started.body
        running = daemon.wait_for(lambda s: (s["bays"][0]["job"] or {}).get("state") == "running", timeout=20,
                                  what="running")
        assert running["bays"][0]["job"]["operator"] == "asmith (Senior operator) via the web console, uid 0"
        anonymous = Client(server)  # the kiosk shows the wall to anyone, and acts for no one
        assert anonymous.post("/bays/bay-1/cancel", {"csrf": "x"}).status in (401, 403)
        missing_token = operator.post("/bays/bay-1/cancel", {"csrf": "wrong"})
        assert missing_token.status == 403
        cancelled = operator.post("/bays/bay-1/cancel", {"csrf": token})  # the form, without JS
        assert cancelled.status == 303 and cancelled.header("Location") == "/"
        assert "bay-1: cancelling" in operator.get("/").body  # the outcome, shown once
        daemon.wait_for(lambda s: s["bays"][0]["state"] == "interrupted", what="interrupted")
        cancel_line = next(line for line in daemon.log.read_text().splitlines() if "job cancelled" in line)
        assert "asmith (Senior operator) via the web console, uid 0" in cancel_line
    finally:
        server.stop()
    registry = Registry(daemon.state_dir).open()
    try:
        kinds = [entry.kind for entry in registry.audit.entries() if entry.kind.startswith("web-")]
        assert kinds == ["web-sign-in", "web-bay-start", "web-bay-cancel"], kinds
    finally:
        registry.close()


def test_the_page_works_without_javascript_and_keeps_to_the_csp(fake_wall: Wall) -> None:
    import re

    _, server, _, _ = fake_wall
    reply = Client(server).get("/")
    page = reply.body
    assert reply.status == 200 and "script-src 'self'" in (reply.header("Content-Security-Policy") or "")
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in page  # no JS: the page refreshes
    assert page.count('class="tile ') == 2 and 'data-state="present"' in page  # tiles rendered on the server
    assert " style=" not in page and not re.search(r"<script(?![^>]*\bsrc=)", page)  # nothing inline
    assert "/bays/bay-1/start" not in page  # the kiosk, signed out: no actions


def test_a_quiet_stream_carries_heartbeats_and_a_signed_out_session_s_stream_ends(tmp_path: Path) -> None:
    fake = FakeStation([bay("bay-1", "present")])
    api, socket_path = serve_fake(fake)
    accounts = Accounts(tmp_path / "accounts.json")
    accounts.add("vauditor", Role.AUDITOR, "Auditor", PASSWORD)
    audit: list[str] = []
    console = station_console(station_config(socket_path, 1), accounts=accounts, kiosk=False, secure=False,
                              heartbeat=0.3)
    console.audit = type("Sink", (), {"record": lambda self, kind, subject, data: audit.append(kind)})()
    server = ConsoleServer(console.application()).start()
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            Stream(server.base)  # not a kiosk: no stream without signing in
        assert refused.value.code == 401
        refused.value.close()
        viewer = Client(server).signed_in("vauditor", PASSWORD)
        stream = Stream(server.base, viewer.cookies)
        try:
            stream.event()
            assert stream.response.readline() == b": heartbeat\n"  # nothing changed: a comment keeps it open
            assert viewer.post("/sign-out", {"csrf": viewer.session_token()}).status == 303
            fake.set(0, bay("bay-1", "running", progress=0.2))  # the next change finds the session gone
            with pytest.raises(AssertionError, match="stream ended"):
                for _ in range(5):
                    stream.event()
        finally:
            stream.close()
        assert audit == ["web-sign-in", "web-sign-out"]
    finally:
        server.stop()
        api.close()


def _open_stream(server: ConsoleServer, source: str, cookies: dict[str, str] | None = None) -> Any:
    """``GET /events`` from the loopback address ``source`` (another address is another client); the
    connection (kept open while the stream is) and its status."""
    import http.client

    connection = http.client.HTTPConnection(server.host, server.port, timeout=5, source_address=(source, 0))
    headers = {"Accept": "text/event-stream"}
    if cookies:
        headers["Cookie"] = "; ".join(f"{key}={value}" for key, value in cookies.items())
    connection.request("GET", "/events", headers=headers)
    response = connection.getresponse()
    if response.status != 200:
        response.read()
    return connection, response.status


def test_one_address_or_the_kiosk_s_anonymous_viewers_cannot_take_every_live_view(tmp_path: Path) -> None:
    fake = FakeStation([bay("bay-1", "present")])
    api, socket_path = serve_fake(fake)
    accounts = Accounts(tmp_path / "a.json")
    accounts.add("vauditor", Role.AUDITOR, "Viewer", PASSWORD)
    console = station_console(station_config(socket_path, 1), accounts=accounts, kiosk=True, secure=False,
                              max_clients=8)  # 2 places kept for signed-in sessions, 4 per address
    server = ConsoleServer(console.application()).start()
    held: list[Any] = []
    try:
        statuses = []
        for _ in range(5):  # one address: four streams, the fifth refused
            connection, status = _open_stream(server, "127.0.0.2")
            held.append(connection)
            statuses.append(status)
        assert statuses == [200, 200, 200, 200, 503]
        for source, expected in (("127.0.0.3", 200), ("127.0.0.4", 200), ("127.0.0.5", 503)):
            connection, status = _open_stream(server, source)  # six anonymous in all; then only signed-in
            held.append(connection)
            assert status == expected, source
        viewer = Client(server).signed_in("vauditor", PASSWORD)
        connection, status = _open_stream(server, "127.0.0.6", viewer.cookies)
        held.append(connection)
        assert status == 200  # a signed-in viewer still gets a place the anonymous flood could not take
    finally:
        for connection in held:
            connection.close()
        server.stop()
        api.close()


@pytest.mark.parametrize("change", ["remove", "demote"])
def test_a_removed_or_changed_account_s_open_stream_ends_without_another_request(tmp_path: Path, change: str) -> None:
    fake = FakeStation([bay("bay-1", "present")])
    api, socket_path = serve_fake(fake)
    accounts = Accounts(tmp_path / "accounts.json")
    accounts.add("asmith", Role.OPERATOR, "Operator", PASSWORD)
    console = station_console(station_config(socket_path, 1), accounts=accounts, kiosk=False, secure=False,
                              heartbeat=0.3)
    console.audit = type("Sink", (), {"record": lambda self, kind, subject, data: None})()
    server = ConsoleServer(console.application()).start()
    try:
        operator = Client(server).signed_in("asmith", PASSWORD)
        stream = Stream(server.base, operator.cookies)
        try:
            assert 'class="bay-action"' in stream.event()["tiles"]["bay-1"]  # the operator's actions and token
            editor = Accounts(tmp_path / "accounts.json")  # `web account remove` in another process
            if change == "remove":
                editor.remove("asmith")
            else:
                editor.add("asmith", Role.AUDITOR, "Operator", PASSWORD, replace=True)
            fake.set(0, bay("bay-1", "running", progress=0.2))
            deadline = time.monotonic() + 5  # heartbeats every 0.3 s: a stream that goes on never ends by itself
            while stream.response.readline():  # the stream makes no request: it must notice the account itself
                assert time.monotonic() < deadline, "the stream goes on for an account that changed"
        finally:
            stream.close()
    finally:
        server.stop()
        api.close()
