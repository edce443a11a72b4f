"""A station's outbox to the fleet: everything it records, numbered once, forwarded until acknowledged.

The station's registry stays the source of truth and the station never waits for the fleet: nothing on
the job path writes here. ``fill`` (run before each push, by the daemon's timer or ``fleet push``) reads
what the registry gained since the last fill — journal events (each touched job is forwarded as a
snapshot with its journal), audit entries, signed checkpoints, and the PDFs of certificates and failure
reports, validation statements, destruction reports and manifests — and appends it to the outbox in one
transaction, each record under the next outbox sequence number. Once written a record never changes: a
resend after any outage carries the same bytes, which is what makes the fleet's ingest idempotent (station
id + outbox seq + SHA-256).

``push`` asks the fleet where this station's stream resumes and sends from there in batches, in order;
an answer's refusals are kept beside the outbox (``fleet status`` shows them). A fleet restored from an
older backup simply asks for older records again: they are all still here.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from agent.fleet.errors import FleetUnavailable
from agent.store.registry import Registry

DOCUMENT_EVENTS = ("certificate-issued",)
AUDIT_DOCUMENTS = {"validation-statement": "pdf", "destruction": "report_path", "manifest": "pdf"}
"""Audit entries whose data names a signed document of the station's (the key that holds its path)."""
MAX_DOCUMENT_BYTES = 16 << 20
DEFAULT_BATCH = 500


class FleetTransport(Protocol):
    """What ``push`` needs of the fleet (the real one is :class:`agent.fleet.client.FleetClient`)."""

    def next_seq(self) -> int: ...

    def push(self, batch: dict[str, Any]) -> dict[str, Any]: ...


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                      default=str)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class OutboxStatus:
    """The backlog: what is recorded, what the fleet acknowledged, what it refused."""

    station_id: str
    records: int
    acknowledged: int
    refused: int
    oldest_unacknowledged: str | None
    last_acknowledged_at: str | None

    @property
    def backlog(self) -> int:
        return self.records - self.acknowledged

    def to_json(self) -> dict[str, Any]:
        return {"station_id": self.station_id, "records": self.records, "acknowledged": self.acknowledged,
                "backlog": self.backlog, "refused": self.refused,
                "oldest_unacknowledged": self.oldest_unacknowledged,
                "last_acknowledged_at": self.last_acknowledged_at}


