"""H6: a certificate refused after the wipe is recorded on the job's journal with its reason, not
only printed to the terminal (or daemon log) that saw it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.discovery.identity import DriveIdentity
from agent.errors import CertificateError
from agent.jobs.certify import CertificateSettings, certify
from agent.store.registry import Registry
from certs import pki

DRIVE = DriveIdentity(
    path="/dev/sdz", name="sdz", by_id=None, model="Test Disk", serial="SN0", firmware="1.0", vendor=None,
    size_bytes=1 << 30, logical_sector=512, physical_sector=4096, rotational=True, transport="sata",
    media="hdd", removable=False, read_only=False, id_path=None,
)


def test_a_refused_certificate_leaves_its_reason_on_the_job(tmp_path: Path) -> None:
    pki.init_ca("Test Constabulary", tmp_path / "ca")
    state = tmp_path / "state"
    pki.issue_station(tmp_path / "ca", "station-07", state)
    signer = pki.load_station_signer(state)
    assert signer is not None
    registry = Registry(state).open()
    # an asset tag that reached the registry without the input check (an older version, a restore)
    job = registry.create_job(DRIVE, "nist-clear-overwrite", "PC Jones", "test", "\u202eEVIL")
    registry.transition(job, "checking", "guard")
    registry.transition(job, "running", "method-start", method="overwrite.zero", level="clear")
    registry.transition(job, "sanitised", "verified")
    settings = CertificateSettings(organisation="Northshire", location="Unit 4", phone="+44 1632 960000")
    with pytest.raises(CertificateError, match="U\\+202E"):
        certify(registry, registry.job(job), signer, settings)
    last = registry.events(job)[-1]
    assert last["event"] == "certificate-refused" and "U+202E" in last["data"]["reason"]
    assert registry.job(job).certificate_path is None
    registry.close()
