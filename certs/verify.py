"""Verify signed station documents against a trust bundle: the partners' tool.

Every decision is made from the file's bytes by this package's own code; pyHanko's validator is
asked afterwards as a second opinion that can only make a verdict stricter (a disagreement is
``rejected``). A document is valid only when every check passes, in this order (the first failure
is the reason reported):

1. the file is a readable regular file of at most 64 MiB (a FIFO, a device or a larger file is
   ``unreadable``, read without blocking: :mod:`certs.files`) and is a PDF (``not_pdf``);
2. :func:`certs.structure.check_structure` accepts its structure: byte ranges, the ``/Contents``
   hex string, container padding, revisions after the signed one adding only long-term validation
   data, one certification signature, no active content (codes listed in :mod:`certs.structure`);
3. the CMS profile, for the station signature and every timestamp token (the CMS lies in the
   unsigned gap, so whatever the signature does not cover is allow-listed): DER exactly, a
   re-encoding gives the same bytes; one SignerInfo (``multiple_signer_infos``);
   SignedData.digestAlgorithms exactly the SignerInfo's digest algorithm, the signature algorithm's
   hash the same; the certificates the signer's and at most its CA's, each once; no CRLs inside;
   signed attributes present, with contentType, messageDigest and signingCertificateV2; detached
   content for the station; unsigned attributes: one signature timestamp token at most for the
   station, none in a token (``cms_profile``); SHA-1, MD5 (or SHA-224) as any digest, signature
   hash, message imprint or ESS certificate hash (signingCertificate v1 is SHA-1) is
   ``weak_algorithm``;
   then the station signature's CMS, checked here with ``cryptography``: its ``sid``
   names a certificate carried in the CMS, the ``messageDigest`` signed attribute equals SHA-256
   over the two byte ranges, the ESS ``signingCertificateV2`` attribute names that certificate, the
   signature value verifies with its key (``bad_signature``, ``modified``);
4. the signer profile: the CA certificate itself never signs documents (``signer_is_ca``); the
   signer is directly issued by the bundle's CA, signature checked (``untrusted``); CA=false,
   KeyUsage digitalSignature + nonRepudiation, ExtendedKeyUsage containing
   :data:`certs.oids.STATION_SIGNING_EKU`, OU "wipe-agent station" (``signer_profile``) -- or, for a
   validation statement only, :data:`certs.oids.VALIDATOR_SIGNING_EKU` and OU "wipe-agent validator";
   for a fleet manifest only, :data:`certs.oids.FLEET_SIGNING_EKU` and OU "wipe-agent fleet signing";
   a certificate with more than one of them is refused. A station never signs a fleet manifest and the fleet
   signs nothing else (``signer_profile``). A validation statement signed by an officer must say
   "officer" and be signed by the officer it names, one signed by a station must say
   "station-on-instruction" (``signer_kind_mismatch``); a validator never signs anything else
   (``signer_profile``);
5. timestamps (the signature timestamp in the CMS, then every document timestamp): each token's
   signature verifies and its message imprint matches the signature value or the document
   timestamp's byte ranges, times never go backwards (``bad_timestamp``); the TSA certificate is
   issued by the bundle's CA with the timeStamping EKU marked critical, valid when the token was
   made and at the time proven by the next timestamp (or now, for the last), not revoked then
   (``untrusted_timestamp``);
6. time: the document is judged at the time proven by the *earliest* trusted timestamp (a
   signature timestamp, else the first document timestamp: it proves the signature existed then),
   or at the current time when it carries none. The station certificate must be valid at that time
   (``expired``). Revocation uses every CRL the CA signed that the document's DSS embeds (one
   covering that time is expected; its absence is a warning) and the bundle's CRL: a station
   revoked at or before that time fails, a later revocation does not,
   except reason keyCompromise with an invalidity date before that time (``revoked``). An expired
   bundle CRL is a warning for a timestamped document and an error (``crl_expired``) for an
   untimestamped one, whose current status is what matters;
7. pyHanko agrees at the same time (``rejected``);
8. the embedded record (or manifest / destruction JSON) parses strictly (no control, format or
   separator character and only NFC text in any string: :func:`certs.record.text_problem`), is canonical, matches the
   hash and id the document states and names the signing station -- a fleet manifest: the signing fleet, and
   no asset, certificate or file twice -- (``no_record``, ``bad_record``, ``hash_mismatch``, ``station_mismatch``);
9. what a person reads matches what is signed: page text against the record, field by field,
   each label printed only once, and the QR code's drawn modules are those of the signed
   certificate id and record hash (``visible_text_mismatch``, the reason names the field). The QR
   image is not decoded: the expected code is generated and compared module by module, which is
   cheaper and stricter;
10. the document is of the kind asked for, when the caller asks (``wrong_kind``).

Verification never fetches anything from the network: the bundle and the document's own DSS are
the only revocation sources.
"""

from __future__ import annotations

import enum
import hashlib
import io
import json
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.documents import DOCUMENT_KEY, kind_of
from certs.documents import KINDS as DOCUMENT_KINDS
from certs.documents import canonical_json as document_json
from certs.errors import RecordError, SigningError, TrustBundleError
from certs.files import MAX_BUNDLE_BYTES, MAX_DOCUMENT_BYTES, NotReadable, read_regular_file
from certs.issue import ATTACHMENT_NAME, CATALOG_KEY
from certs.oids import FLEET_SIGNING_EKU, STATION_SIGNING_EKU, VALIDATOR_SIGNING_EKU
from certs.pki import (
    FLEET_OU,
    STATION_OU,
    VALIDATOR_OU,
    StationSigner,
    TrustBundle,
    format_serial,
    parse_trust_bundle,
    utc_now,
)
from certs.record import SanitisationRecord, asset_key, check_document_strings
from certs.render import qr_payload
from certs.structure import STRUCTURE_CODES, SignedRange, StructureError, check_structure
from certs.units import size_with_bytes
from certs.validation import SIGNER_KINDS, ValidationStatement, person_key, summary_of

_FUTURE_SLACK = timedelta(minutes=10)
"""A token may claim a time this far after our clock (clock skew), no further."""


class DocumentKind(enum.StrEnum):
    """What a signed station document is (the value is what ``--json`` prints)."""

    CERTIFICATE = "certificate"
    FAILURE_REPORT = "failure_report"
    MANIFEST = "manifest"
    DESTRUCTION = "destruction"
    VALIDATION = "validation"
    FLEET_MANIFEST = "fleet_manifest"


class TimestampSource(enum.StrEnum):
    """Where the validation time of a document comes from."""

    SIGNATURE_TIMESTAMP = "signature_timestamp"
    DOCUMENT_TIMESTAMP = "document_timestamp"
    NONE = "none"
    """Not timestamped: validated at the current time; ``signed_at`` is the station's own clock."""


VERIFY_CODES: tuple[str, ...] = (
    "unreadable", "not_pdf", "bad_signature", "modified", "signer_is_ca", "untrusted", "signer_profile",
    "bad_timestamp", "untrusted_timestamp", "expired", "revoked", "crl_expired", "rejected", "no_record",
    "bad_record", "hash_mismatch", "station_mismatch", "visible_text_mismatch", "wrong_kind",
    "cms_profile", "weak_algorithm", "multiple_signer_infos", "signer_kind_mismatch",
)
"""Every failure code this module reports itself (see the module docstring)."""
FAILURE_CODES: tuple[str, ...] = (*STRUCTURE_CODES, *VERIFY_CODES)
"""Every failure code a :class:`VerificationReport` may carry: stable, for ``--json``."""

DEFAULT_KINDS = (DocumentKind.CERTIFICATE, DocumentKind.MANIFEST, DocumentKind.DESTRUCTION, DocumentKind.VALIDATION,
                 DocumentKind.FLEET_MANIFEST)
"""What ``verify`` accepts without ``--expect``: any signed document that proves what it says, named by its
kind in the verdict; a failure report only with ``--expect failure-report`` (exit 0 never means a drive
was sanitised when it was not)."""
EXPECT_CHOICES = {"certificate": DocumentKind.CERTIFICATE, "manifest": DocumentKind.MANIFEST,
                  "destruction": DocumentKind.DESTRUCTION, "failure-report": DocumentKind.FAILURE_REPORT,
                  "validation": DocumentKind.VALIDATION, "fleet-manifest": DocumentKind.FLEET_MANIFEST}
"""``verify --expect`` words → the document kind they ask for."""

_DOCUMENT_KIND = {"manifest": DocumentKind.MANIFEST, "destruction_report": DocumentKind.DESTRUCTION,
                  "validation": DocumentKind.VALIDATION, "fleet_manifest": DocumentKind.FLEET_MANIFEST}
MANIFEST_KINDS = (DocumentKind.MANIFEST, DocumentKind.FLEET_MANIFEST)
"""The documents that list certificates of sanitisation in a certificates/ folder beside them."""


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
    """The earliest trusted timestamp's time, else the time the station's clock stated."""
    timestamped: bool = False
    """True when ``signed_at`` comes from a trusted RFC 3161 timestamp."""
    timestamp_source: TimestampSource = TimestampSource.NONE
    validation_time: datetime | None = None
    """The time the signer's certificate and revocation status were judged at."""
    kind: DocumentKind | None = None
    """What the document is (a failure report can be valid: it proves the failure)."""
    demo: bool = False
    summary: str = ""
    """One human line: what was certified, by whom, when."""
    status: str = ""
    """How the signature stands, in words, e.g. "valid when signed; station certificate since expired"."""
    warnings: tuple[str, ...] = ()
    document: dict[str, Any] | None = field(default=None, repr=False)
    """For a batch manifest or destruction report: its embedded JSON (``certificate_id`` is its id)."""

    def to_json(self) -> dict[str, Any]:
        """A JSON-able summary (the record itself is left out; read it from the PDF)."""
        return {
            "path": str(self.path),
            "valid": self.valid,
            "code": self.code,
            "reason": self.reason,
            "kind": self.kind.value if self.kind else None,
            "warnings": list(self.warnings),
            "signed_at": self.signed_at.isoformat() if self.signed_at else None,
            "timestamp_source": self.timestamp_source.value,
            "validation_time": self.validation_time.isoformat() if self.validation_time else None,
            "signer": self.signer_subject,
            "status": self.status,
            "certificate_id": self.certificate_id,
            "record_sha256": self.record_sha256,
            "timestamped": self.timestamped,
            "demo": self.demo,
            "summary": self.summary,
        }


def load_trust_bundle(path: Path, *, now: datetime | None = None) -> TrustBundle:
    """Read and check a trust bundle file; raise TrustBundleError (bad input) if unusable.

    An expired CRL does not make the bundle unusable: old timestamped documents are still judged
    with it (with a warning); each verification decides what the expiry means for its document.
    ``now`` is accepted for compatibility and ignored.
    """
    del now
    if not path.exists():
        raise TrustBundleError(f"trust bundle not found: {path}")
    try:
        data = read_regular_file(path, MAX_BUNDLE_BYTES)
    except NotReadable as error:
        raise TrustBundleError(f"trust bundle: {error}") from None
    return parse_trust_bundle(data, require_current_crl=False)


