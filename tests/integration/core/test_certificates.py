"""Certificates for real jobs: issued by wipe, verifiable by the partners' tool, none for refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.discovery.identity import DriveIdentity
from agent.jobs.certify import CertificateSettings, build_record, certify, station_signer
from agent.store.registry import Registry
from certs.verify import verify_file
from tests.conftest import LoopDevice, run_cli
from tests.unit.certs.certs_test_kit import pdf_text

IDENTITY = DriveIdentity(
    path="/dev/sdq", name="sdq", by_id=None, model="WDC WD5000AAKX", serial="WD-WCAYU1234567", firmware="15.01H15",
    vendor=None, size_bytes=500107862016, logical_sector=512, physical_sector=512, rotational=True,
    transport="sata", media="hdd", removable=False, read_only=False, id_path=None,
)


@pytest.fixture
def station(state_dir: Path, configured_station: Path, tmp_path: Path) -> Path:
    """An organisation CA and this station's key, made through the real CLI; returns the trust bundle."""
    return make_station(state_dir, tmp_path)


def make_station(state_dir: Path, tmp_path: Path) -> Path:
    """An organisation CA in ``tmp_path`` and a station key in ``state_dir``; returns the trust bundle."""
    ca = tmp_path / "ca"
    run_cli("pki", "init-ca", "--org", "Test Constabulary", "--out", str(ca), check=True)
    run_cli("pki", "issue-station", "--ca", str(ca), "--station-id", "station-07", "--state-dir", str(state_dir),
            check=True)
    bundle = tmp_path / "bundle.pem"
    run_cli("pki", "bundle", "--ca", str(ca), "--out", str(bundle), check=True)
    return bundle


@pytest.mark.root
def test_wipe_issues_a_certificate_partners_can_verify(loop_factory: Callable[..., LoopDevice], state_dir: Path,
                                                       station: Path) -> None:
    device = loop_factory(12 << 20)
    run_cli("operator", "sign-in", "PC Jones", "--title", "Sanitisation operator", check=True)
    result = run_cli("wipe", device.path, "--profile", "nist-clear-overwrite", "--yes", "--json",
                     "--asset", "LAPTOP-7", "--operator", "PC Jones")
    data = json.loads(result.stdout)
    assert result.returncode == 0 and data["outcome"] == "sanitised"
    certificate = Path(data["certificate"])
    assert certificate.is_file() and certificate.parent == state_dir / "certificates"
    report = verify_file(certificate, station)
    assert report.valid, report.reason
    record = report.record
    assert record is not None
    assert record.job_id == data["job_id"] and record.station_id == "station-07"
    assert record.media.serial == device.backing.as_posix().join(["loop:", ""]) or record.media.serial.startswith(
        "loop:")
    assert record.media.asset_tag == "LAPTOP-7" and record.operator.name == "PC Jones"
    assert record.level == "Clear" and record.verification.result == "passed"
    assert record.verification.seed == data["verification"]["seed"]
    # the partners' command line agrees
    assert run_cli("verify", str(certificate), "--trust", str(station)).returncode == 0
    events = json.loads(run_cli("job", data["job_id"], "--json", "--events", check=True).stdout)["events"]
    assert events[-1]["event"] == "certificate-issued"
    assert events[-1]["data"]["record_sha256"] == report.record_sha256


@pytest.mark.root
def test_refused_job_gets_no_certificate(loop_factory: Callable[..., LoopDevice], state_dir: Path,
                                         station: Path) -> None:
    device = loop_factory(8 << 20)
    data = json.loads(run_cli("wipe", device.path, "--profile", "nist-purge", "--yes", "--json").stdout)
    assert data["outcome"] == "refused" and data["certificate"] is None
    assert not (state_dir / "certificates").exists() or not list((state_dir / "certificates").iterdir())


def test_failed_job_gets_a_signed_failure_report_routed_to_destruction(state_dir: Path, station: Path) -> None:
    registry = Registry(state_dir).open()
    job_id = registry.create_job(IDENTITY, "nist-clear-overwrite", "PC Jones", "explicit command by PC Jones", "PC-9")
    registry.transition(job_id, "checking", "guard")
    registry.transition(job_id, "running", "method-start", method="overwrite.zero", level="clear",
                        decisions_json=json.dumps([{"method": "overwrite.zero", "taken": True, "level": "clear",
                                                    "reason": "host overwrite: Clear for HDDs"}]))
    registry.transition(job_id, "failed", "media-error", reason="write failed at offset 123456: Input/output error",
                        error_code="media_error", route="destroy")
    signer = station_signer(state_dir)
    assert signer is not None
    path = certify(registry, registry.job(job_id), signer, CertificateSettings(organisation="Test Constabulary"))
    assert path is not None and path.name.startswith("failure-report-")
    report = verify_file(path, station)
    assert report.valid and report.kind == "failure_report"
    assert report.record is not None and report.record.route == "destroy" and report.record.level is None
    assert "Input/output error" in (report.record.failure_reason or "")
    # one certificate per job
    with pytest.raises(Exception, match="already has a certificate"):
        certify(registry, registry.job(job_id), signer, CertificateSettings(organisation="Test Constabulary"))


