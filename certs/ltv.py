"""Long-term validation on the signing side: PAdES B-T, B-LT and B-LTA, and extending old files.

Every station document is signed in up to three incremental revisions after the rendered one:

1. the *signed revision*: the embedded record, the catalog entry and the station's certification
   signature, with an RFC 3161 **signature timestamp** from the organisation's TSA (PAdES B-T). If
   the TSA cannot be reached the document is signed anyway, without it (B-B), and says so in the
   returned :class:`SignedDocument`;
2. a **DSS** revision (B-LT): the certificates (station, CA, and every TSA certificate found in the
   tokens) and the CRL the station holds (``pki/crl.pem``: "the CRL current at signing time"), so
   a verifier years later needs nothing but the file and the partner's bundle;
3. a **document timestamp** revision (B-LTA), from the same TSA.

Nothing else is ever written after the signed revision: :func:`later_revision_objects` reads the
bytes back so the tests (and :func:`extend_pdf` before it replaces a file) can check that.

:func:`extend_pdf` is what ``wipe-agent certificates extend`` runs on issued files: it adds the
DSS and document timestamp a B-B/B-T file lacks (while the station certificate is valid), and an
*archive timestamp* (a DSS revision with the current CRL, then a new document timestamp) when the
newest document timestamp's TSA certificate expires within the renewal window.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from certs.errors import SigningError

DEFAULT_TSA_TIMEOUT_SECONDS = 10.0
"""How long a station waits for the TSA before signing without a timestamp."""
DEFAULT_RENEW_DAYS = 730
"""``extend`` adds an archive timestamp when the newest one's TSA certificate expires within this."""
TIMESTAMP_FIELD_PREFIX = "WipeAgentDocumentTimestamp"


class LtvLevel(Enum):
    """How far a document's long-term validation goes (PAdES baseline levels)."""

    B_B = "B-B"
    """Signed, no trusted time: valid only while the station certificate is."""
    B_T = "B-T"
    """Signature timestamp: the signing time is proven."""
    B_LT = "B-LT"
    """Plus the DSS: chain and revocation data embedded."""
    B_LTA = "B-LTA"
    """Plus a document timestamp over all of it: renewable for as long as the archive lasts."""


@dataclass(frozen=True)
class SignedDocument:
    """A signed PDF and what its signing achieved, for the caller to record."""

    data: bytes
    level: LtvLevel
    timestamped: bool
    """True when the signature carries an RFC 3161 signature timestamp."""
    problems: tuple[str, ...] = ()
    """Why the level is short of B-LTA (TSA unreachable), or what the station should fix (no CRL,
    a CRL past its next update), one line each."""

    @property
    def needs_extension(self) -> bool:
        """True when ``wipe-agent certificates extend`` should later bring it to B-LTA."""
        return self.level is not LtvLevel.B_LTA


@dataclass(frozen=True)
class ValidationMaterial:
    """What goes into a DSS: certificates and CRLs (cryptography objects)."""

    certificates: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = field(default=())


@functools.lru_cache(maxsize=8)
def http_timestamper(url: str, timeout: float = DEFAULT_TSA_TIMEOUT_SECONDS) -> Any:
    """A pyHanko ``HTTPTimeStamper`` for the organisation's TSA at ``url``.

    One per URL per process: pyHanko sizes the signature with a "dummy" token that each new
    timestamper fetches once, which would double the tokens (and log lines) per document. It opens
    a fresh HTTP session per request, so sharing it across threads is safe.
    """
    from pyhanko.sign.timestamps import HTTPTimeStamper

    return HTTPTimeStamper(url, timeout=timeout)


def _asn1_certificate(certificate: x509.Certificate) -> Any:
    from asn1crypto import x509 as asn1_x509

    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def _asn1_crl(crl: x509.CertificateRevocationList) -> Any:
    from asn1crypto import crl as asn1_crl

    return asn1_crl.CertificateList.load(crl.public_bytes(serialization.Encoding.DER))


def token_certificates(signed_data: Any) -> list[x509.Certificate]:
    """The certificates a CMS SignedData (a signature or timestamp token) carries."""
    found = []
    for choice in signed_data["certificates"] or []:
        if choice.name == "certificate":
            found.append(x509.load_der_x509_certificate(choice.chosen.dump()))
    return found


