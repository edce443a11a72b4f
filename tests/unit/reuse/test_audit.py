"""The hash-chained audit log detects a modified, deleted or reordered entry."""

from __future__ import annotations

import sqlite3

from agent.audit.log import GENESIS, AuditLog, entry_hash
from agent.store.schema import migrate


def _log(count: int = 4) -> AuditLog:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("BEGIN")
    migrate(db, "station-01")  # the audit tables are the store's (its migration ladder)
    db.execute("COMMIT")
    log = AuditLog(db)
    for index in range(count):
        log.append("test", f"ASSET-{index}", {"index": index, "text": "é"})
    return log


def test_an_untouched_chain_verifies() -> None:
    log = _log()
    report = log.verify()
    assert report.valid and report.entries == 4 and not report.problems
    entries = log.entries()
    assert entries[0].prev_hash == GENESIS and entries[1].prev_hash == entries[0].hash
    assert entries[2].hash == entry_hash(entries[1].hash, 3, entries[2].at, "test", "ASSET-2", entries[2].data)
    assert report.head == entries[-1].hash
    assert [entry.seq for entry in log.entries("ASSET-1")] == [2]


def test_a_modified_entry_is_detected() -> None:
    log = _log()
    log.db.execute("""UPDATE audit_log SET data_json='{"index":9,"text":"é"}' WHERE seq=2""")
    report = log.verify()
    assert not report.valid and report.problems == ("entry 2: hash does not match its content (entry modified)",)


def test_a_deleted_entry_is_detected() -> None:
    log = _log()
    log.db.execute("DELETE FROM audit_log WHERE seq=2")
    problems = log.verify().problems
    assert any("entry 3: expected sequence 2" in problem for problem in problems)
    assert any("entry 3: previous-hash link broken" in problem for problem in problems)


def test_removing_the_last_entries_is_detected_by_the_head() -> None:
    log = _log()
    log.db.execute("DELETE FROM audit_log WHERE seq=4")
    report = log.verify()
    assert not report.valid and "head records 4 entries" in report.problems[0]


def test_reordered_entries_are_detected() -> None:
    log = _log()
    # swap entries 2 and 3 (their sequence numbers, which are also the storage order)
    log.db.execute("UPDATE audit_log SET seq=-1 WHERE seq=2")
    log.db.execute("UPDATE audit_log SET seq=2 WHERE seq=3")
    log.db.execute("UPDATE audit_log SET seq=3 WHERE seq=-1")
    problems = log.verify().problems
    assert any("entry 2: previous-hash link broken" in problem and "reordered" in problem for problem in problems)
    assert any("entry 3: hash does not match" in problem for problem in problems)


def test_appending_after_a_verify_keeps_the_chain() -> None:
    log = _log(1)
    log.append("later", "X", {"list": [1, 2.5, None]})
    assert log.verify().valid and log.entries()[-1].data == {"list": [1, 2.5, None]}
