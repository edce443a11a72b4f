"""Render a validation statement (:mod:`certs.validation`) as a PDF page.

Uses the station documents' one-table layout (:func:`certs.documents.render_document`). Every
value the verifier checks (:func:`certs.verify`) is printed as a labelled field or a table cell: the
statement id, station, decision, who and in which role, when, the reason, the signer kind in words
(:data:`certs.validation.SIGNER_WORDING`) and each certificate id with its record SHA-256.
"""

from __future__ import annotations

from pathlib import Path

from certs.documents import render_document
from certs.validation import DECISION_WORDING, SIGNER_WORDING, ValidationStatement

FIELD_LABELS = ("Statement", "Station", "Decision", "Validated by", "Role", "Validated at", "Reason", "Signed by")
"""The labelled fields, in page order (the verifier reads each value between two labels)."""


def statement_fields(statement: ValidationStatement) -> list[tuple[str, str]]:
    """(label, value) pairs exactly as printed; :mod:`certs.verify` rebuilds them from the JSON."""
    values = (statement.document_id, statement.station_id, DECISION_WORDING[statement.decision], statement.by,
              statement.role, statement.created_at, statement.reason or "\u2014",
              SIGNER_WORDING[statement.signer_kind])
    return list(zip(FIELD_LABELS, values, strict=True))


def render_statement(statement: ValidationStatement, fonts_dir: Path | None = None) -> bytes:
    """The statement's unsigned PDF."""
    from reportlab.lib.units import mm

    rows: list[list[object]] = [
        [index, item.certificate_id, item.drive, item.record_sha256]
        for index, item in enumerate(statement.certificates, start=1)
    ]
    return render_document(
        title="Validation statement",
        subtitle=("NIST SP 800-88 validation of sanitisation: the certificates below were reviewed and "
                  f"{DECISION_WORDING[statement.decision].lower()}"),
        fields=[*statement_fields(statement), ("Certificates", str(len(statement.certificates)))],
        # One line per certificate (the job id is in the embedded JSON): 200 certificates fit on few pages.
        header=["#", "Certificate id", "Drive", "Record SHA-256"],
        rows=rows, widths=[10 * mm, 71 * mm, None, 127 * mm],
        demo=statement.demo, footer=f"wipe-agent validation statement {statement.document_id}",
        notes=["Each certificate is identified by the SHA-256 of its signed record: a certificate with any other "
               "content is not covered by this statement."],
        fonts_dir=fonts_dir,
    )