def _embedded_timestamp_certificates(pdf: bytes) -> list[x509.Certificate]:
    """TSA certificates from every signature timestamp and document timestamp in ``pdf``."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf), strict=True)
    found: list[x509.Certificate] = []
    for signature in reader.embedded_signatures:
        if signature.sig_object_type == "/DocTimeStamp":
            found += token_certificates(signature.signed_data)
            continue
        for info in signature.signed_data["signer_infos"]:
            for attribute in info["unsigned_attrs"] or []:
                if attribute["type"].native == "signature_time_stamp_token":
                    for token in attribute["values"]:
                        found += token_certificates(token["content"])
    return found


def _ltv_writer(pdf: bytes) -> Any:
    """An incremental writer that writes only what the caller adds.

    pyHanko's writer refreshes the document information dictionary and the XMP metadata stream
    (ModDate) in every revision it writes; after the signed revision that would be a change other
    than DSS and document timestamp, which our verifier rightly refuses. So that refresh is off.
    """
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    class _LtvOnlyWriter(IncrementalPdfFileWriter):
        def _update_meta(self) -> None:
            return None

    return _LtvOnlyWriter(io.BytesIO(pdf), strict=True)


def _token_signer(signed_data: Any) -> x509.Certificate | None:
    """The certificate that signed a timestamp token, matched by issuer and serial (RFC 5652 sid)."""
    sid = signed_data["signer_infos"][0]["sid"]
    if sid.name != "issuer_and_serial_number":
        return None
    wanted = (sid.chosen["issuer"].dump(), sid.chosen["serial_number"].native)
    for certificate in token_certificates(signed_data):
        if (certificate.issuer.public_bytes(), certificate.serial_number) == wanted:
            return certificate
    return None


def _foreign_timestamps(pdf: bytes, certificates: tuple[x509.Certificate, ...]) -> str | None:
    """Why a timestamp in ``pdf`` is not from a TSA of the station's CA (None when all are).

    Checked from the bytes by our code: the token's signer certificate must be in the token, be
    issued (signature checked) by a CA certificate of the station's chain, and carry the
    timeStamping EKU only.
    """
    from certs.pki import is_tsa_certificate

    authorities = [item for item in certificates if _is_ca_certificate(item)]
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf), strict=True)
    tokens = []
    for signature in reader.embedded_signatures:
        if signature.sig_object_type == "/DocTimeStamp":
            tokens.append(signature.signed_data)
            continue
        for info in signature.signed_data["signer_infos"]:
            for attribute in info["unsigned_attrs"] or []:
                if attribute["type"].native == "signature_time_stamp_token":
                    tokens += [token["content"] for token in attribute["values"]]
    for token in tokens:
        signer = _token_signer(token)
        if signer is None:
            return "the timestamp token does not carry its signer's certificate"
        if not is_tsa_certificate(signer):
            return f"the timestamp's signer {signer.subject.rfc4514_string()} is not a TSA certificate"
        if not any(_issued_by(signer, authority) for authority in authorities):
            return f"the timestamp's TSA {signer.subject.rfc4514_string()} is not certified by the station's CA"
    return None


def _is_ca_certificate(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _issued_by(certificate: x509.Certificate, authority: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(authority)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def add_dss(pdf: bytes, material: ValidationMaterial) -> bytes:
    """Append one incremental revision adding (or extending) the DSS with ``material``; nothing else."""
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    unique: dict[bytes, x509.Certificate] = {}
    for certificate in material.certificates:
        unique.setdefault(certificate.fingerprint(_sha256()), certificate)
    writer = _ltv_writer(pdf)
    DocumentSecurityStore.supply_dss_in_writer(
        writer, None,
        certs=[_asn1_certificate(item) for item in unique.values()],
        crls=[_asn1_crl(item) for item in material.crls],
        embed_roots=True,
    )
    output = io.BytesIO()
    writer.write(output)
    return output.getvalue()


def _sha256() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA256()


def add_document_timestamp(pdf: bytes, timestamper: Any) -> bytes:
    """Append one incremental revision holding a document timestamp (an invisible field)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.signers.pdf_signer import PdfTimeStamper

    existing = sum(
        1 for signature in PdfFileReader(io.BytesIO(pdf), strict=True).embedded_signatures
        if signature.sig_object_type == "/DocTimeStamp"
    )
    name = f"{TIMESTAMP_FIELD_PREFIX}{existing + 1}"
    stamper = PdfTimeStamper(timestamper, field_name=name)
    writer = _ltv_writer(pdf)
    # The field is made here, merged with a zero-size widget that no page lists: pyHanko would
    # add its invisible widget to page 1's /Annots, changing the page object, and after the
    # signed revision no page may change. (Readers still find the field through the AcroForm.)
    field = generic.DictionaryObject({  # type: ignore[no-untyped-call]
        generic.NameObject("/FT"): generic.NameObject("/Sig"),
        generic.NameObject("/T"): generic.TextStringObject(name),
        generic.NameObject("/Type"): generic.NameObject("/Annot"),
        generic.NameObject("/Subtype"): generic.NameObject("/Widget"),
        generic.NameObject("/Rect"): generic.ArrayObject(
            [generic.NumberObject(0)] * 4),  # type: ignore[no-untyped-call]
        # Hidden (2) and locked (128): nothing to show or edit.
        generic.NameObject("/F"): generic.NumberObject(130),  # type: ignore[no-untyped-call]
    })
    acroform = writer.root["/AcroForm"]
    fields = acroform["/Fields"]
    fields.append(writer.add_object(field))
    writer.update_container(fields)
    # No validation context: pyHanko must not add a DSS of its own; we wrote ours just before.
    output = stamper.timestamp_pdf(writer, "sha256", validation_context=None)
    data: bytes = output.getvalue()
    return data


