"""Which processes hold a block device open: a scan of every task's descriptor table (and, on request, the maps).

Every thread's table is read (``/proc/PID/task/TID/fd``), not only the main thread's: a thread that
called ``unshare(CLONE_FILES)`` has its own, and a process whose main thread exited shows an empty
``/proc/PID/fd``. ``kcmp(KCMP_FILES)`` tells which threads share one table, so a shared table is
read once; a single-threaded process (``/proc/PID/task`` has 3 links) is read as ``/proc/PID/fd``.
Memory maps are shared by all threads of a process; the first non-empty one is read (the main
thread's is empty once it exited). Besides block nodes the scan can watch character aliases of the
disk and regular files by (st_dev, st_ino) — a loop's backing image (see :class:`Watched`).

``O_EXCL`` only sees mounts, holders and other ``O_EXCL`` openers. A ``dd if=/dev/sdb``, a forensic
imager, ``cat``, a virtual machine using the disk, or another wipe tool that did not ask for
exclusivity opens the node plainly, and the kernel would let us overwrite under it. The scan finds
them by device number: every descriptor is ``stat``-ed and its ``st_rdev`` compared with the disk's
and its partitions', so a ``/dev/disk/by-id`` link, a node ``mknod``-ed in a chroot or a deleted
node count the same as ``/dev/sdb``. Path strings are never compared.

Robustness: processes come and go during the scan, and some cannot be inspected. A process that
vanishes is skipped; one whose descriptors cannot be read (permission) is counted in
``uninspected``, never raised. The ``stat`` asks for cached attributes only (``statx`` with
``AT_STATX_DONT_SYNC``): an unrelated process holding a file on a dead NFS server or a stuck FUSE
mount must not hang the daemon's main thread.

What the scan cannot see: processes it may not inspect. Reading another process's descriptors needs
ptrace read access, and the kernel grants that to root only if root's capabilities cover the
target's — so a daemon whose bounding set lacks ``CAP_SYS_PTRACE`` cannot inspect *any* full-root
process (a ``dd`` from an admin shell), and without ``CAP_DAC_READ_SEARCH`` not another user's
``/proc/PID/fd`` (mode 0500). Those are counted in ``uninspected``. Under systemd's
``ProtectProc=invisible`` another user's processes are not even listed unless ``CAP_SYS_PTRACE`` is
held. Processes in other PID namespaces than ours are not listed either. Kernel users (a loop
device over the disk, md, dm, swap, mounts) hold no descriptor; the guard checks those through
sysfs and ``O_EXCL``.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
import struct
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

# udev worker processes: "(udev-worker)" since systemd 253, "systemd-udevd" before, "udevd" (eudev)
UDEV_WORKERS = frozenset({"(udev-worker)", "systemd-udevd", "udevd"})
# programs that open a fresh disk briefly to read its signatures, even when not started by udev
PROBE_PROGRAMS = frozenset({"blkid"})

_AT_STATX_DONT_SYNC = 0x4000
_STATX_TYPE = 0x0001
_STATX_MODE = 0x0002
_STATX_INO = 0x0100
_STATX_SIZE = 256  # struct statx is 256 bytes; stx_mode at 28, stx_rdev_major/minor at 128/132
_MODE = struct.Struct("=H")
_RDEV = struct.Struct("=II")
_INO = struct.Struct("=Q")
_DENIED = {errno.EACCES, errno.EPERM}


@dataclass(frozen=True)
class Opener:
    """A process holding one of the watched device nodes."""

    pid: int
    command: str  # /proc/PID/comm, as ps shows it
    node: str  # the label the caller gave this device number (a disk or partition name)
    probe: bool  # a udev worker, a program a udev worker started, or blkid: expected to let go soon
    how: str = "descriptor"  # "descriptor", or "mapping" for an mmap of the node without a descriptor
    peek: bool = False  # held only O_RDONLY|O_NONBLOCK (a guard asking a loop's status): a probe too

    def describe(self) -> str:
        """``pid 1234 (dd)``."""
        return f"pid {self.pid} ({self.command})"


@dataclass(frozen=True)
class OpenerScan:
    """What one pass over /proc found."""

    openers: tuple[Opener, ...]
    uninspected: tuple[int, ...] = ()  # pids whose descriptors or mappings could not be read

    @property
    def only_probes(self) -> bool:
        """True when something holds the device and every holder is a transient prober."""
        return bool(self.openers) and all(opener.probe for opener in self.openers)


def _load_statx() -> Any:
    try:
        function = ctypes.CDLL(None, use_errno=True).statx
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]
    function.restype = ctypes.c_int
    return function


_statx = _load_statx()


def _node_of(directory_fd: int, name: str, buffer: ctypes.Array[ctypes.c_char]) -> tuple[int, int, int, int]:
    """(st_mode, st_rdev, st_dev, st_ino) of what the link ``name`` in ``directory_fd`` points at; raises OSError.

    ``st_rdev`` is 0 unless a block or character device. ``buffer`` is a ``struct statx`` the caller
    allocates once per scan (this runs for every descriptor of every process: allocating per call
    doubled the scan's cost).
    """
    if _statx is None:
        st = os.stat(name, dir_fd=directory_fd)
        return st.st_mode, st.st_rdev, st.st_dev, st.st_ino
    if _statx(directory_fd, name.encode(), _AT_STATX_DONT_SYNC, _STATX_TYPE | _STATX_MODE | _STATX_INO, buffer) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number), name)
    mode: int = _MODE.unpack_from(buffer, 28)[0]
    if stat.S_ISREG(mode):
        inode: int = _INO.unpack_from(buffer, 32)[0]
        device_major, device_minor = _RDEV.unpack_from(buffer, 136)
        return mode, 0, os.makedev(device_major, device_minor), inode
    if not (stat.S_ISBLK(mode) or stat.S_ISCHR(mode)):
        return mode, 0, 0, 0
    major, minor = _RDEV.unpack_from(buffer, 128)
    return mode, os.makedev(major, minor), 0, 0


@dataclass(frozen=True)
class Watched:
    """What a scan looks for, each with the label reported: block nodes, character aliases, files."""

    blocks: Mapping[int, str]  # st_rdev of the disk and its partitions
    characters: Mapping[int, str] = field(default_factory=dict)  # sg, bsg, NVMe generic and controller nodes
    files: Mapping[tuple[int, int], str] = field(default_factory=dict)  # (st_dev, st_ino): a loop's backing file

    def label(self, mode: int, rdev: int, device: int, inode: int) -> str | None:
        """The label of a watched node or file, or None."""
        if stat.S_ISBLK(mode):
            return self.blocks.get(rdev)
        if stat.S_ISCHR(mode):
            return self.characters.get(rdev)
        if stat.S_ISREG(mode):
            return self.files.get((device, inode))
        return None

    def __bool__(self) -> bool:
        return bool(self.blocks or self.characters or self.files)


def _statx_buffer() -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(_STATX_SIZE)


def _read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError:
        return None


def command_of(pid: int, proc: str = "/proc") -> str:
    """The process's command name (``comm``), or ``?`` when it is gone."""
    text = _read_text(f"{proc}/{pid}/comm")
    return text.rstrip("\n") if text else "?"


def parent_of(pid: int, proc: str = "/proc") -> int | None:
    """The parent pid from /proc/PID/stat (the command name in it may hold spaces and parentheses)."""
    text = _read_text(f"{proc}/{pid}/stat")
    if not text or ")" not in text:
        return None
    fields = text.rsplit(")", 1)[1].split()
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return None


def is_probe(pid: int, command: str, proc: str = "/proc") -> bool:
    """A udev worker, a program one started (``IMPORT{program}``: ata_id, scsi_id…), or blkid."""
    if command in UDEV_WORKERS or command in PROBE_PROGRAMS:
        return True
    parent = parent_of(pid, proc)
    return parent is not None and parent > 1 and command_of(parent, proc) in UDEV_WORKERS


def _pids(proc: str) -> list[int]:
    try:
        return sorted(int(entry.name) for entry in os.scandir(proc) if entry.name.isdigit())
    except OSError:
        return []


# kcmp(2) tells whether two tasks share one descriptor table (KCMP_FILES); numbers per architecture
_KCMP_SYSCALL = {"x86_64": 312, "aarch64": 272, "riscv64": 272, "i686": 349, "i386": 349}.get(platform.machine())
_KCMP_FILES = 2


def _load_syscall() -> Any:
    try:
        function = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_long
    return function


_syscall = _load_syscall() if _KCMP_SYSCALL is not None else None


def _same_table(first: int, second: int) -> bool:
    """True only when the kernel says the two tasks share one descriptor table; False when unsure."""
    if _syscall is None or _KCMP_SYSCALL is None:
        return False
    result = _syscall(ctypes.c_long(_KCMP_SYSCALL), ctypes.c_int(first), ctypes.c_int(second),
                      ctypes.c_int(_KCMP_FILES), ctypes.c_ulong(0), ctypes.c_ulong(0))
    return int(result) == 0


def _tasks(proc: str, pid: int) -> list[str]:
    """``/proc/PID/task/TID`` of every thread of ``pid`` (``/proc/PID`` itself if the list is unreadable)."""
    try:
        tids = sorted(int(entry.name) for entry in os.scandir(f"{proc}/{pid}/task") if entry.name.isdigit())
    except OSError:
        tids = []
    return [f"{proc}/{pid}/task/{tid}" for tid in tids] or [f"{proc}/{pid}"]


def _held_by_descriptors(proc: str, pid: int, targets: Watched,
                         buffer: ctypes.Array[ctypes.c_char]) -> tuple[dict[str, bool], bool]:
    """Labels of the watched nodes any thread of ``pid`` holds through descriptors (each: only peeks?), and
    whether all were readable.

    Every task's table is read, not only ``/proc/PID/fd`` (the main thread's): a thread that called
    ``unshare(CLONE_FILES)`` has a table of its own, and once the main thread has exited
    (``pthread_exit``) ``/proc/PID/fd`` is empty while the other threads still hold their files.
    """
    try:
        # procfs gives the task directory 2 + (threads, an exited main thread still counted) links:
        # a single-threaded process, most of them, is read as before, for one stat
        single = os.stat(f"{proc}/{pid}/task").st_nlink == 3
    except OSError:
        single = False
    if single:
        return _held_by_table(f"{proc}/{pid}/fd", targets, buffer)
    held: dict[str, bool] = {}
    readable = True
    scanned: list[int] = []  # one task per distinct table read so far
    for task in _tasks(proc, pid):
        tid = int(task.rsplit("/", 1)[1])
        # threads share their process's table unless they unshared it: kcmp says which, for one
        # syscall instead of a stat of every descriptor again (a 4-thread process cost 4 scans)
        if proc == "/proc" and any(_same_table(tid, other) for other in scanned):
            continue
        scanned.append(tid)
        task_held, task_readable = _held_by_table(f"{task}/fd", targets, buffer)
        for label, peek in task_held.items():
            held[label] = held.get(label, True) and peek
        readable = readable and task_readable
    return held, readable


def _is_peek(fdinfo: str) -> bool:
    """True for a descriptor opened ``O_RDONLY | O_NONBLOCK``: how guards (ours, ``losetup``, udev) look at a node.

    ``agent.discovery.loops`` opens every loop device so for a few microseconds to ask its status;
    another job's guard must not take that for a holder. Such a holder is treated like a udev probe:
    waited for (bounded), then refused if it stays. The flags come from ``fdinfo`` (octal).
    """
    text = _read_text(fdinfo)
    if not text:
        return False
    for line in text.splitlines():
        if line.startswith("flags:"):
            try:
                flags = int(line.split()[1], 8)
            except (IndexError, ValueError):
                return False
            return flags & os.O_ACCMODE == os.O_RDONLY and bool(flags & os.O_NONBLOCK)
    return False


def _held_by_table(fd_directory: str, targets: Watched,
                   buffer: ctypes.Array[ctypes.c_char]) -> tuple[dict[str, bool], bool]:
    """Labels of the watched nodes in one descriptor table (each: whether every descriptor is a peek),
    and whether it was readable."""
    held: dict[str, bool] = {}
    try:
        directory = os.open(fd_directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        return held, exc.errno not in _DENIED
    denied = False
    try:
        try:
            names = os.listdir(directory)
        except OSError as exc:
            return held, exc.errno not in _DENIED
        for name in names:
            try:
                label = targets.label(*_node_of(directory, name, buffer))
            except OSError as exc:
                denied = denied or exc.errno in _DENIED
                continue  # closed meanwhile, or the process is gone
            if label is not None:
                peek = _is_peek(f"{fd_directory}info/{name}")
                held[label] = held.get(label, True) and peek
    finally:
        os.close(directory)
    return held, not denied


def _held_by_mappings(proc: str, pid: int, targets: Watched, known: dict[tuple[bytes, bytes], str | None],
                      buffer: ctypes.Array[ctypes.c_char]) -> tuple[set[str], bool]:
    """Labels of the watched nodes and files ``pid`` has mmapped; ``known`` caches (dev, inode) → label.

    A maps line names the mapped *inode* (its filesystem's major:minor and inode number): for a
    device node that is the node's own inode on devtmpfs (``00:06 93`` for /dev/loop0, checked on
    6.18), not the device's number, so a device node is stat-ed through ``map_files``; a regular
    file (a loop's backing image) is matched on the line itself.
    """
    held: set[str] = set()
    data, readable, base = _maps_of(proc, pid)
    for line in data.splitlines():
        fields = line.split(None, 5)
        if len(fields) < 5 or fields[4] == b"0":
            continue  # anonymous memory, heap, stack
        key = (fields[3], fields[4])  # the node's filesystem and inode: the same file in every process
        if key not in known:
            file_label = _file_label(targets, fields[3], fields[4])
            if file_label is not None:
                known[key] = file_label
            else:
                # map_files entries are the mapped files themselves (stat needs CAP_SYS_ADMIN, which we have)
                try:
                    known[key] = targets.label(*_map_file_node(base, fields[0].decode(), buffer))
                except OSError as exc:
                    if exc.errno in _DENIED:
                        readable = False
                        known[key] = None
                    continue
        found = known[key]
        if found is not None:
            held.add(found)
    return held, readable


def _file_label(targets: Watched, device_field: bytes, inode_field: bytes) -> str | None:
    """The label of a watched regular file named by a maps line's ``maj:min`` (hex) and inode fields."""
    if not targets.files:
        return None
    try:
        major, minor = (int(part, 16) for part in device_field.split(b":"))
        return targets.files.get((os.makedev(major, minor), int(inode_field)))
    except ValueError:
        return None


def _maps_of(proc: str, pid: int) -> tuple[bytes, bool, str]:
    """The process's memory map, whether it was readable, and the /proc directory it was read from.

    All threads of a process share one address space (``CLONE_THREAD`` implies ``CLONE_VM``), so one
    task's map is the process's. But the main thread's may be empty: after it exited (``pthread_exit``)
    its ``/proc/PID/maps`` and ``map_files`` show nothing while the other threads still run in the
    mapping; then the first live thread's ``/proc/TID`` is read.
    """
    readable = True
    # /proc/TID (not listed, but there for every thread) has map_files; /proc/PID/task/TID has none
    threads = [f"{proc}/{task.rsplit('/', 1)[1]}" for task in _tasks(proc, pid) if "/task/" in task]
    for path in [f"{proc}/{pid}", *threads]:
        try:
            with open(f"{path}/maps", "rb") as handle:
                data = handle.read()
        except OSError as exc:
            readable = readable and exc.errno not in _DENIED
            continue
        if data:
            return data, readable, path
    return b"", readable, f"{proc}/{pid}"


def _map_file_node(base: str, address_range: str,
                   buffer: ctypes.Array[ctypes.c_char]) -> tuple[int, int, int, int]:
    directory = os.open(f"{base}/map_files", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _node_of(directory, address_range, buffer)
    finally:
        os.close(directory)


def scan_openers(targets: Mapping[int, str] | Watched, *, ignore_pids: Collection[int] = (), mappings: bool = False,
                 proc: str = "/proc") -> OpenerScan:
    """Every process (but ``ignore_pids``) holding a watched node or file.

    ``targets`` maps block device numbers to the labels reported (``sdb``, ``sdb1``), or is a
    :class:`Watched` that also names character aliases of the disk and a loop's backing file. With
    ``mappings`` the scan also reads each process's memory map (about twice the cost) for nodes
    mmapped after their descriptor was closed.
    """
    watched = targets if isinstance(targets, Watched) else Watched(blocks=targets)
    if not watched:
        return OpenerScan(())
    found: list[Opener] = []
    uninspected: list[int] = []
    known: dict[tuple[bytes, bytes], str | None] = {}
    buffer = _statx_buffer()
    for pid in _pids(proc):
        if pid in ignore_pids:
            continue
        held, readable = _held_by_descriptors(proc, pid, watched, buffer)
        how = {label: "descriptor" for label in held}
        if mappings:
            mapped, mapped_readable = _held_by_mappings(proc, pid, watched, known, buffer)
            readable = readable and mapped_readable
            how.update({label: "mapping" for label in mapped - held.keys()})
        if not readable:
            uninspected.append(pid)
        if how:
            command = command_of(pid, proc)
            probe = is_probe(pid, command, proc)
            found.extend(Opener(pid, command, label, probe or (kind == "descriptor" and held[label]), kind,
                                peek=not probe and kind == "descriptor" and held[label])
                         for label, kind in sorted(how.items()))
    return OpenerScan(tuple(found), tuple(uninspected))
