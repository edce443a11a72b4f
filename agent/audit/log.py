"""A hash-chained audit log in the registry's SQLite file.

Each entry's ``hash`` is SHA-256 over the previous entry's hash and the canonical JSON of the entry
(sequence number, time, kind, subject, data). Changing, deleting or reordering any entry breaks the
chain from that point on; :meth:`AuditLog.verify` says where. A separate head row (count and last
hash) catches the removal of entries at the end, which a chain alone cannot show. Someone who can
rewrite the whole file can rewrite the chain too: hand the head hash (``audit verify`` prints it)
to compliance staff, or copy it off the station, to anchor it.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64

_TABLES = (
    "CREATE TABLE IF NOT EXISTS audit_log (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, "
    "subject TEXT NOT NULL, data_json TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), count INTEGER NOT NULL, "
    "hash TEXT NOT NULL)",
)


def canonical_json(value: Any) -> str:
    """Keys sorted, no insignificant whitespace, no NaN: the form that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(prev_hash: str, seq: int, at: str, kind: str, subject: str, data: Any) -> str:
    """The chained hash of one entry."""
    body = canonical_json({"seq": seq, "at": at, "kind": kind, "subject": subject, "data": data})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """One audit entry as stored."""

    seq: int
    at: str
    kind: str
    subject: str
    data: Any
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"seq": self.seq, "at": self.at, "kind": self.kind, "subject": self.subject, "data": self.data,
                "prev_hash": self.prev_hash, "hash": self.hash}


@dataclass(frozen=True)
class AuditReport:
    """The result of checking the chain."""

    valid: bool
    entries: int
    head: str
    problems: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"valid": self.valid, "entries": self.entries, "head": self.head, "problems": list(self.problems)}


class AuditLog:
    """Append-only log on an open SQLite connection (the registry's); each append is one transaction."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        for statement in _TABLES:
            self.db.execute(statement)

    def append(self, kind: str, subject: str, data: Any, *, at: datetime | None = None,
               in_transaction: bool = False) -> AuditEntry:
        """Add an entry; with ``in_transaction`` the caller holds BEGIN IMMEDIATE … COMMIT."""
        when = (at or datetime.now(UTC)).isoformat(timespec="milliseconds")
        # round-trip so the stored data is exactly what was hashed
        data = json.loads(canonical_json(data))
        if not in_transaction:
            self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            seq = (int(row[0]) + 1) if row else 1
            prev = str(row[1]) if row else GENESIS
            digest = entry_hash(prev, seq, when, kind, subject, data)
            self.db.execute(
                "INSERT INTO audit_log(seq, at, kind, subject, data_json, prev_hash, hash) VALUES(?,?,?,?,?,?,?)",
                (seq, when, kind, subject, canonical_json(data), prev, digest),
            )
            self.db.execute(
                "INSERT INTO audit_head(id, count, hash) VALUES(1, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET count=excluded.count, hash=excluded.hash",
                (seq, digest),
            )
        except BaseException:
            if not in_transaction:
                self.db.execute("ROLLBACK")
            raise
        if not in_transaction:
            self.db.execute("COMMIT")
        return AuditEntry(seq, when, kind, subject, data, prev, digest)

    def entries(self, subject: str | None = None) -> list[AuditEntry]:
        """Entries in storage order (optionally only one subject's)."""
        query = "SELECT seq, at, kind, subject, data_json, prev_hash, hash FROM audit_log"
        rows = (self.db.execute(query + " WHERE subject=? ORDER BY seq", (subject,)) if subject
                else self.db.execute(query + " ORDER BY rowid")).fetchall()
        return [AuditEntry(int(r[0]), str(r[1]), str(r[2]), str(r[3]), json.loads(r[4]), str(r[5]), str(r[6]))
                for r in rows]

    def verify(self) -> AuditReport:
        """Walk the chain in storage order; report every entry that does not fit."""
        problems: list[str] = []
        prev = GENESIS
        expected_seq = 1
        count = 0
        rows = self.db.execute(
            "SELECT seq, at, kind, subject, data_json, prev_hash, hash FROM audit_log ORDER BY rowid"
        ).fetchall()
        for row in rows:
            count += 1
            seq, at, kind, subject = int(row[0]), str(row[1]), str(row[2]), str(row[3])
            try:
                data = json.loads(row[4])
            except ValueError:
                problems.append(f"entry {seq}: data is not JSON (modified)")
                prev, expected_seq = str(row[6]), seq + 1
                continue
            if seq != expected_seq:
                problems.append(f"entry {seq}: expected sequence {expected_seq} (entry deleted or reordered)")
            if str(row[5]) != prev:
                problems.append(f"entry {seq}: previous-hash link broken (entry deleted, inserted or reordered)")
            if entry_hash(str(row[5]), seq, at, kind, subject, data) != str(row[6]):
                problems.append(f"entry {seq}: hash does not match its content (entry modified)")
            prev, expected_seq = str(row[6]), seq + 1
        head = self.db.execute("SELECT count, hash FROM audit_head WHERE id=1").fetchone()
        if head is not None and (int(head[0]) != count or str(head[1]) != prev):
            problems.append(f"head records {int(head[0])} entries ending {str(head[1])[:12]}…, the log has {count} "
                            f"ending {prev[:12]}… (entries removed at the end, or the head altered)")
        if head is None and count:
            problems.append("the head row is missing (altered)")
        return AuditReport(not problems, count, prev, tuple(problems))
