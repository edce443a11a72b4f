"""Hot-plug drive events: a pyudev netlink monitor behind a small, select()-able source.

The daemon sees only :class:`DriveEvent` (never pyudev types). A drive is *inserted* when a whole
disk with a medium appears — an ``add``, or a ``change`` in which the size goes from 0 to non-zero
(card readers, USB docks, ``losetup``) — and *removed* on ``remove`` or a ``change`` to size 0.

pyudev pitfall (HARDWARE-TESTING.md): ``Monitor.poll(timeout)`` may return ``None`` early when an
event the library filters out arrives. So no library-side filter is installed: the fd is
``select``-ed by the daemon's loop, every readable message is drained with ``poll(0)`` and filtered
here, and the loop — not one poll — owns the deadline.

:class:`PipeDriveSource` is the test fake (ARCHITECTURE seam 2): events pushed from a test wake
the same ``select`` through a pipe.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

INSERTED = "inserted"
REMOVED = "removed"
SYS_BLOCK = Path("/sys/block")


@dataclass(frozen=True)
class DriveEvent:
    """A whole disk appeared or went away."""

    action: str  # INSERTED | REMOVED
    name: str  # kernel name, e.g. sda, nvme0n1, loop3
    device_path: str  # /dev/<name>
    properties: Mapping[str, str] = field(default_factory=dict)
    size_bytes: int = 0
    source: str = "udev"  # udev | kernel | scan | fake


class DriveSource(Protocol):
    """What the daemon needs from a drive-event source."""

    def fileno(self) -> int:
        """A descriptor that becomes readable when :meth:`read` has events."""
        ...

    def scan(self) -> list[DriveEvent]:
        """Every drive present now, as ``inserted`` events (the initial scan)."""
        ...

    def read(self) -> list[DriveEvent]:
        """Events available now; never blocks."""
        ...

    def resync(self) -> list[DriveEvent]:
        """Events that bring the reported state back in line with the system (after lost events)."""
        ...

    def close(self) -> None:
        """Release the descriptor."""
        ...


def _size_bytes(name: str, sys_block: Path = SYS_BLOCK) -> int:
    try:
        return int((sys_block / name / "size").read_text().strip() or 0) * 512
    except (OSError, ValueError):
        return 0


def station_properties(name: str, properties: Mapping[str, str], sys_block: Path = SYS_BLOCK) -> dict[str, str]:
    """udev properties plus ``WIPE_*`` ones bays can match without udevd (kernel name, loop backing file)."""
    merged = {str(key): str(value) for key, value in properties.items()}
    merged["WIPE_KERNEL_NAME"] = name
    try:
        backing = (sys_block / name / "loop" / "backing_file").read_text().strip()
    except OSError:
        backing = ""
    if backing:
        merged["WIPE_BACKING_FILE"] = backing
    return merged


def _diskseq(name: str, sys_block: Path = SYS_BLOCK) -> int | None:
    try:
        return int((sys_block / name / "diskseq").read_text().strip())
    except (OSError, ValueError):
        return None  # kernels before 5.15


class PresenceTracker:
    """Turns raw add/change/remove of whole disks into inserted/removed.

    Decided from the device's *current* state in sysfs (size, and ``diskseq``, which the kernel
    bumps for every new medium), never from the event alone: when a loop device or a card reader
    is emptied and refilled before the loop reads the first event, the medium still changed, and
    that must read as removed + inserted, not as nothing.
    """

    def __init__(self) -> None:
        self.present: dict[str, int | None] = {}  # name → diskseq of the medium we reported

    def update(self, action: str, name: str, size: int, diskseq: int | None = None) -> list[str]:
        """The drive-level meanings of one raw event (possibly removed then inserted)."""
        known = name in self.present
        if action == "remove" or size == 0:
            if known:
                del self.present[name]
                return [REMOVED]
            return []
        if not known:
            self.present[name] = diskseq
            return [INSERTED]
        if diskseq is not None and self.present[name] is not None and diskseq != self.present[name]:
            self.present[name] = diskseq
            return [REMOVED, INSERTED]
        return []


class UdevDriveSource:
    """Real events from the kernel (``source="kernel"``) or from udevd (``source="udev"``)."""

    def __init__(self, source: str = "udev") -> None:
        import pyudev

        if source not in ("udev", "kernel"):
            raise ValueError(f"source must be 'udev' or 'kernel', got {source!r}")
        self.source = source
        self._context = pyudev.Context()
        self._monitor = pyudev.Monitor.from_netlink(self._context, source=source)
        try:
            # bursts (a dock with many drives, other loop users) must not overflow the default ~200 KiB
            self._monitor.set_receive_buffer_size(8 << 20)
        except (OSError, pyudev.DeviceNotFoundError, AttributeError):
            pass  # without CAP_NET_ADMIN the kernel keeps its default; resync() heals any loss
        self._monitor.start()
        self._tracker = PresenceTracker()

    def fileno(self) -> int:
        """The netlink socket."""
        return int(self._monitor.fileno())

    def scan(self) -> list[DriveEvent]:
        """Whole disks with a medium present now."""
        events: list[DriveEvent] = []
        for device in self._context.list_devices(subsystem="block", DEVTYPE="disk"):
            events.extend(self._events(device, "scan", "scan"))
        return events

    def resync(self) -> list[DriveEvent]:
        """Compare sysfs with what was reported and emit the difference (a dropped netlink event heals here)."""
        events: list[DriveEvent] = []
        try:
            names = {entry.name for entry in SYS_BLOCK.iterdir()}
        except OSError:
            return events
        for name in sorted(set(self.present_names()) - names):
            events.append(DriveEvent(REMOVED, name, f"/dev/{name}", {"WIPE_KERNEL_NAME": name}, 0, "resync"))
            self._tracker.present.pop(name, None)
        for device in self._context.list_devices(subsystem="block", DEVTYPE="disk"):
            events.extend(self._events(device, "change", "resync"))
        return events

    def present_names(self) -> list[str]:
        """Kernel names of the drives currently reported as present."""
        return list(self._tracker.present)

    def _events(self, device: object, action: str, origin: str) -> list[DriveEvent]:
        if self.source == "udev" and origin in ("scan", "resync") and not getattr(device, "is_initialized", True):
            # udevd has not processed this disk yet: its properties (ID_SERIAL_SHORT, ID_PATH…) are
            # missing and no bay would match; udevd's own "add" event reports it complete shortly
            return []
        sys_path = getattr(device, "sys_path", "")
        name = os.path.basename(sys_path)
        size = _size_bytes(name) if action != "remove" else 0
        meanings = self._tracker.update(action, name, size, _diskseq(name) if action != "remove" else None)
        if not meanings:
            return []
        raw = getattr(device, "properties", {})
        properties = station_properties(name, {str(key): str(raw[key]) for key in raw})
        node = getattr(device, "device_node", None) or f"/dev/{name}"
        return [DriveEvent(meaning, name, str(node), properties, size if meaning == INSERTED else 0, origin)
                for meaning in meanings]

    def read(self) -> list[DriveEvent]:
        """Drain what the socket holds now (poll(0) until empty), keeping whole-disk block events."""
        events: list[DriveEvent] = []
        for _ in range(256):  # bounded: a storm of events cannot starve the rest of the loop
            device = self._monitor.poll(timeout=0)
            if device is None:
                break
            if device.subsystem != "block" or device.device_type != "disk":
                continue
            events.extend(self._events(device, str(device.action or "change"), self.source))
        return events

    def close(self) -> None:
        """Stop the monitor (closes the netlink socket)."""
        try:
            self._monitor.stop()
        except Exception:
            pass


class PipeDriveSource:
    """Test fake: events pushed by a test wake ``select`` through a pipe, like the real socket."""

    def __init__(self, initial: list[DriveEvent] | None = None) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        self._initial = list(initial or [])
        self._queue: list[DriveEvent] = []
        self._lock = threading.Lock()

    def fileno(self) -> int:
        """The pipe's read end."""
        return self._read_fd

    def push(self, event: DriveEvent) -> None:
        """Deliver an event (from any thread)."""
        with self._lock:
            self._queue.append(event)
        os.write(self._write_fd, b"x")

    def scan(self) -> list[DriveEvent]:
        """The drives the fake was created with."""
        return list(self._initial)

    def resync(self) -> list[DriveEvent]:
        """Nothing is ever lost in a pipe."""
        return []

    def read(self) -> list[DriveEvent]:
        """Pushed events, in order."""
        try:
            while os.read(self._read_fd, 4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            events, self._queue = self._queue, []
        return events

    def close(self) -> None:
        """Close both ends."""
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