@dataclass(frozen=True)
class PushResult:
    """One push: how many records went, how many the fleet took, refused, and where it now stands."""

    sent: int
    accepted: int
    resent: int
    refused: int
    next_seq: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Outbox:
    """The outbox in the station's registry file (``registry`` is open)."""

    def __init__(self, registry: Registry, station_id: str) -> None:
        self.registry = registry
        self.station_id = station_id  # its tables are the store's (agent.store.schema, step 4)

    # -- fill ------------------------------------------------------------------------------------------
    def fill(self) -> int:
        """Append what the registry gained since the last fill; returns how many records were added."""
        added = 0
        with self.registry.transaction() as tx:
            marks = {row[0]: int(row[1]) for row in tx.execute("SELECT stream, mark FROM fleet_outbox_marks")}
            seq_row = tx.execute("SELECT coalesce(max(seq), 0) FROM fleet_outbox").fetchone()
            seq = int(seq_row[0])
            created = _now()

            def append(kind: str, key: str, body: dict[str, Any]) -> None:
                nonlocal seq, added
                seq += 1
                added += 1
                text = _canonical(body)
                digest = hashlib.sha256(_canonical({"kind": kind, "key": key, "body": json.loads(text)})
                                        .encode()).hexdigest()
                tx.execute("INSERT INTO fleet_outbox (seq, kind, key, body, sha256, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?)", (seq, kind, key, text, digest, created))

            # audit entries first, then the checkpoints that cover them (the fleet checks a checkpoint
            # against the entries it already holds)
            audit_mark = marks.get("audit", 0)
            newest_audit = audit_mark
            station_documents: list[tuple[str, str]] = []
            for row in tx.execute("SELECT seq, at, kind, subject, data_json, prev_hash, hash FROM audit_log "
                                  "WHERE seq > ? ORDER BY seq", (audit_mark,)).fetchall():
                data = json.loads(row[4])
                append("audit", f"audit-{row[0]}", {"seq": row[0], "at": row[1], "kind": row[2], "subject": row[3],
                                                    "data": data, "prev_hash": row[5], "hash": row[6]})
                newest_audit = int(row[0])
                path = data.get(AUDIT_DOCUMENTS[row[2]]) if row[2] in AUDIT_DOCUMENTS and isinstance(data, dict) \
                    else None
                if isinstance(path, str) and path:
                    station_documents.append((str(row[3]), path))
            checkpoint_mark = marks.get("checkpoints", 0)
            newest_checkpoint = checkpoint_mark
            for row in tx.execute("SELECT number, station_id, seq, head, count, at, signature, certificate "
                                  "FROM audit_checkpoints WHERE number > ? AND seq <= ? ORDER BY number",
                                  (checkpoint_mark, newest_audit)).fetchall():
                append("checkpoint", f"checkpoint-{row[0]}", {
                    "number": row[0], "station_id": row[1], "seq": row[2], "head": row[3], "count": row[4],
                    "at": row[5], "signature": row[6], "certificate": row[7]})
                newest_checkpoint = int(row[0])
            # jobs touched since the last fill: a snapshot each, with its journal; then their new documents
            event_mark = marks.get("job_events", 0)
            events = tx.execute("SELECT id, job_id, event, data_json FROM job_events WHERE id > ? ORDER BY id",
                                (event_mark,)).fetchall()
            newest_event = int(events[-1][0]) if events else event_mark
            # a secondary verification (verify-media --job: a compliance sample's result) changes the job's
            # snapshot without a journal event
            verification_mark = marks.get("verifications", 0)
            checks = tx.execute("SELECT id, job_id FROM verifications WHERE id > ? ORDER BY id",
                                (verification_mark,)).fetchall()
            newest_verification = int(checks[-1][0]) if checks else verification_mark
            touched = list(dict.fromkeys([*(str(row[1]) for row in events),
                                          *(str(row[1]) for row in checks if row[1] is not None)]))
            for job_id in touched:
                job = self.registry.job(job_id).to_json()
                job["events"] = self.registry.events(job_id)
                append("job", job_id, job)
            for row in events:
                if row[2] in DOCUMENT_EVENTS:
                    data = json.loads(row[3])
                    document = self._document(str(data.get("path") or ""))
                    append("document", str(data.get("certificate_id") or Path(str(data.get("path"))).name), document)
            # the station's own signed documents: validation statements, destruction reports, manifests
            for key, path in station_documents:
                append("document", key, self._document(path))
            for stream, mark in (("audit", newest_audit), ("checkpoints", newest_checkpoint),
                                 ("job_events", newest_event), ("verifications", newest_verification)):
                tx.execute("INSERT INTO fleet_outbox_marks (stream, mark) VALUES (?, ?) "
                           "ON CONFLICT (stream) DO UPDATE SET mark = excluded.mark", (stream, mark))
        return added

    @staticmethod
    def _document(path: str) -> dict[str, Any]:
        """The PDF's bytes for the fleet; a document gone from disk is forwarded as a note the fleet keeps
        (quarantined as malformed, so the exception is visible there), never silently skipped."""
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_DOCUMENT_BYTES + 1)
        except OSError as error:
            return {"missing": f"{path}: {error.strerror or error}"}
        if len(data) > MAX_DOCUMENT_BYTES:
            return {"missing": f"{path}: larger than {MAX_DOCUMENT_BYTES} bytes"}
        return {"pdf": base64.b64encode(data).decode("ascii"), "sha256": hashlib.sha256(data).hexdigest()}

    # -- push ------------------------------------------------------------------------------------------
    def push(self, fleet: FleetTransport, *, batch: int = DEFAULT_BATCH) -> PushResult:
        """Fill, then send from where the fleet resumes, in order, until nothing is left (or it fails:
        :class:`FleetUnavailable`, with what was acknowledged so far kept)."""
        self.fill()
        start = fleet.next_seq()
        newest = self._newest()
        if start > newest + 1:
            raise FleetUnavailable(f"the fleet expects record {start} from {self.station_id}, but this station has "
                                   f"recorded only {newest}: is this the right fleet, or the right station?")
        sent = accepted = resent = refused = 0
        while start <= newest:
            rows = self.registry.db.execute("SELECT seq, kind, key, body FROM fleet_outbox WHERE seq >= ? "
                                            "ORDER BY seq LIMIT ?", (start, batch)).fetchall()
            records = [{"seq": int(row[0]), "kind": row[1], "key": row[2], "body": json.loads(row[3])}
                       for row in rows]
            answer = fleet.push({"station_id": self.station_id, "records": records})
            next_seq = answer.get("next_seq")
            if type(next_seq) is not int or next_seq <= start:
                raise FleetUnavailable(f"the fleet did not advance past record {start} (answered {next_seq!r})")
            sent += len(records)
            accepted += int(answer.get("accepted") or 0)
            resent += int(answer.get("resent") or 0)
            refusals = answer.get("refused") or []
            refused += len(refusals)
            with self.registry.transaction() as tx:
                for item in refusals:
                    if isinstance(item, dict) and type(item.get("seq")) is int:
                        tx.execute("INSERT INTO fleet_outbox_refusals (seq, code, reason, at) VALUES (?, ?, ?, ?) "
                                   "ON CONFLICT (seq) DO UPDATE SET code = excluded.code, reason = excluded.reason",
                                   (item["seq"], str(item.get("code")), str(item.get("reason"))[:2000], _now()))
                tx.execute("INSERT INTO fleet_outbox_acks (id, acked, at) VALUES (1, ?, ?) "
                           "ON CONFLICT (id) DO UPDATE SET acked = max(acked, excluded.acked), at = excluded.at",
                           (next_seq - 1, _now()))
            start = next_seq
        return PushResult(sent, accepted, resent, refused, start)

    def _newest(self) -> int:
        row = self.registry.db.execute("SELECT coalesce(max(seq), 0) FROM fleet_outbox").fetchone()
        return int(row[0])

    # -- status ----------------------------------------------------------------------------------------
    def status(self) -> OutboxStatus:
        db = self.registry.db
        newest = self._newest()
        ack = db.execute("SELECT acked, at FROM fleet_outbox_acks WHERE id = 1").fetchone()
        acked = min(int(ack[0]), newest) if ack else 0
        oldest = db.execute("SELECT created_at FROM fleet_outbox WHERE seq = ?", (acked + 1,)).fetchone()
        refused = db.execute("SELECT count(*) FROM fleet_outbox_refusals").fetchone()
        return OutboxStatus(self.station_id, newest, acked, int(refused[0]), str(oldest[0]) if oldest else None,
                            str(ack[1]) if ack else None)

    def refusals(self) -> list[dict[str, Any]]:
        rows = self.registry.db.execute("SELECT r.seq, o.kind, o.key, r.code, r.reason, r.at FROM "
                                        "fleet_outbox_refusals r LEFT JOIN fleet_outbox o USING (seq) "
                                        "ORDER BY r.seq").fetchall()
        return [{"seq": row[0], "kind": row[1], "key": row[2], "code": row[3], "reason": row[4], "at": row[5]}
                for row in rows]
