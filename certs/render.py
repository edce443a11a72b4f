"""Render a sanitisation record as an A4 PDF with reportlab (unsigned; :mod:`certs.issue` signs it).

Page 1 is what a person checks at a glance: device, method, level, verification, result, date,
station, operator and the validation block, with a QR code carrying the certificate id and record
hash. Evidence pages follow. Fonts are DejaVu TrueType, embedded (subset) so the PDF reads the same
everywhere. A demonstration record gets a diagonal watermark and a banner on every page.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import qrcode
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    PageBreak,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from certs.errors import FontsMissing
from certs.record import Health, Person, SanitisationRecord
from certs.units import decimal_size, size_with_bytes

DEFAULT_FONTS_DIR = Path("/usr/share/fonts/truetype/dejavu")
"""Where Debian's fonts-dejavu-core installs the fonts."""

DEMO_WATERMARK = "DEMONSTRATION \u2014 not a record of real media"
QR_PREFIX = "WIPE-AGENT-CERT"

_FONTS = {"WA-Sans": "DejaVuSans.ttf", "WA-Sans-Bold": "DejaVuSans-Bold.ttf", "WA-Mono": "DejaVuSansMono.ttf"}
_registered_from: Path | None = None

# reportlab tables default their cell font to Helvetica, which would be referenced but not embedded.
_CELL_FONT = ("FONTNAME", (0, 0), (-1, -1), "WA-Sans")
_LAYOUT = TableStyle([_CELL_FONT, ("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0)])
_INK = colors.HexColor("#1a1a1a")
_MUTED = colors.HexColor("#555555")
_RULE = colors.HexColor("#b0b0b0")
_GOOD = colors.HexColor("#1b6e20")
_BAD = colors.HexColor("#a11616")
_DEMO = colors.HexColor("#d40000")


def qr_payload(certificate_id: str, record_sha256: str) -> str:
    """The text in the QR code (also stored in the PDF catalog so verifiers can compare without OCR)."""
    return f"{QR_PREFIX};v=1;id={certificate_id};sha256={record_sha256}"


def register_fonts(fonts_dir: Path | None = None) -> None:
    """Register the DejaVu fonts with reportlab (once per directory); raise FontsMissing if absent."""
    global _registered_from
    directory = fonts_dir or DEFAULT_FONTS_DIR
    if _registered_from == directory:
        return
    missing = [name for name in _FONTS.values() if not (directory / name).is_file()]
    if missing:
        raise FontsMissing(
            f"fonts {', '.join(missing)} not found in {directory}: install fonts-dejavu-core "
            "(Debian/Ubuntu) or point fonts_dir at a folder holding the DejaVu TTF files"
        )
    for name, file_name in _FONTS.items():
        pdfmetrics.registerFont(TTFont(name, str(directory / file_name)))
    pdfmetrics.registerFontFamily("WA-Sans", normal="WA-Sans", bold="WA-Sans-Bold",
                                  italic="WA-Sans", boldItalic="WA-Sans-Bold")
    _registered_from = directory


_RIGHT_TO_LEFT = {"R", "AL", "AN"}


def print_problem(value: str, fonts_dir: Path | None = None) -> str | None:
    """Why ``value`` cannot be printed on a certificate so that its page reads back as signed, else None.

    The layout is left to right in the embedded DejaVu Sans: a character the fonts have no glyph for
    (CJK, emoji, full-width Latin) prints as a box, right-to-left text (Hebrew, Arabic) comes back out
    of the page reversed, and a combining mark NFC left on its own may be extracted apart from its base.
    Any of them makes the station's own read-back refuse the certificate after the drive was wiped, so
    callers ask this before (the configuration when it is loaded, ``wipe --asset`` before the guard)."""
    if value.isascii():
        return None  # DejaVu covers all of printable ASCII; text_problem has refused the controls
    register_fonts(fonts_dir)
    faces = [pdfmetrics.getFont(name).face.charToGlyph for name in ("WA-Sans", "WA-Sans-Bold")]
    for char in value:
        label = f"U+{ord(char):04X} {unicodedata.name(char, 'unnamed')}"
        if unicodedata.bidirectional(char) in _RIGHT_TO_LEFT:
            return f"contains the right-to-left character {label}: certificates are laid out left to right only"
        if unicodedata.combining(char):
            return f"contains the combining mark {label} with no precomposed form: it would not read back as signed"
        if any(ord(char) not in face for face in faces):
            return f"contains {label}, which the certificate font (DejaVu Sans) cannot print"
    return None


def _style(name: str, size: float, *, font: str = "WA-Sans", color: Any = _INK, leading: float | None = None,
           space_after: float = 0, alignment: int = 0) -> ParagraphStyle:
    return ParagraphStyle(name, fontName=font, fontSize=size, leading=leading or size * 1.25,
                          textColor=color, spaceAfter=space_after, alignment=alignment)


_TITLE = _style("title", 17, font="WA-Sans-Bold", space_after=2)
_SUBTITLE = _style("subtitle", 9, color=_MUTED)
_HEADING = _style("heading", 11, font="WA-Sans-Bold", space_after=3)
_BODY = _style("body", 8.5)
_LABEL = _style("label", 8, color=_MUTED)
_MONO = _style("mono", 7.5, font="WA-Mono")
_BANNER = _style("banner", 15, font="WA-Sans-Bold", color=colors.white, alignment=1)


def _p(text: object, style: ParagraphStyle = _BODY) -> Paragraph:
    # Every record string is escaped: a serial like "<b>" must print as text, not markup.
    return Paragraph(escape(str(text)), style)


def _fields_table(rows: Sequence[tuple[str, object]], label_width: float = 45 * mm) -> Table:
    data = [[_p(label, _LABEL), value if isinstance(value, Flowable) else _p(value)] for label, value in rows]
    table = Table(data, colWidths=[label_width, None], hAlign="LEFT")
    table.setStyle(TableStyle([_CELL_FONT,
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, _RULE),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 2),
    ]))
    return table


def _grid(header: Sequence[str], rows: Sequence[Sequence[object]], widths: Sequence[float | None]) -> Table:
    data = [[_p(cell, _LABEL) for cell in header]]
    data += [[_p(cell) for cell in row] for row in rows]
    table = Table(data, colWidths=list(widths), hAlign="LEFT", repeatRows=1)
    table.setStyle(TableStyle([_CELL_FONT,
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("GRID", (0, 0), (-1, -1), 0.25, _RULE),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")),
        ("TOPPADDING", (0, 0), (-1, -1), 1.5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
    ]))
    return table


class _QrCode(Flowable):  # type: ignore[misc]  # reportlab ships no type hints
    """The QR code drawn as vector squares: crisp at any zoom, no image library, no extra fonts.

    (reportlab's graphics Drawing would reference an unembedded Helvetica as its default font.)
    """

    def __init__(self, payload: str, size: float) -> None:
        super().__init__()
        code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2)
        code.add_data(payload)
        code.make(fit=True)
        self.matrix: list[list[bool]] = code.get_matrix()
        self.width = self.height = size

    def wrap(self, available_width: float, available_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        module = self.width / len(self.matrix)
        canvas = self.canv
        canvas.setFillColor(colors.black)
        for row_index, row in enumerate(self.matrix):
            for column_index, dark in enumerate(row):
                if dark:
                    canvas.rect(column_index * module, self.height - (row_index + 1) * module, module, module,
                                stroke=0, fill=1)


def _banner(text: str, color: Any) -> Table:
    table = Table([[_p(text, _BANNER)]], colWidths=[None])
    table.setStyle(TableStyle([_CELL_FONT,
        ("BACKGROUND", (0, 0), (-1, -1), color),
        ("TOPPADDING", (0, 0), (-1, -1), 5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 6),
    ]))
    return table


def _when(timestamp: str) -> str:
    moment = datetime.fromisoformat(timestamp)
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname() or ''}".strip()


def _bytes(count: int) -> str:
    return decimal_size(count)


def _or_dash(value: object) -> str:
    return "\u2014" if value is None or value == "" else str(value)


def _person_rows(person: Person | None) -> list[tuple[str, object]]:
    return [
        ("Name", _or_dash(person.name if person else None)),
        ("Title", _or_dash(person.title if person else None)),
        ("Organisation", _or_dash(person.organisation if person else None)),
        ("Location", _or_dash(person.location if person else None)),
        ("Phone", _or_dash(person.phone if person else None)),
    ]


def _applied_methods(record: SanitisationRecord) -> str:
    applied = [step for step in record.method_chain if step.outcome == "applied"]
    if not applied:
        return "none applied"
    return "; ".join(f"{step.technique} ({step.method})" for step in applied)


def _verification_line(record: SanitisationRecord) -> str:
    verification = record.verification
    if verification.mode == "none":
        return f"none ({verification.result.replace('_', ' ')})"
    return f"{verification.mode}, {verification.coverage * 100:.1f}% read back: {verification.result}"


NO_FIRMWARE = "not reported by the drive"
VALIDATION_PENDING = ("Validation (NIST SP 800-88 Rev. 2) is recorded in a separate signed validation statement "
                      "(wipe-agent validate); it was pending when this certificate was issued.")


def vendor_text(record: SanitisationRecord) -> str:
    """The drive's make as page 1 prints it: schema 2 says so when the drive reports none."""
    if record.schema == 1:
        return record.media.vendor
    return record.media.vendor or "not reported by the drive"


def firmware_text(record: SanitisationRecord) -> str:
    """The drive's firmware revision as page 1 prints it (schema 2)."""
    return record.media.firmware or NO_FIRMWARE


def host_text(record: SanitisationRecord) -> str:
    """The host computer as page 1 prints it: schema 1 shows the host's asset tag only."""
    if record.schema == 1:
        return _or_dash(record.media.host_device)
    host = record.host
    if host is None:
        return "none recorded (the drive was not received in a host at intake)"
    name = " ".join(part for part in (host.make, host.model) if part) or "make and model not recorded"
    serial = f"serial {host.serial}" if host.serial else "serial not recorded"
    asset = f"asset tag {host.asset_tag}" if host.asset_tag else "no asset tag"
    return f"{name}, {serial}, {asset}"


def _counter(label: str, value: int | None, suffix: str = "") -> str | None:
    return None if value is None else f"{label} {value:,}{suffix}"


def health_text(record: SanitisationRecord) -> str:
    """The SMART summary read before the wipe, in one sentence (schema 2)."""
    health: Health | None = record.health
    if health is None:
        return "no SMART reading was filed before the wipe"
    when = f"read {_when(health.read_at)} ({health.source})"
    if health.status == "not_applicable":
        return f"not applicable to this media{': ' + health.note if health.note else ''}; {when}"
    if health.status == "unavailable":
        return f"unavailable{': ' + health.note if health.note else ''}; {when}"
    overall = {True: "SMART overall assessment passed", False: "SMART overall assessment FAILED",
               None: "SMART overall assessment not reported"}[health.smart_passed]
    counters = [part for part in (
        _counter("reallocated sectors", health.reallocated_sectors),
        _counter("pending sectors", health.pending_sectors),
        _counter("offline uncorrectable", health.offline_uncorrectable),
        _counter("media errors", health.media_errors),
        _counter("critical warning", health.critical_warning),
        _counter("endurance used", health.percentage_used, "%"),
    ) if part]
    return f"{overall}{'; ' + ', '.join(counters) if counters else ''}; {when}"


def _device_rows(record: SanitisationRecord) -> list[tuple[str, object]]:
    """Page 1's device rows; a schema 2 record adds the firmware, the whole host and the SMART summary."""
    media = record.media
    current = record.schema >= 2
    rows: list[tuple[str, object]] = [
        ("Make / vendor", vendor_text(record)),
        ("Model", media.model),
        ("Serial number", _p(media.serial, _MONO)),
    ]
    if current:
        rows.append(("Firmware", firmware_text(record)))
    rows += [
        ("Media type / interface", f"{media.media_type} / {media.interface}"),
        ("Capacity", size_with_bytes(media.capacity_bytes)),
        ("Asset tag (property no.)", _or_dash(media.asset_tag)),
        ("Host device (source)", host_text(record)),
        ("Classification", f"before: {record.classification_before}; after: {record.classification_after}"),
        ("Data backed up", f"{record.data_backed_up}"
         + (f" (location: {record.backup_location})" if record.backup_location else "")),
    ]
    if current:
        rows.append(("SMART health (before the wipe)", health_text(record)))
    return rows


def _validation_block(record: SanitisationRecord) -> list[Flowable]:
    """Who validated the evidence, or plainly that validation is a separate, later signed statement."""
    if record.validator is not None:
        return [_fields_table([*_person_rows(record.validator), ("Signature", ""), ("Date", "")], 22 * mm)]
    return [_p(VALIDATION_PENDING)]


def _first_page(record: SanitisationRecord, record_sha256: str) -> list[Flowable]:
    certificate = record.outcome == "sanitised"
    title = "Certificate of Sanitisation" if certificate else "Failure Report \u2014 media NOT sanitised"
    heading = [
        _p(title, _TITLE),
        _p("NIST SP 800-88 media sanitisation record, digitally signed (PAdES)", _SUBTITLE),
        Spacer(0, 3 * mm),
        _fields_table([
            ("Certificate id", _p(record.certificate_id, _MONO)),
            ("Issued", _when(record.issued_at)),
            ("Station", record.station_id),
            ("Job", _p(record.job_id, _MONO)),
        ], label_width=28 * mm),
    ]
    qr = _QrCode(qr_payload(record.certificate_id, record_sha256), 34 * mm)
    top = Table([[heading, qr]], colWidths=[None, 36 * mm])
    top.setStyle(_LAYOUT)
    story: list[Flowable] = [top, Spacer(0, 3 * mm)]
    if certificate:
        story.append(_banner(f"SANITISED \u2014 {record.level}", _GOOD))
    else:
        story.append(_banner(f"NOT SANITISED \u2014 route: {record.route.upper()}", _BAD))
        story += [Spacer(0, 2 * mm), _fields_table([
            ("Reason", _p(record.failure_reason, _style("reason", 10, font="WA-Sans-Bold", color=_BAD))),
            ("Required action", "This device must not be reused. Route it to "
             f"{record.route}: {record.destination}."),
        ])]
    story += [Spacer(0, 3 * mm), _p("Device", _HEADING), _fields_table(_device_rows(record))]
    story += [Spacer(0, 3 * mm), _p("Sanitisation", _HEADING), _fields_table([
        ("Level", _or_dash(record.level)),
        ("Method", _applied_methods(record)),
        ("Tool", f"{record.tool.name} {record.tool.version}"),
        ("Profile", record.profile),
        ("Verification", _verification_line(record)),
        ("Completed", _when(record.evidence.timings.finished_at)),
        ("Destination", f"{record.destination} (route: {record.route})"),
        ("Record SHA-256", _p(record_sha256, _MONO)),
    ])]
    operator = Table(
        [[[_p("Performed by (operator)", _HEADING), _fields_table(_person_rows(record.operator), 22 * mm)],
          [_p("Validation", _HEADING), *_validation_block(record)]]],
        colWidths=["50%", "50%"],
    )
    operator.setStyle(_LAYOUT)
    story += [Spacer(0, 3 * mm), operator]
    story.append(Spacer(0, 3 * mm))
    story.append(_p(
        "This document is signed by the station's key, certified by the organisation CA. Check it with "
        "'wipe-agent verify FILE --trust BUNDLE' or any PAdES validator; the machine-readable record is "
        "attached as sanitisation-record.json and its SHA-256 is shown above and in the QR code.", _LABEL))
    return story


_EVIDENCE_LABELS = {
    "passes": "Overwrite passes over every sector",
    "expectation.kind": "What every sector must read back as",
    "expectation.pattern": "Pattern written",
    "expectation.seed": "Seed of the random stream",
    "expectation.cipher": "Cipher of the random stream",
    "o_direct": "Writes went straight to the drive, bypassing the kernel's page cache (O_DIRECT)",
    "level_reason": "Why this sanitisation level is claimed",
    "command": "Firmware command sent to the drive",
    "polls": "Times the drive was asked for progress until the command finished",
    "canary_bytes_written": "Canary bytes written before the firmware command",
    "reads_zero_after_deallocate": "Deallocated blocks read back as zeros",
    "deallocation": "What deallocated blocks read back as",
    "sanitize.crypto": "NVMe Sanitize crypto erase supported",
    "sanitize.block": "NVMe Sanitize block erase supported",
    "sanitize.overwrite": "NVMe Sanitize overwrite supported",
    "format.ses": "NVMe Format secure erase setting (SES)",
    "nvme.ndi": "NVMe: deallocation after sanitize can be inhibited (NDI)",
    "nvme.nodmmas": "NVMe: media contents after sanitize (NODMMAS)",
    "ata.security.locked": "ATA security locked",
    "ata.sanitize.overwrite": "ATA Sanitize overwrite supported",
}
"""Plain wording for the evidence keys the methods record (agent/methods/*): page 2 is read by a person."""
_PLAIN_VALUES = {"True": "yes", "False": "no", "true": "yes", "false": "no", "None": "not reported"}


def plain_label(key: str) -> str:
    """A person's label for an evidence key: the known wording, else the key's words ("final_state.sstat"
    becomes "Final state: sstat") so no row shows a bare internal key."""
    if key in _EVIDENCE_LABELS:
        return _EVIDENCE_LABELS[key]
    words = ": ".join(part.replace("_", " ").strip() for part in key.split(".") if part.strip()) or key
    return words[:1].upper() + words[1:]


def plain_rows(values: dict[str, str]) -> list[tuple[str, str]]:
    """Evidence as labelled rows in plain language (values true/false become yes/no), sorted by label."""
    return sorted((plain_label(key), _PLAIN_VALUES.get(value, value)) for key, value in values.items())


def evidence_sections(record: SanitisationRecord) -> list[tuple[str, list[tuple[str, str]]]]:
    """Page 2's verification, hidden-area and canary sections: (heading, [(label, value)]) in printed
    order. Rendered, and read back by the verifier (each value between its label and the next)."""
    verification = record.verification
    hidden = record.evidence.hidden_area
    canary = record.evidence.canary
    # a device the station cannot send commands to has no LBA figures: one plain row instead of three dashes
    lba_rows: list[tuple[str, str]] = [] if (hidden.max_lba_before, hidden.max_lba_after,
                                             hidden.native_max_lba) == (None, None, None) else [
        ("Max LBA before", _or_dash(hidden.max_lba_before)),
        ("Max LBA after", _or_dash(hidden.max_lba_after)),
        ("Native max LBA", _or_dash(hidden.native_max_lba)),
    ]
    return [
        ("Verification (NIST SP 800-88 \u00a74.7)", [
            ("Mode", verification.mode),
            ("Result", verification.result),
            ("Seed", _or_dash(verification.seed)),
            ("Subsections / samples", f"{verification.subsections:,} / {verification.samples:,}"),
            ("Coverage", f"{verification.coverage * 100:.2f}% ({_bytes(verification.bytes_read)} read)"),
            ("Details", _or_dash(verification.details)),
        ]),
        ("Hidden areas (HPA / DCO / AMAC)", [*lba_rows, ("Actions", "; ".join(hidden.actions) or "none needed")]),
        ("Canary blocks", [("Result", "not used")] if canary is None else [
            ("Result", canary.result),
            ("Written / found after", f"{canary.blocks_written} / {canary.blocks_found_after}"),
            ("Details", _or_dash(canary.details)),
        ]),
    ]


def _evidence_pages(record: SanitisationRecord, record_sha256: str) -> list[Flowable]:
    evidence = record.evidence
    timings = evidence.timings
    story: list[Flowable] = [PageBreak(), _p("Evidence", _TITLE), Spacer(0, 2 * mm)]
    story += [_p("Methods, in the order the profile considered them", _HEADING), _grid(
        ["#", "Method", "Technique", "Level", "Outcome", "Policy reason / details"],
        [[index + 1, step.method, step.technique, _or_dash(step.level), step.outcome,
          step.reason + (f" \u2014 {step.details}" if step.details else "")]
         for index, step in enumerate(record.method_chain)] or [["", "none", "", "", "", ""]],
        [7 * mm, 36 * mm, 24 * mm, 15 * mm, 18 * mm, None],
    ), Spacer(0, 3 * mm)]
    sections = evidence_sections(record)
    for heading, rows in sections:
        shown = [(label, _p(value, _MONO) if label == "Seed" else value) for label, value in rows]
        story += [_p(heading, _HEADING), _fields_table(shown), Spacer(0, 3 * mm)]
    throughput = f"{_bytes(round(timings.throughput_bytes_per_second))}/s"
    story += [_p("Timings", _HEADING), _fields_table([
        ("Started", _when(timings.started_at)),
        ("Finished", _when(timings.finished_at)),
        ("Duration", f"{timings.duration_seconds:,.1f} s"),
        ("Processed", f"{_bytes(timings.bytes_processed)} at {throughput}"),
    ]), Spacer(0, 3 * mm)]
    story += [_p("What the drive supports (as the policy saw it)", _HEADING), _grid(
        ["Capability", "Value"],
        plain_rows(evidence.capabilities) or [("None recorded", "")],
        [70 * mm, None],
    ), Spacer(0, 3 * mm)]
    if evidence.observations:
        story += [_p("What the station observed", _HEADING),
                  _grid(["Observation", "Value"], plain_rows(evidence.observations), [70 * mm, None]),
                  Spacer(0, 3 * mm)]
    story += [_p("Notes", _HEADING), _p(_or_dash(record.notes)), Spacer(0, 3 * mm)]
    story += [_p("Record identity", _HEADING), _fields_table([
        ("Attachment", f"sanitisation-record.json (canonical JSON, UTF-8, record schema {record.schema})"),
        ("SHA-256", _p(record_sha256, _MONO)),
    ])]
    return story


def _decorate(record: SanitisationRecord, total_pages: int | None) -> Any:
    """The per-page callback: footer ("page x of y" once the total is known) on every page, and the
    demo watermark when needed."""
    kind = "Certificate" if record.outcome == "sanitised" else "Failure report"

    def on_page(canvas: Canvas, document: Any) -> None:
        canvas.saveState()
        width, height = A4
        canvas.setFont("WA-Sans", 7)
        canvas.setFillColor(_MUTED)
        footer = f"{kind} {record.certificate_id} \u00b7 station {record.station_id}"
        canvas.drawString(15 * mm, 9 * mm, footer)
        of = f" of {total_pages}" if total_pages else ""
        canvas.drawRightString(width - 15 * mm, 9 * mm, f"page {document.page}{of}")
        if record.demo:
            canvas.setFillColor(_DEMO)
            canvas.setFont("WA-Sans-Bold", 11)
            canvas.drawCentredString(width / 2, height - 9 * mm, DEMO_WATERMARK)
            canvas.setFillAlpha(0.22)
            canvas.translate(width / 2, height / 2)
            canvas.rotate(54)
            canvas.setFont("WA-Sans-Bold", 62)
            canvas.drawCentredString(0, 10 * mm, "DEMONSTRATION")
            canvas.setFont("WA-Sans-Bold", 24)
            canvas.drawCentredString(0, -8 * mm, "not a record of real media")
        canvas.restoreState()

    return on_page


def render_pdf(record: SanitisationRecord, *, fonts_dir: Path | None = None) -> bytes:
    """Render ``record`` (certificate or failure report, by ``record.outcome``) as unsigned PDF bytes."""
    register_fonts(fonts_dir)
    record_sha256 = record.sha256()
    # laid out twice: the first pass counts the pages so every footer can say "page x of y"
    pages = _build(record, record_sha256, io.BytesIO(), None)
    output = io.BytesIO()
    _build(record, record_sha256, output, pages)
    return output.getvalue()


def _build(record: SanitisationRecord, record_sha256: str, output: io.BytesIO, total_pages: int | None) -> int:
    """Lay the record out into ``output``; return the number of pages."""
    kind = "Certificate of sanitisation" if record.outcome == "sanitised" else "Failure report"
    document = SimpleDocTemplate(
        output, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=13 * mm, bottomMargin=15 * mm,
        title=f"{kind} {record.certificate_id}", author=f"wipe-agent station {record.station_id}",
        subject=qr_payload(record.certificate_id, record_sha256), creator=f"{record.tool.name} certs",
        lang="en-GB",
        # reportlab's default initial font is Helvetica: referenced but never embedded.
        initialFontName="WA-Sans",
    )
    on_page = _decorate(record, total_pages)
    document.build(_first_page(record, record_sha256) + _evidence_pages(record, record_sha256),
                   onFirstPage=on_page, onLaterPages=on_page)
    return int(document.page)
