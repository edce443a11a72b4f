"""The harness itself fails fast and cleans up: a QEMU that cannot start, a command that hangs."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.system.qemu import Guest, GuestError, GuestImage, Nvme

pytestmark = pytest.mark.system


def test_qemu_refusing_the_configuration_is_reported_at_once(guest_image: GuestImage) -> None:
    started = time.monotonic()
    guest = Guest([Nvme(serial="BAD", properties={"no_such_property": "1"})], image=guest_image)
    with pytest.raises(GuestError, match="no_such_property"), guest:
        pass
    assert time.monotonic() - started < 30
    assert not guest.running
    assert guest.workdir is not None and not guest.workdir.exists()


def test_hanging_command_kills_the_guest(guest_factory: Callable[..., Guest]) -> None:
    guest = guest_factory([Nvme(size="16M", serial="HANG0001")])
    started = time.monotonic()
    with pytest.raises(GuestError, match="took more than 2 s"):
        guest.run("echo started; sleep 600", timeout=2)
    assert time.monotonic() - started < 20
    assert not guest.running
    with pytest.raises(GuestError, match="not running"):
        guest.run("true")
