"""The one guard: every destructive path asks it before a single byte is written.

A device may be written only if it is a whole disk with a medium, writable, not the station's own
disk (``/``, ``/boot`` and the other system mounts), holds no mounted filesystem and no active swap,
has nothing stacked on it (LVM, md, dm-crypt), can be opened with ``O_EXCL``, and was authorised —
named explicitly by an operator or matched by a configured bay. Every reason found is reported,
not only the first, so an operator sees the whole picture.

The checks are repeated *after* the exclusive open succeeds: ``O_EXCL`` then stops new mounts,
swapon and device-mapper from grabbing the disk while the job holds the descriptor, so the
second look closes the race between looking and opening.

Loop devices are judged by the loop driver's own status (``agent.discovery.loops``:
``LOOP_GET_STATUS64`` gives the backing filesystem, inode and device number whatever the sysfs
path says — deleted, in another mount namespace, or a name with trailing blanks). Refused in both
directions: a disk or partition backing any loop (followed upwards through loops over loops), a
disk whose filesystem holds a loop's image, a loop over a block device (named with what that device
holds), a loop sharing its backing inode with another loop, a loop over an active swap file, a
loop whose backing file lives on the station's own filesystems or system disk (its ``st_dev``: the
image could be the registry or /etc/shadow; tmpfs stays allowed), and a loop that shows only a
window of its file (offset, size limit: its certificate would name the whole file). A mount that
only another mount namespace has is named with the pid that sees it, not left to the exclusive
open's anonymous "busy".

Processes that opened the disk (or a partition of it) *without* ``O_EXCL`` — ``dd``, an imager, a
virtual machine, another wipe tool — are invisible to the exclusive open, so the guard also scans
every thread's descriptor table by device number (``agent.discovery.openers``), with the disk's
character aliases (sg, bsg, NVMe generic and controller) and a loop target's backing file, and
refuses with each holder's pid and command name ("busy: open by pid 1234 (dd)"). This process is
never counted (it holds the ``O_EXCL`` descriptor itself after the open), nor are the pids a caller
asks to ignore (the daemon's own job workers). The scan costs about 20-30 ms with 400 processes and
900 threads (``bench/bench_guard_openers.py``), so it runs in ``assess`` as well as in ``acquire``:
a drive that someone is reading shows as protected when it is plugged in and listed, not "ready"
and then refused once the operator starts it. Only the last look in ``acquire`` (once per job, by
the descriptor's dev_t) also reads every process's memory map, for a node mmapped after its
descriptor was closed: that doubles the cost and is rare enough not to burden every listing.

Transient openers — policy: udev's workers (and the ``ata_id``/``scsi_id``/``blkid`` programs
they start) and ``blkid`` open a freshly attached or just-written disk for a few milliseconds to
read its signatures. If *every* holder is such a probe, the guard looks again every 50 ms for up to
``probe_wait`` seconds (2 s by default, the daemon's main thread can afford that once per
insertion) and goes on when they have let go; if one is still there it refuses and names it, like
any other holder. Any other holder refuses at once, without waiting: it is not ours to outlast.
A process that only *names* itself like a probe gains nothing but that bounded wait.

Not closed by the guard: ``O_EXCL`` does not stop a *plain* open, so a process that opens the disk
after ``acquire``'s last look is not refused by the kernel; and the scan sees only the processes
this one may inspect (see ``agent.discovery.openers``: the daemon needs ``CAP_SYS_PTRACE``). The
job runner closes what it can of that after the fact: it looks again (:meth:`Guard.assess_device`)
and compares the disk's write counter with its own writes after the last write and after
verification (``agent.jobs.runner``, ``agent.discovery.medium``).
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psutil

from agent.discovery import loops, sysfs
from agent.discovery.openers import OpenerScan, Watched, scan_openers
from agent.errors import DriveBusy, DriveNotFound, DriveProtected
from agent.transport.block import BlockDevice

# Mount points whose backing disks are the station's own: never a target.
SYSTEM_MOUNTS = ("/", "/boot", "/boot/efi", "/usr", "/var", "/home")
PROBE_WAIT_SECONDS = 2.0  # how long udev/blkid probes may hold a disk before they count as busy
PROBE_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Authorisation:
    """Why a device may be written: an operator named it, or a configured bay matched it."""

    device_path: str
    operator: str
    bay: str | None = None
    expected_serial: str | None = None  # what the operator saw and confirmed

    @property
    def source(self) -> str:
        """Human text for the journal and the certificate."""
        return f"bay {self.bay}" if self.bay else f"explicit command by {self.operator}"


@dataclass(frozen=True)
class Assessment:
    """The guard's verdict on one device, with every reason it found."""

    path: str
    name: str
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def protected(self) -> bool:
        """True when the device must not be written."""
        return bool(self.reasons)


