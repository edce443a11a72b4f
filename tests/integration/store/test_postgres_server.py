"""The test PostgreSQL server is real: a separate server process, a socket, durable rows, isolated databases."""

from __future__ import annotations

import pytest

from agent.fleet.localdb import PostgresServer

pytestmark = pytest.mark.root


def test_server_is_a_real_postgresql_that_keeps_rows_and_enforces_constraints(postgres_dsn: str) -> None:
    import psycopg

    with psycopg.connect(postgres_dsn) as db:
        version = db.execute("SHOW server_version_num").fetchone()
        assert version is not None and int(version[0]) >= 150000
        db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        db.execute("INSERT INTO t VALUES (1, 'one')")
        db.commit()
        with pytest.raises(psycopg.errors.UniqueViolation):
            db.execute("INSERT INTO t VALUES (1, 'again')")
        db.rollback()
    with psycopg.connect(postgres_dsn) as again:  # a second connection sees the committed row, not the refused one
        assert again.execute("SELECT id, v FROM t").fetchall() == [(1, "one")]


def test_each_test_gets_its_own_database(postgres_server: PostgresServer, postgres_dsn: str) -> None:
    import psycopg

    other = postgres_server.create_database("t_isolation_probe")
    with psycopg.connect(postgres_dsn) as mine, psycopg.connect(other) as theirs:
        mine.execute("CREATE TABLE only_here (x INTEGER)")
        mine.commit()
        with pytest.raises(psycopg.errors.UndefinedTable):
            theirs.execute("SELECT * FROM only_here")


def test_server_listens_on_no_tcp_port(postgres_server: PostgresServer) -> None:
    import psycopg

    with psycopg.connect(postgres_server.dsn("postgres")) as db:
        row = db.execute("SHOW listen_addresses").fetchone()
        assert row == ("",)