def validation_material(
    pdf: bytes, certificates: tuple[x509.Certificate, ...], crl: x509.CertificateRevocationList | None
) -> ValidationMaterial:
    """The DSS content for ``pdf``: ``certificates`` (station chain), every TSA certificate in its
    tokens, and the station's CRL."""
    return ValidationMaterial(
        certificates=tuple(certificates) + tuple(_embedded_timestamp_certificates(pdf)),
        crls=(crl,) if crl is not None else (),
    )


def sign_long_term(
    sign: Callable[[Any], bytes], *, certificates: tuple[x509.Certificate, ...],
    crl: x509.CertificateRevocationList | None, timestamper: Any, what: str,
) -> SignedDocument:
    """Run ``sign(timestamper)`` (the station signature), then add the DSS and the document timestamp.

    ``sign`` is called again with ``None`` when the TSA fails, so the station still issues the
    document (B-B plus DSS) and the result says why it is not timestamped.
    """
    problems: list[str] = []
    timestamped = timestamper is not None
    if timestamper is None:
        problems.append("no timestamping authority configured ([timestamping] url in station.toml)")
        signed = sign(None)
    else:
        try:
            signed = sign(timestamper)
            foreign = _foreign_timestamps(signed, certificates)
            if foreign:
                # Not the organisation's TSA (a wrong URL, or someone else's server): a partner
                # would reject the document, so sign without and say so.
                problems.append(f"{foreign}; signed without a timestamp")
                timestamped = False
                signed = sign(None)
        except SigningError as error:
            problems.append(f"timestamping authority unreachable or refused ({_cause(error)}); signed without")
            timestamped = False
            signed = sign(None)
    if crl is None:
        problems.append("the station holds no CRL (pki/crl.pem): run 'wipe-agent pki install-crl'")
    elif crl.next_update_utc is not None and crl.next_update_utc < datetime.now(UTC):
        # Still embedded (it is the newest the station has), but a verifier may want a fresher one.
        problems.append(f"the station's CRL was due for renewal on {crl.next_update_utc:%Y-%m-%d}: "
                        f"run 'wipe-agent pki install-crl --from BUNDLE'")
    try:
        signed = add_dss(signed, validation_material(signed, certificates, crl))
    except Exception as error:  # pyHanko raises assorted types
        raise SigningError(f"could not add validation data to {what}: {error}") from error
    level = LtvLevel.B_LT if timestamped else LtvLevel.B_B
    if timestamped:
        try:
            stamped = add_document_timestamp(signed, timestamper)
            foreign = _foreign_timestamps(stamped, certificates)
            if foreign:
                problems.append(f"{foreign}; document timestamp left out")
            else:
                signed, level = stamped, LtvLevel.B_LTA
        except Exception as error:  # the TSA went away between the two requests
            problems.append(f"document timestamp failed ({_short(error)}); 'certificates extend' adds it later")
    return SignedDocument(signed, level, timestamped, tuple(problems))


