"""What the job, intake, reuse and audit layers need of a store: the seam a second backend implements.

:class:`~agent.store.registry.Registry` (SQLite, WAL, durable ``running``) is the station's store and
satisfies :class:`Store`; the fleet registry (PostgreSQL, issue 14) is meant to be another.

The contract, independent of SQLite where it can be:

- **One transaction scope.** :meth:`Store.transaction` is the only way anyone writes: jobs, intake
  links, reuse records and audit entries written inside one block commit together or not at all
  (:meth:`Store.record` appends the audit entry of the caller's open transaction). ``durable=False``
  may skip the flush for bookkeeping that is harmlessly lost; ``running`` and final states never do.
- **One schema.** Opening a store migrates it (:mod:`agent.store.schema` for SQLite); modules never
  create tables, and a store newer than the code is refused with one line.
- **Jobs scoped by station.** A store may be shared by stations: :attr:`Store.station_id` is the
  one this instance acts for. :meth:`Store.orphaned_jobs` and :meth:`Store.reconcile` consider only
  its jobs, and a job's owner is (station, boot, pid, process start): another station's job is never
  judged, and a job of this station from another boot is dead.
- **A location of its own.** :attr:`Store.location` names where it lives (a file, a DSN); the state
  directory (keys, certificates, reports) is separate and the store does not derive folders from it.
- **Sessions for threads.** :meth:`Store.session` gives the same store on a connection of its own,
  for callers on threads other than the one that opened it.

The statements the layers run inside a transaction are still SQL (``execute`` with ``?`` parameters,
rows by column name, SQLite's JSON functions in some reuse queries): a PostgreSQL store either
translates them or takes those queries behind methods of its own — listed in the store note.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from agent.audit.log import AuditLog
from agent.discovery.identity import DriveIdentity


class Cursor(Protocol):
    """What a statement returns: its rows, how many it changed and the new row's id."""

    rowcount: int

    @property
    def lastrowid(self) -> int | None: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Transaction(Protocol):
    """An open transaction of a store (for SQLite: its connection between BEGIN IMMEDIATE and COMMIT)."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


@runtime_checkable
class Store(Protocol):
    """A station's store: jobs and their journal, drives, verifications, and the scope every table shares."""

    clock: Callable[[], datetime]

    @property
    def station_id(self) -> str: ...

    @property
    def location(self) -> str: ...

    @property
    def audit(self) -> AuditLog: ...

    def open(self) -> Store: ...

    def close(self) -> None: ...

    def session(self) -> AbstractContextManager[Any]: ...

    def transaction(self, durable: bool = True) -> AbstractContextManager[Any]: ...

    def record(self, tx: Any, kind: str, subject: str, data: dict[str, Any]) -> None: ...

    def schema_version(self) -> int: ...

    # drives and jobs -------------------------------------------------------------------------------
    def upsert_drive(self, identity: DriveIdentity, durable: bool = True) -> int: ...

    def create_job(self, identity: DriveIdentity, profile: str, operator: str, authorised_by: str,
                   asset_tag: str | None = None, host: dict[str, Any] | None = None, durable: bool = True, *,
                   operator_title: str | None = None, operator_uid: int | None = None,
                   operator_via: str | None = None) -> str: ...

    def transition(self, job_id: str, state: str, event: str, data: dict[str, Any] | None = None, *,
                   durable: bool = True, **columns: Any) -> None: ...

    def journal(self, job_id: str, event: str, data: dict[str, Any]) -> None: ...

    def attach_certificate(self, job_id: str, path: str, certificate_id: str, record_sha256: str) -> None: ...

    def note_certificate_refused(self, job_id: str, reason: str) -> None: ...

    def record_verification(self, job_id: str | None, drive: DriveIdentity, result: dict[str, Any], *,
                            also: Callable[[Any, int], None] | None = None) -> int: ...

    def job(self, job_id: str) -> Any: ...

    def jobs(self, limit: int = 200, *, since: datetime | None = None, until: datetime | None = None,
             asset: str | None = None, serial: str | None = None, state: str | None = None,
             operator: str | None = None) -> list[Any]: ...

    def last_job_of(self, model: str, serial: str) -> Any: ...

    def events(self, job_id: str) -> list[dict[str, Any]]: ...

    def open_events(self, model: str, serial: str, event: str, answered_by: str, *,
                    exclude_job: str | None = None) -> list[Any]: ...

    # ownership -------------------------------------------------------------------------------------
    def orphaned_jobs(self) -> list[str]: ...

    def adopt(self, job_id: str, event: str, data: dict[str, Any] | None = None) -> None: ...

    def reconcile(self, keep: Callable[[str], bool] | None = None) -> list[str]: ...
