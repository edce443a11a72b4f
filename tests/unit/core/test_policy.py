"""Method selection: reasons recorded, purge never falls back to overwrite."""

from __future__ import annotations

import pytest

from agent.discovery.identity import DriveIdentity
from agent.methods.base import Level, Target
from agent.policy.profiles import load_profile
from agent.policy.select import NoMethod, select_method


def identity(media: str, transport: str) -> DriveIdentity:
    return DriveIdentity(
        path="/dev/x", name="x", by_id=None, model="M", serial="S", firmware=None, vendor=None,
        size_bytes=1 << 30, logical_sector=512, physical_sector=512, rotational=media == "hdd",
        transport=transport, media=media, removable=False, read_only=False, id_path=None,
    )


def test_clear_profile_on_flash_says_clear_only() -> None:
    selection = select_method(load_profile("nist-clear-overwrite"), Target(identity("ssd", "sata")))
    assert selection.method.name == "overwrite.zero"
    assert selection.applicability.level is Level.CLEAR
    assert "spare blocks" in selection.applicability.reason


@pytest.mark.parametrize(("media", "transport"), [("ssd", "nvme"), ("ssd", "sata"), ("hdd", "scsi")])
def test_purge_refuses_without_firmware_method_and_never_overwrites(media: str, transport: str) -> None:
    with pytest.raises(NoMethod, match="no purge method available for this drive") as caught:
        select_method(load_profile("nist-purge"), Target(identity(media, transport)))
    assert all(not decision.taken for decision in caught.value.decisions)
    assert all(not decision.method.startswith("overwrite") for decision in caught.value.decisions)
    assert len(caught.value.decisions) == len(load_profile("nist-purge").steps)


def test_profile_media_mismatch() -> None:
    with pytest.raises(NoMethod, match="does not take virtual media"):
        select_method(load_profile("nist-purge"), Target(identity("virtual", "virtual")))
