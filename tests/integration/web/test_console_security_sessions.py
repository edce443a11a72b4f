"""Sessions, sign-in and the accounts behind them, on a console served for real (the station's builder; the
fleet's audit chain has its own file)."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from agent.errors import AgentError
from agent.web import sessions
from agent.web.accounts import Accounts, Role
from agent.web.render import render
from agent.web.server import EVERYONE, Console, session_of
from tests.web_kit import PASSWORD, Client, ConsoleServer, serving, station_console_for

OPEN_REDIRECTS = ["//evil.example/", "https://evil.example/", "/\\evil.example", "\\\\evil.example", "/\t/evil.example",
                  "/\n/evil.example", "http:evil.example", "javascript:alert(1)", "evil.example", " //evil.example",
                  "/%2F/evil.example"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def plain_station(tmp_path: Path, accounts_path: Path, station_daemon: Any) -> Console:
    return station_console_for(tmp_path, accounts_path)


@pytest.fixture
def served(plain_station: Console) -> Iterator[ConsoleServer]:
    with serving(plain_station.application()) as server:
        yield server


def test_a_cookie_planted_before_sign_in_never_becomes_the_session(served: ConsoleServer) -> None:
    client = Client(served, cookies={"wa_session": "planted-by-someone-else"})
    assert client.get("/").status == 303
    assert client.sign_in("operator").status == 303
    issued = client.cookies["wa_session"]
    assert issued != "planted-by-someone-else" and len(issued) >= 40
    assert Client(served, cookies={"wa_session": "planted-by-someone-else"}).get("/").status == 303
    assert Client(served, cookies={"wa_session": issued}).get("/").status == 200


def test_signing_in_again_drops_the_session_the_browser_held(served: ConsoleServer) -> None:
    client = Client(served)
    assert client.sign_in("operator").status == 303
    first = client.cookies["wa_session"]
    assert client.sign_in("auditor").status == 303  # the sign-in form works while signed in
    assert client.cookies["wa_session"] != first
    assert Client(served, cookies={"wa_session": first}).get("/").status == 303
    assert "auditor (auditor)" in client.get("/").body


def test_sign_out_ends_the_session_on_the_server(served: ConsoleServer) -> None:
    client = Client(served)
    assert client.sign_in("admin").status == 303
    held = client.cookies["wa_session"]
    reply = client.post("/sign-out", {"csrf": client.session_token()})
    assert reply.status == 303 and "wa_session" not in client.cookies
    assert Client(served, cookies={"wa_session": held}).get("/").status == 303  # a copied cookie is dead too
    assert Client(served).post("/sign-out", {}).status == 303  # signed out already: nothing to refuse


def test_idle_and_absolute_expiry(plain_station: Console) -> None:
    clock = Clock()
    plain_station.sessions.clock = clock
    with serving(plain_station.application()) as server:
        client = Client(server)
        assert client.sign_in("operator").status == 303
        clock.now += sessions.IDLE - 5
        assert client.get("/").status == 200  # seen: the idle clock starts again
        clock.now += sessions.IDLE - 5
        assert client.get("/").status == 200
        clock.now += sessions.IDLE + 1
        assert client.get("/").status == 303
        assert client.sign_in("operator").status == 303
        signed, alive = clock.now, 0.0
        while client.get("/").status == 200:  # however busy, a session ends ABSOLUTE after its sign-in
            alive = clock.now - signed
            clock.now += sessions.IDLE - 60
            assert clock.now - signed < 2 * sessions.ABSOLUTE
        assert sessions.ABSOLUTE - sessions.IDLE < alive <= sessions.ABSOLUTE


@pytest.mark.parametrize("target", OPEN_REDIRECTS)
def test_next_never_leaves_the_console(served: ConsoleServer, target: str) -> None:
    reply = Client(served).sign_in("operator", next_path=target)
    assert reply.status == 303
    assert reply.header("Location") == "/", target
    form = Client(served).get(f"/sign-in?next={quote(target, safe='')}")
    assert 'name="next" value="/"' in form.body


def test_next_keeps_a_path_on_the_console(served: ConsoleServer) -> None:
    assert Client(served).sign_in("operator", next_path="/?bay=3").header("Location") == "/?bay=3"


def test_sign_in_is_rate_limited_per_name_and_per_client(served: ConsoleServer) -> None:
    client = Client(served)
    for _ in range(sessions.FAILURES_ALLOWED):
        assert client.sign_in("operator", "not the password").status == 401
    refused = client.sign_in("operator")  # even the right password, now
    assert refused.status == 429 and "too many failed sign-ins" in refused.body
    assert 0 < int(refused.header("Retry-After") or 0) <= sessions.WINDOW
    assert "wa_session" not in client.cookies
    # the same client is refused for every name; the name is refused from another client (127.0.0.2)
    assert client.sign_in("auditor").status == 429
    assert Client(served, source="127.0.0.2").sign_in("operator").status == 429
    assert Client(served, source="127.0.0.2").sign_in("auditor").status == 303


def test_a_removed_or_changed_account_is_signed_out_at_once(served: ConsoleServer, accounts_path: Path) -> None:
    clients = {name: Client(served) for name in ("operator", "auditor", "compliance", "partner")}
    for name, client in clients.items():
        assert client.sign_in(name).status == 303 and client.get("/").status == 200
    accounts = Accounts(accounts_path)
    accounts.remove("operator")
    accounts.add("auditor", Role.COMPLIANCE, "Test auditor", PASSWORD, replace=True)        # role changed
    accounts.add("compliance", Role.COMPLIANCE, "Test compliance", "a new password!", replace=True)
    accounts.add("partner", Role.PARTNER, "Test partner", PASSWORD, "Another Partner", replace=True)
    for name, client in clients.items():
        assert client.get("/").status == 303, name
    assert clients["operator"].sign_in("operator").status == 401
    assert clients["partner"].sign_in("partner").status == 303
    assert "partner (partner, Another Partner)" in clients["partner"].get("/").body


def test_a_broken_accounts_file_lets_nobody_in(served: ConsoleServer, accounts_path: Path) -> None:
    client = Client(served)
    assert client.sign_in("admin").status == 303
    accounts_path.chmod(0o644)  # readable by everyone: refused
    assert client.get("/").status == 303
    reply = Client(served).sign_in("admin")
    assert reply.status == 503 and "accounts file" in reply.body
    accounts_path.chmod(0o600)
    accounts_path.write_text("{not json")
    assert Client(served).sign_in("admin").status == 503


def test_a_new_account_can_sign_in_without_a_restart(served: ConsoleServer, accounts_path: Path) -> None:
    Accounts(accounts_path).add("newcomer", Role.OPERATOR, "New operator", PASSWORD)
    assert Client(served).sign_in("newcomer").status == 303


def test_request_bodies_are_bounded(served: ConsoleServer) -> None:
    client = Client(served)
    assert client.sign_in("admin").status == 303
    big = client.post("/sign-out", {"csrf": client.session_token(), "pad": "x" * 70_000})
    assert big.status == 413
    connection = http.client.HTTPConnection(served.host, served.port, timeout=30)
    connection.putrequest("POST", "/sign-in")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.putheader("Content-Type", "application/x-www-form-urlencoded")
    connection.putheader("Accept", "text/html")
    connection.endheaders()
    connection.send(b"5\r\nname=\r\n0\r\n\r\n")
    assert connection.getresponse().status == 411
    connection.close()


def test_plain_http_takes_no_sign_in_from_another_machine(plain_station: Console) -> None:
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to serve on")
    server = ConsoleServer(plain_station.application(), host=address).start()
    try:
        client = Client(server)
        assert client.get("/sign-in").status == 200
        reply = client.sign_in("admin")
        assert reply.status == 403 and "no TLS" in reply.body and "wa_session" not in client.cookies
    finally:
        server.stop()


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: only the route's source address is read
            address = str(probe.getsockname()[0])
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_over_tls_cookies_are_secure_host_only_and_hsts_is_sent(tmp_path: Path, accounts_path: Path) -> None:
    console = Console(kind="test", title="tls", accounts=Accounts(accounts_path), audit=Sink(), secure=True)
    with serving(console.application()) as server:
        reply = Client(server).get("/sign-in")
        cookie = reply.header("Set-Cookie") or ""
        assert cookie.startswith("__Host-wa_pre=") and "Secure" in cookie and "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie and "Path=/" in cookie and "Domain" not in cookie
        assert reply.header("Strict-Transport-Security") == "max-age=31536000"


class Sink:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.entries: list[tuple[str, str, dict[str, Any]]] = []

    def record(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.entries.append((kind, subject, data))


def test_an_audit_that_cannot_be_written_refuses_the_sign_in_and_the_action(accounts_path: Path) -> None:
    sink = Sink()
    console = Console(kind="test", title="audit", accounts=Accounts(accounts_path), audit=sink, secure=False)
    done: list[str] = []

    async def action(request: web.Request) -> web.StreamResponse:
        request.app  # noqa: B018
        console.record("bay-start", "bay-1", {}, request=request)
        done.append(session_of(request).name)
        raise web.HTTPSeeOther("/")

    async def home(request: web.Request) -> web.StreamResponse:
        return render(request, "error.html", status_code=200, message="home")

    console.add("GET", "/", home, roles=EVERYONE)
    console.add("POST", "/start", action, roles={Role.OPERATOR})
    with serving(console.application()) as server:
        client = Client(server)
        assert client.sign_in("operator").status == 303
        token = client.session_token()
        assert client.post("/start", {"csrf": token}).status == 303 and done == ["operator"]
        assert sink.entries[-1] == ("bay-start", "bay-1", {"client": "127.0.0.1", "by": "operator",
                                                            "role": "operator"})
        sink.fail = True
        refused = client.post("/start", {"csrf": token})
        assert refused.status == 503 and "nothing was done" in refused.body and done == ["operator"]
        assert Client(server).sign_in("admin").status == 503
    kinds = [kind for kind, _, _ in sink.entries]
    assert kinds == ["web-sign-in", "bay-start"]


def test_an_agent_error_and_a_bug_show_one_line_not_a_traceback(accounts_path: Path) -> None:
    console = Console(kind="test", title="errors", accounts=Accounts(accounts_path), audit=Sink(), secure=False)

    async def refused(request: web.Request) -> web.StreamResponse:
        raise AgentError(f"no asset {request.query.get('tag', '')}")

    async def broken(request: web.Request) -> web.StreamResponse:
        raise KeyError("secret internals")

    console.add("GET", "/refused", refused, roles=EVERYONE)
    console.add("GET", "/broken", broken, roles=EVERYONE)
    with serving(console.application()) as server:
        client = Client(server)
        assert client.sign_in("auditor").status == 303
        reply = client.get("/refused?tag=%3Cscript%3Ex%3C/script%3E")
        assert reply.status >= 400 and "no asset &lt;script&gt;x&lt;/script&gt;" in reply.body
        bug = client.get("/broken")
        assert bug.status == 500 and "internal error (KeyError)" in bug.body and "secret internals" not in bug.body
        assert client.get("/broken", accept="application/json").body == \
            '{"error": {"status": 500, "message": "internal error (KeyError)"}}'


def test_the_sign_in_cost_is_paid_for_unknown_names_too(served: ConsoleServer) -> None:
    # not a timing: the unknown name is refused with the same page and status as a wrong password
    unknown, wrong = Client(served).sign_in("nobody"), Client(served).sign_in("admin", "wrong password!")
    assert unknown.status == wrong.status == 401
    assert "wrong name or password" in unknown.body and "wrong name or password" in wrong.body


def test_a_removed_account_restored_from_a_copy_does_not_revive_its_sessions(served: ConsoleServer,
                                                                              accounts_path: Path) -> None:
    client = Client(served)
    assert client.sign_in("operator").status == 303
    saved = accounts_path.read_bytes()
    Accounts(accounts_path).remove("operator")
    assert client.get("/").status == 303
    accounts_path.write_bytes(saved)  # the very account again, hash and all (a restored backup)
    assert client.get("/").status == 303
    assert client.sign_in("operator").status == 303


def test_each_page_has_its_own_body_limit_and_roles_for_posts(accounts_path: Path) -> None:
    console = Console(kind="test", title="limits", accounts=Accounts(accounts_path), audit=Sink(), secure=False)

    async def take(request: web.Request) -> web.StreamResponse:
        return web.Response(text="taken")

    console.add("POST", "/small", take, roles={Role.OPERATOR}, max_body=1024)
    console.add("POST", "/upload", take, roles={Role.PARTNER, Role.OPERATOR}, max_body=512 * 1024)
    with serving(console.application()) as server:
        client = Client(server)
        assert client.sign_in("operator").status == 303
        token = client.session_token()
        assert client.post("/small", {"csrf": token, "pad": "x" * 4000}).status == 413
        assert client.post("/small", {"csrf": token}).body == "taken"
        assert client.post("/upload", {"csrf": token, "pad": "x" * 300_000}).body == "taken"
        partner = Client(server)
        assert partner.sign_in("partner").status == 303
        assert partner.post("/small", {"csrf": partner.session_token()}).status == 403
    for method, path, roles in (("POST", "/open", set()), ("PUT", "/x", {Role.ADMIN}),
                                ("GET", "/sign-in", {Role.ADMIN}), ("GET", "/static/x", {Role.ADMIN})):
        with pytest.raises(ValueError):
            console.add(method, path, take, roles=roles)


def test_a_sign_in_lands_on_a_page_the_role_may_open(accounts_path: Path) -> None:
    console = Console(kind="test", title="landing", accounts=Accounts(accounts_path), audit=Sink(), secure=False)

    async def page(request: web.Request) -> web.StreamResponse:
        return web.Response(text=request.path)

    console.add("GET", "/", page, roles={Role.ADMIN}, nav="Programme")
    console.add("GET", "/manifests", page, roles={Role.PARTNER}, nav="Manifests")
    with serving(console.application()) as server:
        assert Client(server).sign_in("partner").header("Location") == "/manifests"
        assert Client(server).sign_in("admin").header("Location") == "/"
        assert Client(server).sign_in("auditor").header("Location") == "/"  # nothing to open: home says so (403)


def test_an_uploads_temporary_files_are_closed_whatever_the_answer(accounts_path: Path) -> None:
    import uuid

    from agent.web.server import form_of

    console = Console(kind="test", title="upload", accounts=Accounts(accounts_path), audit=Sink(), secure=False)
    seen: list[Any] = []

    async def upload(request: web.Request) -> web.StreamResponse:
        form = await form_of(request)
        seen.append(form["file"].file)
        assert not form["file"].file.closed
        return web.Response(text=f"{len(form['file'].file.read())} bytes")

    console.add("POST", "/upload", upload, roles={Role.PARTNER}, max_body=256 * 1024)
    with serving(console.application()) as server:
        client = Client(server)
        assert client.sign_in("partner").status == 303
        for token, status in ((client.session_token(), 200), ("wrong", 403)):
            boundary = uuid.uuid4().hex
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{token}\r\n"
                    f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.pdf\"\r\n"
                    f"Content-Type: application/pdf\r\n\r\n{'x' * 100_000}\r\n--{boundary}--\r\n").encode()
            reply = client.request("POST", "/upload", body=body, headers={
                "Content-Type": f"multipart/form-data; boundary={boundary}", "Origin": server.base})
            assert reply.status == status, reply.body[:300]
        assert reply.status == 403 and len(seen) == 1 and seen[0].closed
