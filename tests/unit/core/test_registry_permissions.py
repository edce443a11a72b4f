"""Registry files are owner-only whatever the umask; a registry left open to others is tightened and recorded."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.audit.log import AuditLog
from agent.store.registry import PERMISSIONS_AUDIT_KIND, Registry


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _tightened(registry: Registry) -> list[dict]:
    return [entry.data for entry in AuditLog(registry.db).entries() if entry.kind == PERMISSIONS_AUDIT_KIND]


def test_new_registry_and_its_wal_and_shm_are_0600_under_umask_022(tmp_path: Path, umask_022: None) -> None:
    registry = Registry(tmp_path / "state").open()
    with registry.transaction() as tx:
        tx.execute("INSERT INTO meta(key, value) VALUES('probe', '1')")
    files = sorted(path.name for path in (tmp_path / "state").iterdir())
    assert files == ["registry.sqlite3", "registry.sqlite3-shm", "registry.sqlite3-wal"]
    assert {name: _mode(tmp_path / "state" / name) for name in files} == dict.fromkeys(files, 0o600)
    assert _tightened(registry) == []  # nothing was ever open: nothing to record
    registry.close()


def test_world_readable_registry_is_tightened_and_recorded(tmp_path: Path, umask_022: None) -> None:
    Registry(tmp_path).open().close()
    path = tmp_path / "registry.sqlite3"
    os.chmod(path, 0o644)  # what earlier versions left
    registry = Registry(tmp_path).open()
    assert _mode(path) == 0o600
    [entry] = _tightened(registry)
    # SQLite gave the -wal and -shm it made on this open the main file's 0644: tightened with it
    assert entry["files"][0] == {"file": "registry.sqlite3", "was": "0644", "now": "0600",
                                 "was_writable_by_others": False}
    assert {item["was"] for item in entry["files"]} == {"0644"}
    assert all(_mode(tmp_path / item["file"]) == 0o600 for item in entry["files"])
    assert AuditLog(registry.db).verify().valid
    registry.close()
    # once tight, a second open records nothing more
    again = Registry(tmp_path).open()
    assert len(_tightened(again)) == 1
    again.close()


def test_group_writable_wal_is_named_as_writable_by_others(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    with registry.transaction() as tx:
        tx.execute("INSERT INTO meta(key, value) VALUES('probe', '1')")
    wal = tmp_path / "registry.sqlite3-wal"
    os.chmod(wal, 0o664)
    second = Registry(tmp_path).open()  # the first connection keeps the WAL in place
    assert _mode(wal) == 0o600
    [entry] = _tightened(second)
    assert {"file": "registry.sqlite3-wal", "was": "0664", "now": "0600",
            "was_writable_by_others": True} in entry["files"]
    second.close()
    registry.close()
