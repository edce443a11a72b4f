"""Who opens a loop target's backing file during the job: a fanotify mark on its inode.

A process can write a loop's image file directly, not through the loop device: the loop's write
counter (``/sys/block/loopN/stat``) never moves, and a ``dd`` that opens, writes and closes between
two looks of the holder scan is never seen holding it. The kernel itself can tell: a fanotify mark
on the backing *inode* reports every open of it (``FAN_OPEN``, ``FAN_OPEN_EXEC``), whatever the path
or mount namespace used, with the opener's pid. The loop driver does not open its file during a
job, so any open by another process while the job runs is reported ("pid 1234 (dd) opened the
backing file of loop3 during the job"); this process's own opens (an emulated drive's transport)
are not.

The mark needs a path to the inode here: the sysfs ``backing_file`` is tried (and " (deleted)"
removed) and accepted only when it is that very inode (st_dev, st_ino). A backing file that has no
such path in this mount namespace (deleted, or a container's) cannot be watched: :meth:`start`
returns None and the job goes on with the other checks (a documented limit). fanotify needs
``CAP_SYS_ADMIN``, which the station has.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from typing import Any

from agent.discovery import sysfs
from agent.discovery.loops import printable

_FAN_CLOEXEC = 0x1
_FAN_NONBLOCK = 0x2
_FAN_MARK_ADD = 0x1
_FAN_OPEN = 0x20
_FAN_OPEN_EXEC = 0x1000
_FAN_Q_OVERFLOW = 0x4000
_AT_FDCWD = -100
# struct fanotify_event_metadata: event_len u32, vers u8, reserved u8, metadata_len u16, mask u64, fd s32, pid s32
_EVENT = struct.Struct("=IBBHQii")


def _load() -> tuple[Any, Any] | None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        init, mark = libc.fanotify_init, libc.fanotify_mark
    except (OSError, AttributeError):
        return None
    init.argtypes = [ctypes.c_uint, ctypes.c_uint]
    init.restype = ctypes.c_int
    mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64, ctypes.c_int, ctypes.c_char_p]
    mark.restype = ctypes.c_int
    return init, mark


_functions = _load()


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return printable(handle.read().strip()) or "?"
    except OSError:
        return "since exited"  # a dd that opened, wrote and closed is long gone by the next look


class BackingWatch:
    """A fanotify mark on one loop's backing inode; :meth:`openers` says who opened it since the start."""

    def __init__(self, name: str, descriptor: int) -> None:
        self.name = name
        self._fd = descriptor
        self._seen: dict[int, str] = {}
        self._overflow = False

    @classmethod
    def start(cls, name: str, backing: tuple[int, int]) -> BackingWatch | None:
        """Watch the backing file of loop ``name`` (its (st_dev, st_ino)); None when it cannot be watched."""
        if _functions is None:
            return None
        init, mark = _functions
        try:
            # raw, not stripped: a name may end in blanks (only the newline sysfs adds is removed)
            raw = (sysfs.SYS_BLOCK / name / "loop" / "backing_file").read_bytes().removesuffix(b"\n")
        except OSError:
            return None
        path = os.fsdecode(raw)
        if not path:
            return None
        candidates = [path, path.removesuffix(" (deleted)")]
        for candidate in dict.fromkeys(candidates):
            try:
                target = os.open(candidate, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                st = os.fstat(target)
                if (st.st_dev, st.st_ino) != backing:
                    continue  # a name that now means another file: never watch the wrong inode
                descriptor = init(_FAN_CLOEXEC | _FAN_NONBLOCK, os.O_RDONLY | os.O_CLOEXEC)
                if descriptor < 0:
                    return None
                # the mark is on the inode of the descriptor just checked, not on the name
                if mark(descriptor, _FAN_MARK_ADD, _FAN_OPEN | _FAN_OPEN_EXEC, target, None) != 0:
                    os.close(descriptor)
                    return None
                return cls(name, descriptor)
            finally:
                os.close(target)
        return None

    def _drain(self) -> None:
        own = os.getpid()
        while True:
            try:
                data = os.read(self._fd, 4096)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return
                raise
            if not data:
                return
            offset = 0
            while offset + _EVENT.size <= len(data):
                length, _version, _reserved, _metadata, mask, event_fd, pid = _EVENT.unpack_from(data, offset)
                if event_fd >= 0:
                    os.close(event_fd)
                if mask & _FAN_Q_OVERFLOW:
                    self._overflow = True
                elif pid != own and pid not in self._seen:
                    self._seen[pid] = _command(pid)
                offset += max(length, _EVENT.size)

    def openers(self, when: str) -> list[str]:
        """One reason per other process that opened the backing file since :meth:`start`."""
        self._drain()
        reasons = [f"pid {pid} ({command}) opened the backing file of {self.name} {when}"
                   for pid, command in sorted(self._seen.items())]
        if self._overflow:
            reasons.append(f"too many opens of the backing file of {self.name} to list {when}")
        return reasons

    def close(self) -> None:
        """Remove the mark."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
