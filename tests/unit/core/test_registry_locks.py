"""A second Registry opened in a process that already holds the registry open keeps that process's
SQLite locks (the root cause of the daemon's "disk I/O error" when an API thread opened one, M7)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.store.registry import Registry

# SQLite's unix VFS: a WAL connection holds a shared read lock on the database file's "shared" byte
# range (PENDING_BYTE + 2, 510 bytes) for as long as it is open; the last closer checks it to know it is last.
PROBE = """
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
request = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0x40000002, 510, 0)
answer = fcntl.fcntl(fd, fcntl.F_GETLK, request)
print("held" if struct.unpack("hhqqi", answer)[0] != fcntl.F_UNLCK else "free")
"""


def _shared_lock(path: Path) -> str:
    return subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_a_second_registry_in_the_same_process_keeps_the_first_one_s_locks(tmp_path: Path) -> None:
    first = Registry(tmp_path).open()
    first.db.execute("SELECT count(*) FROM jobs").fetchone()
    assert _shared_lock(first.path) == "held"
    second = Registry(tmp_path).open()  # what an API thread of the daemon does
    second.close()
    # the raw header read (open + close of the file outside SQLite) used to drop every POSIX lock
    # this process held on it: another process then took itself for the registry's only user
    assert _shared_lock(first.path) == "held"
    first.close()
    assert _shared_lock(first.path) == "free"


def test_the_first_open_in_a_process_still_checks_the_file(tmp_path: Path) -> None:
    Registry(tmp_path).open().close()
    path = tmp_path / "registry.sqlite3"
    data = bytearray(path.read_bytes())
    data[:16] = b"not a database!!"
    path.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        if os.path.exists(f"{path}{suffix}"):
            os.unlink(f"{path}{suffix}")
    with pytest.raises(ConfigError, match="is not a wipe-agent registry or is corrupt"):
        Registry(tmp_path).open()
