"""Station PKI: the organisation CA, station signing certificates, revocation and the trust bundle.

A CA directory holds::

    ca.key      the CA private key (0600, never logged)
    ca.crt      the CA certificate (PEM)
    ca.json     organisation name, CRL number, every station certificate issued and its revocation
    crl.pem     the current certificate revocation list

    tsa/        (optional) the organisation TSA made by ``issue-tsa``: tsa.key, tsa.crt, chain.pem

A station's state directory holds ``pki/station.key`` (0600), ``pki/station.crt``,
``pki/chain.pem`` (the CA certificate, embedded in every signature so partners can build the
chain) and ``pki/crl.pem``: the CA's CRL as it was when the station certificate was issued or last
refreshed (``pki crl --install``). That CRL is what the station embeds in the DSS of every document
it signs ("the CRL current at signing time"); the station warns when it is past its next update.
The *trust bundle* is what partners receive: a readable header stating when it was made and until
when its CRL is current, the CA certificate, the current CRL and the TSA certificate(s) the CA
issued, in one PEM file.

Profiles (what each certificate may do; the verifier enforces them):

* CA: BasicConstraints CA=true, pathLen 0; KeyUsage keyCertSign + cRLSign only. It signs
  certificates and CRLs, nothing else.
* Station: CA=false (critical); KeyUsage digitalSignature + contentCommitment (critical); EKU
  :data:`certs.oids.STATION_SIGNING_EKU` only; policy :data:`certs.oids.STATION_CERTIFICATE_POLICY`;
  CN = station id, OU = ``wipe-agent station``; SKI/AKI.
* TSA: CA=false (critical); KeyUsage digitalSignature + contentCommitment (critical); EKU
  timeStamping only, critical (RFC 3161 section 2.3); SKI/AKI.
* Fleet signer: CA=false (critical); KeyUsage digitalSignature + contentCommitment (critical); EKU
  :data:`certs.oids.FLEET_SIGNING_EKU` only; CN = the fleet's name, OU = ``wipe-agent fleet signing``
  (not the TLS server's ``wipe-agent fleet``: the unit names one purpose, as the EKU does); SKI/AKI.

Lifetimes (all configurable on the command line):

* CA: :data:`DEFAULT_CA_DAYS` (20 years). It must outlive every station and TSA certificate it
  issues, and a partner must be able to check a document for the six-plus years evidence is kept
  after the last station certificate expires.
* Station: :data:`DEFAULT_STATION_DAYS` (2 years). A station key sits on a machine on a workbench;
  a short life bounds the damage of an unnoticed theft. Documents outlive it through timestamps.
* TSA: :data:`DEFAULT_TSA_DAYS` (12 years). Its timestamps prove when documents were signed; a
  document timestamp stays checkable while the TSA certificate is valid, and ``certificates
  extend`` adds a fresh archive timestamp well before it ages out.
* CRL next update: :data:`DEFAULT_CRL_DAYS` (90 days). Partners need a fresh bundle only to learn of
  *new* revocations; old timestamped documents are checked with the revocation data they embed.

Both the station and the TSA certificate are capped at the CA's own expiry.

Keys are EC P-256 with SHA-256 signatures: small, fast, and accepted by pyHanko and poppler.
Every function that reads the time takes a ``clock`` so tests can issue expired certificates.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.errors import NoSignerConfigured, PkiError, TrustBundleError
from certs.files import STATE_DIRECTORY_MODE, make_private_directory
from certs.oids import FLEET_SIGNING_EKU, STATION_CERTIFICATE_POLICY, STATION_SIGNING_EKU, VALIDATOR_SIGNING_EKU
from certs.record import is_identifier, text_problem

Clock = Callable[[], datetime]
"""A function returning the current time (timezone-aware UTC)."""

CA_KEY = "ca.key"
CA_CERT = "ca.crt"
CA_STATE = "ca.json"
CA_CRL = "crl.pem"
STATION_DIR = "pki"
STATION_KEY = "station.key"
STATION_CERT = "station.crt"
STATION_CHAIN = "chain.pem"
STATION_CRL = "crl.pem"
TSA_DIR = "tsa"
TSA_KEY = "tsa.key"
TSA_CERT = "tsa.crt"
TSA_CHAIN = "chain.pem"
STATION_OU = "wipe-agent station"
"""The organisational unit every station certificate carries."""
TSA_OU = "wipe-agent timestamping authority"
VALIDATOR_OU = "wipe-agent validator"
"""The organisational unit of a validation officer's certificate (``pki issue-person --role validator``)."""
PERSON_ROLES = {"validator": (VALIDATOR_OU, VALIDATOR_SIGNING_EKU)}
"""``pki issue-person --role`` → the unit and the one extended key usage that role's certificate carries."""
FLEET_OU = "wipe-agent fleet signing"
"""The organisational unit of the fleet's signing certificate (``pki issue-fleet``): it signs fleet manifests only."""
FLEET_KEY = "fleet.key"
FLEET_CERT = "fleet.crt"
FLEET_CHAIN = "chain.pem"
FLEET_CRL = "crl.pem"
DEFAULT_FLEET_DAYS = 730
"""2 years, like a station: the fleet host's key is online."""
DEFAULT_PERSON_DAYS = 730
"""2 years, like a station: a person's key is as exposed as a station's."""

DEFAULT_CA_DAYS = 7305
"""20 years: outlives every station and TSA certificate and the evidence retention period."""
DEFAULT_STATION_DAYS = 730
"""2 years: bounds the damage of a stolen station key; documents outlive it through timestamps."""
DEFAULT_TSA_DAYS = 4383
"""12 years: timestamps stay checkable this long; ``certificates extend`` renews them before."""
DEFAULT_CRL_DAYS = 90
"""A bundle's CRL is trusted this long; partners then need a fresh bundle (hence a long default)."""

# Certificates back-dated slightly so a station whose clock is a little behind can still sign.
_BACKDATE = timedelta(minutes=5)
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL)


def utc_now() -> datetime:
    """The default clock."""
    return datetime.now(UTC)


def format_serial(serial: int) -> str:
    """A certificate serial as upper-case hex, the form the CLI prints and accepts."""
    return f"{serial:X}"


