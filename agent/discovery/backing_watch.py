"""Who opens a loop target's backing file during the job: a fanotify mark on its inode.

A process can write a loop's image file directly, not through the loop device: the loop's write
counter (``/sys/block/loopN/stat``) never moves, and a ``dd`` that opens, writes and closes between
two looks of the holder scan is never seen holding it. The kernel itself can tell: a fanotify mark
on the backing *inode* reports every open of it (``FAN_OPEN``, ``FAN_OPEN_EXEC``), whatever the path
or mount namespace used, with the opener's pid. The loop driver does not open its file during a
job, so any open by another process while the job runs is reported ("pid 1234 (dd) opened the
backing file of loop3 during the job"); this process's own opens (an emulated drive's transport)
are not.

A descriptor received over a Unix socket (parked "in flight" before the job, so no process shows
it) writes without any open(), by ``pwrite`` or through a ``MAP_SHARED`` mapping. The watch
therefore also keeps a path-less (``O_PATH``) descriptor of the inode and, once the job's last write
is flushed (:meth:`settle`), records its mtime, ctime, size and allocated blocks; any change by the
end of verification is a modification nobody may make (:meth:`modified`): verification only reads,
and the kernel updates mtime and ctime for every write, a mapping's first store to a page included.
Before the last write the inode changes all the time (the job writes it), so a write there by
another process is seen as it happens: the mark also has ``FAN_MODIFY`` (``write``/``pwrite``, not
mapping stores), and every process other than this one and the kernel's own threads (a buffered
loop writes its file from kernel workers; a direct-I/O loop raises no event at all) is named
("pid 1234 (python3) wrote the backing file of loop3"). The runner reads the queue at every
progress report (:meth:`poll`), so a writer is told from a kernel thread while it still exists;
one gone by then is named "since exited" and counts. Residual limits: stores through a mapping
during the overwrite pass (no event; its times are settled after them), a second loop attached
with ``LOOP_CONFIGURE`` on a received descriptor and detached before the last write (its writes
come from kernel workers too), and, on a kernel with coarse timestamps, a write in the same clock
tick as the job's last one (mtime unchanged).

The mark needs a path to the inode here: the sysfs ``backing_file`` is tried (and " (deleted)"
removed) and accepted only when it is that very inode (st_dev, st_ino). A backing file that has no
such path in this mount namespace (deleted, or a container's or another service's private /tmp),
or a kernel or seccomp filter that refuses fanotify, cannot be watched: :meth:`start` raises
:class:`WatchUnavailable` saying why, and the runner refuses the job (a file-backed loop is never
wiped blind). fanotify needs ``CAP_SYS_ADMIN`` and, under ``systemd/wipe-agent.service``, the
``fanotify_init``/``fanotify_mark`` system calls in its ``SystemCallFilter`` (they are in
``@privileged``, not ``@system-service``).
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
_FAN_MODIFY = 0x2
_FAN_OPEN = 0x20
_FAN_OPEN_EXEC = 0x1000
_FAN_Q_OVERFLOW = 0x4000
_PF_KTHREAD = 0x00200000  # include/linux/sched.h
_AT_FDCWD = -100
# struct fanotify_event_metadata: event_len u32, vers u8, reserved u8, metadata_len u16, mask u64, fd s32, pid s32
_EVENT = struct.Struct("=IBBHQii")


class WatchUnavailable(Exception):
    """The backing file of a loop cannot be watched; the message says why (one line, for the job's reason)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_blocks


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


def _kernel_thread(pid: int) -> bool:
    """True for a kernel thread (PF_KTHREAD in /proc/PID/stat); False for a process, or one already gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return bool(int(fields[6]) & _PF_KTHREAD)  # after "pid (comm)": state ppid pgrp session tty tpgid flags
    except (OSError, IndexError, ValueError):
        return False


class BackingWatch:
    """A fanotify mark on one loop's backing inode; :meth:`openers` says who opened it since the start."""

    def __init__(self, name: str, descriptor: int, inode: int) -> None:
        self.name = name
        self._fd = descriptor
        self._inode = inode  # O_PATH: stat only, reads and writes nothing, is nobody's opener
        self._seen: dict[int, str] = {}
        self._writers: dict[int, str] = {}
        self._overflow = False
        self._settled: tuple[int, int, int, int] | None = None

    @classmethod
    def start(cls, name: str, backing: tuple[int, int]) -> BackingWatch:
        """Watch the backing file of loop ``name`` (its (st_dev, st_ino)); WatchUnavailable says why it cannot."""
        if _functions is None:
            raise WatchUnavailable("this C library has no fanotify")
        init, mark = _functions
        try:
            # raw, not stripped: a name may end in blanks (only the newline sysfs adds is removed)
            raw = (sysfs.SYS_BLOCK / name / "loop" / "backing_file").read_bytes().removesuffix(b"\n")
        except OSError as exc:
            raise WatchUnavailable(f"its backing file name cannot be read ({exc.strerror})") from exc
        path = os.fsdecode(raw)
        if not path:
            raise WatchUnavailable("the loop driver names no backing file")
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
                    error = ctypes.get_errno()
                    raise WatchUnavailable(f"fanotify_init failed: {os.strerror(error)}"
                                           + (" (refused by a system call filter or missing CAP_SYS_ADMIN)"
                                              if error == errno.EPERM else ""))
                # the mark is on the inode of the descriptor just checked, not on the name
                if mark(descriptor, _FAN_MARK_ADD, _FAN_OPEN | _FAN_OPEN_EXEC | _FAN_MODIFY, target, None) != 0:
                    error = ctypes.get_errno()
                    os.close(descriptor)
                    raise WatchUnavailable(f"fanotify_mark failed: {os.strerror(error)}")
                inode = os.open(f"/proc/self/fd/{target}", os.O_PATH | os.O_CLOEXEC)
                if (os.fstat(inode).st_dev, os.fstat(inode).st_ino) != backing:  # cannot differ; never assume
                    os.close(inode)
                    os.close(descriptor)
                    continue
                return cls(name, descriptor, inode)
            finally:
                os.close(target)
        raise WatchUnavailable(f"no path in this mount namespace leads to it (the loop names "
                               f"{printable(path)!r}: deleted, or in another mount namespace)")

    def settle(self) -> None:
        """The job's last write is flushed: from now on the backing inode must not change."""
        self._settled = _stamp(os.fstat(self._inode))

    def modified(self, when: str) -> list[str]:
        """A reason when the backing inode changed since :meth:`settle` (nothing before it is compared)."""
        if self._settled is None:
            return []
        now = _stamp(os.fstat(self._inode))
        if now == self._settled:
            return []
        what = [label for label, old, new in zip(("mtime", "ctime", "size", "allocated blocks"), self._settled, now,
                                                 strict=True) if old != new]
        return [f"the backing file of {self.name} was modified after the last write ({', '.join(what)} changed) "
                f"{when}"]

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
                elif pid != own:
                    if mask & (_FAN_OPEN | _FAN_OPEN_EXEC) and pid not in self._seen:
                        self._seen[pid] = _command(pid)
                    # the loop driver's buffered writes come from kernel workers: not another writer
                    if mask & _FAN_MODIFY and pid not in self._writers and not _kernel_thread(pid):
                        self._writers[pid] = _command(pid)
                offset += max(length, _EVENT.size)

    def poll(self) -> None:
        """Read the events queued so far (called often during the job: a writer is classified while it lives)."""
        try:
            self._drain()
        except OSError:
            self._overflow = True  # events lost: say so at the next check rather than pretend there were none

    def openers(self, when: str) -> list[str]:
        """One reason per other process that opened or wrote the backing file since :meth:`start`."""
        self._drain()
        reasons = [f"pid {pid} ({command}) opened the backing file of {self.name} {when}"
                   for pid, command in sorted(self._seen.items())]
        reasons += [f"pid {pid} ({command}) wrote the backing file of {self.name} {when}"
                    for pid, command in sorted(self._writers.items())]
        if self._overflow:
            reasons.append(f"too many events on the backing file of {self.name} to list {when}")
        return reasons

    def close(self) -> None:
        """Remove the mark."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._inode >= 0:
            os.close(self._inode)
            self._inode = -1
