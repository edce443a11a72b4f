"""A hash-chained audit log in the registry's SQLite file.

Each entry's ``hash`` is SHA-256 over the previous entry's hash and the canonical JSON of the entry
(sequence number, time, kind, subject, data). Changing, deleting or reordering any entry breaks the
chain from that point on; :meth:`AuditLog.verify` says where. A separate head row (count and last
hash) catches the removal of entries at the end, which a chain alone cannot show. Someone who can
rewrite the whole file can rewrite the chain too, but not the **checkpoints**: every
``checkpoint_every`` entries, every ``checkpoint_minutes`` (checked as entries are appended and by
the daemon's timer) and at daemon shutdown, the station signs its head with the station key
(:mod:`certs.audit_chain` has the format and the verifier, which the partners' venv runs too). A
checkpoint due at an append is written in the same transaction as the entry it covers. Without a
station key installed no checkpoint is written (and ``audit verify`` says the chain is unsigned).
"""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs import documents
from certs.audit_chain import (
    EXPORT_FORMAT,
    GENESIS,
    Checkpoint,
    check_checkpoints,
    checkpoint_payload,
    entry_hash,
    numbering_problems,
)
from certs.errors import CertificateError
from certs.pki import StationSigner, TrustBundle, load_station_signer

__all__ = ["GENESIS", "AuditEntry", "AuditLog", "AuditReport", "canonical_json", "entry_hash", "evidence_sha256"]

DEFAULT_CHECKPOINT_EVERY = 100
DEFAULT_CHECKPOINT_MINUTES = 15.0
SignerSource = Callable[[], StationSigner | None]
"""Gives the station's signer, or None when no station key is installed."""

def station_signer_source(state_dir: Path) -> SignerSource:
    """The station key of ``state_dir`` for checkpoints, loaded the first time one is due; None when none is
    usable (not installed, or unreadable: the checkpoint waits; the change it would cover is not refused).

    Only a loaded key is kept: a failure (a moment of chmod, a half-written ``pki issue-station``) is tried
    again at the next due checkpoint, so a long-running daemon does not stop signing for the rest of its life.
    """
    loaded: list[StationSigner] = []

    def source() -> StationSigner | None:
        if not loaded:
            try:
                loaded.append(load_station_signer(state_dir))
            except (CertificateError, OSError):
                return None
        return loaded[0]

    return source


Transaction = Callable[[], AbstractContextManager[Any]]
"""Opens a write transaction on the log's connection (the store's :meth:`~agent.store.registry.Registry.transaction`):
committed at exit, rolled back on error."""


def evidence_sha256(value: Any) -> str | None:
    """SHA-256 of ``value`` in the chain's canonical form, as stored (``str()`` for what JSON has no form for):
    what an entry carries for large job data kept outside the chain (the method's recorded expectation, the
    canaries), so a later use of that data can prove it is what was chained. None: not hashable (NaN)."""
    try:
        stored = json.loads(json.dumps(value, sort_keys=True, default=str))
        return hashlib.sha256(documents.canonical_json(stored)).hexdigest()
    except (ValueError, TypeError, RecursionError):
        return None


def canonical_json(value: Any) -> str:
    """Keys sorted, no insignificant whitespace, no NaN: the form that is hashed."""
    return documents.canonical_json(value).decode("utf-8")


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
    checkpoints: int = 0
    anchored_to: int | None = None
    """The highest seq a checkpoint whose signature and head check out covers."""
    warnings: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"valid": self.valid, "entries": self.entries, "head": self.head, "problems": list(self.problems),
                "checkpoints": self.checkpoints, "anchored_to": self.anchored_to, "warnings": list(self.warnings)}


_HEAD_QUERY = (
    "SELECT head.seq, head.hash, signed.seq, (SELECT at FROM audit_log WHERE seq = coalesce(signed.seq, 0) + 1) "
    "FROM (SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1) AS head "
    "LEFT JOIN (SELECT seq FROM audit_checkpoints ORDER BY number DESC LIMIT 1) AS signed"
)


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(int(row[0]), str(row[1]), int(row[2]), str(row[3]), int(row[4]), str(row[5]), str(row[6]),
                      str(row[7]))


