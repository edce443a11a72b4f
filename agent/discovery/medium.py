"""Which medium instance a job is bound to: the same one from confirmation to verification.

A kernel name (``/dev/loop3``, ``/dev/sdc``) is reused: a loop device detached and attached again to
another image, a drive swapped in a bay while the name is free. A size is not fixed either:
``losetup -c`` grows a loop under a running job, a drive can be re-read with a new capacity. The job
therefore records a :class:`MediumInstance` when the operator confirms (or the job starts), and
compares it again after the exclusive open, after the last write and after verification. What is
compared:

- ``device_number`` — the dev_t;
- ``diskseq`` — the kernel's per-medium sequence number (``/sys/block/X/diskseq``, and
  ``BLKGETDISKSEQ`` on the open descriptor; Linux 5.15+): a new number for every medium attached,
  even at the same node with the same size and the same backing path;
- ``size_bytes`` — sysfs before the open, ``BLKGETSIZE64`` on the job's descriptor after it;
- identity — model, serial and WWN as sysfs reports them;
- for a loop device, the loop driver's own status: backing (st_dev, st_ino), ``lo_rdevice``, offset
  and size limit (``agent.discovery.loops``), since a loop's "serial" is only its backing path.

The comparison is :func:`changes`: one human line per difference, e.g. ``diskseq changed 41 → 42:
another medium is at /dev/loop3``. The runner turns any difference into a failed job held for a
person (``agent.jobs.runner``); nothing here decides routes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agent.discovery import loops, sysfs
from agent.errors import DriveNotFound
from agent.transport.block import BlockDevice, read_diskseq, read_geometry


@dataclass(frozen=True)
class LoopBinding:
    """What a loop device reads and writes, from ``LOOP_GET_STATUS64``."""

    backing_device: int
    backing_inode: int
    backing_rdevice: int
    offset: int
    size_limit: int

    @classmethod
    def of(cls, status: loops.LoopStatus) -> LoopBinding:
        """The binding part of a loop's status."""
        return cls(status.backing_device, status.backing_inode, status.backing_rdevice, status.offset,
                   status.size_limit)


@dataclass(frozen=True)
class MediumInstance:
    """One medium in one device node at one moment: what a job is bound to."""

    path: str
    name: str
    device_number: int
    diskseq: int | None
    size_bytes: int
    model: str | None
    serial: str | None
    wwid: str | None
    loop: LoopBinding | None = None

    def to_json(self) -> dict[str, object]:
        """Plain form for the job journal."""
        return {
            "device_number": f"{os.major(self.device_number)}:{os.minor(self.device_number)}",
            "diskseq": self.diskseq, "size_bytes": self.size_bytes, "model": self.model, "serial": self.serial,
            "wwid": self.wwid,
            "loop": None if self.loop is None else {
                "backing": f"{os.major(self.loop.backing_device)}:{os.minor(self.loop.backing_device)}/"
                           f"{self.loop.backing_inode}",
                "backing_rdevice": f"{os.major(self.loop.backing_rdevice)}:{os.minor(self.loop.backing_rdevice)}",
                "offset": self.loop.offset, "size_limit": self.loop.size_limit},
        }


def _sysfs_diskseq(name: str) -> int | None:
    try:
        return int(Path(sysfs.SYS_BLOCK / name / "diskseq").read_text().strip())
    except (OSError, ValueError):
        return None


def _identity_part(name: str, number: int) -> tuple[str | None, str | None, str | None, LoopBinding | None]:
    facts = sysfs.sysfs_facts(name)
    loop = None
    if name.startswith("loop"):
        status = loops.loop_status(name)
        if status is not None and status.device_number == number:
            loop = LoopBinding.of(status)
    return facts.model, facts.serial, facts.wwid, loop


def capture(path: str) -> MediumInstance:
    """The medium now at ``path``, without opening it for writing (before confirmation and the open).

    Raises DriveNotFound when the node is gone.
    """
    try:
        number = os.stat(os.path.realpath(path)).st_rdev
    except OSError as exc:
        raise DriveNotFound(f"{path}: no such device ({exc.strerror})") from exc
    name = sysfs.whole_disk_of(os.major(number), os.minor(number)) or os.path.basename(os.path.realpath(path))
    model, serial, wwid, loop = _identity_part(name, number)
    size = sysfs.sysfs_facts(name).size_bytes
    return MediumInstance(path, name, number, _sysfs_diskseq(name), size, model, serial, wwid, loop)


def capture_open(device: BlockDevice) -> MediumInstance:
    """The medium behind the job's open descriptor: dev_t by fstat, size by BLKGETSIZE64, diskseq by ioctl.

    The size is read fresh from the kernel, not the one the descriptor cached at open. When the
    ioctl's diskseq and sysfs's disagree, sysfs's is kept only if the ioctl has none (old kernel):
    the descriptor's answer is about the medium actually open.
    """
    number = os.fstat(device.fd).st_rdev
    name = sysfs.whole_disk_of(os.major(number), os.minor(number)) or os.path.basename(os.path.realpath(device.path))
    model, serial, wwid, _ = _identity_part(name, number)
    loop = None
    if name.startswith("loop"):
        status = loops.status_of_descriptor(device.fd, name, number)
        loop = LoopBinding.of(status) if status is not None else None
    size = read_geometry(device.fd).size_bytes
    diskseq = read_diskseq(device.fd)
    if diskseq is None:
        diskseq = _sysfs_diskseq(name)
    return MediumInstance(device.path, name, number, diskseq, size, model, serial, wwid, loop)