def verify_file(path: Path, trust_bundle_path: Path, *, now: datetime | None = None,
                expect: DocumentKind | None = None) -> VerificationReport:
    """Verify one file against the trust bundle at ``trust_bundle_path``.

    Raises TrustBundleError only for a bad bundle; every problem with the document itself is
    reported in the returned :class:`VerificationReport`.
    """
    return verify_with_bundle(path, load_trust_bundle(trust_bundle_path), now=now, expect=expect)


def verify_many(
    paths: Iterable[Path], trust_bundle_path: Path, *, now: datetime | None = None,
    expect: DocumentKind | None = None,
) -> list[VerificationReport]:
    """Verify many files; a directory stands for the ``*.pdf`` files directly inside it (sorted)."""
    bundle = load_trust_bundle(trust_bundle_path)
    return [verify_with_bundle(item, bundle, now=now, expect=expect) for item in expand_paths(paths)]


def expand_paths(paths: Iterable[Path]) -> list[Path]:
    """Replace each directory by the ``*.pdf`` entries it contains, sorted by name.

    A directory that cannot be listed stays in the list as itself, so that verifying it reports
    ``unreadable`` for it instead of failing the whole batch. An entry named ``*.pdf`` that is not
    a regular file (a FIFO, a device, a folder) is kept too: verifying it names it ``unreadable``
    rather than skipping it silently.
    """
    result: list[Path] = []
    for path in paths:
        try:
            if path.is_dir():
                result += sorted(item for item in path.iterdir() if item.suffix.lower() == ".pdf")
                continue
        except OSError:
            pass
        result.append(path)
    return result


READ_BACK_TOLERATED = frozenset({"crl_expired"})
"""Codes the station's read-back of its own document accepts: a stale station CRL is reported when
signing, and partners holding a current bundle see the document valid."""


def read_back(path: Path, signer: StationSigner, expect: DocumentKind) -> VerificationReport:
    """Verify a document the station just wrote, from the file, as a partner would; refuse a bad one.

    A signing library's success is no proof: a glyph the font lacks makes the page text differ from
    the record, a revision the structure check refuses would make every partner reject the file. The
    station's own chain (its CA certificate and installed CRL) is the trust bundle. On failure the
    file is renamed ``*.refused`` (kept for support, never handed out) and SigningError names the
    verifier's code. Without an installed CRL nothing can be checked: the report says so.
    """
    authority = next((item for item in signer.chain if item.subject == item.issuer), None)
    if authority is None or signer.crl is None:
        return VerificationReport(path, False, "not_checked",
                                  "not read back: the station holds no CA certificate or CRL")
    report = verify_with_bundle(path, TrustBundle(authority, signer.crl), expect=expect)
    if not report.valid and report.code not in READ_BACK_TOLERATED:
        refused = path.with_name(path.name + ".refused")
        try:
            path.replace(refused)
        except OSError:
            path.unlink(missing_ok=True)
        raise SigningError(f"{path.name} failed the station's own verification ({report.code}: {report.reason}); "
                           f"not issued (kept as {refused.name})")
    return report


class _Invalid(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def verify_with_bundle(path: Path, bundle: TrustBundle, *, now: datetime | None = None,
                       expect: DocumentKind | Collection[DocumentKind] | None = None) -> VerificationReport:
    """Verify one file against an already loaded :class:`~certs.pki.TrustBundle`.

    ``now`` (default: the clock) is the current time; ``expect`` asks for one kind of document (or
    one of several): a valid document of another kind is then reported invalid with code ``wrong_kind``.
    """
    try:
        data = read_regular_file(path, MAX_DOCUMENT_BYTES)
    except NotReadable as error:
        return VerificationReport(path, False, "unreadable", str(error))
    return verify_data(path, data, bundle, now=now, expect=expect)


def verify_data(path: Path, data: bytes, bundle: TrustBundle, *, now: datetime | None = None,
                expect: DocumentKind | Collection[DocumentKind] | None = None) -> VerificationReport:
    """Verify a document held in memory (``path`` only names it in the report): the station's own
    read-back of what it just signed uses this before anything is written."""
    try:
        report = _verify(path, data, bundle, now or utc_now())
    except _Invalid as invalid:
        return VerificationReport(path, False, invalid.code, invalid.reason)
    except Exception as error:
        # Hostile or broken input must yield a verdict, not stop a batch: anything the parser did
        # not anticipate is a damaged file.
        return VerificationReport(
            path, False, "damaged", f"cannot process the file ({type(error).__name__}: {_short(error)})"
        )
    wanted = (expect,) if isinstance(expect, DocumentKind) else tuple(expect or ())
    if expect is not None and report.kind not in wanted:
        return VerificationReport(
            path, False, "wrong_kind",
            "a valid failure report: the drive was NOT sanitised (--expect failure-report accepts it)"
            if report.kind is DocumentKind.FAILURE_REPORT and len(wanted) > 1 else
            f"a valid {_KIND_WORDS[report.kind] if report.kind else 'document'}, "
            f"not a {' or '.join(_KIND_WORDS[kind] for kind in wanted)}",
            certificate_id=report.certificate_id, signer_subject=report.signer_subject,
            signed_at=report.signed_at, timestamped=report.timestamped,
            timestamp_source=report.timestamp_source, validation_time=report.validation_time,
            kind=report.kind, demo=report.demo, summary=report.summary, warnings=report.warnings,
        )
    return report


_KIND_WORDS = {DocumentKind.CERTIFICATE: "certificate of sanitisation", DocumentKind.FAILURE_REPORT: "failure report",
               DocumentKind.MANIFEST: "batch manifest", DocumentKind.DESTRUCTION: "destruction report",
               DocumentKind.VALIDATION: "validation statement", DocumentKind.FLEET_MANIFEST: "fleet manifest"}


# --- CMS, checked with our own code -------------------------------------------------------------


@dataclass(frozen=True)
class _SignerInfo:
    """A CMS SignedData whose single SignerInfo verified: who signed, and what."""

    certificate: x509.Certificate
    signature_value: bytes
    signed_data: Any = field(repr=False)
    signer_info: Any = field(repr=False)
    certificates: tuple[x509.Certificate, ...] = ()


_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_SIGNING_CERTIFICATE = "1.2.840.113549.1.9.16.2.12"
_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"
_SIGNATURE_TIMESTAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"
_CONTENT_OIDS = {"data": "1.2.840.113549.1.7.1", "tst_info": "1.2.840.113549.1.9.16.1.4"}

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}


_WEAK_HASHES = frozenset({"md2", "md5", "sha1", "sha224"})
"""Digest algorithms refused anywhere in a CMS (``weak_algorithm``): broken or below 128-bit security."""


def _digest(algorithm: str, parts: Sequence[bytes]) -> bytes:
    if algorithm in _WEAK_HASHES:
        raise _Invalid("weak_algorithm", f"digest algorithm {algorithm} is too weak")
    if algorithm not in _HASHES:
        raise _Invalid("bad_signature", f"digest algorithm {algorithm} is not accepted")
    hasher = hashes.Hash(_HASHES[algorithm]())
    for part in parts:
        hasher.update(part)
    return hasher.finalize()


def _signed_parts(data: bytes, byte_range: tuple[int, int, int, int]) -> tuple[bytes, bytes]:
    start, length, second, second_length = byte_range
    return data[start:start + length], data[second:second + second_length]


def _verify_cms(der: bytes, content_digest: bytes | None, *, content_type: str, code: str,
                extra_certificates: Sequence[x509.Certificate] = ()) -> _SignerInfo:
    """Check a CMS SignedData with one SignerInfo; raise ``_Invalid(code, ...)`` on any problem.

    ``content_digest`` is what the ``messageDigest`` attribute must equal (detached content);
    None means the content is encapsulated (a timestamp token) and is hashed from the CMS itself.
    The profile (:func:`_check_cms_profile`) is checked before any signature, so a
    weak or unexpected construction gets its own code rather than a generic one.
    """
    from asn1crypto import cms, core

    try:
        info = cms.ContentInfo.load(der, strict=True)
        if info["content_type"].native != "signed_data":
            raise _Invalid(code, "the CMS is not SignedData")
        signed_data = info["content"]
        signer_infos = list(signed_data["signer_infos"])
        if len(signer_infos) != 1:
            raise _Invalid("multiple_signer_infos", f"the CMS holds {len(signer_infos)} signer infos; expected one")
        signer_info = signer_infos[0]
        _check_cms_profile(der, info, signer_info, token=content_type == "tst_info")
        encapsulated = signed_data["encap_content_info"]
        if encapsulated["content_type"].native != content_type:
            raise _Invalid(code, f"the CMS content type is {encapsulated['content_type'].native}, "
                                 f"expected {content_type}")
        digest_algorithm = signer_info["digest_algorithm"]["algorithm"].native
        if content_digest is None:
            content = encapsulated["content"]
            if content.native is None:
                raise _Invalid(code, "the timestamp token carries no content")
            content_digest = _digest(digest_algorithm, [content.contents])
        elif encapsulated["content"].native is not None:
            raise _Invalid("cms_profile", "the signature encapsulates content; a PDF signature is detached")
        certificates = tuple(
            x509.load_der_x509_certificate(choice.chosen.dump())
            for choice in (signed_data["certificates"] or []) if choice.name == "certificate"
        )
        if len(certificates) != len(signed_data["certificates"] or []):
            raise _Invalid("cms_profile", "the CMS certificates carry something other than X.509 certificates")
        signer = _find_signer(signer_info["sid"], (*certificates, *extra_certificates), code)
        signed_attributes = signer_info["signed_attrs"]
        # Keyed by dotted OID: asn1crypto names some attributes only once pyHanko's signing modules
        # are imported, and a verdict must not depend on what happened to be imported before.
        attributes: dict[str, list[bytes]] = {}
        for attribute in signed_attributes:
            oid = attribute["type"].dotted
            if oid in attributes:
                raise _Invalid(code, f"signed attribute {oid} appears twice")
            attributes[oid] = [value.dump() for value in attribute["values"]]
        for oid, name in ((_CONTENT_TYPE, "contentType"), (_MESSAGE_DIGEST, "messageDigest")):
            if len(attributes.get(oid, [])) != 1:
                raise _Invalid("cms_profile", f"signed attribute {name} is missing or not single-valued")
        if core.ObjectIdentifier.load(attributes[_CONTENT_TYPE][0]).dotted != _CONTENT_OIDS[content_type]:
            raise _Invalid(code, "the contentType signed attribute does not match the content")
        if core.OctetString.load(attributes[_MESSAGE_DIGEST][0]).native != content_digest:
            raise _Invalid("modified" if code == "bad_signature" else code,
                           "the signed content was altered after signing (messageDigest does not match)")
        _check_signing_certificate(attributes, signer, code)
        signature_value: bytes = signer_info["signature"].native
        algorithm = signer_info["signature_algorithm"].signature_algo
        signed_bytes = signed_attributes.untag().dump()
    except _Invalid:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise _Invalid(code, f"the CMS cannot be parsed: {_short(error)}") from None
    _verify_signature_value(signer, algorithm, digest_algorithm, signature_value, signed_bytes, code)
    return _SignerInfo(signer, signature_value, signed_data, signer_info, certificates)


