"""Which interrupted attempt a newly inserted drive continues: exactly the same drive, never a look-alike."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from agent.config import Bay
from agent.daemon.station import BaySlot, Station
from agent.discovery.identity import DriveIdentity
from agent.store.registry import Registry

IDENTITY = DriveIdentity(
    path="/dev/sdz", name="sdz", by_id=None, model="TEST DRIVE", serial="SERIAL-1", firmware=None, vendor=None,
    size_bytes=1 << 30, logical_sector=512, physical_sector=512, rotational=True, transport="sata", media="hdd",
    removable=False, read_only=False, id_path=None,
)


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
