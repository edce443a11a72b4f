"""Jobs scoped by station on one shared store; an owner is (station, boot, pid, process start)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent.discovery.identity import DriveIdentity
from agent.errors import AgentError
from agent.store.interface import Store
from agent.store.registry import Registry, current_boot_id

IDENTITY = DriveIdentity(
    path="/dev/sdz", name="sdz", by_id=None, model="Test Disk", serial="SN1", firmware="1.0", vendor=None,
    size_bytes=1 << 30, logical_sector=512, physical_sector=4096, rotational=True, transport="sata",
    media="hdd", removable=False, read_only=False, id_path=None,
)


def _dead_pid() -> int:
    """A pid that ran and exited (so no process has it now, barring reuse within the test)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    return int(child.stdout)


def _running_job(registry: Registry) -> str:
    job = registry.create_job(IDENTITY, "p", "op", "x")
    registry.transition(job, "running", "method-start")
    return job


def _set(registry: Registry, job: str, **columns: object) -> None:
    with registry.transaction() as tx:
        for column, value in columns.items():
            tx.execute(f"UPDATE jobs SET {column}=? WHERE id=?", (value, job))


def test_a_job_is_stamped_with_its_station_and_boot(tmp_path: Path) -> None:
    registry = Registry(tmp_path, station_id="station-a").open()
    job = registry.create_job(IDENTITY, "p", "op", "x")
    row = registry.db.execute("SELECT station_id, boot_id, pid FROM jobs WHERE id=?", (job,)).fetchone()
    assert (row["station_id"], row["boot_id"], row["pid"]) == ("station-a", current_boot_id(), os.getpid())
    assert current_boot_id() == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    registry.close()


def test_another_stations_dead_job_is_never_marked_interrupted_here(tmp_path: Path) -> None:
    a = Registry(tmp_path, station_id="station-a").open()
    b = Registry(tmp_path, station_id="station-b").open()
    try:
        theirs = _running_job(a)
        mine = _running_job(b)
        _set(a, theirs, pid=_dead_pid())
        _set(b, mine, pid=_dead_pid())
        # station b sees only its own orphan, and reconciles only it
        assert b.orphaned_jobs() == [mine]
        assert b.reconcile() == [mine]
        assert b.job(mine).state == "interrupted" and b.job(theirs).state == "running"
        # the owner's station reconciles its own
        assert a.orphaned_jobs() == [theirs]
        assert a.reconcile() == [theirs] and a.job(theirs).state == "interrupted"
    finally:
        a.close()
        b.close()


def test_a_job_of_this_station_under_another_boot_is_dead_even_if_its_pid_runs(tmp_path: Path) -> None:
    registry = Registry(tmp_path, station_id="station-a").open()
    try:
        job = _running_job(registry)  # owned by this very (live) process
        assert registry.orphaned_jobs() == []
        _set(registry, job, boot_id="00000000-0000-0000-0000-000000000000")  # as if before a reboot
        assert registry.orphaned_jobs() == [job]
        assert registry.reconcile() == [job] and registry.job(job).state == "interrupted"
    finally:
        registry.close()


def test_an_old_job_with_no_boot_recorded_is_judged_by_its_pid(tmp_path: Path) -> None:
    registry = Registry(tmp_path, station_id="station-a").open()
    try:
        alive, dead = _running_job(registry), _running_job(registry)
        _set(registry, alive, boot_id=None)
        _set(registry, dead, boot_id=None, pid=_dead_pid())
        assert registry.orphaned_jobs() == [dead]
    finally:
        registry.close()


def test_another_stations_job_is_not_adopted_and_its_open_events_are_left_to_it(tmp_path: Path) -> None:
    a = Registry(tmp_path, station_id="station-a").open()
    b = Registry(tmp_path, station_id="station-b").open()
    try:
        theirs = _running_job(a)
        a.journal(theirs, "ata-password-set", {"password": "temporary"})
        _set(a, theirs, pid=_dead_pid())
        with pytest.raises(AgentError, match="belongs to station station-a"):
            b.adopt(theirs, "resume")
        # its owner may still answer the event: station b cannot tell, so it is not b's to clear
        assert b.open_events("Test Disk", "SN1", "ata-password-set", "ata-password-removed") == []
        # station a sees its owner gone
        assert [event.job_id for event in a.open_events("Test Disk", "SN1", "ata-password-set",
                                                       "ata-password-removed")] == [theirs]
        a.adopt(theirs, "resume")
        assert a.orphaned_jobs() == []
    finally:
        a.close()
        b.close()


def test_an_opener_naming_no_station_acts_for_the_stores_home_station(tmp_path: Path) -> None:
    Registry(tmp_path, station_id="station-a").open().close()
    registry = Registry(tmp_path).open()
    try:
        assert registry.station_id == "station-a"
        job = _running_job(registry)
        assert registry.db.execute("SELECT station_id FROM jobs WHERE id=?", (job,)).fetchone()[0] == "station-a"
    finally:
        registry.close()
    with Registry(tmp_path, station_id="station-b").session() as session:
        assert session.station_id == "station-b"


def test_the_registry_is_a_store() -> None:
    store: Store = Registry(Path("/nonexistent"))  # mypy checks the protocol; isinstance its names
    assert isinstance(store, Store)


def test_the_store_lives_where_it_is_told_apart_from_the_state_directory(tmp_path: Path) -> None:
    state, elsewhere = tmp_path / "state", tmp_path / "db" / "fleet.sqlite3"
    registry = Registry(state, path=elsewhere).open()
    try:
        registry.create_job(IDENTITY, "p", "op", "x")
        assert registry.location == str(elsewhere) and elsewhere.is_file()
        assert not (state / "registry.sqlite3").exists()
        assert (elsewhere.stat().st_mode & 0o777) == 0o600
    finally:
        registry.close()
    db = sqlite3.connect(elsewhere)
    assert db.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1
    db.close()


def test_the_daemon_claims_the_store_for_its_configured_station_and_reconciles_its_workers_jobs(
        tmp_path: Path) -> None:
    before = Registry(tmp_path).open()  # created with no station configured: home is the placeholder
    old = _running_job(before)
    other = Registry(tmp_path, station_id="station-b").open()
    visitor = _running_job(other)
    before.close()
    daemon = Registry(tmp_path, station_id="station-01").open()
    try:
        assert daemon.claim_home() == "local"
        assert daemon.claim_home() is None  # already its home: nothing written
        worker = Registry(tmp_path).open()  # a job worker names no station: it acts for the home
        assert worker.station_id == "station-01"
        fresh = _running_job(worker)
        worker.close()
        for job in (old, fresh, visitor):
            _set(daemon, job, pid=_dead_pid())
        # the old home's job and the worker's are the daemon's to reconcile; station-b's is not
        assert sorted(daemon.reconcile()) == sorted([old, fresh])
        assert daemon.job(visitor).state == "running"
    finally:
        daemon.close()
        other.close()
