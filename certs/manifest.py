"""Signed batch manifests: the list of devices handed to a reuse partner, with their certificates.

A manifest folder holds ``manifest-<id>.pdf`` (signed, PAdES, the station's key), the same JSON as
``manifest-<id>.json`` (byte-identical to the copy embedded in the PDF), the same rows as
``manifest-<id>.csv`` (for a spreadsheet: one numbered row per device, the values of the PDF's
table, cells a spreadsheet would run as a formula prefixed with an apostrophe, see
:data:`CSV_NEUTRALISED`) and ``certificates/`` with every certificate it lists. The JSON lists each
device (asset tag, make, model, serial, attestations, and the signed ``validation`` when one was
made), its drives and, per drive, the certificate id, the record SHA-256, the method, the
sanitisation time and the certificate's file name; ``audit_checkpoint`` (optional) is the station's
latest signed audit checkpoint. A partner checks it with ``wipe-agent verify MANIFEST.pdf --trust
BUNDLE``: the ``certificates/`` folder beside the PDF is checked by default (:func:`check_certificates`:
every listed certificate present, valid and the one listed, nothing else in the folder).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import KeepTogether, Paragraph, Spacer, Table, TableStyle

from certs.csvcell import FORMULA_STARTS, table_csv
from certs.documents import canonical_json, render_document, sign_document
from certs.errors import RecordError
from certs.files import MAX_DOCUMENT_BYTES, NotReadable, read_regular_file
from certs.issue import _write_atomic
from certs.pki import StationSigner, TrustBundle
from certs.record import check_document_strings
from certs.verify import verify_with_bundle

SCHEMA = 2
"""The manifest schema this code issues. 1: the first release's layout (no row numbers, full record hashes,
"S/N" before each drive serial); 2: numbered rows, one column per value (:data:`MANIFEST_COLUMNS`). The
verifier picks the page-text rules by the signed ``schema``, so a manifest already handed over keeps verifying."""
SCHEMAS = (1, 2)
"""Every manifest schema the verifier knows."""
_REQUIRED = ("schema", "kind", "document_id", "station_id", "created_at", "demo", "scheme", "devices", "summary")


@dataclass(frozen=True)
class ManifestFiles:
    """Where a manifest was written."""

    pdf: Path
    json: Path
    csv: Path
    certificates: Path
    sha256: str


@dataclass(frozen=True)
class CertificateCheck:
    """One listed certificate checked against the folder: ``ok`` or the problem."""

    asset: str
    certificate_id: str
    file: str
    ok: bool
    problem: str

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


def _check_shape(manifest: Mapping[str, Any]) -> None:
    check_document_strings(dict(manifest), "manifest")
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise RecordError(f"manifest: missing {', '.join(missing)}")
    if manifest["kind"] != "manifest" or manifest["schema"] != SCHEMA:
        raise RecordError(f"manifest: kind must be 'manifest' and schema {SCHEMA}")
    if not manifest["devices"]:
        raise RecordError("manifest: lists no device")
    for optional in ("audit_checkpoint",):
        if optional in manifest and not isinstance(manifest[optional], Mapping):
            raise RecordError(f"manifest: {optional} must be a mapping")
    for device in manifest["devices"]:
        if not isinstance(device, Mapping) or not device.get("asset"):
            raise RecordError("manifest: a device has no asset tag")
        if device.get("validation") is not None and not isinstance(device["validation"], Mapping):
            raise RecordError(f"manifest: the validation of {device.get('asset')} must be a mapping or null")
        if not device.get("drives"):
            raise RecordError(f"manifest: device {device.get('asset')} lists no drive")
        for drive in device["drives"]:
            for key in ("certificate_id", "record_sha256", "certificate_file"):
                if not drive.get(key):
                    raise RecordError(f"manifest: a drive of {device.get('asset')} has no {key}")
            joined = [key for key in _JOINED if _SEPARATOR in str(drive.get(key) or "")]
            if joined:
                # the CSV and the PDF join a device's drives with it: one drive would read as two
                raise RecordError(f"manifest: a drive of {device.get('asset')} has {_SEPARATOR!r} in its {joined[0]}")
            if Path(drive["certificate_file"]).name != drive["certificate_file"]:
                raise RecordError(f"manifest: certificate file {drive['certificate_file']!r} must be a plain name")


MANIFEST_COLUMNS: tuple[tuple[str, str], ...] = (
    ("no", "No."), ("asset", "Asset"), ("make", "Make"), ("model", "Model"), ("host_serial", "Host serial"),
    ("drive_serials", "Drive serial(s)"), ("level", "Level"), ("method", "Method"), ("verification", "Verification"),
    ("sanitised_on", "Sanitised on"), ("certificate_ids", "Certificate id(s)"), ("record_sha256", "Record SHA-256"),
    ("attestations", "Attestations"), ("validation", "Validation"),
)
"""The manifest's table, one row per device: (key, heading). The CSV has every column; the PDF all but
the full record hashes (it prints their first 16 hex digits under the certificate id)."""
_SEPARATOR = "; "
"""Joins the values of a device's drives (in the listed order) and its attestations within one cell."""
_JOINED = ("serial", "level", "method", "verification", "certificate_id", "record_sha256")
"""The drive values joined with :data:`_SEPARATOR`: none may contain it (:func:`_check_shape`)."""
CSV_NEUTRALISED = FORMULA_STARTS
"""A CSV cell starting with one of these is prefixed with an apostrophe (:mod:`certs.csvcell`, the rule
``jobs --csv`` uses too)."""
_DASH = "\u2014"


