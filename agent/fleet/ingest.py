"""Ingest of what stations forward to the fleet: verified, idempotent, ordered per station, nothing lost.

A station forwards its outbox as batches of records, each numbered by the station's own outbox
sequence (1, 2, 3, … per station, never reused)::

    {"station_id": "station-07", "records": [{"seq": 41, "kind": "job", "key": "J-…", "body": {…}}, …]}

The fleet trusts nothing it is sent. ``ingest`` is given the station the transport *authenticated*
(the subject of its client certificate) and for every record, in order:

- a batch naming another station is refused whole, every record quarantined as ``foreign_station``;
- ``seq`` below the station's next expected one is a resend: the same bytes (by SHA-256 of the record's
  canonical JSON) are acknowledged again and change nothing; other bytes are ``duplicate_different``;
- ``seq`` above it (a gap) is ``out_of_order``, quarantined and not applied; the answer's ``next_seq``
  tells the station where to resume;
- at the expected ``seq`` the record is checked by kind — a job names its station; an audit entry's hash
  must match its content and link to the station's previous entry on the fleet; a checkpoint must be
  signed by this station's certificate from the organisation CA and sign the head the fleet holds; a
  document (certificate, failure report, manifest, destruction report, validation statement) must pass
  the partners' verifier (:func:`certs.verify.verify_data`) against the fleet's trust bundle and name this
  station — then applied; a record that fails is quarantined with the reason. Either way the sequence
  number is consumed (the record was received and kept, accepted or not), so one bad record cannot wedge
  a station's stream; the station sees the refusal in the answer.

Quarantine keeps the record as sent (body and all) with who sent it and why it was refused. A batch
is one transaction holding the station's row lock, so two fleet instances receiving from one station
apply its records one batch after another, never interleaved.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from agent.fleet.database import FleetDatabase
from agent.fleet.errors import FleetInputError
from agent.fleet.programme import assets_of_drives, recompute, record_facts
from agent.fleet.verifypool import DocumentVerifier
from agent.fleet.verifypool import digest as document_digest

GENESIS = "0" * 64
MAX_CLOCK_AHEAD = timedelta(days=1)
MAX_BATCH_RECORDS = 5_000
MAX_DOCUMENT_BYTES = 16 << 20
MAX_NUMBER = 1 << 62
"""Sequence and checkpoint numbers are stored as PostgreSQL BIGINT: a number past this is malformed input."""
MAX_REASON = 2000


class RecordKind(StrEnum):
    """What a forwarded record is."""

    JOB = "job"
    AUDIT = "audit"
    CHECKPOINT = "checkpoint"
    DOCUMENT = "document"


class Refusal(StrEnum):
    """Why a record was quarantined (stable codes: the station and the console show them)."""

    FOREIGN_STATION = "foreign_station"
    DUPLICATE_DIFFERENT = "duplicate_different"
    OUT_OF_ORDER = "out_of_order"
    MALFORMED = "malformed"
    CHAIN_BROKEN = "chain_broken"
    BAD_CHECKPOINT = "bad_checkpoint"
    BAD_DOCUMENT = "bad_document"


@dataclass
class IngestResult:
    """The answer to one batch: what was applied, acknowledged again or refused, and where to resume."""

    station_id: str
    next_seq: int
    accepted: list[int] = field(default_factory=list)
    resent: list[int] = field(default_factory=list)
    refused: list[tuple[int | None, str, str]] = field(default_factory=list)
    """(seq, code, reason) of each quarantined record."""

    def to_json(self) -> dict[str, Any]:
        return {"station_id": self.station_id, "next_seq": self.next_seq, "accepted": len(self.accepted),
                "resent": len(self.resent),
                "refused": [{"seq": seq, "code": code, "reason": reason} for seq, code, reason in self.refused]}


def canonical(value: Any) -> bytes:
    """The bytes a record's SHA-256 covers (sorted keys, no spaces, UTF-8, no NaN)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _storable(text: str, limit: int = MAX_REASON) -> str:
    """``text`` as PostgreSQL TEXT takes it: no NUL, no lone surrogate (escaped, not dropped), at most ``limit``."""
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")[:limit]


def _bounded(value: Any) -> bool:
    return type(value) is int and 0 < value < MAX_NUMBER