def parse_serial(text: str) -> int:
    """Parse a serial written in hex (optionally with ``0x`` or ``:`` separators)."""
    cleaned = text.strip().replace(":", "")
    if cleaned.lower().startswith("0x"):
        cleaned = cleaned[2:]
    try:
        value = int(cleaned, 16)
    except ValueError:
        raise PkiError(f"serial {text!r} is not a hexadecimal number") from None
    if value <= 0:
        raise PkiError(f"serial {text!r} must be positive")
    return value


@dataclass(frozen=True)
class StationSigner:
    """A station's signing key with its certificate and the chain up to the organisation CA.

    Build it with :func:`load_station_signer`; the constructor does no I/O.
    """

    station_id: str
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    crl: x509.CertificateRevocationList | None = field(default=None, repr=False)
    """The CA's CRL installed beside the key (``pki/crl.pem``), embedded in every DSS."""

    def pyhanko_signer(self) -> Any:
        """A pyHanko ``SimpleSigner`` for this key, with the chain registered so it is embedded."""
        # Imported here: verification-only users of certs.pki never pay for pyHanko's signer stack.
        from asn1crypto import keys as asn1_keys
        from asn1crypto import x509 as asn1_x509
        from pyhanko.sign.signers import SimpleSigner
        from pyhanko_certvalidator.registry import SimpleCertificateStore

        der = serialization.Encoding.DER
        key_info = asn1_keys.PrivateKeyInfo.load(
            self.private_key.private_bytes(
                der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        chain = [asn1_x509.Certificate.load(item.public_bytes(der)) for item in self.chain]
        return SimpleSigner(
            signing_cert=asn1_x509.Certificate.load(self.certificate.public_bytes(der)),
            signing_key=key_info,
            cert_registry=SimpleCertificateStore.from_certs(chain),  # type: ignore[no-untyped-call]
        )


@dataclass(frozen=True)
class IssuedTsa:
    """What :func:`issue_tsa` reports about a new TSA certificate."""

    serial: int
    name: str
    not_before: datetime
    not_after: datetime
    certificate_path: Path
    key_path: Path


@dataclass(frozen=True)
class IssuedStation:
    """What :func:`issue_station_details` reports about a new station certificate."""

    serial: int
    station_id: str
    not_before: datetime
    not_after: datetime
    certificate_path: Path


# --- file helpers ---------------------------------------------------------------------------------


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write via a temporary file created with ``mode`` (so a key is never briefly world-readable)."""
    make_private_directory(path.parent)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, mode)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PkiError(f"{what} not found: {path}") from None
    except OSError as error:
        raise PkiError(f"cannot read {what} {path}: {error.strerror}") from None


def _load_private_key(path: Path, what: str) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path, what), password=None)
    except (ValueError, TypeError):
        # Never echo the file content: it is a private key.
        raise PkiError(f"{what} {path} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{what} {path} is not an EC key")
    return key


def _load_certificate(path: Path, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_read(path, what))
    except ValueError:
        raise PkiError(f"{what} {path} is not a PEM certificate") from None


def load_certificates(path: Path, what: str) -> tuple[x509.Certificate, ...]:
    """Every certificate of a PEM file; :class:`PkiError` with ``what`` in the message otherwise."""
    return _load_certificates(path, what)


def _load_certificates(path: Path, what: str) -> tuple[x509.Certificate, ...]:
    try:
        certificates = x509.load_pem_x509_certificates(_read(path, what))
    except ValueError:
        raise PkiError(f"{what} {path} holds no valid PEM certificate") from None
    return tuple(certificates)


def _public_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


# --- the CA ---------------------------------------------------------------------------------------

_LOCK_NAME = ".lock"
_LOCK_WAIT_SECONDS = 10.0


@contextmanager
def _ca_lock(ca_dir: Path) -> Iterator[None]:
    """Serialise CA operations: two concurrent issues must not lose an entry in ca.json.

    A lock file created with O_EXCL works on every OS (fcntl would not), at the price of a stale
    lock after a crash, which the message explains.
    """
    lock = ca_dir / _LOCK_NAME
    deadline = time.monotonic() + _LOCK_WAIT_SECONDS
    while True:
        try:
            os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            break
        except FileExistsError:
            if time.monotonic() > deadline:
                raise PkiError(
                    f"CA directory {ca_dir} is locked by another pki command; if none is running, "
                    f"delete {lock}"
                ) from None
            time.sleep(0.05)
        except FileNotFoundError:
            raise PkiError(f"{ca_dir} is not a CA directory (it does not exist)") from None
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


@dataclass
class _CaState:
    organisation: str
    crl_number: int
    issued: list[dict[str, Any]]


def _load_ca(ca_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, _CaState]:
    if not (ca_dir / CA_KEY).exists():
        raise PkiError(f"{ca_dir} is not a CA directory (no {CA_KEY}); create one with init-ca")
    key = _load_private_key(ca_dir / CA_KEY, "CA key")
    certificate = _load_certificate(ca_dir / CA_CERT, "CA certificate")
    if _public_der(key.public_key()) != _public_der(_ec_public(certificate)):
        raise PkiError(f"{ca_dir}: {CA_KEY} does not belong to {CA_CERT}")
    try:
        raw = json.loads(_read(ca_dir / CA_STATE, "CA state"))
        state = _CaState(
            organisation=str(raw["organisation"]),
            crl_number=int(raw["crl_number"]),
            issued=list(raw["issued"]),
        )
    except (ValueError, KeyError, TypeError):
        raise PkiError(f"{ca_dir / CA_STATE} is damaged") from None
    return key, certificate, state


def _save_state(ca_dir: Path, state: _CaState) -> None:
    data = {"organisation": state.organisation, "crl_number": state.crl_number, "issued": state.issued}
    _write_atomic(ca_dir / CA_STATE, json.dumps(data, indent=2, sort_keys=True).encode() + b"\n", 0o644)


def _ec_public(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise PkiError("certificate key is not an EC key")
    return key


def _check_days(days: int, option: str) -> None:
    """A lifetime is a positive whole number of days (at most 100 years: a typo, not a plan)."""
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 36525:
        raise PkiError(f"{option} must be a whole number of days from 1 to 36525, got {days!r}")


def init_ca(
    org: str, out_dir: Path, *, clock: Clock = utc_now, valid_days: int = DEFAULT_CA_DAYS,
    crl_days: int = DEFAULT_CRL_DAYS,
) -> Path:
    """Create an organisation CA in ``out_dir`` (key, self-signed certificate, empty CRL).

    Refuses to touch a directory that already holds a CA key. Returns the CA certificate's path.
    """
    _check_days(valid_days, "--valid-days")
    _check_days(crl_days, "--crl-days")
    org = org.strip()
    if not org or any(ord(character) < 32 for character in org):
        raise PkiError("organisation name must be non-empty printable text")
    if (out_dir / CA_KEY).exists():
        raise PkiError(f"{out_dir} already holds a CA; refusing to overwrite {CA_KEY}")
    # the directory is made private (0700) below: never do that to one that holds other things
    # (``--out /tmp`` once left /tmp mode 0700 and broke every other user of the machine)
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise PkiError(f"{out_dir} is not empty; give init-ca a new or empty directory for the CA")
    if out_dir.exists() and not out_dir.is_dir():
        raise PkiError(f"{out_dir} exists and is not a directory")
    make_private_directory(out_dir)
    os.chmod(out_dir, 0o700)
    now = clock()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, f"{org} sanitisation CA"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
    ])
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_atomic(out_dir / CA_KEY, _private_pem(key), 0o600)
    _write_atomic(out_dir / CA_CERT, _certificate_pem(certificate), 0o644)
    state = _CaState(organisation=org, crl_number=0, issued=[])
    _write_crl(out_dir, key, certificate, state, now, crl_days)
    return out_dir / CA_CERT


def _write_crl(
    ca_dir: Path, key: ec.EllipticCurvePrivateKey, ca_certificate: x509.Certificate, state: _CaState,
    now: datetime, crl_days: int,
) -> x509.CertificateRevocationList:
    """Issue a new CRL (next CRL number) from ``state`` and save both."""
    state.crl_number += 1
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_certificate.subject)
        .last_update(now - _BACKDATE)
        .next_update(now + timedelta(days=crl_days))
        .add_extension(x509.CRLNumber(state.crl_number), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(_ec_public(ca_certificate)), critical=False
        )
    )
    for entry in state.issued:
        if entry.get("revoked_at"):
            revoked = (x509.RevokedCertificateBuilder()
                       .serial_number(int(entry["serial"], 16))
                       .revocation_date(datetime.fromisoformat(entry["revoked_at"])))
            if entry.get("reason"):
                revoked = revoked.add_extension(x509.CRLReason(REVOCATION_REASONS[entry["reason"]]), critical=False)
            if entry.get("compromised_since"):
                revoked = revoked.add_extension(
                    x509.InvalidityDate(datetime.fromisoformat(entry["compromised_since"]).replace(tzinfo=None)),
                    critical=False)
            builder = builder.add_revoked_certificate(revoked.build())
    crl = builder.sign(key, hashes.SHA256())
    _write_atomic(ca_dir / CA_CRL, crl.public_bytes(serialization.Encoding.PEM), 0o644)
    _save_state(ca_dir, state)
    return crl


def _new_leaf(ca_certificate: x509.Certificate, now: datetime, valid_days: int) -> tuple[
        ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey, int, datetime, datetime]:
    """A fresh P-256 key, serial and validity (back-dated a little, capped at the CA's expiry)."""
    not_before = now - _BACKDATE
    not_after = min(now + timedelta(days=valid_days), ca_certificate.not_valid_after_utc)
    if not_after <= now:
        raise PkiError(f"the CA certificate expired on {ca_certificate.not_valid_after_utc:%Y-%m-%d}")
    key = ec.generate_private_key(ec.SECP256R1())
    return key, key.public_key(), x509.random_serial_number(), not_before, not_after


def _leaf_certificate(
    ca_key: ec.EllipticCurvePrivateKey, ca_certificate: x509.Certificate, public: ec.EllipticCurvePublicKey,
    serial: int, not_before: datetime, not_after: datetime, *, name: str, organisation: str, unit: str,
    usage: x509.ObjectIdentifier, usage_critical: bool, policy: x509.ObjectIdentifier | None,
    content_commitment: bool = True, alt_names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    """The one end-entity profile (station, TSA, person, TLS client/server): CA=false, signing key usage,
    one EKU.

    Non-repudiation (content commitment) is what pyHanko requires of a document signer; a TLS key
    (``content_commitment=False``) signs handshakes only. Each kind differs only in its name, unit,
    extended key usage (and whether that is critical), policy and, for a TLS server, its subjectAltName.
    """
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
        ]))
        .issuer_name(ca_certificate.subject)
        .public_key(public)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=content_commitment, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=usage_critical)
    )
    if policy is not None:
        builder = builder.add_extension(x509.CertificatePolicies([x509.PolicyInformation(policy, None)]),
                                        critical=False)
    builder = (
        builder
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(_ec_public(ca_certificate)), critical=False)
    )
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def issue_station_details(
    ca_dir: Path, station_id: str, state_dir: Path, *, clock: Clock = utc_now,
    valid_days: int = DEFAULT_STATION_DAYS,
) -> IssuedStation:
    """Like :func:`issue_station` but returns what was issued (serial, validity, certificate path)."""
    with _ca_lock(ca_dir):
        if not is_identifier(station_id):
            raise PkiError(f"station id {station_id!r} is not valid (letters, digits, . _ : -; at most 64)")
        _check_days(valid_days, "--valid-days")
        ca_key, ca_certificate, state = _load_ca(ca_dir)
        if any(entry.get("kind") == "fleet" and str(entry.get("name") or "").casefold() == station_id.casefold()
               for entry in state.issued):  # the other way round from issue_fleet's refusal: never one name for both
            raise PkiError(f"{station_id!r} is the fleet's name at this CA; give the station a name of its own")
        key, public, serial, not_before, not_after = _new_leaf(ca_certificate, clock(), valid_days)
        certificate = _leaf_certificate(
            ca_key, ca_certificate, public, serial, not_before, not_after,
            name=station_id, organisation=state.organisation, unit=STATION_OU,
            # Not critical: generic PDF readers that do not know our OID must still show the
            # signature; our verifier requires this EKU and nothing else.
            usage=STATION_SIGNING_EKU, usage_critical=False, policy=STATION_CERTIFICATE_POLICY,
        )
        # Record the issue before installing, so a crash never leaves an unrevokable certificate.
        state.issued.append({
            "serial": format_serial(serial),
            "station_id": station_id,
            "not_before": not_before.isoformat(),
            "not_after": not_after.isoformat(),
            "revoked_at": None,
            "kind": "station",
        })
        _save_state(ca_dir, state)
        pki_dir = state_dir / STATION_DIR
        make_private_directory(state_dir, STATE_DIRECTORY_MODE)  # what the registry creates it with
        make_private_directory(pki_dir)
        os.chmod(pki_dir, 0o700)
        _write_atomic(pki_dir / STATION_KEY, _private_pem(key), 0o600)
        _write_atomic(pki_dir / STATION_CERT, _certificate_pem(certificate), 0o644)
        _write_atomic(pki_dir / STATION_CHAIN, _certificate_pem(ca_certificate), 0o644)
        # The CRL as of now goes with the certificate: it is what the station embeds in its DSS.
        _write_atomic(pki_dir / STATION_CRL, _read(ca_dir / CA_CRL, "CA CRL"), 0o644)
        return IssuedStation(serial, station_id, not_before, not_after, pki_dir / STATION_CERT)