def _date(timestamp: object) -> str:
    if not timestamp:
        return _DASH
    try:
        return f"{datetime.fromisoformat(str(timestamp)):%Y-%m-%d}"
    except ValueError:
        return str(timestamp)


def _validation_text(validation: object) -> str:
    """The device's signed validation (filled by the validation statement), else "not validated"."""
    if not isinstance(validation, Mapping) or not validation:
        return "not validated"
    text = f"{validation.get('decision', _DASH)} by {validation.get('by', _DASH)}"
    if validation.get("role"):
        text += f" ({validation['role']})"
    text += f", {_date(validation.get('at'))}"
    if validation.get("statement_id"):
        text += f", statement {validation['statement_id']}"
    if validation.get("signer_kind"):
        text += f", signed by {validation['signer_kind']}"
    return text


def _attestation_text(attestations: Mapping[str, Mapping[str, Any]]) -> str:
    """The checks people attested, grouped by who attested them on which day (short enough for one cell)."""
    groups: dict[tuple[str, str], list[str]] = {}
    for item, entry in sorted(attestations.items()):
        groups.setdefault((str(entry.get("by") or _DASH), _date(entry.get("at"))), []).append(item)
    return _SEPARATOR.join(f"{', '.join(items)} ({by}, {day})" for (by, day), items in groups.items()) or "none"


def manifest_rows(manifest: Mapping[str, Any]) -> list[dict[str, str]]:
    """The manifest's rows (one per device, numbered from 1): what the PDF prints and the CSV holds."""
    rows = []
    for number, device in enumerate(manifest["devices"], start=1):
        drives = device["drives"]

        def joined(key: str, drives: list[Mapping[str, Any]] = drives) -> str:
            return _SEPARATOR.join(str(drive.get(key) or _DASH) for drive in drives)

        attestations = device.get("attestations") or {}
        rows.append({
            "no": str(number), "asset": str(device["asset"]), "make": str(device.get("make") or _DASH),
            "model": str(device.get("model") or _DASH), "host_serial": str(device.get("serial") or _DASH),
            "drive_serials": joined("serial"), "level": joined("level"), "method": joined("method"),
            "verification": joined("verification"),
            "sanitised_on": _SEPARATOR.join(_date(drive.get("sanitised_at")) for drive in drives),
            "certificate_ids": joined("certificate_id"), "record_sha256": joined("record_sha256"),
            "attestations": _attestation_text(attestations),
            "validation": _validation_text(device.get("validation")),
        })
    return rows


