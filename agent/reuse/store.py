"""The reuse layer's tables, in the registry's SQLite file, each write journaled in the audit log.

Created by the store's migration ladder (:mod:`agent.store.schema`), like every other table. Every
mutating method writes its row and the matching audit entry in one transaction, so the audit log
never misses a decision, attestation, validation, destruction or manifest.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.audit.log import AuditLog
from agent.reuse.errors import ReuseInputError, ReuseRefused
from agent.reuse.health import HealthReading
from agent.store.registry import JobRow, Registry, has_serial
from certs.record import asset_key, asset_tag_problem
from certs.validation import person_key

# the intake stores the host's tag as "asset_tag"; the design named it "asset": accept both
_HOST_ASSET = "coalesce(json_extract(host_json, '$.asset'), json_extract(host_json, '$.asset_tag'))"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class HostRecord:
    """A host device: asset tag, kind, make, model, serial (registered, or learnt from intake)."""

    asset: str
    kind: str
    make: str
    model: str
    serial: str
    registered: bool

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


class ReuseStore:
    """Reuse records on an open :class:`~agent.store.registry.Registry`."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.db = registry.db
        self.audit: AuditLog = registry.audit  # one chain per registry: the jobs' entries and these
        # statement PDFs already checked by this store, keyed by (SHA-256 of the file's bytes, trust bundle):
        # one statement over 200 certificates is verified once per command, not once per drive
        self.checked_statements: dict[tuple[str, str], Any] = {}

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """The store's transaction: each write and its audit entry commit together, or neither."""
        with self.registry.transaction() as tx:
            yield tx

    # hosts ---------------------------------------------------------------------------------------
    def register_host(self, asset: str, *, kind: str = "laptop", make: str = "", model: str = "", serial: str = "",
                      drive_serials: tuple[str, ...] = ()) -> HostRecord:
        """Register a host device and (optionally) the drives it held, by drive serial."""
        problem = asset_tag_problem(asset)
        if problem:
            raise ReuseInputError(f"asset tag {asset!r} {problem}")
        now = _now()
        with self._write() as tx:
            # one label, one host: "pc-1" or a full-width "PC-1" is the host "PC-1" again, not a second one
            other = next((str(row[0]) for row in tx.execute("SELECT asset FROM reuse_hosts WHERE asset != ?", (asset,))
                          if asset_key(str(row[0])) == asset_key(asset)), None)
            if other is not None:
                raise ReuseInputError(f"asset tag {asset!r} is host {other!r} spelled another way: use {other!r}")
            for drive_serial in drive_serials:
                # a drive belongs to one host: a second owner would put one certificate in two rows
                owner = tx.execute("SELECT asset FROM reuse_host_drives WHERE drive_serial=? AND asset!=?",
                                   (drive_serial, asset)).fetchone()
                if owner is not None:
                    raise ReuseInputError(f"drive {drive_serial} is already registered to host {owner[0]}")
            tx.execute("INSERT INTO reuse_hosts(asset, kind, make, model, serial, created_at) VALUES(?,?,?,?,?,?) "
                       "ON CONFLICT(asset) DO UPDATE SET kind=excluded.kind, make=excluded.make, "
                       "model=excluded.model, serial=excluded.serial", (asset, kind, make, model, serial, now))
            for drive_serial in drive_serials:
                tx.execute("INSERT OR IGNORE INTO reuse_host_drives(asset, drive_serial, at) VALUES(?,?,?)",
                           (asset, drive_serial, now))
            self.audit.append("host-registered", asset, {"kind": kind, "make": make, "model": model, "serial": serial,
                                                          "drive_serials": list(drive_serials)}, in_transaction=True)
        return self.host(asset)

    def host(self, asset: str) -> HostRecord:
        """The host record (registered, else learnt from an intake's ``host`` on its jobs)."""
        registered = self.registered_host(asset)
        if registered is not None:
            return registered
        jobs = self.jobs_of(asset)
        if not jobs:
            raise ReuseInputError(f"unknown asset {asset!r}: no host registered and no job names it")
        host = next((job.host for job in reversed(jobs) if job.host), None) or {}
        return HostRecord(asset, str(host.get("kind") or "laptop"), str(host.get("make") or ""),
                          str(host.get("model") or ""), str(host.get("serial") or ""), False)

    def registered_host(self, asset: str) -> HostRecord | None:
        """The host registered under ``asset`` ('wipe-agent host add'), or None."""
        row = self.db.execute("SELECT * FROM reuse_hosts WHERE asset=?", (asset,)).fetchone()
        return None if row is None else HostRecord(asset, row["kind"], row["make"], row["model"], row["serial"], True)

    def assets(self) -> list[str]:
        """Every asset the station knows: registered hosts and asset tags on jobs."""
        # a drive registered to a host belongs to that host only, whatever tag its job carried
        unclaimed = ("jobs.drive_id IN (SELECT id FROM drives WHERE serial NOT IN "
                     "(SELECT drive_serial FROM reuse_host_drives))")
        rows = self.db.execute(
            "SELECT asset FROM reuse_hosts "
            f"UNION SELECT asset_tag FROM jobs WHERE asset_tag IS NOT NULL AND {unclaimed} "
            f"UNION SELECT {_HOST_ASSET} FROM jobs WHERE host_json IS NOT NULL AND {_HOST_ASSET} IS NOT NULL "
            f"AND {unclaimed}"
        ).fetchall()
        return sorted(str(row[0]) for row in rows if row[0])

    def jobs_of(self, asset: str) -> list[JobRow]:
        """Every job of the host, oldest first: by a drive serial registered to it, or by asset tag / intake host
        unless the drive is registered to another host."""
        rows = self.db.execute(
            "SELECT jobs.id FROM jobs JOIN drives ON drives.id = jobs.drive_id WHERE "
            "drives.serial IN (SELECT drive_serial FROM reuse_host_drives WHERE asset = ?) "
            f"OR ((jobs.asset_tag = ? OR (jobs.host_json IS NOT NULL AND {_HOST_ASSET} = ?)) "
            "AND drives.serial NOT IN (SELECT drive_serial FROM reuse_host_drives WHERE asset != ?)) "
            "ORDER BY jobs.created_at, jobs.rowid", (asset, asset, asset, asset),
        ).fetchall()
        return [self.registry.job(str(row[0])) for row in rows]

    def held_drives(self, asset: str) -> list[JobRow]:
        """The latest job of each drive the host held, keyed like the registry by (model, serial), in first-seen
        order. A drive without a serial cannot be told apart from another: each of its jobs is kept."""
        latest: dict[tuple[str, str], JobRow] = {}
        for job in self.jobs_of(asset):
            serial = job.drive.serial if has_serial(job.drive.serial) else f"job:{job.id}"
            latest[(job.drive.model, serial)] = job
        linked = [str(r[0]) for r in self.db.execute(
            "SELECT drive_serial FROM reuse_host_drives WHERE asset=? ORDER BY rowid", (asset,))]
        seen = {job.drive.serial for job in latest.values()}
        missing = [serial for serial in linked if serial not in seen]
        if missing:
            raise ReuseInputError(f"asset {asset}: drive(s) {', '.join(missing)} registered but never seen in a job")
        return list(latest.values())

    def verification_after(self, job: JobRow) -> dict[str, Any] | None:
        """The drive's most recent verification other than the job's own (a spot check, or another job's) recorded
        at or after ``job`` finished; None when there is none."""
        if job.finished_at is None:
            return None
        row = self.db.execute(
            "SELECT job_id, at, mode, passed FROM verifications "
            "WHERE drive_id = (SELECT drive_id FROM jobs WHERE id = ?) AND (job_id IS NULL OR job_id != ?) "
            "AND at >= ? ORDER BY at DESC, id DESC LIMIT 1", (job.id, job.id, job.finished_at)).fetchone()
        if row is None:
            return None
        return {"job_id": row[0], "at": str(row[1]), "mode": str(row[2]), "passed": bool(row[3])}

    # health --------------------------------------------------------------------------------------
    def record_health(self, reading: HealthReading, drive_serial: str | None = None,
                      drive_model: str | None = None) -> int:
        """Store a SMART reading (with its source) for a drive (model, serial); each defaults to the reading's.

        Not cross-checked here: :func:`agent.reuse.service.file_health` refuses a reading naming another drive."""
        serial = (drive_serial or reading.serial).strip()
        model = (drive_model if drive_model is not None else reading.model).strip()
        if not has_serial(serial):
            raise ReuseInputError("the health reading names no drive serial")
        with self._write() as tx:
            cursor = tx.execute(
                "INSERT INTO reuse_health(drive_serial, model, at, status, source, reading_json) VALUES(?,?,?,?,?,?)",
                (serial, model, _now(), reading.status, reading.source, json.dumps(reading.to_json())))
            self.audit.append("health-reading", serial,
                              {**reading.to_json(), "filed_for": {"model": model, "serial": serial}},
                              in_transaction=True)
        return int(cursor.lastrowid or 0)

    def latest_health(self, model: str, serial: str) -> tuple[int, HealthReading] | None:
        """The latest reading filed for a drive (model, serial), with its id; never for a drive without a serial."""
        if not has_serial(serial):
            return None
        row = self.db.execute("SELECT id, reading_json FROM reuse_health WHERE drive_serial=? AND model=? "
                              "ORDER BY id DESC LIMIT 1", (serial, model)).fetchone()
        return (int(row[0]), HealthReading.from_json(json.loads(row[1]))) if row else None

    def health_before(self, model: str, serial: str, moment: str) -> tuple[str, HealthReading] | None:
        """The latest reading filed for a drive at or before ``moment`` (ISO 8601), with when it was filed:
        the SMART summary a certificate prints is the one read before the wipe, never one taken after."""
        if not has_serial(serial):
            return None
        limit = datetime.fromisoformat(moment)
        for at, reading_json in self.db.execute("SELECT at, reading_json FROM reuse_health WHERE drive_serial=? "
                                                "AND model=? ORDER BY id DESC", (serial, model)):
            if datetime.fromisoformat(at) <= limit:
                return str(at), HealthReading.from_json(json.loads(reading_json))
        return None

    def registry_models(self, serial: str) -> list[str]:
        """The models of the registry's drives with this serial."""
        return sorted(str(r[0]) for r in self.db.execute("SELECT model FROM drives WHERE serial=?", (serial,)))

    # people --------------------------------------------------------------------------------------
    def attest(self, asset: str, item: str, by: str) -> dict[str, Any]:
        """Record that a person checked a condition software cannot (e.g. BIOS password cleared)."""
        entry = {"asset": asset, "item": item, "by": by, "at": _now()}
        with self._write() as tx:
            tx.execute("INSERT INTO reuse_attestations(asset, item, by_name, at) VALUES(?,?,?,?)",
                       (asset, item, by, entry["at"]))
            self.audit.append("attestation", asset, entry, in_transaction=True)
        return entry

    def attestations(self, asset: str) -> dict[str, dict[str, str]]:
        """Item → latest attestation of the asset."""
        rows = self.db.execute("SELECT item, by_name, at FROM reuse_attestations WHERE asset=? ORDER BY id",
                               (asset,)).fetchall()
        return {str(r[0]): {"by": str(r[1]), "at": str(r[2])} for r in rows}

    def record_statement(self, statement: dict[str, Any], pdf_path: str, sha256: str,
                         jobs: list[tuple[str, str, str]]) -> dict[str, Any]:
        """Store a signed validation statement linked to each (job id, certificate id, record hash), with its
        audit entry, in one transaction."""
        entry = {"statement_id": statement["document_id"], "decision": statement["decision"], "by": statement["by"],
                 "role": statement["role"], "at": statement["created_at"], "signer_kind": statement["signer_kind"],
                 "reason": statement["reason"], "pdf": pdf_path, "statement_sha256": sha256,
                 "jobs": [{"job_id": job, "certificate_id": cid, "record_sha256": digest} for job, cid, digest in jobs]}
        with self._write() as tx:
            tx.execute("INSERT INTO reuse_validation_statements(id, at, decision, by_name, role, signer_kind, reason, "
                       "pdf_path, statement_sha256, statement_json) VALUES(?,?,?,?,?,?,?,?,?,?)",
                       (statement["document_id"], statement["created_at"], statement["decision"], statement["by"],
                        statement["role"], statement["signer_kind"], statement["reason"], pdf_path, sha256,
                        json.dumps(statement, sort_keys=True)))
            tx.executemany("INSERT INTO reuse_statement_jobs(statement_id, job_id, certificate_id, record_sha256) "
                           "VALUES(?,?,?,?)", [(statement["document_id"], *job) for job in jobs])
            self.audit.append("validation-statement", statement["document_id"], entry, in_transaction=True)
        return entry

    def validations(self, job_id: str) -> list[dict[str, str]]:
        """Validations recorded for a job, oldest first: signed statements (``statement_id`` set) and, from
        registries older than signed statements, unsigned rows (``signer_kind`` "unsigned", never accepted
        by a scheme that requires validation)."""
        unsigned = self.db.execute("SELECT by_name, role, at FROM reuse_validations WHERE job_id=? ORDER BY id",
                                   (job_id,)).fetchall()
        signed = self.db.execute(
            "SELECT s.id, s.decision, s.by_name, s.role, s.at, s.signer_kind, s.reason, j.certificate_id, "
            "j.record_sha256 FROM reuse_statement_jobs j JOIN reuse_validation_statements s ON s.id = j.statement_id "
            "WHERE j.job_id=? ORDER BY s.at, s.rowid", (job_id,)).fetchall()
        result = [{"by": str(r[0]), "role": str(r[1]), "at": str(r[2]), "decision": "accept", "statement_id": "",
                   "signer_kind": "unsigned", "reason": "", "certificate_id": "", "record_sha256": ""}
                  for r in unsigned]
        result += [{"statement_id": str(r[0]), "decision": str(r[1]), "by": str(r[2]), "role": str(r[3]),
                    "at": str(r[4]), "signer_kind": str(r[5]), "reason": str(r[6]), "certificate_id": str(r[7]),
                    "record_sha256": str(r[8])} for r in signed]
        return result

    def statement_files(self, job_id: str) -> dict[str, tuple[str, str]]:
        """Statement id → (PDF path, statement SHA-256 recorded when it was signed) for a job's statements."""
        rows = self.db.execute(
            "SELECT s.id, s.pdf_path, s.statement_sha256 FROM reuse_statement_jobs j "
            "JOIN reuse_validation_statements s ON s.id = j.statement_id WHERE j.job_id=?", (job_id,)).fetchall()
        return {str(r[0]): (str(r[1]), str(r[2])) for r in rows}

    def chained_statements(self, job_id: str) -> dict[str, dict[str, Any]]:
        """Statement id → its ``validation-statement`` audit entry, for every statement the chain says covers
        ``job_id``: what was signed, independent of the statement tables (a deleted row is still here)."""
        rows = self.db.execute(
            "SELECT subject, data_json FROM audit_log WHERE kind='validation-statement' AND EXISTS "
            "(SELECT 1 FROM json_each(audit_log.data_json, '$.jobs') WHERE json_extract(value, '$.job_id') = ?) "
            "ORDER BY seq", (job_id,)).fetchall()
        return {str(r[0]): json.loads(r[1]) for r in rows}

    def officers(self) -> set[str]:
        """The names (:func:`certs.validation.person_key`) of everyone who signed a statement with their own
        validator certificate at this station, from the statement rows and the audit chain."""
        rows = self.db.execute(
            "SELECT by_name FROM reuse_validation_statements WHERE signer_kind='officer' UNION "
            "SELECT json_extract(data_json, '$.by') FROM audit_log WHERE kind='validation-statement' "
            "AND json_extract(data_json, '$.signer_kind')='officer'").fetchall()
        return {person_key(str(r[0])) for r in rows if r[0]}

    def job_for_certificate(self, certificate_id: str) -> str | None:
        """The job whose journal records issuing ``certificate_id`` (None when this registry never issued it)."""
        row = self.db.execute("SELECT job_id FROM job_events WHERE event='certificate-issued' AND "
                              "json_extract(data_json, '$.certificate_id')=? ORDER BY id DESC LIMIT 1",
                              (certificate_id,)).fetchone()
        return str(row[0]) if row else None

    # decisions -----------------------------------------------------------------------------------
    def record_decision(self, asset: str, route: str, decision: dict[str, Any]) -> int:
        """Store an eligibility decision with its inputs."""
        with self._write() as tx:
            cursor = tx.execute("INSERT INTO reuse_decisions(asset, at, route, decision_json) VALUES(?,?,?,?)",
                                (asset, _now(), route, json.dumps(decision, sort_keys=True, default=str)))
            self.audit.append("eligibility-decision", asset, decision, in_transaction=True)
        return int(cursor.lastrowid or 0)

    def latest_decision(self, asset: str) -> dict[str, Any] | None:
        """The latest decision for an asset."""
        row = self.db.execute("SELECT decision_json FROM reuse_decisions WHERE asset=? ORDER BY id DESC LIMIT 1",
                              (asset,)).fetchone()
        return json.loads(row[0]) if row else None

    # destruction ---------------------------------------------------------------------------------
    def destruction(self, asset: str) -> dict[str, Any] | None:
        """The destruction record of an asset, if any."""
        row = self.db.execute("SELECT record_json, report_path FROM reuse_destructions WHERE asset=?",
                              (asset,)).fetchone()
        return {**json.loads(row[0]), "report_path": row[1]} if row else None

    def record_destruction(self, record: dict[str, Any], report_path: str, report_sha256: str) -> None:
        """Store a destruction record (one per asset)."""
        with self._write() as tx:
            try:
                tx.execute(
                    "INSERT INTO reuse_destructions(id, asset, at, method, witness, reference, report_path, "
                    "report_sha256, record_json) VALUES(?,?,?,?,?,?,?,?,?)",
                    (record["document_id"], record["asset"], record["created_at"], record["method"],
                     record["witness"], record.get("reference"), report_path, report_sha256,
                     json.dumps(record, sort_keys=True)))
            except sqlite3.IntegrityError as exc:
                raise ReuseRefused(f"asset {record['asset']}: destruction already recorded") from exc
            self.audit.append("destruction", record["asset"], {**record, "report_path": report_path,
                                                               "report_sha256": report_sha256}, in_transaction=True)

    # manifests -----------------------------------------------------------------------------------
    def shipped_in(self, asset: str) -> str | None:
        """The manifest that already holds an asset."""
        row = self.db.execute("SELECT manifest_id FROM reuse_manifest_assets WHERE asset=?", (asset,)).fetchone()
        return str(row[0]) if row else None

    def job_shipped_in(self, job_id: str) -> str | None:
        """The manifest that already lists a drive's job."""
        row = self.db.execute("SELECT manifest_id FROM reuse_manifest_jobs WHERE job_id=?", (job_id,)).fetchone()
        return str(row[0]) if row else None

    def record_manifest(self, manifest: dict[str, Any], pdf_path: str, json_path: str, sha256: str) -> None:
        """Store a manifest and claim its assets and jobs; refused if any is already shipped."""
        manifest_id = manifest["document_id"]
        with self._write() as tx:
            tx.execute("INSERT INTO reuse_manifests(id, scheme, at, pdf_path, json_path, manifest_sha256) "
                       "VALUES(?,?,?,?,?,?)", (manifest_id, manifest["scheme"]["name"], manifest["created_at"],
                                               pdf_path, json_path, sha256))
            for device in manifest["devices"]:
                try:
                    tx.execute("INSERT INTO reuse_manifest_assets(asset, manifest_id) VALUES(?,?)",
                               (device["asset"], manifest_id))
                    for drive in device["drives"]:
                        tx.execute("INSERT INTO reuse_manifest_jobs(job_id, manifest_id) VALUES(?,?)",
                                   (drive["job_id"], manifest_id))
                except sqlite3.IntegrityError as exc:
                    raise ReuseRefused(self._claim_problem(tx, manifest, device)) from exc
            self.audit.append("manifest", manifest_id, {
                "scheme": manifest["scheme"]["name"], "assets": [d["asset"] for d in manifest["devices"]],
                "pdf": pdf_path, "json": json_path, "manifest_sha256": sha256}, in_transaction=True)


    @staticmethod
    def _claim_problem(tx: sqlite3.Connection, manifest: dict[str, Any], device: dict[str, Any]) -> str:
        """Why ``device`` cannot be claimed: the asset or a drive in another manifest, or listed twice here."""
        for other in manifest["devices"]:
            if other is device:
                break
            shared = {d["job_id"] for d in other["drives"]} & {d["job_id"] for d in device["drives"]}
            if shared or other["asset"] == device["asset"]:
                serials = sorted(d["serial"] for d in device["drives"] if d["job_id"] in shared)
                what = f"drive {', '.join(serials)}" if serials else "the asset tag"
                return f"assets {other['asset']} and {device['asset']} share {what} in this manifest"
        row = tx.execute("SELECT manifest_id FROM reuse_manifest_assets WHERE asset=?", (device["asset"],)).fetchone()
        if row is not None:
            return f"asset {device['asset']} is already in manifest {row[0]}"
        return f"a drive of asset {device['asset']} is already in another manifest"

    def record_handover(self, manifest_id: str, *, received_by: str, partner: str, reference: str | None,
                        recorded_by: str) -> dict[str, Any]:
        """Record that the partner received a manifest's devices (once per manifest), with its audit entry."""
        at = _now()
        with self._write() as tx:
            row = tx.execute("SELECT pdf_path FROM reuse_manifests WHERE id=?", (manifest_id,)).fetchone()
            if row is None:
                raise ReuseRefused(f"no manifest {manifest_id} on this station (voided, or never issued here)")
            if not Path(row[0]).is_file():
                raise ReuseRefused(f"manifest {manifest_id} was never published ({row[0]} is missing): "
                                   "nothing of it can be handed over")
            done = tx.execute("SELECT at, received_by FROM reuse_handovers WHERE manifest_id=?",
                              (manifest_id,)).fetchone()
            if done is not None:
                raise ReuseRefused(f"manifest {manifest_id} was handed over already ({done[0]}, to {done[1]})")
            assets = [str(r[0]) for r in tx.execute(
                "SELECT asset FROM reuse_manifest_assets WHERE manifest_id=? ORDER BY asset", (manifest_id,))]
            tx.execute("INSERT INTO reuse_handovers(manifest_id, at, received_by, partner, reference, recorded_by) "
                       "VALUES(?,?,?,?,?,?)", (manifest_id, at, received_by, partner, reference, recorded_by))
            entry = {"assets": assets, "received_by": received_by, "partner": partner, "reference": reference,
                     "recorded_by": recorded_by}
            self.audit.append("manifest-handed-over", manifest_id, entry, in_transaction=True)
        return {"manifest_id": manifest_id, "at": at, **entry}

    def handover(self, manifest_id: str) -> dict[str, Any] | None:
        """The hand-over recorded for a manifest, if any."""
        row = self.db.execute("SELECT manifest_id, at, received_by, partner, reference, recorded_by "
                              "FROM reuse_handovers WHERE manifest_id=?", (manifest_id,)).fetchone()
        return dict(zip(("manifest_id", "at", "received_by", "partner", "reference", "recorded_by"), row,
                        strict=True)) if row else None

    def void_manifest(self, manifest_id: str, reason: str) -> None:
        """Release a recorded manifest that was never published (signing failed, or a kill between
        recording and publishing): its assets and jobs are free again; the chain keeps both entries.
        A manifest handed over is never voided: its devices have left."""
        with self._write() as tx:  # the look and the write in one transaction: a hand-over meanwhile is seen
            if tx.execute("SELECT 1 FROM reuse_handovers WHERE manifest_id=?", (manifest_id,)).fetchone():
                raise ReuseRefused(f"manifest {manifest_id} was handed over: it cannot be voided")
            tx.execute("DELETE FROM reuse_manifest_jobs WHERE manifest_id=?", (manifest_id,))
            tx.execute("DELETE FROM reuse_manifest_assets WHERE manifest_id=?", (manifest_id,))
            tx.execute("DELETE FROM reuse_manifests WHERE id=?", (manifest_id,))
            self.audit.append("manifest-voided", manifest_id, {"reason": reason}, in_transaction=True)

    def reconcile_manifests(self) -> list[str]:
        """Void every recorded manifest whose PDF never appeared under its final name (the process died
        between recording it and publishing it); a half-issued ``.issuing`` file is removed, never
        published unread. Returns the ids voided."""
        voided = []
        for row in self.db.execute("SELECT id, pdf_path FROM reuse_manifests").fetchall():
            pdf = Path(row["pdf_path"])
            if pdf.is_file():
                continue
            Path(f"{pdf}{ISSUING_SUFFIX}").unlink(missing_ok=True)
            self.void_manifest(row["id"], f"{pdf.name} was never published (interrupted while issuing)")
            voided.append(str(row["id"]))
        return voided


ISSUING_SUFFIX = ".issuing"
"""A manifest PDF is signed under ``NAME.pdf.issuing`` (not a ``.pdf``: ``verify FOLDER`` skips it) and
renamed to ``NAME.pdf`` only after it is recorded and read back."""


def new_document_id(prefix: str) -> str:
    """A short unique id for a manifest or destruction report."""
    return f"{prefix}-{datetime.now(UTC):%Y%m%d}-{uuid.uuid4().hex[:10]}"