def flush_partitions(name: str) -> list[str]:
    """Write back the page cache of every partition of disk ``name``; one reason per partition that failed.

    A partition is a block device inode of its own, with its own page cache: a buffered write to
    ``/dev/sdc1`` by another process sits there, not in the whole disk's cache, so the job's fsync of
    the whole disk does not push it out, the write counter does not see it yet, and it reaches the
    medium after the job certified (at writeback, or when its writer finally closes a descriptor it
    kept in flight). ``fsync`` of a partition descriptor writes back that partition's whole cache,
    whoever dirtied it; the descriptor is read-only and opened by device number, not by a /dev name.
    Call it before reading the write counter.
    """
    reasons: list[str] = []
    for partition in sysfs.partitions(name):
        number = sysfs.device_number_in(sysfs.SYS_BLOCK / name / partition / "dev")
        if number is None:
            continue  # removed while listed: nothing of it is left to write back
        descriptor = loops.open_node(partition, number)
        if descriptor is None:
            reasons.append(f"the page cache of partition {partition} could not be written back (it cannot be opened)")
            continue
        try:
            os.fsync(descriptor)
        except OSError as exc:
            reasons.append(f"writing back the page cache of partition {partition} failed: {exc.strerror}")
        finally:
            os.close(descriptor)
    return reasons


@dataclass(frozen=True)
class WriteCount:
    """The kernel's count of sectors written to a whole disk (its partitions included), and ours."""

    sectors: int  # /sys/block/NAME/stat field 7: 512-byte sectors written, whoever wrote them
    ours: int  # bytes the job's descriptor wrote (BlockDevice.bytes_written) at the same moment


def write_count(name: str, ours: int) -> WriteCount | None:
    """A snapshot of the disk's write counter; None when the kernel does not count (iostats off).

    Also None when passthrough commands are counted (``iostats_passthrough``, Linux 6.13+): a firmware
    method's command data would then count as writes that are not ours.
    """
    queue = sysfs.SYS_BLOCK / name / "queue"
    try:
        if (queue / "iostats").read_text().strip() != "1":
            return None
        passthrough = queue / "iostats_passthrough"
        if passthrough.exists() and passthrough.read_text().strip() == "1":
            return None
        fields = (sysfs.SYS_BLOCK / name / "stat").read_text().split()
        return WriteCount(int(fields[6]), ours)
    except (OSError, ValueError, IndexError):
        return None


def foreign_writes(before: WriteCount | None, after: WriteCount | None, name: str, when: str) -> list[str]:
    """Sectors written to the disk between two snapshots that the job did not write, as a reason."""
    if before is None:
        return []  # not counted from the start: nothing to compare (documented limit)
    if after is None:
        return [f"the kernel stopped counting writes to {name} {when} (iostats switched off)"]
    surplus = (after.sectors - before.sectors) * 512 - (after.ours - before.ours)
    if surplus > 0:
        return [f"another process wrote {surplus // 512} sectors ({surplus} bytes) to {name} {when}"]
    return []


def changes(before: MediumInstance, after: MediumInstance, when: str, *, expected_size: int | None = None) -> list[str]:
    """Every difference between two captures, one line each; ``when`` says during what ("during the job").

    ``expected_size`` is the size the job knows it covered (``BlockDevice.size``, which a job-made
    capacity change such as a restored hidden area updates); it replaces ``before.size_bytes``.
    """
    found: list[str] = []
    node = after.path
    if before.device_number != after.device_number:
        old_number = f"{os.major(before.device_number)}:{os.minor(before.device_number)}"
        new_number = f"{os.major(after.device_number)}:{os.minor(after.device_number)}"
        found.append(f"device number changed {old_number} → {new_number} {when}: {node} is another device")
    if before.diskseq is not None and after.diskseq is not None and before.diskseq != after.diskseq:
        found.append(f"diskseq changed {before.diskseq} → {after.diskseq} {when}: another medium is at {node}")
    size = before.size_bytes if expected_size is None else expected_size
    if size != after.size_bytes:
        hint = " (losetup -c?)" if after.name.startswith("loop") else ""
        found.append(f"size changed from {size} to {after.size_bytes} bytes {when}{hint}")
    for label, old, new in (("model", before.model, after.model), ("serial", before.serial, after.serial),
                            ("WWN", before.wwid, after.wwid)):
        if old != new:
            found.append(f"{label} changed {old!r} → {new!r} {when}")
    if before.loop != after.loop:
        if before.loop is None or after.loop is None:
            found.append(f"loop binding changed {when}: {node} is {'no longer' if after.loop is None else 'now'} "
                         "a bound loop device")
        else:
            old_loop, new_loop = before.loop, after.loop
            if (old_loop.backing_device, old_loop.backing_inode, old_loop.backing_rdevice) != (
                    new_loop.backing_device, new_loop.backing_inode, new_loop.backing_rdevice):
                found.append(f"loop backing changed {when}: inode {old_loop.backing_inode} → {new_loop.backing_inode}"
                             f" (another image is attached at {node})")
            # a job that re-read the capacity itself (a hidden area restored: BlockDevice.refresh_geometry)
            # has a new size limit on an emulated drive's loop; the size comparison above judges that
            resized_by_job = expected_size is not None and expected_size != before.size_bytes
            limits_differ = old_loop.size_limit != new_loop.size_limit and not resized_by_job
            if old_loop.offset != new_loop.offset or limits_differ:
                found.append(f"loop offset/size limit changed {old_loop.offset}/{old_loop.size_limit} → "
                             f"{new_loop.offset}/{new_loop.size_limit} {when}")
    return found