def test_interrupted_and_refused_jobs_are_not_certifiable(state_dir: Path) -> None:
    registry = Registry(state_dir).open()
    job_id = registry.create_job(IDENTITY, "p", "me", "x")
    registry.transition(job_id, "interrupted", "cancelled")
    from agent.errors import CertificateError

    with pytest.raises(CertificateError, match="only sanitised and failed"):
        build_record(registry.job(job_id), "station-07", CertificateSettings(organisation="Test Constabulary"),
                     datetime.now(UTC))


@pytest.mark.root
def test_a_wipe_through_sudo_names_the_person_signed_in_for_sudo_uid_with_their_title(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, station: Path) -> None:
    device = loop_factory(8 << 20)
    alex = {"SUDO_UID": "4242", "SUDO_USER": "alex"}  # root through sudo, as a technician runs it
    run_cli("operator", "sign-in", "PC Alex Morgan", "--title", "Digital forensics technician", env=alex, check=True)
    listed = json.loads(run_cli("operator", "list", "--json", check=True).stdout)["operators"]
    assert [(item["name"], item["uid"]) for item in listed] == [("PC Alex Morgan", 4242)]
    data = json.loads(run_cli("wipe", device.path, "--profile", "nist-clear-overwrite", "--yes", "--json",
                              env=alex).stdout)
    assert data["outcome"] == "sanitised", data
    assert (data["operator"], data["operator_title"], data["operator_uid"], data["operator_via"]) == (
        "PC Alex Morgan", "Digital forensics technician", 4242, "the command line")
    report = verify_file(Path(data["certificate"]), station)
    assert report.valid, report.reason
    assert report.record is not None and report.record.operator.name == "PC Alex Morgan"
    text = " ".join(pdf_text(Path(data["certificate"]), page=1).split())
    assert "Performed by (operator)" in text and "Name PC Alex Morgan" in text
    # the Validation block sits beside the operator's: poppler may interleave the two columns' lines
    assert "Title" in text and "Digital forensics technician" in text
    assert "root" not in text.split("Performed by (operator)")[1]
    # the sign-in is in the audit chain (the registry's audit log), before the job
    audit = subprocess.run([sys.executable, "-c", AUDIT_KINDS, str(state_dir)], capture_output=True, text=True,
                           check=True)
    kinds = [kind for kind, _subject in json.loads(audit.stdout)]
    assert ["operator-sign-in", "PC Alex Morgan"] in json.loads(audit.stdout)
    assert kinds.index("operator-sign-in") < kinds.index("job-created")


AUDIT_KINDS = """
import json, sys
from pathlib import Path
from agent.store.registry import Registry
registry = Registry(Path(sys.argv[1])).open()
log = registry.audit
assert log.verify().valid
print(json.dumps([[entry.kind, entry.subject] for entry in log.entries()]))
"""


@pytest.mark.root
def test_a_wipe_nobody_signed_in_for_says_so_on_the_certificate_never_root(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, station: Path) -> None:
    device = loop_factory(8 << 20)
    data = json.loads(run_cli("wipe", device.path, "--profile", "nist-clear-overwrite", "--yes", "--json",
                              env={"SUDO_UID": "0", "SUDO_USER": "root"}).stdout)
    assert data["outcome"] == "sanitised" and data["operator"] == "" and data["operator_named"] is False
    report = verify_file(Path(data["certificate"]), station)
    assert report.valid, report.reason
    # the verifier above checked the page shows the signed name in the operator block; poppler's layout
    # wraps it in the column, so the two halves are looked for here
    text = " ".join(pdf_text(Path(data["certificate"]), page=1).split())
    assert "Name no operator signed in \u2014 started by uid 0" in text and "(root) via the command line" in text
    assert report.record is not None and report.record.operator.name == (
        "no operator signed in \u2014 started by uid 0 (root) via the command line")


@pytest.mark.root
def test_an_operator_option_that_is_not_the_signed_in_person_is_refused_before_anything(
        loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    device = loop_factory(8 << 20)
    before = device.read()
    result = run_cli("wipe", device.path, "--profile", "nist-clear-overwrite", "--yes", "--operator", "PC Jones")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().count("\n") == 0 and "nobody is signed in for uid" in result.stderr
    run_cli("operator", "sign-in", "PC Morgan", "--title", "Technician", check=True)
    result = run_cli("wipe", device.path, "--profile", "nist-clear-overwrite", "--yes", "--operator", "PC Jones")
    assert result.returncode == 2 and "'PC Morgan' is signed in" in result.stderr
    assert device.read() == before
    assert json.loads(run_cli("jobs", "--json", check=True).stdout)["jobs"] == []