def _cause(error: BaseException) -> str:
    cause = error.__cause__ or error
    return _short(cause)


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]


# --- reading the revisions back -------------------------------------------------------------------


@dataclass(frozen=True)
class RevisionContent:
    """What one incremental revision wrote: each object's type (``/Type`` or a description)."""

    revision: int
    objects: tuple[str, ...]


def signed_revision(pdf: bytes) -> int:
    """The revision (0-based) that holds the station's (non-timestamp) signature."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf), strict=True)
    for signature in reader.embedded_signatures:
        if signature.sig_object_type != "/DocTimeStamp":
            return int(signature.signed_revision)
    raise SigningError("the PDF carries no station signature")


def later_revision_objects(pdf: bytes) -> list[RevisionContent]:
    """For every revision after the signed one, the kinds of objects it wrote, read from the bytes."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf), strict=True)
    first = signed_revision(pdf)
    result = []
    for revision in range(first + 1, reader.xrefs.total_revisions):
        kinds = []
        for reference in reader.xrefs.explicit_refs_in_revision(revision):
            value = reader.get_object(generic.Reference(reference.idnum, reference.generation, reader))  # type: ignore[no-untyped-call]
            kinds.append(_describe(value))
        result.append(RevisionContent(revision, tuple(sorted(kinds))))
    return result


def _describe(value: Any) -> str:
    from pyhanko.pdf_utils import generic

    if isinstance(value, generic.StreamObject):
        dictionary = value
        kind = dictionary.get("/Type")
        return f"stream {kind}" if kind is not None else "stream"
    if isinstance(value, generic.DictionaryObject):
        if "/Type" in value:
            return str(value["/Type"])
        if "/FT" in value:
            return f"field {value['/FT']}"
        if "/Certs" in value or "/CRLs" in value:
            return "/DSS"
        return "dictionary"
    if isinstance(value, generic.ArrayObject):
        return "array"
    return type(value).__name__