def render_csv(manifest: Mapping[str, Any]) -> bytes:
    """The manifest's rows as CSV (RFC 4180, UTF-8, a heading row), injection-safe (:data:`CSV_NEUTRALISED`)."""
    return table_csv(MANIFEST_COLUMNS, manifest_rows(manifest))


class _RowNumber(Paragraph):  # type: ignore[misc]  # reportlab ships no type hints
    """The row-number cell: notes which page it is drawn on, for the footer's "rows a-b of n"."""

    def __init__(self, number: int, style: ParagraphStyle, seen: dict[int, list[int]]) -> None:
        super().__init__(str(number), style)
        self.number = number
        self.seen = seen

    def draw(self) -> None:
        self.seen.setdefault(self.canv.getPageNumber(), []).append(self.number)
        super().draw()


PDF_COLUMN_WIDTHS_MM = {
    "no": 8, "asset": 18, "make": 15, "model": 20, "host_serial": 18, "drive_serials": 20, "level": 10, "method": 26,
    "verification": 16, "sanitised_on": 15, "certificate_ids": 34, "attestations": 44, "validation": 29}
"""The PDF table's columns, left to right, and their widths: 273 mm, landscape A4 inside the margins. The
verifier places each piece of page text in its column by these widths."""


def pdf_rows(manifest: Mapping[str, Any]) -> list[dict[str, str]]:
    """The rows exactly as the PDF's table prints them (:data:`PDF_COLUMN_WIDTHS_MM` columns): the record hashes
    shortened under their certificate ids. The verifier compares every cell of the page with these."""
    rows = []
    for row in manifest_rows(manifest):
        shown = {key: row[key] for key in PDF_COLUMN_WIDTHS_MM}
        shown["certificate_ids"] = _SEPARATOR.join(
            f"{certificate} sha256 {digest[:16]}\u2026" for certificate, digest in
            zip(row["certificate_ids"].split(_SEPARATOR), row["record_sha256"].split(_SEPARATOR), strict=True))
        rows.append(shown)
    return rows


def printed_lines(value: str) -> list[str]:
    """The lines a cell value is printed on (one per drive or attestation group)."""
    return value.split(_SEPARATOR)


def _cell(value: str, style: ParagraphStyle) -> Paragraph:
    # one line per drive; every value escaped (a serial like "<b>" prints as text)
    return Paragraph("<br/>".join(escape(part) for part in printed_lines(value)), style)


def _table(manifest: Mapping[str, Any], seen: dict[int, list[int]]) -> Table:
    from certs import render

    cell = ParagraphStyle("manifest-cell", fontName="WA-Sans", fontSize=6.5, leading=8, splitLongWords=1)
    heading = ParagraphStyle("manifest-heading", parent=cell, textColor=render._MUTED)
    keys = list(PDF_COLUMN_WIDTHS_MM)
    data: list[list[Any]] = [[Paragraph(escape(dict(MANIFEST_COLUMNS)[key]), heading) for key in keys]]
    for shown in pdf_rows(manifest):
        data.append([_RowNumber(int(shown["no"]), cell, seen)] + [_cell(shown[key], cell) for key in keys[1:]])
    table = Table(data, colWidths=[PDF_COLUMN_WIDTHS_MM[key] * mm for key in keys], hAlign="LEFT", repeatRows=1)
    table.setStyle(TableStyle([
        ("FONTNAME", (0, 0), (-1, -1), "WA-Sans"), ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("GRID", (0, 0), (-1, -1), 0.25, render._RULE), ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
        ("TOPPADDING", (0, 0), (-1, -1), 1.2), ("BOTTOMPADDING", (0, 0), (-1, -1), 1.2),
        ("LEFTPADDING", (0, 0), (-1, -1), 1.5), ("RIGHTPADDING", (0, 0), (-1, -1), 1.5),
    ]))
    return table


