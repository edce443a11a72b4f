"""The fleet console's audit chain on a real PostgreSQL: what goes in, that it cannot be changed in place, that a
change made anyway is found, and that a console whose chain cannot be written lets nobody in."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psycopg
import pytest

from agent.fleet.database import FleetDatabase
from agent.fleet.errors import FleetUnavailable
from agent.web.accounts import Accounts
from agent.web.audit import FleetConsoleAudit, entries, verify
from agent.web.fleet import fleet_console
from agent.web.server import Console
from tests.conftest import run_cli
from tests.web_kit import Client, serving


def fleet_for(dsn: str, accounts_path: Path) -> Console:
    return fleet_console(dsn, accounts=Accounts(accounts_path), trust=None, secure=False)


def test_every_sign_in_goes_to_the_chain(postgres_dsn: str, accounts_path: Path) -> None:
    with serving(fleet_for(postgres_dsn, accounts_path).application()) as server:
        assert Client(server).sign_in("auditor").status == 303
        partner = Client(server)
        assert partner.sign_in("partner").status == 303
        assert partner.post("/sign-out", {"csrf": partner.session_token()}).status == 303
        for _ in range(5):
            assert Client(server).sign_in("compliance", "not the password").status == 401
        for _ in range(3):  # hammering the form: one chained refusal a minute, not a row per request
            assert Client(server).sign_in("compliance").status == 429
    with FleetDatabase(postgres_dsn) as database:
        chain = entries(database)
        report = verify(database)
    assert [(entry.kind, entry.subject) for entry in chain] == [
        ("web-sign-in", "auditor"), ("web-sign-in", "partner"), ("web-sign-out", "partner"),
        *[("web-sign-in-failed", "compliance")] * 5, ("web-sign-in-refused", "compliance")]
    assert chain[1].data == {"role": "partner", "partner": "Reuse Partner Ltd", "client": "127.0.0.1"}
    assert chain[-1].data == {"client": "127.0.0.1", "reason": "rate limited", "refused": 1}
    assert [entry.seq for entry in chain] == list(range(1, 10))
    assert report.valid and report.entries == 9 and report.head == chain[-1].hash


def test_entries_cannot_be_changed_in_place(fleet: FleetDatabase) -> None:
    sink = FleetConsoleAudit(fleet.dsn)
    sink.append("web-sign-in", "admin", {"role": "admin"})
    sink.close()
    for statement in ("UPDATE fleet_console_audit SET subject = 'someone'", "DELETE FROM fleet_console_audit",
                      "TRUNCATE fleet_console_audit", "DELETE FROM fleet_console_audit_head"):
        with pytest.raises(FleetUnavailable, match="append-only"), fleet.transaction() as db:
            db.execute(statement)
    assert verify(fleet).valid


def _tampered(fleet: FleetDatabase, statement: str) -> list[str]:
    with fleet.transaction() as db:  # the owner can switch the triggers off: the chain still tells
        db.execute("ALTER TABLE fleet_console_audit DISABLE TRIGGER USER")
        db.execute(statement)
        db.execute("ALTER TABLE fleet_console_audit ENABLE TRIGGER USER")
    report = verify(fleet)
    assert not report.valid
    return list(report.problems)


@pytest.mark.parametrize(("statement", "found"), [
    ("UPDATE fleet_console_audit SET data = '{\"role\":\"auditor\"}' WHERE seq = 2", "entry 2: hash does not match"),
    ("DELETE FROM fleet_console_audit WHERE seq = 2", "entry 3: expected sequence 2"),
    ("DELETE FROM fleet_console_audit WHERE seq = 3", "the head records 3 entries"),
    ("UPDATE fleet_console_audit SET data = 'not json' WHERE seq = 1", "entry 1: data is not JSON"),
])
def test_a_change_made_anyway_is_found(fleet: FleetDatabase, statement: str, found: str) -> None:
    sink = FleetConsoleAudit(fleet.dsn)
    for name in ("admin", "operator", "auditor"):
        sink.append("web-sign-in", name, {"role": name})
    sink.close()
    problems = _tampered(fleet, statement)
    assert any(found in problem for problem in problems), problems


def test_appends_from_several_consoles_make_one_chain(fleet: FleetDatabase) -> None:
    sinks = [FleetConsoleAudit(fleet.dsn) for _ in range(3)]

    def work(sink: FleetConsoleAudit, number: int) -> None:
        for index in range(20):
            sink.record("web-action", f"console-{number}", {"index": index})

    threads = [threading.Thread(target=work, args=(sink, number)) for number, sink in enumerate(sinks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for sink in sinks:
        sink.close()
    report = verify(fleet)
    assert report.valid and report.entries == 60, report.problems


def test_a_chain_that_cannot_be_written_lets_nobody_in(postgres_dsn: str, accounts_path: Path) -> None:
    console = fleet_console(postgres_dsn, accounts=Accounts(accounts_path), trust=None, secure=False,
                            audit=FleetConsoleAudit("host=/nonexistent dbname=nothing connect_timeout=1"))
    with serving(console.application()) as server:
        client = Client(server)
        reply = client.sign_in("admin")
        assert reply.status == 503 and "audit record cannot be written" in reply.body
        assert "wa_session" not in client.cookies


def test_the_cli_verifies_and_shows_the_chain(fleet: FleetDatabase) -> None:
    sink = FleetConsoleAudit(fleet.dsn)
    sink.append("web-sign-in", "admin", {"role": "admin", "client": "127.0.0.1"})
    sink.append("web-sign-in-failed", "<script>", {"client": "127.0.0.1"})
    sink.close()
    good = run_cli("web", "audit", "verify", "--fleet", fleet.dsn)
    assert good.returncode == 0 and "console audit chain: valid, 2 entries" in good.stdout, good.stderr
    shown = run_cli("web", "audit", "show", "--fleet", fleet.dsn, "--json")
    assert [entry["subject"] for entry in json.loads(shown.stdout)["entries"]] == ["admin", "<script>"]
    _tampered(fleet, "UPDATE fleet_console_audit SET subject = 'someone' WHERE seq = 1")
    broken = run_cli("web", "audit", "verify", "--fleet", fleet.dsn)
    assert broken.returncode == 1 and "BROKEN" in broken.stdout and "entry 1: hash does not match" in broken.stdout
    unreachable = run_cli("web", "audit", "verify", "--fleet", "host=/nonexistent dbname=x connect_timeout=1")
    assert unreachable.returncode != 0 and unreachable.stderr.count("\n") == 1, unreachable.stderr
    assert "Traceback" not in unreachable.stderr


def test_the_migration_leaves_an_empty_valid_chain(fleet: FleetDatabase) -> None:
    report = verify(fleet)
    assert report.valid and report.entries == 0 and report.head == "0" * 64
    with pytest.raises(psycopg.Error):
        fleet.db.execute("INSERT INTO fleet_console_audit_head (id, count, hash) VALUES (2, 0, 'x')")
    fleet.db.rollback()


def _rewrite(fleet: FleetDatabase, subject_of_1: str, keep: int) -> None:
    """What the database's owner can do: triggers off, entry 1 changed, entries past ``keep`` gone, every hash and
    the head recomputed — a chain the walk alone finds clean."""
    from certs.audit_chain import GENESIS, entry_hash

    with fleet.transaction() as db:
        db.execute("ALTER TABLE fleet_console_audit DISABLE TRIGGER USER")
        db.execute("DELETE FROM fleet_console_audit WHERE seq > %s", (keep,))
        db.execute("UPDATE fleet_console_audit SET subject = %s WHERE seq = 1", (subject_of_1,))
        prev = GENESIS
        for seq, at, kind, subject, data in db.execute(
                "SELECT seq, at, kind, subject, data FROM fleet_console_audit ORDER BY seq").fetchall():
            digest = entry_hash(prev, seq, at, kind, subject, json.loads(data))
            db.execute("UPDATE fleet_console_audit SET prev_hash = %s, hash = %s WHERE seq = %s", (prev, digest, seq))
            prev = digest
        db.execute("UPDATE fleet_console_audit_head SET count = %s, hash = %s WHERE id = 1", (keep, prev))
        db.execute("ALTER TABLE fleet_console_audit ENABLE TRIGGER USER")


def test_a_rewrite_of_the_whole_chain_is_found_only_against_an_anchor_kept_outside(fleet: FleetDatabase) -> None:
    sink = FleetConsoleAudit(fleet.dsn)
    for name in ("admin", "mallory", "auditor"):
        sink.append("web-sign-in", name, {"role": "admin"})
    sink.close()
    printed = run_cli("web", "audit", "verify", "--fleet", fleet.dsn)
    anchor_line = next(line for line in printed.stdout.splitlines() if "anchor 3:" in line)
    anchor = anchor_line.split("anchor ", 1)[1].split(" ", 1)[0]
    assert verify(fleet, anchor=(3, anchor.split(":")[1])).anchored_to == 3

    _rewrite(fleet, "someone-else", keep=3)  # mallory's sign-in was entry 2; entry 1 now names someone else
    assert verify(fleet).valid  # the limit, said in audit.py and the README: an unsigned chain is rewritable
    found = run_cli("web", "audit", "verify", "--fleet", fleet.dsn, "--expect", anchor)
    assert found.returncode == 1 and "BROKEN" in found.stdout and "entry 3: hash" in found.stdout, found.stdout

    _rewrite(fleet, "someone-else", keep=2)  # cut below the anchor: mallory's last trace gone
    cut = run_cli("web", "audit", "verify", "--fleet", fleet.dsn, "--expect", anchor)
    assert cut.returncode == 1 and "does not have" in cut.stdout, cut.stdout

    for bad in ("3", "x:" + "0" * 64, "3:" + "G" * 64, "0:" + "0" * 64, "3:abc"):
        refused = run_cli("web", "audit", "verify", "--fleet", fleet.dsn, "--expect", bad)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, (bad, refused.stderr)
