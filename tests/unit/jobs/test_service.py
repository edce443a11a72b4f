"""The job service's certify step: a refusal is returned with the job as stored, never raised."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.app import Application
from agent.config import StationConfig
from agent.discovery.identity import DriveIdentity
from agent.errors import CertificateError
from agent.jobs.service import JobService, firmware_job
from agent.jobs.settings import CertificateSettings

IDENTITY = DriveIdentity(path="/dev/loop9", name="loop9", by_id=None, model="M", serial="S1", firmware=None,
                         vendor=None, size_bytes=1 << 20, logical_sector=512, physical_sector=512, rotational=False,
                         transport="virtual", media="virtual", removable=False, read_only=False, id_path=None)


def _service(tmp_path: Path, loader: object) -> JobService:
    app = Application.from_config(StationConfig(station_id="s", state_dir=tmp_path / "state"),
                                  certificate=CertificateSettings(source="station.toml"),
                                  identify=lambda path: IDENTITY, signer_loader=loader)  # type: ignore[arg-type]
    return JobService(app, app.open_store())


def _job(service: JobService, state: str, method: str = "overwrite.zero") -> str:
    registry = service.registry
    job_id = registry.create_job(IDENTITY, "p", "op", "cli")
    registry.transition(job_id, "checking", "guard")
    registry.transition(job_id, "running", "method-start", {}, method=method, level="clear")
    registry.transition(job_id, state, "done", {}, reason="r", route="hold")
    return job_id


def test_no_signer_means_no_document_and_no_error(tmp_path: Path) -> None:
    service = _service(tmp_path, lambda state_dir: None)
    try:
        job = service.registry.job(_job(service, "failed"))
        assert service.certify(job).job == job
        assert service.certify(job).path is None and service.certify(job).error is None
    finally:
        service.registry.close()


def test_a_refusal_is_returned_and_noted_on_the_job(tmp_path: Path) -> None:
    service = _service(tmp_path, lambda state_dir: object())  # a signer; no organisation is configured
    try:
        job = service.registry.job(_job(service, "failed"))
        certified = service.certify(job)
        assert isinstance(certified.error, CertificateError) and certified.path is None
        assert "no organisation configured in station.toml" in certified.error.message
        refusals = [event for event in service.registry.events(job.id) if event["event"] == "certificate-refused"]
        assert refusals and "no organisation configured" in refusals[-1]["data"]["reason"]
        # a job that is not certifiable gets nothing, and no refusal either
        refused = service.registry.job(_job(service, "refused"))
        assert service.certify(refused).error is None and service.certify(refused).path is None
    finally:
        service.registry.close()


def test_a_broken_key_is_a_refusal_of_the_document_not_of_the_job(tmp_path: Path) -> None:
    def broken(state_dir: Path) -> None:
        raise CertificateError("station key: group-readable")

    service = _service(tmp_path, broken)
    try:
        job = service.registry.job(_job(service, "failed"))
        certified = service.certify(job)
        assert certified.error is not None and "group-readable" in certified.error.message
        assert certified.job.state == "failed"
    finally:
        service.registry.close()


@pytest.mark.parametrize(("method", "firmware"), [("overwrite.zero", False), ("nvme.sanitize.block", True)])
def test_firmware_jobs_are_told_from_overwrites(tmp_path: Path, method: str, firmware: bool) -> None:
    service = _service(tmp_path, lambda state_dir: None)
    try:
        assert firmware_job(service.registry, _job(service, "failed", method)) is firmware
    finally:
        service.registry.close()
