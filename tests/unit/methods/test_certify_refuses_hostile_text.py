"""C8 at the station: a drive identity with CR/LF or a bidi override gets no certificate, and the
error names the field (issue 10 round 2). The serial a drive reports, or an intake asset tag, is
what a partner reads on the page: it must read exactly as it is signed."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from agent.errors import CertificateError
from agent.jobs.certify import CertificateSettings, certify
from agent.store.registry import Registry
from certs import pki

from .methods_kit import identity


@pytest.mark.parametrize(("serial", "code_point"), [("S1\r\nS/N: FAKE", "U+000D"), ("EMU-\u202e1000", "U+202E")])
def test_a_hostile_serial_is_refused_naming_the_field(tmp_path: Path, serial: str, code_point: str) -> None:
    pki.init_ca("Example Police", tmp_path / "ca")
    pki.issue_station(tmp_path / "ca", "station-07", tmp_path / "state")
    signer = pki.load_station_signer(tmp_path / "state")
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * 4096)
    drive = dataclasses.replace(identity(image), serial=serial)
    registry = Registry(tmp_path / "state").open()
    job_id = registry.create_job(drive, "nist-clear", "PC Jones", "explicit command by PC Jones")
    decision = {"method": "overwrite.zero", "taken": True, "level": "clear", "reason": "overwrite"}
    registry.transition(job_id, "running", "method-start", method="overwrite.zero", level="clear",
                        decisions_json=json.dumps([decision]))
    registry.transition(job_id, "verifying", "method-done", method_json="{}")
    registry.record_verification(job_id, drive, {"mode": "full", "passed": True, "coverage": 1.0,
                                                 "bytes_checked": 4096, "seed": None, "subsections": 0,
                                                 "samples": 0})
    registry.transition(job_id, "sanitised", "verified", route="reuse")
    expected = f"certificate not issued: record field serial: contains the control or format character {code_point}"
    with pytest.raises(CertificateError, match=re.escape(expected)):
        certify(registry, registry.job(job_id), signer, CertificateSettings(organisation="Test Constabulary"))
    assert not list((tmp_path / "state").glob("certificates/*.pdf")), "nothing was issued"
    assert registry.job(job_id).certificate_path is None


def test_the_stations_own_reason_text_is_made_recordable() -> None:
    # an exception message with line breaks, a tab and an escape must not cost a failed job its report
    from agent.jobs.certify import station_text
    from certs.record import text_problem

    shown = station_text("write failed at offset 20971520:\n\tInput/output error\x1b[0m\u202e")
    assert text_problem(shown) is None, shown
    assert shown == "write failed at offset 20971520: Input/output errorU+001B[0mU+202E"
    assert station_text(None) == "" and station_text("") == ""
