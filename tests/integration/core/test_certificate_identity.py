"""A non-demo wipe through a configured station.toml: the certificate names the organisation, its
location and phone, the host and the drive; without an organisation no certificate is issued."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from certs import render
from certs.verify import verify_file
from tests.conftest import LoopDevice, run_cli
from tests.integration.core.test_certificates import make_station

PROFILE = "nist-clear-overwrite"
ORGANISATION = """[organisation]
name = "Northshire Constabulary"
location = "Digital Forensics Unit, 1 Bridge St, Northshire"
phone = "+44 1632 960123"
classification_before = "OFFICIAL-SENSITIVE"
classification_after = "Not classified: sanitised"
data_backed_up = "no"
destination = "Held at the station for the GLA schools scheme"
"""
REQUIRED_ROWS = ("Make / vendor", "Model", "Serial number", "Firmware", "Media type / interface", "Capacity",
                 "Host device (source)", "Classification", "Data backed up", "SMART health (before the wipe)",
                 "Level", "Method", "Tool", "Verification", "Destination", "Organisation", "Location", "Phone")


def _station(tmp_path: Path, state_dir: Path, organisation: str) -> tuple[Path, Path]:
    """A station.toml (with or without [organisation]) and a station key from the organisation CA."""
    config = tmp_path / "station.toml"
    config.write_text(f'station_id = "station-07"\nstate_dir = "{state_dir}"\n{organisation}')
    return config, make_station(state_dir, tmp_path)


def _pdftotext(path: Path, *options: str) -> str:
    result = subprocess.run(["pdftotext", *options, str(path), "-"], capture_output=True, text=True, check=True)
    return result.stdout


@pytest.mark.root
def test_configured_station_certificate_names_organisation_host_and_drive(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, tmp_path: Path) -> None:
    config, bundle = _station(tmp_path, state_dir, ORGANISATION)
    host = run_cli("--config", str(config), "host", "add", "NS-LAP-0042", "--make", "Dell", "--model",
                   "Latitude 5440", "--serial", "7GH2XK3")
    assert host.returncode == 0, host.stderr
    as_root = {"SUDO_UID": "0"}  # the sign-in is for uid 0, whatever sudo the test runner came through
    run_cli("--config", str(config), "operator", "sign-in", "PC Jones", "--title", "Wipe technician",
            env=as_root, check=True)
    device = loop_factory(8 << 20)
    result = run_cli("--config", str(config), "wipe", device.path, "--profile", PROFILE, "--yes", "--json",
                     "--asset", "NS-LAP-0042", "--operator", "PC Jones", env=as_root)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["outcome"] == "sanitised" and data["certificate"], data
    certificate = Path(data["certificate"])
    report = verify_file(certificate, bundle)
    assert report.valid, report.reason
    record = report.record
    assert record is not None and record.schema == 2
    assert record.host is not None and (record.host.make, record.host.model, record.host.serial) == (
        "Dell", "Latitude 5440", "7GH2XK3")
    assert (record.operator.organisation, record.operator.location, record.operator.phone) == (
        "Northshire Constabulary", "Digital Forensics Unit, 1 Bridge St, Northshire", "+44 1632 960123")
    text = _pdftotext(certificate, "-layout")
    page_one = text.split("\f")[0]
    # reading order: a value wrapped in its cell reads as one phrase
    flowing = " ".join(_pdftotext(certificate).split("\f")[0].split())
    for expected in ["Northshire Constabulary", "Digital Forensics Unit, 1 Bridge St, Northshire",
                     "+44 1632 960123", "Dell Latitude 5440, serial 7GH2XK3, asset tag NS-LAP-0042",
                     f"Firmware {render.firmware_text(record)}",
                     "Held at the station for the GLA schools scheme", "before: OFFICIAL-SENSITIVE",
                     "SMART health (before the wipe) no SMART reading was filed before the wipe",
                     "signed validation statement", "Name PC Jones", "Wipe technician"]:
        assert expected in flowing, expected
    # two pages: what a person checks, then the evidence
    assert len(text.rstrip("\f").split("\f")) == 2 and "page 1 of 2" in page_one and "page 2 of 2" in text
    assert "Example" not in text
    # a required field never prints the placeholder dash
    for label in REQUIRED_ROWS:
        for line in page_one.splitlines():
            assert not re.search(rf"(^|\s){re.escape(label)}\s+\u2014(\s|$)", line), line
    # page 2 in plain language: the overwrite's internal keys are not printed
    for internal in ("o_direct", "level_reason", "expectation.kind", " True"):
        assert internal not in text, internal
    assert "bypassing the kernel's page cache" in " ".join(_pdftotext(certificate).split())


@pytest.mark.root
def test_without_an_organisation_no_certificate_is_issued_and_the_job_says_why(
        loop_factory: Callable[..., LoopDevice], state_dir: Path, tmp_path: Path) -> None:
    config, _bundle = _station(tmp_path, state_dir, "")
    device = loop_factory(4 << 20)
    result = run_cli("--config", str(config), "wipe", device.path, "--profile", PROFILE, "--yes")
    reason = f"no organisation configured in {config} [organisation]; no certificate issued"
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(reason) and "Traceback" not in result.stderr
    assert "SANITISED" in result.stdout  # the job itself ran and is recorded as it ended
    certificates = state_dir / "certificates"
    assert not certificates.exists() or not list(certificates.iterdir())
    jobs = json.loads(run_cli("--config", str(config), "jobs", "--json", check=True).stdout)["jobs"]
    [job] = jobs
    assert job["outcome"] == "sanitised" and job["certificate"] is None
    events = json.loads(run_cli("--config", str(config), "job", job["job_id"], "--json", "--events",
                                check=True).stdout)["events"]
    assert events[-1]["event"] == "certificate-refused" and events[-1]["data"]["reason"] == reason
    # --json says it too, beside the job
    second = loop_factory(4 << 20)
    as_json = run_cli("--config", str(config), "wipe", second.path, "--profile", PROFILE, "--yes", "--json")
    assert as_json.returncode == 2
    data = json.loads(as_json.stdout)
    assert data["outcome"] == "sanitised" and data["certificate"] is None
    assert reason in data["certificate_error"]["message"]


def test_hostile_organisation_is_refused_before_anything_is_touched(tmp_path: Path, state_dir: Path) -> None:
    config = tmp_path / "station.toml"
    config.write_text(f'station_id = "s1"\nstate_dir = "{state_dir}"\n[organisation]\n'
                      'name = "Northshire \\u202eyralubatsnoC"\n')
    result = run_cli("--config", str(config), "wipe", "/dev/null-not-a-device", "--profile", PROFILE, "--yes")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert line.count("\n") == 0 and f"{config}:4: [organisation].name: " in line and "U+202E" in line, line
