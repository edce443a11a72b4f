"""Every page of the station's and the fleet's console, as their real builders make them: who may open it, and
what a forged request gets. The pages are read from ``console.pages``, so a page added later is covered too."""

from __future__ import annotations

import re
from urllib.parse import quote

from agent.web.accounts import Role
from agent.web.server import ANYONE, Console, Page
from tests.web_kit import Client, ConsoleServer

PROBE = "<script>alert(1)</script>"
CONSOLE_POSTS = ["/sign-in", "/sign-out"]  # the console's own state-changing routes, besides its pages


def concrete(page: Page) -> str:
    """A path of the page with every {placeholder} filled in."""
    return re.sub(r"\{[^}]*\}", "probe-1", page.path)


def posts(console: Console) -> list[str]:
    return CONSOLE_POSTS + [concrete(page) for page in console.pages if page.method == "POST"]


def test_the_consoles_have_pages(console: Console) -> None:
    assert [page for page in console.pages if page.method == "GET"], "a console without a page tests nothing"
    for page in console.pages:
        assert page.roles <= frozenset(Role)
        assert page.roles or page.method == "GET"


def test_signed_out_a_page_sends_to_sign_in_or_is_401(console: Console, served: ConsoleServer) -> None:
    client = Client(served)
    for page in console.pages:
        path = concrete(page)
        if page.roles == ANYONE:
            assert client.get(path).status == 200, path
            continue
        if page.method == "GET":
            reply = client.get(path)
            assert reply.status == 303, path
            assert reply.header("Location") == f"/sign-in?next={quote(path, safe='/')}", path
            assert client.get(path, accept="application/json").status == 401, path
        else:
            assert client.post(path, {"csrf": "x"}).status == 401, path


def test_each_wrong_role_is_refused(console: Console, served: ConsoleServer) -> None:
    checked = 0
    for role in Role:
        client = Client(served)
        assert client.sign_in(role.value).status == 303
        token = client.session_token()
        for page in console.pages:
            path = concrete(page)
            if page.roles == ANYONE:
                continue
            reply = client.get(path) if page.method == "GET" else client.post(path, {"csrf": token})
            if role in page.roles:
                assert reply.status not in (401, 403), (role, path, reply.status)
            else:
                assert reply.status == 403, (role, path, reply.status)
                assert f"the {role.value} role may not open" in reply.body
            checked += 1
    if any(page.roles for page in console.pages):
        assert checked >= len(Role), "no guarded page was tried"


def test_every_post_needs_the_token_and_this_origin(console: Console, served: ConsoleServer) -> None:
    admin = Client(served)
    assert admin.sign_in("admin").status == 303
    token = admin.session_token()
    for path in posts(console):
        if path == "/sign-in":
            continue  # its own token: test_the_sign_in_form_token_is_this_consoles
        assert admin.post(path, {}).status == 403, path                                     # no token
        assert admin.post(path, {"csrf": token[:-2] + "xx"}).status == 403, path            # a wrong one
        assert admin.post(path, {"csrf": ""}).status == 403, path
        assert admin.post(path, {"csrf": token}, origin="http://evil.example").status == 403, path
        assert admin.post(path, {"csrf": token}, origin="null").status == 403, path
        assert admin.post(path, {"csrf": token}, origin=f"https://{served.host}:{served.port}").status == 403, path
        assert admin.post(path, {"csrf": token}, origin=None,
                          headers={"Referer": "http://evil.example/page"}).status == 403, path
        assert admin.post(path, {}, headers={"X-CSRF-Token": "wrong"}).status == 403, path
    assert admin.get(console.home).status == 200, "the refusals signed the admin out"


def test_the_header_token_is_accepted_like_the_form_field(console: Console, served: ConsoleServer) -> None:
    client = Client(served)
    assert client.sign_in("admin").status == 303
    reply = client.post("/sign-out", {}, origin=None, headers={"X-CSRF-Token": client.session_token()})
    assert reply.status == 303 and reply.header("Location") == "/sign-in"
    assert client.get(console.home).status in (200, 303)
    assert "Sign out" not in client.get("/sign-in").body


