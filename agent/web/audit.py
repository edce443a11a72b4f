"""The fleet console's audit chain: every sign-in (ok, failed, refused) and every action, in the fleet database.

The same discipline as a station's :mod:`agent.audit.log`: each entry's ``hash`` is SHA-256 over the
previous entry's hash and the canonical JSON of ``{seq, at, kind, subject, data}``
(:func:`certs.audit_chain.entry_hash`), and a head row (count and last hash) catches entries removed
at the end. The table is append-only (triggers refuse UPDATE, DELETE and TRUNCATE; migration 8 of
:mod:`agent.fleet.database`), appends from several console instances are serialised on the head row
(``SELECT … FOR UPDATE``), and :func:`verify` walks the chain and says where it breaks.

What is found and what is not. Through the console nothing is changed: it only appends. In the database,
an UPDATE, DELETE or TRUNCATE is refused by the triggers; one made with the triggers off or dropped (the
table's owner can) is found by the walk: an entry changed, removed, inserted or moved breaks its hash or
the links, and entries cut from the end disagree with the head. The chain is not signed, so whoever owns
the database can also rewrite everything from the changed entry on, hashes and head included: that walk
is then clean. Only an anchor kept outside the database finds it: ``web audit verify`` prints the head as
``SEQ:HASH``; given back with ``--expect SEQ:HASH`` it must still be entry SEQ's hash (a rewrite of any
entry up to SEQ, or a chain cut below it, is BROKEN). Entries appended after the last anchor can be
rewritten undetected; appending entries that never happened needs only INSERT (the console's own right).
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from agent.audit.log import AuditEntry, AuditReport
from agent.fleet.database import FleetDatabase
from certs.audit_chain import GENESIS, entry_hash

if TYPE_CHECKING:
    import psycopg


class FleetConsoleAudit:
    """The fleet console's :class:`~agent.web.server.AuditSink`: one append, one transaction, or an exception."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._database: FleetDatabase | None = None
        self._lock = threading.Lock()

    def record(self, kind: str, subject: str, data: dict[str, Any]) -> None:
        self.append(kind, subject, data)

    def append(self, kind: str, subject: str, data: dict[str, Any], *, at: datetime | None = None) -> AuditEntry:
        """Add an entry; raises (and drops the connection) when it cannot be written."""
        with self._lock:
            if self._database is None:
                self._database = FleetDatabase(self.dsn).open()
            try:
                return append(self._database, kind, subject, data, at=at)
            except BaseException:
                self._database.close()
                self._database = None
                raise

    def close(self) -> None:
        with self._lock:
            if self._database is not None:
                self._database.close()
                self._database = None


def append(database: FleetDatabase, kind: str, subject: str, data: dict[str, Any], *,
           at: datetime | None = None) -> AuditEntry:
    """One entry appended to the console chain of ``database`` in a transaction of its own."""
    when = (at or datetime.now(UTC)).isoformat(timespec="milliseconds")
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    stored = json.loads(text)  # what is hashed is exactly what is stored
    with database.transaction() as db:
        head = db.execute("SELECT count, hash FROM fleet_console_audit_head WHERE id = 1 FOR UPDATE").fetchone()
        if head is None:
            raise RuntimeError("the console audit chain's head row is missing (altered): nothing is appended")
        seq, prev = int(head[0]) + 1, str(head[1])
        digest = entry_hash(prev, seq, when, kind, subject, stored)
        db.execute("INSERT INTO fleet_console_audit (seq, at, kind, subject, data, prev_hash, hash) "
                   "VALUES (%s, %s, %s, %s, %s, %s, %s)", (seq, when, kind, subject, text, prev, digest))
        db.execute("UPDATE fleet_console_audit_head SET count = %s, hash = %s WHERE id = 1", (seq, digest))
    return AuditEntry(seq, when, kind, subject, stored, prev, digest)


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(int(row[0]), str(row[1]), str(row[2]), str(row[3]), json.loads(row[4]), str(row[5]),
                      str(row[6]))


