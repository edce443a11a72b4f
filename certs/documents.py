"""Signed documents other than certificates: batch manifests, destruction reports, validation statements and
the fleet's fleet manifests (signed with the fleet's key, :mod:`certs.fleet_manifest`).

They follow the certificate's pattern (:mod:`certs.issue`): a rendered PDF, the canonical JSON of
the document embedded as a file, a catalog dictionary ``/WipeAgentDocument`` stating the kind, id
and SHA-256 of that JSON, and a PAdES certification signature permitting no changes, made with the
station key. :func:`certs.verify.verify_with_bundle` recognises them by the catalog entry.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from certs.errors import SigningError
from certs.ltv import DEFAULT_TSA_TIMEOUT_SECONDS, SignedDocument, http_timestamper, sign_long_term
from certs.pki import StationSigner

DOCUMENT_KEY = "/WipeAgentDocument"
"""Catalog entry naming a signed document's kind, id and content hash."""
KINDS = {"manifest": "batch-manifest.json", "destruction_report": "destruction-record.json",
         "validation": "validation-statement.json", "fleet_manifest": "fleet-manifest.json"}
"""Document kind → name of the embedded JSON file."""
_PDF_KIND = {"manifest": "/Manifest", "destruction_report": "/DestructionReport", "validation": "/ValidationStatement",
             "fleet_manifest": "/FleetManifest"}
SIGNATURE_FIELD = "WipeAgentSignature"


