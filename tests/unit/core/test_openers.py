"""The /proc scan for processes holding a disk, over a fake /proc tree (no root needed).

The fake tree's descriptors are symlinks to real device nodes, so the scan ``stat``s them exactly
as it follows /proc/PID/fd links; only the block device it points at has to exist on this machine.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from agent.discovery.openers import Opener, scan_openers


def _a_block_device() -> str | None:
    try:
        entries = sorted(os.scandir("/dev"), key=lambda entry: entry.name)
    except OSError:
        return None
    for entry in entries:
        try:
            if stat.S_ISBLK(entry.stat(follow_symlinks=False).st_mode):
                return entry.path
        except OSError:
            continue
    return None


BLOCK = _a_block_device()
pytestmark = pytest.mark.skipif(BLOCK is None, reason="no block device node in /dev to point fake descriptors at")


class FakeProc:
    """A /proc tree with processes whose descriptors are symlinks."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def process(self, pid: int, comm: str, fds: dict[str, str] | None = None, ppid: int = 1) -> Path:
        directory = self.root / str(pid)
        (directory / "fd").mkdir(parents=True)
        (directory / "comm").write_text(comm + "\n")
        (directory / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0 0 0\n")
        for number, target in (fds or {}).items():
            (directory / "fd" / number).symlink_to(target)
        return directory


@pytest.fixture
def proc(tmp_path: Path) -> FakeProc:
    (tmp_path / "self").mkdir()  # non-numeric entries are not processes
    (tmp_path / "meminfo").write_text("MemTotal: 1 kB\n")
    return FakeProc(tmp_path)


def targets() -> dict[int, str]:
    assert BLOCK is not None
    return {os.stat(BLOCK).st_rdev: "sdz1"}


def test_holder_is_found_by_device_number_with_its_command(proc: FakeProc, tmp_path: Path) -> None:
    assert BLOCK is not None
    link = tmp_path / "by-id-link"
    link.symlink_to(BLOCK)
    proc.process(100, "bash", {"0": "/dev/null", "1": "/dev/null"})
    proc.process(200, "dd", {"0": "/dev/null", "3": str(link), "4": BLOCK})
    scan = scan_openers(targets(), proc=str(proc.root))
    assert scan.openers == (Opener(200, "dd", "sdz1", probe=False),)
    assert scan.openers[0].describe() == "pid 200 (dd)"
    assert not scan.only_probes and scan.uninspected == ()


def test_a_character_device_with_the_same_numbers_is_not_a_holder(proc: FakeProc) -> None:
    null = os.stat("/dev/null").st_rdev
    proc.process(300, "cat", {"0": "/dev/null"})
    assert scan_openers({null: "not-a-disk"}, proc=str(proc.root)).openers == ()


def test_ignored_pids_and_empty_targets(proc: FakeProc) -> None:
    assert BLOCK is not None
    proc.process(400, "python3", {"5": BLOCK})
    assert scan_openers(targets(), ignore_pids={400}, proc=str(proc.root)).openers == ()
    assert scan_openers({}, proc=str(proc.root)).openers == ()


def test_udev_workers_their_children_and_blkid_are_probes(proc: FakeProc) -> None:
    assert BLOCK is not None
    proc.process(500, "(udev-worker)", {"7": BLOCK})
    proc.process(501, "ata_id", {"3": BLOCK}, ppid=500)  # IMPORT{program} started by the worker
    proc.process(502, "blkid", {"3": BLOCK}, ppid=1)
    proc.process(503, "systemd-udevd", {})
    scan = scan_openers(targets(), proc=str(proc.root))
    assert [(o.pid, o.probe) for o in scan.openers] == [(500, True), (501, True), (502, True)]
    assert scan.only_probes
    proc.process(504, "qemu) (x", {"12": BLOCK}, ppid=1)  # ")" and spaces in comm: the parent is still 1
    scan = scan_openers(targets(), proc=str(proc.root))
    assert [(o.pid, o.probe) for o in scan.openers][-1] == (504, False)
    assert not scan.only_probes


def test_vanished_processes_and_descriptors_are_skipped(proc: FakeProc, tmp_path: Path) -> None:
    assert BLOCK is not None
    (proc.root / "600").mkdir()  # exited between listing /proc and opening its fd directory
    gone = proc.process(601, "gone", {"3": str(tmp_path / "closed-meanwhile")})  # dangling: closed
    (gone / "comm").unlink()
    odd = proc.root / "602"
    odd.mkdir()
    (odd / "fd").write_text("")  # not a directory
    proc.process(603, "reader", {"3": BLOCK})
    scan = scan_openers(targets(), proc=str(proc.root))
    assert [o.pid for o in scan.openers] == [603] and scan.uninspected == ()


def test_a_holder_whose_comm_vanished_is_still_reported(proc: FakeProc) -> None:
    assert BLOCK is not None
    directory = proc.process(700, "imager", {"3": BLOCK})
    (directory / "comm").unlink()
    (directory / "stat").unlink()
    assert scan_openers(targets(), proc=str(proc.root)).openers == (Opener(700, "?", "sdz1", probe=False),)


def test_memory_mappings_only_when_asked(proc: FakeProc) -> None:
    assert BLOCK is not None
    directory = proc.process(800, "mapper", {"0": "/dev/null"})
    (directory / "maps").write_text(
        "55d0c0000000-55d0c0001000 r--p 00000000 fe:00 1234 /usr/bin/mapper\n"
        "7f0000000000-7f0000001000 r--s 00000000 00:05 77 /dev/sdz1\n"
        "7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]\n")
    (directory / "map_files").mkdir()
    (directory / "map_files" / "55d0c0000000-55d0c0001000").symlink_to("/dev/null")
    (directory / "map_files" / "7f0000000000-7f0000001000").symlink_to(BLOCK)
    assert scan_openers(targets(), proc=str(proc.root)).openers == ()
    scan = scan_openers(targets(), mappings=True, proc=str(proc.root))
    assert scan.openers == (Opener(800, "mapper", "sdz1", probe=False, how="mapping"),)
