"""Inside the guest, driven by the host: a udev monitor sees a hot-plugged NVMe drive arrive and
then leave. Protocol: we create /results/hotplug-listening once the monitor runs, the host plugs
the drive; we create /results/hotplug-added when udev reported it, the host unplugs it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import pyudev

TIMEOUT = 60.0


def _wait_for_event(monitor: pyudev.Monitor, action: str, serial: str) -> pyudev.Device:
    # Loop to a deadline: with a subsystem filter, poll() may return None early.
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        device = monitor.poll(timeout=max(deadline - time.monotonic(), 0.1))
        if device is None or device.action != action or device.device_type != "disk":
            continue
        if device.properties.get("ID_SERIAL_SHORT") == serial or (
            action == "remove" and device.sys_name.startswith("nvme")
        ):
            return device
    raise TimeoutError(f"no udev {action} for {serial} within {TIMEOUT} s")


def test_hotplugged_nvme_comes_and_goes(results_directory: Path) -> None:
    serial = os.environ.get("WIPE_AGENT_HOTPLUG_SERIAL")
    if not serial:
        pytest.fail("the host sets WIPE_AGENT_HOTPLUG_SERIAL")
    context = pyudev.Context()
    monitor = pyudev.Monitor.from_netlink(context, source="udev")
    monitor.filter_by("block")
    monitor.start()
    (results_directory / "hotplug-listening").touch()

    added = _wait_for_event(monitor, "add", serial)
    assert added.sys_name.startswith("nvme")
    assert Path(added.device_node).is_block_device()
    name = added.sys_name
    (results_directory / "hotplug-added").write_text(name)

    removed = _wait_for_event(monitor, "remove", serial)
    assert removed.sys_name == name
    assert not Path("/sys/block", name).exists()