def _handover(manifest: Mapping[str, Any], digest: str) -> list[Any]:
    """The receipt: who released the batch, who received it, when; blank lines to sign by hand."""
    from certs import render

    blank = "_" * 34
    lines = [[render._p(label, render._LABEL), render._p(blank), render._p("Signature", render._LABEL),
              render._p(blank), render._p("Date", render._LABEL), render._p("_" * 16)]
             for label in ("Released by (name, role)", "Received by (name, organisation)")]
    table = Table(lines, colWidths=[52 * mm, 60 * mm, 18 * mm, 60 * mm, 12 * mm, 32 * mm], hAlign="LEFT")
    table.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), "WA-Sans"), ("VALIGN", (0, 0), (-1, -1), "BOTTOM"),
                               ("TOPPADDING", (0, 0), (-1, -1), 7)]))
    return [Spacer(1, 5 * mm), KeepTogether([
        render._p("Handover", render._HEADING),
        render._p(f"The devices listed above, {len(manifest['devices'])} in all, were released and received as "
                  "counted here.", render._BODY),
        table, Spacer(1, 2 * mm),
        render._p(f"Manifest {manifest['document_id']} \u00b7 SHA-256 of the signed manifest JSON {digest}",
                  render._MONO)])]


def _summary_counts(manifest: Mapping[str, Any]) -> str:
    devices = manifest["devices"]
    drives = [drive for device in devices for drive in device["drives"]]
    levels: dict[str, int] = {}
    for drive in drives:
        levels[str(drive.get("level") or _DASH)] = levels.get(str(drive.get("level") or _DASH), 0) + 1
    validated = sum(1 for device in devices if isinstance(device.get("validation"), Mapping) and device["validation"])
    attested = sum(1 for device in devices if device.get("attestations"))
    return (f"{len(devices)} device(s), {len(drives)} drive(s) ("
            + ", ".join(f"{level} {count}" for level, count in sorted(levels.items()))
            + f"); validated {validated} of {len(devices)}; attestations recorded for {attested} of {len(devices)}")