def _der_problem(data: bytes) -> str | None:
    """Why ``data`` is not exactly one DER encoding (definite, minimal lengths all the way down), or None.

    Linear in the size: asn1crypto's forced re-encoding is exponential in the nesting depth (a
    timestamped signature took seconds). Tags are not judged (the parser has already read them);
    lengths are, since an indefinite or padded length is where BER can hide bytes the DER would not have.
    """
    pending = [(0, len(data))]
    while pending:
        offset, end = pending.pop()
        start = offset
        while offset < end:
            if end - offset < 2:
                return f"a truncated element at byte {offset}"
            first = data[offset]
            position = offset + 1
            if first & 0x1F == 0x1F:  # high tag number: base-128 digits, the last without bit 8
                while position < end and data[position] & 0x80:
                    position += 1
                position += 1
            if position >= end:
                return f"a truncated element at byte {offset}"
            length_byte = data[position]
            position += 1
            if length_byte == 0x80:
                return f"an indefinite length at byte {offset}"
            if length_byte & 0x80:
                count = length_byte & 0x7F
                raw = data[position:position + count]
                if count == 0 or len(raw) != count or raw[0] == 0:
                    return f"a non-minimal length at byte {offset}"
                length = int.from_bytes(raw, "big")
                if length < 0x80:
                    return f"a non-minimal length at byte {offset}"
                position += count
            else:
                length = length_byte
            if position + length > end:
                return f"an element longer than its container at byte {offset}"
            if first & 0x20:  # constructed: its contents are elements too
                pending.append((position, position + length))
            offset = position + length
            if end == len(data) and start == 0 and offset != end:
                return "bytes after the one top-level element"
        if offset != end:
            return "elements overrun their container"
    return None


def _check_cms_profile(der: bytes, info: Any, signer_info: Any, *, token: bool) -> None:
    """The strict CMS profile, for the station signature and every timestamp token.

    The CMS sits in the unsigned gap of the PDF: anyone can rewrite it in place, so everything the
    signature does not cover is allow-listed. It must be DER exactly (a re-encoding gives the same
    bytes, so no BER indefinite lengths or padded lengths hide data); digestAlgorithms names exactly
    the SignerInfo's digest algorithm; no SHA-1/MD5 anywhere (``weak_algorithm``); no CRLs inside;
    unsigned attributes: one signature timestamp token at most for the station, none for a token
    (``cms_profile``).
    """
    problem = _der_problem(der)
    if problem is not None:
        raise _Invalid("cms_profile", f"the CMS is not DER-encoded exactly ({problem})")
    signed_data = info["content"]
    digest_algorithm = signer_info["digest_algorithm"]["algorithm"].native
    if digest_algorithm in _WEAK_HASHES:
        raise _Invalid("weak_algorithm", f"the signer's digest algorithm is {digest_algorithm}")
    announced = [item["algorithm"].native for item in signed_data["digest_algorithms"]]
    weak = sorted(set(announced) & _WEAK_HASHES)
    if weak:
        raise _Invalid("weak_algorithm", f"SignedData.digestAlgorithms names {', '.join(weak)}")
    if announced != [digest_algorithm]:
        raise _Invalid("cms_profile", f"SignedData.digestAlgorithms is {announced}; expected exactly "
                                      f"[{digest_algorithm!r}], the signer's digest algorithm")
    signature_algorithm = signer_info["signature_algorithm"]
    try:
        signature_hash: str | None = signature_algorithm.hash_algo
    except ValueError:
        signature_hash = None  # a bare key algorithm (rsaEncryption): the digest algorithm applies
    if signature_hash in _WEAK_HASHES:
        raise _Invalid("weak_algorithm", f"the signature algorithm is {signature_algorithm['algorithm'].native}")
    if signature_hash is not None and signature_hash != digest_algorithm:
        raise _Invalid("cms_profile", f"the signature algorithm hashes with {signature_hash}, the signer's "
                                      f"digest algorithm is {digest_algorithm}")
    if signed_data["crls"].native:
        raise _Invalid("cms_profile", "the CMS carries revocation data inside; it belongs in the DSS")
    if not signer_info["signed_attrs"]:
        raise _Invalid("cms_profile", "the signature has no signed attributes")
    unsigned = signer_info["unsigned_attrs"]
    kinds = [attribute["type"].dotted for attribute in unsigned] if unsigned else []
    if token and kinds:
        raise _Invalid("cms_profile", f"the timestamp token carries unsigned attributes ({', '.join(kinds)})")
    if [kind for kind in kinds if kind != _SIGNATURE_TIMESTAMP_TOKEN]:
        raise _Invalid("cms_profile", "the signature carries unsigned attributes other than one signature "
                                      f"timestamp ({', '.join(kinds)})")
    if len(kinds) > 1 or (kinds and len(unsigned[0]["values"]) != 1):
        raise _Invalid("cms_profile", "the signature carries more than one signature timestamp")


def _check_certificate_bag(certificates: Sequence[x509.Certificate], signer: x509.Certificate) -> None:
    """The CMS carries the signer's certificate and optionally its issuer's (the CA), each once, nothing else.

    Extra certificates are the lever for selection tricks (a look-alike with the signer's issuer
    and serial): the verdict must not depend on which of several candidates some code picks.
    Whether that issuer is the trusted CA is the signer profile's decision (``untrusted``), made
    later from the bundle, never from the bag. A timestamp token may carry none (the bundle then
    supplies the TSA certificate).
    """
    signer_der = signer.public_bytes(serialization.Encoding.DER)
    encoded = [item.public_bytes(serialization.Encoding.DER) for item in certificates]
    if len(set(encoded)) != len(encoded):
        raise _Invalid("cms_profile", "the CMS carries the same certificate twice")
    strangers = [item for item, der in zip(certificates, encoded, strict=True)
                 if der != signer_der and item.subject != signer.issuer]
    if strangers or len(certificates) > 2:
        raise _Invalid("cms_profile", "the CMS carries certificates other than the signer's and its CA's: "
                                      + "; ".join(item.subject.rfc4514_string() for item in strangers or certificates))


def _find_signer(sid: Any, candidates: Sequence[x509.Certificate], code: str) -> x509.Certificate:
    """The certificate the SignerInfo's ``sid`` names (issuer and serial, or subject key id)."""
    from asn1crypto import x509 as asn1_x509

    matches: list[x509.Certificate] = []
    for certificate in candidates:
        if sid.name == "issuer_and_serial_number":
            issuer = asn1_x509.Name.load(certificate.issuer.public_bytes())
            if issuer == sid.chosen["issuer"] and certificate.serial_number == sid.chosen["serial_number"].native:
                matches.append(certificate)
        elif sid.name == "subject_key_identifier":
            try:
                identifier = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
            except x509.ExtensionNotFound:
                continue
            if identifier == sid.chosen.native:
                matches.append(certificate)
    distinct = {certificate.public_bytes(serialization.Encoding.DER) for certificate in matches}
    if len(distinct) != 1:
        raise _Invalid(code, "the CMS does not carry exactly one certificate matching its signer identifier")
    return matches[0]


def _check_signing_certificate(attributes: dict[str, list[bytes]], signer: x509.Certificate, code: str) -> None:
    """ESS signingCertificateV2 (RFC 5035) must name the signer: it binds the certificate to the signature.

    The older signingCertificate (RFC 2634) hashes with SHA-1 and is refused (``weak_algorithm``).
    """
    from asn1crypto import tsp

    signer_der = signer.public_bytes(serialization.Encoding.DER)
    if _SIGNING_CERTIFICATE_V2 in attributes:
        values = attributes[_SIGNING_CERTIFICATE_V2]
        if len(values) != 1:
            raise _Invalid(code, "the ESS signingCertificateV2 attribute is repeated")
        certificates = tsp.SigningCertificateV2.load(values[0])["certs"]
        if not len(certificates):
            raise _Invalid(code, "the ESS signingCertificateV2 attribute is empty")
        if len(certificates) != 1:
            raise _Invalid("cms_profile", "the ESS signingCertificateV2 attribute names more than one certificate")
        first = certificates[0]
        expected = _digest(first["hash_algorithm"]["algorithm"].native, [signer_der])
    elif _SIGNING_CERTIFICATE in attributes:
        # RFC 2634 fixes SHA-1 for this attribute: a certificate chosen for a SHA-1 collision
        # could stand in for the signer's.
        raise _Invalid("weak_algorithm", "the signature binds its certificate with the ESS signingCertificate "
                                         "attribute (SHA-1); signingCertificateV2 with SHA-256 is required")
    else:
        raise _Invalid("cms_profile", "the signature has no ESS signingCertificateV2 attribute")
    if first["cert_hash"].native != expected:
        raise _Invalid(code, "the ESS signing certificate attribute names another certificate than the signer")
    issuer_serial = first["issuer_serial"]
    if issuer_serial.native is not None and issuer_serial["serial_number"].native != signer.serial_number:
        raise _Invalid(code, "the ESS signing certificate attribute's issuer serial does not match the signer")


def _verify_signature_value(signer: x509.Certificate, algorithm: str, digest_algorithm: str, signature: bytes,
                            signed_bytes: bytes, code: str) -> None:
    if digest_algorithm not in _HASHES:
        raise _Invalid(code, f"digest algorithm {digest_algorithm} is not accepted")
    hash_algorithm = _HASHES[digest_algorithm]()
    key = signer.public_key()
    try:
        if algorithm == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed_bytes, ec.ECDSA(hash_algorithm))
        elif algorithm == "rsassa_pkcs1v15" and isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed_bytes, padding.PKCS1v15(), hash_algorithm)
        else:
            raise _Invalid(code, f"signature algorithm {algorithm} with a {type(key).__name__} is not accepted")
    except InvalidSignature:
        raise _Invalid(code, "the signature value does not verify with the signer's key") from None


# --- certificate profiles -----------------------------------------------------------------------


def _issued_by(certificate: x509.Certificate, ca: x509.Certificate) -> bool:
    if certificate.issuer != ca.subject:
        return False
    try:
        certificate.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False  # same name, another key: an impostor CA
    return True


def _same_key(first: x509.Certificate, second: x509.Certificate) -> bool:
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(first.public_key().public_bytes(serialization.Encoding.DER, public)
                == second.public_key().public_bytes(serialization.Encoding.DER, public))


def _extension(certificate: x509.Certificate, kind: type[Any]) -> Any:
    try:
        return certificate.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None


_SIGNER_ROLES = (("station", STATION_SIGNING_EKU, STATION_OU), ("validator", VALIDATOR_SIGNING_EKU, VALIDATOR_OU),
                 ("fleet", FLEET_SIGNING_EKU, FLEET_OU))
"""(role, extended key usage, organisational unit) of every certificate that may sign a document."""