def test_the_sign_in_form_token_is_this_consoles(console: Console, served: ConsoleServer) -> None:
    client = Client(served)
    form = {"name": "admin", "password": "correct horse battery", "next": "/"}
    assert client.post("/sign-in", form).status == 403                                    # no token at all
    planted = Client(served, cookies={"wa_pre": "chosen-by-someone"})
    assert planted.post("/sign-in", {**form, "csrf": "chosen-by-someone"}).status == 403  # equal, but not ours
    token = client.form_token()
    assert client.post("/sign-in", {**form, "csrf": token}, origin="http://evil.example").status == 403
    other = Client(served)
    assert other.post("/sign-in", {**form, "csrf": token}).status == 403                  # the field without its cookie
    assert client.post("/sign-in", {**form, "csrf": token}).status == 303


def test_reflected_input_is_escaped_everywhere(console: Console, served: ConsoleServer) -> None:
    admin = Client(served)
    assert admin.sign_in("admin").status == 303
    probe = quote(PROBE)
    replies = [admin.get(f"{concrete(page)}?q={probe}&next={probe}") for page in console.pages if page.method == "GET"]
    replies += [admin.get(f"/no-such-page/{probe}"), admin.get(f"/sign-in?next=/{probe}"),
                Client(served).get(f"/sign-in?next=/x%22%3E{probe}"), admin.get(f"/static/{probe}"),
                admin.request("PUT", f"/{probe}")]
    stranger = Client(served)
    replies.append(stranger.sign_in(PROBE, PROBE, next_path='/"><script>x</script>'))
    replies.append(stranger.sign_in("admin", "wrong password!", next_path=f"/{PROBE}"))
    for reply in replies:
        assert "<script>alert(1)" not in reply.body and "<script>x" not in reply.body, reply.body[:400]
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in reply.body for reply in replies), "nothing was reflected"


def test_no_error_shows_a_traceback(console: Console, served: ConsoleServer) -> None:
    client = Client(served)
    replies = [client.get("/no-such-page"), client.request("PUT", "/"), client.request("DELETE", "/sign-in"),
               client.post("/sign-in", {"csrf": "x" * 70_000}), client.get("/static/../../etc/passwd"),
               client.request("POST", "/sign-in", body=b"%%%", headers={"Content-Type": "multipart/form-data"}),
               client.get("/sign-in?next=%ff%fe")]
    statuses = [reply.status for reply in replies]
    assert statuses[:4] == [404, 405, 405, 413], statuses
    for reply in replies:
        assert "Traceback" not in reply.body and 'File "' not in reply.body and ".py" not in reply.body
        assert reply.status < 500, (reply.status, reply.body[:300])
    assert "Content-Security-Policy" in replies[0].headers


def test_every_reply_carries_the_security_headers(console: Console, served: ConsoleServer) -> None:
    client = Client(served)
    replies = [client.get("/sign-in"), client.get("/no-such-page"), client.get("/static/console.css")]
    guarded = [concrete(page) for page in console.pages if page.roles and page.method == "GET"]
    if guarded:
        replies.append(client.get(guarded[0]))  # a redirect to sign-in
    for reply in replies:
        assert reply.header("Content-Security-Policy", ) is not None
        csp = reply.header("Content-Security-Policy") or ""
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
        assert reply.header("X-Content-Type-Options") == "nosniff"
        assert reply.header("Referrer-Policy") == "same-origin"
        assert reply.header("X-Frame-Options") == "DENY"
        assert reply.header("Strict-Transport-Security") is None  # plain HTTP: HSTS would mean nothing
    assert replies[0].header("Cache-Control") == "no-store"


def test_the_templates_have_no_inline_script_or_style(console: Console, served: ConsoleServer) -> None:
    admin = Client(served)
    assert admin.sign_in("admin").status == 303
    for path in ["/sign-in", *(concrete(page) for page in console.pages if page.method == "GET")]:
        body = admin.get(path).body
        assert not re.search(r"<script(?![^>]*\bsrc=)", body), path
        assert not re.search(r"\sstyle=|<style", body), path
        assert not re.search(r"\son[a-z]+=", body), path
        assert not re.search(r"(src|href)=\"(https?:)?//", body), path