def record_sha256(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical({"kind": record.get("kind"), "key": record.get("key"),
                                     "body": record.get("body")})).hexdigest()


def _documents(records: list[Any]) -> list[tuple[str, bytes]]:
    """(key, bytes) of every well-formed document record of a batch, for verification ahead of the transaction."""
    found: list[tuple[str, bytes]] = []
    for record in records:
        if type(record) is not dict or record.get("kind") != RecordKind.DOCUMENT or type(record.get("key")) is not str:
            continue
        body = record.get("body")
        encoded = body.get("pdf") if type(body) is dict else None
        if type(encoded) is not str or len(encoded) > MAX_DOCUMENT_BYTES * 4 // 3 + 4:
            continue
        try:
            found.append((record["key"], base64.b64decode(encoded, validate=True)))
        except (binascii.Error, ValueError):
            continue
    return found


class _Refused(Exception):
    def __init__(self, code: Refusal, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _text(body: dict[str, Any], name: str, *, limit: int = 256, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if type(value) is not str or not value or len(value) > limit or "\x00" in value:
        raise _Refused(Refusal.MALFORMED, f"{name}: missing or not a string of at most {limit} characters")
    return value


def _int(body: dict[str, Any], name: str) -> int:
    value = body.get(name)
    if type(value) is not int:
        raise _Refused(Refusal.MALFORMED, f"{name}: missing or not an integer")
    return value


def _moment(body: dict[str, Any], name: str, *, required: bool = False) -> datetime | None:
    value = body.get(name)
    if value is None and not required:
        return None
    try:
        moment = datetime.fromisoformat(value) if type(value) is str and len(value) <= 64 else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _Refused(Refusal.MALFORMED, f"{name}: not an ISO 8601 time with a time zone")
    try:  # PostgreSQL stores year 0 or 10000 in UTC; reading such a row back fails in the driver for ever
        moment.astimezone(UTC)
    except OverflowError:
        raise _Refused(Refusal.MALFORMED, f"{name}: outside the years 1 to 9999 in UTC") from None
    # a time ahead of the fleet's clock would make a job every drive's latest, or a decision the last word,
    # for as long as the programme runs: a station clock a day fast is broken, not skewed
    if moment > datetime.now(UTC) + MAX_CLOCK_AHEAD:
        raise _Refused(Refusal.MALFORMED, f"{name}: {value} is more than {MAX_CLOCK_AHEAD.days} day ahead of the "
                                          "fleet's clock (is the station's clock right?)")
    return moment


def _count(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int or not 0 <= value < 1 << 62:
        raise _Refused(Refusal.MALFORMED, f"{name}: not a non-negative integer")
    return value


class Ingestor:
    """Ingest for one fleet database; ``bundle`` is the organisation's trust bundle (CA, CRL) that documents
    and checkpoints are verified against."""

    def __init__(self, fleet: FleetDatabase, bundle: Any, *, now: datetime | None = None,
                 accept_demo: bool = False, verifier: DocumentVerifier | None = None) -> None:
        self.fleet = fleet
        self.bundle = bundle
        self.now = now
        self.accept_demo = accept_demo
        """A demonstration document (``wipe-agent demo``) is evidence of nothing; only a demo fleet takes it."""
        self.verifier = verifier if verifier is not None else DocumentVerifier(bundle, workers=1)
        """Verifies a batch's documents before its transaction, in parallel where it has workers."""
        self._verified: dict[str, Any] = {}

    # -- the batch ------------------------------------------------------------------------------------
    def ingest(self, authenticated: str, batch: Any) -> IngestResult:
        """Apply one batch from the station ``authenticated`` (see the module docstring)."""
        if type(batch) is not dict or type(batch.get("records")) is not list:
            raise FleetInputError("a batch is an object with a 'records' list")
        records: list[Any] = batch["records"]
        if len(records) > MAX_BATCH_RECORDS:
            raise FleetInputError(f"a batch holds at most {MAX_BATCH_RECORDS} records, not {len(records)}")
        claimed = batch.get("station_id")
        # every document verified first, outside the transaction (its locks are held only to apply)
        self._verified = self.verifier.verify_many(_documents(records), self.now) if claimed == authenticated else {}
        with self.fleet.transaction() as db:
            state = self._station(db, authenticated)
            result = IngestResult(authenticated, state["next_seq"])
            if claimed != authenticated:
                named = repr(claimed)[:100] if type(claimed) is str else f"a {type(claimed).__name__}, not a station id"
                for record in records:
                    self._quarantine(db, authenticated, record, Refusal.FOREIGN_STATION,
                                     f"station {authenticated!r} pushed records claiming station {named}", result)
                return result
            seen = self._seen(db, authenticated, [r.get("seq") for r in records if type(r) is dict])
            jobs: list[tuple[Any, ...]] = []
            for record in records:
                self._one(db, authenticated, record, state, seen, result, jobs)
            touched: list[str] = state.pop("touched")
            touched.extend(job[7] for job in jobs if job[7])
            touched.extend(assets_of_drives(db, authenticated, [job[6] for job in jobs if job[6]]))
            self._flush_jobs(db, jobs)
            recompute(db, touched)
            db.execute("UPDATE fleet_stations SET next_seq = %s, audit_seq = %s, audit_head = %s, last_seen = now() "
                       "WHERE station_id = %s",
                       (state["next_seq"], state["audit_seq"], state["audit_head"], authenticated))
            result.next_seq = state["next_seq"]
        return result

    def _station(self, db: Any, station: str) -> dict[str, Any]:
        db.execute("INSERT INTO fleet_stations (station_id) VALUES (%s) ON CONFLICT (station_id) DO NOTHING",
                   (station,))
        row = db.execute("SELECT next_seq, audit_seq, audit_head FROM fleet_stations WHERE station_id = %s "
                         "FOR UPDATE", (station,)).fetchone()
        return {"next_seq": int(row[0]), "audit_seq": int(row[1]), "audit_head": str(row[2]), "touched": []}

    def _seen(self, db: Any, station: str, seqs: Iterable[Any]) -> dict[int, str]:
        wanted = [seq for seq in seqs if type(seq) is int]
        if not wanted:
            return {}
        rows = db.execute("SELECT seq, sha256 FROM fleet_records WHERE station_id = %s AND seq = ANY(%s)",
                          (station, wanted)).fetchall()
        return {int(seq): str(digest) for seq, digest in rows}

    def _one(self, db: Any, station: str, record: Any, state: dict[str, Any], seen: dict[int, str],
             result: IngestResult, jobs: list[tuple[Any, ...]]) -> None:
        if type(record) is not dict or not _bounded(record.get("seq")) or type(record.get("body")) is not dict \
                or record.get("kind") not in tuple(RecordKind) or type(record.get("key")) is not str:
            self._quarantine(db, station, record, Refusal.MALFORMED,
                             f"a record is an object with an integer seq (1 to {MAX_NUMBER - 1}), a kind of "
                             f"{', '.join(RecordKind)}, a string key and an object body", result)
            return
        seq: int = record["seq"]
        unreadable: str | None = None
        try:
            digest = record_sha256(record)
        except (TypeError, ValueError, RecursionError) as exc:
            # still numbered (its seq is consumed below, so the stream goes on), by the digest of a form that
            # always encodes (ASCII, or nothing for a body nested past the recursion limit)
            unreadable = f"not canonical JSON: {exc}"
            try:
                fallback = json.dumps([record["kind"], record["key"], record["body"]], sort_keys=True, default=repr)
            except (TypeError, ValueError, RecursionError):
                fallback = "unrepresentable"
            digest = "x" + hashlib.sha256(fallback.encode()).hexdigest()[1:]
        if seq < state["next_seq"]:
            if seen.get(seq) == digest:
                result.resent.append(seq)
            else:
                self._quarantine(db, station, record, Refusal.DUPLICATE_DIFFERENT,
                                 f"record {seq} was received before with other content", result)
            return
        if seq > state["next_seq"]:
            self._quarantine(db, station, record, Refusal.OUT_OF_ORDER,
                             f"record {seq} arrived before record {state['next_seq']}", result)
            return
        status, reason = "accepted", ""
        try:
            if unreadable is not None:
                raise _Refused(Refusal.MALFORMED, unreadable)
            if "\x00" in record["key"]:
                raise _Refused(Refusal.MALFORMED, "key: a NUL character (PostgreSQL text cannot hold it)")
            self._apply_isolated(db, station, record, state, jobs)
        except _Refused as refused:
            self._quarantine(db, station, record, refused.code, refused.reason, result)
            status, reason = "quarantined", refused.reason
        else:
            result.accepted.append(seq)
        db.execute("INSERT INTO fleet_records (station_id, seq, kind, key, sha256, status, reason) "
                   "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                   (station, seq, record["kind"], _storable(record["key"], 256), digest, status, _storable(reason)))
        seen[seq] = digest
        state["next_seq"] = seq + 1

    def _quarantine(self, db: Any, station: str, record: Any, code: Refusal, reason: str,
                    result: IngestResult) -> None:
        seq = record.get("seq") if type(record) is dict and _bounded(record.get("seq")) else None
        reason = _storable(reason)
        try:  # canonical JSON escapes NUL and every control character; a lone surrogate fails to encode
            body = canonical(record).decode()
        except (TypeError, ValueError, RecursionError):
            try:
                body = json.dumps(record, sort_keys=True, default=repr)  # ASCII: surrogates escaped
            except (TypeError, ValueError, RecursionError):
                body = json.dumps({"unrepresentable": type(record).__name__})  # nested past the recursion limit
        db.execute("INSERT INTO fleet_quarantine (station_id, seq, code, reason, record) VALUES (%s, %s, %s, %s, %s)",
                   (station, seq, str(code), reason, body))
        result.refused.append((seq, str(code), reason))

    # -- per kind ------------------------------------------------------------------------------------
    def _apply_isolated(self, db: Any, station: str, record: dict[str, Any], state: dict[str, Any],
                        jobs: list[tuple[Any, ...]]) -> None:
        """:meth:`_apply` such that whatever PostgreSQL refuses of one record refuses that record only: an
        audit entry, checkpoint or document is written under a savepoint (a job is checked for everything
        the database refuses and written with the batch's jobs at the end)."""
        if record["kind"] == RecordKind.JOB:
            self._apply(db, station, record, state, jobs)
            return
        import psycopg

        saved = (state["audit_seq"], state["audit_head"], len(state["touched"]))
        try:
            with db.transaction():  # a savepoint inside the batch's transaction
                self._apply(db, station, record, state, jobs)
        except psycopg.Error as error:
            state["audit_seq"], state["audit_head"] = saved[0], saved[1]
            del state["touched"][saved[2]:]
            message = " ".join(str(error).split()) or type(error).__name__
            raise _Refused(Refusal.MALFORMED, f"the fleet database cannot store it: {message}") from None
        except _Refused:
            state["audit_seq"], state["audit_head"] = saved[0], saved[1]
            del state["touched"][saved[2]:]
            raise

    def _apply(self, db: Any, station: str, record: dict[str, Any], state: dict[str, Any],
               jobs: list[tuple[Any, ...]]) -> None:
        kind, body = RecordKind(record["kind"]), record["body"]
        if kind is RecordKind.JOB:
            jobs.append(self._job(station, record["key"], body, record["seq"]))
        elif kind is RecordKind.AUDIT:
            self._audit(db, station, body, state)
        elif kind is RecordKind.CHECKPOINT:
            self._checkpoint(db, station, body, state)
        else:
            self._document(db, station, record["key"], body)

    def _job(self, station: str, key: str, body: dict[str, Any], seq: int) -> tuple[Any, ...]:
        """One job as the station's registry gives it (``JobRow.to_json``), reduced to the fleet's columns."""
        job_id = _text(body, "job_id")
        if job_id != key:
            raise _Refused(Refusal.MALFORMED, f"the record's key {key!r} is not the job's id {job_id!r}")
        named = body.get("station_id")
        if named is not None and named != station:
            raise _Refused(Refusal.FOREIGN_STATION, f"job {job_id} names station {named!r}")
        drive = body.get("drive")
        if type(drive) is not dict:
            raise _Refused(Refusal.MALFORMED, "drive: missing or not an object")
        host: dict[str, Any] = body["host"] if type(body.get("host")) is dict else {}
        asset = body.get("asset_tag") or host.get("asset") or host.get("asset_tag")
        certificate_id = body.get("certificate_id")
        for event in body.get("events") or []:  # the journal names the document the job was issued
            if type(event) is dict and event.get("event") == "certificate-issued" and type(event.get("data")) is dict:
                certificate_id = event["data"].get("certificate_id") or certificate_id
        if certificate_id is not None and (type(certificate_id) is not str or len(certificate_id) > 256):
            raise _Refused(Refusal.MALFORMED, "certificate_id: not a string of at most 256 characters")
        row = (station, job_id, _text(body, "state", limit=32), _text(body, "profile", required=False),
                _text(body, "method", required=False), _text(drive, "model", required=False),
                _text(drive, "serial", required=False), asset if type(asset) is str and len(asset) <= 256 else None,
                _moment(body, "created_at", required=True), _moment(body, "finished_at"),
                _text(body, "route", limit=32, required=False), certificate_id,
                canonical(body).decode(), seq, _text(drive, "media", limit=32, required=False),
                _text(body, "reason", limit=2000, required=False), _count(body, "bytes_written"))
        if any(type(value) is str and "\x00" in value for value in row):  # PostgreSQL TEXT refuses NUL
            raise _Refused(Refusal.MALFORMED, f"job {job_id}: a NUL character in its asset tag or certificate id")
        return row

    def _flush_jobs(self, db: Any, jobs: list[tuple[Any, ...]]) -> None:
        if not jobs:
            return
        with db.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO fleet_jobs (station_id, job_id, state, profile, method, model, serial, asset_tag, "
                "created_at, finished_at, route, certificate_id, body, updated_seq, media, reason, bytes_written) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (station_id, job_id) DO UPDATE SET state = excluded.state, profile = excluded.profile, "
                "method = excluded.method, model = excluded.model, serial = excluded.serial, "
                "asset_tag = excluded.asset_tag, created_at = excluded.created_at, "
                "finished_at = excluded.finished_at, route = excluded.route, "
                "certificate_id = excluded.certificate_id, body = excluded.body, updated_seq = excluded.updated_seq, "
                "media = excluded.media, reason = excluded.reason, bytes_written = excluded.bytes_written "
                "WHERE fleet_jobs.updated_seq < excluded.updated_seq", jobs)
        jobs.clear()

    def _audit(self, db: Any, station: str, body: dict[str, Any], state: dict[str, Any]) -> None:
        from certs.audit_chain import entry_hash

        seq = _int(body, "seq")
        at, kind, subject = _text(body, "at", limit=64), _text(body, "kind"), _text(body, "subject", limit=1024)
        _moment(body, "at", required=True)
        prev, digest = _text(body, "prev_hash", limit=64), _text(body, "hash", limit=64)
        if "data" not in body:
            raise _Refused(Refusal.MALFORMED, "data: missing")
        if seq != state["audit_seq"] + 1:
            raise _Refused(Refusal.CHAIN_BROKEN, f"audit entry {seq} does not follow entry {state['audit_seq']} "
                                                 "held by the fleet (entries missing, repeated or rewound)")
        if prev != state["audit_head"]:
            raise _Refused(Refusal.CHAIN_BROKEN, f"audit entry {seq}: previous-hash link broken: it does not "
                                                 "follow the entry the fleet holds (chain rewritten)")
        try:
            computed = entry_hash(str(prev), seq, str(at), str(kind), str(subject), body["data"])
        except (TypeError, ValueError) as exc:
            raise _Refused(Refusal.MALFORMED, f"audit entry {seq}: data cannot be hashed ({exc})") from None
        if computed != digest:
            raise _Refused(Refusal.CHAIN_BROKEN, f"audit entry {seq}: hash does not match its content (modified)")
        db.execute("INSERT INTO fleet_audit (station_id, seq, at, kind, subject, data, prev_hash, hash) "
                   "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                   (station, seq, at, kind, subject, canonical(body["data"]).decode(), prev, digest))
        state["audit_seq"], state["audit_head"] = seq, digest
        state["touched"].extend(record_facts(db, station, seq, str(at), str(kind), str(subject), body["data"]))

    def _checkpoint(self, db: Any, station: str, body: dict[str, Any], state: dict[str, Any]) -> None:
        from certs.audit_chain import AuditFileError, Checkpoint, check_checkpoints

        try:
            checkpoint = Checkpoint.from_json(body, "the checkpoint")
        except AuditFileError as error:
            raise _Refused(Refusal.MALFORMED, str(error)) from None
        if not _bounded(checkpoint.number) or not _bounded(checkpoint.seq):
            raise _Refused(Refusal.MALFORMED,
                           f"the checkpoint's number and seq are integers from 1 to {MAX_NUMBER - 1}")
        if checkpoint.station_id != station:
            raise _Refused(Refusal.FOREIGN_STATION, f"checkpoint signed for station {checkpoint.station_id!r}")
        held = db.execute("SELECT hash FROM fleet_audit WHERE station_id = %s AND seq = %s",
                          (station, checkpoint.seq)).fetchone()
        hashes = {checkpoint.seq: str(held[0])} if held else {}
        problems, _ = check_checkpoints([checkpoint], hashes, state["audit_seq"], self.bundle, station)
        if problems:
            raise _Refused(Refusal.BAD_CHECKPOINT, "; ".join(problems))
        text = canonical(checkpoint.to_json()).decode()
        # the number is not signed: the same signed checkpoint renumbered is a copy, not a second anchor
        copy = db.execute("SELECT number FROM fleet_checkpoints WHERE station_id = %s AND seq = %s AND head = %s "
                          "AND number <> %s", (station, checkpoint.seq, checkpoint.head, checkpoint.number)).fetchone()
        if copy is not None:
            raise _Refused(Refusal.DUPLICATE_DIFFERENT, f"the fleet holds a checkpoint of entry {checkpoint.seq} "
                                                        f"under number {copy[0]}; this one is a renumbered copy")
        stored = db.execute("INSERT INTO fleet_checkpoints (station_id, number, seq, head, at, body) "
                            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (station_id, number) DO NOTHING "
                            "RETURNING number",
                            (station, checkpoint.number, checkpoint.seq, checkpoint.head, checkpoint.at, text)
                            ).fetchone()
        if stored is None:  # the number is not signed: another checkpoint under a number the fleet holds
            held_body = db.execute("SELECT body FROM fleet_checkpoints WHERE station_id = %s AND number = %s",
                                   (station, checkpoint.number)).fetchone()
            if held_body is None or str(held_body[0]) != text:
                raise _Refused(Refusal.DUPLICATE_DIFFERENT, f"checkpoint {checkpoint.number} was received before "
                                                            "with other content")

    def _document(self, db: Any, station: str, key: str, body: dict[str, Any]) -> None:
        if "missing" in body:
            missing = str(body["missing"])[:500]
            raise _Refused(Refusal.BAD_DOCUMENT, f"the station could not read the document: {missing}")
        encoded = _text(body, "pdf", limit=MAX_DOCUMENT_BYTES * 4 // 3 + 4)
        try:
            data = base64.b64decode(str(encoded), validate=True)
        except (binascii.Error, ValueError):
            raise _Refused(Refusal.MALFORMED, "pdf: not base64") from None
        report = self._verified.get(document_digest(data))
        if report is None:  # not among the batch's pre-verified documents (they are keyed by their bytes)
            report = self.verifier.verify_one(key, data, self.now)
        if isinstance(report, str):  # the bytes are hostile until verified: a verifier failure refuses this one
            raise _Refused(Refusal.BAD_DOCUMENT, f"the verifier could not read it ({_storable(report, 300)})")
        if not report.valid:
            raise _Refused(Refusal.BAD_DOCUMENT, f"{report.code}: {report.reason}")
        if report.demo and not self.accept_demo:
            raise _Refused(Refusal.BAD_DOCUMENT, "a demonstration document (wipe-agent demo) is not evidence")
        named = report.record.station_id if report.record is not None else (report.document or {}).get("station_id")
        if named != station:
            raise _Refused(Refusal.FOREIGN_STATION, f"the document names station {named!r}")
        document_id = report.certificate_id or key
        digest = hashlib.sha256(data).hexdigest()
        existing = db.execute("SELECT sha256 FROM fleet_documents WHERE station_id = %s AND document_id = %s",
                              (station, document_id)).fetchone()
        if existing is not None and str(existing[0]) != digest:
            raise _Refused(Refusal.DUPLICATE_DIFFERENT, f"document {document_id} was received before with other bytes")
        db.execute("INSERT INTO fleet_documents (station_id, document_id, kind, sha256, signed_at, pdf) "
                   "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (station_id, document_id) DO NOTHING",
                   (station, document_id, str(report.kind), digest, report.signed_at, data))
