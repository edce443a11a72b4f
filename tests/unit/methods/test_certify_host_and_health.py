"""The certificate's host and SMART summary come from the registry: intake's host on the job (or the
host registered under the asset tag) and the reading filed *before* the job, never one taken after."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

from agent.jobs.certify import CertificateSettings, build_record, certify
from agent.reuse.health import HealthReading
from agent.reuse.store import ReuseStore
from agent.store.registry import Registry
from certs import pki
from certs.verify import verify_file

from .methods_kit import identity

SETTINGS = CertificateSettings(organisation="Northshire Constabulary", location="Bridge St", phone="+44 1632 960123")


def _reading(drive_model: str, serial: str, reallocated: int) -> HealthReading:
    return HealthReading(status="ok", protocol="ATA", model=drive_model, serial=serial,
                         source="smartctl 7.3 -j -a /dev/sdq", smart_passed=True, reallocated_sectors=reallocated,
                         pending_sectors=0, offline_uncorrectable=0)


def _filed_at(store: ReuseStore, reading_id: int, at: str) -> None:
    """Pin when a reading was filed (the order matters here, not the wall clock's milliseconds)."""
    store.db.execute("UPDATE reuse_health SET at=? WHERE id=?", (at, reading_id))


def _sanitised_job(registry: Registry, image: Path, host: dict[str, str] | None, asset: str | None,
                   store: ReuseStore, before: HealthReading) -> str:
    drive = dataclasses.replace(identity(image), firmware="15.01H15")
    _filed_at(store, store.record_health(before, before.serial, before.model), "2020-01-01T09:00:00.000+00:00")
    job_id = registry.create_job(drive, "nist-clear", "PC Jones", "explicit command by PC Jones", asset, host)
    decision = {"method": "overwrite.zero", "taken": True, "level": "clear", "reason": "overwrite"}
    registry.transition(job_id, "running", "method-start", method="overwrite.zero", level="clear",
                        decisions_json=json.dumps([decision]))
    # a reading filed once the job is running is not what the drive was like before the wipe
    after = store.record_health(_reading(drive.model, drive.serial, 999), drive.serial, drive.model)
    _filed_at(store, after, "2099-01-01T09:00:00.000+00:00")
    registry.transition(job_id, "verifying", "method-done", method_json="{}")
    registry.record_verification(job_id, drive, {"mode": "full", "passed": True, "coverage": 1.0,
                                                 "bytes_checked": 4096, "seed": None, "subsections": 0,
                                                 "samples": 0})
    registry.transition(job_id, "sanitised", "verified", route="reuse")
    return job_id


def test_intake_host_and_the_reading_before_the_wipe_are_signed_and_printed(tmp_path: Path) -> None:
    pki.init_ca("Northshire Constabulary", tmp_path / "ca")
    pki.issue_station(tmp_path / "ca", "station-07", tmp_path / "state")
    pki.make_bundle(tmp_path / "ca", tmp_path / "bundle.pem")
    signer = pki.load_station_signer(tmp_path / "state")
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 4096)
    registry = Registry(tmp_path / "state").open()
    store = ReuseStore(registry)
    drive = identity(image)
    host = {"asset_tag": "NS-LAP-0042", "serial": "7GH2XK3", "make": "Dell", "model": "Latitude 5440"}
    job_id = _sanitised_job(registry, image, host, "NS-LAP-0042", store, _reading(drive.model, drive.serial, 4))
    path = certify(registry, registry.job(job_id), signer, SETTINGS)
    assert path is not None
    report = verify_file(path, tmp_path / "bundle.pem")
    assert report.valid, report.reason
    record = report.record
    assert record is not None and record.host is not None and record.health is not None
    assert (record.host.make, record.host.model, record.host.serial, record.host.asset_tag) == (
        "Dell", "Latitude 5440", "7GH2XK3", "NS-LAP-0042")
    assert record.media.firmware == "15.01H15" and record.media.host_device == "NS-LAP-0042"
    assert record.health.reallocated_sectors == 4 and record.health.smart_passed is True  # not the 999 after
    registry.close()


def test_a_registered_host_names_a_command_line_wipe_and_no_reading_says_so(tmp_path: Path) -> None:
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 4096)
    registry = Registry(tmp_path / "state").open()
    store = ReuseStore(registry)
    store.register_host("NS-DT-7", kind="desktop", make="HP", model="EliteDesk 800", serial="CZC123")
    drive = identity(image)
    job_id = _sanitised_job(registry, image, None, "NS-DT-7", store, _reading(drive.model, "ANOTHER-DRIVE", 1))
    record = build_record(registry.job(job_id), "station-07", SETTINGS, datetime.now(UTC), registry)
    assert record.host is not None and (record.host.make, record.host.model, record.host.serial) == (
        "HP", "EliteDesk 800", "CZC123")
    # the reading before the job was of another drive: none of this one before its wipe
    assert record.health is None
    # without any asset or intake the certificate names no host rather than inventing one
    bare = build_record(dataclasses.replace(registry.job(job_id), asset_tag=None), "station-07", SETTINGS,
                        datetime.now(UTC), registry)
    assert bare.host is None
    registry.close()
