"""Every bound loop device and what it really reads and writes, from the loop driver itself.

``/sys/block/loopN/loop/backing_file`` is a *path string*: it ends in " (deleted)" when the node or
file it named was unlinked, and it names a file in the mount namespace of whoever ran ``losetup``
(a container's private ``/dev``), so resolving it here may find nothing or, worse, something else.
The guard therefore asks the driver: ``LOOP_GET_STATUS64`` answers with ``lo_device`` and
``lo_inode`` (the filesystem and inode of the backing file, whatever its name) and ``lo_rdevice``
(the ``st_rdev`` of that inode — the device number of the backing *block device* when the loop is
backed by a device node, 0 for a regular file; checked on kernels 6.1 and 6.18: a loop over
``/dev/loop0`` reports ``lo_rdevice`` 7:0 even after the node it was given was deleted).

The status is read through ``/dev/loopN`` when that node really is the loop (same ``st_rdev``),
else through a node this module ``mknod``s in a private temporary directory from the sysfs ``dev``
number and unlinks at once, so a loop whose node was deleted, or was only ever created in another
mount namespace, is seen all the same. The open is ``O_RDONLY | O_NONBLOCK``: it writes nothing and
needs no medium.

Not seen: loop devices of another *sysfs* (another network namespace's /sys has the same block
devices, so in practice every loop of this kernel is listed).
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import stat
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agent.discovery import sysfs

LOOP_GET_STATUS64 = 0x4C05
# struct loop_info64 (linux/loop.h): lo_device, lo_inode, lo_rdevice, lo_offset, lo_sizelimit (u64),
# lo_number, lo_encrypt_type, lo_encrypt_key_size, lo_flags (u32), lo_file_name[64], … : 232 bytes
_LOOP_INFO64 = struct.Struct("=QQQQQIIII64s")
_LOOP_INFO64_SIZE = 232
SYS_BLOCK = Path("/sys/block")
# where a private node may be made: /tmp first; /dev (devtmpfs) when /tmp is mounted nodev
NODE_DIRECTORIES = (None, "/dev")


@dataclass(frozen=True)
class LoopStatus:
    """One bound loop device, as its driver reports it."""

    name: str  # loop3
    device_number: int  # dev_t of the loop device itself
    backing_device: int  # lo_device: dev_t of the filesystem holding the backing inode
    backing_inode: int  # lo_inode
    backing_rdevice: int  # lo_rdevice: dev_t of the backing block device, 0 for a regular file
    offset: int
    size_limit: int
    file_name: str  # lo_file_name: the first 63 bytes of the path given to losetup (a label only)

    @property
    def backing(self) -> tuple[int, int]:
        """(st_dev, st_ino) of the backing inode: the identity two loops over one file share."""
        return self.backing_device, self.backing_inode

    @property
    def over_block_device(self) -> bool:
        """True when the loop reads and writes a block device rather than a regular file."""
        return self.backing_rdevice != 0

    def describe(self) -> str:
        """``loop3 (backing file /dev/shm/a.img, inode 0:27/1234)``; the name is a label only, escaped."""
        given = printable(self.file_name) or "?"
        if self.over_block_device:
            return (f"{self.name} (over block device {os.major(self.backing_rdevice)}:"
                    f"{os.minor(self.backing_rdevice)}, given as {given})")
        return (f"{self.name} (backing file {given}, inode {os.major(self.backing_device)}:"
                f"{os.minor(self.backing_device)}/{self.backing_inode})")


def printable(text: str) -> str:
    """Control characters (newline, ESC…) of a name someone else chose, escaped for a terminal or a log line."""
    return "".join(character if character.isprintable() else f"\\x{ord(character):02x}" for character in text)


def _sysfs_number(name: str) -> int | None:
    return sysfs.device_number_in(SYS_BLOCK / name / "dev")


def status_of_descriptor(fd: int, name: str, device_number: int) -> LoopStatus | None:
    """``LOOP_GET_STATUS64`` on an open loop descriptor; None when the loop is not bound (ENXIO)."""
    buffer = bytearray(_LOOP_INFO64_SIZE)
    try:
        fcntl.ioctl(fd, LOOP_GET_STATUS64, buffer)
    except OSError as exc:
        if exc.errno in (errno.ENXIO, errno.ENOTTY, errno.EINVAL):
            return None
        raise
    device, inode, rdevice, offset, size_limit, _number, _type, _key, _flags, file_name = (
        _LOOP_INFO64.unpack_from(buffer))
    return LoopStatus(name, device_number, device, inode, rdevice, offset, size_limit,
                      file_name.split(b"\0", 1)[0].decode(errors="replace"))


def open_node(name: str, device_number: int) -> int | None:
    """A read-only descriptor of the block device ``device_number``: its /dev node if genuine, else a private node.

    Used for loops and for partitions alike: a name in /dev proves nothing, the device number decides.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(f"/dev/{name}", flags)
    except OSError:
        fd = -1
    if fd >= 0:
        if os.fstat(fd).st_rdev == device_number:
            return fd
        os.close(fd)  # /dev/NAME is another device (a stale or planted node): never trust the name
    for parent in NODE_DIRECTORIES:
        try:
            directory = tempfile.mkdtemp(prefix="wipe-agent-loop-", dir=parent)
        except OSError:
            continue
        try:
            node = os.path.join(directory, "node")
            os.mknod(node, stat.S_IFBLK | 0o600, device_number)
            try:
                return os.open(node, flags)
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.EPERM):
                    continue  # a nodev mount: try the next directory
                return None
        except OSError:
            continue
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    return None


def loop_status(name: str) -> LoopStatus | None:
    """The driver's status of the loop device ``name``; None when unbound or not a loop."""
    number = _sysfs_number(name)
    if number is None:
        return None
    fd = open_node(name, number)
    if fd is None:
        return None
    try:
        return status_of_descriptor(fd, name, number)
    except OSError:
        return None
    finally:
        os.close(fd)


def bound_loops() -> list[LoopStatus]:
    """Every bound loop device of this kernel (sysfs lists them whatever mount namespace made them)."""
    found: list[LoopStatus] = []
    try:
        names = sorted(entry.name for entry in SYS_BLOCK.iterdir() if entry.name.startswith("loop"))
    except OSError:
        return found
    for name in names:
        if not (SYS_BLOCK / name / "loop").is_dir():
            continue  # unbound: the driver removes the "loop" directory on detach
        status = loop_status(name)
        if status is not None:
            found.append(status)
    return found


def backing_file_size(status: LoopStatus) -> int | None:
    """The size of a file-backed loop's backing file, through a path that really is that inode; None if none is."""
    try:
        raw = (SYS_BLOCK / status.name / "loop" / "backing_file").read_bytes().removesuffix(b"\n")
    except OSError:
        return None
    path = os.fsdecode(raw)
    for candidate in dict.fromkeys([path, path.removesuffix(" (deleted)")]):
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == status.backing:
            return st.st_size
    return None
