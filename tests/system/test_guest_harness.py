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


def test_waiting_for_a_file_fails_at_once_when_its_writer_died(guest_factory: Callable[..., Guest]) -> None:
    guest = guest_factory()
    writer = guest.spawn("echo 'cannot get ready' >&2; exit 3")
    started = time.monotonic()
    with pytest.raises(GuestError, match=r"exited 3 without creating /results/ready-flag(.|\n)*cannot get ready"):
        guest.wait_for_file("ready-flag", timeout=120, process=writer)
    assert time.monotonic() - started < 30
    assert guest.running  # a failed command does not take the guest down
    assert guest.run("true").exit_code == 0