class AuditLog:
    """Append-only log on an open SQLite connection (the store's); each append is one transaction.

    Its tables are the store's (:mod:`agent.store.schema`): the connection must be of a migrated store.
    ``transaction`` is the store's own write scope, so an append outside a caller's transaction takes
    the lock the way every other writer of the store does (without one, a plain BEGIN IMMEDIATE)."""

    def __init__(self, db: sqlite3.Connection, signer: SignerSource | None = None,
                 transaction: Transaction | None = None) -> None:
        self.db = db
        self.signer = signer
        """Where checkpoints get the station key (None: this log never signs, e.g. a read-only look)."""
        self._begin = transaction
        self.checkpoint_every = DEFAULT_CHECKPOINT_EVERY
        self.checkpoint_minutes = DEFAULT_CHECKPOINT_MINUTES
        policy = self.db.execute("SELECT checkpoint_every, checkpoint_minutes FROM audit_policy WHERE id=1").fetchone()
        if policy is not None:
            self.checkpoint_every, self.checkpoint_minutes = int(policy[0]), float(policy[1])

    @contextmanager
    def _transaction(self, held: bool) -> Iterator[None]:
        """BEGIN IMMEDIATE … COMMIT (rolled back on error), unless the caller ``held`` one already."""
        if held:
            yield
            return
        if self._begin is not None:
            with self._begin():
                yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:  # also when COMMIT itself failed: never left open
                self.db.execute("ROLLBACK")
            raise

    def append(self, kind: str, subject: str, data: Any, *, at: datetime | None = None,
               in_transaction: bool = False, stringify: bool = False) -> AuditEntry:
        """Add an entry; with ``in_transaction`` the caller holds BEGIN IMMEDIATE … COMMIT.

        ``stringify``: values JSON has no form for (paths, enums) are stored as ``str()``, as the
        registry's journal stores them; otherwise they are a TypeError.
        """
        when = (at or datetime.now(UTC)).isoformat(timespec="milliseconds")
        # round-trip so the stored data is exactly what was hashed
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          default=str if stringify else None)
        data = json.loads(text)
        with self._transaction(in_transaction):
            # one indexed read: the head (seq is the rowid), the newest checkpoint's seq, and the time of the
            # first entry it does not cover (for the minutes rule)
            row = self.db.execute(_HEAD_QUERY).fetchone()
            seq = (int(row[0]) + 1) if row else 1
            prev = str(row[1]) if row else GENESIS
            signed = int(row[2]) if row and row[2] is not None else 0
            first_unsigned = str(row[3]) if row and row[3] is not None else when
            digest = entry_hash(prev, seq, when, kind, subject, data)
            self.db.execute(
                "INSERT INTO audit_log(seq, at, kind, subject, data_json, prev_hash, hash) VALUES(?,?,?,?,?,?,?)",
                (seq, when, kind, subject, text, prev, digest),
            )
            self.db.execute(
                "INSERT INTO audit_head(id, count, hash) VALUES(1, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET count=excluded.count, hash=excluded.hash",
                (seq, digest),
            )
            if self._due_after(seq, when, signed, first_unsigned):
                self._sign(seq, digest, when)
        return AuditEntry(seq, when, kind, subject, data, prev, digest)

    # configuration -----------------------------------------------------------------------------------
    def record_configuration(self, path: str, sha256: str | None, every: int, minutes: float, *,
                             at: datetime | None = None) -> AuditEntry | None:
        """Record the station configuration in use (its path and SHA-256) when it differs from the last one
        recorded, and adopt its checkpoint interval, in one transaction. Returns the entry, or None when the
        configuration is the one already recorded."""
        entry = None
        with self._transaction(False):
            row = self.db.execute("SELECT config_path, config_sha256, checkpoint_every, checkpoint_minutes "
                                  "FROM audit_policy WHERE id=1").fetchone()
            if row is None or (row[0], row[1], int(row[2]), float(row[3])) != (path, sha256, every, minutes):
                entry = self.append("configuration", path, {
                    "path": path, "sha256": sha256, "previous_sha256": row[1] if row else None,
                    "checkpoint_every": every, "checkpoint_minutes": minutes}, at=at, in_transaction=True)
                self.db.execute(
                    "INSERT INTO audit_policy(id, checkpoint_every, checkpoint_minutes, config_path, config_sha256) "
                    "VALUES(1,?,?,?,?) ON CONFLICT(id) DO UPDATE SET checkpoint_every=excluded.checkpoint_every, "
                    "checkpoint_minutes=excluded.checkpoint_minutes, config_path=excluded.config_path, "
                    "config_sha256=excluded.config_sha256", (every, minutes, path, sha256))
        self.checkpoint_every, self.checkpoint_minutes = every, minutes
        return entry

    def checkpoint_due(self, at: datetime | None = None) -> bool:
        """Whether the head should be signed now (the daemon's timer: the M minutes pass without an append)."""
        head = self.db.execute("SELECT max(seq) FROM audit_log").fetchone()
        if head is None or head[0] is None:
            return False
        return self._due(int(head[0]), (at or datetime.now(UTC)).isoformat(timespec="milliseconds"))

    # checkpoints -------------------------------------------------------------------------------------
    def _due_after(self, seq: int, when: str, signed: int, first_unsigned: str) -> bool:
        """Whether entry ``seq`` (at ``when``) completes a checkpoint interval: N entries since the newest
        checkpoint (at ``signed``), or M minutes since the first entry it does not cover."""
        if self.signer is None or seq <= signed:
            return False
        return seq - signed >= self.checkpoint_every or (
            datetime.fromisoformat(when) - datetime.fromisoformat(first_unsigned)
            >= timedelta(minutes=self.checkpoint_minutes))

    def _due(self, seq: int, when: str) -> bool:
        row = self.db.execute("SELECT seq FROM audit_checkpoints ORDER BY number DESC LIMIT 1").fetchone()
        signed = int(row[0]) if row else 0
        first = self.db.execute("SELECT at FROM audit_log WHERE seq=?", (signed + 1,)).fetchone()
        return first is not None and self._due_after(seq, when, signed, str(first[0]))

    def _sign(self, seq: int, head: str, when: str) -> Checkpoint | None:
        """Sign (seq, head) with the station key and store the checkpoint, inside the caller's transaction."""
        signer = self.signer() if self.signer is not None else None
        if signer is None:
            return None
        payload = checkpoint_payload(signer.station_id, seq, head, seq, when)
        signature = base64.b64encode(signer.private_key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode("ascii")
        certificate = base64.b64encode(signer.certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")
        cursor = self.db.execute(
            "INSERT INTO audit_checkpoints(station_id, seq, head, count, at, signature, certificate) "
            "VALUES(?,?,?,?,?,?,?)", (signer.station_id, seq, head, seq, when, signature, certificate))
        return Checkpoint(int(cursor.lastrowid or 0), signer.station_id, seq, head, seq, when, signature, certificate)

    def checkpoint(self, *, at: datetime | None = None, in_transaction: bool = False) -> Checkpoint | None:
        """Sign the current head now (the timer, shutdown), unless the latest checkpoint already covers it.

        Returns the new checkpoint; None when there is nothing new to sign or no station key.
        """
        when = (at or datetime.now(UTC)).isoformat(timespec="milliseconds")
        made = None
        with self._transaction(in_transaction):
            head = self.db.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
            latest = self.latest_checkpoint()
            if head is not None and (latest is None or latest.seq < int(head[0])):
                made = self._sign(int(head[0]), str(head[1]), when)
        return made

    _CHECKPOINT_SELECT = ("SELECT number, station_id, seq, head, count, at, signature, certificate "
                          "FROM audit_checkpoints")

    def checkpoints(self, up_to_seq: int | None = None, from_seq: int = 0) -> list[Checkpoint]:
        """Stored checkpoints, oldest first (optionally only those covering seq ``from_seq``…``up_to_seq``)."""
        rows = self.db.execute(f"{self._CHECKPOINT_SELECT} WHERE seq >= ? AND seq <= ? ORDER BY number",
                               (from_seq, up_to_seq if up_to_seq is not None else 2 ** 62)).fetchall()
        return [_checkpoint(row) for row in rows]

    def latest_checkpoint(self) -> Checkpoint | None:
        """The newest checkpoint (what a manifest carries as its anchor)."""
        row = self.db.execute(f"{self._CHECKPOINT_SELECT} ORDER BY number DESC LIMIT 1").fetchone()
        return _checkpoint(row) if row is not None else None

    # export ------------------------------------------------------------------------------------------
    def seq_at(self, moment: datetime, *, last: bool) -> int:
        """The first entry at or after ``moment`` (``last``: the last entry at or before it); 0 when none."""
        when = moment.astimezone(UTC).isoformat(timespec="milliseconds")
        query = ("SELECT max(seq) FROM audit_log WHERE at <= ?" if last
                 else "SELECT min(seq) FROM audit_log WHERE at >= ?")
        row = self.db.execute(query, (when,)).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def export(self, from_seq: int, to_seq: int, station_id: str, certificates: list[str]) -> dict[str, Any]:
        """A self-contained export of entries ``from_seq``…``to_seq``: the entries, the checkpoints whose seq
        lies in that range, the station certificate chain (PEM) and the format (see :mod:`certs.audit_chain`)."""
        rows = self.db.execute("SELECT seq, at, kind, subject, data_json, prev_hash, hash FROM audit_log "
                               "WHERE seq >= ? AND seq <= ? ORDER BY seq", (from_seq, to_seq)).fetchall()
        entries = [AuditEntry(int(r[0]), str(r[1]), str(r[2]), str(r[3]), json.loads(r[4]), str(r[5]), str(r[6]))
                   for r in rows]
        return {
            "format": EXPORT_FORMAT,
            "station_id": station_id,
            "exported_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "range": {"from_seq": from_seq, "to_seq": to_seq},
            "entries": [entry.to_json() for entry in entries],
            "checkpoints": [item.to_json() for item in self.checkpoints(to_seq, from_seq)],
            "certificates": certificates,
        }

    def entries(self, subject: str | None = None) -> list[AuditEntry]:
        """Entries in storage order (optionally only one subject's)."""
        query = "SELECT seq, at, kind, subject, data_json, prev_hash, hash FROM audit_log"
        rows = (self.db.execute(query + " WHERE subject=? ORDER BY seq", (subject,)) if subject
                else self.db.execute(query + " ORDER BY rowid")).fetchall()
        return [AuditEntry(int(r[0]), str(r[1]), str(r[2]), str(r[3]), json.loads(r[4]), str(r[5]), str(r[6]))
                for r in rows]

    def verify(self, *, bundle: TrustBundle | None = None, station: StationSigner | None = None) -> AuditReport:
        """Walk the chain in storage order; report every entry that does not fit.

        Checkpoints are checked against ``bundle`` (full station checks) when given, else against the
        installed ``station`` certificate (pinned); with neither, the certificate stored in the same row
        is all there is, and the report warns that the signers were not checked. With a station key
        installed, more than ``checkpoint_every`` entries after the newest checkpoint, or a gap in the
        checkpoint numbers, means checkpoints were deleted.
        """
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
        hashes = {int(row[0]): str(row[6]) for row in rows}
        checkpoints = self.checkpoints()
        pinned = None if station is None else frozenset(
            {base64.b64encode(station.certificate.public_bytes(serialization.Encoding.DER)).decode("ascii")})
        checkpoint_problems, anchored = check_checkpoints(
            checkpoints, hashes, max(hashes) if hashes else 0, bundle,
            station.station_id if station is not None else None, pinned)
        problems.extend(numbering_problems(checkpoints))
        problems.extend(checkpoint_problems)
        warnings: list[str] = []
        if bundle is None and station is None and checkpoints:
            warnings.append("no trust bundle and no station key installed: checkpoint signers were not checked "
                            "against anything (give --trust BUNDLE)")
        unsigned = (max(hashes) if hashes else 0) - (anchored or 0)
        # installing the key chains an entry through a signing registry, so a checkpoint is due at once
        if station is not None and unsigned > self.checkpoint_every:
            problems.append(f"{unsigned} entries after the newest valid checkpoint (seq {anchored or 0}) although "
                            f"the station key is installed and signs every {self.checkpoint_every}: checkpoints "
                            "deleted or replaced")
        return AuditReport(not problems, count, prev, tuple(problems), len(checkpoints), anchored, tuple(warnings))
