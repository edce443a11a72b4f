"""The medium binding's comparison and the open-error routes, without devices (runs as any user)."""

from __future__ import annotations

import dataclasses
import errno
import os
from pathlib import Path

import pytest

from agent.contracts import Route
from agent.discovery.medium import LoopBinding, MediumInstance, changes
from agent.errors import DriveBusy, DriveError, DriveNotFound, MediaError
from agent.transport.block import BlockDevice

BOUND = MediumInstance("/dev/loop3", "loop3", os.makedev(7, 3), 41, 1 << 30, None, None, None,
                       LoopBinding(os.makedev(0, 27), 1234, 0, 0, 0))


def test_the_same_medium_has_no_changes() -> None:
    assert changes(BOUND, dataclasses.replace(BOUND), "during the job") == []


def test_each_difference_is_one_line_saying_what_changed() -> None:
    other = dataclasses.replace(BOUND, diskseq=42, size_bytes=2 << 30, serial="S2",
                                loop=LoopBinding(os.makedev(0, 27), 999, 0, 0, 0))
    assert changes(BOUND, other, "during the job") == [
        "diskseq changed 41 → 42 during the job: another medium is at /dev/loop3",
        "size changed from 1073741824 to 2147483648 bytes during the job (losetup -c?)",
        "serial changed None → 'S2' during the job",
        "loop backing changed during the job: inode 1234 → 999 (another image is attached at /dev/loop3)",
    ]


def test_device_number_and_loop_offset_are_compared() -> None:
    other = dataclasses.replace(BOUND, device_number=os.makedev(7, 4),
                                loop=LoopBinding(os.makedev(0, 27), 1234, 0, 4096, 0))
    found = changes(BOUND, other, "now")
    assert found[0] == "device number changed 7:3 → 7:4 now: /dev/loop3 is another device"
    assert found[1] == "loop offset/size limit changed 0/0 → 4096/0 now"


def test_a_capacity_the_job_re_read_itself_is_judged_by_size_alone() -> None:
    # a hidden area restored: the job's BlockDevice.size is the new capacity, the emulated loop's limit grew
    grown = dataclasses.replace(BOUND, size_bytes=2 << 30, loop=LoopBinding(os.makedev(0, 27), 1234, 0, 0, 2 << 30))
    assert changes(BOUND, grown, "after the last write", expected_size=2 << 30) == []
    # the same limit change without the job knowing the new size is a change, twice over
    assert len(changes(BOUND, grown, "after the last write", expected_size=1 << 30)) == 2


def _device(path: str = "/dev/sdz") -> BlockDevice:
    device = BlockDevice.__new__(BlockDevice)
    device.path = path
    return device


@pytest.mark.parametrize("number", [errno.EPERM, errno.ENOMEM, errno.ETXTBSY, errno.EINVAL, errno.EMFILE,
                                    errno.ENOMEDIUM, errno.EOPNOTSUPP, errno.EAGAIN])
def test_an_unrecognised_open_error_is_a_drive_error_never_a_media_error(number: int) -> None:
    error = _device()._map_open_error(OSError(number, os.strerror(number)))
    assert isinstance(error, DriveError) and not isinstance(error, MediaError)
    # no route of its own: the job's outcome table holds it (``exc.route or Route.HOLD``), never destroy
    assert error.route is None and (error.route or Route.HOLD) == Route.HOLD
    assert errno.errorcode[number] in str(error) and "not a medium error" in str(error)


@pytest.mark.parametrize(("number", "kind"), [(errno.EBUSY, DriveBusy), (errno.EROFS, DriveBusy),
                                              (errno.ENXIO, DriveNotFound), (errno.EIO, MediaError)])
def test_known_open_errors_keep_their_meaning(number: int, kind: type[Exception]) -> None:
    assert type(_device()._map_open_error(OSError(number, os.strerror(number)))) is kind


def test_character_aliases_of_scsi_and_nvme_disks_from_sysfs(tmp_path: Path) -> None:
    from agent.discovery.sysfs import character_aliases

    def node(path: Path, number: str) -> None:
        path.mkdir(parents=True)
        (path / "dev").write_text(number + "\n")

    node(tmp_path / "block" / "sdb" / "device" / "scsi_generic" / "sg1", "21:1")
    node(tmp_path / "block" / "sdb" / "device" / "bsg" / "1:0:0:0", "247:1")
    assert character_aliases("sdb", tmp_path) == {os.makedev(21, 1): "sg1", os.makedev(247, 1): "bsg/1:0:0:0"}
    controller = tmp_path / "devices" / "nvme0"
    node(controller, "240:0")
    (tmp_path / "block" / "nvme0n1").mkdir(parents=True)
    (tmp_path / "block" / "nvme0n1" / "device").symlink_to(controller)
    node(tmp_path / "class" / "nvme-generic" / "ng0n1", "239:0")
    assert character_aliases("nvme0n1", tmp_path) == {os.makedev(239, 0): "ng0n1", os.makedev(240, 0): "nvme0"}


def test_a_loop_name_chosen_by_someone_else_is_escaped_in_reasons() -> None:
    from agent.discovery.loops import LoopStatus

    status = LoopStatus("loop4", os.makedev(7, 4), 0, 93, os.makedev(7, 2), 0, 0, "/tmp/x\n\x1b[32mOK ")
    assert status.describe() == "loop4 (over block device 7:2, given as /tmp/x\\x0a\\x1b[32mOK )"


def test_an_io_error_of_a_loop_device_is_never_a_media_error() -> None:
    device = _device("/dev/loop9")
    device.rdev = os.makedev(7, 9)
    device.removal_grace = 0
    setattr(device, "_gone", lambda: False)  # noqa: B010 - still attached
    error = device._io_error(OSError(errno.EIO, os.strerror(errno.EIO)), "write", 4096)
    assert isinstance(error, DriveError) and not isinstance(error, MediaError)
    assert "not a medium error" in str(error)
    other = _device("/dev/sdz")
    other.rdev = os.makedev(8, 16)
    other.removal_grace = 0
    setattr(other, "_gone", lambda: False)  # noqa: B010
    assert isinstance(other._io_error(OSError(errno.EIO, os.strerror(errno.EIO)), "write", 0), MediaError)
