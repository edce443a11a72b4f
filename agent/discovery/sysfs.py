"""Small, careful readers of /sys/block and /proc: facts the guard and identity need."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from agent.discovery.identity import SysfsFacts

SYS_BLOCK = Path("/sys/block")
SYS_DEV_BLOCK = Path("/sys/dev/block")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def _read_int(path: Path, default: int = 0) -> int:
    text = _read(path)
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def kernel_name(device_path: str) -> str:
    """Kernel name (``sda``, ``nvme0n1``) of a device node, following symlinks like by-id links."""
    real = os.path.realpath(device_path)
    st = os.stat(real)
    link = SYS_DEV_BLOCK / f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    try:
        return Path(os.path.realpath(link)).name
    except OSError:
        return Path(real).name


def is_whole_disk(name: str) -> bool:
    """True for /sys/block entries (whole disks), false for partitions."""
    return (SYS_BLOCK / name).exists()


def whole_disk_of(major: int, minor: int) -> str | None:
    """The whole disk a device number belongs to (itself for a disk, its parent for a partition)."""
    link = SYS_DEV_BLOCK / f"{major}:{minor}"
    if not link.exists():
        return None
    real = Path(os.path.realpath(link))
    if (real / "partition").exists():
        return real.parent.name
    return real.name


def partitions(name: str) -> list[str]:
    """Partition names of a whole disk."""
    base = SYS_BLOCK / name
    try:
        return sorted(entry.name for entry in base.iterdir() if (entry / "partition").exists())
    except OSError:
        return []


def holders(name: str) -> list[str]:
    """Devices stacked on this disk or any of its partitions (LVM, md, dm-crypt, bcache)."""
    found: list[str] = []
    for part in [name, *partitions(name)]:
        directory = SYS_BLOCK / name / "holders" if part == name else SYS_BLOCK / name / part / "holders"
        try:
            found.extend(f"{part}→{entry.name}" for entry in directory.iterdir())
        except OSError:
            continue
    return found


def slaves_closure(name: str) -> set[str]:
    """Whole disks underneath a (possibly stacked) device: dm-0 → sda2 → sda."""
    result: set[str] = set()
    pending = [name]
    seen: set[str] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        sys_path = SYS_BLOCK / current
        if not sys_path.exists():
            # a partition: find its parent through /sys/class/block
            class_path = Path("/sys/class/block") / current
            if class_path.exists():
                parent = Path(os.path.realpath(class_path)).parent.name
                pending.append(parent)
            continue
        slaves_dir = sys_path / "slaves"
        slaves = [entry.name for entry in slaves_dir.iterdir()] if slaves_dir.exists() else []
        if slaves:
            pending.extend(slaves)
        else:
            result.add(current)
    return result


def _parent_subsystems(name: str) -> tuple[str, ...]:
    """Subsystems of the device's ancestors (usb, nvme, mmc, scsi…), from sysfs symlinks."""
    subsystems: list[str] = []
    device = SYS_BLOCK / name / "device"
    if not device.exists():
        return ()
    current = Path(os.path.realpath(device))
    for _ in range(12):
        link = current / "subsystem"
        if link.exists():
            subsystems.append(Path(os.path.realpath(link)).name)
        if current.parent == current:
            break
        current = current.parent
    return tuple(dict.fromkeys(subsystems))


def sysfs_facts(name: str) -> SysfsFacts:
    """Read identity facts from /sys/block/NAME (works without udevd)."""
    base = SYS_BLOCK / name
    queue = base / "queue"
    logical = _read_int(queue / "logical_block_size", 512)
    device = base / "device"
    return SysfsFacts(
        name=name,
        size_bytes=_read_int(base / "size") * 512,  # /sys/block/*/size is always in 512-byte units
        logical_sector=logical,
        physical_sector=_read_int(queue / "physical_block_size", logical),
        rotational=_read(queue / "rotational") == "1",
        removable=_read(base / "removable") == "1",
        read_only=_read(base / "ro") == "1",
        model=_read(device / "model") or None,
        serial=_read(device / "serial") or None,
        firmware=_read(device / "firmware_rev") or _read(device / "rev") or None,
        vendor=_read(device / "vendor") or None,
        wwid=_read(device / "wwid") or _read(base / "wwid") or None,
        backing_file=_read(base / "loop" / "backing_file") or None,
        parent_subsystems=_parent_subsystems(name),
    )


def device_number_in(path: Path) -> int | None:
    """The dev_t a sysfs ``dev`` file (``MAJOR:MINOR``) states, or None when it is missing or malformed."""
    text = _read(path)
    if not text or ":" not in text:
        return None
    major, minor = text.split(":", 1)
    try:
        return os.makedev(int(major), int(minor))
    except ValueError:
        return None


def character_aliases(name: str, root: Path = SYS_BLOCK.parent) -> dict[int, str]:
    """Character devices that reach the same disk as block device ``name``, by device number.

    SCSI generic (``/dev/sgN``) and bsg nodes of an ``sd`` disk, and for an NVMe namespace its
    generic node (``/dev/ngXnY``) and its controller (``/dev/nvmeX``, which takes admin commands
    such as Format and Sanitize): a process holding one of them can read, write or erase the disk
    while the block node looks free, and ``O_EXCL`` on the block node does not stop it.
    """
    found: dict[int, str] = {}
    device = root / "block" / name / "device"
    for group in ("scsi_generic", "bsg"):
        try:
            entries = sorted((device / group).iterdir())
        except OSError:
            continue
        for entry in entries:
            number = device_number_in(entry / "dev")
            if number is not None:
                found[number] = entry.name if group == "scsi_generic" else f"bsg/{entry.name}"
    if name.startswith("nvme"):
        generic = "ng" + name.removeprefix("nvme")
        number = device_number_in(root / "class" / "nvme-generic" / generic / "dev")
        if number is not None:
            found[number] = generic
        controller = device_number_in(device / "dev")  # /sys/block/nvme0n1/device is the controller nvme0
        if controller is not None:
            try:
                label = Path(os.path.realpath(device)).name
            except OSError:
                label = "controller"
            found[controller] = label
    return found


def nvme_sibling_namespaces(name: str) -> list[str]:
    """Other block devices (namespaces) of the same NVMe controller as ``name``."""
    if not name.startswith("nvme"):
        return []
    try:
        controller = os.path.realpath(SYS_BLOCK / name / "device")
    except OSError:
        return []
    siblings: list[str] = []
    for entry in sorted(SYS_BLOCK.glob("nvme*")):
        if entry.name != name and os.path.realpath(entry / "device") == controller:
            siblings.append(entry.name)
    return siblings


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    major: int
    minor: int
    mount_point: str
    source: str
    fstype: str


def read_mountinfo(path: str = "/proc/self/mountinfo") -> list[MountEntry]:
    """Parse mountinfo (device numbers are the reliable key, not the source string)."""
    entries: list[MountEntry] = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) < 10 or "-" not in fields:
                continue
            separator = fields.index("-")
            major, minor = (int(part) for part in fields[2].split(":"))
            mount_point = fields[4].replace("\\040", " ")
            entries.append(MountEntry(major, minor, mount_point, fields[separator + 2], fields[separator + 1]))
    return entries


def read_swaps(path: str = "/proc/swaps") -> list[str]:
    """Active swap areas (device or file paths)."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()[1:]
    except OSError:
        return []
    return [line.split()[0].replace("\\040", " ") for line in lines if line.strip()]