def _rdev(path: str) -> int:
    return os.stat(path).st_rdev


def _device_number(name: str) -> int | None:
    """The device number of a kernel block device name, from /sys/class/block/NAME/dev (``8:17``)."""
    try:
        with open(f"/sys/class/block/{name}/dev", encoding="ascii") as handle:
            major, minor = handle.read().strip().split(":")
        return os.makedev(int(major), int(minor))
    except (OSError, ValueError):
        return None


def _disk_of_number(number: int) -> str | None:
    """The whole disk (kernel name) of a device number, a partition's parent; None if no such block device."""
    if number == 0:
        return None
    return sysfs.whole_disk_of(os.major(number), os.minor(number))


def _refuses_writes_as_swap(path: str, backing: tuple[int, int]) -> bool:
    """True when ``path`` is the inode ``backing`` and the kernel refuses a zero-byte write to it (ETXTBSY)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:
        return exc.errno == errno.ETXTBSY  # older kernels refuse the open already
    try:
        st = os.fstat(descriptor)
        if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != backing:
            return False  # another file took the name: never probe the wrong inode
        os.pwrite(descriptor, b"", 0)
    except OSError as exc:
        return exc.errno == errno.ETXTBSY
    finally:
        os.close(descriptor)
    return False


def _command_of(proc: str, pid: int) -> str:
    try:
        with open(f"{proc}/{pid}/comm", encoding="utf-8", errors="replace") as handle:
            return loops.printable(handle.read().strip()) or "?"
    except OSError:
        return "?"


def _window_reasons(status: loops.LoopStatus, shown: int) -> list[str]:
    """A file-backed loop that shows only part of its file (``losetup --offset/--sizelimit``, attack G13).

    Its certificate would name the image file while the bytes outside the window were never
    written: refused, as not a whole medium. ``shown`` is the loop's size in bytes. The file's size
    needs a path to the very inode (``loops.backing_file_size``); a window whose file cannot be
    measured is refused too. Also refused: a file grown after ``losetup`` (the loop still shows the
    old size) and one that is not a whole number of 512-byte sectors (the tail is never shown).
    """
    size = loops.backing_file_size(status)
    if status.offset == 0 and status.size_limit == 0 and size is None:
        return []  # the whole file, whatever its size (the runner refuses a file it cannot watch anyway)
    if status.offset == 0 and size is not None and shown >= size:
        return []
    window = f"offset {status.offset}, size limit {status.size_limit or 'none'}"
    of = f"{shown} of the {size} bytes of its backing file" if size is not None else (
        "a window of its backing file (whose size cannot be read here)")
    return [f"shows only {of} ({window}): not a whole medium; the rest of the file would never be written and "
            "the certificate would name the whole file — attach the whole file (losetup without "
            "--offset/--sizelimit; losetup -c after the file grew)"]


def _all_disks() -> set[str]:
    try:
        return {entry.name for entry in sysfs.SYS_BLOCK.iterdir()}
    except OSError:
        return set()


class Guard:
    """Decides whether a device may be written, and opens it exclusively when it may."""

    def __init__(
        self,
        system_mounts: Iterable[str] = SYSTEM_MOUNTS,
        *,
        ignore_pids: Iterable[int] = (),
        probe_wait: float = PROBE_WAIT_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        proc: str = "/proc",
        loop_windows: bool = False,
    ) -> None:
        """``loop_windows``: accept a file-backed loop that shows only part of its file (test seam only: an
        emulated drive's loop plays a kernel capacity below the native one); the CLI and daemon never set it."""
        self.system_mounts = tuple(system_mounts)
        self.loop_windows = loop_windows
        self.ignore_pids = frozenset(ignore_pids)
        self.probe_wait = probe_wait
        self.sleep = sleep
        self.clock = clock
        self.proc = proc

    def _disks_of_device_number(self, major: int, minor: int) -> set[str]:
        disk = sysfs.whole_disk_of(major, minor)
        if disk is None:
            return set()
        return sysfs.slaves_closure(disk) | {disk}

    def _disks_of_path(self, path: str) -> set[str]:
        """Whole disks under a device node or a regular file (for swap files)."""
        try:
            st = os.stat(path)
        except OSError:
            return set()
        number = st.st_rdev if stat.S_ISBLK(st.st_mode) else st.st_dev
        return self._disks_of_device_number(os.major(number), os.minor(number))

    def assess(self, path: str, *, ignore_pids: Iterable[int] = (), mappings: bool = False,
               openers: bool = True) -> Assessment:
        """Every reason ``path`` must not be written, without opening it for writing.

        Processes in ``ignore_pids`` (and this process) may hold the disk: the daemon passes its own
        job workers'. ``mappings`` also reads every process's memory map (``acquire``'s last look);
        ``openers=False`` skips the /proc scan (``acquire`` before its exclusive open, which scans after).
        """
        try:
            real = os.path.realpath(path)
            st = os.stat(real)
        except OSError:
            return Assessment(path, "?", ("no such device",))
        if not stat.S_ISBLK(st.st_mode):
            return Assessment(path, "?", ("not a block device",))
        return self._assess_name(path, sysfs.kernel_name(real), ignore_pids, mappings, openers)

    def assess_device(self, device: BlockDevice, *, ignore_pids: Iterable[int] = ()) -> Assessment:
        """The full assessment (memory maps included) of the device an open descriptor is bound to.

        By the descriptor's dev_t, never by resolving ``device.path`` again: a by-id link or a node
        re-pointed after the open must not make the look fall on another device.
        """
        number = device.rdev
        name = sysfs.whole_disk_of(os.major(number), os.minor(number))
        if name is None:
            return Assessment(device.path, "?", ("the opened device has left the kernel",))
        return self._assess_name(device.path, name, ignore_pids, True, True)

    def _assess_name(self, path: str, name: str, ignore_pids: Iterable[int], mappings: bool,
                     openers: bool) -> Assessment:
        reasons: list[str] = []
        if not sysfs.is_whole_disk(name):
            reasons.append(f"{name} is a partition: only whole disks are sanitised")
            return Assessment(path, name, tuple(reasons))
        facts = sysfs.sysfs_facts(name)
        if facts.size_bytes == 0:
            reasons.append("no medium (size 0)")
        if facts.read_only:
            reasons.append("read-only device")
        reasons.extend(self._use_reasons(name))
        reasons.extend(self._stacking_reasons(name))
        reasons.extend(self._namespace_reasons(name))
        if openers:
            reasons.extend(self._opener_reasons(name, ignore_pids, mappings))
        return Assessment(path, name, tuple(dict.fromkeys(reasons)))

    def _opener_reasons(self, name: str, ignore_pids: Iterable[int], mappings: bool) -> list[str]:
        """Processes holding the disk, a partition, or a sibling NVMe namespace open without O_EXCL."""
        owners: dict[str, str] = {}  # node label -> the disk (this one or a sibling namespace) it belongs to
        kinds: dict[str, str] = {}  # label -> how it reaches the disk: "", "partition", "character", "file"
        targets: dict[int, str] = {}
        characters: dict[int, str] = {}
        for disk in [name, *sysfs.nvme_sibling_namespaces(name)]:
            for node in [disk, *sysfs.partitions(disk)]:
                number = _device_number(node)
                if number is not None:
                    targets[number] = node
                    owners[node] = disk
                    kinds[node] = "" if node == disk else "partition"
            for number, label in sysfs.character_aliases(disk).items():
                characters[number] = label
                owners[label] = disk
                kinds[label] = "character"
        files: dict[tuple[int, int], str] = {}
        status = loops.loop_status(name) if name.startswith("loop") else None
        if status is not None and not status.over_block_device:
            label = f"the backing file of {name}"
            files[status.backing] = label
            owners[label] = name
            kinds[label] = "file"
        watched = Watched(targets, characters, files)
        ignored = self.ignore_pids | set(ignore_pids) | {os.getpid()}
        scan = self._scan(watched, ignored, mappings)
        deadline = self.clock() + self.probe_wait
        while scan.only_probes and self.clock() < deadline:
            self.sleep(PROBE_POLL_SECONDS)
            scan = self._scan(watched, ignored, mappings)
        reasons: list[str] = []
        for opener in scan.openers:
            text = f"busy: open by {opener.describe()}"
            if opener.how == "mapping":
                text = f"busy: mapped into memory by {opener.describe()}"
            kind = kinds[opener.node]
            if kind == "partition":
                text += f" through partition {opener.node}"
            elif kind == "character":
                text += f" through the character device {opener.node} (the same disk)"
            elif kind == "file":
                text = text.replace("busy: ", f"busy: {opener.node} is ", 1)
            if opener.peek:
                text += f", a read-only non-blocking look (O_RDONLY|O_NONBLOCK) still open after {self.probe_wait:g} s"
            elif opener.probe:
                text += f", a udev/blkid probe still holding it after {self.probe_wait:g} s"
            disk = owners[opener.node]
            if disk != name:
                text = (f"namespace {disk} on the same NVMe controller is in use ({text}): "
                        "a sanitize or format would erase it too")
            reasons.append(text)
        return reasons

    def _scan(self, targets: Watched, ignored: Iterable[int], mappings: bool) -> OpenerScan:
        return scan_openers(targets, ignore_pids=frozenset(ignored), mappings=mappings, proc=self.proc)

    def _use_reasons(self, name: str) -> list[str]:
        """Mounted, swap, holders: is the disk (or a partition of it) in use?"""
        reasons = [*self._mount_reasons(name), *self._swap_reasons(name)]
        stacked = sysfs.holders(name)
        if stacked:
            reasons.append("has holders (LVM/md/dm-crypt): " + ", ".join(stacked))
        return reasons

    def _stacking_reasons(self, name: str) -> list[str]:
        """Devices built on other devices, and loop devices over this one: O_EXCL sees neither."""
        reasons: list[str] = []
        under = sysfs.slaves_closure(name) - {name}
        if under:
            reasons.append(f"stacked over {', '.join(sorted(under))} (device-mapper/md): "
                           "sanitise the drives themselves")
        # a loop device opens its backing file or device like a file: no holder link, no exclusive
        # claim, and its sysfs backing_file is only a path; the loop driver's status is the truth
        bound = loops.bound_loops()
        reasons.extend(self._dependent_loop_reasons(name, bound))
        by_name = {loop.name: loop for loop in bound}
        status = by_name.get(name)
        if status is not None:
            reasons.extend(self._loop_target_reasons(status, by_name))
        return reasons

    def _dependent_loop_reasons(self, name: str, bound: list[loops.LoopStatus]) -> list[str]:
        """Loops that read or write this disk: backed by it or a partition, or by a file on its filesystem.

        Followed upwards to a fixed point, so a loop over a loop over the disk is named too, with the
        loop it goes through.
        """
        reasons: list[str] = []
        depends: dict[str, str | None] = {name: None}  # disk -> the loop it was reached through
        changed = True
        while changed:
            changed = False
            for loop in bound:
                if loop.name in depends:
                    continue
                via_device = _disk_of_number(loop.backing_rdevice) if loop.over_block_device else None
                via_file = None if loop.over_block_device else _disk_of_number(loop.backing_device)
                lower = via_device if via_device in depends else via_file if via_file in depends else None
                if lower is None:
                    continue
                depends[loop.name] = lower
                changed = True
                through = f" through {lower}" if lower != name else ""
                if lower == via_device:
                    reasons.append(f"backs loop device {loop.describe()}{through}")
                else:
                    reasons.append(f"holds the filesystem of the backing file of loop device {loop.describe()}"
                                   f"{through}")
        return reasons

    def _loop_target_reasons(self, status: loops.LoopStatus, by_name: dict[str, loops.LoopStatus]) -> list[str]:
        """A loop target: over a block device (followed down), sharing its file, or over a swap file."""
        reasons: list[str] = []
        current = status
        seen = {status.name}
        while current.over_block_device:
            lower = _disk_of_number(current.backing_rdevice) or (
                f"{os.major(current.backing_rdevice)}:{os.minor(current.backing_rdevice)}")
            text = f"loop device over the block device {lower}: sanitise that device instead"
            if current is not status:
                text = f"stacked (through {current.name}) over the block device {lower}"
            use = self._use_reasons(lower) if lower in _all_disks() else []
            if use:
                text += f" ({lower}: {'; '.join(dict.fromkeys(use))})"
            reasons.append(text)
            below = by_name.get(lower)
            if below is None or below.name in seen:
                break
            seen.add(below.name)
            current = below
        if not status.over_block_device:
            for other in by_name.values():
                if other.name != status.name and not other.over_block_device and other.backing == status.backing:
                    use = self._use_reasons(other.name)
                    extra = f": {'; '.join(use)}" if use else ""
                    reasons.append(f"shares its backing file with loop device {other.describe()}{extra}")
            reasons.extend(self._swap_file_reasons(status))
            reasons.extend(self._system_file_reasons(status))
            if not self.loop_windows:
                reasons.extend(_window_reasons(status, sysfs.sysfs_facts(status.name).size_bytes))
        return reasons

    def _system_file_reasons(self, status: loops.LoopStatus) -> list[str]:
        """The loop's backing file lives on one of the station's own filesystems (attack G4).

        Wiping it would overwrite a station file: an image under /var/tmp is the harmless case, a loop
        over the registry, the station key or /etc/shadow the harmful one, and the guard cannot tell
        them apart. Decided by the backing inode's st_dev (LOOP_GET_STATUS64), never by its path:
        the same filesystem as a system mount point, or a filesystem on the disk that holds one.
        tmpfs (/dev/shm, where the demo and the tests keep images) is no disk and stays allowed.
        """
        system_disks: set[str] = set()
        mounts = sysfs.read_mountinfo()
        for path in self.system_mounts:
            try:
                number = os.stat(path).st_dev
            except OSError:
                continue
            if number == status.backing_device:
                return [f"its backing file lives on {path}, a filesystem of the station itself: wiping it "
                        "would overwrite a station file; copy the image to a scratch disk or /dev/shm"]
            system_disks |= self._disks_of_filesystem(number, mounts)
        on = self._disks_of_filesystem(status.backing_device, mounts) & system_disks
        if on:
            return [f"its backing file lives on {', '.join(sorted(on))}, the station's own system disk: wiping it "
                    "would overwrite a station file; copy the image to a scratch disk or /dev/shm"]
        return []

    def _disks_of_filesystem(self, number: int, mounts: list[sysfs.MountEntry]) -> set[str]:
        """The disks under a filesystem's st_dev; for an anonymous one (btrfs subvolume: major 0), its mounts' sources.

        tmpfs, overlay and the like have no /dev source: no disk (an overlay's upper directory on the
        system disk is a residual limit, see the README).
        """
        if os.major(number):
            return self._disks_of_device_number(os.major(number), os.minor(number))
        found: set[str] = set()
        for entry in mounts:
            if os.makedev(entry.major, entry.minor) == number and entry.source.startswith("/dev/"):
                found |= self._disks_of_path(entry.source)
        return found

    def _swap_file_reasons(self, status: loops.LoopStatus) -> list[str]:
        """The loop's backing file is an active swap area: the kernel would fail every write (ETXTBSY)."""
        reasons: list[str] = []
        unresolved = False
        for swap in sysfs.read_swaps():
            try:
                st = os.stat(swap)
            except OSError:
                unresolved = True
                continue
            if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) == status.backing:
                reasons.append(f"its backing file is an active swap file ({loops.printable(swap)})")
        if reasons or not unresolved:
            return reasons
        # /proc/swaps shows the path in the namespace of whoever ran swapon: when one does not resolve
        # here, ask the inode itself — the kernel refuses every write to an active swap file with
        # ETXTBSY, even one of zero bytes, which writes nothing (6.18: the open itself succeeds). Only
        # then: that open would show as an opener of the image to a running job's backing-file watch.
        path = sysfs.sysfs_facts(status.name).backing_file
        if path:
            for candidate in dict.fromkeys([path, path.removesuffix(" (deleted)")]):
                if _refuses_writes_as_swap(candidate, status.backing):
                    reasons.append(f"its backing file {loops.printable(candidate)} is in use as swap (ETXTBSY)")
                    break
        return reasons

    def _namespace_reasons(self, name: str) -> list[str]:
        """NVMe Sanitize acts on the whole subsystem and Format may too: every sibling namespace must be free."""
        reasons: list[str] = []
        for sibling in sysfs.nvme_sibling_namespaces(name):
            for reason in self._use_reasons(sibling):
                reasons.append(f"namespace {sibling} on the same NVMe controller is in use ({reason}): "
                               "a sanitize or format would erase it too")
        return reasons

    def _mount_reasons(self, name: str) -> list[str]:
        reasons: list[str] = []
        # stat() of the system paths first: it works even where mountinfo cannot show them (a chroot,
        # whose root is not a mount point of its own); major 0 means overlay/btrfs: mountinfo decides
        for path in self.system_mounts:
            try:
                number = os.stat(path).st_dev
            except OSError:
                continue
            if os.major(number) and name in self._disks_of_device_number(os.major(number), os.minor(number)):
                reasons.append(f"backs {path}: the station's own system disk")
        for entry in sysfs.read_mountinfo():
            if entry.major == 0:
                continue  # virtual filesystems (tmpfs, proc, overlay upper on tmpfs)
            if name not in self._disks_of_device_number(entry.major, entry.minor):
                continue
            if entry.mount_point in self.system_mounts:
                text = f"backs {entry.mount_point}: the station's own system disk"
                if text not in reasons:
                    reasons.append(text)
            else:
                reasons.append(f"holds a mounted filesystem ({entry.source} on {entry.mount_point})")
        reasons.extend(self._other_namespace_mount_reasons(name))
        # psutil reads the same table through its own parser: a second opinion costs nothing
        for partition in psutil.disk_partitions(all=True):
            if partition.device.startswith("/dev/") and name in self._disks_of_path(partition.device):
                text = f"holds a mounted filesystem ({partition.device} on {partition.mountpoint})"
                if partition.mountpoint in self.system_mounts:
                    text = f"backs {partition.mountpoint}: the station's own system disk"
                if text not in reasons:
                    reasons.append(text)
        return reasons

    def _other_namespace_mount_reasons(self, name: str) -> list[str]:
        """Mounts of the disk that only another mount namespace has (a container; attack G8).

        The mount's exclusive claim refuses our ``O_EXCL`` open anyway, but "busy (exclusive open
        refused)" names nothing an operator can find. One process per distinct namespace (by the
        inode of ``/proc/PID/ns/mnt``) is read; mounts this namespace also has are reported above.
        The mount point is as that process sees it (relative to its root).
        """
        try:
            own = os.stat(f"{self.proc}/self/ns/mnt").st_ino
            here = {(entry.major, entry.minor, entry.mount_point) for entry in sysfs.read_mountinfo()}
            pids = sorted(int(entry) for entry in os.listdir(self.proc) if entry.isdigit())
        except (OSError, ValueError):
            return []
        seen = {own}
        reasons: list[str] = []
        for pid in pids:
            try:
                namespace = os.stat(f"{self.proc}/{pid}/ns/mnt").st_ino
                if namespace in seen:
                    continue
                seen.add(namespace)
                entries = sysfs.read_mountinfo(f"{self.proc}/{pid}/mountinfo")
            except (OSError, ValueError):
                continue  # exited, or not ours to inspect
            for entry in entries:
                if entry.major == 0 or (entry.major, entry.minor, entry.mount_point) in here:
                    continue
                if name in self._disks_of_device_number(entry.major, entry.minor):
                    reasons.append(f"mounted in another mount namespace (pid {pid} ({_command_of(self.proc, pid)}): "
                                   f"{loops.printable(entry.source)} on {loops.printable(entry.mount_point)})")
        return reasons

    def _swap_reasons(self, name: str) -> list[str]:
        return [f"active swap ({swap})" for swap in sysfs.read_swaps() if name in self._disks_of_path(swap)]

    def acquire(self, path: str, authorisation: Authorisation) -> BlockDevice:
        """Check everything, open ``O_EXCL`` for writing, and check again; raise if any fails.

        The returned device must be held for the job's whole life.
        """
        try:
            target_rdev = _rdev(os.path.realpath(path))
        except OSError as exc:
            raise DriveNotFound(f"{path}: no such device") from exc
        try:
            authorised_rdev = _rdev(os.path.realpath(authorisation.device_path))
        except OSError:
            authorised_rdev = -1
        if authorised_rdev != target_rdev:
            raise DriveProtected(
                f"{path}: not authorised (not named by the operator or matched by a bay)",
                ("not named explicitly by the operator or a configured bay",),
            )
        # the /proc scan (10-30 ms, eight jobs starting at once on two cores) only once, after the
        # exclusive open: opening writes nothing, and a plain holder is found there just the same
        before = self.assess(path, openers=False)
        if before.protected:
            raise DriveProtected(f"{path}: refused: " + "; ".join(before.reasons), before.reasons)
        try:
            device = BlockDevice(path, writable=True, exclusive=True)
        except DriveBusy as exc:
            raise DriveProtected(f"{path}: refused: busy ({exc.message})", ("busy: exclusive open refused",)) from exc
        try:
            if device.rdev != target_rdev:
                raise DriveProtected(f"{path}: device changed while opening", ("device changed while opening",))
            # this process holds the O_EXCL descriptor now and is not counted; the memory maps are read
            # here only: once per job, the last look before the first write
            after = self.assess_device(device)
            if after.protected:
                raise DriveProtected(f"{path}: refused: " + "; ".join(after.reasons), after.reasons)
            if device.geometry.read_only:
                raise DriveProtected(f"{path}: refused: read-only device", ("read-only device",))
        except BaseException:
            device.close()
            raise
        return device
