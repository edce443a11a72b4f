"""Host-side fixtures for system tests: a prepared QEMU guest image (kernel + initramfs).

Tests here are marked ``system``. They skip with a reason when not root or when QEMU/the kernel
cannot be prepared, unless ``WIPE_AGENT_REQUIRE_SYSTEM=1`` (CI): then that is a failure. Missing
Debian packages are installed from a test run only with ``WIPE_AGENT_REQUIRE_SYSTEM=1`` or
``WIPE_AGENT_GUEST_INSTALL=1``; otherwise run ``tests/system/build_guest.sh`` once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.system.qemu import Drive, Guest, GuestImage, GuestUnavailable, prepare_guest

REQUIRE_SYSTEM = os.environ.get("WIPE_AGENT_REQUIRE_SYSTEM") == "1"
# A test run installs Debian packages only where that is expected (CI), never by surprise on a
# developer's machine: there the tests skip and name the command to run.
INSTALL_PACKAGES = REQUIRE_SYSTEM or os.environ.get("WIPE_AGENT_GUEST_INSTALL") == "1"


def _unavailable(reason: str) -> None:
    if REQUIRE_SYSTEM:
        pytest.fail(f"system tests required (WIPE_AGENT_REQUIRE_SYSTEM=1) but: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def guest_image() -> GuestImage:
    """Kernel, initramfs and module tree for guests; built once, cached on disk (build_guest.sh)."""
    if os.geteuid() != 0:
        _unavailable("system tests need root (QEMU shares / with the guest; build_guest.sh uses apt)")
    if os.environ.get("WIPE_AGENT_IN_GUEST") == "1":
        _unavailable("already inside a system-test guest: no nested guests")
    try:
        return prepare_guest(install=INSTALL_PACKAGES)
    except GuestUnavailable as exc:
        _unavailable(f"cannot prepare the QEMU guest: {exc}")
        raise  # unreachable: _unavailable raises


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every host-side test under tests/system is a ``system`` test, marked or not."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents and here / "guest" not in item.path.parents:
            item.add_marker(pytest.mark.system)


@pytest.fixture
def guest_factory(guest_image: GuestImage) -> Iterator[Callable[..., Guest]]:
    """Start guests (``guest_factory(drives, **Guest options)``, already booted); all are killed
    and cleaned up when the test ends, whatever happened."""
    started: list[Guest] = []

    def start(drives: Sequence[Drive] = (), **options: Any) -> Guest:
        guest = Guest(drives, image=guest_image, **options)
        started.append(guest)
        try:
            guest.start()
        except GuestUnavailable as exc:  # e.g. init="systemd" without the host's systemd package
            _unavailable(f"cannot prepare the QEMU guest: {exc}")
        return guest

    yield start
    for guest in started:
        guest.close()
