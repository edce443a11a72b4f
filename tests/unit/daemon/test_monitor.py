"""Drive events: presence by medium size, the pipe-backed fake, WIPE_* properties."""

from __future__ import annotations

import select
from pathlib import Path

from agent.discovery.monitor import INSERTED, REMOVED, DriveEvent, PipeDriveSource, PresenceTracker, station_properties


def test_change_events_with_media_count_as_insert_and_remove() -> None:
    tracker = PresenceTracker()
    assert tracker.update("add", "loop3", 0) == []  # LOOP_CTL_ADD: a device without a medium
    assert tracker.update("change", "loop3", 1 << 20, 7) == [INSERTED]  # losetup attaches a file
    assert tracker.update("change", "loop3", 1 << 20, 7) == []  # partition rescan and the like
    assert tracker.update("change", "loop3", 0) == [REMOVED]  # losetup -d / card pulled from the reader
    assert tracker.update("remove", "loop3", 0) == []
    assert tracker.update("add", "sdb", 1 << 30, None) == [INSERTED]
    assert tracker.update("remove", "sdb", 0) == [REMOVED]


def test_a_new_medium_seen_late_is_removed_then_inserted() -> None:
    tracker = PresenceTracker()
    assert tracker.update("change", "loop8", 1 << 20, 41) == [INSERTED]
    # detached and re-attached to another file before the loop read the detach event: diskseq moved on
    assert tracker.update("change", "loop8", 1 << 20, 44) == [REMOVED, INSERTED]
    assert tracker.update("change", "loop8", 1 << 20, 44) == []


def test_pipe_source_wakes_select_and_keeps_order() -> None:
    first = DriveEvent(INSERTED, "sdz", "/dev/sdz", {"ID_PATH": "p"}, 1, "fake")
    source = PipeDriveSource(initial=[first])
    try:
        assert source.scan() == [first]
        assert select.select([source.fileno()], [], [], 0)[0] == []
        second = DriveEvent(REMOVED, "sdz", "/dev/sdz", {}, 0, "fake")
        source.push(second)
        source.push(first)
        assert select.select([source.fileno()], [], [], 1)[0] == [source.fileno()]
        assert source.read() == [second, first]
        assert source.read() == []
    finally:
        source.close()


def test_station_properties_add_kernel_name_and_backing_file(tmp_path: Path) -> None:
    (tmp_path / "loop7" / "loop").mkdir(parents=True)
    (tmp_path / "loop7" / "loop" / "backing_file").write_text("/dev/shm/disk.img\n")
    merged = station_properties("loop7", {"DEVNAME": "/dev/loop7"}, tmp_path)
    assert merged == {"DEVNAME": "/dev/loop7", "WIPE_KERNEL_NAME": "loop7", "WIPE_BACKING_FILE": "/dev/shm/disk.img"}
    assert "WIPE_BACKING_FILE" not in station_properties("sda", {}, tmp_path)
