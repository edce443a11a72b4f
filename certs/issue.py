"""Issue a certificate (or failure report): render, embed the record, sign (PAdES), write atomically.

The signed revision holds, besides the rendered pages:

* the canonical record JSON as the embedded file ``sanitisation-record.json`` (software reads the
  record from there, never by scraping text);
* a small catalog dictionary ``/WipeAgentCertificate`` repeating the QR payload (certificate id
  and record SHA-256), so a verifier can compare without decoding the QR image;
* a PAdES baseline signature (ETSI.CAdES.detached) made as a *certification* signature that
  permits no changes, with the station certificate and the chain up to the organisation CA, and an
  RFC 3161 signature timestamp when a TSA URL is given.

Then (:mod:`certs.ltv`) a DSS revision with the chain and the station's CRL, and a document
timestamp revision: PAdES B-LTA. Nothing else is written after the signed revision.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from certs.errors import SigningError
from certs.ltv import DEFAULT_TSA_TIMEOUT_SECONDS, LtvLevel, SignedDocument, http_timestamper, sign_long_term
from certs.pki import Clock, StationSigner, utc_now
from certs.record import SanitisationRecord
from certs.render import qr_payload, render_pdf

ATTACHMENT_NAME = "sanitisation-record.json"
"""Name of the embedded file holding the canonical record JSON."""
CATALOG_KEY = "/WipeAgentCertificate"
"""Catalog entry repeating the QR payload for software."""
SIGNATURE_FIELD = "WipeAgentSignature"


def sign_pdf(
    pdf: bytes, record: SanitisationRecord, signer: StationSigner, *, tsa_url: str | None = None,
    timestamper: Any = None, tsa_timeout: float = DEFAULT_TSA_TIMEOUT_SECONDS,
) -> bytes:
    """Embed the record in ``pdf`` and sign it for ``signer``; return the signed PDF bytes.

    ``timestamper`` (a pyHanko ``TimeStamper``) overrides ``tsa_url``; tests use it to run a local TSA.
    See :func:`sign_pdf_long_term` for the revisions written and what happens without a TSA.
    """
    return sign_pdf_long_term(pdf, record, signer, tsa_url=tsa_url, timestamper=timestamper,
                              tsa_timeout=tsa_timeout).data


def sign_pdf_long_term(
    pdf: bytes, record: SanitisationRecord, signer: StationSigner, *, tsa_url: str | None = None,
    timestamper: Any = None, tsa_timeout: float = DEFAULT_TSA_TIMEOUT_SECONDS,
) -> SignedDocument:
    """Sign like :func:`sign_pdf` and report the PAdES level reached (:mod:`certs.ltv`).

    The station signature carries a signature timestamp from the TSA (B-T); a DSS revision adds the
    chain and the station's CRL (B-LT); a document timestamp revision makes it B-LTA. Without a
    reachable TSA the result is B-B plus DSS, flagged in ``problems`` for ``certificates extend``.
    """
    if timestamper is None and tsa_url:
        timestamper = http_timestamper(tsa_url, tsa_timeout)
    return sign_long_term(
        lambda stamper: _sign_once(pdf, record, signer, stamper),
        certificates=(signer.certificate, *signer.chain), crl=signer.crl, timestamper=timestamper,
        what=f"certificate {record.certificate_id}",
    )


def _sign_once(pdf: bytes, record: SanitisationRecord, signer: StationSigner, timestamper: Any) -> bytes:
    """The signed revision alone (B-B, or B-T with ``timestamper``)."""
    from pyhanko.pdf_utils import embed, generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    record_json = record.to_canonical_json()
    record_sha256 = record.sha256()
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=True)
        issued = datetime.fromisoformat(record.issued_at)
        spec = embed.FileSpec(
            file_spec_string=ATTACHMENT_NAME,
            file_name=ATTACHMENT_NAME,
            embedded_data=embed.EmbeddedFileObject.from_file_data(
                writer, data=record_json, mime_type="application/json",
                params=embed.EmbeddedFileParams(creation_date=issued, modification_date=issued),
            ),
            description=f"Sanitisation record {record.certificate_id} (canonical JSON)",
        )
        embed.embed_file(writer, spec)
        payload = qr_payload(record.certificate_id, record_sha256)
        writer.root[CATALOG_KEY] = generic.DictionaryObject({  # type: ignore[no-untyped-call]
            generic.NameObject("/Version"): generic.NumberObject(1),  # type: ignore[no-untyped-call]
            generic.NameObject("/Kind"): generic.NameObject(
                "/Certificate" if record.outcome == "sanitised" else "/FailureReport"
            ),
            generic.NameObject("/CertificateId"): generic.TextStringObject(record.certificate_id),
            generic.NameObject("/RecordSHA256"): generic.TextStringObject(record_sha256),
            generic.NameObject("/QR"): generic.TextStringObject(payload),
        })
        writer.update_root()  # type: ignore[no-untyped-call]
        metadata = signers.PdfSignatureMetadata(
            field_name=SIGNATURE_FIELD,
            md_algorithm="sha256",
            subfilter=fields.SigSeedSubFilter.PADES,
            # Certification with "no changes allowed": any later revision is a policy violation
            # that every PAdES validator flags, not just ours.
            certify=True,
            docmdp_permissions=fields.MDPPerm.NO_CHANGES,
            reason=("Certificate of sanitisation" if record.outcome == "sanitised"
                    else "Sanitisation failure report"),
            location=f"wipe-agent station {record.station_id}",
            name=record.station_id,
        )
        pdf_signer = signers.PdfSigner(metadata, signer=signer.pyhanko_signer(), timestamper=timestamper)
        output = pdf_signer.sign_pdf(writer)
    except Exception as error:  # pyHanko raises many unrelated types; report them as one failure
        raise SigningError(f"could not sign certificate {record.certificate_id}: {error}") from error
    data: bytes = output.getvalue()
    return data


@dataclass(frozen=True)
class IssuedDocument:
    """Where an issued document went and the long-term validation level it reached."""

    path: Path
    level: LtvLevel
    timestamped: bool
    problems: tuple[str, ...]

    @property
    def needs_extension(self) -> bool:
        """True when ``wipe-agent certificates extend`` should later bring it to B-LTA."""
        return self.level is not LtvLevel.B_LTA


def issue_certificate(
    record: SanitisationRecord, signer: StationSigner, out_path: Path, *, tsa_url: str | None = None,
    fonts_dir: Path | None = None, clock: Clock = utc_now, timestamper: Any = None,
    tsa_timeout: float = DEFAULT_TSA_TIMEOUT_SECONDS,
) -> Path:
    """Render ``record`` (a certificate, or a failure report when ``record.outcome == "failed"``),
    sign it with the station key and write it atomically to ``out_path``. Returns ``out_path``.

    Refuses (SigningError) when the record names another station than the signer's certificate,
    or when the station certificate is not valid at ``clock()``: a certificate nobody can verify
    must not leave the building. :func:`issue_certificate_details` also says how far its long-term
    validation goes.
    """
    return issue_certificate_details(record, signer, out_path, tsa_url=tsa_url, fonts_dir=fonts_dir, clock=clock,
                                     timestamper=timestamper, tsa_timeout=tsa_timeout).path


def issue_certificate_details(
    record: SanitisationRecord, signer: StationSigner, out_path: Path, *, tsa_url: str | None = None,
    fonts_dir: Path | None = None, clock: Clock = utc_now, timestamper: Any = None,
    tsa_timeout: float = DEFAULT_TSA_TIMEOUT_SECONDS,
) -> IssuedDocument:
    """Like :func:`issue_certificate`, returning the PAdES level reached and why it fell short."""
    if record.station_id != signer.station_id:
        raise SigningError(
            f"record is for station {record.station_id!r}, "
            f"but the signing key belongs to {signer.station_id!r}"
        )
    now = clock()
    certificate = signer.certificate
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise SigningError(
            f"station certificate is not valid now (valid {certificate.not_valid_before_utc:%Y-%m-%d} to "
            f"{certificate.not_valid_after_utc:%Y-%m-%d}): issue a new one with 'pki issue-station'"
        )
    signed = sign_pdf_long_term(render_pdf(record, fonts_dir=fonts_dir), record, signer, tsa_url=tsa_url,
                                timestamper=timestamper, tsa_timeout=tsa_timeout)
    write_atomic(out_path, signed.data)
    return IssuedDocument(out_path, signed.level, signed.timestamped, signed.problems)


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: never a half certificate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(temporary, 0o644)
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if os.name == "posix":
        # Persist the rename itself, so a power cut cannot lose an issued certificate.
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


_write_atomic = write_atomic
"""Former private name, still imported by certs.manifest and certs.destruction."""