def issue_station(
    ca_dir: Path, station_id: str, state_dir: Path, *, clock: Clock = utc_now,
    valid_days: int = DEFAULT_STATION_DAYS,
) -> int:
    """Issue a signing key and certificate for ``station_id`` and install them in ``state_dir/pki``.

    Returns the new certificate's serial number. An existing station key is replaced (rotation);
    the old certificate stays valid until revoked.
    """
    return issue_station_details(ca_dir, station_id, state_dir, clock=clock, valid_days=valid_days).serial


def issue_tsa(
    ca_dir: Path, out_dir: Path, *, name: str | None = None, clock: Clock = utc_now,
    valid_days: int = DEFAULT_TSA_DAYS,
) -> IssuedTsa:
    """Issue the organisation's timestamping certificate and key into ``out_dir``.

    ``out_dir`` receives ``tsa.key`` (0600), ``tsa.crt`` and ``chain.pem`` (the CA certificate).
    The certificate is capped at the CA's expiry. Refuses to overwrite an existing TSA key: the
    serial counter and token log beside it belong to that key.
    """
    with _ca_lock(ca_dir):
        _check_days(valid_days, "--valid-days")
        ca_key, ca_certificate, state = _load_ca(ca_dir)
        label = (name or f"{state.organisation} timestamping authority").strip()
        if not label or len(label) > 64 or any(ord(character) < 32 for character in label):
            raise PkiError("TSA name must be printable text of 1 to 64 characters")
        if (out_dir / TSA_KEY).exists():
            raise PkiError(f"{out_dir} already holds a TSA key; refusing to overwrite {TSA_KEY}")
        key, public, serial, not_before, not_after = _new_leaf(ca_certificate, clock(), valid_days)
        certificate = _leaf_certificate(
            ca_key, ca_certificate, public, serial, not_before, not_after,
            name=label, organisation=state.organisation, unit=TSA_OU,
            # RFC 3161 section 2.3: the TSA certificate has exactly one EKU, timeStamping, critical.
            usage=ExtendedKeyUsageOID.TIME_STAMPING, usage_critical=True, policy=None,
        )
        state.issued.append({
            "serial": format_serial(serial),
            "station_id": None,
            "name": label,
            "kind": "tsa",
            "not_before": not_before.isoformat(),
            "not_after": not_after.isoformat(),
            "revoked_at": None,
            "certificate": _certificate_pem(certificate).decode(),
        })
        _save_state(ca_dir, state)
        make_private_directory(out_dir)
        os.chmod(out_dir, 0o700)
        _write_atomic(out_dir / TSA_KEY, _private_pem(key), 0o600)
        _write_atomic(out_dir / TSA_CERT, _certificate_pem(certificate), 0o644)
        _write_atomic(out_dir / TSA_CHAIN, _certificate_pem(ca_certificate), 0o644)
        return IssuedTsa(serial, label, not_before, not_after, out_dir / TSA_CERT, out_dir / TSA_KEY)


