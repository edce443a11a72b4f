"""Inside the guest: write a marker through the real drivers (O_DIRECT, then fsync) to every drive
of the manifest; the host then finds it in the backing images after the VM has exited."""

from __future__ import annotations

import mmap
import os
from typing import Any

import pytest

from tests.system.guest.guestlib import find_block_device

BLOCK = 4096


def test_write_marker_to_every_drive(guest_manifest: dict[str, Any]) -> None:
    marker = os.environ.get("WIPE_AGENT_MARKER")
    if not marker:
        pytest.fail("the host sets WIPE_AGENT_MARKER")
    offset = int(os.environ.get("WIPE_AGENT_MARKER_OFFSET", "0"))
    assert offset % BLOCK == 0
    for drive in guest_manifest["drives"]:
        device = find_block_device(drive["kind"], drive["serial"])
        assert device is not None, drive
        payload = f"{marker}:{drive['serial']}".encode()
        # O_DIRECT needs an aligned buffer: anonymous mmap memory is page-aligned.
        with mmap.mmap(-1, BLOCK) as buffer, mmap.mmap(-1, BLOCK) as readback:
            buffer.write(payload)
            descriptor = os.open(device.node, os.O_RDWR | os.O_DIRECT)
            try:
                assert os.pwrite(descriptor, buffer, offset) == BLOCK
                os.fsync(descriptor)  # a FLUSH to the emulated drive: QEMU writes its image
                assert os.preadv(descriptor, [readback], offset) == BLOCK
            finally:
                os.close(descriptor)
            assert readback[: len(payload)] == payload
