"""Every registry change is in the audit chain, in the same transaction as the change it records."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from pathlib import Path

import pytest

from agent.discovery.identity import DriveIdentity
from agent.errors import AgentError
from agent.store.registry import Registry

IDENTITY = DriveIdentity(
    path="/dev/sdz", name="sdz", by_id=None, model="Test Disk", serial="SN1", firmware="1.0", vendor=None,
    size_bytes=1 << 30, logical_sector=512, physical_sector=4096, rotational=True, transport="sata",
    media="hdd", removable=False, read_only=False, id_path=None,
)


def kinds(registry: Registry, subject: str | None = None) -> list[str]:
    return [entry.kind for entry in registry.audit.entries(subject)]


def test_a_job_lifecycle_is_chained_entry_by_entry(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    job = registry.create_job(IDENTITY, "clear", "alice", "bob", asset_tag="A-1", durable=False)
    registry.transition(job, "checking", "checks", durable=False)
    registry.transition(job, "running", "started", {"pass": 1}, method="clear-zero", level="clear")
    registry.transition(job, "verifying", "written", bytes_written=1 << 30)
    registry.record_verification(job, IDENTITY, {"mode": "full", "passed": True, "coverage": 1.0,
                                                 "bytes_checked": 1 << 30})
    registry.transition(job, "sanitised", "verified", route="reuse")
    pdf = tmp_path / "c.pdf"
    pdf.write_bytes(b"%PDF-1.7 certificate")
    registry.attach_certificate(job, str(pdf), "C-1", "ab" * 32)
    assert kinds(registry, job) == ["job-created", "job-checking", "job-running", "job-verifying", "verification",
                                    "job-sanitised", "certificate-issued"]
    entries = {entry.kind: entry for entry in registry.audit.entries(job)}
    assert entries["job-created"].data["operator"] == "alice"
    assert entries["job-created"].data["drive"]["serial"] == "SN1"
    assert entries["job-running"].data == {"from": "checking", "event": "started", "data": {"pass": 1},
                                           "method": "clear-zero", "level": "clear"}
    issued = entries["certificate-issued"].data
    assert issued["record_sha256"] == "ab" * 32
    assert issued["pdf_sha256"] == hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert registry.audit.verify().valid


def test_refused_failed_and_report(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    refused = registry.create_job(IDENTITY, "clear", "alice", "bob")
    registry.transition(refused, "refused", "guard", reason="mounted")
    failed = registry.create_job(IDENTITY, "clear", "alice", "bob")
    registry.transition(failed, "running", "started")
    registry.transition(failed, "failed", "write error", error_code="EIO")
    registry.attach_certificate(failed, str(tmp_path / "missing.pdf"), "R-1", "cd" * 32)
    assert kinds(registry, refused) == ["job-created", "job-refused"]
    assert registry.audit.entries(refused)[-1].data["reason"] == "mounted"
    assert kinds(registry, failed) == ["job-created", "job-running", "job-failed", "report-issued"]
    assert registry.audit.entries(failed)[-1].data["pdf_sha256"] is None  # named, not invented


def test_interrupted_and_adopted_jobs_are_chained(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    orphan = registry.create_job(IDENTITY, "clear", "alice", "bob")
    registry.transition(orphan, "running", "started")
    resumed = registry.create_job(IDENTITY, "purge", "alice", "bob")
    registry.transition(resumed, "running", "started")
    # make both orphans: an owner pid that does not run (pid 2**22 + 1 is above the default pid_max)
    registry.db.execute("UPDATE jobs SET pid=?, pid_started=1", (2 ** 22 + 1,))
    registry.adopt(resumed, "resumed", {"after": "restart"})
    assert registry.reconcile() == [orphan]
    assert kinds(registry, orphan)[-1] == "job-interrupted"
    assert registry.audit.entries(orphan)[-1].data["from"] == "running"
    adopted = registry.audit.entries(resumed)[-1]
    assert (adopted.kind, adopted.data["pid"], adopted.data["data"]) == ("job-adopted", os.getpid(),
                                                                         {"after": "restart"})


def test_an_entry_of_a_failed_change_does_not_exist(tmp_path: Path) -> None:
    """Rollback: the change fails after its entry was appended; both go."""
    registry = Registry(tmp_path).open()
    job = registry.create_job(IDENTITY, "clear", "alice", "bob")
    before = registry.audit.verify()
    # the entry's own insert fails after the job's UPDATE and journal row were written: all three go
    registry.db.execute("CREATE TRIGGER fail_journal BEFORE INSERT ON audit_log "
                        "WHEN NEW.kind = 'job-running' BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    with pytest.raises(sqlite3.IntegrityError, match="disk trouble"):
        registry.transition(job, "running", "started")
    assert registry.job(job).state == "created"  # the change is gone with the entry
    assert [e["event"] for e in registry.events(job)] == ["created"]
    registry.db.execute("DROP TRIGGER fail_journal")
    registry.db.execute("CREATE TRIGGER fail_job BEFORE UPDATE ON jobs "
                        "BEGIN SELECT RAISE(ABORT, 'constraint'); END")
    with pytest.raises(sqlite3.IntegrityError):
        registry.transition(job, "running", "started")
    after = registry.audit.verify()
    assert (after.entries, after.head) == (before.entries, before.head)
    assert "job-running" not in kinds(registry)


def test_refused_transition_leaves_no_entry(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    job = registry.create_job(IDENTITY, "clear", "alice", "bob")
    registry.transition(job, "refused", "guard")
    count = registry.audit.verify().entries
    with pytest.raises(AgentError, match="already refused"):
        registry.transition(job, "running", "started")
    assert registry.audit.verify().entries == count


def test_record_outside_a_transaction_is_refused(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    with pytest.raises(AgentError, match="inside one of its transactions"):
        registry.record(registry.db, "config", "x", {})
