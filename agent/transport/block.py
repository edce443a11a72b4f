"""Aligned block I/O on a whole-disk device: the only place that opens block devices for data.

Writes and reads use ``O_DIRECT`` where the kernel allows it, with page-aligned buffers from
anonymous ``mmap`` (always page-aligned), so the page cache neither slows the engines down nor
hides what is really on the medium from verification.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from agent.errors import DriveBusy, DriveError, DriveNotFound, DriveRemoved, MediaError

# linux/fs.h: _IOR(0x12, 114, size_t) and _IO(0x12, 104)
BLKGETSIZE64 = 0x80081272
BLKSSZGET = 0x1268
BLKPBSZGET = 0x127B
BLKROGET = 0x125E
BLKFLSBUF = 0x1261
BLKGETDISKSEQ = 0x80081280  # _IOR(0x12, 128, __u64), Linux 5.15+

LOOP_MAJOR = 7
REMOVAL_GRACE_SECONDS = 10.0  # under TCG the node went 3-10 s after the EIO

# errnos that mean "the device went away" rather than "the medium failed"
_GONE = {errno.ENODEV, errno.ENXIO, errno.ENOENT}
# errnos the block layer uses for a medium that failed (BLK_STS_IOERR, _MEDIUM, _PROTECTION, _TARGET):
# only these route a drive to destruction; anything else (EINVAL, ETIMEDOUT, ENOMEM…) is not the medium
_MEDIUM = {errno.EIO, errno.ENODATA, errno.EILSEQ, errno.EREMOTEIO}


def aligned_buffer(size: int) -> mmap.mmap:
    """A zero-filled, page-aligned buffer of ``size`` bytes (O_DIRECT needs the alignment)."""
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


@dataclass(frozen=True)
class Geometry:
    """What the kernel says about a block device's size and sectors."""

    size_bytes: int
    logical_sector: int
    physical_sector: int
    read_only: bool


def _ioctl_int(fd: int, request: int, fmt: str) -> int:
    buffer = bytearray(struct.calcsize(fmt))
    fcntl.ioctl(fd, request, buffer)
    value: int = struct.unpack(fmt, buffer)[0]
    return value


def read_geometry(fd: int) -> Geometry:
    """Size by BLKGETSIZE64 and sector sizes by BLKSSZGET/BLKPBSZGET."""
    return Geometry(
        size_bytes=_ioctl_int(fd, BLKGETSIZE64, "Q"),
        logical_sector=_ioctl_int(fd, BLKSSZGET, "i"),
        physical_sector=_ioctl_int(fd, BLKPBSZGET, "I"),
        read_only=bool(_ioctl_int(fd, BLKROGET, "i")),
    )


def read_diskseq(fd: int) -> int | None:
    """The medium's sequence number (BLKGETDISKSEQ): new for every medium the kernel attaches; None if unsupported."""
    try:
        return _ioctl_int(fd, BLKGETDISKSEQ, "Q")
    except OSError:
        return None


