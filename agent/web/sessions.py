"""Server-side sessions, their CSRF tokens, and the sign-in rate limiter.

A session is a random 256-bit id in an ``HttpOnly; SameSite=Strict`` cookie (``Secure`` over TLS)
that maps to the signed-in account in this process's memory; nothing about the person is in the
cookie. A new id is issued at every sign-in (an id planted before sign-in is never promoted: no
session fixation) and dropped at sign-out, after ``IDLE`` without a request, or ``ABSOLUTE`` after
sign-in. Each session has its own CSRF token, required on every state-changing request. Restarting
the console signs everyone out; several fleet console instances behind one name need sticky sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.web.accounts import Account, Role

IDLE = 30 * 60.0
ABSOLUTE = 12 * 3600.0
MAX_SESSIONS = 10_000
FAILURES_ALLOWED = 5        # failed sign-ins per name, and per client address, in WINDOW
WINDOW = 15 * 60.0
REFUSALS_RECORDED = 60.0    # a refused client's refusals go to the audit chain once a minute (with a count)


def fingerprint(account: Account) -> str:
    """SHA-256 over everything that defines an account (its hash included, so a new password counts)."""
    fields = (account.name, account.role.value, account.title, account.partner or "", account.password_hash)
    return hashlib.sha256("\x00".join(fields).encode()).hexdigest()


@dataclass
class Session:
    """One signed-in person."""

    id: str
    name: str
    role: Role
    title: str
    partner: str | None
    csrf: str
    created: float
    seen: float = field(default=0.0)
    fingerprint: str = ""
    """Of the account as it was at sign-in: any change to it (role, partner, title, password) ends the session."""

    def csrf_matches(self, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(self.csrf.encode(), token.encode())


class SessionStore:
    """Sessions by id, expired lazily."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, account: Account) -> Session:
        now = self.clock()
        session = Session(secrets.token_urlsafe(32), account.name, account.role, account.title, account.partner,
                          secrets.token_urlsafe(32), now, now, fingerprint(account))
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._expire(now)
                if len(self._sessions) >= MAX_SESSIONS:  # the oldest goes, never the new one
                    oldest = min(self._sessions.values(), key=lambda s: s.seen)
                    del self._sessions[oldest.id]
            self._sessions[session.id] = session
        return session

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if now - s.seen > IDLE or now - s.created > ABSOLUTE]:
            del self._sessions[key]

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this id (its idle clock restarted), or None."""
        if not session_id:
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if now - session.seen > IDLE or now - session.created > ABSOLUTE:
                del self._sessions[session_id]
                return None
            session.seen = now
            return session

    def drop(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)

    def drop_account(self, name: str) -> None:
        """Sign ``name`` out everywhere (an account removed or changed)."""
        with self._lock:
            for key in [k for k, s in self._sessions.items() if s.name == name]:
                del self._sessions[key]


class SignInLimiter:
    """At most ``FAILURES_ALLOWED`` failed sign-ins per name and per client address in ``WINDOW``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._refusals: dict[str, tuple[float, int]] = {}  # client -> (when last recorded, refused since)
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and now - times[0] > WINDOW:
            times.popleft()
        return times

    def retry_after(self, name: str, client: str) -> float:
        """Seconds until a sign-in for ``name`` from ``client`` may be tried again (0: now)."""
        now = self.clock()
        with self._lock:
            waits = [WINDOW - (now - times[0]) for key in (f"name:{name}", f"client:{client}")
                     if len(times := self._recent(key, now)) >= FAILURES_ALLOWED]
        return max(waits, default=0.0)

    def failed(self, name: str, client: str) -> None:
        now = self.clock()
        with self._lock:
            for key in (f"name:{name}", f"client:{client}"):
                self._recent(key, now).append(now)
            if len(self._failures) > 100_000:  # bounded memory under a spray of names
                self._failures = {k: v for k, v in self._failures.items() if v and now - v[-1] <= WINDOW}

    def refused(self, client: str) -> int | None:
        """Count a refused sign-in from ``client``; the number of refusals to record now (this one and those not
        yet recorded), or None while one was recorded less than ``REFUSALS_RECORDED`` ago: a client hammering the
        form cannot grow the audit chain by a row per request."""
        now = self.clock()
        with self._lock:
            last, pending = self._refusals.get(client, (float("-inf"), 0))
            if now - last < REFUSALS_RECORDED:
                self._refusals[client] = (last, pending + 1)
                return None
            if len(self._refusals) > 100_000:
                self._refusals = {k: v for k, v in self._refusals.items() if now - v[0] < REFUSALS_RECORDED}
            self._refusals[client] = (now, 0)
            return pending + 1

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(f"name:{name}", None)
