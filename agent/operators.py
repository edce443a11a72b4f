"""Operators as people: who is signed in at the station, for which bays and shift, as which Unix user.

A certificate names the person who performed the sanitisation (NIST SP 800-88 App. G). The station
only knows Unix users: ``root`` through sudo, the daemon's own uid for an auto-start job. So a
person *signs in* (``wipe-agent operator sign-in NAME --title TITLE``); the sign-in records the uid
the kernel or sudo vouches for (``SO_PEERCRED`` through the daemon's socket, ``SUDO_UID`` through
sudo, else the real uid), the bays it covers and when the shift ends. A job is then attributed:

- started through the daemon's API or by ``wipe`` on the command line: to the person signed in for
  the caller's uid;
- started by the daemon on insertion (auto-start bay): to the person whose sign-in covers that bay
  (the most recent one when several do);
- otherwise to nobody, and the job says so plainly (:meth:`OperatorStamp.display`) instead of
  printing a login name as if it were a person.

The sign-ins live in the station's store, in a table its migration ladder creates
(:mod:`agent.store.schema`); every sign-in and sign-out is an audit-chain entry written in the same
transaction. The registry's clock decides shift expiry, so tests can move time.
"""

from __future__ import annotations

import json
import os
import pwd
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agent.audit.log import AuditLog
from agent.errors import ConfigError
from agent.store.registry import Registry
from certs.record import text_problem

MAX_TEXT = 128
DEFAULT_SHIFT_HOURS = 12  # a forgotten sign-out must not attribute tomorrow's jobs to today's person
MAX_SHIFT_HOURS = 24
MIN_SHIFT_HOURS = 0.25  # a shorter "shift" (1e-300 h) is over before the sign-in line is printed

# how a job was started, as the certificate says it ("… via the station daemon")
VIA_DAEMON = "the station daemon"  # auto-start on insertion
VIA_API = "the station API"  # ``wipe-agent start`` through the daemon's socket
VIA_CLI = "the command line"  # ``wipe-agent wipe``
VIA_WEB = "the web console"  # a signed-in web account, through the console's own uid (agent.web.station)
_ROUTES = (*(route.casefold() for route in (VIA_DAEMON, VIA_API, VIA_CLI, VIA_WEB)), "an unknown route")
"""Every route a start names (casefolded): no name or title may say one (:func:`check_text`)."""

class OperatorError(ConfigError):
    """A sign-in or sign-out that cannot be honoured (bad name, nobody signed in …)."""

    code = "bad_operator"


def user_name(uid: int) -> str:
    """The login name of ``uid`` (``uid:N`` when the user database has none)."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def invoking_uid() -> int:
    """The uid of the person at the keyboard: ``SUDO_UID`` when root runs us through sudo, else the real uid.

    ``SUDO_UID`` is believed only when we are root: anyone can set the variable, but only sudo
    (or root itself) can make us root."""
    real = os.getuid()
    sudo = os.environ.get("SUDO_UID", "")
    if real == 0 and sudo.isdigit():
        return int(sudo)
    return real


def check_text(what: str, value: str) -> str:
    """A name or title as a signed certificate may print it, else a one-line :class:`OperatorError`."""
    text = value.strip()
    if not text:
        raise OperatorError(f"operator {what} must not be empty")
    if len(text) > MAX_TEXT:
        raise OperatorError(f"operator {what} is longer than {MAX_TEXT} characters")
    problem = text_problem(text)
    if problem is not None:
        raise OperatorError(f"operator {what} {problem}: a certificate must read exactly as it is signed")
    folded = " ".join(text.casefold().split())
    if any(f"via {route}" in folded for route in _ROUTES) or "no operator signed in" in folded:
        # the station writes the route itself (console_operator, unnamed_text): a name saying it forges it
        raise OperatorError(f"operator {what} reads as where a start came from (\"via {VIA_WEB}\" and the like), "
                            "which the station records itself")
    return text


@dataclass(frozen=True)
class ConsoleAccount:
    """The web account signed in at the web console that a console call acts for (as the console sends it)."""

    account: str
    title: str


@dataclass(frozen=True)
class SignIn:
    """One sign-in as stored."""

    id: int
    name: str
    title: str
    uid: int
    user: str
    bays: tuple[str, ...] | None  # None: every bay
    signed_in_at: str
    expires_at: str
    signed_out_at: str | None = None
    signed_out_reason: str | None = None

    def covers(self, bay: str) -> bool:
        """Whether auto-start jobs of ``bay`` are this person's."""
        return self.bays is None or bay in self.bays

    def to_json(self) -> dict[str, Any]:
        """JSON form (``operator list --json``, ``status --json``)."""
        return {"sign_in_id": self.id, "name": self.name, "title": self.title, "uid": self.uid, "user": self.user,
                "bays": list(self.bays) if self.bays is not None else "all", "signed_in_at": self.signed_in_at,
                "expires_at": self.expires_at, "signed_out_at": self.signed_out_at,
                "signed_out_reason": self.signed_out_reason}


