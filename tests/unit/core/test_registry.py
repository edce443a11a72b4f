"""Registry: schema versioning, committed transitions, final states, crash reconciliation."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agent.discovery.identity import DriveIdentity
from agent.errors import AgentError, ConfigError
from agent.store.registry import SCHEMA_VERSION, Registry

IDENTITY = DriveIdentity(
    path="/dev/sdz", name="sdz", by_id=None, model="Test Disk", serial="SN1", firmware="1.0", vendor=None,
    size_bytes=1 << 30, logical_sector=512, physical_sector=4096, rotational=True, transport="sata",
    media="hdd", removable=False, read_only=False, id_path=None,
)


def test_schema_version_and_reopen(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    assert registry.schema_version() == SCHEMA_VERSION
    registry.close()
    assert Registry(tmp_path).open().schema_version() == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    Registry(tmp_path).open().close()
    db = sqlite3.connect(tmp_path / "registry.sqlite3")
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="newer than this wipe-agent"):
        Registry(tmp_path).open()


def test_transitions_are_journaled_and_final_states_stick(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    job = registry.create_job(IDENTITY, "nist-clear-overwrite", "alice", "explicit command by alice", "AT-1")
    registry.transition(job, "checking", "guard")
    registry.transition(job, "running", "method-start", method="overwrite.zero", level="clear")
    registry.transition(job, "sanitised", "verified", route="reuse")
    row = registry.job(job)
    assert row.state == "sanitised" and row.finished_at and row.asset_tag == "AT-1"
    assert [event["state"] for event in registry.events(job)] == ["created", "checking", "running", "sanitised"]
    with pytest.raises(AgentError, match="already sanitised"):
        registry.transition(job, "failed", "late")
    with pytest.raises(AgentError, match="unknown job columns"):
        registry.transition(job, "failed", "x", colour="red")


def test_same_drive_is_one_row(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    assert registry.upsert_drive(IDENTITY) == registry.upsert_drive(IDENTITY)


def test_reconcile_marks_jobs_of_dead_processes_interrupted(tmp_path: Path) -> None:
    # a job created by another process that then dies, as after kill -9
    code = (
        "import sys; from pathlib import Path; from tests.unit.core.test_registry import IDENTITY;"
        "from agent.store.registry import Registry;"
        "r = Registry(Path(sys.argv[1])).open(); j = r.create_job(IDENTITY, 'p', 'bob', 'x');"
        "r.transition(j, 'running', 'method-start'); print(j)"
    )
    child = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parents[3])
    job_id = child.stdout.strip()
    registry = Registry(tmp_path).open()
    mine = registry.create_job(IDENTITY, "p", "me", "x")
    registry.transition(mine, "running", "method-start")
    assert registry.reconcile() == [job_id]
    assert registry.job(job_id).state == "interrupted"
    assert registry.job(mine).state == "running"  # this process is alive: untouched


def test_job_prefix_lookup(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    job = registry.create_job(IDENTITY, "p", "me", "x")
    assert registry.job(job[:6]).id == job
    with pytest.raises(ConfigError, match="no job"):
        registry.job("ffff" if not job.startswith("ffff") else "0000")
    for pattern in ("zzzz", "%", job[-4:].join("%%"), job[:4] + "_", "ABC" + job[:3], ""):
        with pytest.raises(ConfigError, match="is not a job id"):  # never a LIKE pattern
            registry.job(pattern)


def test_parallel_first_opens_of_a_new_registry_all_succeed(tmp_path: Path) -> None:
    import threading

    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            Registry(tmp_path).open().close()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    for _ in range(40):  # a fresh database each round: the race is on the first switch to WAL
        for leftover in tmp_path.iterdir():
            leftover.unlink()
        threads = [threading.Thread(target=open_one) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []


def _traced(registry: Registry) -> list[str]:
    statements: list[str] = []
    registry.db.set_trace_callback(statements.append)
    return statements


def test_bookkeeping_before_running_skips_the_fsync_and_running_and_final_states_never_do(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    statements = _traced(registry)
    job = registry.create_job(IDENTITY, "nist-clear-overwrite", "alice", "explicit", durable=False)
    registry.transition(job, "checking", "guard", durable=False)
    assert statements.count("PRAGMA synchronous=NORMAL") == 3  # drive, job, checking
    statements.clear()
    registry.transition(job, "running", "method-start", durable=False, method="overwrite.zero")
    registry.transition(job, "sanitised", "verified", durable=False)
    assert "PRAGMA synchronous=NORMAL" not in statements  # ``running`` and final states are always durable
    # the connection is back to FULL after each relaxed commit, also after a failed one
    assert registry.db.execute("PRAGMA synchronous").fetchone()[0] == 2
    with pytest.raises(AgentError, match="already sanitised"):
        registry.transition(job, "checking", "late", durable=False)
    assert registry.db.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert [event["state"] for event in registry.events(job)] == ["created", "checking", "running", "sanitised"]


def test_reopening_a_current_registry_takes_no_write_lock(tmp_path: Path) -> None:
    Registry(tmp_path).open().close()
    holder = sqlite3.connect(tmp_path / "registry.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a writer mid-transaction (e.g. a job committing its journal)
    try:
        registry = Registry(tmp_path)
        registry.open()  # must not wait for the holder
        assert registry.schema_version() == SCHEMA_VERSION
        registry.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_writer_gets_the_lock_as_soon_as_it_is_released(tmp_path: Path) -> None:
    import threading

    registry = Registry(tmp_path).open()
    job = registry.create_job(IDENTITY, "p", "alice", "explicit")
    holder = sqlite3.connect(tmp_path / "registry.sqlite3", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    statements = _traced(registry)
    timer = threading.Timer(0.05, holder.execute, ("COMMIT",))
    timer.start()
    registry.journal(job, "note", {"n": 1})  # polls BEGIN IMMEDIATE until the holder commits
    timer.join()
    holder.close()
    assert statements.count("BEGIN IMMEDIATE") >= 2  # it did have to wait, and retried by itself
    assert registry.events(job)[-1]["event"] == "note"
    assert registry.db.execute("PRAGMA busy_timeout").fetchone()[0] == 30_000


def test_a_write_lock_held_past_the_deadline_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.store import registry as registry_module

    registry = Registry(tmp_path).open()
    job = registry.create_job(IDENTITY, "p", "alice", "explicit")
    monkeypatch.setattr(registry_module, "BUSY_TIMEOUT_MS", 100)
    holder = sqlite3.connect(tmp_path / "registry.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            registry.journal(job, "note", {})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    registry.journal(job, "note", {})
    assert registry.events(job)[-1]["event"] == "note"


def test_open_events_are_the_unanswered_ones_of_that_drive_newest_first(tmp_path: Path) -> None:
    from dataclasses import replace

    registry = Registry(tmp_path).open()

    def job(identity: DriveIdentity, *events: str, state: str = "failed") -> str:
        job_id = registry.create_job(identity, "p", "me", "x")
        for number, event in enumerate(events):
            registry.journal(job_id, event, {"n": number})
        registry.transition(job_id, state, state)
        return job_id

    answered = job(IDENTITY, "secret", "cleanup")
    open_old = job(IDENTITY, "secret")
    reopened = job(IDENTITY, "secret", "cleanup", "secret")  # a second attempt in the same job
    job(replace(IDENTITY, serial="SN2"), "secret")  # another drive
    found = registry.open_events(IDENTITY.model, IDENTITY.serial, "secret", "cleanup")
    assert [(entry.job_id, entry.data["n"]) for entry in found] == [(reopened, 2), (open_old, 0)]
    assert answered not in [entry.job_id for entry in found]
    assert [e.job_id for e in registry.open_events(IDENTITY.model, IDENTITY.serial, "secret", "cleanup",
                                                   exclude_job=reopened)] == [open_old]


def test_open_events_never_match_drives_without_serial_or_model(tmp_path: Path) -> None:
    from dataclasses import replace

    registry = Registry(tmp_path).open()
    for identity in (replace(IDENTITY, serial="unknown"), replace(IDENTITY, model="unknown"),
                     replace(IDENTITY, serial="")):
        job_id = registry.create_job(identity, "p", "me", "x")
        registry.journal(job_id, "secret", {})
        registry.transition(job_id, "failed", "failed")
        assert registry.open_events(identity.model, identity.serial, "secret", "cleanup") == []


def test_open_events_skip_jobs_a_live_process_still_owns(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    live = registry.create_job(IDENTITY, "p", "me", "x")  # owned by this (live) process
    registry.transition(live, "running", "method-start")
    registry.journal(live, "secret", {})
    assert registry.open_events(IDENTITY.model, IDENTITY.serial, "secret", "cleanup") == []
    # its owner "died" (same pid, another start time: a reused pid is not the owner)
    registry.db.execute("UPDATE jobs SET pid_started=1.0 WHERE id=?", (live,))
    assert [e.job_id for e in registry.open_events(IDENTITY.model, IDENTITY.serial, "secret", "cleanup")] == [live]


def test_a_failing_commit_rolls_back_and_leaves_the_connection_usable_and_durable(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    db = registry.db
    db.execute("CREATE TABLE p(id INTEGER PRIMARY KEY)")
    db.execute("CREATE TABLE c(pid INTEGER REFERENCES p(id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(sqlite3.IntegrityError):  # the commit itself fails (as an I/O error at COMMIT would)
        with registry.transaction(durable=False) as tx:
            tx.execute("INSERT INTO c VALUES(42)")
    assert not db.in_transaction
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert db.execute("SELECT count(*) FROM c").fetchone()[0] == 0
    job = registry.create_job(IDENTITY, "p", "alice", "explicit")  # the next transaction works
    assert registry.job(job).state == "created"
