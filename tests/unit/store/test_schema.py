"""The one migration ladder: every table from it, an old registry upgraded in place, nothing created elsewhere."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from agent.audit.log import AuditLog
from agent.daemon.intake import StationStore
from agent.errors import ConfigError
from agent.operators import Operators
from agent.reuse.store import ReuseStore
from agent.store import schema
from agent.store.registry import DEFAULT_STATION_ID, Registry

AGENT = Path(__file__).resolve().parents[3] / "agent"

# the schema-1 registry exactly as the release before the ladder created it (agent/store/registry.py, 70ef0a5),
# plus tables its modules created lazily on first use, in their shape of that time
V1_SQL = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO meta VALUES ('schema_version', '1');
CREATE TABLE drives (id INTEGER PRIMARY KEY, model TEXT NOT NULL, serial TEXT NOT NULL, transport TEXT NOT NULL,
    media TEXT NOT NULL, size_bytes INTEGER NOT NULL, identity_json TEXT NOT NULL, first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL, UNIQUE (model, serial));
CREATE TABLE jobs (id TEXT PRIMARY KEY, drive_id INTEGER NOT NULL REFERENCES drives(id), device_path TEXT NOT NULL,
    profile TEXT NOT NULL, method TEXT, level TEXT, operator TEXT NOT NULL, authorised_by TEXT NOT NULL,
    asset_tag TEXT, host_json TEXT, state TEXT NOT NULL, reason TEXT, error_code TEXT, created_at TEXT NOT NULL,
    started_at TEXT, finished_at TEXT, bytes_written INTEGER NOT NULL DEFAULT 0, seconds REAL, throughput REAL,
    decisions_json TEXT, method_json TEXT, pid INTEGER, pid_started REAL, route TEXT, certificate_path TEXT);
CREATE INDEX jobs_state ON jobs(state);
CREATE TABLE job_events (id INTEGER PRIMARY KEY, job_id TEXT NOT NULL REFERENCES jobs(id), at TEXT NOT NULL,
    state TEXT NOT NULL, event TEXT NOT NULL, data_json TEXT NOT NULL);
CREATE INDEX job_events_job ON job_events(job_id);
CREATE TABLE verifications (id INTEGER PRIMARY KEY, job_id TEXT REFERENCES jobs(id), drive_id INTEGER
    REFERENCES drives(id), at TEXT NOT NULL, mode TEXT NOT NULL, passed INTEGER NOT NULL, seed TEXT,
    coverage REAL NOT NULL, bytes_checked INTEGER NOT NULL, result_json TEXT NOT NULL);
CREATE TABLE station_intake (id INTEGER PRIMARY KEY, bay TEXT NOT NULL, asset_tag TEXT NOT NULL, host_serial TEXT,
    make TEXT, model TEXT, operator TEXT NOT NULL, created_at TEXT NOT NULL, job_id TEXT, consumed_at TEXT);
CREATE TABLE station_drive_routes (model TEXT NOT NULL, serial TEXT NOT NULL, route TEXT NOT NULL,
    reason TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (model, serial));
CREATE TABLE reuse_hosts (asset TEXT PRIMARY KEY, kind TEXT NOT NULL, make TEXT NOT NULL, model TEXT NOT NULL,
    serial TEXT NOT NULL, created_at TEXT NOT NULL);
INSERT INTO drives VALUES (1, 'Old Disk', 'OLD1', 'sata', 'hdd', 1073741824,
    '{"by_id": null, "firmware": "1.0", "id_path": null, "logical_sector": 512, "media": "hdd", "model": "Old Disk",
      "name": "sdz", "path": "/dev/sdz", "physical_sector": 512, "read_only": false, "removable": false,
      "rotational": true, "serial": "OLD1", "size_bytes": 1073741824, "transport": "sata", "vendor": null}',
    '2025-01-01T00:00:00.000+00:00', '2025-01-01T00:00:00.000+00:00');
INSERT INTO jobs(id, drive_id, device_path, profile, operator, authorised_by, state, created_at, pid, pid_started,
    route) VALUES ('00000000000000aa', 1, '/dev/sdz', 'nist-clear-overwrite', 'root', 'explicit', 'sanitised',
    '2025-01-01T00:00:00.000+00:00', 1, 0, 'reuse');
INSERT INTO job_events(job_id, at, state, event, data_json) VALUES ('00000000000000aa',
    '2025-01-01T00:00:00.000+00:00', 'created', 'created', '{}');
INSERT INTO station_intake(bay, asset_tag, operator, created_at) VALUES ('bay-1', 'LAPTOP-7', 'alice',
    '2025-01-01T00:00:00.000+00:00');
INSERT INTO station_drive_routes VALUES ('Old Disk', 'OLD1', 'destroy', '3 failed jobs in a row',
    '2025-01-01T00:00:00.000+00:00');
INSERT INTO reuse_hosts VALUES ('LAPTOP-7', 'laptop', 'Lenovo', 'T14', 'PF1', '2025-01-01T00:00:00.000+00:00');
"""