@dataclass(frozen=True)
class OperatorStamp:
    """Who a job is attributed to: a signed-in person, or nobody (``name`` empty) and how it was started."""

    name: str
    title: str
    uid: int
    via: str
    sign_in_id: int | None = None

    @property
    def named(self) -> bool:
        """True when a signed-in person is named."""
        return bool(self.name)

    def display(self) -> str:
        """The person, or a plain statement that there was none (never a login name standing in for one)."""
        if self.named:
            return self.name
        return unnamed_text(self.uid, self.via)


def unnamed_text(uid: int | None, via: str | None) -> str:
    """What a job without a signed-in person says in place of a name."""
    who = f"uid {uid} ({user_name(uid)})" if uid is not None else "an unknown user"
    return f"no operator signed in \u2014 started by {who} via {via or 'an unknown route'}"


def _row(row: Any) -> SignIn:
    bays = json.loads(row["bays_json"]) if row["bays_json"] is not None else None
    return SignIn(id=int(row["id"]), name=str(row["name"]), title=str(row["title"]), uid=int(row["uid"]),
                  user=str(row["user"]), bays=tuple(bays) if bays is not None else None,
                  signed_in_at=str(row["signed_in_at"]), expires_at=str(row["expires_at"]),
                  signed_out_at=row["signed_out_at"], signed_out_reason=row["signed_out_reason"])


def _open_sign_ins(db: Any, now: datetime, *, uid: int | None = None, name: str | None = None) -> list[SignIn]:
    """Sign-ins not signed out whose shift has not ended at ``now``, newest first."""
    query, args = "SELECT * FROM operator_sign_ins WHERE signed_out_at IS NULL", list[int | str]()
    if uid is not None:
        query, args = query + " AND uid=?", [*args, uid]
    if name is not None:
        query, args = query + " AND name=?", [*args, name]
    rows = db.execute(query + " ORDER BY id DESC", args).fetchall()
    return [item for item in map(_row, rows) if datetime.fromisoformat(item.expires_at) > now]


def signed_in_now(store: Registry | Path) -> list[SignIn]:
    """Everyone signed in now, read on a session of the store (the daemon's ``status``, polled often).

    A :meth:`Registry.session` (a short-lived connection of its own), not an opened :class:`Registry`:
    :meth:`Registry.open` takes a read-only probe connection each time, too much for a view refreshed
    many times a second from the API's threads while workers write the same file. ``store`` may be the
    database file itself (what this took before the store had a location of its own)."""
    registry = store if isinstance(store, Registry) else Registry(Path(store).parent, path=Path(store))
    with registry.session() as session:
        db = session.db
        if db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name='operator_sign_ins'").fetchone() is None:
            return []  # a store this version has not opened yet (its ladder creates the table)
        return _open_sign_ins(db, datetime.now(UTC))


