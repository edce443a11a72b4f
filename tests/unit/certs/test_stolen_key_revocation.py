"""A stolen station key (issue 10 round 2, NEW-R2-3): ``pki revoke --reason key-compromise
--compromised-since TIME`` makes the thief's timestamped forgeries fail with the new bundle,
while the station's genuine documents timestamped before that time stay valid.

The thief holds a copy of station-01's key and gets signature timestamps from the organisation's
TSA (a TSA stamps any hash for anyone who can reach it). A plain revocation dated after the
forgery's timestamp would not touch it ("revoked after signing"); the invalidity date does.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from certs import pki
from certs.verify import DocumentKind, load_trust_bundle, verify_with_bundle
from tests.unit.certs import verify_kit as kit
from tests.unit.certs.certs_test_kit import PkiWorld, record_for


def _verify(path: Path, bundle: Path) -> tuple[bool, str, str]:
    report = verify_with_bundle(path, load_trust_bundle(bundle), expect=DocumentKind.CERTIFICATE)
    return report.valid, report.code, report.reason


def _revoke(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli.main", "pki", "revoke", *arguments],
                          capture_output=True, text=True, timeout=120, check=False)


def test_stolen_key_forgeries_fail_after_a_key_compromise_revocation(tmp_path: Path) -> None:
    now = pki.utc_now()
    ca_dir = tmp_path / "ca"
    pki.init_ca("Example Police", ca_dir, clock=lambda: now - timedelta(days=30))
    pki.issue_station(ca_dir, "station-01", tmp_path / "station-01", clock=lambda: now - timedelta(days=20))
    station = pki.load_station_signer(tmp_path / "station-01")
    tsa = kit.make_tsa(ca_dir, not_before=now - timedelta(days=25))

    genuine_record = record_for(station, demo=False)
    genuine = tmp_path / "genuine.pdf"
    genuine.write_bytes(kit.sign_raw(genuine_record, station, tsa.stamper(now - timedelta(days=5))))
    forged_record = dataclasses.replace(
        genuine_record, certificate_id="0a4c7f0e-1111-4222-8333-944455556666",
        media=dataclasses.replace(genuine_record.media, serial="NEVER-WIPED-999"))
    forged = tmp_path / "forged.pdf"
    forged.write_bytes(kit.sign_raw(forged_record, station, tsa.stamper(now - timedelta(days=1))))

    old_bundle = pki.make_bundle(ca_dir, tmp_path / "bundle-before.pem")
    assert _verify(genuine, old_bundle)[:2] == (True, "valid")
    assert _verify(forged, old_bundle)[:2] == (True, "valid"), "the forgery is indistinguishable before"

    since = (now - timedelta(days=3)).isoformat()
    result = _revoke("--ca", str(ca_dir), "--station-id", "station-01", "--reason", "key-compromise",
                     "--compromised-since", since)
    assert result.returncode == 0, result.stdout + result.stderr
    crl = x509.load_pem_x509_crl((ca_dir / pki.CA_CRL).read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(station.certificate.serial_number)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    invalid_since = entry.extensions.get_extension_for_class(x509.InvalidityDate).value.invalidity_date_utc
    assert reason is x509.ReasonFlags.key_compromise
    assert abs(invalid_since - (now - timedelta(days=3))) < timedelta(seconds=1)

    new_bundle = pki.make_bundle(ca_dir, tmp_path / "bundle-after.pem")
    valid, code, why = _verify(forged, new_bundle)
    assert (valid, code) == (False, "revoked") and "key compromise" in why, why
    assert _verify(genuine, new_bundle)[:2] == (True, "valid"), "signed before the compromise: still valid"
    assert _verify(forged, old_bundle)[:2] == (True, "valid"), "the old bundle cannot know (partners need the new)"


def test_a_revocation_without_reason_keeps_timestamped_documents_valid(tmp_path: Path) -> None:
    """The control: superseded (a routine key rotation) does not reach back."""
    now = pki.utc_now()
    ca_dir = tmp_path / "ca"
    pki.init_ca("Example Police", ca_dir, clock=lambda: now - timedelta(days=30))
    pki.issue_station(ca_dir, "station-01", tmp_path / "station-01", clock=lambda: now - timedelta(days=20))
    station = pki.load_station_signer(tmp_path / "station-01")
    tsa = kit.make_tsa(ca_dir, not_before=now - timedelta(days=25))
    path = tmp_path / "cert.pdf"
    path.write_bytes(kit.sign_raw(record_for(station, demo=False), station, tsa.stamper(now - timedelta(days=1))))
    pki.revoke(ca_dir, station_id="station-01", reason="superseded")
    crl = x509.load_pem_x509_crl((ca_dir / pki.CA_CRL).read_bytes())
    entry = crl.get_revoked_certificate_by_serial_number(station.certificate.serial_number)
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason is x509.ReasonFlags.superseded
    assert _verify(path, pki.make_bundle(ca_dir, tmp_path / "bundle.pem"))[:2] == (True, "valid")


@pytest.mark.parametrize(("arguments", "message"), [
    (("--reason", "stolen"), "--reason must be one of"),
    (("--reason", "key-compromise"), "go together"),
    (("--compromised-since", "2026-01-01T00:00:00Z"), "go together"),
    (("--reason", "key-compromise", "--compromised-since", "yesterday"), "not an ISO 8601 time"),
    (("--reason", "key-compromise", "--compromised-since", "2026-01-01T00:00:00"), "needs a time zone"),
])
def test_revoke_bad_input_is_one_line_exit_2(tmp_path: Path, arguments: tuple[str, ...], message: str) -> None:
    pki.init_ca("Example Police", tmp_path / "ca")
    pki.issue_station(tmp_path / "ca", "station-01", tmp_path / "station-01")
    result = _revoke("--ca", str(tmp_path / "ca"), "--station-id", "station-01", *arguments)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.strip().count("\n") == 0


def test_the_station_refuses_a_tsa_whose_timestamping_eku_is_not_critical(world: PkiWorld) -> None:
    """The station's own TSA check is as strict as the verifier's (which says ``untrusted_timestamp``)."""
    from certs import ltv
    from certs.pki import is_tsa_certificate

    lax = kit.make_tsa(world.ca_dir, critical=False)
    assert not is_tsa_certificate(lax.certificate)
    assert is_tsa_certificate(kit.make_tsa(world.ca_dir).certificate)
    signed = kit.sign_raw(record_for(world.station, demo=False), world.station, lax.stamper())
    problem = ltv._foreign_timestamps(signed, world.station.chain)
    assert problem is not None and "is not a TSA certificate" in problem, problem
