"""The guard on real devices: each refusal has its reason and leaves every byte unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.discovery.guard import Authorisation, Guard
from agent.discovery.sysfs import whole_disk_of
from agent.errors import DriveProtected
from tests.conftest import LoopDevice, run_cli

pytestmark = pytest.mark.root


def digest(device: LoopDevice) -> str:
    return hashlib.sha256(device.backing.read_bytes()).hexdigest()


def refused(device_path: str, expected: str) -> dict:
    result = run_cli("wipe", device_path, "--profile", "nist-clear-overwrite", "--yes", "--json")
    data = json.loads(result.stdout)
    assert result.returncode == 2, data
    assert data["outcome"] == "refused" and data["error"]["code"] == "drive_protected"
    assert expected in data["reason"], data["reason"]
    # the journal proves nothing destructive started: no "running" state, nothing written
    events = json.loads(run_cli("job", data["job_id"], "--json", "--events", check=True).stdout)["events"]
    assert [event["state"] for event in events] == ["created", "checking", "refused"]
    assert data["bytes_written"] == 0 and data["method"] is None
    return data


@pytest.fixture
def mounted(loop_factory: Callable[..., LoopDevice], tmp_path: Path) -> Iterator[LoopDevice]:
    device = loop_factory(32 << 20, fill=b"\0")
    subprocess.run(["mkfs.ext4", "-q", "-F", device.path], check=True)
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    subprocess.run(["mount", device.path, str(mount_point)], check=True)
    (mount_point / "evidence.txt").write_text("must survive")
    subprocess.run(["sync"], check=True)
    try:
        yield device
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_mounted_filesystem_is_refused(mounted: LoopDevice, state_dir: Path) -> None:
    before = digest(mounted)
    refused(mounted.path, "holds a mounted filesystem")
    assert digest(mounted) == before


def test_active_swap_is_refused(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    device = loop_factory(32 << 20, fill=b"\0")
    subprocess.run(["mkswap", device.path], check=True, capture_output=True)
    swap = subprocess.run(["swapon", device.path], capture_output=True, text=True)
    if swap.returncode != 0:
        pytest.skip(f"swapon is not permitted on this kernel/container: {swap.stderr.strip()}")
    try:
        # no byte comparison here: the kernel itself may page out to this swap area at any time
        refused(device.path, "active swap")
    finally:
        subprocess.run(["swapoff", device.path], check=False)


def test_read_only_device_is_refused(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    device = loop_factory(8 << 20, read_only=True)
    before = digest(device)
    refused(device.path, "read-only")
    assert digest(device) == before


def test_busy_device_is_refused(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    device = loop_factory(8 << 20)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY | os.O_EXCL); print('held', flush=True); "
         "time.sleep(60)", device.path],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = digest(device)
        refused(device.path, "busy")
        assert digest(device) == before
    finally:
        holder.kill()
        holder.communicate()


def test_system_disk_is_refused(state_dir: Path) -> None:
    # stat, not mountinfo: inside a chroot the root is not a mount point of its own
    number = os.stat("/").st_dev
    disk = whole_disk_of(os.major(number), os.minor(number)) if os.major(number) else None
    if disk is None:
        pytest.skip("/ is not on a block device here (overlay or tmpfs root)")
    result = Guard().assess(f"/dev/{disk}")
    assert result.protected and any("backs /" in reason for reason in result.reasons)
    refused(f"/dev/{disk}", "the station's own system disk")


def test_partition_is_refused(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    device = loop_factory(16 << 20, fill=b"\0")
    subprocess.run(["sfdisk", "-q", device.path], input="start=2048, size=8192\n", text=True, check=True,
                   capture_output=True)
    subprocess.run(["partx", "-a", device.path], check=False, capture_output=True)
    partition = f"{device.path}p1"
    for _ in range(50):
        if os.path.exists(partition):
            break
        time.sleep(0.1)
    if not os.path.exists(partition):
        pytest.skip("the kernel did not create the partition node (no udev/devtmpfs update)")
    assert "partition" in " ".join(Guard().assess(partition).reasons)


def test_unauthorised_device_is_refused(loop_factory: Callable[..., LoopDevice]) -> None:
    named, other = loop_factory(8 << 20), loop_factory(8 << 20)
    before = digest(other)
    with pytest.raises(DriveProtected, match="not authorised"):
        Guard().acquire(other.path, Authorisation(named.path, "tester"))
    assert digest(other) == before


def test_acquire_holds_o_excl_for_the_job(loop_factory: Callable[..., LoopDevice]) -> None:
    device = loop_factory(8 << 20)
    with Guard().acquire(device.path, Authorisation(device.path, "tester")) as handle:
        assert handle.direct
        with pytest.raises(OSError):
            os.close(os.open(device.path, os.O_RDONLY | os.O_EXCL))
        # and mounting is refused while we hold it
        assert subprocess.run(["mount", device.path, "/mnt"], capture_output=True).returncode != 0


def test_drives_command_shows_protection(loop_factory: Callable[..., LoopDevice]) -> None:
    device = loop_factory(8 << 20)
    rows = json.loads(run_cli("drives", "--json", check=True).stdout)["drives"]
    by_path = {row["path"]: row for row in rows}
    assert by_path[device.path]["protected"] is False
    assert by_path[device.path]["transport"] == "virtual"
    if os.major(os.stat("/").st_dev):
        assert any(row["protected"] and any("backs /" in r for r in row["reasons"]) for row in rows)


def test_loop_devices_stacked_on_each_other_are_refused_both_ways(loop_factory: Callable[..., LoopDevice]) -> None:
    # a loop device reads and writes its backing device like a file: no holder link, no O_EXCL claim
    lower = loop_factory(16 << 20)
    upper = subprocess.run(["losetup", "--find", "--show", lower.path], check=True, capture_output=True,
                           text=True).stdout.strip()
    try:
        before = digest(lower)
        assert any("loop device over the block device" in r for r in Guard().assess(upper).reasons)
        assert any("backs loop device" in r for r in Guard().assess(lower.path).reasons)
        for target in (upper, lower.path):
            with pytest.raises(DriveProtected):
                Guard().acquire(target, Authorisation(target, "tester")).close()
        assert digest(lower) == before
    finally:
        subprocess.run(["losetup", "-d", upper], check=False)
