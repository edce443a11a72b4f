"""The daemon's bays get the same guard by kernel identity as the CLI (issue 12): one image, two loops."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.discovery.guard import Guard
from agent.store.registry import Registry
from tests.integration.daemon.conftest import Daemon

pytestmark = pytest.mark.root

MiB = 1 << 20


def _bay(status: dict[str, Any], bay: str) -> dict[str, Any]:
    return next(entry for entry in status["bays"] if entry["name"] == bay)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_bay_drive_sharing_its_image_with_a_mounted_loop_is_refused(station: Callable[..., Daemon],
                                                                      tmp_path: Path) -> None:
    daemon = station([32 * MiB])
    backing = daemon.backings[0]
    # before the bay's drive arrives, someone attaches the same image elsewhere and mounts it
    other = subprocess.run(["losetup", "--find", "--show", str(backing.path)], check=True, capture_output=True,
                           text=True).stdout.strip()
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    try:
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", other], check=True,
                       capture_output=True)
        subprocess.run(["mount", other, str(mount_point)], check=True, capture_output=True)
        try:
            (mount_point / "evidence.txt").write_text("must survive")
            subprocess.run(["fsfreeze", "-f", str(mount_point)], check=True)
            try:
                before = _sha256(backing.path)
                daemon.start()
                backing.attach()
                status = daemon.wait_for(
                    lambda s: bool(_bay(s, "bay-1")["drive"]) and bool(_bay(s, "bay-1")["drive"]["protected"]),
                    timeout=15, what="protected drive in bay-1")
                # the bay matches by backing file, so it may show either loop over the image: both are refused
                reasons = " ".join(_bay(status, "bay-1")["drive"]["protected"])
                assert (f"shares its backing file with loop device {Path(other).name}" in reasons
                        or f"holds a mounted filesystem ({other} on" in reasons), reasons
                assert backing.device is not None
                own = " ".join(Guard().assess(backing.device).reasons)
                assert f"shares its backing file with loop device {Path(other).name}" in own, own
                assert _bay(status, "bay-1")["job"] is None
                registry = Registry(daemon.state_dir).open()
                try:
                    assert [row.state for row in registry.jobs(10) if row.state != "refused"] == []
                finally:
                    registry.close()
                assert _sha256(backing.path) == before
            finally:
                subprocess.run(["fsfreeze", "-u", str(mount_point)], check=False)
            assert (mount_point / "evidence.txt").read_text() == "must survive"
        finally:
            subprocess.run(["umount", str(mount_point)], check=False, capture_output=True)
    finally:
        subprocess.run(["losetup", "-d", other], check=False, capture_output=True)