def entries(database: FleetDatabase, *, last: int | None = None) -> list[AuditEntry]:
    """The chain's entries, oldest first (``last``: only the newest so many)."""
    with database.transaction() as db:
        rows = _rows(db, last)
    return [_entry(row) for row in rows]


def _rows(db: psycopg.Connection[Any], last: int | None) -> list[Any]:
    if last is not None:
        return db.execute("SELECT * FROM (SELECT seq, at, kind, subject, data, prev_hash, hash FROM "
                          "fleet_console_audit ORDER BY seq DESC LIMIT %s) AS newest ORDER BY seq", (last,)).fetchall()
    return db.execute("SELECT seq, at, kind, subject, data, prev_hash, hash FROM fleet_console_audit "
                      "ORDER BY seq").fetchall()


def parse_anchor(text: str) -> tuple[int, str]:
    """``SEQ:HASH`` (as :func:`verify`'s report prints the head) as (seq, hash); ValueError otherwise."""
    seq, _, digest = text.strip().partition(":")
    if not seq.isdigit() or int(seq) < 1 or len(digest) != 64 or any(ch not in "0123456789abcdef" for ch in digest):
        raise ValueError(f"not an anchor SEQ:HASH (a sequence number and 64 lower-case hex digits): {text[:80]!r}")
    return int(seq), digest


def verify(database: FleetDatabase, *, anchor: tuple[int, str] | None = None) -> AuditReport:
    """Walk the chain in order; every entry that does not fit, and a head that does not match, is a problem.
    ``anchor`` (seq, hash), a head recorded earlier outside the database: entry seq must still have that hash."""
    problems: list[str] = []
    anchored: str | None = None
    prev, expected, count = GENESIS, 1, 0
    with database.transaction() as db:
        db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # the walk and the head see one snapshot
        head = db.execute("SELECT count, hash FROM fleet_console_audit_head WHERE id = 1").fetchone()
        with db.cursor(name="console_audit_walk") as cursor:  # streamed, not all rows in memory
            cursor.execute("SELECT seq, at, kind, subject, data, prev_hash, hash FROM fleet_console_audit "
                           "ORDER BY seq")
            for row in cursor:
                count += 1
                seq = int(row[0])
                try:
                    data = json.loads(row[4])
                except ValueError:
                    problems.append(f"entry {seq}: data is not JSON (modified)")
                    prev, expected = str(row[6]), seq + 1
                    continue
                if seq != expected:
                    problems.append(f"entry {seq}: expected sequence {expected} (entry deleted)")
                if str(row[5]) != prev:
                    problems.append(f"entry {seq}: previous-hash link broken (entry deleted, inserted or replaced)")
                if entry_hash(str(row[5]), seq, str(row[1]), str(row[2]), str(row[3]), data) != str(row[6]):
                    problems.append(f"entry {seq}: hash does not match its content (entry modified)")
                if anchor is not None and seq == anchor[0]:
                    anchored = str(row[6])
                prev, expected = str(row[6]), seq + 1
    if anchor is not None:
        if anchored is None:
            problems.append(f"the anchor names entry {anchor[0]}, which the chain does not have (entries removed, "
                            f"or the chain rewritten)")
        elif anchored != anchor[1]:
            problems.append(f"entry {anchor[0]}: hash {anchored[:12]}… is not the anchor's {anchor[1][:12]}… (the "
                            f"chain was rewritten up to there)")
    if head is None:
        problems.append("the head row is missing (altered)")
    elif int(head[0]) != count or str(head[1]) != prev:
        problems.append(f"the head records {int(head[0])} entries ending {str(head[1])[:12]}…, the chain has "
                        f"{count} ending {prev[:12]}… (entries removed at the end, or the head altered)")
    return AuditReport(not problems, count, prev, tuple(problems),
                       anchored_to=anchor[0] if anchor is not None and anchored == anchor[1] else None)
