"""Station PKI: CA directory operations, key file modes, CRL, trust bundle parsing, signer loading."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from certs import pki
from certs.errors import NoSignerConfigured, PkiError, TrustBundleError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    """A fresh CA per test (these tests mutate it)."""
    directory = tmp_path / "ca"
    pki.init_ca("Example Police", directory)
    return directory


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_ca_writes_private_key_0600_and_a_ca_certificate(ca_dir: Path) -> None:
    assert _mode(ca_dir / "ca.key") == 0o600
    assert _mode(ca_dir) == 0o700
    certificate = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    organisation = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert organisation == "Example Police"
    crl = x509.load_pem_x509_crl((ca_dir / "crl.pem").read_bytes())
    assert len(list(crl)) == 0


def test_init_ca_never_overwrites_a_ca(ca_dir: Path) -> None:
    key_before = (ca_dir / "ca.key").read_bytes()
    with pytest.raises(PkiError, match="already holds a CA"):
        pki.init_ca("Someone", ca_dir)
    assert (ca_dir / "ca.key").read_bytes() == key_before


def test_issue_station_installs_key_certificate_and_chain(ca_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    serial = pki.issue_station(ca_dir, "station-07", state)
    assert _mode(state / "pki" / "station.key") == 0o600
    assert _mode(state / "pki") == 0o700
    certificate = x509.load_pem_x509_certificate((state / "pki" / "station.crt").read_bytes())
    assert certificate.serial_number == serial
    ca_certificate = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    certificate.verify_directly_issued_by(ca_certificate)
    assert (state / "pki" / "chain.pem").read_bytes() == (ca_dir / "ca.crt").read_bytes()
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.content_commitment and usage.digital_signature
    issued = json.loads((ca_dir / "ca.json").read_text())["issued"]
    assert [entry["serial"] for entry in issued] == [pki.format_serial(serial)]
    signer = pki.load_station_signer(state)
    assert signer.station_id == "station-07"
    assert "private_key" not in repr(signer)


def test_station_validity_follows_the_injected_clock(ca_dir: Path, tmp_path: Path) -> None:
    start = pki.utc_now() - timedelta(days=800)
    pki.issue_station(ca_dir, "old", tmp_path / "state", clock=lambda: start, valid_days=10)
    signer = pki.load_station_signer(tmp_path / "state")
    assert signer.certificate.not_valid_after_utc < pki.utc_now() - timedelta(days=700)


def test_issue_station_rejects_bad_ids(ca_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="not valid"):
        pki.issue_station(ca_dir, "../etc", tmp_path)


def test_issue_station_needs_a_ca_dir(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="is not a CA directory"):
        pki.issue_station(tmp_path, "station-01", tmp_path / "state")


def test_revoke_by_serial_and_by_station(ca_dir: Path, tmp_path: Path) -> None:
    first = pki.issue_station(ca_dir, "station-a", tmp_path / "a")
    second = pki.issue_station(ca_dir, "station-b", tmp_path / "b")
    third = pki.issue_station(ca_dir, "station-b", tmp_path / "b2")
    assert pki.revoke(ca_dir, serial=pki.format_serial(first)) == (first,)
    assert set(pki.revoke(ca_dir, station_id="station-b")) == {second, third}
    crl = x509.load_pem_x509_crl((ca_dir / "crl.pem").read_bytes())
    assert {entry.serial_number for entry in crl} == {first, second, third}
    with pytest.raises(PkiError, match="already revoked"):
        pki.revoke(ca_dir, serial=first)
    with pytest.raises(PkiError, match="no unrevoked certificate"):
        pki.revoke(ca_dir, station_id="station-b")
    with pytest.raises(PkiError, match="was not issued by this CA"):
        pki.revoke(ca_dir, serial="ABCDEF")
    with pytest.raises(PkiError, match="exactly one"):
        pki.revoke(ca_dir)
    with pytest.raises(PkiError, match="not a hexadecimal"):
        pki.revoke(ca_dir, serial="xyz")


def test_bundle_is_ca_plus_current_crl(ca_dir: Path, tmp_path: Path) -> None:
    serial = pki.issue_station(ca_dir, "station-a", tmp_path / "a")
    pki.revoke(ca_dir, serial=serial)
    bundle_path = pki.make_bundle(ca_dir, tmp_path / "bundle.pem")
    bundle = pki.parse_trust_bundle(bundle_path.read_bytes())
    pem = bundle.ca_certificate.public_bytes(serialization.Encoding.PEM)
    assert pem == (ca_dir / "ca.crt").read_bytes()
    assert bundle.crl.get_revoked_certificate_by_serial_number(serial) is not None
    assert bundle.organisation() == "Example Police"
    assert b"PRIVATE KEY" not in bundle_path.read_bytes()


def test_bundle_problems_are_explained(ca_dir: Path, tmp_path: Path) -> None:
    certificate = (ca_dir / "ca.crt").read_bytes()
    crl = (ca_dir / "crl.pem").read_bytes()
    other = tmp_path / "other"
    pki.init_ca("Other", other)
    other_crl = (other / "crl.pem").read_bytes()
    cases = {
        certificate: "exactly one CRL",
        crl: "exactly one CA certificate",
        certificate + certificate + crl: "exactly one CA certificate, found 2",
        certificate + other_crl: "not issued by its CA",
        b"garbage": "exactly one CA certificate, found 0",
        (ca_dir / "ca.key").read_bytes() + certificate + crl: "unexpected PRIVATE KEY block",
    }
    for data, message in cases.items():
        with pytest.raises(TrustBundleError, match=message):
            pki.parse_trust_bundle(data)
    later = pki.utc_now() + timedelta(days=pki.DEFAULT_CRL_DAYS + 1)
    with pytest.raises(TrustBundleError, match="CRL expired"):
        pki.parse_trust_bundle(certificate + crl, now=later)


def test_forged_crl_signature_is_refused(ca_dir: Path, tmp_path: Path) -> None:
    impostor = tmp_path / "impostor"
    pki.init_ca("Example Police", impostor)  # same name, different key
    with pytest.raises(TrustBundleError, match="signature is not valid"):
        pki.parse_trust_bundle((ca_dir / "ca.crt").read_bytes() + (impostor / "crl.pem").read_bytes())


def test_load_station_signer_errors(ca_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(NoSignerConfigured, match="issue-station"):
        pki.load_station_signer(tmp_path / "nothing")
    state = tmp_path / "state"
    pki.issue_station(ca_dir, "station-01", state)
    key = state / "pki" / "station.key"
    key.chmod(0o644)
    with pytest.raises(PkiError, match="readable by other users"):
        pki.load_station_signer(state)
    key.chmod(0o600)
    other = tmp_path / "other"
    pki.issue_station(ca_dir, "station-02", other)
    key_text = key.read_bytes()
    key.write_bytes((other / "pki" / "station.key").read_bytes())
    with pytest.raises(PkiError, match="does not belong to"):
        pki.load_station_signer(state)
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nSECRETSECRET\n-----END PRIVATE KEY-----\n")
    with pytest.raises(PkiError) as raised:
        pki.load_station_signer(state)
    # Private key material never appears in a message.
    assert "SECRET" not in str(raised.value)
    assert key_text.decode() not in str(raised.value)


def test_concurrent_issues_lose_no_entry(ca_dir: Path, tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        serials = list(pool.map(lambda index: pki.issue_station(ca_dir, f"s{index}", tmp_path / f"s{index}"),
                                range(8)))
    issued = json.loads((ca_dir / "ca.json").read_text())["issued"]
    assert sorted(entry["serial"] for entry in issued) == sorted(map(pki.format_serial, serials))
    assert not (ca_dir / ".lock").exists()


def test_a_stale_lock_is_explained(ca_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (ca_dir / ".lock").touch()
    monkeypatch.setattr(pki, "_LOCK_WAIT_SECONDS", 0.1)
    with pytest.raises(PkiError, match="locked by another pki command"):
        pki.revoke(ca_dir, station_id="nobody")
