"""The store contract, run against both stores: the station's registry (SQLite) and the fleet's (PostgreSQL).

The two stores hold different models — a station's jobs, journal and reuse records; the fleet's verified copy
of every station's — so they do not share one class, but they keep one contract, and these tests hold each to it
in the same words: opening migrates to the code's schema and reopening changes nothing; a store written by a
newer wipe-agent is refused in one line and left as it was; several first opens at once migrate once; a failing
statement inside a transaction leaves nothing of it; and an audit chain means the same on both — the fleet's copy
of a station's chain has the station's head, verifies with the offline verifier's own functions, and a row
changed on either side is found.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.errors import AgentError
from agent.fleet.database import SCHEMA_VERSION as FLEET_VERSION
from agent.fleet.database import FleetDatabase
from agent.fleet.ingest import Ingestor
from agent.fleet.outbox import Outbox
from agent.store import schema
from agent.store.registry import Registry
from certs.audit_chain import check_entries

pytestmark = pytest.mark.root


@dataclass
class Backend:
    """One store under the contract: how to open it, read and stamp its version, and run raw statements."""

    name: str
    version: int
    open: Callable[[], Any]
    close: Callable[[Any], None]
    stored_version: Callable[[], int]
    stamp_version: Callable[[int], None]
    scratch_write: Callable[[Any, str], None]
    """Insert a marker row inside the store's own transaction, then fail in the same transaction."""
    markers: Callable[[], int]


def _sqlite(tmp_path: Path) -> Backend:
    path = tmp_path / "registry.sqlite3"

    def raw() -> sqlite3.Connection:
        return sqlite3.connect(path)

    def stored() -> int:
        with raw() as db:
            return int(db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0])

    def stamp(version: int) -> None:
        db = raw()
        db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(version),))
        db.commit()
        db.close()

    def scratch(store: Registry, marker: str) -> None:
        with store.transaction() as tx:
            tx.execute("INSERT INTO meta(key, value) VALUES(?, ?)", (f"contract-{marker}", marker))
            tx.execute("INSERT INTO meta(key, value) VALUES(?, ?)", (f"contract-{marker}", marker))  # PK clash

    def markers() -> int:
        with raw() as db:
            return int(db.execute("SELECT count(*) FROM meta WHERE key LIKE 'contract-%'").fetchone()[0])

    return Backend("sqlite", schema.SCHEMA_VERSION, lambda: Registry(tmp_path).open(), lambda s: s.close(),
                   stored, stamp, scratch, markers)


def _postgres(dsn: str) -> Backend:
    import psycopg

    def stored() -> int:
        with psycopg.connect(dsn) as db:
            return int(db.execute("SELECT value FROM fleet_meta WHERE key = 'schema_version'").fetchone()[0])

    def stamp(version: int) -> None:
        with psycopg.connect(dsn) as db:
            db.execute("UPDATE fleet_meta SET value = %s WHERE key = 'schema_version'", (str(version),))

    def scratch(store: FleetDatabase, marker: str) -> None:
        with store.transaction() as tx:
            tx.execute("INSERT INTO fleet_meta (key, value) VALUES (%s, %s)", (f"contract-{marker}", marker))
            tx.execute("INSERT INTO fleet_meta (key, value) VALUES (%s, %s)", (f"contract-{marker}", marker))

    def markers() -> int:
        with psycopg.connect(dsn) as db:
            return int(db.execute("SELECT count(*) FROM fleet_meta WHERE key LIKE 'contract-%%'").fetchone()[0])

    return Backend("postgres", FLEET_VERSION, lambda: FleetDatabase(dsn).open(), lambda s: s.close(),
                   stored, stamp, scratch, markers)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        yield _sqlite(tmp_path)
    else:
        yield _postgres(request.getfixturevalue("postgres_dsn"))


def test_opening_migrates_to_the_code_s_schema_and_reopening_changes_nothing(backend: Backend) -> None:
    backend.close(backend.open())
    assert backend.stored_version() == backend.version
    backend.close(backend.open())
    assert backend.stored_version() == backend.version


def test_a_store_from_a_newer_wipe_agent_is_refused_in_one_line_and_left_as_it_was(backend: Backend) -> None:
    backend.close(backend.open())
    backend.stamp_version(backend.version + 1)
    with pytest.raises(AgentError) as refused:
        backend.open()
    assert "\n" not in refused.value.message and str(backend.version + 1) in refused.value.message
    assert backend.stored_version() == backend.version + 1


def test_several_first_opens_at_once_migrate_once(backend: Backend) -> None:
    errors: list[BaseException] = []
    opened: list[int] = []
    together = threading.Barrier(4)

    def start() -> None:  # each opens (and closes) on its own thread, all at once
        try:
            together.wait(30)
            store = backend.open()
            opened.append(1)
            backend.close(store)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(opened) == 4
    assert backend.stored_version() == backend.version


def test_a_failing_statement_leaves_nothing_of_its_transaction(backend: Backend) -> None:
    store = backend.open()
    try:
        with pytest.raises(Exception):  # noqa: B017 - each store raises its own driver's (or its wrapped) error
            backend.scratch_write(store, "one")
    finally:
        backend.close(store)
    assert backend.markers() == 0


def test_an_audit_chain_means_the_same_on_both_stores(tmp_path: Path, postgres_dsn: str) -> None:
    station = Registry(tmp_path / "station", station_id="station-31").open()
    try:
        for number in range(12):
            with station.transaction() as tx:
                station.record(tx, "decision", f"LAPTOP-{number:04d}", {"route": "reuse:schools", "n": number})
        report = station.audit.verify()
        assert report.valid
        station_head = station.db.execute("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()[0]
        outbox = Outbox(station, "station-31")
        with FleetDatabase(postgres_dsn) as fleet:
            ingestor = Ingestor(fleet, None)

            class Local:
                def next_seq(self) -> int:
                    return 1

                def push(self, batch: dict[str, Any]) -> dict[str, Any]:
                    return ingestor.ingest("station-31", batch).to_json()

            assert outbox.push(Local()).refused == 0
            rows = fleet.db.execute("SELECT seq, at, kind, subject, data, prev_hash, hash FROM fleet_audit "
                                    "WHERE station_id = 'station-31' ORDER BY seq").fetchall()
            head = fleet.db.execute("SELECT audit_head FROM fleet_stations WHERE station_id = 'station-31'"
                                    ).fetchone()[0]
            fleet.db.commit()


        entries = [{"seq": seq, "at": at, "kind": kind, "subject": subject, "data": json.loads(data),
                    "prev_hash": prev, "hash": digest} for seq, at, kind, subject, data, prev, digest in rows]
        problems, _ = check_entries(entries)
        assert problems == [] and len(entries) == 12 and head == station_head == entries[-1]["hash"]
        # one changed row is found on either side, by each side's own check
        entries[5]["data"]["route"] = "destroy"
        assert check_entries(entries)[0]
        station.db.execute("UPDATE audit_log SET data_json = replace(data_json, 'reuse:schools', 'destroy') "
                           "WHERE seq = 6")
        station.db.commit()
        assert not station.audit.verify().valid
    finally:
        station.close()
