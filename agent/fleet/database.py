"""The fleet's PostgreSQL database: connection, one migration ladder, one transaction scope.

Why the project's own ladder rather than Alembic: the station's SQLite registry already migrates with a
numbered ladder of plain SQL checked by tests; the fleet's schema is the same kind of thing (a handful of
tables, no ORM), so one mechanism, readable as SQL, with no SQLAlchemy dependency on the fleet host.
Several fleet service instances may start against one database at once: the ladder runs under a
transaction-scoped advisory lock, each step and its version row in one transaction, so exactly one
instance applies a step and the others see it applied (PostgreSQL's DDL is transactional).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from agent.fleet.errors import FleetConfigError, FleetSchemaError, FleetUnavailable

if TYPE_CHECKING:
    import psycopg

MIGRATION_LOCK = 0x77697065_666C74  # pg_advisory_xact_lock key: "wipe" "flt"

MIGRATIONS: tuple[str, ...] = (
    # 1: the asset register and each asset's programme state
    """
    CREATE TABLE fleet_assets (
        asset_tag   TEXT PRIMARY KEY,
        make        TEXT NOT NULL,
        model       TEXT NOT NULL,
        serial      TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('laptop', 'desktop', 'tablet')),
        department  TEXT NOT NULL,
        due_date    DATE NOT NULL,
        state       TEXT NOT NULL DEFAULT 'awaiting',
        state_since TIMESTAMPTZ NOT NULL DEFAULT now(),
        imported_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE UNIQUE INDEX fleet_assets_tag_ci ON fleet_assets (upper(asset_tag));
    CREATE UNIQUE INDEX fleet_assets_serial_ci ON fleet_assets (upper(serial)) WHERE serial <> '';
    CREATE INDEX fleet_assets_state ON fleet_assets (state);
    CREATE TABLE fleet_imports (
        id          BIGSERIAL PRIMARY KEY,
        at          TIMESTAMPTZ NOT NULL DEFAULT now(),
        source      TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        rows        INTEGER NOT NULL,
        added       INTEGER NOT NULL,
        updated     INTEGER NOT NULL,
        unchanged   INTEGER NOT NULL
    )
    """,
    # 2: what stations forward (ingest), and what was refused (quarantine). Bodies are kept as the canonical
    # JSON text the station sent (TEXT, not JSONB: byte-exact, and JSONB refuses \u0000)
    """
    CREATE TABLE fleet_stations (
        station_id  TEXT PRIMARY KEY,
        next_seq    BIGINT NOT NULL DEFAULT 1,
        audit_seq   BIGINT NOT NULL DEFAULT 0,
        audit_head  TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000',
        first_seen  TIMESTAMPTZ NOT NULL DEFAULT now(),
        last_seen   TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE fleet_records (
        station_id  TEXT NOT NULL REFERENCES fleet_stations,
        seq         BIGINT NOT NULL,
        kind        TEXT NOT NULL,
        key         TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        status      TEXT NOT NULL CHECK (status IN ('accepted', 'quarantined')),
        reason      TEXT NOT NULL DEFAULT '',
        received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (station_id, seq)
    );
    CREATE TABLE fleet_jobs (
        station_id     TEXT NOT NULL REFERENCES fleet_stations,
        job_id         TEXT NOT NULL,
        state          TEXT NOT NULL,
        profile        TEXT,
        method         TEXT,
        model          TEXT,
        serial         TEXT,
        asset_tag      TEXT,
        created_at     TIMESTAMPTZ NOT NULL,
        finished_at    TIMESTAMPTZ,
        route          TEXT,
        certificate_id TEXT,
        body           TEXT NOT NULL,
        updated_seq    BIGINT NOT NULL,
        PRIMARY KEY (station_id, job_id)
    );
    CREATE INDEX fleet_jobs_asset ON fleet_jobs (upper(asset_tag));
    CREATE INDEX fleet_jobs_serial ON fleet_jobs (upper(serial));
    CREATE INDEX fleet_jobs_finished ON fleet_jobs (finished_at);
    CREATE TABLE fleet_audit (
        station_id  TEXT NOT NULL REFERENCES fleet_stations,
        seq         BIGINT NOT NULL,
        at          TEXT NOT NULL,
        kind        TEXT NOT NULL,
        subject     TEXT NOT NULL,
        data        TEXT NOT NULL,
        prev_hash   TEXT NOT NULL,
        hash        TEXT NOT NULL,
        PRIMARY KEY (station_id, seq)
    );
    CREATE TABLE fleet_checkpoints (
        station_id  TEXT NOT NULL REFERENCES fleet_stations,
        number      BIGINT NOT NULL,
        seq         BIGINT NOT NULL,
        head        TEXT NOT NULL,
        at          TEXT NOT NULL,
        body        TEXT NOT NULL,
        PRIMARY KEY (station_id, number)
    );
    CREATE TABLE fleet_documents (
        station_id  TEXT NOT NULL REFERENCES fleet_stations,
        document_id TEXT NOT NULL,
        kind        TEXT NOT NULL,
        sha256      TEXT NOT NULL,
        signed_at   TIMESTAMPTZ,
        pdf         BYTEA NOT NULL,
        PRIMARY KEY (station_id, document_id)
    );
    CREATE TABLE fleet_quarantine (
        id          BIGSERIAL PRIMARY KEY,
        station_id  TEXT NOT NULL,
        seq         BIGINT,
        code        TEXT NOT NULL,
        reason      TEXT NOT NULL,
        record      TEXT NOT NULL,
        at          TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE INDEX fleet_quarantine_station ON fleet_quarantine (station_id, seq)
    """,
    # 3: the programme model: what stations' audit chains say about each asset (intake, host registration,
    # eligibility decisions, manifests, destructions), from which — with the jobs — each asset's state follows
    """
    CREATE TABLE fleet_asset_facts (
        station_id  TEXT NOT NULL REFERENCES fleet_stations,
        audit_seq   BIGINT NOT NULL,
        asset_tag   TEXT NOT NULL,
        kind        TEXT NOT NULL,
        ref         TEXT NOT NULL DEFAULT '',
        route       TEXT,
        at          TEXT NOT NULL,
        voided      BOOLEAN NOT NULL DEFAULT false,
        part        INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (station_id, audit_seq, part)
    );
    CREATE INDEX fleet_asset_facts_drive ON fleet_asset_facts (station_id, ref) WHERE kind = 'host-drive';
    CREATE INDEX fleet_asset_facts_asset ON fleet_asset_facts (upper(asset_tag));
    CREATE INDEX fleet_asset_facts_ref ON fleet_asset_facts (station_id, kind, ref);
    ALTER TABLE fleet_assets ADD COLUMN scheme TEXT;
    ALTER TABLE fleet_assets ADD COLUMN last_station TEXT
    """,
    # 4: fleet-wide secondary-verification samples: each seed's nonce (fixed at its first draw), every draw,
    # and the drives drawn, assigned to the station that holds them
    """
    CREATE TABLE fleet_sample_seeds (
        seed        TEXT PRIMARY KEY,
        nonce       TEXT NOT NULL,
        first_at    TIMESTAMPTZ NOT NULL DEFAULT now()
    );
    CREATE TABLE fleet_sample_draws (
        id                BIGSERIAL PRIMARY KEY,
        seed              TEXT NOT NULL REFERENCES fleet_sample_seeds,
        percent           DOUBLE PRECISION NOT NULL,
        at                TIMESTAMPTZ NOT NULL DEFAULT now(),
        population        INTEGER NOT NULL,
        population_sha256 TEXT NOT NULL,
        earlier_draws     INTEGER NOT NULL
    );
    CREATE TABLE fleet_sample_items (
        draw_id     BIGINT NOT NULL REFERENCES fleet_sample_draws,
        station_id  TEXT NOT NULL,
        job_id      TEXT NOT NULL,
        method      TEXT NOT NULL,
        rank_sha256 TEXT NOT NULL,
        PRIMARY KEY (draw_id, station_id, job_id)
    )
    """,
    # 5: what the reports group jobs by, kept in columns at ingest (the body is the station's text)
    """
    ALTER TABLE fleet_jobs ADD COLUMN media TEXT;
    ALTER TABLE fleet_jobs ADD COLUMN reason TEXT;
    ALTER TABLE fleet_jobs ADD COLUMN bytes_written BIGINT;
    CREATE INDEX fleet_jobs_created ON fleet_jobs (created_at)
    """,
    # 6: read-only API tokens for the force's asset-management system (only their SHA-256 is kept)
    """
    CREATE TABLE fleet_tokens (
        name        TEXT PRIMARY KEY,
        sha256      TEXT NOT NULL UNIQUE,
        scopes      TEXT NOT NULL,
        created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        revoked_at  TIMESTAMPTZ,
        last_used   TIMESTAMPTZ
    )
    """,
    # 7: fleet manifests (agent/fleet/manifests.py): assets of every station allocated to a partner, signed by the
    # fleet; an asset is claimed by one manifest at most (the partial unique index), until that manifest is voided
    """
    CREATE TABLE fleet_manifests (
        id          BIGSERIAL PRIMARY KEY,
        document_id TEXT NOT NULL UNIQUE,
        scheme      TEXT NOT NULL,
        partner     TEXT NOT NULL,
        fleet       TEXT NOT NULL,
        created_at  TIMESTAMPTZ NOT NULL,
        status      TEXT NOT NULL DEFAULT 'issuing' CHECK (status IN ('issuing', 'issued', 'voided')),
        reason      TEXT NOT NULL DEFAULT '',
        voided_at   TIMESTAMPTZ,
        sha256      TEXT NOT NULL,
        body        TEXT NOT NULL,
        pdf         BYTEA,
        out_dir     TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE fleet_manifest_assets (
        manifest_id BIGINT NOT NULL REFERENCES fleet_manifests,
        asset_tag   TEXT NOT NULL,
        voided      BOOLEAN NOT NULL DEFAULT false,
        PRIMARY KEY (manifest_id, asset_tag)
    );
    CREATE UNIQUE INDEX fleet_manifest_assets_once ON fleet_manifest_assets (upper(asset_tag)) WHERE NOT voided
    """,
    # 8: the fleet web console's own audit chain (sign-ins and actions; agent/web/audit.py): hash-chained like a
    # station's, a head row that catches entries removed at the end, and triggers that refuse changes to entries
    """
    CREATE TABLE fleet_console_audit (
        seq         BIGINT PRIMARY KEY CHECK (seq > 0),
        at          TEXT NOT NULL,
        kind        TEXT NOT NULL,
        subject     TEXT NOT NULL,
        data        TEXT NOT NULL,
        prev_hash   TEXT NOT NULL,
        hash        TEXT NOT NULL
    );
    CREATE TABLE fleet_console_audit_head (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        count       BIGINT NOT NULL,
        hash        TEXT NOT NULL
    );
    INSERT INTO fleet_console_audit_head (id, count, hash)
        VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
    CREATE FUNCTION fleet_console_audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $body$
    BEGIN
        RAISE EXCEPTION 'the console audit chain is append-only (% refused)', TG_OP;
    END
    $body$;
    CREATE TRIGGER fleet_console_audit_append_only BEFORE UPDATE OR DELETE ON fleet_console_audit
        FOR EACH ROW EXECUTE FUNCTION fleet_console_audit_refuse();
    CREATE TRIGGER fleet_console_audit_no_truncate BEFORE TRUNCATE ON fleet_console_audit
        FOR EACH STATEMENT EXECUTE FUNCTION fleet_console_audit_refuse();
    CREATE TRIGGER fleet_console_audit_head_kept BEFORE DELETE OR TRUNCATE ON fleet_console_audit_head
        FOR EACH STATEMENT EXECUTE FUNCTION fleet_console_audit_refuse()
    """,
    # 9: a fleet manifest's hand-over (agent/fleet/manifests.py handover): the partner's receipt, one per manifest;
    # a handed-over manifest is never voided, and its assets are handed_over in the programme. The signed PDF's
    # SHA-256 is kept beside it (the partner view lists it without reading every PDF)
    """
    ALTER TABLE fleet_manifests ADD COLUMN pdf_sha256 TEXT;
    UPDATE fleet_manifests SET pdf_sha256 = encode(sha256(pdf), 'hex') WHERE pdf IS NOT NULL;
    CREATE TABLE fleet_manifest_handovers (
        manifest_id BIGINT PRIMARY KEY REFERENCES fleet_manifests,
        at          TIMESTAMPTZ NOT NULL DEFAULT now(),
        received_by TEXT NOT NULL,
        reference   TEXT NOT NULL DEFAULT ''
    )
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # the fleet extra is not installed on this host
        raise FleetConfigError("the fleet needs psycopg (pip install 'wipe-agent[fleet]')") from exc
    return psycopg


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class FleetDatabase:
    """One connection to the fleet database (``dsn`` is a libpq connection string or URI)."""

    def __init__(self, dsn: str) -> None:
        if not dsn.strip():
            raise FleetConfigError("no fleet database given (--database or $WIPE_AGENT_FLEET_DATABASE)")
        self.dsn = dsn
        self._db: psycopg.Connection[Any] | None = None

    def open(self) -> FleetDatabase:
        """Connect and bring the schema up to :data:`SCHEMA_VERSION`; refuse a newer or foreign schema."""
        psycopg = _psycopg()
        try:
            self._db = psycopg.connect(self.dsn, connect_timeout=10)
        except psycopg.Error as exc:
            raise FleetUnavailable(f"cannot connect to the fleet database: {_one_line(exc)}") from exc
        except Exception as exc:  # a malformed connection string is a ProgrammingError or ValueError
            raise FleetConfigError(f"bad fleet database address: {_one_line(exc)}") from exc
        try:
            self._migrate()
        except Exception:
            self.close()
            raise
        return self

    @property
    def db(self) -> psycopg.Connection[Any]:
        if self._db is None:
            raise FleetUnavailable("fleet database not open")
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> FleetDatabase:
        return self.open() if self._db is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction: committed when the block ends, rolled back on any error (nothing half-done)."""
        psycopg = _psycopg()
        try:
            with self.db.transaction():
                yield self.db
        except psycopg.Error as exc:
            raise FleetUnavailable(f"fleet database: {_one_line(exc)}") from exc

    def schema_version(self) -> int:
        row = self.db.execute("SELECT value FROM fleet_meta WHERE key = 'schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        psycopg = _psycopg()
        try:
            with self.db.transaction():
                self.db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                self.db.execute("CREATE TABLE IF NOT EXISTS fleet_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                current = self.schema_version()
                if current > SCHEMA_VERSION:
                    raise FleetSchemaError(f"the fleet database has schema {current}; this wipe-agent knows up "
                                           f"to {SCHEMA_VERSION}: upgrade wipe-agent, never downgrade the database")
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    self.db.execute(MIGRATIONS[version - 1])
                    self.db.execute("INSERT INTO fleet_meta(key, value) VALUES ('schema_version', %s) "
                                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (str(version),))
        except psycopg.Error as exc:
            raise FleetUnavailable(f"cannot prepare the fleet database: {_one_line(exc)}") from exc