def timestamp_renewal_due(pdf: bytes, now: datetime, renew_days: int) -> tuple[bool, datetime | None]:
    """Whether the newest document timestamp's TSA certificate expires within ``renew_days`` of
    ``now`` (True also when there is no document timestamp); and that expiry."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf), strict=True)
    stamps = [item for item in reader.embedded_signatures if item.sig_object_type == "/DocTimeStamp"]
    if not stamps:
        return True, None
    newest = max(stamps, key=lambda item: int(item.signed_revision))
    certificate = x509.load_der_x509_certificate(newest.signer_cert.dump())
    expiry = certificate.not_valid_after_utc
    return expiry - now <= timedelta(days=renew_days), expiry


# --- extending issued documents -------------------------------------------------------------------


class ExtendOutcome(Enum):
    """What :func:`extend_pdf` did to one document."""

    EXTENDED = "extended"
    """DSS and document timestamp added: the document is now B-LTA."""
    RENEWED = "renewed"
    """An archive timestamp was added (the previous TSA certificate was ageing out)."""
    UNCHANGED = "unchanged"
    """Already B-LTA with a document timestamp that is not due for renewal."""


class ExtendRefused(SigningError):
    """The document cannot be extended (and was left untouched)."""

    code = "extend_refused"


@dataclass(frozen=True)
class ExtendResult:
    """The outcome for one document and its new bytes (None when unchanged)."""

    outcome: ExtendOutcome
    data: bytes | None
    detail: str


@dataclass(frozen=True)
class _Inspection:
    station_certificate: x509.Certificate
    signature_timestamped: bool
    document_timestamps: int


def _inspect(pdf: bytes) -> _Inspection:
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=True)
        signatures = reader.embedded_signatures
    except Exception as error:  # damaged input: one line, never a traceback
        raise ExtendRefused(f"not a readable signed PDF ({_short(error)})") from None
    stations = [item for item in signatures if item.sig_object_type != "/DocTimeStamp"]
    if len(stations) != 1:
        raise ExtendRefused(f"expected one station signature, found {len(stations)}")
    station = stations[0]
    stamped = any(
        attribute["type"].native == "signature_time_stamp_token"
        for info in station.signed_data["signer_infos"] for attribute in info["unsigned_attrs"] or []
    )
    return _Inspection(
        x509.load_der_x509_certificate(station.signer_cert.dump()), stamped,
        sum(1 for item in signatures if item.sig_object_type == "/DocTimeStamp"),
    )


def extend_pdf(
    pdf: bytes, *, timestamper: Any, chain: tuple[x509.Certificate, ...],
    crl: x509.CertificateRevocationList | None, now: datetime, renew_days: int = DEFAULT_RENEW_DAYS,
) -> ExtendResult:
    """Bring ``pdf`` to B-LTA, or renew its archive timestamp when due; never touch it otherwise.

    * No document timestamp: add a DSS (the station certificate from the signature, ``chain``,
      every TSA certificate in the file, ``crl``) and a document timestamp. Refused when the
      signature has no signature timestamp and the station certificate has expired or is revoked
      in ``crl`` at ``now``: nothing then proves it was signed while the certificate was good.
    * A document timestamp whose TSA certificate expires within ``renew_days``: an archive
      timestamp (a DSS with the TSA certificates and ``crl``, then a new document timestamp).
    * Otherwise: :attr:`ExtendOutcome.UNCHANGED` (idempotent).

    The new bytes are read back before they are returned: they must parse, keep the original
    bytes as a prefix, and add only DSS and document timestamp objects.
    """
    state = _inspect(pdf)
    station = state.station_certificate
    if state.document_timestamps == 0:
        if not state.signature_timestamped:
            if not station.not_valid_before_utc <= now <= station.not_valid_after_utc:
                raise ExtendRefused(
                    f"the station certificate expired on {station.not_valid_after_utc:%Y-%m-%d} and the signature "
                    f"carries no timestamp: nothing proves when it was signed, so it cannot be extended"
                )
            if crl is not None and crl.get_revoked_certificate_by_serial_number(station.serial_number) is not None:
                raise ExtendRefused("the station certificate is revoked: an untimestamped signature cannot be extended")
        extended = add_document_timestamp(
            add_dss(pdf, validation_material(pdf, (station, *chain), crl)), timestamper)
        outcome, detail = ExtendOutcome.EXTENDED, "DSS and document timestamp added (B-LTA)"
    else:
        due, expiry = timestamp_renewal_due(pdf, now, renew_days)
        if not due:
            return ExtendResult(ExtendOutcome.UNCHANGED, None,
                                f"B-LTA; newest timestamp's TSA certificate valid until {expiry:%Y-%m-%d}")
        # The archive timestamp: validation data for the previous timestamps first, so the new
        # timestamp covers it and it stays checkable after the old TSA certificate expires.
        extended = add_document_timestamp(
            add_dss(pdf, validation_material(pdf, tuple(chain), crl)), timestamper)
        outcome = ExtendOutcome.RENEWED
        detail = f"archive timestamp added (previous TSA certificate expires {expiry:%Y-%m-%d})"
    check_extension(pdf, extended)
    foreign = _foreign_timestamps(extended, tuple(chain))
    if foreign:
        raise ExtendRefused(f"{foreign}: check --tsa-url; not written")
    return ExtendResult(outcome, extended, detail)


_ALLOWED_LATER = {"/Catalog", "/DSS", "/DocTimeStamp", "/Annot", "/Sig", "dictionary", "stream", "array",
                  "field /Sig"}


def check_extension(original: bytes, extended: bytes) -> None:
    """Raise :class:`ExtendRefused` unless ``extended`` is ``original`` plus DSS/timestamp revisions only."""
    if not extended.startswith(original):
        raise ExtendRefused("the extended file does not keep the original bytes; not written")
    try:
        before = len(later_revision_objects(original))
        revisions = later_revision_objects(extended)
    except Exception as error:
        raise ExtendRefused(f"the extended file does not read back ({_short(error)}); not written") from None
    for revision in revisions[before:]:
        unexpected = set(revision.objects) - _ALLOWED_LATER
        if unexpected:
            raise ExtendRefused(f"the extension wrote unexpected objects {sorted(unexpected)}; not written")