def _check_signer_profile(signer: x509.Certificate, bundle: TrustBundle) -> str:
    """Only a certificate the CA issued *as a station* (or *as a validator*, or *as the fleet*) signs documents.

    Returns ``"station"``, ``"validator"`` or ``"fleet"``: exactly one signing EKU, with its unit; what each may
    sign is decided once the document's kind is known (:func:`_require_station`, :func:`_check_statement_signer`,
    :func:`_verify_fleet_manifest`).
    """
    ca = bundle.ca_certificate
    subject = signer.subject.rfc4514_string()
    if signer == ca or _same_key(signer, ca):
        raise _Invalid("signer_is_ca", "the CA key signed this document; the CA signs only certificates and CRLs")
    if not _issued_by(signer, ca):
        raise _Invalid(
            "untrusted",
            f"signed by {subject}, issued by {signer.issuer.rfc4514_string()}: "
            f"not a station certificate of the trusted CA ({bundle.organisation()})",
        )
    constraints = _extension(signer, x509.BasicConstraints)
    if constraints is None or constraints.value.ca:
        raise _Invalid("signer_profile", f"{subject} is a CA certificate (or states no basic constraints)")
    usage = _extension(signer, x509.KeyUsage)
    if usage is None or not (usage.value.digital_signature and usage.value.content_commitment):
        raise _Invalid("signer_profile", f"{subject} lacks key usage digitalSignature + nonRepudiation")
    extended = _extension(signer, x509.ExtendedKeyUsage)
    usages = set(extended.value) if extended is not None else set()
    claimed = [(role, unit) for role, usage, unit in _SIGNER_ROLES if usage in usages]
    if len(claimed) > 1:
        raise _Invalid("signer_profile", f"{subject} claims to be both a {claimed[0][0]} and a {claimed[1][0]}")
    if not claimed:
        raise _Invalid("signer_profile", f"{subject} is not a station signing certificate "
                                         f"(no extended key usage {STATION_SIGNING_EKU.dotted_string})")
    role, unit = claimed[0]
    units = [str(item.value) for item in signer.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    if units != [unit]:
        raise _Invalid("signer_profile", f"{subject} does not name the unit {unit!r}")
    return role


_ROLE_SIGNS = {"validator": "validation statements", "fleet": "fleet manifests"}


def _require_station(common: dict[str, Any], what: str) -> None:
    """Everything but a validation statement or a fleet manifest is signed by a station, never by a person or
    the fleet."""
    role = common["role"]
    if role != "station":
        signer: x509.Certificate = common["signer"]
        raise _Invalid("signer_profile", f"{signer.subject.rfc4514_string()} is a {role} certificate: it may "
                                         f"sign {_ROLE_SIGNS[role]} only, not a {what}")


def _check_tsa_profile(certificate: x509.Certificate, bundle: TrustBundle) -> None:
    subject = certificate.subject.rfc4514_string()
    if not _issued_by(certificate, bundle.ca_certificate):
        raise _Invalid("untrusted_timestamp", f"timestamp by {subject}, not a TSA of the trusted CA")
    extended = _extension(certificate, x509.ExtendedKeyUsage)
    if extended is None or not extended.critical or ExtendedKeyUsageOID.TIME_STAMPING not in extended.value:
        raise _Invalid("untrusted_timestamp",
                       f"timestamp by {subject}, which lacks the critical timeStamping extended key usage")
    constraints = _extension(certificate, x509.BasicConstraints)
    if constraints is not None and constraints.value.ca:
        raise _Invalid("untrusted_timestamp", f"timestamp by {subject}, a CA certificate")


# --- timestamps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Timestamp:
    source: TimestampSource
    time: datetime
    tsa: x509.Certificate


def _verify_token(token_der: bytes, imprint_parts: Sequence[bytes], bundle: TrustBundle, now: datetime,
                  source: TimestampSource) -> _Timestamp:
    """Check an RFC 3161 token: signature, message imprint over ``imprint_parts``, TSA profile."""
    extra = bundle.tsa_certificates
    checked = _verify_cms(token_der, None, content_type="tst_info", code="bad_timestamp",
                          extra_certificates=extra)
    try:
        info = checked.signed_data["encap_content_info"]["content"].parsed
        imprint = info["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        stated = imprint["hashed_message"].native
        generated: datetime = info["gen_time"].native
    except (ValueError, TypeError, KeyError) as error:
        raise _Invalid("bad_timestamp", f"the timestamp token cannot be parsed: {_short(error)}") from None
    if stated != _digest(algorithm, imprint_parts):
        raise _Invalid("bad_timestamp", f"the {source.value.replace('_', ' ')} is for other data "
                                        "(message imprint mismatch)")
    if generated > now + _FUTURE_SLACK:
        raise _Invalid("bad_timestamp", f"the {source.value.replace('_', ' ')} claims a future time "
                                        f"({generated:%Y-%m-%d %H:%M} UTC)")
    _check_tsa_profile(checked.certificate, bundle)
    _check_certificate_bag(checked.certificates, checked.certificate)
    return _Timestamp(source, generated.astimezone(UTC), checked.certificate)


def _signature_timestamp(signer_info: Any) -> bytes | None:
    attributes = signer_info["unsigned_attrs"]
    if not attributes:
        return None
    tokens = [attribute for attribute in attributes if attribute["type"].dotted == _SIGNATURE_TIMESTAMP_TOKEN]
    if not tokens:
        return None
    values = list(tokens[0]["values"])
    if len(tokens) != 1 or len(values) != 1:
        raise _Invalid("bad_timestamp", "the signature carries more than one signature timestamp")
    token: bytes = values[0].dump()
    return token


def _check_timestamp_chain(stamps: Sequence[_Timestamp], crls: Sequence[x509.CertificateRevocationList],
                           now: datetime) -> None:
    """Each TSA certificate must be valid when it stamped and at the time the next stamp proves."""
    for index, stamp in enumerate(stamps):
        # A token may be up to _FUTURE_SLACK ahead of our clock (checked when it was read).
        later = stamps[index + 1].time if index + 1 < len(stamps) else max(now, stamp.time)
        if later < stamp.time:
            raise _Invalid("bad_timestamp", "the timestamps go backwards in time")
        tsa = stamp.tsa
        validity = (f"TSA certificate {tsa.subject.rfc4514_string()} (valid {tsa.not_valid_before_utc:%Y-%m-%d} "
                    f"to {tsa.not_valid_after_utc:%Y-%m-%d})")
        if stamp.time < tsa.not_valid_before_utc:
            raise _Invalid("untrusted_timestamp", f"{validity} is not valid at {stamp.time:%Y-%m-%d %H:%M} UTC, "
                                                  "the time its token claims")
        for moment in (stamp.time, later):
            if moment > tsa.not_valid_after_utc:
                raise _Invalid("untrusted_timestamp", f"{validity} is not valid at {moment:%Y-%m-%d}: the document "
                                                      "needed a newer document timestamp before it aged out")
        problem = _revocation_problem(tsa, crls, later)
        if problem:
            raise _Invalid("untrusted_timestamp", f"TSA certificate {problem}")


# --- revocation ---------------------------------------------------------------------------------


def _dss_crls(reader: Any, ca: x509.Certificate) -> list[x509.CertificateRevocationList]:
    """The CRLs in the document's DSS that the CA signed (others are ignored, never trusted)."""
    try:
        dss = reader.root.get("/DSS")
        items = dss.get_object().get("/CRLs") if dss is not None else None
    except (KeyError, TypeError, AttributeError):
        return []
    result: list[x509.CertificateRevocationList] = []
    for item in items or []:
        try:
            crl = x509.load_der_x509_crl(item.get_object().data)
        except Exception:  # a damaged stream or CRL is not revocation evidence
            continue
        if _crl_from(crl, ca):
            result.append(crl)
    return result


def _crl_from(crl: x509.CertificateRevocationList, ca: x509.Certificate) -> bool:
    if crl.issuer != ca.subject:
        return False
    key = ca.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return False
    try:
        return bool(crl.is_signature_valid(key))
    except (InvalidSignature, TypeError, ValueError):
        return False


def _revocation_problem(certificate: x509.Certificate, crls: Sequence[x509.CertificateRevocationList],
                        moment: datetime) -> str:
    """Why ``certificate`` counts as revoked at ``moment``, or "" when it does not."""
    label = f"{format_serial(certificate.serial_number)} ({_common_name(certificate)})"
    for crl in crls:
        entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
        if entry is None:
            continue
        revoked_at = entry.revocation_date_utc
        if revoked_at <= moment:
            return f"{label} was revoked on {revoked_at:%Y-%m-%d %H:%M} UTC, before {moment:%Y-%m-%d %H:%M} UTC"
        reason = _extension_value(entry, x509.CRLReason)
        invalid_since = _extension_value(entry, x509.InvalidityDate)
        if (reason is not None and reason.reason == x509.ReasonFlags.key_compromise and invalid_since is not None
                and invalid_since.invalidity_date_utc < moment):
            return (f"{label} was revoked for key compromise, the key counts as compromised since "
                    f"{invalid_since.invalidity_date_utc:%Y-%m-%d %H:%M} UTC, before {moment:%Y-%m-%d %H:%M} UTC")
    return ""


def _extension_value(entry: x509.RevokedCertificate, kind: type[Any]) -> Any:
    try:
        return entry.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


# --- the verification ---------------------------------------------------------------------------


def _check_validity(signer: x509.Certificate, bundle: TrustBundle, moment: datetime, station_label: str,
                    when: str) -> None:
    """The station certificate and the CA are both valid at ``moment`` (``expired``)."""
    if moment > signer.not_valid_after_utc:
        raise _Invalid("expired", f"{station_label} expired on {signer.not_valid_after_utc:%Y-%m-%d}: not valid {when}")
    if moment < signer.not_valid_before_utc:
        raise _Invalid("expired", f"{station_label} is not valid before {signer.not_valid_before_utc:%Y-%m-%d}: "
                                  f"not valid {when}")
    ca = bundle.ca_certificate
    if not ca.not_valid_before_utc <= moment <= ca.not_valid_after_utc:
        raise _Invalid("expired", f"the organisation CA certificate (valid {ca.not_valid_before_utc:%Y-%m-%d} to "
                                  f"{ca.not_valid_after_utc:%Y-%m-%d}) is not valid {when}")


@dataclass(frozen=True)
class StationSignatureProblem:
    """Why a raw station signature (an audit checkpoint's) is not accepted: a code of this module and a reason."""

    code: str
    reason: str


def check_station_signature(signer: x509.Certificate, signed: bytes, signature: bytes, moment: datetime,
                            bundle: TrustBundle, *, station_id: str | None = None) -> StationSignatureProblem | None:
    """Check a raw ECDSA-SHA256 signature over ``signed`` made by a station at ``moment``; None when accepted.

    The same checks a signed PDF's station signature passes, in the same order and with the same
    codes: the signer profile (issued by the bundle's CA as a station: EKU, key usage, OU; never
    the CA itself), validity of the station and CA certificates at ``moment``, revocation in the
    bundle's CRL as of ``moment`` (keyCompromise with an earlier invalidity date counts), then the
    signature value. ``station_id``, when given, must be the certificate's common name
    (``station_mismatch``). ``moment`` is the time the signed data states: nothing timestamps it, so
    an invalidity date does NOT stop a back-dated signature by a stolen key; callers refuse untimestamped
    signatures of a key revoked for key compromise outright (:mod:`certs.audit_chain`).
    """
    station_label = f"station certificate {format_serial(signer.serial_number)} ({_common_name(signer)})"
    try:
        role = _check_signer_profile(signer, bundle)
        if role != "station":  # a validator's or the fleet's key never signs a station's audit chain
            raise _Invalid("signer_profile", f"{signer.subject.rfc4514_string()} is a {role} certificate, not a "
                                             "station's: it does not sign audit checkpoints")
        if station_id is not None and _common_name(signer) != station_id:
            raise _Invalid("station_mismatch", f"signed by station {_common_name(signer)!r}, "
                                               f"not by station {station_id!r}")
        _check_validity(signer, bundle, moment, station_label, f"at {moment:%Y-%m-%d %H:%M} UTC")
        problem = _revocation_problem(signer, [bundle.crl], moment)
        if problem:
            raise _Invalid("revoked", f"station certificate {problem}")  # the problem names serial and station
        _verify_signature_value(signer, "ecdsa", "sha256", signature, signed, "bad_signature")
    except _Invalid as invalid:
        return StationSignatureProblem(invalid.code, invalid.reason)
    return None


def _verify(path: Path, data: bytes, bundle: TrustBundle, now: datetime) -> VerificationReport:
    # Imported here so that importing certs.verify (e.g. for the CLI's --help) stays cheap.
    # asn1crypto.tsp registers the RFC 3161 content type (tst_info) and ESS attributes with
    # asn1crypto's CMS tables; without it the parse of a timestamp token depends on whether some
    # other module (pyHanko's signer) happened to be imported first.
    from asn1crypto import tsp  # noqa: F401
    from pyhanko.pdf_utils.reader import PdfFileReader

    if b"%PDF-" not in data[:1024]:
        raise _Invalid("not_pdf", "not a PDF file")
    try:
        structure = check_structure(data)
    except StructureError as error:
        raise _Invalid(error.code, error.reason) from None
    signature = structure.signature
    parts = _signed_parts(data, signature.byte_range)
    signed = _verify_cms(signature.cms, hashlib.sha256(b"".join(parts)).digest(), content_type="data",
                         code="bad_signature")
    signer = signed.certificate
    role = _check_signer_profile(signer, bundle)
    # After the profile: who signed is the more telling verdict (signer_is_ca, untrusted).
    _check_certificate_bag(signed.certificates, signer)

    stamps: list[_Timestamp] = []
    token = _signature_timestamp(signed.signer_info)
    if token is not None:
        stamps.append(_verify_token(token, [signed.signature_value], bundle, now,
                                    TimestampSource.SIGNATURE_TIMESTAMP))
    for document_timestamp in structure.document_timestamps:
        stamps.append(_verify_token(document_timestamp.cms, _signed_parts(data, document_timestamp.byte_range),
                                    bundle, now, TimestampSource.DOCUMENT_TIMESTAMP))

    # The signed revision alone: everything a person or program reads is taken from these bytes.
    signed_end = signature.byte_range[2] + signature.byte_range[3]
    signed_reader = PdfFileReader(io.BytesIO(data[:signed_end]), strict=False)
    reader = PdfFileReader(io.BytesIO(data), strict=False)
    crls = [*_dss_crls(reader, bundle.ca_certificate), bundle.crl]
    _check_timestamp_chain(stamps, crls, now)

    warnings: list[str] = []
    timestamped = bool(stamps)
    moment = stamps[0].time if stamps else now
    source = stamps[0].source if stamps else TimestampSource.NONE
    # the signer's role names it: a fleet's or validator's certificate is not called a station's
    station_label = f"{role} certificate {format_serial(signer.serial_number)} ({_common_name(signer)})"
    when = f"when signed ({moment:%Y-%m-%d}, timestamped)" if timestamped else f"now ({moment:%Y-%m-%d})"
    _check_validity(signer, bundle, moment, station_label, when)
    bundle_next = bundle.crl.next_update_utc
    if bundle_next is not None and bundle_next < now:
        if not timestamped:
            raise _Invalid("crl_expired", f"the trust bundle's CRL expired on {bundle_next:%Y-%m-%d} and this "
                                          "document is not timestamped, so its current status matters: ask the "
                                          "issuer for a current bundle")
        warnings.append(f"the trust bundle's CRL expired on {bundle_next:%Y-%m-%d}: revocations published "
                        "since are not known")
    covering = [crl for crl in crls[:-1] if crl.last_update_utc <= moment
                and (crl.next_update_utc is None or moment <= crl.next_update_utc)]
    if timestamped and not covering:
        warnings.append("the document embeds no CRL current at the signing time; the bundle's CRL decides alone")
    # Every CRL the CA signed counts as evidence of a revocation, covering or not: a later CRL in
    # the DSS (added when the document was extended) listing an earlier revocation is just as true.
    problem = _revocation_problem(signer, crls, moment)
    if problem:
        raise _Invalid("revoked", f"{station_label.split(' (')[0]} {problem}")

    signed_at_clock = _second_opinion(reader, signature, bundle, moment, timestamped)
    signed_at = moment if timestamped else signed_at_clock
    if timestamped:
        status = ("valid when signed; station certificate since expired" if now > signer.not_valid_after_utc
                  else "valid when signed")
        status += f" (timestamped {moment:%Y-%m-%d %H:%M} UTC)"
    else:
        status = "valid now; not timestamped"
    common = {"role": role, "signer": signer, "signed_at": signed_at, "timestamped": timestamped, "source": source,
              "moment": moment, "status": status, "warnings": tuple(warnings), "bundle": bundle}
    if DOCUMENT_KEY in signed_reader.root:
        return _verify_document(path, signed_reader, data[:signed_end], common)
    return _verify_record(path, signed_reader, data[:signed_end], common)


def _second_opinion(reader: Any, signature: SignedRange, bundle: TrustBundle, moment: datetime,
                    timestamped: bool) -> datetime | None:
    """pyHanko validates the same signature at the same time; it can only reject, never accept alone.

    Revocation is left out of pyHanko's run on purpose: our rules (a revocation after the proven
    time does not count) are not certvalidator's, and a second opinion must not contradict a rule.
    Returns the signing time the station's clock stated (for untimestamped documents).
    """
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    der = serialization.Encoding.DER
    context = ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(bundle.ca_certificate.public_bytes(der))],
        allow_fetching=False, revocation_mode="soft-fail", moment=moment,
    )
    matches = [item for item in reader.embedded_regular_signatures if item.field_name == signature.field_name]
    if len(matches) != 1:
        raise _Invalid("rejected", "pyHanko does not find the station signature where we found it")
    try:
        # skip_diff: pyHanko's difference analysis is already the structure check's second opinion
        # (certs.structure); running it twice would cost a third of the verification time.
        status = validate_pdf_signature(matches[0], signer_validation_context=context, skip_diff=True)
    except Exception as error:  # pyHanko raises assorted types on input it dislikes
        raise _Invalid("rejected", f"pyHanko cannot validate the signature: {_short(error)}") from None
    if not (status.intact and status.valid and status.trusted):
        raise _Invalid("rejected", f"pyHanko rejects the signature: {status.summary()}")
    stamp = status.timestamp_validity
    if timestamped and stamp is not None and not (stamp.intact and stamp.valid):
        raise _Invalid("rejected", "pyHanko rejects the signature timestamp")
    reported: datetime | None = status.signer_reported_dt
    return reported