def canonical_json(data: Any) -> bytes:
    """Canonical JSON (keys sorted, compact, UTF-8, no NaN): the document's identity."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def pdf_kind(kind: str) -> str:
    """The catalog /Kind name for a document kind."""
    return _PDF_KIND[kind]


def kind_of(pdf_name: str) -> str | None:
    """The document kind for a catalog /Kind name (None if unknown)."""
    return next((kind for kind, name in _PDF_KIND.items() if name == pdf_name), None)


def sign_document(pdf: bytes, *, kind: str, document_id: str, payload: bytes, sha256: str, issued_at: str,
                  signer: StationSigner, reason: str, timestamper: Any = None, tsa_url: str | None = None,
                  tsa_timeout: float = DEFAULT_TSA_TIMEOUT_SECONDS, location: str | None = None) -> bytes:
    """Embed ``payload`` (canonical JSON) in ``pdf``, state its hash in the catalog, sign; return the PDF.

    Signed long-term like a certificate (:func:`certs.ltv.sign_long_term`): signature timestamp,
    DSS, document timestamp; B-B plus DSS when no TSA answers.
    """
    return sign_document_long_term(
        pdf, kind=kind, document_id=document_id, payload=payload, sha256=sha256, issued_at=issued_at,
        signer=signer, reason=reason, timestamper=timestamper, tsa_url=tsa_url, tsa_timeout=tsa_timeout,
        location=location).data


def sign_document_long_term(
    pdf: bytes, *, kind: str, document_id: str, payload: bytes, sha256: str, issued_at: str, signer: StationSigner,
    reason: str, timestamper: Any = None, tsa_url: str | None = None,
    tsa_timeout: float = DEFAULT_TSA_TIMEOUT_SECONDS, location: str | None = None,
) -> SignedDocument:
    """Like :func:`sign_document`, returning the PAdES level reached and why it fell short."""
    if timestamper is None and tsa_url:
        timestamper = http_timestamper(tsa_url, tsa_timeout)
    return sign_long_term(
        lambda stamper: _sign_once(pdf, kind=kind, document_id=document_id, payload=payload, sha256=sha256,
                                   issued_at=issued_at, signer=signer, reason=reason, timestamper=stamper,
                                   location=location),
        certificates=(signer.certificate, *signer.chain), crl=signer.crl, timestamper=timestamper,
        what=f"{kind} {document_id}",
    )


def _sign_once(pdf: bytes, *, kind: str, document_id: str, payload: bytes, sha256: str, issued_at: str,
               signer: StationSigner, reason: str, timestamper: Any, location: str | None = None) -> bytes:
    """The signed revision alone (B-B, or B-T with ``timestamper``)."""
    from pyhanko.pdf_utils import embed, generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    attachment = KINDS[kind]
    try:
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=True)
        issued = datetime.fromisoformat(issued_at)
        spec = embed.FileSpec(
            file_spec_string=attachment, file_name=attachment,
            embedded_data=embed.EmbeddedFileObject.from_file_data(
                writer, data=payload, mime_type="application/json",
                params=embed.EmbeddedFileParams(creation_date=issued, modification_date=issued),
            ),
            description=f"{kind} {document_id} (canonical JSON)",
        )
        embed.embed_file(writer, spec)
        writer.root[DOCUMENT_KEY] = generic.DictionaryObject({  # type: ignore[no-untyped-call]
            generic.NameObject("/Version"): generic.NumberObject(1),  # type: ignore[no-untyped-call]
            generic.NameObject("/Kind"): generic.NameObject(pdf_kind(kind)),
            generic.NameObject("/DocumentId"): generic.TextStringObject(document_id),
            generic.NameObject("/SHA256"): generic.TextStringObject(sha256),
            generic.NameObject("/Attachment"): generic.TextStringObject(attachment),
        })
        writer.update_root()  # type: ignore[no-untyped-call]
        metadata = signers.PdfSignatureMetadata(
            field_name=SIGNATURE_FIELD, md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES,
            certify=True, docmdp_permissions=fields.MDPPerm.NO_CHANGES,  # any later revision is flagged
            reason=reason, location=location or f"wipe-agent station {signer.station_id}", name=signer.station_id,
        )
        pdf_signer = signers.PdfSigner(metadata, signer=signer.pyhanko_signer(), timestamper=timestamper)
        output = pdf_signer.sign_pdf(writer)
    except Exception as error:  # pyHanko raises many unrelated types; report them as one failure
        raise SigningError(f"could not sign {kind} {document_id}: {error}") from error
    data: bytes = output.getvalue()
    return data


def render_document(*, title: str, subtitle: str, fields: list[tuple[str, object]], header: list[str],
                    rows: list[list[object]], widths: list[float | None], demo: bool, footer: str,
                    notes: list[str] | None = None, fonts_dir: Any = None, grid: Any = None,
                    after: list[Any] | None = None, page_label: Callable[[int], str] | None = None) -> bytes:
    """Render a one-table A4 document with the certificate's fonts, layout and demo watermark.

    ``grid`` replaces the table built from ``header``/``rows`` (a caller with its own cell styles),
    ``after`` are flowables placed after the notes, and ``page_label`` gives the bottom-right text of
    page N (default "page N"): a caller that needs "page x of y" renders twice, counting pages first.
    """
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.units import mm
    from reportlab.platypus import SimpleDocTemplate, Spacer

    from certs import render

    render.register_fonts(fonts_dir)
    output = io.BytesIO()
    page = landscape(A4)
    document = SimpleDocTemplate(output, pagesize=page, leftMargin=12 * mm, rightMargin=12 * mm, topMargin=13 * mm,
                                 bottomMargin=15 * mm, title=title, author=footer, creator="wipe-agent certs",
                                 lang="en-GB", initialFontName="WA-Sans")
    story: list[Any] = []
    if demo:
        story.append(render._banner("DEMONSTRATION \u2014 not a record of real media", render._DEMO))
        story.append(Spacer(1, 3 * mm))
    story += [render._p(title, render._TITLE), render._p(subtitle, render._SUBTITLE), Spacer(1, 3 * mm),
              render._fields_table(fields), Spacer(1, 4 * mm),
              grid if grid is not None else render._grid(header, [[str(cell) for cell in row] for row in rows],
                                                         widths)]
    for note in notes or []:
        story += [Spacer(1, 2 * mm), render._p(note, render._BODY)]
    story += after or []

    def on_page(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        width, height = page
        canvas.setFont("WA-Sans", 7)
        canvas.setFillColor(render._MUTED)
        canvas.drawString(12 * mm, 9 * mm, footer)
        canvas.drawRightString(width - 12 * mm, 9 * mm, page_label(doc.page) if page_label else f"page {doc.page}")
        if demo:
            canvas.setFillColor(render._DEMO)
            canvas.setFillAlpha(0.18)
            canvas.translate(width / 2, height / 2)
            canvas.rotate(30)
            canvas.setFont("WA-Sans-Bold", 62)
            canvas.drawCentredString(0, 0, "DEMONSTRATION")
        canvas.restoreState()

    document.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return output.getvalue()
