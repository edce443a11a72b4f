"""The only importer of pyudev: enumerate whole disks and (later) watch hot-plug events.

Nothing above ``agent.discovery`` sees pyudev types: callers get :class:`DriveIdentity`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pyudev

from agent.discovery import sysfs
from agent.discovery.identity import DriveIdentity, identity_from
from agent.errors import DriveNotFound

_shared: pyudev.Context | None = None
_lock = threading.Lock()


def _after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # a fork while another thread held it must not leave the child stuck


os.register_at_fork(after_in_child=_after_fork)


@contextmanager
def _context(given: pyudev.Context | None) -> Iterator[pyudev.Context]:
    """The caller's context, else one per process, used by one thread at a time (libudev is not thread-safe).

    Why shared: every ``pyudev.Context()`` runs ``find_library``, i.e. a ``ldconfig -p`` subprocess;
    on a station starting eight jobs on two cores that was a measurable share of each job's start.
    A forked worker inherits the loaded library and the context with it (libudev contexts hold no
    descriptors), so it starts without a subprocess at all.
    """
    global _shared
    if given is not None:
        yield given
        return
    with _lock:
        if _shared is None:
            _shared = pyudev.Context()
        yield _shared


def _properties(device: pyudev.Device) -> dict[str, str]:
    return {str(key): str(device.properties[key]) for key in device.properties}


def enumerate_drives(context: pyudev.Context | None = None) -> list[DriveIdentity]:
    """Every whole-disk block device with a medium, with its identity."""
    drives: list[DriveIdentity] = []
    with _context(context) as udev:
        for device in udev.list_devices(subsystem="block", DEVTYPE="disk"):
            node = device.device_node
            if node is None:
                continue
            name = os.path.basename(device.sys_path)
            facts = sysfs.sysfs_facts(name)
            if facts.size_bytes == 0:
                continue  # unbound loop devices, empty card readers
            drives.append(identity_from(node, _properties(device), facts))
    return sorted(drives, key=lambda drive: drive.name)


def identify(path: str, context: pyudev.Context | None = None) -> DriveIdentity:
    """Identity of one device node (by-id links are followed)."""
    real = os.path.realpath(path)
    with _context(context) as udev:
        try:
            device = pyudev.Devices.from_device_file(udev, real)
        except (pyudev.DeviceNotFoundError, OSError, ValueError) as exc:
            raise DriveNotFound(f"{path}: no such block device") from exc
        if device.subsystem != "block":
            raise DriveNotFound(f"{path}: not a block device")
        name = os.path.basename(device.sys_path)
        properties = _properties(device)
    return identity_from(real, properties, sysfs.sysfs_facts(name))