def _verify_record(path: Path, reader: Any, signed_bytes: bytes, common: dict[str, Any]) -> VerificationReport:
    record_json = _embedded_record(reader)
    try:
        record = SanitisationRecord.from_json(record_json)
    except RecordError as error:
        raise _Invalid("bad_record", f"the embedded record is invalid: {error.message}") from None
    if record.to_canonical_json() != record_json:
        raise _Invalid("bad_record", "the embedded record is not in canonical form")
    record_sha256 = hashlib.sha256(record_json).hexdigest()
    _check_identity(reader, record, record_sha256)
    _require_station(common, "certificate of sanitisation or failure report")
    signer: x509.Certificate = common["signer"]
    station = _common_name(signer)
    if station != record.station_id:
        raise _Invalid(
            "station_mismatch", f"the record names station {record.station_id!r} but {station!r} signed it"
        )
    _check_visible_record(signed_bytes, record, record_sha256)
    signed_at: datetime | None = common["signed_at"]
    kind = DocumentKind.CERTIFICATE if record.outcome == "sanitised" else DocumentKind.FAILURE_REPORT
    return VerificationReport(
        path=path, valid=True, code="valid",
        reason="signature valid, bytes exactly as signed, station of the trusted CA, record and page text match",
        certificate_id=record.certificate_id, record_sha256=record_sha256, record=record,
        signer_subject=signer.subject.rfc4514_string(), signed_at=signed_at,
        timestamped=common["timestamped"], timestamp_source=common["source"], validation_time=common["moment"],
        kind=kind, demo=record.demo, summary=summarise(record, signed_at), status=common["status"],
        warnings=common["warnings"],
    )


def _embedded_record(reader: Any, name: str = ATTACHMENT_NAME) -> bytes:
    try:
        names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
        pairs = [(str(names[index]), names[index + 1]) for index in range(0, len(names) - 1, 2)]
    except (KeyError, TypeError, IndexError):
        raise _Invalid("no_record", f"the PDF has no embedded {name}") from None
    matches = [spec for found, spec in pairs if found == name]
    if len(matches) != 1 or len(pairs) != 1:
        raise _Invalid("no_record", f"the PDF must embed exactly one file, {name}; found {len(pairs)}")
    try:
        data: bytes = matches[0].get_object()["/EF"]["/F"].get_object().data
    except Exception as error:  # a damaged stream can raise from several pyHanko layers
        raise _Invalid("no_record", f"cannot read the embedded record: {_short(error)}") from None
    return data


def _verify_document(path: Path, reader: Any, signed_bytes: bytes, common: dict[str, Any]) -> VerificationReport:
    """A signed manifest or destruction report: the embedded JSON must be canonical and match the catalog."""
    try:
        stated = reader.root[DOCUMENT_KEY]
        document_kind = kind_of(str(stated["/Kind"]))
        document_id = str(stated["/DocumentId"])
        stated_hash = str(stated["/SHA256"])
    except (KeyError, TypeError):
        raise _Invalid("hash_mismatch", "the PDF does not state the document kind, id and hash") from None
    if document_kind is None:
        raise _Invalid("bad_record", f"unknown document kind {stated.get('/Kind')!r}")
    if CATALOG_KEY in reader.root:
        raise _Invalid("bad_record", "the PDF states both a document and a certificate identity")
    payload = _embedded_record(reader, DOCUMENT_KINDS[document_kind])
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _Invalid("bad_record", "the embedded document is not UTF-8 JSON") from None
    if not isinstance(document, dict) or document_json(document) != payload:
        raise _Invalid("bad_record", "the embedded document is not a canonical JSON object")
    try:
        check_document_strings(document, "document")
    except RecordError as error:
        raise _Invalid("bad_record", f"the embedded document is malformed: {error}") from None
    digest = hashlib.sha256(payload).hexdigest()
    if digest != stated_hash:
        raise _Invalid("hash_mismatch", f"the embedded document hashes to {digest}, the PDF states {stated_hash}")
    if document.get("document_id") != document_id or document.get("kind") != document_kind:
        raise _Invalid("hash_mismatch", "the document id or kind does not match the embedded document")
    kind = _DOCUMENT_KIND[document_kind]
    if kind is DocumentKind.VALIDATION:
        return _verify_statement(path, payload, digest, signed_bytes, common)
    if kind is DocumentKind.FLEET_MANIFEST:
        return _verify_fleet_manifest(path, document, digest, signed_bytes, common)
    _require_station(common, f"{document_kind.replace('_', ' ')}")
    signer: x509.Certificate = common["signer"]
    station = _common_name(signer)
    if document.get("station_id") != station:
        raise _Invalid("station_mismatch",
                       f"the document names station {document.get('station_id')!r} but {station!r} signed it")
    if kind is DocumentKind.MANIFEST:
        _check_manifest_assets(document)
    _check_visible_document(signed_bytes, kind, document)
    warnings = common["warnings"]
    if kind is DocumentKind.MANIFEST and document.get("audit_checkpoint") is not None:
        warnings = (*warnings, *_anchor_warnings(document["audit_checkpoint"], common["bundle"], station))
    signed_at: datetime | None = common["signed_at"]
    demo = bool(document.get("demo"))
    label = "batch manifest" if kind is DocumentKind.MANIFEST else "destruction report"
    when = f"{signed_at:%Y-%m-%d %H:%M} UTC" if signed_at else str(document.get("created_at"))
    summary = f"{'DEMONSTRATION: ' if demo else ''}{label} {document_id}: {document.get('summary', '')}; " \
              f"station {station}, {when}"
    return VerificationReport(
        path=path, valid=True, code="valid",
        reason="signature valid, bytes exactly as signed, station of the trusted CA, content and page text match",
        certificate_id=document_id, record_sha256=digest, signer_subject=signer.subject.rfc4514_string(),
        signed_at=signed_at, timestamped=common["timestamped"], timestamp_source=common["source"],
        validation_time=common["moment"], kind=kind, demo=demo, summary=summary, status=common["status"],
        warnings=warnings, document=document,
    )


