"""PDF rendering: A4, fields a person checks, embedded fonts, demo watermark, failure report, escaping."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from certs import render
from certs.errors import FontsMissing
from certs.render import DEMO_WATERMARK, qr_payload, render_pdf
from certs.samples import sample_record
from tests.unit.certs.certs_test_kit import pdf_text, run_tool


@pytest.fixture(scope="module")
def certificate_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("render") / "certificate.pdf"
    path.write_bytes(render_pdf(sample_record(demo=False)))
    return path


def test_page_one_shows_what_a_person_checks(certificate_pdf: Path) -> None:
    record = sample_record(demo=False)
    text = " ".join(pdf_text(certificate_pdf, page=1).split())
    for expected in [
        "Certificate of Sanitisation", "SANITISED — Purge", record.certificate_id, "station-01",
        "Samsung", "MZVL2512HCJQ", "S64KNX0R123456", "MPS-LT-004211", "crypto erase (nvme.sanitize.crypto)",
        "wipe-agent 0.1.0", "sampling, 10.0% read back: passed", "2026-11-25 09:04 UTC",
        "Alex Morgan", "Validation", "Sam Patel", "Signature", "OFFICIAL-SENSITIVE", "UNCLASSIFIED",
        "GLA reuse scheme", record.sha256(),
    ]:
        assert expected in text, expected
    assert "DEMONSTRATION" not in text


def test_evidence_pages_hold_the_evidence(certificate_pdf: Path) -> None:
    text = " ".join(pdf_text(certificate_pdf, page=2).split())
    for expected in ["Evidence", "Methods, in the order the profile considered them",
                     "not needed: an earlier step purged the media",
                     "9f2c41d07ab3e655", "1,000 / 2,002", "Max LBA before 1000215215", "64 / 0",
                     "NVMe Sanitize crypto erase supported yes", "(NODMMAS)",
                     "Record identity", "page 2 of 2"]:
        assert expected in text, expected
    # plain language: no internal evidence key is printed as a label
    for key in ("nvme.nodmmas", "format.ses", "nvme.ndi"):
        assert key not in text, key


def test_page_two_never_prints_an_internal_key(tmp_path: Path) -> None:
    """Keys the overwrite methods record (o_direct, level_reason, expectation.kind) read as sentences."""
    record = sample_record(demo=False)
    evidence = dataclasses.replace(record.evidence, observations={
        "o_direct": "True", "level_reason": "host overwrite: Clear for HDDs", "expectation.kind": "zero",
        "passes": "1", "final_state.sstat_status": "1"})
    path = tmp_path / "plain.pdf"
    path.write_bytes(render_pdf(dataclasses.replace(record, evidence=evidence)))
    text = _flow_text(path)
    assert "bypassing the kernel's page cache (O_DIRECT) yes" in text
    assert "Why this sanitisation level is claimed host overwrite: Clear for HDDs" in text
    assert "What every sector must read back as zero" in text
    assert "Final state: sstat status 1" in text
    for internal in ("o_direct", "level_reason", "expectation.kind", "True", "final_state"):
        assert internal not in text, internal


def test_page_one_names_host_firmware_health_and_the_page_total(certificate_pdf: Path) -> None:
    text = _flow_text(certificate_pdf, page=1)
    for expected in ["Firmware GXA7801Q", "Dell Latitude 5440, serial 7GH2XK3, asset tag MPS-LT-004211-HOST",
                     "SMART overall assessment passed", "endurance used 3%", "512.1 GB (512,110,190,592 bytes)",
                     "page 1 of 2"]:
        assert expected in text, expected


def test_validation_block_says_plainly_when_validation_is_pending(tmp_path: Path) -> None:
    path = tmp_path / "pending.pdf"
    path.write_bytes(render_pdf(sample_record(demo=False, validator=None)))
    assert " ".join(render.VALIDATION_PENDING.split()) in _flow_text(path, page=1)


def _flow_text(path: Path, page: int | None = None) -> str:
    """pdftotext in reading order (not -layout): a wrapped cell reads as one sentence, columns apart."""
    pages = ["-f", str(page), "-l", str(page)] if page else []
    return " ".join(run_tool("pdftotext", *pages, path, "-").stdout.split())


def test_a4_with_every_font_embedded(certificate_pdf: Path) -> None:
    info = run_tool("pdfinfo", certificate_pdf).stdout
    assert re.search(r"Page size:\s+595\.\d+ x 841\.\d+ pts \(A4\)", info), info
    fonts = run_tool("pdffonts", certificate_pdf).stdout.splitlines()[2:]
    assert fonts, "no fonts listed"
    for line in fonts:
        assert "DejaVu" in line and re.search(r"\byes\s+yes\s+yes\b", line), line


def _reddish_pixels(path: Path, page: int) -> int:
    """Rasterise one page (PPM via pdftoppm) and count clearly red pixels: the watermark is red."""
    prefix = path.with_suffix("")
    run_tool("pdftoppm", "-r", "20", "-f", str(page), "-l", str(page), "-singlefile", path, prefix)
    data = prefix.with_suffix(".ppm").read_bytes()
    # Binary PPM: "P6\n<width> <height>\n255\n" then RGB triples.
    header = data.split(b"\n", 3)
    pixels = header[3]
    return sum(1 for index in range(0, len(pixels) - 2, 3)
               if pixels[index] > pixels[index + 1] + 25 and pixels[index] > pixels[index + 2] + 25)


def test_demo_watermark_on_every_page(tmp_path: Path) -> None:
    demo, real = tmp_path / "demo.pdf", tmp_path / "real.pdf"
    demo.write_bytes(render_pdf(sample_record(demo=True)))
    real.write_bytes(render_pdf(sample_record(demo=False)))
    pages = int(re.search(r"Pages:\s+(\d+)", run_tool("pdfinfo", demo).stdout).group(1))  # type: ignore[union-attr]
    assert pages >= 2
    for page in range(1, pages + 1):
        assert DEMO_WATERMARK in " ".join(pdf_text(demo, page=page).split())
        # pdftotext drops rotated text, so look at the pixels: the diagonal watermark covers the page.
        assert _reddish_pixels(demo, page) > 20 * _reddish_pixels(real, page) + 500


def test_failure_report_names_reason_and_route(tmp_path: Path) -> None:
    path = tmp_path / "failure.pdf"
    path.write_bytes(render_pdf(sample_record(failed=True, demo=False)))
    text = " ".join(pdf_text(path, page=1).split())
    assert "Failure Report — media NOT sanitised" in text
    assert "NOT SANITISED — route: DESTROY" in text
    assert "ATA security locked with an unknown password" in text
    assert "must not be reused" in text
    assert "Certificate of Sanitisation" not in text


def test_record_text_is_never_markup(tmp_path: Path) -> None:
    record = sample_record(notes="<b>bold</b> & <font size=40>big</font>")
    path = tmp_path / "escape.pdf"
    path.write_bytes(render_pdf(record))
    assert "<b>bold</b> & <font size=40>big</font>" in " ".join(pdf_text(path).split())


def test_qr_payload_carries_id_and_hash() -> None:
    record = sample_record()
    payload = qr_payload(record.certificate_id, record.sha256())
    assert payload == f"WIPE-AGENT-CERT;v=1;id={record.certificate_id};sha256={record.sha256()}"


def test_missing_fonts_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FontsMissing, match="fonts-dejavu-core"):
        render.register_fonts(tmp_path)
