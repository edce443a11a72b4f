"""Station-side records the job registry does not hold (yet): intake links and drive routes.

Kept in the station's store, in tables of their own that the store's migration ladder creates
(:mod:`agent.store.schema`). An *intake* links the next drive inserted into a bay to
the host device (laptop/desktop) it came from; the daemon passes it to that bay's next job as
``asset_tag`` + ``host``, which the job row (and so the certificate) carries. A *route* marks a
drive for destruction after repeated failures.

When an intake is used up (issue 12: a refused job must never eat the laptop's link):

- a job that is **refused** (by ``start``'s own checks or by the worker's) never touches the intake;
- a job that **starts writing** *claims* it for that drive's serial: from then on only that drive
  (a re-run after an interruption or a failure) may use it, never the next drive seated in the bay;
- a job that ends **sanitised**, or **failed and routed to destruction** (the drive's story ends with a
  certificate or failure report naming the host) *consumes* it. An interrupted job, or one failed on
  hold (pulled mid-job, a worker crash), leaves it claimed, so the re-run's certificate names the
  host too. (A drive without a serial claims it as "unknown": such drives cannot be told apart.)

A *seating* record remembers, per bay, the kernel identity of the medium a sanitised job ran on, so a
restarted station can tell "still the same drive, never pulled" from "a drive with that serial".
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.store.registry import Registry, has_serial

REPEATED_FAILURES = 3  # this many failed jobs in a row on one drive (not counting removals) → destroy

@dataclass(frozen=True)
class Intake:
    """A pending or consumed intake link."""

    id: int
    bay: str
    asset_tag: str
    host_serial: str | None
    make: str | None
    model: str | None
    operator: str
    created_at: str
    job_id: str | None = None
    claimed_serial: str | None = None  # the drive whose job started writing with this link

    def host(self) -> dict[str, Any]:
        """The ``host`` object stored with the job."""
        return {"asset_tag": self.asset_tag, "serial": self.host_serial, "make": self.make, "model": self.model,
                "intake_operator": self.operator, "intake_at": self.created_at, "intake_id": self.id}

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"intake_id": self.id, "bay": self.bay, "asset_tag": self.asset_tag, "host_serial": self.host_serial,
                "make": self.make, "model": self.model, "operator": self.operator, "created_at": self.created_at,
                "job_id": self.job_id, "claimed_serial": self.claimed_serial}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class StationStore:
    """Intake and route tables on the station's store; one short-lived session per call (safe from any thread).

    Each call takes :meth:`Registry.session`: the daemon calls in from its loop, its job supervisors and
    its API threads, and a SQLite connection may not be shared between threads. A write and its audit
    entry are one transaction of that session (:meth:`Registry.transaction`)."""

    def __init__(self, store: Registry | Path) -> None:
        self.registry = store if isinstance(store, Registry) else Registry(Path(store))
        self.path = self.registry.path

    @contextmanager
    def _session(self) -> Iterator[Registry]:
        with self.registry.session() as session:
            yield session

    def create(self) -> None:
        """Make sure the store is open and migrated (its ladder holds these tables): a session needs it."""
        self.registry.sibling().open().close()

    def add_intake(self, bay: str, asset_tag: str, host_serial: str | None, make: str | None, model: str | None,
                   operator: str) -> Intake:
        """Record an intake; it replaces an earlier unconsumed one for the same bay."""
        with self._session() as store:
            with store.transaction() as tx:
                tx.execute("UPDATE station_intake SET consumed_at=?, job_id='superseded' WHERE bay=? AND "
                           "consumed_at IS NULL", (_now(), bay))
                cursor = tx.execute(
                    "INSERT INTO station_intake(bay, asset_tag, host_serial, make, model, operator, created_at) "
                    "VALUES(?,?,?,?,?,?,?)", (bay, asset_tag, host_serial, make, model, operator, _now()))
                store.audit.append("intake", asset_tag, {
                    "intake_id": cursor.lastrowid, "bay": bay, "asset_tag": asset_tag, "host_serial": host_serial,
                    "make": make, "model": model, "operator": operator}, in_transaction=True)
            row = store.db.execute("SELECT * FROM station_intake WHERE id=?", (cursor.lastrowid,)).fetchone()
        return _intake(row)

    def pending(self, bay: str) -> Intake | None:
        """The bay's unconsumed intake, if any."""
        with self._session() as store:
            row = store.db.execute("SELECT * FROM station_intake WHERE bay=? AND consumed_at IS NULL "
                                   "ORDER BY id DESC LIMIT 1", (bay,)).fetchone()
        return _intake(row) if row else None

    def usable(self, bay: str, serial: str | None) -> Intake | None:
        """The bay's pending intake if the drive with ``serial`` may use it: unclaimed, or claimed by it."""
        intake = self.pending(bay)
        if intake is None or intake.claimed_serial is None:
            return intake
        return intake if serial is not None and serial == intake.claimed_serial else None

    def claim(self, intake_id: int, serial: str, job_id: str) -> None:
        """A job started writing with this intake: only the drive ``serial`` may use it from now on."""
        with self._session() as store, store.transaction() as tx:
            changed = tx.execute("UPDATE station_intake SET claimed_serial=?, job_id=? WHERE id=? AND consumed_at "
                                 "IS NULL", (serial, job_id, intake_id)).rowcount
            if changed:
                store.audit.append("intake-claimed", job_id, {"intake_id": intake_id, "drive_serial": serial},
                                   in_transaction=True)

    def consume(self, intake_id: int, job_id: str) -> None:
        """Link the intake to the job whose certificate (or failure report) names the host: used up."""
        with self._session() as store, store.transaction() as tx:
            tx.execute("UPDATE station_intake SET consumed_at=?, job_id=? WHERE id=?", (_now(), job_id, intake_id))
            store.audit.append("intake-consumed", job_id, {"intake_id": intake_id}, in_transaction=True)

    def note_seating(self, bay: str, model: str, serial: str, dev_t: int, diskseq: int, boot_id: str,
                     written: int, job_id: str) -> None:
        """A job ended sanitised on this medium in ``bay``: remember the medium's kernel identity and
        its write counter (sectors written since the kernel created the device) as the job ended."""
        with self._session() as store:  # one statement: its own (autocommit) transaction
            store.db.execute(
                "INSERT INTO station_seatings(bay, model, serial, dev_t, diskseq, boot_id, written, job_id, at)"
                " VALUES(?,?,?,?,?,?,?,?,?) ON CONFLICT(bay) DO UPDATE SET model=excluded.model, "
                "serial=excluded.serial, dev_t=excluded.dev_t, diskseq=excluded.diskseq, "
                "boot_id=excluded.boot_id, written=excluded.written, job_id=excluded.job_id, at=excluded.at",
                (bay, model, serial, dev_t, diskseq, boot_id, written, job_id, _now()))

    def note_job_medium(self, job_id: str, model: str, serial: str, size_bytes: int | None, dev_t: int | None,
                        diskseq: int | None, boot_id: str) -> None:
        """The medium a job started on, as the kernel identified it (to match an interrupted job's re-run)."""
        with self._session() as store:
            store.db.execute(
                "INSERT OR REPLACE INTO station_job_media(job_id, model, serial, size_bytes, dev_t, diskseq, "
                "boot_id) VALUES(?,?,?,?,?,?,?)", (job_id, model, serial, size_bytes, dev_t, diskseq, boot_id))

    def job_medium(self, job_id: str) -> dict[str, Any] | None:
        """What :meth:`note_job_medium` recorded for ``job_id``."""
        with self._session() as store:
            row = store.db.execute("SELECT * FROM station_job_media WHERE job_id=?", (job_id,)).fetchone()
        return dict(row) if row else None

    def forget_seating(self, bay: str) -> None:
        """The medium in ``bay`` changed: its seating record no longer describes the bay."""
        with self._session() as store:
            store.db.execute("DELETE FROM station_seatings WHERE bay=?", (bay,))

    def sanitised_seating(self, bay: str, model: str, serial: str, dev_t: int, diskseq: int,
                          boot_id: str, written: int) -> str | None:
        """The sanitised job recorded for exactly this medium in ``bay`` (same boot), not written since."""
        with self._session() as store:
            row = store.db.execute(
                "SELECT job_id FROM station_seatings WHERE bay=? AND model=? AND serial=? AND dev_t=? "
                "AND diskseq=? AND boot_id=? AND written=?",
                (bay, model, serial, dev_t, diskseq, boot_id, written)).fetchone()
        return str(row["job_id"]) if row else None

    def note_outcome(self, model: str, serial: str, size_bytes: int | None = None) -> str | None:
        """After a job ends: route the drive to destruction when its recent jobs keep failing.

        Removals (``drive_removed``), cancellations and refusals do not count; a success resets.
        Returns the drive's route when it is ``destroy``. A drive without a serial number is never
        tracked across jobs: every such drive of a model looks alike, and three failing USB sticks
        must not send a fourth, healthy one to the shredder (a job's own hardware-fault route stands).
        With ``size_bytes`` (the medium's capacity as the job started), only jobs on media of that
        capacity count, and the route is recorded for it: drives behind one USB bridge that reports
        its own serial for every disk do not share one history unless they also share a size.
        """
        if not has_serial(serial):
            return None
        with self._session() as store:
            db = store.db
            rows = db.execute(
                "SELECT jobs.state, jobs.error_code, jobs.route FROM jobs JOIN drives ON drives.id = jobs.drive_id "
                "LEFT JOIN station_job_media media ON media.job_id = jobs.id "
                "WHERE drives.model=? AND drives.serial=? AND jobs.state IN ('sanitised','failed') "
                "AND (? IS NULL OR media.size_bytes IS NULL OR media.size_bytes = ?) "
                "ORDER BY jobs.created_at DESC, jobs.rowid DESC LIMIT 20",
                (model, serial, size_bytes, size_bytes)).fetchall()
            failures = 0
            for row in rows:
                if row["state"] == "sanitised":
                    break
                if row["error_code"] == "drive_removed":
                    continue
                failures += 1
            if rows and rows[0]["state"] == "failed" and rows[0]["route"] == "destroy":
                reason = "hardware fault: " + str(rows[0]["error_code"])
            elif failures >= REPEATED_FAILURES:
                reason = f"{failures} failed jobs in a row"
            else:
                current = self._route_row(db, model, serial, size_bytes)
                return str(current["route"]) if current else None
            db.execute("INSERT INTO station_drive_routes(model, serial, route, reason, at, size_bytes) "
                       "VALUES(?,?,?,?,?,?) ON CONFLICT(model, serial) DO UPDATE SET route=excluded.route, "
                       "reason=excluded.reason, at=excluded.at, size_bytes=excluded.size_bytes",
                       (model, serial, "destroy", reason, _now(), size_bytes))
            return "destroy"

    @staticmethod
    def _route_row(db: sqlite3.Connection, model: str, serial: str, size_bytes: int | None) -> sqlite3.Row | None:
        row: sqlite3.Row | None = db.execute(
            "SELECT route, reason, at FROM station_drive_routes WHERE model=? AND serial=? "
            "AND (? IS NULL OR size_bytes IS NULL OR size_bytes = ?)", (model, serial, size_bytes, size_bytes)
        ).fetchone()
        return row

    def route(self, model: str, serial: str, size_bytes: int | None = None) -> dict[str, str] | None:
        """The drive's recorded route (``destroy`` and why), if any (for a drive of that capacity)."""
        if not has_serial(serial):
            return None
        with self._session() as store:
            row = self._route_row(store.db, model, serial, size_bytes)
        return {"route": row["route"], "reason": row["reason"], "at": row["at"]} if row else None


def _intake(row: sqlite3.Row) -> Intake:
    return Intake(id=int(row["id"]), bay=row["bay"], asset_tag=row["asset_tag"], host_serial=row["host_serial"],
                  make=row["make"], model=row["model"], operator=row["operator"], created_at=row["created_at"],
                  job_id=row["job_id"], claimed_serial=row["claimed_serial"])