def _check_manifest_assets(document: dict[str, Any]) -> None:
    """A station manifest lists each asset once: two tags with one :func:`certs.record.asset_key` (case, white
    space, full-width forms) are one label, listed twice in disguise (``bad_record``)."""
    devices = document.get("devices")
    if not isinstance(devices, list):
        raise _Invalid("bad_record", "the embedded manifest lists no devices")
    seen: dict[str, str] = {}
    for device in devices:
        asset = device.get("asset") if isinstance(device, dict) else None
        if not isinstance(asset, str) or not asset.strip():
            raise _Invalid("bad_record", "a device of the embedded manifest has no asset tag")
        if asset_key(asset) in seen:
            raise _Invalid("bad_record", f"the manifest lists asset {seen[asset_key(asset)]!r} twice "
                                         f"(again as {asset!r})")
        seen[asset_key(asset)] = asset


def _anchor_warnings(checkpoint: Any, bundle: TrustBundle, station: str) -> tuple[str, ...]:
    """The manifest's audit checkpoint (its anchor into the chain) checked as an export's checkpoint is: a
    warning, not a verdict on the manifest (a key revoked for compromise since keeps timestamped manifests
    valid, while its untimestamped checkpoints are refused)."""
    from certs.audit_chain import verify_checkpoint  # the audit chain imports this module lazily too

    problem = verify_checkpoint(checkpoint, bundle, station)
    return (f"the manifest's audit checkpoint is not accepted as an anchor: {problem}",) if problem else ()


def _verify_fleet_manifest(path: Path, document: dict[str, Any], digest: str, signed_bytes: bytes,
                           common: dict[str, Any]) -> VerificationReport:
    """A fleet manifest: signed by the fleet it names (never a station or a person), well formed (no asset,
    certificate or file listed twice), and the page shows every field and every row as signed."""
    from certs.fleet_manifest import check_shape

    signer: x509.Certificate = common["signer"]
    if common["role"] != "fleet":
        raise _Invalid("signer_profile", f"{signer.subject.rfc4514_string()} is a {common['role']} certificate: only "
                                         "the fleet's certificate (pki issue-fleet) signs a fleet manifest")
    try:
        check_shape(document)
    except RecordError as error:
        raise _Invalid("bad_record", f"the embedded fleet manifest is invalid: {error}") from None
    fleet = _common_name(signer)
    if document["fleet"] != fleet:
        raise _Invalid("station_mismatch", f"the fleet manifest names fleet {document['fleet']!r} but fleet "
                                           f"{fleet!r} signed it")
    _check_visible_fleet_manifest(signed_bytes, document)
    signed_at: datetime | None = common["signed_at"]
    demo = bool(document.get("demo"))
    when = f"{signed_at:%Y-%m-%d %H:%M} UTC" if signed_at else str(document.get("created_at"))
    summary = (f"{'DEMONSTRATION: ' if demo else ''}fleet manifest {document['document_id']}: {document['summary']}; "
               f"signed by fleet {fleet}, {when}")
    return VerificationReport(
        path=path, valid=True, code="valid",
        reason="signature valid, bytes exactly as signed, the fleet of the trusted CA, content and page text match",
        certificate_id=str(document["document_id"]), record_sha256=digest,
        signer_subject=signer.subject.rfc4514_string(), signed_at=signed_at, timestamped=common["timestamped"],
        timestamp_source=common["source"], validation_time=common["moment"], kind=DocumentKind.FLEET_MANIFEST,
        demo=demo, summary=summary, status=common["status"], warnings=common["warnings"], document=document,
    )


def _check_visible_fleet_manifest(signed_bytes: bytes, document: dict[str, Any]) -> None:
    """Every labelled field in order, the subtitle, the footer, every row exactly once as its cells print it
    (the table is drawn row by row, cell by cell: a row reads back as its cells back to back), and nothing
    else: with each page's footer and the repeated table heading taken out, the pages read exactly as the
    signed document renders (a row, a claim or a note added anywhere is named)."""
    from certs.fleet_manifest import COLUMNS, DEMO_BANNER, DEMO_WATERMARK, NOTE, TITLE, fields, footer, rows

    try:
        pages = _page_texts(signed_bytes, None)
    except Exception as error:
        raise _Invalid("visible_text_mismatch", f"the page text cannot be extracted: {_short(error)}") from None
    text = "".join(pages)
    shown = fields(document)
    for (label, value), (next_label, _next) in zip(shown, [*shown[1:], (COLUMNS[0][1], "")], strict=True):
        _require_sequence(text, label.lower(), label, value, next_label)
    _require_sequence(text, "summary (subtitle)", TITLE, str(document["summary"]), shown[0][0])
    _require_present(text, "footer", footer(document))
    keys = [key for key, _heading in COLUMNS]
    printed = rows(document, full_hashes=False)
    for row in printed:
        _require_sequence(text, f"row {row['no']} ({row['asset']})", *[row[key] for key in keys])
    demo = bool(document.get("demo"))
    heading = _squash("".join(heading for _key, heading in COLUMNS))
    body = []
    for number, page in enumerate(pages, start=1):
        stamp = _squash(footer(document)) + f"page{number}" + (DEMO_WATERMARK if demo else "")
        if page.count(stamp) != 1:
            raise _Invalid("visible_text_mismatch", f"page {number} does not show the signed footer once")
        body.append(page.replace(stamp, "", 1).replace(heading, ""))
    expected = "".join(_squash(piece) for piece in (
        *([DEMO_BANNER] if demo else []), TITLE, str(document["summary"]),
        *(part for pair in shown for part in pair), *(row[key] for row in printed for key in keys), NOTE))
    actual = "".join(body)
    if actual != expected:
        at = next((index for index, (a, b) in enumerate(zip(actual, expected, strict=False)) if a != b),
                  min(len(actual), len(expected)))
        raise _Invalid("visible_text_mismatch", f"the pages show text the signed fleet manifest does not: "
                                                f"{actual[max(0, at - 20):at + 40]!r}")


def _verify_statement(path: Path, payload: bytes, digest: str, signed_bytes: bytes,
                      common: dict[str, Any]) -> VerificationReport:
    """A validation statement: strict record, signer kind matching the certificate, page text matching."""
    try:
        statement = ValidationStatement.from_json(payload)
    except RecordError as error:
        raise _Invalid("bad_record", f"the embedded validation statement is invalid: {error.message}") from None
    signer: x509.Certificate = common["signer"]
    if common["role"] == "fleet":
        _require_station(common, "validation statement")  # refuses it: the fleet signs fleet manifests only
    _check_statement_signer(statement, common["role"], _common_name(signer))
    _check_visible_statement(signed_bytes, statement)
    signed_at: datetime | None = common["signed_at"]
    when = f"{signed_at:%Y-%m-%d %H:%M} UTC" if signed_at else statement.created_at
    summary = (f"{'DEMONSTRATION: ' if statement.demo else ''}validation statement {statement.document_id}: "
               f"{summary_of(statement.decision, len(statement.certificates), statement.by, statement.role)}; "
               f"signed by {statement.signer_kind}, station {statement.station_id}, {when}")
    return VerificationReport(
        path=path, valid=True, code="valid",
        reason=f"signature valid, bytes exactly as signed, {common['role']} of the trusted CA signing as "
               f"{statement.signer_kind}, statement and page text match",
        certificate_id=statement.document_id, record_sha256=digest, signer_subject=signer.subject.rfc4514_string(),
        signed_at=signed_at, timestamped=common["timestamped"], timestamp_source=common["source"],
        validation_time=common["moment"], kind=DocumentKind.VALIDATION, demo=statement.demo, summary=summary,
        status=common["status"], warnings=common["warnings"], document=statement.to_dict(),
    )


def _check_statement_signer(statement: ValidationStatement, role: str, signer_name: str) -> None:
    """The statement's claimed signer kind is the certificate that signed it, and names it."""
    assert statement.signer_kind in SIGNER_KINDS
    if statement.signer_kind == "officer":
        if role != "validator":
            raise _Invalid("signer_kind_mismatch", f"the statement says an officer signed it, but the station "
                                                   f"certificate {signer_name!r} did")
        if signer_name != statement.by:
            raise _Invalid("signer_kind_mismatch", f"the statement names {statement.by!r} as the officer, but "
                                                   f"{signer_name!r}'s validator certificate signed it")
        if person_key(statement.by) == person_key(statement.station_id):
            # a validator certificate issued under a station's name would read "validated by station-01"
            raise _Invalid("signer_kind_mismatch", f"the officer's name {statement.by!r} is the station's: a "
                                                   "station is not a person and cannot validate its own work")
        return
    if role != "station":
        raise _Invalid("signer_kind_mismatch", f"the statement says the station signed it on instruction, but the "
                                               f"{role} certificate {signer_name!r} did")
    if signer_name != statement.station_id:
        raise _Invalid("station_mismatch", f"the statement names station {statement.station_id!r} but "
                                           f"{signer_name!r} signed it")


def _check_visible_statement(signed_bytes: bytes, statement: ValidationStatement) -> None:
    """Every field (label then value) and every certificate id with its record hash is on the page."""
    from certs.validation_render import FIELD_LABELS, statement_fields

    try:
        text = "".join(_page_texts(signed_bytes, None))
    except Exception as error:
        raise _Invalid("visible_text_mismatch", f"the page text cannot be extracted: {_short(error)}") from None
    fields = statement_fields(statement)
    for index, (label, value) in enumerate(fields):
        following = FIELD_LABELS[index + 1] if index + 1 < len(fields) else "Certificates"
        _require_sequence(text, label.lower(), label, value, following)
    for item in statement.certificates:
        _require_present(text, "certificate id", item.certificate_id)
        _require_present(text, "record hash", item.record_sha256)


