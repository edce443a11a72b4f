"""The registry: drives, jobs, their state transitions and verifications, in SQLite (WAL).

Every state change is its own committed transaction, and the runner commits ``running`` *before*
the first destructive write: a process killed at any moment leaves a job in a non-final state,
which :meth:`Registry.reconcile` turns into ``interrupted`` — never ``sanitised``.

Each of those transactions also appends the matching entry to the hash-chained audit log
(:mod:`agent.audit.log`, same connection, same transaction): a change that rolls back leaves no
entry, and no committed change is missing from the chain. The journal (``job_events``) stays the
job's own detailed history; the chain is the station-wide, tamper-evident one.

:class:`Registry` is the SQLite implementation of :class:`agent.store.interface.Store`: its schema is
the one ladder of :mod:`agent.store.schema` (every table of the station, migrated at open), its jobs
are scoped by ``station_id`` and owned by (station, boot, pid, process start), and its file may live
apart from the state directory (``path``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from agent.audit.log import AuditLog, evidence_sha256, station_signer_source
from agent.discovery.identity import DriveIdentity
from agent.errors import AgentError, ConfigError
from agent.jsontext import JsonInputError, parse_json
from agent.store import schema
from agent.store.schema import SCHEMA_VERSION
from certs.files import STATE_DIRECTORY_MODE, make_private_directory

__all__ = ["SCHEMA_VERSION", "JobRow", "OpenEvent", "Registry"]

REGISTRY_FILE = "registry.sqlite3"
DEFAULT_STATION_ID = "local"
"""The station a store's jobs belong to when neither the opener nor the store names one (a single station)."""
FINAL_STATES = ("sanitised", "failed", "interrupted", "refused")
ACTIVE_STATES = ("created", "checking", "running", "verifying")
# what identification writes when a drive does not say (agent.discovery.identity): such drives share
# one row per model in ``drives`` and must never stand in for each other
UNKNOWN_IDENTITY = ("", "unknown")

Clock = Callable[[], datetime]
# the job columns a transition's audit entry repeats (the large JSON ones stay in the journal and the row)
_CHAINED_COLUMNS = ("method", "level", "reason", "error_code", "route", "bytes_written", "certificate_path")
CHAINED_EVENTS = ("canaries-planted",)
"""Journal events whose data a later check regenerates from (verify-media --job): chained by SHA-256."""


def _file_sha256(path: str) -> str | None:
    """SHA-256 of an issued document as it lies on disk (None when it cannot be read, e.g. not yet moved)."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


def default_state_dir() -> Path:
    """``$WIPE_AGENT_STATE_DIR`` or ``/var/lib/wipe-agent``."""
    return Path(os.environ.get("WIPE_AGENT_STATE_DIR", "/var/lib/wipe-agent"))


@dataclass(frozen=True)
class JobRow:
    """A job as stored."""

    id: str
    drive: DriveIdentity
    device_path: str
    profile: str
    method: str | None
    level: str | None
    operator: str
    authorised_by: str
    asset_tag: str | None
    host: dict[str, Any] | None
    state: str
    reason: str | None
    error_code: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    bytes_written: int
    seconds: float | None
    throughput: float | None
    decisions: list[dict[str, Any]]
    method_details: dict[str, Any] | None
    route: str | None
    certificate_path: str | None
    verification: dict[str, Any] | None
    secondary_verifications: list[dict[str, Any]] = field(default_factory=list)
    operator_title: str | None = None
    operator_uid: int | None = None
    operator_via: str | None = None

    @property
    def operator_named(self) -> bool:
        """False for a job nobody signed in for (its ``operator`` is empty); legacy jobs count as named."""
        return self.operator_via is None or bool(self.operator)

    def to_json(self) -> dict[str, Any]:
        """The job's JSON form (CLI ``--json`` and the API)."""
        verification = self.verification
        return {
            "job_id": self.id,
            "outcome": self.state,
            "state": self.state,
            "device": self.device_path,
            "drive": self.drive.to_json(),
            "profile": self.profile,
            "method": self.method,
            "level": self.level,
            "operator": self.operator,
            "operator_title": self.operator_title,
            "operator_uid": self.operator_uid,
            "operator_via": self.operator_via,
            "operator_named": self.operator_named,
            "authorised_by": self.authorised_by,
            "asset_tag": self.asset_tag,
            "host": self.host,
            "reason": self.reason,
            "error_code": self.error_code,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "bytes_written": self.bytes_written,
            "seconds": self.seconds,
            "throughput_bytes_per_second": self.throughput,
            "decisions": self.decisions,
            "method_details": self.method_details,
            "route": self.route,
            "certificate": self.certificate_path,
            "verification": verification,
            "secondary_verifications": self.secondary_verifications,
        }


def has_serial(serial: str | None) -> bool:
    """False for a drive the station could not read a serial from ("unknown" or empty)."""
    return serial is not None and serial.strip().lower() not in UNKNOWN_IDENTITY


def identity_matchable(model: str, serial: str) -> bool:
    """Whether (model, serial) names one physical drive, so its history may be looked up by them."""
    return model.strip().lower() not in UNKNOWN_IDENTITY and has_serial(serial)


@dataclass(frozen=True)
class OpenEvent:
    """A journal event of an earlier job that no later event of that job has answered (see ``open_events``)."""

    job_id: str
    event_id: int
    at: str
    data: dict[str, Any]
    job_state: str


