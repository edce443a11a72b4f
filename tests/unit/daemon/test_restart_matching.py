"""Which interrupted attempt a newly inserted drive continues: exactly the same drive, never a look-alike."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path

from agent.app import Application
from agent.config import Bay, StationConfig
from agent.daemon.station import BaySlot, Station
from agent.discovery.guard import Assessment
from agent.discovery.identity import DriveIdentity
from agent.discovery.monitor import INSERTED, DriveEvent, PipeDriveSource
from agent.operators import VIA_DAEMON, unnamed_text
from agent.store.registry import Registry

IDENTITY = DriveIdentity(
    path="/dev/sdz", name="sdz", by_id=None, model="TEST DRIVE", serial="SERIAL-1", firmware=None, vendor=None,
    size_bytes=1 << 30, logical_sector=512, physical_sector=512, rotational=True, transport="sata", media="hdd",
    removable=False, read_only=False, id_path=None,
)

# an auto-start job nobody signed in for says so (agent.operators), never "station s1" as if a person
UNNAMED_AUTO_START = unnamed_text(os.geteuid(), VIA_DAEMON)


def _station_with_interrupted(tmp_path: Path, identity: DriveIdentity) -> Station:
    registry = Registry(tmp_path).open()
    job_id = registry.create_job(identity, "nist-purge", "alice", "bay bay-1", "PC-OLD")
    registry.transition(job_id, "interrupted", "owner-gone")
    station = Station.__new__(Station)  # only the matching logic is under test
    station._restart_interrupted = [registry.job(job_id)]
    return station


def _slot(identity: DriveIdentity) -> BaySlot:
    return BaySlot(Bay("bay-1", (("ID_SERIAL_SHORT", identity.serial),), auto_start=True), identity=identity)


def test_same_model_and_serial_is_the_same_drive(tmp_path: Path) -> None:
    station = _station_with_interrupted(tmp_path, IDENTITY)
    restart = station._interrupted_for(_slot(IDENTITY))
    assert restart is not None and restart.asset_tag == "PC-OLD"
    assert station._interrupted_for(_slot(IDENTITY)) is None  # used once


def test_other_model_with_the_same_serial_is_another_drive(tmp_path: Path) -> None:
    station = _station_with_interrupted(tmp_path, IDENTITY)
    assert station._interrupted_for(_slot(dataclasses.replace(IDENTITY, model="COMPLETELY DIFFERENT"))) is None


def test_drives_without_a_serial_never_match(tmp_path: Path) -> None:
    unknown = dataclasses.replace(IDENTITY, serial="unknown")
    station = _station_with_interrupted(tmp_path, unknown)
    assert station._interrupted_for(_slot(unknown)) is None


class _Guard:
    """The guard seam: what a busy drive looks like, then a free one."""

    def __init__(self, reasons: tuple[str, ...]) -> None:
        self.reasons = reasons
        self.ignored: list[tuple[int, ...]] = []

    def assess(self, path: str, ignore_pids: Iterable[int] = ()) -> Assessment:
        self.ignored.append(tuple(ignore_pids))
        return Assessment(path, "sdz", self.reasons)


def _station(tmp_path: Path, guard: _Guard) -> tuple[Station, Registry]:
    registry = Registry(tmp_path).open()
    config = StationConfig("s1", state_dir=tmp_path,
                           bays=(Bay("bay-1", (("ID_SERIAL_SHORT", "SERIAL-1"),), auto_start=True, profile=None),))
    app = Application.from_config(config, identify=lambda path: IDENTITY, guard=guard)  # type: ignore[arg-type]
    station = Station(app, PipeDriveSource())
    station.store.create()
    return station, registry


def _insert(station: Station) -> None:
    station._on_event(DriveEvent(INSERTED, "sdz", "/dev/sdz", {"ID_SERIAL_SHORT": "SERIAL-1"}, 1 << 30, "test"))


BUSY = ("busy: open by pid 1 (blkid), a udev/blkid probe still holding it after 0.5 s",)


def test_an_interrupted_drive_busy_on_arrival_restarts_its_own_attempt_once_free(tmp_path: Path) -> None:
    guard = _Guard(BUSY)
    station, registry = _station(tmp_path, guard)
    old = registry.create_job(IDENTITY, "nist-purge", "alice", "bay bay-1", "PC-OLD", {"serial": "HOST-OLD"})
    registry.transition(old, "interrupted", "owner-gone")
    station.store.add_intake("bay-1", "PC-NEXT", "HOST-NEXT", None, None, "bob")  # for the next *new* drive
    station._restart_interrupted = [registry.job(old)]
    _insert(station)
    slot = station.slots["bay-1"]
    assert slot.job is None and slot.waiting_until_free
    looks = len(guard.ignored)
    station._reassess_waiting_bays()
    assert len(guard.ignored) == looks  # not due yet: a busy drive is looked at again after a while
    first_wait = slot.recheck_every
    slot.recheck_at = 0.0
    station._reassess_waiting_bays()
    assert slot.job is None and slot.recheck_every == 2 * first_wait  # still busy: it backs off
    guard.reasons = ()
    slot.recheck_at = 0.0
    station._reassess_waiting_bays()
    job = slot.job
    # its own attempt (profile, asset), attributed to whoever is signed in now: nobody here (M10)
    assert job is not None and (job.profile, job.asset_tag) == ("nist-purge", "PC-OLD")
    assert job.operator == unnamed_text(os.geteuid(), VIA_DAEMON)
    assert job.intake_id is None and station._restart_interrupted == []
    assert station.store.pending("bay-1") is not None  # the intake still waits for the next new drive
    assert all(ignored == () for ignored in guard.ignored)  # no worker of ours holds this drive


def test_a_drive_protected_for_anything_but_busy_is_left_for_the_operator(tmp_path: Path) -> None:
    guard = _Guard(("sdz1 is mounted on /media/evidence",))
    station, _ = _station(tmp_path, guard)
    _insert(station)
    slot = station.slots["bay-1"]
    assert slot.job is None and not slot.waiting_until_free
    guard.reasons = ()  # unmounted later: still not wiped by itself
    station._reassess_waiting_bays()
    assert slot.job is None


def test_auto_start_happens_once_per_insertion(tmp_path: Path) -> None:
    guard = _Guard(())
    station, _ = _station(tmp_path, guard)
    _insert(station)
    slot = station.slots["bay-1"]
    assert slot.job is not None
    station.queue.clear()
    station._release(slot.job, {"outcome": "sanitised"})  # the job finished; the drive stays in the bay
    _insert(station)  # the same drive seen again (a resync, a change event)
    station._reassess_waiting_bays()
    assert slot.job is None and slot.outcome == {"outcome": "sanitised"}


def test_a_drive_sanitised_before_a_restart_is_wiped_again_unless_its_seating_is_proven(tmp_path: Path) -> None:
    station, registry = _station(tmp_path, _Guard(()))
    done = registry.create_job(IDENTITY, "nist-purge", "alice", "bay bay-1")
    registry.transition(done, "running", "method-start", method="overwrite.zero")
    registry.transition(done, "sanitised", "verified", route="reuse")
    station._registry = registry
    station._coldplug = True  # the drives found when the station starts
    _insert(station)
    slot = station.slots["bay-1"]
    # /dev/sdz has no diskseq: nothing proves this is the medium that job ran on (a look-alike with
    # the same serial behind a USB bridge, a re-seat while the station was down): wiped again, and the
    # registry's record is only the drive's history, never the bay's "sanitised"
    assert slot.job is not None and slot.job.operator == UNNAMED_AUTO_START
    assert slot.outcome is None
    assert slot.history is not None and slot.history["job_id"] == done and slot.history["outcome"] == "sanitised"
    assert station.status()["bays"][0]["state"] == "queued"


def test_at_start_up_an_interrupted_attempt_restarts_even_after_an_earlier_success(tmp_path: Path) -> None:
    station, registry = _station(tmp_path, _Guard(()))
    done = registry.create_job(IDENTITY, "nist-purge", "alice", "bay bay-1")
    registry.transition(done, "sanitised", "verified", route="reuse")
    again = registry.create_job(IDENTITY, "nist-purge", "bob", "bay bay-1", "PC-9")
    registry.transition(again, "interrupted", "owner-gone")
    station._registry = registry
    station._restart_interrupted = [registry.job(again)]
    station._coldplug = True
    _insert(station)
    job = station.slots["bay-1"].job
    assert job is not None and (job.operator, job.asset_tag) == (unnamed_text(os.geteuid(), VIA_DAEMON), "PC-9")