def _check_identity(reader: Any, record: SanitisationRecord, record_sha256: str) -> None:
    try:
        stated = reader.root[CATALOG_KEY]
        stated_id = str(stated["/CertificateId"])
        stated_hash = str(stated["/RecordSHA256"])
        stated_qr = str(stated["/QR"])
        stated_kind = str(stated["/Kind"])
    except (KeyError, TypeError):
        raise _Invalid("hash_mismatch", "the PDF does not state the certificate id and record hash") from None
    if DOCUMENT_KEY in reader.root:
        raise _Invalid("bad_record", "the PDF states both a certificate and a document identity")
    if stated_hash != record_sha256:
        raise _Invalid(
            "hash_mismatch",
            f"the embedded record hashes to {record_sha256}, the certificate states {stated_hash}",
        )
    if stated_id != record.certificate_id or stated_qr != qr_payload(record.certificate_id, record_sha256):
        raise _Invalid("hash_mismatch", "the certificate id or QR payload does not match the embedded record")
    expected_kind = "/Certificate" if record.outcome == "sanitised" else "/FailureReport"
    if stated_kind != expected_kind:
        raise _Invalid("hash_mismatch", f"the PDF states kind {stated_kind}, the record is a {expected_kind[1:]}")


# --- what a person reads ------------------------------------------------------------------------

_WHITESPACE = re.compile(r"\s+")


def _squash(text: str) -> str:
    """Text without any whitespace: the renderer wraps long values anywhere (even inside a word), so
    whitespace carries no meaning a check could rely on; every other character must match."""
    return _WHITESPACE.sub("", text)


def _pages(signed_bytes: bytes) -> Any:
    import logging

    from pypdf import PdfReader

    # pypdf logs repair notes for odd input; the verdict already says what matters, in one line.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    return PdfReader(io.BytesIO(signed_bytes), strict=False).pages


def _page_texts(signed_bytes: bytes, pages: int | None) -> list[str]:
    selected = _pages(signed_bytes) if pages is None else _pages(signed_bytes)[:pages]
    return [_squash(page.extract_text() or "") for page in selected]


_RECTANGLE = re.compile(rb"(-?\d+(?:\.\d+)?) (-?\d+(?:\.\d+)?) (-?\d+(?:\.\d+)?) (-?\d+(?:\.\d+)?) re\b")
_QR_BORDER = 2
"""Quiet-zone modules :mod:`certs.render` draws around the code (light, so never drawn)."""


def _drawn_qr(content: bytes) -> set[tuple[int, int]]:
    """The dark modules of the QR code drawn on a page, as (row, column) with the border counted.

    :mod:`certs.render` draws the code as equal squares, one ``re`` per dark module and nothing
    else on the page has that size; any extra square of that size makes the set differ (fails safe).
    """
    squares = [tuple(float(value) for value in match.groups()) for match in _RECTANGLE.finditer(content)]
    sizes: dict[float, int] = {}
    for _x, _y, width, height in squares:
        if width > 0 and abs(width - height) < 1e-6:
            sizes[round(width, 4)] = sizes.get(round(width, 4), 0) + 1
    if not sizes:
        return set()
    module = max(sizes, key=lambda size: sizes[size])
    cells = [(x, y) for x, y, width, height in squares if abs(width - module) < 1e-4 and abs(height - module) < 1e-4]
    left = min(x for x, _y in cells)
    top = max(y for _x, y in cells)
    # The top-left finder pattern's corner is always dark: the first drawn row and column.
    return {(round((top - y) / module) + _QR_BORDER, round((x - left) / module) + _QR_BORDER) for x, y in cells}


def _check_qr(content: bytes, payload: str) -> None:
    """The QR code a phone would scan encodes exactly ``payload`` (no image decoding needed: the
    modules of the expected code, with the mask read from the drawn format bits, must be the drawn ones)."""
    import qrcode
    from qrcode.util import BCH_type_info

    drawn = _drawn_qr(content)
    problem = "the page shows no QR code"
    if drawn:
        size = max(column for _row, column in drawn) + 1 - _QR_BORDER  # the top-right finder's last column
        # Format bits, column 8 (ISO/IEC 18004 7.9): rows 0-5, 7, 8, then the bottom 7 rows.
        rows = [*range(6), 7, 8, *range(size - 7, size)]
        bits = sum(1 << index for index, row in enumerate(rows) if (row + _QR_BORDER, 8 + _QR_BORDER) in drawn)
        level = qrcode.constants.ERROR_CORRECT_M
        masks = [mask for mask in range(8) if BCH_type_info((level << 3) | mask) == bits]
        problem = "the QR code's format bits are not those of a wipe-agent code"
        if len(masks) == 1:
            code = qrcode.QRCode(error_correction=level, border=_QR_BORDER, mask_pattern=masks[0])
            code.add_data(payload)
            code.make(fit=True)
            expected = {(row, column) for row, line in enumerate(code.get_matrix())
                        for column, dark in enumerate(line) if dark}
            if expected == drawn:
                return
            problem = "the QR code does not encode the signed certificate id and record hash"
    raise _Invalid("visible_text_mismatch", f"{problem} ({payload})")


def _require_sequence(text: str, field_name: str, *pieces: str) -> None:
    """``pieces`` (label, value, next label, ...) must appear once, back to back, in the page text."""
    expected = "".join(_squash(piece) for piece in pieces)
    count = text.count(expected)
    if count != 1:
        shown = " ".join(piece for piece in pieces[1:-1] if piece) or pieces[0]
        problem = "does not show" if count == 0 else f"shows {count} times"
        raise _Invalid("visible_text_mismatch",
                       f"the page text {problem} the signed {field_name} ({shown!r} after {pieces[0]!r})")


_UNIQUE_LABELS = ("Certificate id", "Issued", "Make / vendor", "Model", "Serial number", "Media type / interface",
                  "Asset tag (property no.)", "Host device (source)", "Level", "Method", "Completed", "Destination",
                  "Record SHA-256", "Performed by (operator)", "SANITISED", "Firmware", "Capacity", "Classification",
                  "SMART health (before the wipe)")
"""Labels page 1 prints once (see :mod:`certs.render`)."""


def page_text_problem(pdf: bytes, record: SanitisationRecord) -> str | None:
    """Why page 1 of ``pdf`` (rendered from ``record``) does not read as the record says, else None:
    the check :func:`read_back` makes of an issued certificate, for a pre-flight before a drive is wiped."""
    try:
        _check_visible_record(pdf, record, record.sha256())
    except _Invalid as invalid:
        return invalid.reason
    return None


def _check_visible_record(signed_bytes: bytes, record: SanitisationRecord, record_sha256: str) -> None:
    """Page 1 states what the embedded record says, field by field, each anchored between its label
    and the next label, so a second, forged value printed elsewhere cannot hide the true one."""
    from certs import render

    try:
        first_page = _pages(signed_bytes)[0]
        text = _squash(first_page.extract_text() or "")
        content = first_page.get_contents().get_data()
    except Exception as error:
        raise _Invalid("visible_text_mismatch", f"the page text cannot be extracted: {_short(error)}") from None
    media = record.media
    operator = record.operator
    certificate = record.outcome == "sanitised"
    kind = "Certificate" if certificate else "Failure report"
    _require_sequence(text, "certificate id (footer)", f"{kind} {record.certificate_id} · station {record.station_id}",
                      "page 1")
    if record.demo:
        _require_present(text, "demonstration watermark", render.DEMO_WATERMARK)
    if certificate:
        _require_sequence(text, "outcome", "Certificate of Sanitisation", "NIST SP 800-88")
        _require_sequence(text, "outcome and level", "Job", record.job_id, f"SANITISED \u2014 {record.level}", "Device")
    else:
        _require_sequence(text, "outcome", "Failure Report \u2014 media NOT sanitised", "NIST SP 800-88")
        _require_sequence(text, "outcome and route", "Job", record.job_id,
                          f"NOT SANITISED \u2014 route: {record.route.upper()}", "Reason",
                          record.failure_reason or "", "Required action")
    _require_sequence(text, "certificate id", "Certificate id", record.certificate_id, "Issued")
    _require_sequence(text, "issue date", "Issued", render._when(record.issued_at), "Station")
    _require_sequence(text, "station", "Station", record.station_id, "Job")
    _require_sequence(text, "make", "Make / vendor", render.vendor_text(record), "Model")
    _require_sequence(text, "drive model", "Model", media.model, "Serial number")
    if record.schema >= 2:
        # schema 2 prints the firmware, the whole host (make, model, serial, asset) and the SMART summary
        _require_sequence(text, "drive serial and firmware", "Serial number", media.serial, "Firmware",
                          render.firmware_text(record), "Media type / interface")
        _require_sequence(text, "drive health", "SMART health (before the wipe)", render.health_text(record),
                          "Sanitisation")
    else:
        _require_sequence(text, "drive serial", "Serial number", media.serial, "Media type / interface")
    _require_sequence(text, "capacity", "Capacity", size_with_bytes(media.capacity_bytes),
                      "Asset tag (property no.)")
    _require_sequence(text, "asset tag", "Asset tag (property no.)", render._or_dash(media.asset_tag),
                      "Host device (source)")
    _require_sequence(text, "host", "Host device (source)", render.host_text(record), "Classification")
    _require_sequence(text, "classification", "Classification",
                      f"before: {record.classification_before}; after: {record.classification_after}",
                      "Data backed up", record.data_backed_up)
    _require_sequence(text, "level", "Sanitisation", "Level", render._or_dash(record.level), "Method")
    _require_sequence(text, "method", "Method", render._applied_methods(record), "Tool")
    _require_sequence(text, "completion date", "Completed", render._when(record.evidence.timings.finished_at),
                      "Destination")
    _require_sequence(text, "destination", "Destination", f"{record.destination} (route: {record.route})",
                      "Record SHA-256")
    _require_sequence(text, "operator", "Performed by (operator)", "Name", operator.name, "Title",
                      render._or_dash(operator.title), "Organisation", render._or_dash(operator.organisation),
                      "Location", render._or_dash(operator.location), "Phone", render._or_dash(operator.phone))
    _require_sequence(text, "tool", "Tool", f"{record.tool.name} {record.tool.version}", "Profile")
    _require_sequence(text, "profile", "Profile", record.profile, "Verification")
    _require_sequence(text, "verification", "Verification", render._verification_line(record), "Completed")
    if record.schema >= 2:
        # the first release (record schema 1) printed another Validation block and page 2: not checked there
        if record.validator is not None:
            validator = record.validator
            _require_sequence(text, "validator", "Validation", "Name", validator.name, "Title",
                              render._or_dash(validator.title), "Organisation",
                              render._or_dash(validator.organisation), "Location", render._or_dash(validator.location),
                              "Phone", render._or_dash(validator.phone), "Signature")
        else:
            _require_sequence(text, "validation (pending)", "Validation", render.VALIDATION_PENDING, "This document")
        _check_evidence_pages(signed_bytes, record)
    # Last: a page rendered from another record shows another hash too, but naming the field a
    # person would be misled by is more useful than naming the hash.
    _require_sequence(text, "record hash", "Record SHA-256", record_sha256, "Performed by (operator)")
    # Each label exactly as often as the layout prints it (once) plus wherever a printed value
    # happens to contain it: a second "Serial number ..." drawn elsewhere on the page would let a
    # forged value stand beside the true one.
    printed = [record.certificate_id, record.station_id, record.job_id, media.vendor, media.model, media.serial,
               media.asset_tag or "", media.host_device or "", record.destination, record.failure_reason or "",
               operator.name, operator.title, operator.organisation, operator.location, operator.phone,
               render._applied_methods(record), record.profile, record.tool.name, record.tool.version,
               record.classification_before, record.classification_after, record.backup_location or "",
               render.vendor_text(record), render.firmware_text(record), render.host_text(record),
               render.health_text(record)]
    if record.validator is not None:
        validator = record.validator
        printed += [validator.name, validator.title, validator.organisation, validator.location, validator.phone]
    for label in _UNIQUE_LABELS:
        squashed = _squash(label)
        allowed = 1 + sum(_squash(value).count(squashed) for value in printed)
        if text.count(squashed) > allowed:
            raise _Invalid("visible_text_mismatch",
                           f"the page text shows the label {label!r} {text.count(squashed)} times: "
                           "a second value could stand beside the signed one")
    _check_qr(content, qr_payload(record.certificate_id, record_sha256))


