"""Verify certificates of sanitisation against a trust bundle: the partners' tool.

A certificate is valid only when every check passes, in this order (the first failure is the
reason reported):

1. the file is readable, is a PDF, and parses (``not_pdf``, ``damaged``);
2. it holds exactly one signature (``no_signature``, ``multiple_signatures``);
3. the signed bytes are unchanged and the signature value verifies (``modified``, ``bad_signature``);
4. the signature covers the whole file: nothing was appended after signing (``changed_after_signing``);
5. the signer's certificate chains to the bundle's CA, is within its validity period and is not on
   the bundle's CRL (``untrusted``, ``expired``, ``revoked``), a signature timestamp if present
   comes from a TSA the bundle's CA certifies (``untrusted_timestamp``), and pyHanko's validator
   agrees (``rejected``);
6. the embedded record parses strictly, is canonical, its SHA-256 and certificate id match those
   the signed document states (QR payload), and it names the signing station (``no_record``,
   ``bad_record``, ``hash_mismatch``, ``station_mismatch``).

Batch manifests and destruction reports (:mod:`certs.documents`) pass the same signature and trust
checks (1-5); then their embedded JSON must be canonical, hash to the value the PDF states and name
the signing station. :mod:`certs.manifest` checks a manifest's listed certificates.

Verification never fetches anything from the network: the bundle's CRL is the revocation source.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from certs.documents import DOCUMENT_KEY, kind_of
from certs.documents import KINDS as DOCUMENT_KINDS
from certs.documents import canonical_json as document_json
from certs.errors import RecordError, TrustBundleError
from certs.issue import ATTACHMENT_NAME, CATALOG_KEY
from certs.pki import TrustBundle, format_serial, parse_trust_bundle, utc_now
from certs.record import SanitisationRecord
from certs.render import qr_payload


@dataclass(frozen=True)
class VerificationReport:
    """The outcome of verifying one file. ``valid`` is the verdict; ``code`` and ``reason`` say why."""

    path: Path
    valid: bool
    code: str
    """"valid", or the failure code (see the module docstring)."""
    reason: str
    certificate_id: str | None = None
    record_sha256: str | None = None
    record: SanitisationRecord | None = field(default=None, repr=False)
    signer_subject: str | None = None
    signed_at: datetime | None = None
    timestamped: bool = False
    """True when ``signed_at`` comes from an RFC 3161 timestamp, False when from the station's clock."""
    kind: str | None = None
    """"certificate" or "failure_report" (a failure report can be valid: it proves the failure)."""
    demo: bool = False
    summary: str = ""
    """One human line: what was certified, by whom, when."""
    document: dict[str, Any] | None = field(default=None, repr=False)
    """For a batch manifest or destruction report: its embedded JSON (``certificate_id`` is its id)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-able summary (the record itself is left out; read it from the PDF)."""
        return {
            "path": str(self.path),
            "valid": self.valid,
            "code": self.code,
            "reason": self.reason,
            "certificate_id": self.certificate_id,
            "record_sha256": self.record_sha256,
            "signer_subject": self.signer_subject,
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
            "timestamped": self.timestamped,
            "kind": self.kind,
            "demo": self.demo,
            "summary": self.summary,
        }


def load_trust_bundle(path: Path, *, now: datetime | None = None) -> TrustBundle:
    """Read and check a trust bundle file; raise TrustBundleError (bad input) if unusable."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TrustBundleError(f"trust bundle not found: {path}") from None
    except OSError as error:
        raise TrustBundleError(f"cannot read trust bundle {path}: {error.strerror}") from None
    return parse_trust_bundle(data, now=now)


def verify_file(path: Path, trust_bundle_path: Path, *, now: datetime | None = None) -> VerificationReport:
    """Verify one certificate file against the trust bundle at ``trust_bundle_path``.

    Raises TrustBundleError only for a bad bundle; every problem with the certificate itself is
    reported in the returned :class:`VerificationReport`.
    """
    return verify_with_bundle(path, load_trust_bundle(trust_bundle_path, now=now), now=now)


def verify_many(
    paths: Iterable[Path], trust_bundle_path: Path, *, now: datetime | None = None
) -> list[VerificationReport]:
    """Verify many files; a directory stands for the ``*.pdf`` files directly inside it (sorted)."""
    bundle = load_trust_bundle(trust_bundle_path, now=now)
    return [verify_with_bundle(item, bundle, now=now) for item in expand_paths(paths)]


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Replace each directory by the PDF files it contains, sorted by name."""
    result: list[Path] = []
    for path in paths:
        if path.is_dir():
            result += sorted(
                item for item in path.iterdir() if item.suffix.lower() == ".pdf" and item.is_file()
            )
        else:
            result.append(path)
    return result


