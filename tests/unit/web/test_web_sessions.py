"""The console's pure pieces: the sign-in limiter's window, the session store's bound, the sign-in form's token,
and which targets a sign-in may go back to."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.web import sessions
from agent.web.accounts import Account, Accounts, Role
from agent.web.server import PRE_LIFETIME, Console, _host_name, _local_target
from agent.web.sessions import SessionStore, SignInLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Sink:
    def record(self, kind: str, subject: str, data: dict[str, object]) -> None:
        pass


def test_the_limiter_forgets_failures_after_its_window() -> None:
    clock = Clock()
    limiter = SignInLimiter(clock)
    for _ in range(sessions.FAILURES_ALLOWED):
        assert limiter.retry_after("pat", "10.0.0.1") == 0
        limiter.failed("pat", "10.0.0.1")
    assert limiter.retry_after("pat", "10.0.0.9") == pytest.approx(sessions.WINDOW)
    assert limiter.retry_after("sam", "10.0.0.1") == pytest.approx(sessions.WINDOW)
    assert limiter.retry_after("sam", "10.0.0.9") == 0
    clock.now += sessions.WINDOW / 2
    assert limiter.retry_after("pat", "10.0.0.1") == pytest.approx(sessions.WINDOW / 2)
    clock.now += sessions.WINDOW / 2 + 1
    assert limiter.retry_after("pat", "10.0.0.1") == 0
    limiter.failed("pat", "10.0.0.1")
    limiter.succeeded("pat")  # a success clears the name, not the client's count
    assert limiter._failures.get("name:pat") is None and len(limiter._failures["client:10.0.0.1"]) == 1


def test_refusals_are_recorded_once_a_minute_per_client_with_their_count() -> None:
    clock = Clock()
    limiter = SignInLimiter(clock)
    assert limiter.refused("10.0.0.1") == 1
    assert [limiter.refused("10.0.0.1") for _ in range(5)] == [None] * 5
    assert limiter.refused("10.0.0.2") == 1
    clock.now += sessions.REFUSALS_RECORDED
    assert limiter.refused("10.0.0.1") == 6


def test_the_store_is_bounded_and_drops_the_stalest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sessions, "MAX_SESSIONS", 3)
    clock = Clock()
    store = SessionStore(clock)
    account = Account("pat", Role.OPERATOR, "Operator", "scrypt$1$1$1$AA==$AA==")
    made = []
    for _ in range(3):
        made.append(store.create(account))
        clock.now += 1
    assert store.get(made[0].id) is not None  # the first is now the freshest
    fourth = store.create(account)
    assert store.get(made[1].id) is None and store.get(made[0].id) is not None and store.get(fourth.id) is not None
    store.drop_account("pat")
    assert all(store.get(session.id) is None for session in [*made, fourth])


def test_the_sign_in_token_is_signed_and_ages(tmp_path: Path) -> None:
    clock = Clock()
    console = Console(kind="t", title="t", accounts=Accounts(tmp_path / "none.json"), audit=Sink(), secure=False,
                      clock=clock)
    token = console.pre_token()
    assert console.pre_token_valid(token)
    nonce, issued, mac = token.split(".")
    assert not console.pre_token_valid(f"{nonce}x.{issued}.{mac}")
    assert not console.pre_token_valid(f"{nonce}.{int(issued) + 1}.{mac}")
    assert not console.pre_token_valid("")
    other = Console(kind="t", title="t", accounts=Accounts(tmp_path / "none.json"), audit=Sink(), secure=False,
                    clock=clock)
    assert not other.pre_token_valid(token)  # another process's (or an earlier run's) key
    clock.now += PRE_LIFETIME + 1
    assert not console.pre_token_valid(token)


@pytest.mark.parametrize(("target", "kept"), [
    ("/", "/"), ("/assets/TAG-1?tab=jobs", "/assets/TAG-1?tab=jobs"), ("/a#b", "/a#b"),
    ("//evil.example", "/"), ("/\\evil.example", "/"), ("https://evil.example/", "/"), ("/\t/evil", "/"),
    ("/ok path", "/"), ("/%2f%2fevil", "/"), ("/%5Cevil", "/"), ("", "/"), (None, "/"), ("/" + "a" * 3000, "/"),
    ("/caf\u00e9", "/"), ("/\u2215\u2215evil", "/"),
])
def test_only_a_path_of_this_console_is_a_target(target: str | None, kept: str) -> None:
    assert _local_target(target) == kept


@pytest.mark.parametrize(("host", "name"), [
    ("127.0.0.1:8080", "127.0.0.1"), ("LOCALHOST:1", "localhost"), ("[::1]:8080", "::1"), ("[::1]", "::1"),
    ("localhost", "localhost"), ("evil.example:80", "evil.example"), ("::1", "::1"),
])
def test_the_host_name_of_a_host_header(host: str, name: str) -> None:
    assert _host_name(host) == name