def manifest_fields(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The labelled fields above the table, (label, value) in printed order: rendered, and checked by the verifier."""
    scheme = manifest["scheme"]
    created = datetime.fromisoformat(manifest["created_at"])
    return [
        ("Manifest", str(manifest["document_id"])), ("Scheme", f"{scheme['name']}: {scheme.get('summary', '')}"),
        ("Destination", str(scheme["destination"])), ("Station", str(manifest["station_id"])),
        ("Created", f"{created:%Y-%m-%d %H:%M} UTC"), ("Summary", _summary_counts(manifest)),
        ("Contents", "every drive has its signed certificate of sanitisation in certificates/; the same rows are "
                     f"in manifest-{manifest['document_id']}.csv"),
    ]


def manifest_footer(manifest: Mapping[str, Any]) -> str:
    """The footer line every page prints (without "page x of y")."""
    footer = f"Batch manifest {manifest['document_id']} \u00b7 station {manifest['station_id']}"
    checkpoint = manifest.get("audit_checkpoint")
    if isinstance(checkpoint, Mapping):
        head = str(checkpoint.get("head") or checkpoint.get("head_sha256") or "")
        number = checkpoint.get("seq", checkpoint.get("sequence", "?"))  # certs.audit_chain.Checkpoint: "seq"
        footer += f" \u00b7 audit checkpoint #{number} head {head[:12] or '?'}"
    return footer


def render_manifest(manifest: Mapping[str, Any], fonts_dir: Path | None = None) -> bytes:
    """The human-readable manifest (unsigned PDF bytes): one numbered row per device, "page x of y" and the
    rows on each page in the footer, a summary and the handover block.

    Rendered twice: the first pass counts pages and notes which rows each holds (the footer is drawn on
    the canvas, so it cannot change the layout the second pass repeats).
    """
    from certs import render

    render.register_fonts(fonts_dir)  # before any cell is built: a Paragraph resolves its font when made
    digest = hashlib.sha256(canonical_json(manifest)).hexdigest()
    total = len(manifest["devices"])
    fields: list[tuple[str, object]] = list(manifest_fields(manifest))

    def render_once(label: Any, seen: dict[int, list[int]]) -> bytes:
        return render_document(
            title="Batch manifest for a reuse partner", subtitle=str(manifest["summary"]), fields=fields, header=[],
            rows=[], widths=[], grid=_table(manifest, seen), after=_handover(manifest, digest),
            demo=bool(manifest["demo"]), footer=manifest_footer(manifest), page_label=label,
            notes=["Check: wipe-agent verify manifest.pdf --trust BUNDLE (signature, and every certificate in the "
                   "certificates/ folder beside it present, valid and matching its hash)."], fonts_dir=fonts_dir)

    first: dict[int, list[int]] = {}
    drawn: list[int] = []

    def count(page: int) -> str:
        drawn.append(page)
        return ""

    render_once(count, first)
    pages = max(drawn)

    def label(page: int) -> str:
        numbers = first.get(page)
        rows = f"rows {min(numbers)}\u2013{max(numbers)} of {total}" if numbers else f"no rows ({total} in all)"
        return f"page {page} of {pages} \u00b7 {rows}"

    return render_once(label, {})


def issue_manifest(manifest: dict[str, Any], signer: StationSigner, out_dir: Path,
                   certificate_files: Mapping[str, Path], *, fonts_dir: Path | None = None,
                   timestamper: Any = None, tsa_url: str | None = None, pdf_suffix: str = "") -> ManifestFiles:
    """Sign ``manifest`` and write the folder: PDF, JSON and the listed certificates (by certificate id).

    ``pdf_suffix`` (e.g. ``.issuing``) writes the PDF under a temporary name the caller renames once the
    manifest is recorded; ``ManifestFiles.pdf`` is then that temporary path."""
    _check_shape(manifest)
    if manifest["station_id"] != signer.station_id:
        raise RecordError(f"manifest names station {manifest['station_id']!r}, the key is {signer.station_id!r}")
    payload = canonical_json(manifest)
    digest = hashlib.sha256(payload).hexdigest()
    pdf = sign_document(render_manifest(manifest, fonts_dir), kind="manifest", document_id=manifest["document_id"],
                        payload=payload, sha256=digest, issued_at=manifest["created_at"], signer=signer,
                        reason="Batch manifest for a reuse partner", timestamper=timestamper,
                        tsa_url=tsa_url)
    certificates = out_dir / "certificates"
    certificates.mkdir(parents=True, exist_ok=True)
    for device in manifest["devices"]:
        for drive in device["drives"]:
            source = certificate_files[drive["certificate_id"]]
            shutil.copyfile(source, certificates / drive["certificate_file"])
    base = f"manifest-{manifest['document_id']}"
    _write_atomic(out_dir / f"{base}.json", payload)
    _write_atomic(out_dir / f"{base}.csv", render_csv(manifest))
    _write_atomic(out_dir / f"{base}.pdf{pdf_suffix}", pdf)
    return ManifestFiles(out_dir / f"{base}.pdf{pdf_suffix}", out_dir / f"{base}.json", out_dir / f"{base}.csv",
                         certificates, digest)


def host_problem(record: Any, device: Mapping[str, Any], name: str) -> str:
    """The host a certificate ``record`` names (schema 2: its asset tag and serial, when recorded) must be
    the manifest row's; "" when it is or the record names none. (The drive's own asset tag is its
    property number, not the host's, and is not compared.)"""
    asset = str(device.get("asset"))
    host = getattr(record, "host", None)
    if host is None:
        return ""
    if host.asset_tag and host.asset_tag != asset:
        return f"{name} names host {host.asset_tag}, the manifest row is {asset}"
    serial = str(device.get("serial") or "")
    if host.serial and serial and host.serial != serial:
        return f"{name} names host serial {host.serial}, the manifest row ({asset}) has {serial}"
    return ""


def check_certificates(manifest: Mapping[str, Any], certificates_dir: Path, bundle: TrustBundle, *,
                       now: datetime | None = None) -> list[CertificateCheck]:
    """Every certificate the manifest lists must be in the folder, valid, and the one listed (id and hash);
    any other file in the folder is named too (a partner must not take it for part of the batch)."""
    checks: list[CertificateCheck] = []
    listed: set[str] = set()
    for device in manifest.get("devices", []):
        for drive in device.get("drives", []):
            name = str(drive.get("certificate_file", ""))
            certificate_id = str(drive.get("certificate_id", ""))
            path = certificates_dir / name
            problem = ""
            if not name or Path(name).name != name:
                problem = f"bad certificate file name {name!r}"
            elif certificates_dir.is_symlink() or path.is_symlink():
                # a link points at a file outside the delivery: what was handed over is not what is checked
                link = certificates_dir if certificates_dir.is_symlink() else path
                problem = f"{link} is a symbolic link, not a file of the delivery"
            elif not path.is_file():
                problem = f"certificate {certificate_id} missing: no {name} in {certificates_dir}"
            else:
                report = verify_with_bundle(path, bundle, now=now)
                if not report.valid:
                    problem = f"certificate {name} is invalid: {report.reason}"
                elif report.kind != "certificate":
                    problem = f"{name} is a {report.kind}, not a certificate of sanitisation"
                elif report.certificate_id != certificate_id:
                    problem = f"{name} is certificate {report.certificate_id}, the manifest lists {certificate_id}"
                elif report.record_sha256 != drive.get("record_sha256"):
                    problem = f"{name}: record hash {report.record_sha256} differs from the manifest's"
                elif report.record is not None:
                    problem = host_problem(report.record, device, name)
            listed.add(name)
            checks.append(CertificateCheck(str(device.get("asset")), certificate_id, name, not problem, problem))
    try:
        extras = sorted(item.name for item in certificates_dir.iterdir() if item.name not in listed)
    except OSError as error:
        extras = []
        checks.append(CertificateCheck("-", "-", str(certificates_dir), False,
                                       f"cannot list {certificates_dir}: {error.strerror or error}"))
    checks += [CertificateCheck("-", "-", name, False, f"{name} is in {certificates_dir} but the manifest does not "
                                "list it") for name in extras]
    return checks


def _check_copy(pdf_path: Path, suffix: str, expected: Any) -> str:
    """A copy beside a manifest PDF must be ``expected()`` byte for byte; "" when it is (or is absent)."""
    copy = pdf_path.with_suffix(suffix)
    if not copy.exists():
        return ""
    try:
        data = read_regular_file(copy, MAX_DOCUMENT_BYTES)
        wanted = expected()
    except NotReadable as error:
        return f"{copy.name}: {error}"
    except (KeyError, TypeError, AttributeError, ValueError):  # a signed document of another shape
        return f"{copy.name}: the signed manifest has no rows to compare it with"
    if data != wanted:
        return f"{copy.name} differs from the manifest signed in {pdf_path.name}: trust the PDF, not the copy"
    return ""


def check_json_copy(pdf_path: Path, manifest: Mapping[str, Any]) -> str:
    """The JSON copy beside a manifest PDF must be byte-identical to the signed one; "" when it is (or is absent)."""
    return _check_copy(pdf_path, ".json", lambda: canonical_json(manifest))


def check_csv_copy(pdf_path: Path, manifest: Mapping[str, Any]) -> str:
    """The CSV beside a manifest PDF must hold exactly the signed manifest's rows; "" when it does (or is absent)."""
    return _check_copy(pdf_path, ".csv", lambda: render_csv(manifest))