def _check_evidence_pages(signed_bytes: bytes, record: SanitisationRecord) -> None:
    """Page 2 on: the verification, hidden-area and canary sections, each value between its label and
    the next (:func:`certs.render.evidence_sections`, what the renderer prints)."""
    from certs import render

    try:
        text = "".join(_page_texts(signed_bytes, None)[1:])
    except Exception as error:
        raise _Invalid("visible_text_mismatch", f"the page text cannot be extracted: {_short(error)}") from None
    sections = render.evidence_sections(record)
    headings = [heading for heading, _rows in sections[1:]] + ["Timings"]
    for (heading, rows), following in zip(sections, headings, strict=True):
        labels = [label for label, _value in rows[1:]] + [following]
        for (label, value), next_label in zip(rows, labels, strict=True):
            where = f"{heading.split(' (')[0].lower()} {label.lower()} (page 2)"
            if label == rows[0][0]:
                _require_sequence(text, where, heading, label, value, next_label)
            else:
                _require_sequence(text, where, label, value, next_label)


def _check_visible_document(signed_bytes: bytes, kind: DocumentKind, document: dict[str, Any]) -> None:
    """A manifest or destruction report shows its id and every serial / certificate id it lists."""
    try:
        text = "".join(_page_texts(signed_bytes, None))
    except Exception as error:
        raise _Invalid("visible_text_mismatch", f"the page text cannot be extracted: {_short(error)}") from None
    if kind is DocumentKind.MANIFEST:
        _check_visible_manifest(signed_bytes, text, document)
    else:
        _require_sequence(text, "report id", "Report", str(document.get("document_id")), "Host device")
        _require_sequence(text, "method", "Method", str(document.get("method")), "Witness",
                          str(document.get("witness")), "Operator", str(document.get("operator")),
                          "External reference")
        _require_sequence(text, "station", "Station", str(document.get("station_id")), "Recorded")
        _require_present(text, "host asset tag", f"Host device{document.get('asset')}")
        for drive in document.get("drives", []):
            _require_present(text, "drive serial", f"{drive.get('model')}{drive.get('serial')}")


def _check_visible_manifest(signed_bytes: bytes, text: str, document: dict[str, Any]) -> None:
    """The page rules of the manifest's own signed ``schema``: a manifest keeps verifying under the
    layout it was printed with (:data:`certs.manifest.SCHEMA`)."""
    from certs.manifest import SCHEMAS

    schema = document.get("schema")
    if type(schema) is not int or schema not in SCHEMAS:
        raise _Invalid("bad_record", f"unknown manifest schema {schema!r} (this verifier knows {list(SCHEMAS)})")
    if schema == 1:
        try:
            _check_manifest_page_v1(text, document)
        except _Invalid:
            # main printed schema 1 in the numbered layout for a while before schema 2 named it: those
            # pass the stricter rules (never the reverse)
            _check_manifest_page(signed_bytes, text, document)
        return
    _check_manifest_page(signed_bytes, text, document)


def _check_manifest_page_v1(text: str, document: dict[str, Any]) -> None:
    """Schema 1 (the first release's layout: "S/N" before each serial, full record hashes, no row
    numbers): what that release checked, kept so manifests already handed over still verify."""
    _require_sequence(text, "manifest id", "Manifest", str(document.get("document_id")), "Scheme")
    _require_sequence(text, "station", "Station", str(document.get("station_id")), "Created")
    for device in document.get("devices", []):
        _require_present(text, "device asset tag", str(device.get("asset")))
        for drive in device.get("drives", []):
            _require_present(text, "drive serial", f"S/N {drive.get('serial')} ")
            _require_present(text, "certificate id", str(drive.get("certificate_id")))
            _require_present(text, "record hash", str(drive.get("record_sha256")))


_ROW_SLACK = 0.75
"""Points of rounding allowed when placing a piece of page text in a table column or row."""


def _placed_text(page: Any) -> list[tuple[float, float, str]]:
    """Every piece of text drawn on ``page`` with where it starts, (x, y) in page space."""
    pieces: list[tuple[float, float, str]] = []

    def visit(text: str, cm: Sequence[float], tm: Sequence[float], _font: Any, _size: Any) -> None:
        if text.strip():
            x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
            pieces.append((x, y, text))

    page.extract_text(visitor_text=visit)
    return pieces


def _check_manifest_page(signed_bytes: bytes, text: str, document: dict[str, Any]) -> None:
    """Schema 2: every labelled field above the table, the footer, and every cell of every row.

    Each piece of text is placed in its column by its x position (the columns' widths are fixed,
    :data:`certs.manifest.PDF_COLUMN_WIDTHS_MM`) and in the row whose number it stands beside or
    below, up to the next row (or the page's footer or the handover block). A cell must read exactly
    its signed value: a stronger claim printed in a cell, or beside one, is named with its column.
    """
    from certs.manifest import (
        MANIFEST_COLUMNS,
        PDF_COLUMN_WIDTHS_MM,
        manifest_fields,
        manifest_footer,
        pdf_rows,
        printed_lines,
    )

    headings = dict(MANIFEST_COLUMNS)
    keys = list(PDF_COLUMN_WIDTHS_MM)
    offsets = [sum(PDF_COLUMN_WIDTHS_MM[key] for key in keys[:index]) * 72 / 25.4 for index in range(len(keys))]
    expected = pdf_rows(document)
    seen: list[int] = []
    try:
        pages = [_placed_text(page) for page in _pages(signed_bytes)]
    except Exception as error:
        raise _Invalid("visible_text_mismatch", f"the page text cannot be extracted: {_short(error)}") from None
    for number, pieces in enumerate(pages, start=1):
        tops = [(x, y) for x, y, piece in pieces if piece.strip() == headings["no"]
                and any(abs(y2 - y) < _ROW_SLACK and abs(x2 - x - offsets[1]) < _ROW_SLACK
                        and other.strip() == headings["asset"] for x2, y2, other in pieces)]
        if not tops:
            continue  # a page without the table (the handover block alone)
        if len(tops) != 1:
            raise _Invalid("visible_text_mismatch",
                           f"page {number} shows the manifest table's heading {len(tops)} times")
        left, heading_y = tops[0]

        def column(x: float, left: float = left) -> int:
            for index in range(len(offsets) - 1, -1, -1):
                if x >= left + offsets[index] - _ROW_SLACK:
                    return index
            return -1

        below = [(x, y, piece) for x, y, piece in pieces if y < heading_y - _ROW_SLACK and column(x) >= 0]
        starts = sorted(((y, piece.strip()) for x, y, piece in below
                         if column(x) == 0 and abs(x - left) < _ROW_SLACK and piece.strip().isdigit()), reverse=True)
        if not starts:
            continue
        bottom = max((y for x, y, piece in pieces if piece.strip().startswith(("page ", "Handover"))
                      and y < starts[-1][0]), default=float("-inf"))
        for index, (top, label) in enumerate(starts):
            floor = starts[index + 1][0] if index + 1 < len(starts) else bottom
            row = int(label)
            if not 1 <= row <= len(expected) or (seen and row != seen[-1] + 1) or (not seen and row != 1):
                raise _Invalid("visible_text_mismatch", f"page {number} shows row {row} out of order "
                                                        f"(after row {seen[-1] if seen else 'none'})")
            seen.append(row)
            cells: list[list[tuple[float, float, str]]] = [[] for _key in keys]
            for x, y, piece in below:
                if floor + _ROW_SLACK < y <= top + _ROW_SLACK:
                    cells[column(x)].append((x, y, piece))
            for key, placed in zip(keys, cells, strict=True):
                shown = "".join(piece for _x, _y, piece in sorted(placed, key=lambda item: (-item[1], item[0])))
                wanted = expected[row - 1][key]
                if _squash(shown) != "".join(_squash(line) for line in printed_lines(wanted)):
                    raise _Invalid("visible_text_mismatch",
                                   f"row {row} ({document['devices'][row - 1].get('asset')!r}): the page's "
                                   f"{headings[key]} cell does not show the signed {wanted!r}")
    if seen != list(range(1, len(expected) + 1)):
        raise _Invalid("visible_text_mismatch", f"the pages show {len(seen)} of the {len(expected)} signed rows")
    # after the rows, so a forged row is named by its cell rather than by the counts it changes
    fields = manifest_fields(document)
    for (label, value), (next_label, _next) in zip(fields, [*fields[1:], (MANIFEST_COLUMNS[0][1], "")], strict=True):
        _require_sequence(text, label.lower(), label, value, next_label)
    _require_sequence(text, "summary (subtitle)", "Batch manifest for a reuse partner", str(document.get("summary")),
                      fields[0][0])
    _require_present(text, "footer", manifest_footer(document))


def _require_present(text: str, field_name: str, value: str) -> None:
    if _squash(value) not in text:
        raise _Invalid("visible_text_mismatch", f"the page text does not show the signed {field_name} {value!r}")


# --- helpers ------------------------------------------------------------------------------------


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
        reader = PdfFileReader(io.BytesIO(read_regular_file(path, MAX_DOCUMENT_BYTES)), strict=False)
        data = _embedded_record(reader)
        return SanitisationRecord.from_json(data)
    except _Invalid as invalid:
        raise RecordError(f"{path}: {invalid.reason}") from None
    except RecordError:
        raise
    except Exception as error:  # unreadable or damaged file
        raise RecordError(f"{path}: cannot read the embedded record ({_short(error)})") from None


def read_embedded_statement(path: Path) -> ValidationStatement:
    """The validation statement embedded in a statement PDF, read *without* checking the signature.

    Like :func:`read_embedded_record`, for the station's own comparison of the statement's bytes with
    its registry (the station recorded the statement's SHA-256 when it signed it); partners, and the
    station whenever it has a trust bundle, use :func:`verify_with_bundle`. Raises
    :class:`~certs.errors.RecordError` when the file holds no readable statement.
    """
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        reader = PdfFileReader(io.BytesIO(read_regular_file(path, MAX_DOCUMENT_BYTES)), strict=False)
        if kind_of(str(reader.root[DOCUMENT_KEY]["/Kind"])) != "validation":
            raise RecordError(f"{path}: not a validation statement")
        return ValidationStatement.from_json(_embedded_record(reader, DOCUMENT_KINDS["validation"]))
    except _Invalid as invalid:
        raise RecordError(f"{path}: {invalid.reason}") from None
    except RecordError:
        raise
    except Exception as error:  # unreadable or damaged file, no document catalog entry
        raise RecordError(f"{path}: cannot read the embedded statement ({_short(error)})") from None