@dataclass(frozen=True)
class IssuedPerson:
    """What :func:`issue_person` reports about a new person certificate."""

    serial: int
    name: str
    role: str
    not_before: datetime
    not_after: datetime
    certificate_path: Path
    key_path: Path


def person_file_stem(name: str) -> str:
    """A file name for a person's key and certificate: the name reduced to letters, digits, - and _."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-").lower()
    return stem or "person"


def issue_person(
    ca_dir: Path, name: str, role: str, out_dir: Path, *, clock: Clock = utc_now,
    valid_days: int = DEFAULT_PERSON_DAYS,
) -> IssuedPerson:
    """Issue a person's signing key and certificate (``role``: :data:`PERSON_ROLES`) into ``out_dir``.

    Writes ``<stem>.key`` (0600), ``<stem>.crt`` and ``chain.pem``; refuses to overwrite an existing
    key (a person with a second key is a second person to the verifier; issue a new name or delete
    it deliberately). The certificate carries only the role's EKU, never the station's.
    """
    if role not in PERSON_ROLES:
        raise PkiError(f"unknown role {role!r}; choose from {', '.join(sorted(PERSON_ROLES))}")
    label = name.strip()
    problem = text_problem(label)
    if not label or len(label) > 64 or problem:
        raise PkiError(f"person name {name!r} must be printable text of 1 to 64 characters"
                       + (f" ({problem})" if problem else ""))
    unit, usage = PERSON_ROLES[role]
    stem = person_file_stem(label)
    key_path, certificate_path = out_dir / f"{stem}.key", out_dir / f"{stem}.crt"
    with _ca_lock(ca_dir):
        _check_days(valid_days, "--valid-days")
        ca_key, ca_certificate, state = _load_ca(ca_dir)
        if key_path.exists():
            raise PkiError(f"{key_path} already exists; refusing to overwrite a person's key")
        key, public, serial, not_before, not_after = _new_leaf(ca_certificate, clock(), valid_days)
        certificate = _leaf_certificate(
            ca_key, ca_certificate, public, serial, not_before, not_after, name=label,
            organisation=state.organisation, unit=unit, usage=usage, usage_critical=False, policy=None,
        )
        state.issued.append({
            "serial": format_serial(serial), "station_id": None, "name": label, "kind": f"person:{role}",
            "not_before": not_before.isoformat(), "not_after": not_after.isoformat(), "revoked_at": None,
        })
        _save_state(ca_dir, state)
        make_private_directory(out_dir)
        os.chmod(out_dir, 0o700)
        _write_atomic(key_path, _private_pem(key), 0o600)
        _write_atomic(certificate_path, _certificate_pem(certificate), 0o600)
        _write_atomic(out_dir / STATION_CHAIN, _certificate_pem(ca_certificate), 0o644)
        return IssuedPerson(serial, label, role, not_before, not_after, certificate_path, key_path)


def load_person_signer(key_path: Path, certificate_path: Path, station: StationSigner) -> StationSigner:
    """A person's key and certificate as a signer, with the station's chain and CRL (the same CA).

    The key must be 0600 and belong to the certificate; the certificate must be issued by the
    station's CA. Whether it carries the right EKU is the verifier's decision, made from the bytes.
    """
    if os.name == "posix" and key_path.exists() and key_path.stat().st_mode & 0o077:
        raise PkiError(f"{key_path} is readable by other users; chmod 600 it (and consider it exposed)")
    key = _load_private_key(key_path, "person key")
    certificate = _load_certificate(certificate_path, "person certificate")
    if _public_der(key.public_key()) != _public_der(_ec_public(certificate)):
        raise PkiError(f"{key_path} does not belong to {certificate_path}")
    if not station.chain or certificate.issuer != station.chain[-1].subject:
        raise PkiError(f"{certificate_path} is not issued by this station's organisation CA")
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise PkiError(f"{certificate_path} has no common name")
    return StationSigner(str(names[0].value), certificate, station.chain, key, station.crl)


@dataclass(frozen=True)
class IssuedFleet:
    """What :func:`issue_fleet` reports about a new fleet signing certificate."""

    serial: int
    name: str
    not_before: datetime
    not_after: datetime
    certificate_path: Path
    key_path: Path


def issue_fleet(ca_dir: Path, name: str, out_dir: Path, *, clock: Clock = utc_now,
                valid_days: int = DEFAULT_FLEET_DAYS) -> IssuedFleet:
    """Issue the fleet's signing key and certificate (EKU :data:`certs.oids.FLEET_SIGNING_EKU` only) into ``out_dir``.

    Writes ``fleet.key`` (0600), ``fleet.crt``, ``chain.pem`` (the CA certificate) and ``crl.pem`` (the CA's CRL
    now); refuses to overwrite an existing key (rotate into a new directory, revoke the old serial). ``name``
    is the fleet's identifier, what a partner's verifier names as the signer ("signed by fleet NAME").
    """
    if not is_identifier(name):
        raise PkiError(f"fleet name {name!r} is not valid (letters, digits, . _ : -; at most 64)")
    key_path, certificate_path = out_dir / FLEET_KEY, out_dir / FLEET_CERT
    with _ca_lock(ca_dir):
        _check_days(valid_days, "--valid-days")
        ca_key, ca_certificate, state = _load_ca(ca_dir)
        if key_path.exists():
            raise PkiError(f"{key_path} already exists; refusing to overwrite the fleet's key")
        if any(str(entry.get("station_id") or "").casefold() == name.casefold() for entry in state.issued):
            # the verifier keeps the roles apart anyway; a reader of "signed by fleet station-07" might not
            raise PkiError(f"{name!r} is a station of this CA; give the fleet a name of its own")
        key, public, serial, not_before, not_after = _new_leaf(ca_certificate, clock(), valid_days)
        certificate = _leaf_certificate(
            ca_key, ca_certificate, public, serial, not_before, not_after, name=name,
            organisation=state.organisation, unit=FLEET_OU, usage=FLEET_SIGNING_EKU, usage_critical=False,
            policy=None,
        )
        state.issued.append({
            "serial": format_serial(serial), "station_id": None, "name": name, "kind": "fleet",
            "not_before": not_before.isoformat(), "not_after": not_after.isoformat(), "revoked_at": None,
        })
        _save_state(ca_dir, state)
        make_private_directory(out_dir)
        os.chmod(out_dir, 0o700)
        _write_atomic(key_path, _private_pem(key), 0o600)
        _write_atomic(certificate_path, _certificate_pem(certificate), 0o644)
        _write_atomic(out_dir / FLEET_CHAIN, _certificate_pem(ca_certificate), 0o644)
        _write_atomic(out_dir / FLEET_CRL, _read(ca_dir / CA_CRL, "CA CRL"), 0o644)
        return IssuedFleet(serial, name, not_before, not_after, certificate_path, key_path)


def load_fleet_signer(directory: Path) -> StationSigner:
    """The fleet's signing key, certificate, chain and CRL from ``directory`` (from :func:`issue_fleet`).

    The key must be 0600 and belong to the certificate; ``StationSigner.station_id`` is then the fleet's
    name. Whether the certificate carries the fleet EKU is the verifier's decision, made from the bytes.
    """
    def crl() -> x509.CertificateRevocationList | None:
        crl_path = directory / FLEET_CRL
        if not crl_path.exists():
            return None
        try:
            return x509.load_pem_x509_crl(_read(crl_path, "fleet CRL"))
        except ValueError:
            raise PkiError(f"{crl_path} is not a PEM CRL") from None

    return _load_signer(directory / FLEET_KEY, directory / FLEET_CERT, directory / FLEET_CHAIN, "fleet",
                        "the fleet's name", "no fleet signing key in {where}: run 'wipe-agent pki issue-fleet' to "
                        "install one", crl)


def _tsa_certificates(state: _CaState, now: datetime) -> list[x509.Certificate]:
    """The TSA certificates this CA issued that have not expired (revoked ones are in the CRL)."""
    certificates = []
    for entry in state.issued:
        if entry.get("kind") == "tsa" and entry.get("certificate"):
            certificate = x509.load_pem_x509_certificate(str(entry["certificate"]).encode())
            if certificate.not_valid_after_utc > now:
                certificates.append(certificate)
    return certificates


def load_station_crl(state_dir: Path) -> x509.CertificateRevocationList | None:
    """The CRL installed beside the station key (None when there is none, e.g. an older install)."""
    path = state_dir / STATION_DIR / STATION_CRL
    if not path.exists():
        return None
    try:
        return x509.load_pem_x509_crl(_read(path, "station CRL"))
    except ValueError:
        raise PkiError(f"{path} is not a PEM CRL") from None


def install_station_crl(state_dir: Path, data: bytes) -> x509.CertificateRevocationList:
    """Install the CRL found in ``data`` (a trust bundle or a crl.pem) beside the station key.

    The CRL must be signed by the station's CA (from ``pki/chain.pem``) and must not be older
    (by CRL number) than the one installed, so an old file cannot hide a revocation.
    """
    chain = _load_certificates(state_dir / STATION_DIR / STATION_CHAIN, "certificate chain")
    blocks = [match.group(0) for match in _PEM_BLOCK.finditer(data) if match.group(1) == b"X509 CRL"]
    if len(blocks) != 1:
        raise PkiError(f"expected exactly one CRL, found {len(blocks)}")
    try:
        crl = x509.load_pem_x509_crl(blocks[0])
    except ValueError:
        raise PkiError("the CRL is damaged") from None
    issuers = [certificate for certificate in chain if certificate.subject == crl.issuer]
    if not issuers or not crl.is_signature_valid(_ec_public(issuers[0])):
        raise PkiError("the CRL was not signed by this station's CA")
    installed = load_station_crl(state_dir)
    if installed is not None and _crl_number(crl) < _crl_number(installed):
        raise PkiError(
            f"the CRL (#{_crl_number(crl)}) is older than the installed one (#{_crl_number(installed)})"
        )
    _write_atomic(state_dir / STATION_DIR / STATION_CRL, crl.public_bytes(serialization.Encoding.PEM), 0o644)
    return crl


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return 0


REVOCATION_REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "key-compromise": x509.ReasonFlags.key_compromise,
    "affiliation-changed": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessation-of-operation": x509.ReasonFlags.cessation_of_operation,
    "certificate-hold": x509.ReasonFlags.certificate_hold,
}
"""``pki revoke --reason`` words → the RFC 5280 CRLReason written into the CRL entry."""


def revoke(
    ca_dir: Path, serial: int | str | None = None, station_id: str | None = None, *,
    clock: Clock = utc_now, crl_days: int = DEFAULT_CRL_DAYS, reason: str | None = None,
    compromised_since: datetime | None = None,
) -> tuple[int, ...]:
    """Revoke one certificate by serial, or every unrevoked certificate of a station, and reissue the CRL.

    ``reason`` (a key of :data:`REVOCATION_REASONS`) is written as the entry's CRLReason.
    ``compromised_since`` (only with reason ``key-compromise``, required with it) is written as
    the InvalidityDate: the verifier then rejects documents whose proven signing time is after it,
    even timestamped ones made before the revocation (a thief with the key can get timestamps).
    Returns the serials revoked. Revoking an already revoked serial is an error, so a typo cannot
    pass silently.
    """
    with _ca_lock(ca_dir):
        _check_days(crl_days, "--crl-days")
        if (serial is None) == (station_id is None):
            raise PkiError("give exactly one of a serial or a station id to revoke")
        if reason is not None and reason not in REVOCATION_REASONS:
            raise PkiError(f"revocation reason must be one of {', '.join(REVOCATION_REASONS)}, not {reason!r}")
        if (reason == "key-compromise") != (compromised_since is not None):
            raise PkiError("a key compromise needs the time since when the key counts as compromised "
                           "(--compromised-since), and only a key compromise has one")
        ca_key, ca_certificate, state = _load_ca(ca_dir)
        now = clock()
        if compromised_since is not None:
            if compromised_since.tzinfo is None:
                raise PkiError("--compromised-since needs a time zone (e.g. 2026-12-01T00:00:00Z)")
            if compromised_since > now:
                raise PkiError("--compromised-since lies in the future")
        if serial is not None:
            wanted = parse_serial(serial) if isinstance(serial, str) else serial
            matches = [entry for entry in state.issued if int(entry["serial"], 16) == wanted]
            if not matches:
                raise PkiError(f"serial {format_serial(wanted)} was not issued by this CA")
            if matches[0]["revoked_at"]:
                raise PkiError(f"serial {format_serial(wanted)} is already revoked")
        else:
            matches = [
                entry for entry in state.issued
                if entry["station_id"] == station_id and not entry["revoked_at"]
            ]
            if not matches:
                raise PkiError(f"station {station_id!r} has no unrevoked certificate from this CA")
        for entry in matches:
            entry["revoked_at"] = now.isoformat()
            if reason is not None:
                entry["reason"] = reason
            if compromised_since is not None:
                entry["compromised_since"] = compromised_since.astimezone(UTC).isoformat()
        _write_crl(ca_dir, ca_key, ca_certificate, state, now, crl_days)
        return tuple(int(entry["serial"], 16) for entry in matches)


def make_bundle(
    ca_dir: Path, out_file: Path, *, clock: Clock = utc_now, crl_days: int = DEFAULT_CRL_DAYS
) -> Path:
    """Write the trust bundle partners receive: a readable header, the CA certificate, a freshly
    issued CRL and the (unexpired) TSA certificates the CA issued.

    The CRL is reissued so the bundle is current on the day it is handed out; the header states
    that day and the CRL's next update, so a partner can see how old their bundle is.
    """
    with _ca_lock(ca_dir):
        _check_days(crl_days, "--crl-days")
        ca_key, ca_certificate, state = _load_ca(ca_dir)
        now = clock()
        crl = _write_crl(ca_dir, ca_key, ca_certificate, state, now, crl_days)
        tsa_certificates = _tsa_certificates(state, now)
        lines = [
            f"# wipe-agent trust bundle: {state.organisation}",
            f"# issued at {now:%Y-%m-%dT%H:%M:%SZ}",
            f"# CA certificate valid until {ca_certificate.not_valid_after_utc:%Y-%m-%d}",
            f"# CRL #{state.crl_number}, next update {crl.next_update_utc:%Y-%m-%d}",
        ]
        lines += [
            f"# TSA certificate {format_serial(item.serial_number)} "
            f"({item.subject.rfc4514_string()}), valid until {item.not_valid_after_utc:%Y-%m-%d}"
            for item in tsa_certificates
        ]
        header = ("\n".join(lines) + "\n").encode()
        body = _certificate_pem(ca_certificate) + crl.public_bytes(serialization.Encoding.PEM)
        body += b"".join(_certificate_pem(item) for item in tsa_certificates)
        _write_atomic(out_file, header + body, 0o644)
        return out_file


def refresh_crl(
    ca_dir: Path, *, clock: Clock = utc_now, crl_days: int = DEFAULT_CRL_DAYS
) -> x509.CertificateRevocationList:
    """Reissue the CA's CRL (``crl.pem``) now, e.g. to hand stations a current one."""
    with _ca_lock(ca_dir):
        _check_days(crl_days, "--crl-days")
        ca_key, ca_certificate, state = _load_ca(ca_dir)
        return _write_crl(ca_dir, ca_key, ca_certificate, state, clock(), crl_days)


