"""Registry files are owner-only whatever the umask; a registry left open to others is tightened and recorded."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.audit.log import AuditLog
from agent.errors import ConfigError
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


@pytest.fixture
def umask_000() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_state_directory_and_its_new_parents_are_0750_under_umask_000(tmp_path: Path, umask_000: None) -> None:
    state = tmp_path / "perm000" / "state"
    registry = Registry(state).open()
    assert _mode(tmp_path / "perm000") == 0o750  # mkdir(parents=True, mode=...) left the parent 0777
    assert _mode(state) == 0o750
    assert _mode(tmp_path) == 0o700  # what existed before is not changed
    assert _tightened(registry) == []
    registry.close()


def test_world_writable_state_directory_is_tightened_and_recorded(tmp_path: Path) -> None:
    state = tmp_path / "state"
    Registry(state).open().close()
    os.chmod(state, 0o777)
    registry = Registry(state).open()
    assert _mode(state) == 0o750
    [entry] = _tightened(registry)
    assert {"file": ".", "was": "0777", "now": "0750", "was_writable_by_others": True} in entry["files"]
    registry.close()


def test_state_directory_under_a_world_writable_parent_is_refused(tmp_path: Path) -> None:
    parent = tmp_path / "open"
    parent.mkdir()
    os.chmod(parent, 0o777)  # anyone could rename state/ away and plant their own
    with pytest.raises(ConfigError, match=r"parent .*open is mode 0777, writable by every user"):
        Registry(parent / "state").open()


def test_shared_sticky_directory_is_not_taken_as_a_state_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # like /tmp: never tightened under other users' feet
    with pytest.raises(ConfigError, match="not this station's own to tighten"):
        Registry(shared).open()
    assert _mode(shared) == 0o1777
