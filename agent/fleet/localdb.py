"""A throw-away local PostgreSQL server (``wipe-agent demo --fleet``, the tests, the fleet benchmark).

Debian's binaries; the server runs as the ``postgres`` system user (PostgreSQL refuses to run as root)
in a private directory under /tmp that holds the data and the socket; nothing listens on TCP. The
directory is 0700 and owned by that user, so only it and root reach the socket, which is why ``trust``
authentication is acceptable here and nowhere else: a real fleet uses the host's own PostgreSQL
(``WIPE_AGENT_FLEET_DATABASE``). ``scripts/setup.sh --test`` and ``--fleet`` install the ``postgresql``
package; where it is missing the tests that need the server skip with the reason — unless
``WIPE_AGENT_REQUIRE_ROOT=1`` (CI), where a missing server is a failure, never a silent skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

SERVER_USER = "postgres"


def binaries() -> Path | None:
    """The folder of Debian's newest installed PostgreSQL server binaries (initdb, pg_ctl), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda path: int(Path(path).parent.parent.name) if Path(path).parent.parent.name.isdigit()
                   else 0)
    return Path(found[-1]).parent if found else None


def unavailable_reason() -> str | None:
    """Why a server cannot be started here, or None when it can."""
    if binaries() is None:
        return "PostgreSQL server binaries not installed (Debian package postgresql; scripts/setup.sh --test)"
    if os.geteuid() != 0:
        return "starting the test PostgreSQL server needs root (it runs as the postgres user)"
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        return f"no {SERVER_USER!r} system user (the postgresql package creates it)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (requirements-test.lock)"
    return None


class PostgresServer:
    """One throw-away cluster; :meth:`start` returns once it accepts connections, :meth:`stop` removes it."""

    def __init__(self, *, durable: bool = False) -> None:
        """``durable``: fsync and synchronous commit on, as in production (the tests turn them off for speed)."""
        self.durable = durable
        found = binaries()
        if found is None:
            raise RuntimeError(unavailable_reason() or "no PostgreSQL")
        self.bin = found
        self.directory = Path(tempfile.mkdtemp(prefix="wipe-agent-pg-", dir="/tmp"))
        self.data = self.directory / "data"
        self.socket_dir = self.directory
        account = pwd.getpwnam(SERVER_USER)
        os.chown(self.directory, account.pw_uid, account.pw_gid)
        os.chmod(self.directory, 0o700)
        self._uid, self._gid = account.pw_uid, account.pw_gid
        self.running = False

    def _run(self, *command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, user=self._uid, group=self._gid, extra_groups=[], cwd=self.directory,
                              capture_output=True, text=True, check=False, timeout=120)

    def start(self) -> str:
        """initdb, then pg_ctl start (waiting); returns the connection string of the ``postgres`` database."""
        init = self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", SERVER_USER, "--auth=trust",
                         "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions")
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr.strip() or init.stdout.strip()}")
        options = f"-c listen_addresses='' -c unix_socket_directories='{self.socket_dir}' -c max_connections=100"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        started = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.directory / "log"),
                            "-o", options, "-w", "-t", "60", "start")
        if started.returncode != 0:
            log = (self.directory / "log").read_text(errors="replace") if (self.directory / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()} {log[-2000:]}")
        self.running = True
        return self.dsn("postgres")

    def dsn(self, database: str) -> str:
        """A libpq connection string for ``database`` on this server's socket."""
        return f"host={self.socket_dir} dbname={database} user={SERVER_USER}"

    def create_database(self, name: str) -> str:
        """A new empty database (a test's own); returns its connection string."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as db:
            db.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory."""
        if self.running:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.running = False
        shutil.rmtree(self.directory, ignore_errors=True)
