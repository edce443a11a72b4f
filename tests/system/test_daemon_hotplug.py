"""The station daemon in a real 6.1 kernel with real udev: QMP hot-plug starts a wipe by itself;
``device_del`` mid-wipe fails that job only, while the other bay finishes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.system.qemu import Guest, Nvme

pytestmark = pytest.mark.system


@pytest.mark.timeout(900)
def test_hotplug_wipe_and_pull_mid_wipe(guest_factory: Callable[..., Guest]) -> None:
    guest = guest_factory([], timeout=800)
    monitor = guest.spawn([*guest.pytest_command(), "tests/system/guest/test_guest_daemon_hotplug.py"])
    guest.wait_for_file("daemon-ready", timeout=240)
    big = guest.hotplug(Nvme(size="1G", serial="DAEMONBIG"))
    guest.wait_for_file("big-running", timeout=300)
    small = guest.hotplug(Nvme(size="32M", serial="DAEMONSMALL"))
    guest.unplug(big)  # the drive pulled from bay-1 in the middle of its wipe
    result = monitor.wait(timeout=400)
    log = guest.share / "daemon.log"
    assert result.exit_code == 0, result.output + (log.read_text() if log.exists() else "")
    guest.shutdown()
    with open(guest.image(small), "rb") as image:  # read back on the host: the small drive is zeroed
        while chunk := image.read(4 << 20):
            assert chunk.count(0) == len(chunk)