@dataclass(frozen=True)
class TrustBundle:
    """A parsed trust bundle: the organisation CA, its CRL (signature already checked) and the
    TSA certificates the CA issued (each checked to be issued by the CA, with the timeStamping EKU)."""

    ca_certificate: x509.Certificate
    crl: x509.CertificateRevocationList
    tsa_certificates: tuple[x509.Certificate, ...] = ()

    def organisation(self) -> str:
        """The CA's organisation name, for messages."""
        names = self.ca_certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        return str(names[0].value) if names else self.ca_certificate.subject.rfc4514_string()

    def crl_current(self, moment: datetime) -> bool:
        """Whether the bundle's CRL is still current (before its next update) at ``moment``."""
        next_update = self.crl.next_update_utc
        return next_update is None or moment <= next_update


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def is_tsa_certificate(certificate: x509.Certificate) -> bool:
    """True when the certificate's extended key usage is exactly timeStamping, marked critical
    (RFC 3161 section 2.3, and what the verifier requires), and it is not a CA.

    The station and the bundle loader use this: as strict as the verifier, so the station never
    writes a timestamp no partner accepts."""
    try:
        extension = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return False
    return (extension.critical and list(extension.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
            and not _is_ca(certificate))


def parse_trust_bundle(
    data: bytes, *, now: datetime | None = None, require_current_crl: bool = True
) -> TrustBundle:
    """Parse and check a trust bundle: one CA certificate, one CRL signed by it (current at ``now``
    unless ``require_current_crl`` is False) and any TSA certificates issued by that CA.

    Raises :class:`~certs.errors.TrustBundleError` with the reason. ``require_current_crl=False``
    is for checking old timestamped documents, where the CRL embedded at signing time is what
    counts and an expired bundle CRL is only a warning.
    """
    certificates: list[x509.Certificate] = []
    crls: list[x509.CertificateRevocationList] = []
    try:
        for match in _PEM_BLOCK.finditer(data):
            kind = match.group(1)
            if kind == b"CERTIFICATE":
                certificates.append(x509.load_pem_x509_certificate(match.group(0)))
            elif kind == b"X509 CRL":
                crls.append(x509.load_pem_x509_crl(match.group(0)))
            else:
                raise TrustBundleError(f"trust bundle holds an unexpected {kind.decode()} block")
    except ValueError:
        raise TrustBundleError("trust bundle holds a damaged PEM block") from None
    authorities = [certificate for certificate in certificates if _is_ca(certificate)]
    others = [certificate for certificate in certificates if not _is_ca(certificate)]
    if len(authorities) != 1:
        if not authorities and others:
            raise TrustBundleError("trust bundle certificate is not a CA certificate")
        raise TrustBundleError(
            f"trust bundle must hold exactly one CA certificate, found {len(authorities)}"
        )
    if len(crls) != 1:
        raise TrustBundleError(f"trust bundle must hold exactly one CRL, found {len(crls)}")
    ca_certificate, crl = authorities[0], crls[0]
    if crl.issuer != ca_certificate.subject:
        raise TrustBundleError("trust bundle CRL was not issued by its CA")
    try:
        if not crl.is_signature_valid(_ec_public(ca_certificate)):
            raise TrustBundleError("trust bundle CRL signature is not valid for its CA")
    except (InvalidSignature, PkiError):
        raise TrustBundleError("trust bundle CRL signature is not valid for its CA") from None
    for certificate in others:
        try:
            certificate.verify_directly_issued_by(ca_certificate)
        except (ValueError, TypeError, InvalidSignature):
            raise TrustBundleError(
                f"trust bundle certificate {certificate.subject.rfc4514_string()} was not issued by its CA"
            ) from None
        if not is_tsa_certificate(certificate):
            raise TrustBundleError(
                f"trust bundle certificate {certificate.subject.rfc4514_string()} is not a TSA certificate"
            )
    moment = now or utc_now()
    next_update = crl.next_update_utc
    if require_current_crl and next_update is not None and next_update < moment:
        raise TrustBundleError(
            f"trust bundle CRL expired on {next_update:%Y-%m-%d}; ask the issuer for a current bundle"
        )
    return TrustBundle(ca_certificate, crl, tuple(others))


def load_station_signer(state_dir: Path) -> StationSigner:
    """Load the station's key, certificate and chain from ``state_dir/pki``.

    Raises :class:`NoSignerConfigured` when no key is installed, and :class:`PkiError` when the
    files are unreadable, group/world-readable (key), or do not belong together.
    """
    pki_dir = state_dir / STATION_DIR
    return _load_signer(pki_dir / STATION_KEY, pki_dir / STATION_CERT, pki_dir / STATION_CHAIN, "station",
                        "station id", "no station signing key in {where}: run 'wipe-agent pki issue-station' to "
                        "install one", lambda: load_station_crl(state_dir))


def _load_signer(key_path: Path, certificate_path: Path, chain_path: Path, role: str, name_is: str, missing: str,
                 crl: Callable[[], x509.CertificateRevocationList | None]) -> StationSigner:
    """A signing key (0600), its certificate and chain, checked to belong together; its CN names the signer."""
    if not key_path.exists() or not certificate_path.exists():
        raise NoSignerConfigured(missing.format(where=key_path.parent))
    if os.name == "posix" and key_path.stat().st_mode & 0o077:
        raise PkiError(f"{key_path} is readable by other users; chmod 600 it (and consider it exposed)")
    key = _load_private_key(key_path, f"{role} key")
    certificate = _load_certificate(certificate_path, f"{role} certificate")
    chain = _load_certificates(chain_path, "certificate chain")
    if _public_der(key.public_key()) != _public_der(_ec_public(certificate)):
        raise PkiError(f"{key_path} does not belong to {certificate_path}")
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise PkiError(f"{certificate_path} has no common name ({name_is})")
    return StationSigner(str(names[0].value), certificate, chain, key, crl())


# --- TLS between stations and the fleet ------------------------------------------------------------
# Separate keys and certificates from the signing ones: a station's signing certificate carries exactly
# the station-signing EKU (what the document verifier demands), so it can never be a TLS client
# certificate, and a TLS key sitting in a long-lived connection never signs a certificate of sanitisation.
#
# * TLS client (a station to the fleet): CA=false (critical); KeyUsage digitalSignature only (critical);
#   EKU clientAuth only; CN = station id, OU = ``wipe-agent station tls``. Recorded in ca.json with the
#   station id, so ``pki revoke --station`` revokes it with the station's signing certificate.
# * TLS server (the fleet service): the same, EKU serverAuth only, OU ``wipe-agent fleet``, and the DNS
#   names / IP addresses stations connect to as subjectAltName.

TLS_CLIENT_OU = "wipe-agent station tls"
TLS_SERVER_OU = "wipe-agent fleet"
TLS_CLIENT_KEY = "tls-client.key"
TLS_CLIENT_CERT = "tls-client.crt"
TLS_SERVER_KEY = "tls-server.key"
TLS_SERVER_CERT = "tls-server.crt"
TLS_CA = "ca.crt"
TLS_CRL = "crl.pem"
DEFAULT_TLS_DAYS = 397
"""13 months: a TLS key lives in memory of a long-running process; rotate it yearly."""


@dataclass(frozen=True)
class IssuedTls:
    """What :func:`issue_tls_client` and :func:`issue_tls_server` report."""

    serial: int
    name: str
    kind: str
    not_before: datetime
    not_after: datetime
    certificate_path: Path
    key_path: Path


def _install_tls(out_dir: Path, key_name: str, cert_name: str, key: ec.EllipticCurvePrivateKey,
                 certificate: x509.Certificate, ca_certificate: x509.Certificate, ca_dir: Path) -> None:
    make_private_directory(out_dir)
    os.chmod(out_dir, 0o700)
    _write_atomic(out_dir / key_name, _private_pem(key), 0o600)
    _write_atomic(out_dir / cert_name, _certificate_pem(certificate), 0o644)
    _write_atomic(out_dir / TLS_CA, _certificate_pem(ca_certificate), 0o644)
    _write_atomic(out_dir / TLS_CRL, _read(ca_dir / CA_CRL, "CA CRL"), 0o644)


def issue_tls_client(ca_dir: Path, station_id: str, state_dir: Path, *, clock: Clock = utc_now,
                     valid_days: int = DEFAULT_TLS_DAYS) -> IssuedTls:
    """Issue station ``station_id``'s TLS client key and certificate for the fleet, into ``state_dir/pki``
    (``tls-client.key`` 0600, ``tls-client.crt``, ``ca.crt``, ``crl.pem``)."""
    with _ca_lock(ca_dir):
        if not is_identifier(station_id):
            raise PkiError(f"station id {station_id!r} is not valid (letters, digits, . _ : -; at most 64)")
        _check_days(valid_days, "--valid-days")
        ca_key, ca_certificate, state = _load_ca(ca_dir)
        key, public, serial, not_before, not_after = _new_leaf(ca_certificate, clock(), valid_days)
        certificate = _leaf_certificate(ca_key, ca_certificate, public, serial, not_before, not_after,
                                        name=station_id, organisation=state.organisation, unit=TLS_CLIENT_OU,
                                        usage=ExtendedKeyUsageOID.CLIENT_AUTH, usage_critical=False, policy=None,
                                        content_commitment=False)
        state.issued.append({"serial": format_serial(serial), "station_id": station_id, "kind": "tls-client",
                             "not_before": not_before.isoformat(), "not_after": not_after.isoformat(),
                             "revoked_at": None})
        _save_state(ca_dir, state)
        make_private_directory(state_dir, STATE_DIRECTORY_MODE)
        pki_dir = state_dir / STATION_DIR
        _install_tls(pki_dir, TLS_CLIENT_KEY, TLS_CLIENT_CERT, key, certificate, ca_certificate, ca_dir)
        return IssuedTls(serial, station_id, "tls-client", not_before, not_after, pki_dir / TLS_CLIENT_CERT,
                         pki_dir / TLS_CLIENT_KEY)


def issue_tls_server(ca_dir: Path, out_dir: Path, names: list[str], *, clock: Clock = utc_now,
                     valid_days: int = DEFAULT_TLS_DAYS) -> IssuedTls:
    """Issue the fleet service's TLS server key and certificate for ``names`` (DNS names or IP addresses the
    stations connect to) into ``out_dir`` (``tls-server.key`` 0600, ``tls-server.crt``, ``ca.crt``, ``crl.pem``)."""
    import ipaddress

    if not names:
        raise PkiError("give at least one DNS name or IP address the stations connect to (--name)")
    alt_names: list[x509.GeneralName] = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            if not re.fullmatch(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                                r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*", name):
                raise PkiError(f"{name!r} is neither a DNS name nor an IP address") from None
            alt_names.append(x509.DNSName(name.lower()))
    with _ca_lock(ca_dir):
        _check_days(valid_days, "--valid-days")
        ca_key, ca_certificate, state = _load_ca(ca_dir)
        key, public, serial, not_before, not_after = _new_leaf(ca_certificate, clock(), valid_days)
        certificate = _leaf_certificate(ca_key, ca_certificate, public, serial, not_before, not_after,
                                        name=names[0], organisation=state.organisation, unit=TLS_SERVER_OU,
                                        usage=ExtendedKeyUsageOID.SERVER_AUTH, usage_critical=False, policy=None,
                                        content_commitment=False, alt_names=alt_names)
        state.issued.append({"serial": format_serial(serial), "station_id": None, "name": names[0],
                             "kind": "tls-server", "not_before": not_before.isoformat(),
                             "not_after": not_after.isoformat(), "revoked_at": None})
        _save_state(ca_dir, state)
        _install_tls(out_dir, TLS_SERVER_KEY, TLS_SERVER_CERT, key, certificate, ca_certificate, ca_dir)
        return IssuedTls(serial, names[0], "tls-server", not_before, not_after, out_dir / TLS_SERVER_CERT,
                         out_dir / TLS_SERVER_KEY)
