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
from certs.files import make_private_directory

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


# --- profiles and lifetimes (issue 10) ------------------------------------------------------------


def _close(actual: timedelta, expected: timedelta) -> bool:
    """Certificates store whole seconds, so a lifetime is exact to within one second."""
    return abs(actual - expected) < timedelta(seconds=1)


def _key_usage(certificate: x509.Certificate) -> set[str]:
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
             "key_agreement", "key_cert_sign", "crl_sign"]
    return {name for name in names if getattr(usage, name)}


def test_station_profile_is_a_station_signer_and_nothing_else(ca_dir: Path, tmp_path: Path) -> None:
    from certs.oids import STATION_CERTIFICATE_POLICY, STATION_SIGNING_EKU

    pki.issue_station(ca_dir, "station-07", tmp_path / "state")
    certificate = x509.load_pem_x509_certificate((tmp_path / "state" / "pki" / "station.crt").read_bytes())
    extensions = certificate.extensions
    constraints = extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    assert extensions.get_extension_for_class(x509.KeyUsage).critical
    assert _key_usage(certificate) == {"digital_signature", "content_commitment"}
    assert list(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [STATION_SIGNING_EKU]
    policies = extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [policy.policy_identifier for policy in policies] == [STATION_CERTIFICATE_POLICY]
    assert certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "station-07"
    assert certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == pki.STATION_OU
    ca_certificate = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    aki = extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    ca_ski = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert aki == ca_ski
    assert not pki.is_tsa_certificate(certificate)
    # The station receives the CRL current at issue, to embed in what it signs.
    assert (tmp_path / "state" / "pki" / "crl.pem").read_bytes() == (ca_dir / "crl.pem").read_bytes()


def test_ca_profile_signs_only_certificates_and_crls(tmp_path: Path) -> None:
    now = pki.utc_now()
    pki.init_ca("Example Police", tmp_path / "ca", valid_days=100, crl_days=7, clock=lambda: now)
    certificate = x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.crt").read_bytes())
    assert _key_usage(certificate) == {"key_cert_sign", "crl_sign"}
    assert _close(certificate.not_valid_after_utc - now, timedelta(days=100))
    crl = x509.load_pem_x509_crl((tmp_path / "ca" / "crl.pem").read_bytes())
    assert crl.next_update_utc is not None and _close(crl.next_update_utc - now, timedelta(days=7))
    default = pki.init_ca("Example Police", tmp_path / "default", clock=lambda: now)
    default_certificate = x509.load_pem_x509_certificate(default.read_bytes())
    assert _close(default_certificate.not_valid_after_utc - now, timedelta(days=pki.DEFAULT_CA_DAYS))
    assert pki.DEFAULT_CA_DAYS >= 20 * 365


def test_tsa_profile_key_mode_and_lifetime_capped_by_the_ca(tmp_path: Path) -> None:
    now = pki.utc_now()
    pki.init_ca("Example Police", tmp_path / "ca", valid_days=3000, clock=lambda: now)
    issued = pki.issue_tsa(tmp_path / "ca", tmp_path / "tsa", clock=lambda: now)
    assert _mode(issued.key_path) == 0o600
    certificate = x509.load_pem_x509_certificate(issued.certificate_path.read_bytes())
    usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert usage.critical and list(usage.value) == [x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]
    assert certificate.extensions.get_extension_for_class(x509.KeyUsage).critical
    assert _key_usage(certificate) == {"digital_signature", "content_commitment"}
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert pki.is_tsa_certificate(certificate)
    # Default 12 years, but never past the CA (3000 days here).
    ca_certificate = x509.load_pem_x509_certificate((tmp_path / "ca" / "ca.crt").read_bytes())
    assert certificate.not_valid_after_utc == ca_certificate.not_valid_after_utc
    with pytest.raises(PkiError, match="already holds a TSA key"):
        pki.issue_tsa(tmp_path / "ca", tmp_path / "tsa")
    assert pki.DEFAULT_TSA_DAYS >= 10 * 365
    short = pki.issue_tsa(tmp_path / "ca", tmp_path / "short", valid_days=30, clock=lambda: now)
    assert _close(short.not_after - now, timedelta(days=30))


def test_lifetimes_are_validated(tmp_path: Path) -> None:
    for bad in (0, -1, 40000):
        with pytest.raises(PkiError, match="whole number of days"):
            pki.init_ca("Example Police", tmp_path / f"ca{bad}", valid_days=bad)


def test_bundle_states_its_period_and_carries_the_tsa(ca_dir: Path, tmp_path: Path) -> None:
    tsa = pki.issue_tsa(ca_dir, tmp_path / "tsa")
    bundle_path = pki.make_bundle(ca_dir, tmp_path / "bundle.pem")
    text = bundle_path.read_text()
    assert "# issued at " in text and "next update" in text and "# TSA certificate" in text
    bundle = pki.parse_trust_bundle(bundle_path.read_bytes())
    assert [item.public_bytes(serialization.Encoding.PEM) for item in bundle.tsa_certificates] == [
        tsa.certificate_path.read_bytes()
    ]
    later = pki.utc_now() + timedelta(days=pki.DEFAULT_CRL_DAYS + 1)
    stale = pki.parse_trust_bundle(bundle_path.read_bytes(), now=later, require_current_crl=False)
    assert not stale.crl_current(later)
    # A certificate that is neither the CA nor a TSA it issued has no place in a bundle.
    station = tmp_path / "state"
    pki.issue_station(ca_dir, "station-01", station)
    with pytest.raises(TrustBundleError, match="is not a TSA certificate"):
        pki.parse_trust_bundle(bundle_path.read_bytes() + (station / "pki" / "station.crt").read_bytes())
    other = tmp_path / "other"
    pki.init_ca("Other", other)
    foreign = pki.issue_tsa(other, tmp_path / "foreign-tsa")
    with pytest.raises(TrustBundleError, match="was not issued by its CA"):
        pki.parse_trust_bundle(bundle_path.read_bytes() + foreign.certificate_path.read_bytes())


def test_station_crl_install_refuses_foreign_and_older_crls(ca_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    serial = pki.issue_station(ca_dir, "station-01", state)
    old_crl = (ca_dir / "crl.pem").read_bytes()
    pki.revoke(ca_dir, serial=serial)
    bundle = pki.make_bundle(ca_dir, tmp_path / "bundle.pem")
    crl = pki.install_station_crl(state, bundle.read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    loaded = pki.load_station_crl(state)
    assert loaded is not None and loaded.get_revoked_certificate_by_serial_number(serial) is not None
    with pytest.raises(PkiError, match="older than the installed one"):
        pki.install_station_crl(state, old_crl)
    other = tmp_path / "other"
    pki.init_ca("Example Police", other)
    with pytest.raises(PkiError, match="not signed by this station's CA"):
        pki.install_station_crl(state, (other / "crl.pem").read_bytes())


def test_validator_profile_carries_only_the_validator_eku(ca_dir: Path, tmp_path: Path) -> None:
    from certs.oids import STATION_SIGNING_EKU, VALIDATOR_SIGNING_EKU

    assert VALIDATOR_SIGNING_EKU != STATION_SIGNING_EKU
    issued = pki.issue_person(ca_dir, "Alex Officer", "validator", tmp_path / "people")
    assert _mode(issued.key_path) == 0o600 and _mode(issued.certificate_path) == 0o600
    assert issued.key_path.name == "alex-officer.key"
    certificate = x509.load_pem_x509_certificate(issued.certificate_path.read_bytes())
    extensions = certificate.extensions
    assert list(extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [VALIDATOR_SIGNING_EKU]
    assert not extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert _key_usage(certificate) == {"digital_signature", "content_commitment"}
    assert certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == pki.VALIDATOR_OU
    ca_certificate = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    certificate.verify_directly_issued_by(ca_certificate)
    with pytest.raises(PkiError, match="refusing to overwrite"):
        pki.issue_person(ca_dir, "Alex Officer", "validator", tmp_path / "people")
    with pytest.raises(PkiError, match="unknown role"):
        pki.issue_person(ca_dir, "Sam", "station", tmp_path / "people")
    with pytest.raises(PkiError, match="U\\+202E"):
        pki.issue_person(ca_dir, "Sam\u202e", "validator", tmp_path / "people")
    # A person's key loads as a signer only with a station of the same CA.
    pki.issue_station(ca_dir, "station-07", tmp_path / "state")
    station = pki.load_station_signer(tmp_path / "state")
    signer = pki.load_person_signer(issued.key_path, issued.certificate_path, station)
    assert signer.station_id == "Alex Officer" and signer.chain == station.chain
    other = tmp_path / "other-ca"
    pki.init_ca("Someone Else", other)
    pki.issue_station(other, "station-99", tmp_path / "other-state")
    foreign = pki.load_station_signer(tmp_path / "other-state")
    with pytest.raises(PkiError, match="not issued by this station's organisation CA"):
        pki.load_person_signer(issued.key_path, issued.certificate_path, foreign)


def test_directories_made_by_init_ca_and_issue_station_are_private_under_umask_000(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        pki.init_ca("Test Org", tmp_path / "new" / "ca")
        pki.issue_station(tmp_path / "new" / "ca", "station-07", tmp_path / "st" / "state")
    finally:
        os.umask(previous)
    # each parent the command made, not only the last component, and none of them 0777
    assert _mode(tmp_path / "new") == 0o700
    assert _mode(tmp_path / "new" / "ca") == 0o700
    assert _mode(tmp_path / "st") == 0o750
    assert _mode(tmp_path / "st" / "state") == 0o750
    assert _mode(tmp_path / "st" / "state" / "pki") == 0o700
    assert _mode(tmp_path) == 0o700  # what existed is left as it was


def test_make_private_directory_refuses_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        make_private_directory(tmp_path / "file")
