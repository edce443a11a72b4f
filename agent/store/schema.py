"""The store's one migration ladder: every table of the station (registry, intake, reuse, audit, operators,
fleet outbox).

Each :class:`Step` moves the schema from ``version - 1`` to ``version``; :func:`migrate` applies the
missing ones in order inside the caller's transaction and records the version in ``meta``. Steps
after the first are idempotent (``CREATE TABLE IF NOT EXISTS``, a column added only when missing):
before version 2 the intake, reuse, audit and operator tables were created lazily by their modules,
so a version-1 registry may hold any subset of them, with or without their later columns, and
upgrades in place without losing a row.

No module outside :mod:`agent.store` creates a table (a test holds every ``CREATE TABLE`` of
``agent/`` to this file): they rely on the store they are given having been opened, i.e. migrated.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field

META_TABLE = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
"""Created before the ladder is read: it holds ``schema_version`` (and the store's home station)."""

_V1_REGISTRY = (
    """CREATE TABLE drives (
        id INTEGER PRIMARY KEY,
        model TEXT NOT NULL,
        serial TEXT NOT NULL,
        transport TEXT NOT NULL,
        media TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        identity_json TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        UNIQUE (model, serial)
    )""",
    """CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        drive_id INTEGER NOT NULL REFERENCES drives(id),
        device_path TEXT NOT NULL,
        profile TEXT NOT NULL,
        method TEXT,
        level TEXT,
        operator TEXT NOT NULL,
        authorised_by TEXT NOT NULL,
        asset_tag TEXT,
        host_json TEXT,
        state TEXT NOT NULL,
        reason TEXT,
        error_code TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        bytes_written INTEGER NOT NULL DEFAULT 0,
        seconds REAL,
        throughput REAL,
        decisions_json TEXT,
        method_json TEXT,
        pid INTEGER,
        pid_started REAL,
        route TEXT,
        certificate_path TEXT
    )""",
    "CREATE INDEX jobs_state ON jobs(state)",
    """CREATE TABLE job_events (
        id INTEGER PRIMARY KEY,
        job_id TEXT NOT NULL REFERENCES jobs(id),
        at TEXT NOT NULL,
        state TEXT NOT NULL,
        event TEXT NOT NULL,
        data_json TEXT NOT NULL
    )""",
    "CREATE INDEX job_events_job ON job_events(job_id)",
    """CREATE TABLE verifications (
        id INTEGER PRIMARY KEY,
        job_id TEXT REFERENCES jobs(id),
        drive_id INTEGER REFERENCES drives(id),
        at TEXT NOT NULL,
        mode TEXT NOT NULL,
        passed INTEGER NOT NULL,
        seed TEXT,
        coverage REAL NOT NULL,
        bytes_checked INTEGER NOT NULL,
        result_json TEXT NOT NULL
    )""",
)

# the hash-chained audit log (agent.audit.log)
_AUDIT = (
    "CREATE TABLE IF NOT EXISTS audit_log (seq INTEGER PRIMARY KEY, at TEXT NOT NULL, kind TEXT NOT NULL, "
    "subject TEXT NOT NULL, data_json TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_head (id INTEGER PRIMARY KEY CHECK (id = 1), count INTEGER NOT NULL, "
    "hash TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS audit_checkpoints (number INTEGER PRIMARY KEY, station_id TEXT NOT NULL, "
    "seq INTEGER NOT NULL, head TEXT NOT NULL, count INTEGER NOT NULL, at TEXT NOT NULL, signature TEXT NOT NULL, "
    "certificate TEXT NOT NULL)",
    # the checkpoint interval the daemon configured ([audit] in station.toml), so that every process appending
    # (job workers, the CLI) follows it, and the SHA-256 of the configuration last recorded in the chain
    "CREATE TABLE IF NOT EXISTS audit_policy (id INTEGER PRIMARY KEY CHECK (id = 1), checkpoint_every INTEGER "
    "NOT NULL, checkpoint_minutes REAL NOT NULL, config_path TEXT, config_sha256 TEXT)",
)

# intake links, job media, seatings and drive routes (agent.daemon.intake)
_INTAKE = (
    """CREATE TABLE IF NOT EXISTS station_intake (
        id INTEGER PRIMARY KEY,
        bay TEXT NOT NULL,
        asset_tag TEXT NOT NULL,
        host_serial TEXT,
        make TEXT,
        model TEXT,
        operator TEXT NOT NULL,
        created_at TEXT NOT NULL,
        job_id TEXT,
        consumed_at TEXT
    )""",
    """CREATE TABLE IF NOT EXISTS station_job_media (
        job_id TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        serial TEXT NOT NULL,
        size_bytes INTEGER,
        dev_t INTEGER,
        diskseq INTEGER,
        boot_id TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS station_seatings (
        bay TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        serial TEXT NOT NULL,
        dev_t INTEGER NOT NULL,
        diskseq INTEGER NOT NULL,
        boot_id TEXT NOT NULL,
        written INTEGER NOT NULL,
        job_id TEXT NOT NULL,
        at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS station_intake_bay ON station_intake(bay, consumed_at)",
    """CREATE TABLE IF NOT EXISTS station_drive_routes (
        model TEXT NOT NULL,
        serial TEXT NOT NULL,
        route TEXT NOT NULL,
        reason TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (model, serial)
    )""",
)

# hosts, health readings, attestations, validations, decisions, destructions, manifests (agent.reuse.store)
_REUSE = (
    "CREATE TABLE IF NOT EXISTS reuse_hosts (asset TEXT PRIMARY KEY, kind TEXT NOT NULL, make TEXT NOT NULL, "
    "model TEXT NOT NULL, serial TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS reuse_host_drives (asset TEXT NOT NULL, drive_serial TEXT NOT NULL, "
    "at TEXT NOT NULL, PRIMARY KEY (asset, drive_serial))",
    "CREATE TABLE IF NOT EXISTS reuse_health (id INTEGER PRIMARY KEY, drive_serial TEXT NOT NULL, "
    "model TEXT NOT NULL, at TEXT NOT NULL, status TEXT NOT NULL, source TEXT NOT NULL, reading_json TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS reuse_health_serial ON reuse_health(drive_serial)",
    "CREATE TABLE IF NOT EXISTS reuse_attestations (id INTEGER PRIMARY KEY, asset TEXT NOT NULL, "
    "item TEXT NOT NULL, by_name TEXT NOT NULL, at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS reuse_validations (id INTEGER PRIMARY KEY, job_id TEXT NOT NULL, "
    "by_name TEXT NOT NULL, role TEXT NOT NULL, at TEXT NOT NULL)",
    # signed validation statements (certs.validation) and the jobs each covers, pinned by record hash
    "CREATE TABLE IF NOT EXISTS reuse_validation_statements (id TEXT PRIMARY KEY, at TEXT NOT NULL, "
    "decision TEXT NOT NULL, by_name TEXT NOT NULL, role TEXT NOT NULL, signer_kind TEXT NOT NULL, "
    "reason TEXT NOT NULL, pdf_path TEXT NOT NULL, statement_sha256 TEXT NOT NULL, statement_json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS reuse_statement_jobs (statement_id TEXT NOT NULL, job_id TEXT NOT NULL, "
    "certificate_id TEXT NOT NULL, record_sha256 TEXT NOT NULL, PRIMARY KEY (statement_id, job_id))",
    "CREATE INDEX IF NOT EXISTS reuse_statement_jobs_job ON reuse_statement_jobs(job_id)",
    "CREATE TABLE IF NOT EXISTS reuse_decisions (id INTEGER PRIMARY KEY, asset TEXT NOT NULL, at TEXT NOT NULL, "
    "route TEXT NOT NULL, decision_json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS reuse_destructions (id TEXT PRIMARY KEY, asset TEXT NOT NULL UNIQUE, "
    "at TEXT NOT NULL, method TEXT NOT NULL, witness TEXT NOT NULL, reference TEXT, report_path TEXT NOT NULL, "
    "report_sha256 TEXT NOT NULL, record_json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS reuse_manifests (id TEXT PRIMARY KEY, scheme TEXT NOT NULL, at TEXT NOT NULL, "
    "pdf_path TEXT NOT NULL, json_path TEXT NOT NULL, manifest_sha256 TEXT NOT NULL)",
    # the UNIQUE constraints are the last line of defence: an asset, or a drive's job, is never shipped twice
    "CREATE TABLE IF NOT EXISTS reuse_manifest_assets (asset TEXT PRIMARY KEY, manifest_id TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS reuse_manifest_jobs (job_id TEXT PRIMARY KEY, manifest_id TEXT NOT NULL)",
)

# who is signed in at the station (agent.operators)
_OPERATORS = (
    "CREATE TABLE IF NOT EXISTS operator_sign_ins (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "title TEXT NOT NULL, uid INTEGER NOT NULL, user TEXT NOT NULL, bays_json TEXT, signed_in_at TEXT NOT NULL, "
    "expires_at TEXT NOT NULL, signed_out_at TEXT, signed_out_reason TEXT)",
    "CREATE INDEX IF NOT EXISTS operator_sign_ins_open ON operator_sign_ins(signed_out_at)",
)

# the station's outbox to the fleet (agent.fleet.outbox): records numbered once, forwarded until acknowledged
_OUTBOX = (
    "CREATE TABLE IF NOT EXISTS fleet_outbox (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, key TEXT NOT NULL, "
    "body TEXT NOT NULL, sha256 TEXT NOT NULL, created_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS fleet_outbox_marks (stream TEXT PRIMARY KEY, mark INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS fleet_outbox_acks (id INTEGER PRIMARY KEY CHECK (id = 1), acked INTEGER NOT NULL, "
    "at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS fleet_outbox_refusals (seq INTEGER PRIMARY KEY, code TEXT NOT NULL, "
    "reason TEXT NOT NULL, at TEXT NOT NULL)",
)

Backfill = Callable[[sqlite3.Connection, str], None]
"""A step's data change, run after its statements with the migrating store's station id."""


def _own_station(tx: sqlite3.Connection, station_id: str) -> None:
    """Jobs from before stations were told apart are the migrating station's: its file held only its own."""
    tx.execute("UPDATE jobs SET station_id=? WHERE station_id IS NULL", (station_id,))


@dataclass(frozen=True)
class Step:
    """One rung of the ladder: its statements, the columns it adds when missing, its data change."""

    version: int
    why: str
    statements: tuple[str, ...] = ()
    columns: tuple[tuple[str, str, str], ...] = ()
    """(table, column, type) added by ALTER TABLE when ``PRAGMA table_info`` lacks it."""
    backfill: Backfill | None = field(default=None, compare=False)

    def tables(self) -> set[str]:
        """The tables this step creates."""
        return {match.group(1) for statement in self.statements
                if (match := _CREATE_TABLE.match(statement.strip()))}


_CREATE_TABLE = re.compile(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", re.IGNORECASE)

LADDER: tuple[Step, ...] = (
    Step(1, "the registry: drives, jobs, their journal and verifications", _V1_REGISTRY),
    Step(2, "every table the modules used to create lazily, and the columns added to them since",
         _AUDIT + _INTAKE + _REUSE + _OPERATORS,
         columns=(
             # who the job is attributed to (agent.operators): the signed-in person's title ("" when no
             # person), the uid that started it, and how ("the station daemon", "the station API", "the
             # command line"). NULL on jobs from before sign-ins existed: their ``operator`` is a login or name.
             ("jobs", "operator_title", "TEXT"),
             ("jobs", "operator_uid", "INTEGER"),
             ("jobs", "operator_via", "TEXT"),
             ("station_intake", "claimed_serial", "TEXT"),  # the drive a started job claimed the intake for
             ("station_drive_routes", "size_bytes", "INTEGER"),  # the capacity a route was recorded for
         )),
    Step(3, "jobs scoped by station, their owner also named by its boot",
         ("CREATE INDEX IF NOT EXISTS jobs_station_state ON jobs(station_id, state)",),
         columns=(("jobs", "station_id", "TEXT"), ("jobs", "boot_id", "TEXT")),
         backfill=_own_station),
    Step(4, "the station's outbox to the fleet (created lazily by agent.fleet.outbox before)", _OUTBOX),
    Step(5, "hand-overs: the partner's receipt of a manifest's devices, once per manifest", (
        "CREATE TABLE IF NOT EXISTS reuse_handovers (manifest_id TEXT PRIMARY KEY, at TEXT NOT NULL, "
        "received_by TEXT NOT NULL, partner TEXT NOT NULL, reference TEXT, recorded_by TEXT NOT NULL)",)),
)
SCHEMA_VERSION = LADDER[-1].version
assert [step.version for step in LADDER] == list(range(1, SCHEMA_VERSION + 1)), "the ladder has a gap"


def tables_at(version: int) -> set[str]:
    """Every table a store at schema ``version`` holds (``meta`` aside)."""
    return set().union(*(step.tables() for step in LADDER if step.version <= version))


def _missing_columns(tx: sqlite3.Connection, columns: tuple[tuple[str, str, str], ...]) -> list[tuple[str, str, str]]:
    present: dict[str, set[str]] = {}
    for table, _, _ in columns:
        if table not in present:
            present[table] = {str(row[1]) for row in tx.execute(f"PRAGMA table_info({table})")}
    return [item for item in columns if item[1] not in present[item[0]]]


def _apply(tx: sqlite3.Connection, step: Step, station_id: str) -> None:
    """One step, then ``meta.schema_version`` set to it (the caller's transaction commits both, or neither).

    Its tables first, then the columns it adds (to them or to older tables), then its other statements
    (indexes, which may name an added column)."""
    creates = [statement for statement in step.statements if _CREATE_TABLE.match(statement.strip())]
    for statement in creates:
        tx.execute(statement)
    for table, column, kind in _missing_columns(tx, step.columns):
        tx.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    for statement in step.statements:
        if statement not in creates:
            tx.execute(statement)
    if step.backfill is not None:
        step.backfill(tx, station_id)
    tx.execute("INSERT INTO meta(key, value) VALUES('schema_version', ?) "
               "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (str(step.version),))


def stored_version(db: sqlite3.Connection) -> int | None:
    """``meta.schema_version`` (None: no meta table or no version, i.e. a new database)."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    except sqlite3.OperationalError:
        return None  # no meta table yet
    return int(row[0]) if row is not None else None


class NewerSchema(Exception):
    """The store was written by a newer wipe-agent (its ``schema_version`` is above :data:`SCHEMA_VERSION`)."""

    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version


def migrate(tx: sqlite3.Connection, station_id: str) -> int:
    """Bring the schema to :data:`SCHEMA_VERSION` inside the caller's write transaction; the version found.

    A new database gets every step; an older one the steps above its version. ``station_id`` is the
    migrating store's station (jobs from before stations were told apart become its own, and it is
    recorded as the store's home station when none is). :class:`NewerSchema` for a newer store."""
    tx.execute(META_TABLE)
    current = stored_version(tx) or 0
    if current > SCHEMA_VERSION:
        raise NewerSchema(current)
    for step in LADDER:
        if step.version > current:
            _apply(tx, step, station_id)
    tx.execute("INSERT OR IGNORE INTO meta(key, value) VALUES('home_station', ?)", (station_id,))
    return current


def missing_columns(db: sqlite3.Connection) -> list[tuple[str, str, str]]:
    """The ladder's added columns a store lacks although its version says it has them (a table rebuilt
    by hand, a column dropped): read-only, checked at every open as before the ladder held them."""
    return _missing_columns(db, tuple(item for step in LADDER for item in step.columns))


def repair(tx: sqlite3.Connection, station_id: str) -> None:
    """Add :func:`missing_columns` back (inside the caller's write transaction) and rerun the data changes
    of the steps that add them (rows of a re-added ``station_id`` become the opening station's)."""
    missing = missing_columns(tx)
    for table, column, kind in missing:
        tx.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
    for step in LADDER:
        if step.backfill is not None and set(step.columns) & set(missing):
            step.backfill(tx, station_id)


def home_station(db: sqlite3.Connection) -> str | None:
    """The station a store was created or upgraded by (the default owner of its jobs), if recorded."""
    try:
        row = db.execute("SELECT value FROM meta WHERE key='home_station'").fetchone()
    except sqlite3.OperationalError:
        return None
    return str(row[0]) if row is not None else None