class _Invalid(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def verify_with_bundle(path: Path, bundle: TrustBundle, *, now: datetime | None = None) -> VerificationReport:
    """Verify one file against an already loaded :class:`~certs.pki.TrustBundle`."""
    try:
        data = path.read_bytes()
    except OSError as error:
        return VerificationReport(path, False, "unreadable", f"cannot read file: {error.strerror}")
    try:
        return _verify(path, data, bundle, now or utc_now())
    except _Invalid as invalid:
        return VerificationReport(path, False, invalid.code, invalid.reason)
    except Exception as error:
        # Hostile or broken input must yield a verdict, not stop a batch: anything the parser did
        # not anticipate is a damaged file.
        return VerificationReport(
            path, False, "damaged", f"cannot process the file ({type(error).__name__}: {_short(error)})"
        )


def _verify(path: Path, data: bytes, bundle: TrustBundle, now: datetime) -> VerificationReport:
    # Imported here so that importing certs.verify (e.g. for the CLI's --help) stays cheap.
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.misc import PdfError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.diff_analysis import ModificationLevel
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    if b"%PDF-" not in data[:1024]:
        raise _Invalid("not_pdf", "not a PDF file")
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=True)
        signatures = reader.embedded_signatures
    except (PdfError, ValueError, KeyError, TypeError, IndexError, EOFError) as error:
        raise _Invalid("damaged", f"damaged or truncated PDF: {_short(error)}") from None
    # Interim (branch ltv, until the byte-exact verifier lands): document timestamps are LTV
    # revisions, not signatures of their own.
    signatures = [item for item in signatures if item.sig_object_type != "/DocTimeStamp"]
    if not signatures:
        raise _Invalid("no_signature", "the PDF carries no digital signature")
    if len(signatures) > 1:
        raise _Invalid("multiple_signatures", f"the PDF carries {len(signatures)} signatures; expected one")
    signature = signatures[0]

    der = serialization.Encoding.DER
    context = ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(bundle.ca_certificate.public_bytes(der))],
        crls=[bundle.crl.public_bytes(der)],
        allow_fetching=False,
        # "require", not "hard-fail": station certificates carry no CRL distribution point (partners
        # are offline), and in the "if declared" modes certvalidator then ignores the bundle's CRL.
        revocation_mode="require",
        moment=now,
    )
    try:
        status = validate_pdf_signature(signature, signer_validation_context=context)
    except Exception as error:  # malformed CMS and the like surface as assorted exception types
        raise _Invalid("bad_signature", f"the signature cannot be validated: {_short(error)}") from None

    if not status.intact:
        raise _Invalid("modified", "the signed content was altered after signing (document digest mismatch)")
    if not status.valid:
        raise _Invalid("bad_signature", "the signature value does not verify with the signer's key")
    # Interim (branch ltv): DSS and document-timestamp revisions after the signature, as judged
    # by pyHanko's difference analysis; the byte-exact structure check replaces this.
    lta_only = (status.coverage == SignatureCoverageLevel.ENTIRE_REVISION and status.docmdp_ok
                and status.modification_level == ModificationLevel.LTA_UPDATES
                and data.rstrip(b"\r\n").endswith(b"%%EOF"))
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE and not lta_only:
        raise _Invalid(
            "changed_after_signing",
            "the file was changed after signing (data or an incremental update appended after the signature)",
        )
    signer = x509.load_der_x509_certificate(status.signing_cert.dump())
    _check_trust(signer, bundle, now)
    timestamp = status.timestamp_validity
    if timestamp is not None and not (timestamp.intact and timestamp.valid and timestamp.trusted):
        raise _Invalid(
            "untrusted_timestamp",
            "the signature timestamp is damaged or its TSA does not chain to the trusted CA",
        )
    if not status.bottom_line:
        raise _Invalid("rejected", f"pyHanko rejects the signature: {status.summary()}")

    if DOCUMENT_KEY in reader.root:
        return _verify_document(path, reader, signer, status, timestamp)
    record_json = _embedded_record(reader)
    try:
        record = SanitisationRecord.from_json(record_json)
    except RecordError as error:
        raise _Invalid("bad_record", f"the embedded record is invalid: {error.message}") from None
    if record.to_canonical_json() != record_json:
        raise _Invalid("bad_record", "the embedded record is not in canonical form")
    record_sha256 = hashlib.sha256(record_json).hexdigest()
    _check_identity(reader, record, record_sha256)
    station = _common_name(signer)
    if station != record.station_id:
        raise _Invalid(
            "station_mismatch", f"the record names station {record.station_id!r} but {station!r} signed it"
        )
    # A trusted TSA's time beats the station's own clock.
    signed_at = timestamp.timestamp if timestamp is not None else status.signer_reported_dt
    kind = "certificate" if record.outcome == "sanitised" else "failure_report"
    return VerificationReport(
        path=path, valid=True, code="valid",
        reason=("signature valid, whole document covered, chain to trusted CA, not revoked, record matches"),
        certificate_id=record.certificate_id, record_sha256=record_sha256, record=record,
        signer_subject=signer.subject.rfc4514_string(), signed_at=signed_at,
        timestamped=timestamp is not None, kind=kind, demo=record.demo,
        summary=summarise(record, signed_at),
    )


