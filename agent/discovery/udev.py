"""The only importer of pyudev: enumerate whole disks and (later) watch hot-plug events.

Nothing above ``agent.discovery`` sees pyudev types: callers get :class:`DriveIdentity`.
"""

from __future__ import annotations

import os

import pyudev

from agent.discovery import sysfs
from agent.discovery.identity import DriveIdentity, identity_from
from agent.errors import DriveNotFound


def _properties(device: pyudev.Device) -> dict[str, str]:
    return {str(key): str(device.properties[key]) for key in device.properties}


def enumerate_drives(context: pyudev.Context | None = None) -> list[DriveIdentity]:
    """Every whole-disk block device with a medium, with its identity."""
    context = context or pyudev.Context()
    drives: list[DriveIdentity] = []
    for device in context.list_devices(subsystem="block", DEVTYPE="disk"):
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
    context = context or pyudev.Context()
    real = os.path.realpath(path)
    try:
        device = pyudev.Devices.from_device_file(context, real)
    except (pyudev.DeviceNotFoundError, OSError, ValueError) as exc:
        raise DriveNotFound(f"{path}: no such block device") from exc
    if device.subsystem != "block":
        raise DriveNotFound(f"{path}: not a block device")
    name = os.path.basename(device.sys_path)
    return identity_from(real, _properties(device), sysfs.sysfs_facts(name))