class Operators:
    """Sign-ins on an open :class:`~agent.store.registry.Registry` (its connection, its clock)."""

    def __init__(self, registry: Registry) -> None:
        self.registry, self.db = registry, registry.db
        # the registry's own log: it carries the station signer, so an entry that completes a checkpoint
        # interval is signed in its transaction (a bare AuditLog would leave that checkpoint unwritten)
        self.audit: AuditLog = registry.audit

    def _now(self) -> datetime:
        return self.registry.clock()

    @staticmethod
    def _stamp(moment: datetime) -> str:
        return moment.isoformat(timespec="milliseconds")

    def sign_in(self, name: str, title: str, uid: int, *, bays: tuple[str, ...] | None = (),
                shift_hours: float = DEFAULT_SHIFT_HOURS) -> SignIn:
        """Sign ``name`` in for ``uid``; an earlier sign-in of that uid ends ("replaced"). ``bays`` None: all."""
        name, title = check_text("name", name), check_text("title", title)
        if not MIN_SHIFT_HOURS <= shift_hours <= MAX_SHIFT_HOURS:  # (NaN fails both comparisons)
            raise OperatorError(f"shift of {shift_hours} hours: must be {MIN_SHIFT_HOURS} to {MAX_SHIFT_HOURS} hours")
        if bays is not None:
            bays = tuple(dict.fromkeys(check_text("bay", bay) for bay in bays))
        now = self._now()
        user = user_name(uid)
        expires = now + timedelta(hours=shift_hours)
        with self.registry.transaction() as tx:
            for previous in self._open(tx, now, uid=uid):
                self._end(tx, previous, now, "replaced by a new sign-in for the same user")
            cursor = tx.execute(
                "INSERT INTO operator_sign_ins(name, title, uid, user, bays_json, signed_in_at, expires_at) "
                "VALUES(?,?,?,?,?,?,?)", (name, title, uid, user, json.dumps(list(bays)) if bays is not None else None,
                                          self._stamp(now), self._stamp(expires)))
            row = tx.execute("SELECT * FROM operator_sign_ins WHERE id=?", (cursor.lastrowid,)).fetchone()
            entry = _row(row)
            self.audit.append("operator-sign-in", name, entry.to_json(), at=now, in_transaction=True)
        return entry

    def sign_out(self, *, uid: int | None = None, name: str | None = None, by_uid: int | None = None) -> list[SignIn]:
        """End the open sign-in(s) of ``name`` (any uid), or else of ``uid``; refused when there is none."""
        now = self._now()
        with self.registry.transaction() as tx:
            found = self._open(tx, now, uid=None if name is not None else uid, name=name)
            if not found:
                who = f"{name!r}" if name is not None else f"uid {uid} ({user_name(uid or 0)})"
                raise OperatorError(f"nobody signed in as {who}: nothing to sign out")
            by = f"signed out by uid {by_uid} ({user_name(by_uid)})" if by_uid is not None else "signed out"
            ended = [self._end(tx, item, now, by) for item in found]
        return ended

    def _open(self, tx: Any, now: datetime, *, uid: int | None = None, name: str | None = None) -> list[SignIn]:
        return _open_sign_ins(tx, now, uid=uid, name=name)

    def _end(self, tx: Any, item: SignIn, now: datetime, reason: str) -> SignIn:
        tx.execute("UPDATE operator_sign_ins SET signed_out_at=?, signed_out_reason=? WHERE id=?",
                   (self._stamp(now), reason, item.id))
        ended = SignIn(**{**item.__dict__, "signed_out_at": self._stamp(now), "signed_out_reason": reason})
        self.audit.append("operator-sign-out", item.name, ended.to_json(), at=now, in_transaction=True)
        return ended

    def active(self) -> list[SignIn]:
        """Everyone signed in now (shift not over), newest first."""
        return self._open(self.db, self._now())

    def for_uid(self, uid: int) -> SignIn | None:
        """The person signed in for ``uid`` now."""
        found = self._open(self.db, self._now(), uid=uid)
        return found[0] if found else None

    def for_bay(self, bay: str) -> SignIn | None:
        """The person whose current sign-in covers ``bay`` (the most recent one when several do)."""
        return next((item for item in self.active() if item.covers(bay)), None)

    def stamp(self, via: str, *, uid: int, bay: str | None = None) -> OperatorStamp:
        """:func:`attribute` with everyone signed in now."""
        return attribute(self.active(), via, uid=uid, bay=bay)


def attribute(active: list[SignIn], via: str, *, uid: int, bay: str | None = None) -> OperatorStamp:
    """Attribute a job started by ``uid`` via ``via`` among the ``active`` sign-ins (newest first): by the
    caller's uid, or for an auto-start by the bay (the most recent sign-in covering it)."""
    if via == VIA_DAEMON and bay is not None:
        person = next((item for item in active if item.covers(bay)), None)
    else:
        person = next((item for item in active if item.uid == uid), None)
    if person is None:
        return OperatorStamp(name="", title="", uid=uid, via=via)
    return OperatorStamp(name=person.name, title=person.title, uid=uid, via=via, sign_in_id=person.id)


def command_line_stamp(registry: Registry, explicit: str | None) -> OperatorStamp:
    """The person a ``wipe`` from the command line is attributed to: the one signed in for the invoking uid.

    ``--operator NAME`` no longer puts an unrecorded name on a signed certificate: it must be the
    person signed in for that uid (a check that the right person is signed in), else a refusal."""
    uid = invoking_uid()
    stamp = Operators(registry).stamp(VIA_CLI, uid=uid)
    if explicit is not None and explicit.strip() != stamp.name:
        signed = f"{stamp.name!r} is" if stamp.named else "nobody is"
        raise OperatorError(f"--operator {explicit.strip()!r}: {signed} signed in for uid {uid} ({user_name(uid)}); "
                            "sign in first: wipe-agent operator sign-in NAME --title TITLE")
    return stamp


def stamp_for(registry: Registry, via: str, *, uid: int, bay: str | None = None) -> OperatorStamp:
    """:meth:`Operators.stamp` on ``registry``."""
    return Operators(registry).stamp(via, uid=uid, bay=bay)