def _check_trust(signer: x509.Certificate, bundle: TrustBundle, now: datetime) -> None:
    """Explain trust failures in words; pyHanko's verdict is checked afterwards as well."""
    ca = bundle.ca_certificate
    organisation = bundle.organisation()
    issued_by_ca = signer.issuer == ca.subject
    if issued_by_ca:
        try:
            signer.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            # Same name, different key: an impostor CA.
            issued_by_ca = False
    if not issued_by_ca:
        raise _Invalid(
            "untrusted",
            f"signed by {signer.subject.rfc4514_string()}, issued by {signer.issuer.rfc4514_string()}: "
            f"not a station certificate of the trusted CA ({organisation})",
        )
    revoked = bundle.crl.get_revoked_certificate_by_serial_number(signer.serial_number)
    if revoked is not None:
        raise _Invalid(
            "revoked",
            f"station certificate {format_serial(signer.serial_number)} ({_common_name(signer)}) was revoked "
            f"on {revoked.revocation_date_utc:%Y-%m-%d %H:%M} UTC",
        )
    if now > signer.not_valid_after_utc:
        raise _Invalid(
            "expired",
            f"station certificate {format_serial(signer.serial_number)} ({_common_name(signer)}) "
            f"expired on {signer.not_valid_after_utc:%Y-%m-%d}",
        )
    if now < signer.not_valid_before_utc:
        raise _Invalid(
            "expired", f"station certificate is not valid before {signer.not_valid_before_utc:%Y-%m-%d}"
        )


def _embedded_record(reader: Any, name: str = ATTACHMENT_NAME) -> bytes:
    try:
        names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
        pairs = [(str(names[index]), names[index + 1]) for index in range(0, len(names) - 1, 2)]
    except (KeyError, TypeError, IndexError):
        raise _Invalid("no_record", f"the PDF has no embedded {name}") from None
    matches = [spec for found, spec in pairs if found == name]
    if len(matches) != 1:
        raise _Invalid("no_record", f"the PDF must embed exactly one {name}, found {len(matches)}")
    try:
        data: bytes = matches[0].get_object()["/EF"]["/F"].get_object().data
    except Exception as error:  # a damaged stream can raise from several pyHanko layers
        raise _Invalid("no_record", f"cannot read the embedded record: {_short(error)}") from None
    return data


