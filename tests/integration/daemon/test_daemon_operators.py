"""A real daemon attributes each job to the person signed in: by the socket caller's uid, or by bay for auto-start."""

from __future__ import annotations

import grp
import json
import os
import pwd
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.operators import VIA_API, VIA_DAEMON, unnamed_text
from certs.verify import verify_file
from tests.conftest import run_cli
from tests.integration.daemon.conftest import Daemon
from tests.integration.daemon.test_daemon import _bay, _finished, _registry_job, _station_key
from tests.unit.certs.certs_test_kit import pdf_text
from tests.unit.daemon.test_api import _connect_as_nobody

pytestmark = pytest.mark.root

MiB = 1 << 20
AS_ROOT = {"SUDO_UID": "0"}  # the sign-in is for uid 0, whatever sudo the test runner itself came through


def _operator_block(certificate: Path) -> str:
    """Page 1's text from the operator block on, whitespace squashed (poppler's layout wraps the column)."""
    return " ".join(pdf_text(certificate, page=1).split()).split("Performed by (operator)", 1)[1]


def _sign_in(daemon: Daemon, *args: str) -> dict:
    result = run_cli("--state-dir", str(daemon.state_dir), "operator", "sign-in", *args, "--json", env=AS_ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_a_start_by_a_signed_in_uid_names_the_person_and_another_uid_names_nobody(
        station: Callable[..., Daemon]) -> None:
    daemon = station([16 * MiB, 16 * MiB], auto_start=False)
    bundle = _station_key(daemon)
    disk = grp.getgrnam("disk")
    # a member of the API group may call; the socket's directory must be reachable for that user
    daemon.config.write_text(f'api_group = "{disk.gr_name}"\n' + daemon.config.read_text())
    daemon.directory.chmod(0o755)
    daemon.start()
    signed = _sign_in(daemon, "PC Alex Morgan", "--title", "Digital forensics technician", "--bay", "bay-1")
    assert signed["uid"] == 0 and signed["bays"] == ["bay-1"]
    for backing in daemon.backings:
        backing.attach()
    status = daemon.wait_for(lambda s: all(bay["drive"] for bay in s["bays"]), timeout=10, what="drives in bays")
    assert _bay(status, "bay-1")["operator"]["name"] == "PC Alex Morgan" and _bay(status, "bay-2")["operator"] is None
    text = daemon.run_cli("status")
    assert "operator PC Alex Morgan (Digital forensics technician) for bay-1" in text.stdout, text.stderr

    # root started it through the socket, and root's uid has a person signed in
    started = daemon.run_cli("start", "bay-1", "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["operator"] == "PC Alex Morgan"
    status = daemon.wait_for(_finished("bay-1"), what="bay-1 sanitised")
    job = _registry_job(daemon, _bay(status, "bay-1")["outcome"]["job_id"])
    assert (job.operator, job.operator_title, job.operator_uid, job.operator_via) == (
        "PC Alex Morgan", "Digital forensics technician", 0, VIA_API)
    report = verify_file(Path(job.certificate_path), bundle)
    assert report.valid and report.record is not None, report.reason
    assert (report.record.operator.name, report.record.operator.title) == ("PC Alex Morgan",
                                                                           "Digital forensics technician")
    block = _operator_block(Path(job.certificate_path))
    # the Validation block sits beside the operator's: poppler may interleave the two columns' lines
    assert "Name PC Alex Morgan" in block and "Digital forensics technician" in block, block

    # nobody (uid 65534, in the API group) has no sign-in: the job names no person and says who started it
    body = b'{"profile": "nist-clear-overwrite"}'
    request = (b"POST /v1/bays/bay-2/start HTTP/1.0\r\nContent-Type: application/json\r\n"
               b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    answer = _connect_as_nobody(daemon.socket, gid=disk.gr_gid, request=request, length=4096)
    assert answer.startswith("HTTP/1.0 200"), answer
    status = daemon.wait_for(_finished("bay-2"), what="bay-2 sanitised")
    job = _registry_job(daemon, _bay(status, "bay-2")["outcome"]["job_id"])
    nobody = pwd.getpwnam("nobody").pw_uid
    assert (job.operator, job.operator_uid, job.operator_via, job.operator_named) == ("", nobody, VIA_API, False)
    report = verify_file(Path(job.certificate_path), bundle)
    assert report.valid and report.record is not None, report.reason
    assert report.record.operator.name == unnamed_text(nobody, VIA_API)
    block = _operator_block(Path(job.certificate_path))  # the layout wraps the name within its column
    assert "Name no operator signed in — started by uid" in block and f"{nobody} (nobody) via the station API" in block


def test_an_auto_start_job_is_the_person_signed_in_for_that_bay_and_without_one_it_says_so(
        station: Callable[..., Daemon]) -> None:
    daemon = station([16 * MiB, 16 * MiB])
    _station_key(daemon)
    daemon.start()
    _sign_in(daemon, "PC Jones", "--title", "Sanitisation officer", "--bay", "bay-2")
    for backing in daemon.backings:
        backing.attach()
    status = daemon.wait_for(lambda s: _finished("bay-1")(s) and _finished("bay-2")(s), what="both bays sanitised")
    covered = _registry_job(daemon, _bay(status, "bay-2")["outcome"]["job_id"])
    assert (covered.operator, covered.operator_title, covered.operator_uid, covered.operator_via) == (
        "PC Jones", "Sanitisation officer", os.geteuid(), VIA_DAEMON)
    uncovered = _registry_job(daemon, _bay(status, "bay-1")["outcome"]["job_id"])
    assert not uncovered.operator_named and uncovered.operator_via == VIA_DAEMON
    block = _operator_block(Path(uncovered.certificate_path))
    assert "no operator signed in — started by uid 0" in block and "(root) via the station daemon" in block
    assert "station test-station" not in block.split("Validation")[0]