def _process_started(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


BUSY_TIMEOUT_MS = 30_000


def _begin_immediate(db: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, waiting for the write lock by polling rather than SQLite's busy handler.

    The handler sleeps 1, 2, 5, 10 … up to 100 ms between attempts and has no queue, so with eight
    job workers and the daemon committing journal entries one unlucky writer kept losing: the
    daemon benchmark showed single waits of 180-230 ms, which staggered the jobs' starts. A poll
    every 0.2-2 ms gets the lock within a few milliseconds of its release. Other statements keep
    the busy timeout (reads in WAL mode wait only in rare recovery cases).
    """
    db.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        pause = 0.0002
        while True:
            try:
                db.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if (getattr(exc, "sqlite_errorcode", 5) & 0xFF) not in (5, 6) or time.monotonic() > deadline:
                    raise  # not SQLITE_BUSY (5) / SQLITE_LOCKED (6), or waited long enough
            time.sleep(pause)
            pause = min(pause * 2, 0.002)
    finally:
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
_BOOT_ID: list[str | None] = []


def current_boot_id() -> str | None:
    """This boot's id (the kernel's random ``boot_id``, read once per process); None where there is none."""
    if not _BOOT_ID:
        try:
            _BOOT_ID.append(BOOT_ID_FILE.read_text(encoding="ascii").strip() or None)
        except (OSError, UnicodeDecodeError):
            _BOOT_ID.append(None)
    return _BOOT_ID[0]


def owner_alive(row: sqlite3.Row, station_id: str, boot_id: str | None) -> bool:
    """Whether the owner recorded on a job row (station, boot, pid + start time) may still be running it.

    A job of another station is never judged here: only that station can see its processes, so it
    counts as alive (a station sharing the store with others must not mark their jobs interrupted).
    A job of this station owned under another boot is dead, whatever process now has its pid. Else
    the pid must run and have started when the owner did (a reused pid is not the owner). Rows from
    before stations and boots were recorded (NULL) are this station's, judged by the pid alone."""
    if row["station_id"] is not None and row["station_id"] != station_id:
        return True
    if row["boot_id"] is not None and boot_id is not None and row["boot_id"] != boot_id:
        return False
    started = _process_started(int(row["pid"])) if row["pid"] else None
    return started is not None and row["pid_started"] is not None and abs(started - row["pid_started"]) < 1


_JOB_ID_PREFIX = re.compile(r"[0-9a-f]{1,32}")
RUN_AS_ROOT = "run as root (or as a member of wipe-operators via the daemon)"
# The registry holds clear-random AES keys and every job's record: owner-only (0600). Operators read it
# through the daemon's API socket (group api_group, 0660), never the file, so no group read is needed.
# SQLite gives -wal, -shm and -journal the main file's mode; whatever an older version or an admin left
# more open is tightened on open and the change written to the audit chain (see Registry._tighten).
REGISTRY_MODE = 0o600
REGISTRY_FILES = ("", "-wal", "-shm", "-journal")
PERMISSIONS_AUDIT_KIND = "state-permissions-tightened"
SQLITE_MAGIC = b"SQLite format 3\x00"


def sqlite_reason(exc: sqlite3.Error) -> str:
    """SQLite's own words, with the one case an operator can act on said plainly."""
    text = str(exc)
    if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == 13 or "disk is full" in text:  # SQLITE_FULL
        return f"{text} (the state filesystem is full)"
    return text


def _filesystem_full(directory: Path) -> bool:
    try:
        return os.statvfs(directory).f_bavail == 0
    except OSError:
        return False


def _read_only_filesystem(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _header_problem(header: bytes, size: int) -> str | None:
    """What is wrong with a database file's first 100 bytes and size: ``"!reason"`` when certainly
    not an intact SQLite file, a plain reason when only suspect (to be confirmed by SQLite), else None."""
    if len(header) < 100 or not header.startswith(SQLITE_MAGIC):
        return "!sqlite: file is not a database"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return f"!sqlite: impossible page size {page_size}"
    if size % page_size:
        return f"!truncated: {size} bytes is not a whole number of {page_size}-byte pages"
    pages = int.from_bytes(header[28:32], "big")
    # the in-header page count is valid only when the change counter matches "version valid for"
    if pages and header[24:28] == header[92:96] and size < pages * page_size:
        return f"truncated: {size} bytes, the header says {pages * page_size}"
    return None


# Registry files this process holds open through SQLite, (st_dev, st_ino) → open instances.
# POSIX record locks belong to the process, and closing *any* descriptor of a file drops all of them:
# the raw header read of :meth:`Registry._check_existing` (open + close), made while the daemon's own
# connection was open (a second Registry on an API thread), silently released the daemon's WAL locks,
# so a worker closing its last connection took itself for the last user and reset the -wal/-shm under
# the daemon, whose next commit failed with "disk I/O error". A file this process already opened (and
# checked) is therefore not read again outside SQLite while it is open.
_OPEN_REGISTRIES: dict[tuple[int, int], int] = {}
_OPEN_LOCK = threading.Lock()


def _file_key(path: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_dev, status.st_ino


def _open_in_this_process(path: Path) -> bool:
    key = _file_key(path)
    return key is not None and _OPEN_REGISTRIES.get(key, 0) > 0


def _remove_created(paths: list[Path]) -> None:
    """Remove the -wal/-shm files a refused registry's read-only probe created (they did not exist before)."""
    for item in paths:
        try:
            if item.stat().st_size == 0 or item.name.endswith("-shm"):
                item.unlink()
        except OSError:
            pass


class Registry:
    """The SQLite store (by default ``state_dir/registry.sqlite3``); one connection per instance."""

    def __init__(self, state_dir: Path, clock: Clock = utc_now, *, station_id: str | None = None,
                 path: Path | None = None) -> None:
        """``station_id``: the station whose jobs this instance creates and reconciles (None: the store's
        home station, i.e. the one that created or upgraded it, else :data:`DEFAULT_STATION_ID`).
        ``path``: where the database lives, when not ``state_dir/registry.sqlite3`` (the state directory
        still holds the station key, certificates and the other files; only the store moves)."""
        self.state_dir = Path(state_dir)
        self.clock = clock
        self.path = Path(path) if path is not None else self.state_dir / REGISTRY_FILE
        self.directory = self.path.parent  # the store's own directory (the state directory by default)
        self._station_asked = station_id
        self._station_id = station_id or DEFAULT_STATION_ID
        self._boot_id = current_boot_id()
        self._db: sqlite3.Connection | None = None
        self._audit: AuditLog | None = None
        self._signer = station_signer_source(state_dir)
        self._loose_directory: dict[str, Any] | None = None  # the state directory's mode before it was tightened
        self._inode: tuple[int, int] | None = None  # the registry file this instance holds open

    def open(self) -> Registry:
        """Open (creating and migrating if needed), after checking without writing that it is ours.

        A registry that is not a wipe-agent registry, is corrupt or truncated, has a newer schema,
        or cannot be written is refused with one line and left byte-for-byte as it was: nothing
        (not even the switch to WAL) touches it before :meth:`_check_existing` has read it back."""
        self._check_directory()
        if os.path.lexists(self.path):
            if not _open_in_this_process(self.path):
                self._check_existing()
        else:
            self._create_private()
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"state directory {self.directory}: cannot open registry: {exc}") from exc
        db.row_factory = sqlite3.Row
        # switching a new database to WAL needs a lock that SQLite's busy handler does not wait for:
        # parallel first openers (the demo's jobs, the daemon's workers) retry instead of failing
        deadline = time.monotonic() + 30
        try:
            while True:
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            db.execute("PRAGMA synchronous=FULL")  # a committed state survives power loss
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.Error as exc:
            db.close()
            raise ConfigError(f"registry {self.path}: cannot open: {self._reason(exc)}") from exc
        self._db = db
        self._inode = _file_key(self.path)
        if self._inode is not None:
            with _OPEN_LOCK:
                _OPEN_REGISTRIES[self._inode] = _OPEN_REGISTRIES.get(self._inode, 0) + 1
        try:
            self._migrate()
        except sqlite3.Error as exc:  # e.g. the state filesystem is full while creating the tables
            self.close()
            raise ConfigError(f"registry {self.path}: cannot create its tables: {self._reason(exc)}") from exc
        except BaseException:  # a refused (newer) schema or a failed migration: no connection left open
            self.close()
            raise
        try:
            self._tighten()
        except BaseException:
            self.close()
            raise
        return self

    def _create_private(self) -> None:
        """Create the registry file owner-only before SQLite does (it would follow the umask: 0644)."""
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, REGISTRY_MODE)
        except OSError as exc:
            raise ConfigError(f"registry {self.path}: cannot create it: {exc.strerror}") from None
        try:
            os.fchmod(descriptor, REGISTRY_MODE)  # O_CREAT's mode is masked by the umask; this is not
        finally:
            os.close(descriptor)

    def _tighten(self) -> None:
        """Registry files readable or writable by anyone but the owner are made 0600, and it is recorded.

        Tightened rather than refused: a station upgraded from a version that left the file 0644 keeps
        working and stops exposing its keys at once, and the audit chain says when and what it was.
        A file this process may not chmod (another user's) is refused with the command that fixes it."""
        changed: list[dict[str, Any]] = [self._loose_directory] if self._loose_directory else []
        for suffix in REGISTRY_FILES:
            path = Path(f"{self.path}{suffix}")
            try:
                status = os.lstat(path)
            except FileNotFoundError:
                continue
            if not stat.S_ISREG(status.st_mode) or not stat.S_IMODE(status.st_mode) & 0o077:
                continue
            try:
                os.chmod(path, REGISTRY_MODE, follow_symlinks=False)
            except OSError as exc:
                raise ConfigError(f"registry file {path} is mode {stat.S_IMODE(status.st_mode):04o}, open to other "
                                  f"users, and cannot be tightened ({exc.strerror}): run 'chmod 600 {path}' as its "
                                  "owner or root") from None
            changed.append({"file": path.name, "was": f"{stat.S_IMODE(status.st_mode):04o}",
                            "now": f"{REGISTRY_MODE:04o}",
                            "was_writable_by_others": bool(stat.S_IMODE(status.st_mode) & 0o022)})
        if changed:
            self.audit.append(PERMISSIONS_AUDIT_KIND, self.path.name, {"files": changed})

    def _refuse(self, reason: str) -> ConfigError:
        return ConfigError(f"registry {self.path} is not a wipe-agent registry or is corrupt ({reason}): "
                           "refusing; nothing was changed")

    def _unreadable(self, exc: sqlite3.Error) -> ConfigError:
        """Damage (SQLITE_CORRUPT, SQLITE_NOTADB) is a refusal of the file; anything else (I/O, a
        full filesystem, a lock) is a problem of the station around it, and said so."""
        if (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in (11, 26) or (isinstance(exc, sqlite3.DatabaseError) \
                and not isinstance(exc, sqlite3.OperationalError)):
            return self._refuse(f"sqlite: {sqlite_reason(exc)}")
        return ConfigError(f"registry {self.path}: cannot be read: {self._reason(exc)}: refusing; nothing was changed")

    def _reason(self, exc: sqlite3.Error) -> str:
        """SQLite's reason, plus the cause it often hides ("disk I/O error" for a -shm on a full disk)."""
        reason = sqlite_reason(exc)
        if "full" not in reason and _filesystem_full(self.directory):
            reason += "; the state filesystem is full"
        return reason

    def _check_directory(self) -> None:
        """The state directory exists (created if missing) and this process may write in it."""
        directory = self.directory
        try:
            make_private_directory(directory, STATE_DIRECTORY_MODE)
        except PermissionError:
            raise ConfigError(f"state directory {directory} does not exist and cannot be created: permission "
                              f"denied; {RUN_AS_ROOT}") from None
        except FileExistsError:
            raise ConfigError(f"state directory {directory} is not a directory") from None
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ConfigError(f"state directory {directory}: cannot create it: {reason}") from None
        if not directory.is_dir():
            raise ConfigError(f"state directory {directory} is not a directory")
        if not os.access(directory, os.X_OK):
            raise ConfigError(f"state directory {directory}: permission denied; {RUN_AS_ROOT}")
        self._loose_directory = self._tighten_directory(directory)
        if not os.access(directory, os.W_OK):
            if _read_only_filesystem(directory):
                raise ConfigError(f"state directory {directory} is on a read-only filesystem: "
                                  "the registry cannot record jobs; refusing")
            if os.geteuid() == 0:
                raise ConfigError(f"state directory {directory} cannot be written (immutable?): refusing")
            raise ConfigError(f"state directory {directory} is not writable; {RUN_AS_ROOT}")

    @staticmethod
    def _tighten_directory(directory: Path) -> dict[str, Any] | None:
        """A state directory others may write is closed to them (returned for the audit chain); a
        world-writable parent that is not sticky, or a shared sticky directory, is refused.

        The registry file's 0600 is moot when anyone can rename it, its -wal, ``pki/`` or
        ``certificates/`` away and put their own in its place."""
        resolved = directory.resolve()
        for parent in resolved.parents:
            mode = stat.S_IMODE(os.stat(parent).st_mode)
            if mode & 0o002 and not mode & stat.S_ISVTX:
                raise ConfigError(f"state directory {directory}: its parent {parent} is mode {mode:04o}, writable by "
                                  f"every user, who could replace the station's state: run 'chmod o-w {parent}' "
                                  "or choose another state_dir; refusing")
        status = os.stat(resolved)
        mode = stat.S_IMODE(status.st_mode)
        if not mode & 0o022:
            return None
        if mode & stat.S_ISVTX or status.st_uid != os.geteuid():
            raise ConfigError(f"state directory {directory} is mode {mode:04o}, writable by other users, and is "
                              "not this station's own to tighten: give the station a directory of its own "
                              "(state_dir); refusing")
        try:
            os.chmod(resolved, mode & STATE_DIRECTORY_MODE)
        except OSError as exc:
            raise ConfigError(f"state directory {directory} is mode {mode:04o}, writable by other users, and "
                              f"cannot be tightened ({exc.strerror}): run 'chmod go-w {directory}'") from None
        return {"file": ".", "was": f"{mode:04o}", "now": f"{mode & STATE_DIRECTORY_MODE:04o}",
                "was_writable_by_others": True}

    def _check_existing(self) -> None:
        """Read the existing registry file without writing it: a SQLite database with our schema."""
        path = self.path
        try:
            status = os.lstat(path)
        except OSError as exc:
            raise ConfigError(f"registry {path}: {exc.strerror}") from None
        if not stat.S_ISREG(status.st_mode):
            raise self._refuse("not a regular file")
        if not os.access(path, os.R_OK):
            raise ConfigError(f"registry {path}: permission denied; {RUN_AS_ROOT}")
        if not os.access(path, os.W_OK):
            if _read_only_filesystem(path.parent):
                raise ConfigError(f"registry {path} is on a read-only filesystem: jobs cannot be recorded; refusing")
            if os.geteuid() == 0:  # root is refused only by an immutable file (chattr +i) or a ro mount
                raise ConfigError(f"registry {path} cannot be written (immutable?): jobs cannot be recorded; "
                                  "refusing; nothing was changed")
            raise ConfigError(f"registry {path} is read-only; {RUN_AS_ROOT}")
        try:
            with open(path, "rb") as handle:
                header = handle.read(100)
        except OSError as exc:
            raise ConfigError(f"registry {path}: cannot read: {exc.strerror}") from None
        if not header:
            return  # empty: a first opener created it an instant ago (SQLite treats it as a new database)
        suspect = _header_problem(header, status.st_size)
        if suspect is not None and suspect.startswith("!"):
            raise self._refuse(suspect[1:])
        try:
            # read-only: a hot journal is not rolled back, WAL is not switched on, nothing is written.
            # Never "immutable": other processes (the daemon, its workers) write this file while we
            # look, and an immutable reader of a changing file made their commits fail with "disk I/O
            # error" (eight parallel daemon jobs). The header check above refuses a non-SQLite file
            # before SQLite ever opens it.
            beside = [Path(f"{path}{suffix}") for suffix in ("-wal", "-shm")]
            created = [item for item in beside if not os.path.lexists(item)]
            probe = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro",
                                    uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
        except sqlite3.Error as exc:
            raise self._unreadable(exc) from None
        try:
            tables = {row[0] for row in probe.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if suspect is not None:
                # the header disagrees with the file's size: only SQLite, under its lock, can tell a
                # checkpoint in progress from a truncated file
                verdict = probe.execute("PRAGMA quick_check(1)").fetchone()
                if verdict is None or verdict[0] != "ok":
                    raise self._refuse(f"{suspect}; sqlite: {verdict[0] if verdict else 'no answer'}")
            if not tables:
                return  # a new, empty database
            if "meta" not in tables:
                raise self._refuse("no wipe-agent schema in it")
            row = probe.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row is None or not str(row[0]).isdigit():
                raise self._refuse(f"schema version {row[0] if row else 'missing'!r}")
            version = int(row[0])
            if version > SCHEMA_VERSION:
                raise ConfigError(f"registry {path} has schema {version}, newer than this wipe-agent "
                                  f"({SCHEMA_VERSION}): refusing; nothing was changed")
            missing = schema.tables_at(version) - tables
            if version >= 1 and missing:
                raise self._refuse(f"tables missing: {', '.join(sorted(missing))}")
            probe.execute("SELECT count(*) FROM jobs").fetchone()
        except sqlite3.Error as exc:
            probe.close()
            _remove_created(created)
            raise self._unreadable(exc) from None
        except ConfigError:
            # refused: what the read-only look made beside the file goes, so the refused file is left as found
            probe.close()
            _remove_created(created)
            raise
        finally:
            probe.close()

    def sibling(self) -> Registry:
        """A new, unopened instance of the same store (same location, station, clock and signer)."""
        other = Registry(self.state_dir, self.clock, station_id=self._station_asked, path=self.path)
        other._signer = self._signer
        return other

    @contextmanager
    def session(self) -> Iterator[Registry]:
        """This store on a short-lived connection of its own, closed after the block.

        For callers on any thread (a SQLite connection belongs to the thread that made it, and an
        instance holds one): the daemon's intake records are written from its loop, its job
        supervisors and its API threads. The session skips :meth:`open`'s checks and migration,
        which a store opened once already passed (:meth:`~agent.daemon.intake.StationStore.create`),
        and are too slow for a status view polled many times a second."""
        other = self.sibling()
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as exc:
            raise ConfigError(f"{self.path}: cannot open: {exc}") from exc
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA synchronous=FULL")
            other._db = db
            other._station_id = self._station_asked or schema.home_station(db) or DEFAULT_STATION_ID
            yield other
        finally:
            other._db = None
            other._audit = None
            db.close()

    @property
    def db(self) -> sqlite3.Connection:
        """The open connection."""
        if self._db is None:
            self.open()
        assert self._db is not None
        return self._db

    @property
    def audit(self) -> AuditLog:
        """The station's audit chain on this registry's connection (entries share its transactions)."""
        if self._audit is None or self._audit.db is not self.db:
            self._audit = AuditLog(self.db, signer=self._signer, transaction=self.transaction)
        return self._audit

    def close(self) -> None:
        """Close the connection."""
        if self._db is not None:
            self._db.close()
            self._db = None
            if self._inode is not None:
                with _OPEN_LOCK:
                    left = _OPEN_REGISTRIES.get(self._inode, 1) - 1
                    if left > 0:
                        _OPEN_REGISTRIES[self._inode] = left
                    else:
                        _OPEN_REGISTRIES.pop(self._inode, None)
                self._inode = None
        self._audit = None

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, rolled back on error.

        ``durable`` (the default): the commit is fsynced (``synchronous=FULL``) and survives power
        loss. ``durable=False`` is for bookkeeping that may be lost harmlessly — a job's ``created``
        and ``checking`` entries before anything touched the drive: the commit skips the fsync and
        the next durable commit (at the latest ``running``, before the first destructive write)
        makes it durable with the same fsync of the WAL. Power lost in between loses a job that
        never wrote a byte; the database stays consistent either way. Eight jobs starting together
        saved three fsyncs each, taken under the write lock, i.e. serialised across all of them.
        """
        db = self.db
        if not durable:
            db.execute("PRAGMA synchronous=NORMAL")
        try:
            _begin_immediate(db)
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:  # also when COMMIT itself failed (an I/O error): never left open
                    db.execute("ROLLBACK")
                raise
        finally:
            if not durable and not db.in_transaction:
                db.execute("PRAGMA synchronous=FULL")

    def _migrate(self) -> None:
        """Apply the ladder (:mod:`agent.store.schema`) and settle which station this instance is.

        The common case, a current schema, needs no write lock (eight job workers open the registry
        at once); otherwise one IMMEDIATE transaction: concurrent openers serialise there and the
        second one finds the schema already current."""
        if schema.stored_version(self.db) != SCHEMA_VERSION:
            with self.transaction() as tx:
                try:
                    schema.migrate(tx, self._station_asked or schema.home_station(tx) or DEFAULT_STATION_ID)
                except schema.NewerSchema as exc:
                    raise ConfigError(f"registry {self.path} has schema {exc.version}, newer than this wipe-agent "
                                      f"({SCHEMA_VERSION})") from None
        if schema.missing_columns(self.db):  # checked again under the write lock
            with self.transaction() as tx:
                schema.repair(tx, self._station_asked or schema.home_station(tx) or DEFAULT_STATION_ID)
        self._station_id = self._station_asked or schema.home_station(self.db) or DEFAULT_STATION_ID

    @property
    def station_id(self) -> str:
        """The station whose jobs this instance creates, adopts and reconciles."""
        if self._db is None:
            self.open()
        return self._station_id

    def claim_home(self) -> str | None:
        """Make this instance's station the store's home station; the one it replaces (None: no change).

        The daemon calls it at start with the configured ``station_id``: the processes that open the
        store naming no station (its job workers, the command line) then act for the configured one,
        and the jobs of the previous home (``local`` before the station was configured, or the old
        name of a renamed station) become its own, so none of its orphans goes unreconciled. Only for
        a store one station owns (SQLite under its state directory): on a shared store, stations
        name themselves and none claims the others' jobs."""
        station = self.station_id
        if schema.home_station(self.db) == station:
            return None  # the common case: no write lock
        with self.transaction() as tx:
            previous = schema.home_station(tx)
            if previous == station:
                return None
            if previous is not None:
                tx.execute("UPDATE jobs SET station_id=? WHERE station_id=?", (station, previous))
            tx.execute("INSERT INTO meta(key, value) VALUES('home_station', ?) "
                       "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (station,))
        return previous

    @property
    def location(self) -> str:
        """Where the store lives (the database file), separate from the state directory."""
        return str(self.path)

    @property
    def boot_id(self) -> str | None:
        """This boot's id, recorded as part of a job's owner."""
        return self._boot_id

    def _owner_alive(self, row: sqlite3.Row) -> bool:
        return owner_alive(row, self.station_id, self._boot_id)

    def schema_version(self) -> int:
        """The schema version on disk."""
        row = self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        return int(row["value"])

    def _now(self) -> str:
        return self.clock().isoformat(timespec="milliseconds")

    def record(self, tx: sqlite3.Connection, kind: str, subject: str, data: dict[str, Any]) -> None:
        """Append an audit entry inside the caller's :meth:`transaction` (``tx``: its connection).

        Values the journal would store with ``str()`` (paths, enums) are stored the same way here, so
        any data a caller journals can also be chained.
        """
        if tx is not self._db or not tx.in_transaction:
            raise AgentError("registry: audit entries are written inside one of its transactions")
        self.audit.append(kind, subject, data, at=self.clock(), in_transaction=True, stringify=True)

    def _event(self, tx: sqlite3.Connection, job_id: str, state: str, event: str, data: dict[str, Any]) -> None:
        """Append to a job's journal inside the caller's transaction."""
        tx.execute(
            "INSERT INTO job_events(job_id, at, state, event, data_json) VALUES(?,?,?,?,?)",
            (job_id, self._now(), state, event, json.dumps(data, sort_keys=True, default=str)),
        )

    # drives ---------------------------------------------------------------------------------
    def upsert_drive(self, identity: DriveIdentity, durable: bool = True) -> int:
        """Record a drive seen now; return its id."""
        now = self._now()
        with self.transaction(durable) as tx:
            tx.execute(
                "INSERT INTO drives(model, serial, transport, media, size_bytes, identity_json, first_seen, last_seen) "
                "VALUES(?,?,?,?,?,?,?,?) ON CONFLICT(model, serial) DO UPDATE SET "
                "transport=excluded.transport, media=excluded.media, size_bytes=excluded.size_bytes, "
                "identity_json=excluded.identity_json, last_seen=excluded.last_seen",
                (identity.model, identity.serial, identity.transport, identity.media, identity.size_bytes,
                 json.dumps(identity.to_json(), sort_keys=True), now, now),
            )
            row = tx.execute(
                "SELECT id FROM drives WHERE model=? AND serial=?", (identity.model, identity.serial)
            ).fetchone()
        return int(row["id"])

    # jobs -----------------------------------------------------------------------------------
    def create_job(
        self,
        identity: DriveIdentity,
        profile: str,
        operator: str,
        authorised_by: str,
        asset_tag: str | None = None,
        host: dict[str, Any] | None = None,
        durable: bool = True,
        *,
        operator_title: str | None = None,
        operator_uid: int | None = None,
        operator_via: str | None = None,
    ) -> str:
        """A new job in state ``created``, owned by this process (``durable``: see :meth:`transaction`).

        ``operator`` is the signed-in person's name ("" when nobody was) with ``operator_title``, the
        uid that started the job and how (:mod:`agent.operators`); all None for a caller that does not
        know about sign-ins (``operator`` is then whatever name it gave)."""
        drive_id = self.upsert_drive(identity, durable)
        job_id = uuid.uuid4().hex[:16]
        now = self._now()
        pid = os.getpid()
        with self.transaction(durable) as tx:
            tx.execute(
                "INSERT INTO jobs(id, drive_id, device_path, profile, operator, authorised_by, asset_tag, host_json, "
                "state, created_at, pid, pid_started, operator_title, operator_uid, operator_via, station_id, "
                "boot_id) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (job_id, drive_id, identity.path, profile, operator, authorised_by, asset_tag,
                 json.dumps(host) if host else None, "created", now, pid, _process_started(pid),
                 operator_title, operator_uid, operator_via, self.station_id, self._boot_id),
            )
            attribution = {"operator_title": operator_title, "operator_uid": operator_uid, "operator_via": operator_via}
            attributed = {key: value for key, value in attribution.items() if value is not None}
            self._event(tx, job_id, "created", "created", {"profile": profile, "operator": operator, **attributed})
            self.record(tx, "job-created", job_id, {
                "profile": profile, "operator": operator, **attributed, "authorised_by": authorised_by,
                "asset_tag": asset_tag, "host": host, "device": identity.path,
                "drive": {"model": identity.model, "serial": identity.serial, "size_bytes": identity.size_bytes}})
        return job_id

    def transition(self, job_id: str, state: str, event: str, data: dict[str, Any] | None = None, *,
                   durable: bool = True, **columns: Any) -> None:
        """Move a job to ``state`` and journal why, in one committed transaction.

        Final and ``running`` states are always durable; ``durable=False`` only for the steps before
        them (see :meth:`transaction`).
        """
        allowed = {"method", "level", "reason", "error_code", "started_at", "finished_at", "bytes_written",
                   "seconds", "throughput", "decisions_json", "method_json", "route", "certificate_path"}
        unknown = set(columns) - allowed
        if unknown:
            raise AgentError(f"registry: unknown job columns {sorted(unknown)}")
        now = self._now()
        if state in FINAL_STATES and "finished_at" not in columns:
            columns["finished_at"] = now
        assignments = ", ".join(f"{key}=?" for key in ["state", *columns])
        durable = durable or state in FINAL_STATES or state == "running"
        with self.transaction(durable) as tx:
            current = tx.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
            if current is None:
                raise AgentError(f"no job {job_id}")
            if current["state"] in FINAL_STATES:
                raise AgentError(f"job {job_id} is already {current['state']}")
            tx.execute(f"UPDATE jobs SET {assignments} WHERE id=?", (state, *columns.values(), job_id))
            self._event(tx, job_id, state, event, data or {})
            chained = {key: value for key, value in columns.items() if key in _CHAINED_COLUMNS}
            if columns.get("method_json"):  # too large to repeat; its hash binds what verify-media regenerates
                chained["method_sha256"] = evidence_sha256(json.loads(columns["method_json"]))
            self.record(tx, f"job-{state}", job_id, {"from": current["state"], "event": event, "data": data or {},
                                                     **chained})

    def journal(self, job_id: str, event: str, data: dict[str, Any]) -> None:
        """Record an event without changing state."""
        with self.transaction() as tx:
            row = tx.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
            self._event(tx, job_id, row["state"], event, data)
            if event in CHAINED_EVENTS:  # evidence a later check relies on: its hash in the chain
                self.record(tx, f"job-{event}", job_id, {"sha256": evidence_sha256(data)})

    def attach_certificate(self, job_id: str, path: str, certificate_id: str, record_sha256: str) -> None:
        """Link a finished job to its signed certificate (or failure report)."""
        with self.transaction() as tx:
            row = tx.execute("SELECT state, certificate_path FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None or row["state"] not in ("sanitised", "failed"):
                raise AgentError(f"job {job_id} cannot carry a certificate")
            if row["certificate_path"]:
                raise AgentError(f"job {job_id} already has a certificate")
            tx.execute("UPDATE jobs SET certificate_path=? WHERE id=?", (path, job_id))
            issued = {"path": path, "certificate_id": certificate_id, "record_sha256": record_sha256}
            self._event(tx, job_id, row["state"], "certificate-issued", issued)
            # a failed job's document is a failure report, not a certificate: the chain says which
            kind = "certificate-issued" if row["state"] == "sanitised" else "report-issued"
            self.record(tx, kind, job_id, {**issued, "pdf_sha256": _file_sha256(path)})

    def note_certificate_refused(self, job_id: str, reason: str) -> None:
        """Record on a finished job's journal why it got no certificate (e.g. no organisation configured)."""
        with self.transaction() as tx:
            row = tx.execute("SELECT state FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None:
                raise AgentError(f"no job {job_id}")
            self._event(tx, job_id, row["state"], "certificate-refused", {"reason": reason})

    def record_verification(self, job_id: str | None, drive: DriveIdentity, result: dict[str, Any], *,
                            also: Callable[[sqlite3.Connection, int], None] | None = None) -> int:
        """Store a verification result (of a job, or a later spot check when ``job_id`` is None); its row id.

        ``also`` runs inside the same transaction with the new row's id (the audit entry of a
        secondary verification): both are committed, or neither."""
        drive_id = self.upsert_drive(drive)
        with self.transaction() as tx:
            cursor = tx.execute(
                "INSERT INTO verifications(job_id, drive_id, at, mode, passed, seed, coverage, bytes_checked, "
                "result_json) VALUES(?,?,?,?,?,?,?,?,?)",
                (job_id, drive_id, self._now(), result["mode"], int(bool(result["passed"])), result.get("seed"),
                 float(result["coverage"]), int(result["bytes_checked"]), json.dumps(result, sort_keys=True)),
            )
            row_id = int(cursor.lastrowid or 0)
            if also is not None:
                also(tx, row_id)  # a secondary verification: its caller writes the (richer) audit entry
            else:
                self.record(tx, "verification", job_id or f"drive:{drive.model}/{drive.serial}", {
                    "verification_id": row_id, "job_id": job_id, "drive": {"model": drive.model,
                                                                           "serial": drive.serial},
                    "mode": result["mode"], "passed": bool(result["passed"]), "coverage": result["coverage"],
                    "bytes_checked": result["bytes_checked"], "seed": result.get("seed")})
        return row_id

    def open_events(self, model: str, serial: str, event: str, answered_by: str, *,
                    exclude_job: str | None = None) -> list[OpenEvent]:
        """Every ``event`` in the journals of the drive's jobs with no later ``answered_by`` in the same job.

        Newest first (journal order, not clock order). The drive is (model, serial); a drive without
        a serial or model matches nothing. Jobs still owned by a live process are left out: their
        owner may yet answer the event. Used for temporary ATA passwords not yet removed.
        """
        if not identity_matchable(model, serial):
            return []
        rows = self.db.execute(
            "SELECT event.id AS event_id, event.at, event.data_json, jobs.id AS job_id, jobs.state, jobs.pid, "
            "jobs.pid_started, jobs.station_id, jobs.boot_id FROM job_events AS event "
            "JOIN jobs ON jobs.id = event.job_id "
            "JOIN drives ON drives.id = jobs.drive_id "
            "WHERE drives.model = ? AND drives.serial = ? AND event.event = ? AND NOT EXISTS ("
            "SELECT 1 FROM job_events AS later WHERE later.job_id = event.job_id AND later.event = ? "
            "AND later.id > event.id) ORDER BY event.id DESC",
            (model, serial, event, answered_by),
        ).fetchall()
        found: list[OpenEvent] = []
        for row in rows:
            if row["job_id"] == exclude_job or (row["state"] in ACTIVE_STATES and self._owner_alive(row)):
                continue
            found.append(OpenEvent(job_id=str(row["job_id"]), event_id=int(row["event_id"]), at=str(row["at"]),
                                   data=self._column(row, "data_json", str(row["job_id"])) or {},
                                   job_state=str(row["state"])))
        return found

    def orphaned_jobs(self) -> list[str]:
        """This station's jobs in an active state whose owning process is gone (crash, kill -9, power
        loss, a reboot); other stations' jobs in a shared store are theirs to reconcile."""
        rows = self.db.execute(
            "SELECT id, pid, pid_started, station_id, boot_id FROM jobs WHERE station_id = ? AND state IN "
            f"({','.join('?' * len(ACTIVE_STATES))})", (self.station_id, *ACTIVE_STATES),
        ).fetchall()
        return [str(row["id"]) for row in rows if not self._owner_alive(row)]

    def adopt(self, job_id: str, event: str, data: dict[str, Any] | None = None) -> None:
        """Make this process the owner of an orphaned job (to resume it, e.g. a firmware sanitize)."""
        pid = os.getpid()
        with self.transaction() as tx:
            row = tx.execute("SELECT state, station_id FROM jobs WHERE id=?", (job_id,)).fetchone()
            if row is None or row["state"] not in ACTIVE_STATES:
                raise AgentError(f"job {job_id} is not active; it cannot be adopted")
            if row["station_id"] is not None and row["station_id"] != self.station_id:
                raise AgentError(f"job {job_id} belongs to station {row['station_id']}; it cannot be adopted here")
            tx.execute("UPDATE jobs SET pid=?, pid_started=?, station_id=?, boot_id=? WHERE id=?",
                       (pid, _process_started(pid), self.station_id, self._boot_id, job_id))
            self._event(tx, job_id, row["state"], event, data or {})
            self.record(tx, "job-adopted", job_id, {"state": row["state"], "event": event, "data": data or {},
                                                    "pid": pid})

    def reconcile(self, keep: Callable[[str], bool] | None = None) -> list[str]:
        """Mark orphaned jobs ``interrupted`` (except those ``keep`` says will be resumed); return their ids.

        Ownership is checked again inside the transaction that writes: a job adopted by a live process
        between the first look and the update is left alone.
        """
        interrupted: list[str] = []
        for job_id in self.orphaned_jobs():
            if keep is not None and keep(job_id):
                continue
            with self.transaction() as tx:
                row = tx.execute("SELECT state, pid, pid_started, station_id, boot_id FROM jobs WHERE id=?",
                                 (job_id,)).fetchone()
                if row is None or row["state"] not in ACTIVE_STATES:
                    continue  # finished concurrently
                if self._owner_alive(row):
                    continue  # adopted meanwhile by a live process
                tx.execute("UPDATE jobs SET state=?, reason=?, route=?, finished_at=? WHERE id=?",
                           ("interrupted", "the process running the job stopped before it finished", "hold",
                            self._now(), job_id))
                self._event(tx, job_id, "interrupted", "owner-gone", {"pid": row["pid"]})
                self.record(tx, "job-interrupted", job_id, {"from": row["state"], "event": "owner-gone",
                                                            "pid": row["pid"], "route": "hold"})
            interrupted.append(job_id)
        return interrupted

    def _column(self, row: sqlite3.Row, column: str, job_id: str, kind: type = dict) -> Any:
        """A JSON column of a stored row, decoded and of ``kind`` (an object, or a list of decisions);
        a damaged one is a one-line error naming the job and the column."""
        text = row[column]
        if not text:
            return None
        try:
            value = parse_json(text)
        except JsonInputError as exc:
            raise ConfigError(f"registry {self.path}: job {job_id}: {column} is damaged ({exc.message})") from None
        if value is not None and type(value) is not kind:
            raise ConfigError(f"registry {self.path}: job {job_id}: {column} is damaged (a JSON "
                              f"{type(value).__name__}, not a {kind.__name__})")
        return value

    def _decisions(self, row: sqlite3.Row, job_id: str) -> list[dict[str, Any]]:
        decisions = self._column(row, "decisions_json", job_id, list) or []
        if not all(type(item) is dict for item in decisions):
            raise ConfigError(f"registry {self.path}: job {job_id}: decisions_json is damaged (not a list of objects)")
        return list(decisions)

    def _row_to_job(self, row: sqlite3.Row) -> JobRow:
        job_id = str(row["id"])
        # the job's own verification is its latest non-secondary one; re-checks made later with
        # ``verify-media --job`` (marked ``secondary`` in their result) are listed beside it
        verification: dict[str, Any] | None = None
        secondary: list[dict[str, Any]] = []
        for verification_row in self.db.execute(
            "SELECT id, at, result_json FROM verifications WHERE job_id=? ORDER BY id DESC", (row["id"],)
        ).fetchall():
            result = self._column(verification_row, "result_json", job_id)
            if isinstance(result, dict) and result.get("secondary") is True:
                secondary.append({"verification_id": int(verification_row["id"]), "at": verification_row["at"],
                                  **result})
            elif verification is None:
                verification = result
        secondary.reverse()
        identity = self._column(row, "identity_json", job_id)
        try:
            drive = DriveIdentity.from_json(identity)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"registry {self.path}: job {job_id}: the drive's identity record is damaged "
                              f"({type(exc).__name__}: {exc})") from None
        return JobRow(
            id=row["id"],
            drive=drive,
            device_path=row["device_path"],
            profile=row["profile"],
            method=row["method"],
            level=row["level"],
            operator=row["operator"],
            authorised_by=row["authorised_by"],
            asset_tag=row["asset_tag"],
            host=self._column(row, "host_json", job_id),
            state=row["state"],
            reason=row["reason"],
            error_code=row["error_code"],
            created_at=row["created_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            bytes_written=row["bytes_written"],
            seconds=row["seconds"],
            throughput=row["throughput"],
            decisions=self._decisions(row, job_id),
            method_details=self._column(row, "method_json", job_id),
            route=row["route"],
            certificate_path=row["certificate_path"],
            verification=verification,
            secondary_verifications=secondary,
            operator_title=row["operator_title"],
            operator_uid=row["operator_uid"],
            operator_via=row["operator_via"],
        )

    _JOB_SELECT = "SELECT jobs.*, drives.identity_json FROM jobs JOIN drives ON drives.id = jobs.drive_id"

    def job(self, job_id: str) -> JobRow:
        """One job by id (a unique prefix is accepted)."""
        # job ids are 16 lower-case hex digits; a prefix is matched exactly, never as a LIKE pattern
        # (``%`` and ``_`` were wildcards: ``job %4a55`` found a job by its suffix)
        if not _JOB_ID_PREFIX.fullmatch(job_id):
            raise ConfigError(f"{job_id[:40]!r} is not a job id (hex digits, as `wipe-agent jobs` shows)")
        rows = self.db.execute(f"{self._JOB_SELECT} WHERE substr(jobs.id, 1, ?) = ?",
                               (len(job_id), job_id)).fetchall()
        if not rows:
            raise ConfigError(f"no job {job_id!r}")
        if len(rows) > 1:
            raise ConfigError(f"job id prefix {job_id!r} is ambiguous")
        return self._row_to_job(rows[0])

    def jobs(self, limit: int = 200, *, since: datetime | None = None, until: datetime | None = None,
             asset: str | None = None, serial: str | None = None, state: str | None = None,
             operator: str | None = None) -> list[JobRow]:
        """Most recent jobs first, optionally only those created in ``[since, until)`` and matching
        the asset tag, drive serial, state and operator exactly (each given filter must hold)."""
        where: list[str] = []
        values: list[Any] = []
        # created_at is UTC ISO 8601 with milliseconds, all in one format: comparing text orders by time
        for clause, value in (("jobs.created_at >= ?", since), ("jobs.created_at < ?", until)):
            if value is not None:
                where.append(clause)
                values.append(value.astimezone(UTC).isoformat(timespec="milliseconds"))
        for clause, text in (("jobs.asset_tag = ?", asset), ("drives.serial = ?", serial),
                             ("jobs.state = ?", state), ("jobs.operator = ?", operator)):
            if text is not None:
                where.append(clause)
                values.append(text)
        condition = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self.db.execute(
            f"{self._JOB_SELECT}{condition} ORDER BY jobs.created_at DESC, jobs.rowid DESC LIMIT ?", (*values, limit)
        ).fetchall()
        return [self._row_to_job(row) for row in rows]

    def last_job_of(self, model: str, serial: str) -> JobRow | None:
        """The most recent job of the drive with this model and serial (None for serial-less drives:
        every such drive of a model shares one row, so "its last job" would be another drive's)."""
        if not has_serial(serial):
            return None
        row = self.db.execute(
            f"{self._JOB_SELECT} WHERE drives.model=? AND drives.serial=? "
            "ORDER BY jobs.created_at DESC, jobs.rowid DESC LIMIT 1", (model, serial)).fetchone()
        return self._row_to_job(row) if row is not None else None

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's journal, oldest first."""
        rows = self.db.execute(
            "SELECT at, state, event, data_json FROM job_events WHERE job_id=? ORDER BY id", (job_id,)
        ).fetchall()
        return [{"at": r["at"], "state": r["state"], "event": r["event"], "data": self._column(r, "data_json", job_id)}
                for r in rows]
