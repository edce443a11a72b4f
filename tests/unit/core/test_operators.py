"""Operators sign in as people: uid, bays and shift recorded and audited; jobs attributed to them or to nobody."""

from __future__ import annotations

import json
import os
import pwd
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.audit.log import AuditLog
from agent.discovery.identity import DriveIdentity
from agent.jobs.certify import CertificateSettings, build_record
from agent.operators import VIA_API, VIA_CLI, VIA_DAEMON, OperatorError, Operators, stamp_for, unnamed_text
from agent.store.registry import Registry
from tests.conftest import run_cli, skip_unless_user_can_run_checkout

IDENTITY = DriveIdentity(
    path="/dev/sdq", name="sdq", by_id=None, model="WDC WD5000AAKX", serial="WD-WCAYU7654321", firmware="15.01H15",
    vendor=None, size_bytes=500107862016, logical_sector=512, physical_sector=512, rotational=True,
    transport="sata", media="hdd", removable=False, read_only=False, id_path=None,
)


class Clock:
    """The registry's injectable clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def registry(tmp_path: Path, clock: Clock) -> Registry:
    opened = Registry(tmp_path / "state", clock=clock).open()
    yield opened
    opened.close()


def test_a_sign_in_records_the_uid_bays_and_shift_and_is_in_the_audit_chain(registry: Registry) -> None:
    operators = Operators(registry)
    entry = operators.sign_in("PC Alex Morgan", "Digital forensics technician", 1001, bays=("bay-1", "bay-2"),
                              shift_hours=8)
    assert (entry.name, entry.title, entry.uid, entry.bays) == ("PC Alex Morgan", "Digital forensics technician",
                                                                 1001, ("bay-1", "bay-2"))
    assert entry.signed_in_at == "2026-03-02T08:00:00.000+00:00"
    assert entry.expires_at == "2026-03-02T16:00:00.000+00:00"
    assert operators.for_uid(1001) == entry and operators.for_uid(1002) is None
    assert operators.for_bay("bay-2") == entry and operators.for_bay("bay-3") is None
    audit = AuditLog(registry.db)
    [logged] = audit.entries()
    assert (logged.kind, logged.subject, logged.data) == ("operator-sign-in", "PC Alex Morgan", entry.to_json())
    assert logged.at == entry.signed_in_at
    assert audit.verify().valid


@pytest.mark.parametrize(("name", "title", "why"), [
    ("PC \u202eNAGROM", "Technician", "U+202E"),  # a bidi override: reads differently from what is signed
    ("PC Morgan\nAuthorised: yes", "Technician", "U+000A"),
    ("PC Mor\u200dgan", "Technician", "U+200D"),  # a zero-width joiner (Cf)
    ("Zoe\u0301", "Technician", "NFC"),  # decomposed: two spellings of one visible name
    ("   ", "Technician", "empty"),
    ("PC Morgan", "", "empty"),
    ("PC Morgan", "Tech\x1b[2Jnician", "U+001B"),
    ("x" * 129, "Technician", "longer than 128"),
    # a self-chosen name that reads as another route's provenance: a job started through the API would name
    # its operator exactly as a web account's console start does ("NAME (TITLE) via the web console, uid U")
    ("PC Morgan (Supervisor) via the web console, uid 998", "Technician", "reads as where a start came from"),
    ("PC Morgan", "Supervisor) via the web console, uid 998 (x", "reads as where a start came from"),
    ("no operator signed in \u2014 started by uid 0 (root) via the station daemon", "Technician",
     "reads as where a start came from"),
])
def test_hostile_names_and_titles_are_refused_with_one_line_and_nothing_recorded(
        registry: Registry, name: str, title: str, why: str) -> None:
    operators = Operators(registry)
    with pytest.raises(OperatorError) as refused:
        operators.sign_in(name, title, 1001, bays=None)
    assert why in refused.value.message and "\n" not in refused.value.message
    assert operators.active() == [] and AuditLog(registry.db).entries() == []


def test_a_hostile_bay_name_is_refused(registry: Registry) -> None:
    with pytest.raises(OperatorError, match="U\\+202E"):
        Operators(registry).sign_in("PC Morgan", "Technician", 1001, bays=("bay-\u202e1",))


def test_the_shift_ends_by_itself_on_the_registry_clock(registry: Registry, clock: Clock) -> None:
    operators = Operators(registry)
    operators.sign_in("PC Morgan", "Technician", 1001, bays=None, shift_hours=2)
    clock.now += timedelta(hours=1, minutes=59)
    assert operators.for_uid(1001) is not None and stamp_for(registry, VIA_DAEMON, uid=0, bay="bay-9").named
    clock.now += timedelta(minutes=1)  # the shift's last instant is over
    assert operators.for_uid(1001) is None and operators.for_bay("bay-9") is None and operators.active() == []
    stamp = stamp_for(registry, VIA_API, uid=1001, bay="bay-9")
    assert not stamp.named and stamp.display() == unnamed_text(1001, VIA_API)


@pytest.mark.parametrize("hours", [0, -1, 24.5, 1e-300, 0.2, float("nan")])  # 1e-300: over before it began (L7)
def test_a_shift_outside_0_to_24_hours_is_refused(registry: Registry, hours: float) -> None:
    with pytest.raises(OperatorError, match="shift"):
        Operators(registry).sign_in("PC Morgan", "Technician", 1001, shift_hours=hours)


def test_a_new_sign_in_for_the_same_uid_replaces_the_old_one_and_says_so(registry: Registry) -> None:
    operators = Operators(registry)
    first = operators.sign_in("PC Morgan", "Technician", 1001, bays=None)
    second = operators.sign_in("PC Jones", "Senior technician", 1001, bays=None)
    assert operators.for_uid(1001) == second and [item.id for item in operators.active()] == [second.id]
    kinds = [(entry.kind, entry.subject, entry.data.get("signed_out_reason"))
             for entry in AuditLog(registry.db).entries()]
    assert kinds == [("operator-sign-in", "PC Morgan", None),
                     ("operator-sign-out", "PC Morgan", "replaced by a new sign-in for the same user"),
                     ("operator-sign-in", "PC Jones", None)]
    assert first.id != second.id


def test_sign_out_by_uid_or_by_name_and_nobody_to_sign_out_is_one_line(registry: Registry) -> None:
    operators = Operators(registry)
    operators.sign_in("PC Morgan", "Technician", 1001, bays=("bay-1",))
    operators.sign_in("PC Jones", "Technician", 1002, bays=("bay-1",))
    [ended] = operators.sign_out(uid=1001, by_uid=1001)
    assert ended.name == "PC Morgan" and ended.signed_out_reason == "signed out by uid 1001 (uid:1001)"
    assert operators.for_bay("bay-1") is not None and operators.for_bay("bay-1").name == "PC Jones"  # type: ignore[union-attr]
    [ended] = operators.sign_out(name="PC Jones", by_uid=0)
    assert ended.uid == 1002 and operators.active() == []
    with pytest.raises(OperatorError, match="nobody signed in as 'PC Jones'"):
        operators.sign_out(name="PC Jones")
    assert [entry.kind for entry in AuditLog(registry.db).entries()].count("operator-sign-out") == 2
    assert AuditLog(registry.db).verify().valid


def test_auto_start_is_attributed_by_bay_and_starts_by_the_callers_uid(registry: Registry) -> None:
    operators = Operators(registry)
    morgan = operators.sign_in("PC Morgan", "Technician", 1001, bays=("bay-1",))
    everywhere = operators.sign_in("PC Jones", "Supervisor", 1002, bays=None)
    # auto-start (the daemon's own uid): whoever covers the bay, the latest sign-in first
    assert stamp_for(registry, VIA_DAEMON, uid=0, bay="bay-1").name == "PC Jones"
    assert stamp_for(registry, VIA_DAEMON, uid=0, bay="bay-7").sign_in_id == everywhere.id
    operators.sign_out(uid=1002)
    daemon = stamp_for(registry, VIA_DAEMON, uid=0, bay="bay-1")
    assert (daemon.name, daemon.title, daemon.uid, daemon.sign_in_id) == ("PC Morgan", "Technician", 0, morgan.id)
    # the uid of the caller decides for API and command line, whatever bay
    assert stamp_for(registry, VIA_API, uid=1001, bay="bay-7").name == "PC Morgan"
    root = stamp_for(registry, VIA_CLI, uid=0)
    assert not root.named and root.display() == "no operator signed in \u2014 started by uid 0 (root) via the " \
                                                "command line"
    nobody_for_bay = stamp_for(registry, VIA_DAEMON, uid=0, bay="bay-7")
    assert nobody_for_bay.display() == "no operator signed in \u2014 started by uid 0 (root) via the station daemon"


def _sanitised_job(registry: Registry, **attribution: object) -> str:
    job_id = registry.create_job(IDENTITY, "nist-clear-overwrite", str(attribution.pop("operator")),
                                 "bay bay-1", None, None, **attribution)  # type: ignore[arg-type]
    registry.transition(job_id, "checking", "guard")
    registry.transition(job_id, "running", "method-start", method="overwrite.zero", level="clear",
                        decisions_json=json.dumps([{"method": "overwrite.zero", "taken": True, "level": "clear",
                                                    "reason": "host overwrite: Clear for HDDs"}]))
    registry.record_verification(job_id, IDENTITY, {"mode": "sampling", "passed": True, "seed": "ab" * 16,
                                                     "coverage": 0.1, "bytes_checked": 4096})
    registry.transition(job_id, "sanitised", "done", bytes_written=1)
    return job_id


def test_certificate_records_name_the_person_with_their_title_or_say_nobody_was_signed_in(registry: Registry) -> None:
    settings = CertificateSettings(organisation="Northshire Constabulary")
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    named = registry.job(_sanitised_job(registry, operator="PC Alex Morgan", operator_title="Forensics technician",
                                        operator_uid=1001, operator_via=VIA_API))
    assert named.operator_named and named.to_json()["operator_title"] == "Forensics technician"
    person = build_record(named, "station-07", settings, now).operator
    assert (person.name, person.title, person.organisation) == ("PC Alex Morgan", "Forensics technician",
                                                                "Northshire Constabulary")
    nobody = registry.job(_sanitised_job(registry, operator="", operator_title="", operator_uid=0,
                                         operator_via=VIA_DAEMON))
    assert not nobody.operator_named and nobody.to_json()["operator_named"] is False
    person = build_record(nobody, "station-07", settings, now).operator
    assert person.name == "no operator signed in \u2014 started by uid 0 (root) via the station daemon"
    assert person.title == "" and "root" != person.name
    # a job from before sign-ins keeps its recorded name and the station's default title
    legacy = registry.job(_sanitised_job(registry, operator="PC Jones"))
    assert legacy.operator_named and legacy.operator_via is None
    person = build_record(legacy, "station-07", settings, now).operator
    assert (person.name, person.title) == ("PC Jones", settings.operator_title)


def test_a_registry_from_before_the_operator_columns_gets_them_and_keeps_its_jobs(tmp_path: Path) -> None:
    state = tmp_path / "state"
    registry = Registry(state).open()
    job_id = registry.create_job(IDENTITY, "nist-clear-overwrite", "root", "explicit command by root")
    registry.close()
    db = sqlite3.connect(state / "registry.sqlite3")
    for column in ("operator_title", "operator_uid", "operator_via"):
        db.execute(f"ALTER TABLE jobs DROP COLUMN {column}")  # what a registry of the previous release holds
    db.commit()
    db.close()
    registry = Registry(state).open()
    try:
        columns = {row["name"] for row in registry.db.execute("PRAGMA table_info(jobs)")}
        assert {"operator_title", "operator_uid", "operator_via"} <= columns
        old = registry.job(job_id)
        assert (old.operator, old.operator_title, old.operator_via, old.operator_named) == ("root", None, None, True)
    finally:
        registry.close()


def test_the_command_line_refuses_a_hostile_name_in_one_line_and_lists_only_real_sign_ins(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    hostile = run_cli("--state-dir", state, "operator", "sign-in", "PC \u202eNAGROM", "--title", "Technician")
    assert hostile.returncode == 2 and hostile.stdout == ""
    assert hostile.stderr.count("\n") == 1 and "U+202E" in hostile.stderr and "Traceback" not in hostile.stderr
    both = run_cli("--state-dir", state, "operator", "sign-in", "PC Morgan", "--title", "T", "--bay", "b1",
                   "--all-bays")
    assert both.returncode == 2 and "not both" in both.stderr
    signed = run_cli("--state-dir", state, "operator", "sign-in", "PC Morgan", "--title", "Technician", "--all-bays",
                     "--json", env={"SUDO_UID": "4242"}, check=True)
    assert json.loads(signed.stdout)["bays"] == "all"
    listed = json.loads(run_cli("--state-dir", state, "operator", "list", "--json", check=True).stdout)
    sudo_uid = 4242 if os.getuid() == 0 else os.getuid()  # SUDO_UID is believed only when we are root
    assert [(item["name"], item["uid"]) for item in listed["operators"]] == [("PC Morgan", sudo_uid)]
    out = run_cli("--state-dir", state, "operator", "sign-out", env={"SUDO_UID": "4242"}, check=True)
    assert out.stdout.startswith("PC Morgan signed out")
    again = run_cli("--state-dir", state, "operator", "sign-out", env={"SUDO_UID": "4242"})
    assert again.returncode == 2 and "nothing to sign out" in again.stderr


@pytest.mark.root
def test_sudo_uid_is_believed_only_from_root() -> None:
    """Anyone can set SUDO_UID: a plain user claiming root's (or another's) uid is recorded as themselves."""
    probe = ["-c", "from agent.operators import invoking_uid; print(invoking_uid())"]
    as_root = subprocess.run([sys.executable, *probe], capture_output=True, text=True, timeout=60,
                             env={**os.environ, "SUDO_UID": "4242"}, check=True)
    assert as_root.stdout.strip() == "4242"
    skip_unless_user_can_run_checkout("nobody")
    claimed = subprocess.run([sys.executable, *probe], capture_output=True, text=True, timeout=60, user="nobody",
                             env={**os.environ, "SUDO_UID": "0"}, cwd="/")
    if claimed.returncode != 0 and "Permission denied" in claimed.stderr:
        pytest.skip("this checkout cannot be read by an unprivileged user")
    assert claimed.stdout.strip() == str(pwd.getpwnam("nobody").pw_uid), claimed.stderr
