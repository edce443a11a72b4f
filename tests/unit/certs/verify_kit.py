"""Test kit for the verifier's tests: certificates of every wrong profile, test TSAs, B-LTA documents.

Everything is minted with the real trusted CA key of the session's :class:`PkiWorld` (or a foreign
one), so each wrong profile differs from a genuine station in exactly the property under test.
The TSAs are pyHanko's in-process test time stamper (RSA only) with certificates our CA issues;
signing is the station's own (:func:`certs.issue.sign_pdf`: B-LTA when given a time stamper).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier
from pyhanko.sign.timestamps import DummyTimeStamper

from certs import issue, ltv, pki
from certs.issue import sign_pdf
from certs.oids import STATION_SIGNING_EKU
from certs.pki import StationSigner
from certs.record import SanitisationRecord
from certs.render import render_pdf
from tests.unit.certs.certs_test_kit import EssV2TimeStamper, PkiWorld

_DER = serialization.Encoding.DER
_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
"""One RSA key for every test TSA (pyHanko's test stamper is RSA-only; generating keys costs time)."""


def ca_of(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA certificate and key in ``ca_dir``."""
    key = serialization.load_pem_private_key((ca_dir / pki.CA_KEY).read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return x509.load_pem_x509_certificate((ca_dir / pki.CA_CERT).read_bytes()), key


def mint(
    ca_dir: Path, *, common_name: str = "station-01", unit: str | None = pki.STATION_OU,
    extended: Sequence[ObjectIdentifier] | None = (STATION_SIGNING_EKU,), extended_critical: bool = False,
    ca: bool = False, non_repudiation: bool = True, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
    not_before: datetime | None = None, days: int = 730,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey]:
    """A certificate issued by the CA in ``ca_dir`` with exactly the given profile, and its key."""
    ca_certificate, ca_key = ca_of(ca_dir)
    key = key or ec.generate_private_key(ec.SECP256R1())
    start = not_before or pki.utc_now() - timedelta(minutes=5)
    names = [x509.NameAttribute(NameOID.COMMON_NAME, common_name),
             x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Police")]
    if unit is not None:
        names.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(names))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=non_repudiation, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
            encipher_only=False, decipher_only=False), critical=True)
    )
    if extended is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(extended)), critical=extended_critical)
    return builder.sign(ca_key, hashes.SHA256()), key


def signer_from(certificate: x509.Certificate, key: object, ca_dir: Path,
                station_id: str = "station-01") -> StationSigner:
    """A StationSigner for any certificate and key (the record's station id is ``station_id``)."""
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    crl = x509.load_pem_x509_crl((ca_dir / pki.CA_CRL).read_bytes())
    return StationSigner(station_id, certificate, (ca_of(ca_dir)[0],), key, crl)


@dataclass(frozen=True)
class KitTsa:
    """A TSA for the tests: its certificate and a pyHanko time stamper that signs with it."""

    certificate: x509.Certificate

    def stamper(self, at: datetime | None = None) -> DummyTimeStamper:
        """A stamper whose tokens say ``at`` (default: the real time)."""
        return EssV2TimeStamper(
            tsa_cert=asn1_x509.Certificate.load(self.certificate.public_bytes(_DER)),
            tsa_key=asn1_keys.PrivateKeyInfo.load(_RSA_KEY.private_bytes(
                _DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
            fixed_dt=at,
        )


def make_tsa(ca_dir: Path, *, time_stamping: bool = True, critical: bool = True, days: int = 4383,
             not_before: datetime | None = None) -> KitTsa:
    """A TSA certificate issued by the CA in ``ca_dir`` (timeStamping EKU critical unless told otherwise)."""
    extended = [ExtendedKeyUsageOID.TIME_STAMPING] if time_stamping else [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    certificate, _key = mint(ca_dir, common_name="Example Police TSA", unit="wipe-agent timestamping authority",
                             extended=extended, extended_critical=critical, key=_RSA_KEY, days=days,
                             not_before=not_before)
    return KitTsa(certificate)


def crl_of(world: PkiWorld) -> x509.CertificateRevocationList:
    """The trusted CA's current CRL file (what a station embeds at signing time)."""
    return x509.load_pem_x509_crl((world.ca_dir / pki.CA_CRL).read_bytes())


def sign_with(record: SanitisationRecord, signer: StationSigner, *, stamper: DummyTimeStamper | None = None,
              rendered: SanitisationRecord | None = None) -> bytes:
    """Sign ``record`` (rendering ``rendered`` instead when given: a page that lies) with ``signer``."""
    return sign_pdf(render_pdf(rendered or record), record, signer, timestamper=stamper)


def sign_raw(record: SanitisationRecord, signer: StationSigner, stamper: DummyTimeStamper) -> bytes:
    """Only the signed revision, with whatever signature timestamp ``stamper`` gives: what an attacker
    holding a station key gets from pyHanko, without the station's own checks of the TSA."""
    return issue._sign_once(render_pdf(record), record, signer, stamper)


def add_document_timestamp(signed: bytes, stamper: DummyTimeStamper) -> bytes:
    """One more document timestamp, the way ``certificates extend`` adds one (:mod:`certs.ltv`)."""
    return ltv.add_document_timestamp(signed, stamper)


def bundle_with(world: PkiWorld, path: Path, crl: x509.CertificateRevocationList,
                tsa_certificates: Sequence[x509.Certificate] = ()) -> Path:
    """A trust bundle file holding the trusted CA, ``crl`` and the given TSA certificates."""
    ca_certificate = x509.load_pem_x509_certificate((world.ca_dir / pki.CA_CERT).read_bytes())
    pem = serialization.Encoding.PEM
    path.write_bytes(ca_certificate.public_bytes(pem) + crl.public_bytes(pem)
                     + b"".join(item.public_bytes(pem) for item in tsa_certificates))
    return path


def crl_revoking(world: PkiWorld, serial: int, revoked_at: datetime, *, this_update: datetime,
                 days: int = 90, key_compromise_since: datetime | None = None) -> x509.CertificateRevocationList:
    """A CRL of the trusted CA listing ``serial`` as revoked at ``revoked_at`` (keyCompromise with an
    invalidity date when ``key_compromise_since`` is given)."""
    ca_certificate, ca_key = ca_of(world.ca_dir)
    entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(revoked_at)
    if key_compromise_since is not None:
        entry = (entry.add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
                 .add_extension(x509.InvalidityDate(key_compromise_since), critical=False))
    return (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_certificate.subject)
        .last_update(this_update)
        .next_update(this_update + timedelta(days=days))
        .add_revoked_certificate(entry.build())
        .add_extension(x509.CRLNumber(1000 + int(this_update.timestamp()) % 1000), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