def _verify_document(path: Path, reader: Any, signer: x509.Certificate, status: Any,
                     timestamp: Any) -> VerificationReport:
    """A signed manifest or destruction report: the embedded JSON must be canonical and match the catalog."""
    try:
        stated = reader.root[DOCUMENT_KEY]
        kind = kind_of(str(stated["/Kind"]))
        document_id = str(stated["/DocumentId"])
        stated_hash = str(stated["/SHA256"])
    except (KeyError, TypeError):
        raise _Invalid("hash_mismatch", "the PDF does not state the document kind, id and hash") from None
    if kind is None:
        raise _Invalid("bad_record", f"unknown document kind {stated.get('/Kind')!r}")
    payload = _embedded_record(reader, DOCUMENT_KINDS[kind])
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _Invalid("bad_record", "the embedded document is not UTF-8 JSON") from None
    if not isinstance(document, dict) or document_json(document) != payload:
        raise _Invalid("bad_record", "the embedded document is not a canonical JSON object")
    digest = hashlib.sha256(payload).hexdigest()
    if digest != stated_hash:
        raise _Invalid("hash_mismatch", f"the embedded document hashes to {digest}, the PDF states {stated_hash}")
    if document.get("document_id") != document_id or document.get("kind") != kind:
        raise _Invalid("hash_mismatch", "the document id or kind does not match the embedded document")
    station = _common_name(signer)
    if document.get("station_id") != station:
        raise _Invalid("station_mismatch",
                       f"the document names station {document.get('station_id')!r} but {station!r} signed it")
    signed_at = timestamp.timestamp if timestamp is not None else status.signer_reported_dt
    demo = bool(document.get("demo"))
    label = "batch manifest" if kind == "manifest" else "destruction report"
    when = f"{signed_at:%Y-%m-%d %H:%M} UTC" if signed_at else str(document.get("created_at"))
    summary = f"{'DEMONSTRATION: ' if demo else ''}{label} {document_id}: {document.get('summary', '')}; " \
              f"station {station}, {when}"
    return VerificationReport(
        path=path, valid=True, code="valid",
        reason="signature valid, whole document covered, chain to trusted CA, not revoked, content matches",
        certificate_id=document_id, record_sha256=digest, signer_subject=signer.subject.rfc4514_string(),
        signed_at=signed_at, timestamped=timestamp is not None, kind=kind, demo=demo, summary=summary,
        document=document,
    )


def _check_identity(reader: Any, record: SanitisationRecord, record_sha256: str) -> None:
    try:
        stated = reader.root[CATALOG_KEY]
        stated_id = str(stated["/CertificateId"])
        stated_hash = str(stated["/RecordSHA256"])
        stated_qr = str(stated["/QR"])
    except (KeyError, TypeError):
        raise _Invalid("hash_mismatch", "the PDF does not state the certificate id and record hash") from None
    if stated_hash != record_sha256:
        raise _Invalid(
            "hash_mismatch",
            f"the embedded record hashes to {record_sha256}, the certificate states {stated_hash}",
        )
    if stated_id != record.certificate_id or stated_qr != qr_payload(record.certificate_id, record_sha256):
        raise _Invalid("hash_mismatch", "the certificate id or QR payload does not match the embedded record")


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text[:200]


def summarise(record: SanitisationRecord, signed_at: datetime | None) -> str:
    """One line a person can read: what was certified, how, by which station and when."""
    media = record.media
    device = f"{media.vendor} {media.model} S/N {media.serial}".strip()
    if media.asset_tag:
        device += f" (asset {media.asset_tag})"
    when = f"{signed_at:%Y-%m-%d %H:%M} UTC" if signed_at else record.issued_at
    demo = "DEMONSTRATION, not real media: " if record.demo else ""
    if record.outcome == "sanitised":
        applied = ", ".join(step.method for step in record.method_chain if step.outcome == "applied")
        verification = record.verification
        return (
            f"{demo}{device}: {record.level} by {applied}, "
            f"{verification.mode} verification {verification.result}; "
            f"station {record.station_id}, operator {record.operator.name}, {when}; "
            f"destination {record.destination}"
        )
    return (
        f"{demo}{device}: NOT sanitised ({record.failure_reason}); route {record.route}; "
        f"station {record.station_id}, operator {record.operator.name}, {when}"
    )


def read_embedded_record(path: Path) -> SanitisationRecord:
    """The record embedded in a certificate PDF, read *without* checking the signature.

    For the station's own integrity checks against its registry journal only (the record hash the
    station wrote when it issued the certificate); partners must use :func:`verify_file`.
    Raises :class:`~certs.errors.RecordError` when the file has no readable record.
    """
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        reader = PdfFileReader(io.BytesIO(path.read_bytes()), strict=False)
        data = _embedded_record(reader)
        return SanitisationRecord.from_json(data)
    except _Invalid as invalid:
        raise RecordError(f"{path}: {invalid.reason}") from None
    except RecordError:
        raise
    except Exception as error:  # unreadable or damaged file
        raise RecordError(f"{path}: cannot read the embedded record ({_short(error)})") from None
