"""One transaction scope: an intake, reuse or operator write and its audit entry commit together, or neither."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from agent.daemon.intake import StationStore
from agent.operators import Operators
from agent.reuse.store import ReuseStore
from agent.store.registry import Registry


def _refuse_audit_entries(path: Path) -> None:
    """A trigger that aborts every append to the chain: what a failing audit write does to its transaction."""
    db = sqlite3.connect(path)
    db.execute("CREATE TRIGGER no_audit BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'audit refused'); END")
    db.commit()
    db.close()


def _count(path: Path, table: str) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        db.close()


def test_an_intake_and_its_audit_entry_are_one_transaction(tmp_path: Path) -> None:
    store = StationStore(tmp_path)
    store.create()
    store.add_intake("bay-1", "A-1", None, None, None, "alice")
    _refuse_audit_entries(store.path)
    with pytest.raises(sqlite3.IntegrityError, match="audit refused"):
        store.add_intake("bay-1", "A-2", None, None, None, "bob")
    pending = store.pending("bay-1")
    # the failed intake left nothing: not its row, and not the supersession of the earlier one
    assert pending is not None and pending.asset_tag == "A-1" and _count(store.path, "station_intake") == 1
    with pytest.raises(sqlite3.IntegrityError, match="audit refused"):
        store.consume(pending.id, "job1")
    assert store.pending("bay-1") == pending


def test_a_caller_can_put_an_intake_write_and_an_audit_entry_in_its_own_transaction(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    try:
        with pytest.raises(RuntimeError), registry.transaction() as tx:
            tx.execute("INSERT INTO station_intake(bay, asset_tag, operator, created_at) VALUES('b', 'A', 'o', 'now')")
            registry.record(tx, "intake", "A", {"bay": "b"})
            raise RuntimeError("the caller fails after both")
        assert _count(registry.path, "station_intake") == 0 and registry.audit.entries() == []
        with registry.transaction() as tx:
            tx.execute("INSERT INTO station_intake(bay, asset_tag, operator, created_at) VALUES('b', 'A', 'o', 'now')")
            registry.record(tx, "intake", "A", {"bay": "b"})
        assert _count(registry.path, "station_intake") == 1 and [e.kind for e in registry.audit.entries()] == ["intake"]
    finally:
        registry.close()


def test_reuse_and_operator_writes_roll_back_with_a_refused_audit_entry(tmp_path: Path) -> None:
    Registry(tmp_path).open().close()
    _refuse_audit_entries(tmp_path / "registry.sqlite3")
    registry = Registry(tmp_path).open()
    try:
        reuse = ReuseStore(registry)
        with pytest.raises(sqlite3.IntegrityError, match="audit refused"):
            reuse.register_host("LAPTOP-1", make="Lenovo")
        assert reuse.registered_host("LAPTOP-1") is None
        with pytest.raises(sqlite3.IntegrityError, match="audit refused"):
            Operators(registry).sign_in("PC Morgan", "Technician", 1000)
        assert Operators(registry).active() == []
        assert not registry.db.in_transaction  # nothing left open on the shared connection
    finally:
        registry.close()


def test_intake_calls_from_many_threads_each_take_a_session(tmp_path: Path) -> None:
    store = StationStore(tmp_path)
    store.create()
    errors: list[BaseException] = []

    def add(number: int) -> None:
        try:
            store.add_intake(f"bay-{number}", f"A-{number}", None, None, None, "alice")
            assert store.pending(f"bay-{number}") is not None
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    registry = Registry(tmp_path).open()
    try:
        assert [entry.kind for entry in registry.audit.entries()].count("intake") == 8
        assert registry.audit.verify().valid
    finally:
        registry.close()