def _v1(state: Path) -> Path:
    state.mkdir(mode=0o700)
    path = state / "registry.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(V1_SQL)
    db.close()
    path.chmod(0o600)
    return path


def _tables(path: Path) -> set[str]:
    db = sqlite3.connect(path)
    try:
        return {str(r[0]) for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")} - {"meta"}
    finally:
        db.close()


def _columns(registry: Registry, table: str) -> set[str]:
    return {str(row["name"]) for row in registry.db.execute(f"PRAGMA table_info({table})")}


def test_a_v1_registry_with_lazily_created_tables_upgrades_in_place_without_losing_a_row(tmp_path: Path) -> None:
    path = _v1(tmp_path / "state")
    registry = Registry(tmp_path / "state", station_id="station-07").open()
    try:
        assert registry.schema_version() == schema.SCHEMA_VERSION
        assert _tables(path) == schema.tables_at(schema.SCHEMA_VERSION)
        old = registry.job("00000000000000aa")
        assert (old.state, old.operator, old.route, old.drive.serial) == ("sanitised", "root", "reuse", "OLD1")
        assert (old.operator_title, old.operator_via) == (None, None)
        assert [event["event"] for event in registry.events(old.id)] == ["created"]
        # jobs from before stations were told apart are the upgrading station's
        row = registry.db.execute("SELECT station_id, boot_id FROM jobs WHERE id='00000000000000aa'").fetchone()
        assert (row["station_id"], row["boot_id"]) == ("station-07", None)
        # the columns added to lazily created tables after they first existed
        assert "claimed_serial" in _columns(registry, "station_intake")
        assert "size_bytes" in _columns(registry, "station_drive_routes")
        assert {"operator_title", "operator_uid", "operator_via", "station_id", "boot_id"} <= _columns(registry, "jobs")
        reuse = ReuseStore(registry)
        assert reuse.registered_host("LAPTOP-7") is not None
        assert registry.audit.verify().valid
    finally:
        registry.close()
    intake = StationStore(tmp_path / "state")
    pending = intake.pending("bay-1")
    assert pending is not None and pending.asset_tag == "LAPTOP-7" and pending.claimed_serial is None
    assert intake.route("Old Disk", "OLD1") == {"route": "destroy", "reason": "3 failed jobs in a row",
                                                "at": "2025-01-01T00:00:00.000+00:00"}
    # the station that upgraded it is its home: an opener naming none acts for it
    again = Registry(tmp_path / "state").open()
    assert again.station_id == "station-07" and again.orphaned_jobs() == []
    again.close()


def test_a_fresh_store_holds_every_table_the_modules_use(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    try:
        assert _tables(registry.path) == schema.tables_at(schema.SCHEMA_VERSION)
        assert registry.station_id == DEFAULT_STATION_ID
        # each module reads and writes its tables on a freshly opened store, creating none itself
        assert Operators(registry).active() == []
        reuse = ReuseStore(registry)
        reuse.attest("A-1", "bios-password-cleared", "alice")
        assert reuse.assets() == [] and reuse.latest_decision("A-1") is None and reuse.shipped_in("A-1") is None
        assert registry.audit.verify().valid and registry.audit.entries()[-1].kind == "attestation"
    finally:
        registry.close()
    intake = StationStore(tmp_path)
    intake.add_intake("bay-1", "A-1", None, None, None, "alice")
    assert intake.pending("bay-1") is not None and intake.job_medium("x") is None
    assert _tables(tmp_path / "registry.sqlite3") == schema.tables_at(schema.SCHEMA_VERSION)


def test_every_table_the_code_names_is_in_the_ladder() -> None:
    ladder = schema.tables_at(schema.SCHEMA_VERSION) | {"meta"}
    named: set[str] = set()
    for source in AGENT.rglob("*.py"):
        for match in re.finditer(r"\b(?:INTO|UPDATE|FROM|JOIN)\s+([a-z_]+)\b", source.read_text(encoding="utf-8")):
            named.add(match.group(1))
    # SQLite's own table-valued functions and catalogue, and English words following "from" in prose
    tables = {name for name in named if "_" in name or name in {"drives", "jobs", "meta", "verifications"}}
    tables -= {"json_each", "sqlite_master"}
    unknown = {name for name in tables if name not in ladder and re.match(r"(audit|station|reuse|operator|job)_", name)}
    assert unknown == set()
    assert {"station_intake", "reuse_manifests", "audit_log", "operator_sign_ins", "job_events"} <= tables


def test_no_module_outside_the_store_creates_a_table() -> None:
    offenders = []
    for source in AGENT.rglob("*.py"):
        if source.parent.name == "store" and source.parent.parent == AGENT:
            continue
        if source == AGENT / "fleet" / "database.py":
            continue  # the fleet server's own PostgreSQL database and its ladder, not a station's store
        for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"CREATE\s+(TABLE|INDEX|UNIQUE INDEX|VIEW|TRIGGER)", line, re.IGNORECASE) or re.search(
                    r"ALTER\s+TABLE", line, re.IGNORECASE):
                offenders.append(f"{source.relative_to(AGENT.parent)}:{number}")
    assert offenders == []


def test_the_ladder_is_idempotent_above_its_first_step(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    try:
        before = registry.db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
        with registry.transaction() as tx:
            tx.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
            assert schema.migrate(tx, "station-01") == 1  # steps 2 and 3 again, on a store that has it all
        after = registry.db.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
        assert [tuple(r) for r in after] == [tuple(r) for r in before]
        assert registry.schema_version() == schema.SCHEMA_VERSION
    finally:
        registry.close()


def test_a_column_dropped_by_hand_is_added_back_at_open(tmp_path: Path) -> None:
    registry = Registry(tmp_path, station_id="s1").open()
    job = registry.db.execute("SELECT count(*) FROM jobs").fetchone()[0]
    registry.close()
    db = sqlite3.connect(tmp_path / "registry.sqlite3")
    db.execute("ALTER TABLE station_intake DROP COLUMN claimed_serial")
    db.commit()
    db.close()
    registry = Registry(tmp_path).open()
    try:
        assert "claimed_serial" in _columns(registry, "station_intake")
        assert registry.db.execute("SELECT count(*) FROM jobs").fetchone()[0] == job
    finally:
        registry.close()


def test_a_store_newer_than_the_code_is_refused_in_one_line_and_left_as_it_was(tmp_path: Path) -> None:
    Registry(tmp_path).open().close()
    path = tmp_path / "registry.sqlite3"
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(schema.SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(ConfigError) as refused:
        Registry(tmp_path).open()
    assert "\n" not in str(refused.value)
    assert f"has schema {schema.SCHEMA_VERSION + 1}, newer than this wipe-agent ({schema.SCHEMA_VERSION})" in str(
        refused.value)
    assert path.read_bytes() == before
    # the ladder itself refuses too (a second opener that raced past the read-only check)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    with pytest.raises(schema.NewerSchema):
        schema.migrate(db, "s1")
    db.execute("ROLLBACK")
    db.close()


def test_a_current_version_missing_a_ladder_table_is_refused(tmp_path: Path) -> None:
    Registry(tmp_path).open().close()
    db = sqlite3.connect(tmp_path / "registry.sqlite3")
    db.execute("DROP TABLE reuse_manifests")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="tables missing: reuse_manifests"):
        Registry(tmp_path).open()


def test_an_audit_log_needs_a_migrated_store(tmp_path: Path) -> None:
    db = sqlite3.connect(":memory:", isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        AuditLog(db)  # the log creates nothing: its tables are the ladder's
    db.execute("BEGIN")
    schema.migrate(db, "s1")
    db.execute("COMMIT")
    assert AuditLog(db).append("test", "x", {}).seq == 1
