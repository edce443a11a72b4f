"""Host-side fixtures for system tests: a prepared QEMU guest image (kernel + initramfs).

Tests here are marked ``system``. They skip with a reason when not root or when QEMU/the kernel
cannot be prepared, unless ``WIPE_AGENT_REQUIRE_SYSTEM=1`` (CI): then that is a failure.
"""

from __future__ import annotations

import os

import pytest

from tests.system.qemu import GuestImage, GuestUnavailable, prepare_guest

REQUIRE_SYSTEM = os.environ.get("WIPE_AGENT_REQUIRE_SYSTEM") == "1"


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
        return prepare_guest()
    except GuestUnavailable as exc:
        _unavailable(f"cannot prepare the QEMU guest: {exc}")
        raise  # unreachable: _unavailable raises