class BlockDevice:
    """An open whole-disk block device.

    ``exclusive=True`` opens with ``O_EXCL``: the kernel then refuses the open while anything
    holds the device (a mount, swap, device-mapper, md, another O_EXCL opener), and refuses those
    to everyone else while we hold it. A job keeps this descriptor for its whole life.
    """

    def __init__(self, path: str | Path, *, writable: bool, exclusive: bool, direct: bool = True) -> None:
        self.path = str(path)
        try:
            st = os.stat(self.path)
        except FileNotFoundError as exc:
            raise DriveNotFound(f"{self.path}: no such device") from exc
        if not stat.S_ISBLK(st.st_mode):
            raise DriveNotFound(f"{self.path}: not a block device")
        self.rdev = st.st_rdev
        flags = (os.O_RDWR if writable else os.O_RDONLY) | os.O_CLOEXEC
        if exclusive:
            flags |= os.O_EXCL
        self.direct = False
        fd = -1
        if direct:
            try:
                fd = os.open(self.path, flags | os.O_DIRECT)
                self.direct = True
            except OSError as exc:
                if exc.errno != errno.EINVAL:  # EINVAL: the device refuses O_DIRECT; others are real
                    raise self._map_open_error(exc) from exc
        if fd < 0:
            try:
                fd = os.open(self.path, flags)
            except OSError as exc:
                raise self._map_open_error(exc) from exc
        self.fd = fd
        # the device actually opened, not the one the path named a moment earlier
        self.rdev = os.fstat(fd).st_rdev
        self.writable = writable
        self.removal_grace = REMOVAL_GRACE_SECONDS
        # every byte this descriptor wrote: the job's share of the disk's write counter (/sys/block/X/stat)
        self.bytes_written = 0
        try:
            self.geometry = read_geometry(fd)
        except OSError as exc:
            os.close(fd)
            if exc.errno in _GONE:
                raise DriveNotFound(f"{self.path}: cannot read geometry: {exc.strerror}") from exc
            raise DriveError(f"{self.path}: cannot read geometry: {exc.strerror} (not a medium error)") from exc
        # O_DIRECT needs offsets, lengths and buffers aligned to the logical sector
        self.alignment = max(self.geometry.logical_sector, 512)

    def _map_open_error(self, exc: OSError) -> Exception:
        """Only an errno the block layer uses for a failed medium (:data:`_MEDIUM`, as for reads and writes)
        is a :class:`MediaError` (route ``destroy``); anything else is not proof against the medium.

        EPERM from a device cgroup, ENOMEM, ETXTBSY, ENOMEDIUM, EINVAL…: the drive is held for a person
        (a :class:`DriveError`, route ``hold``), the errno named; EBUSY/EROFS/EACCES are "busy" and a
        pulled drive's ENXIO/ENODEV "not found", as before.
        """
        if exc.errno == errno.EBUSY:
            return DriveBusy(f"{self.path}: in use (exclusive open refused)")
        if exc.errno in _GONE:
            return DriveNotFound(f"{self.path}: {exc.strerror}")
        if exc.errno == errno.EROFS or exc.errno == errno.EACCES:
            return DriveBusy(f"{self.path}: cannot open for writing: {exc.strerror}")
        name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        if exc.errno in _MEDIUM and not self.is_loop:
            return MediaError(f"{self.path}: open failed: {exc.strerror} ({name})")
        return DriveError(f"{self.path}: open failed: {exc.strerror} ({name}): not a medium error, the drive is held "
                          "for a person to look at")

    @property
    def is_loop(self) -> bool:
        """A loop device (major 7): software over a file, with no medium of its own to fail."""
        return os.major(getattr(self, "rdev", 0)) == LOOP_MAJOR

    @property
    def size(self) -> int:
        """Capacity in bytes (BLKGETSIZE64, as read at open or by the last :meth:`refresh_geometry`)."""
        return self.geometry.size_bytes

    def refresh_geometry(self) -> Geometry:
        """Read size and sector sizes again (after the kernel re-read the drive's capacity)."""
        try:
            self.geometry = read_geometry(self.fd)
        except OSError as exc:
            raise self._io_error(exc, "geometry read", 0) from exc
        self.alignment = max(self.geometry.logical_sector, 512)
        return self.geometry

    def _gone(self) -> bool:
        """The device has left the kernel (its node or its sysfs entry is gone)."""
        sys_entry = f"/sys/dev/block/{os.major(self.rdev)}:{os.minor(self.rdev)}"
        return not os.path.exists(self.path) or not os.path.exists(sys_entry)

    def _io_error(self, exc: OSError, what: str, offset: int) -> Exception:
        if exc.errno in _GONE or self._gone():
            return DriveRemoved(f"{self.path}: drive removed during {what} at offset {offset}")
        if self.is_loop:
            # a loop device has no medium: its EIO is its backing file refusing the I/O (an active swap
            # file answers ETXTBSY, a full or read-only filesystem…), never proof to destroy anything;
            # and a loop held open is not removed under us (the kernel defers the detach), so no wait
            return DriveError(f"{self.path}: {what} failed at offset {offset}: {exc.strerror} (a loop device: its "
                              "backing file refused the I/O, not a medium error)")
        # a pulled drive fails in-flight I/O *before* the kernel removes its node: EIO, or ENOSPC
        # once its capacity has dropped to zero (both seen with QEMU device_del; under TCG the node
        # went 3-10 s later). Wait for the removal before calling it a media fault, so one unplug
        # never routes a drive to destruction; a real media fault only fails a little later.
        deadline = time.monotonic() + self.removal_grace
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if self._gone():
                return DriveRemoved(f"{self.path}: drive removed during {what} at offset {offset}")
        if exc.errno in _MEDIUM:
            return MediaError(f"{self.path}: {what} failed at offset {offset}: {exc.strerror}", offset=offset)
        return DriveError(f"{self.path}: {what} failed at offset {offset}: {exc.strerror} (not a medium error)")

    def _short(self, what: str, offset: int) -> DriveError:
        """A write or read that stopped short: a medium error only if the device kept its size and is not a loop."""
        try:
            now = _ioctl_int(self.fd, BLKGETSIZE64, "Q")
        except OSError:
            now = self.size
        if now != self.size:
            return DriveError(f"{self.path}: {what} at {offset}: size changed from {self.size} to {now} bytes during "
                              "the job (not a medium error)")
        if self.is_loop:
            return DriveError(f"{self.path}: {what} at {offset} (a loop device: not a medium error)")
        return MediaError(f"{self.path}: {what} at {offset}", offset)

    def write_at(self, buffer: memoryview, offset: int) -> None:
        """Write all of ``buffer`` at ``offset``; short writes are continued, errors mapped."""
        done = 0
        total = len(buffer)
        while done < total:
            try:
                written = os.pwrite(self.fd, buffer[done:], offset + done)
            except OSError as exc:
                raise self._io_error(exc, "write", offset + done) from exc
            if written <= 0:
                raise self._short(f"write returned {written}", offset + done)
            done += written
            self.bytes_written += written

    def read_into(self, buffer: memoryview, offset: int) -> None:
        """Fill all of ``buffer`` from ``offset``; a short read past the end is an error."""
        done = 0
        total = len(buffer)
        while done < total:
            try:
                got = os.preadv(self.fd, [buffer[done:]], offset + done)
            except OSError as exc:
                raise self._io_error(exc, "read", offset + done) from exc
            if got <= 0:
                raise self._short("unexpected end of device", offset + done)
            done += got

    def flush(self) -> None:
        """Flush the device's volatile write cache (fsync on a block device issues a FLUSH)."""
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise self._io_error(exc, "flush", self.size) from exc

    def drop_page_cache(self) -> None:
        """Drop cached pages so a buffered reader sees the medium (BLKFLSBUF)."""
        try:
            fcntl.ioctl(self.fd, BLKFLSBUF, 0)
        except OSError:
            pass  # best effort: verification itself reads with O_DIRECT

    def close(self) -> None:
        """Close the descriptor (ends exclusivity)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> BlockDevice:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
