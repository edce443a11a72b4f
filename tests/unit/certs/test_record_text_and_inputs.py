"""Round 2 of issue 10: control/bidi characters in records (C8) and hostile inputs to verify (I2/I3).

C8: a serial "S1\\r\\nS/N: FAKE" adds a fake line to the page, U+202E reverses an asset tag for
bidi-aware readers, a zero-width space makes two tags look alike: the record refuses them in every
string, the station cannot build such a record, and a signed document holding one is ``bad_record``.
I2/I3: a FIFO or ``/dev/zero`` given to verify is ``unreadable`` (file) or bad input (bundle),
never a hang or an unbounded read.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from certs.errors import RecordError, TrustBundleError
from certs.files import NotReadable, read_regular_file
from certs.record import SanitisationRecord, check_document_strings, text_problem
from certs.samples import sample_record
from certs.verify import expand_paths, load_trust_bundle, verify_file
from tests.unit.certs.certs_test_kit import PkiWorld

HOSTILE = {
    "carriage return and line feed": "S1\r\nS/N: FAKE",
    "NUL": "A\x00B",
    "escape sequence": "MPS-LT-0042\x1b[1A\x1b[2K",
    "right-to-left override": "LAPTOP-\u202e2400",
    "zero-width space": "Disk\u200b Model",
    "tab": "A\tB",
    "DEL": "A\x7fB",
    "C1 control": "A\x85B",
    "line separator": "A\u2028B",
    "byte order mark": "\ufeffLAPTOP",
    "not NFC (combining accent)": "Cafe\u0301",
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_text_rule_names_the_problem(case: str) -> None:
    assert text_problem(HOSTILE[case]) is not None
    assert text_problem("MPS-LT-0042 Café ÄÖÜ 東京") is None


@pytest.mark.parametrize("field", ["serial", "asset_tag", "model"])
@pytest.mark.parametrize("case", list(HOSTILE))
def test_record_refuses_hostile_text_when_built(field: str, case: str) -> None:
    record = sample_record(demo=False)
    with pytest.raises(RecordError, match=f"^{field}: "):
        dataclasses.replace(record, media=dataclasses.replace(record.media, **{field: HOSTILE[case]}))


@pytest.mark.parametrize("case", ["carriage return and line feed", "right-to-left override", "NUL"])
def test_strict_parser_refuses_hostile_text(case: str) -> None:
    text = sample_record(demo=False).to_canonical_json().decode()
    serial = sample_record(demo=False).media.serial
    forged = text.replace(f'"serial":"{serial}"', '"serial":' + json.dumps(HOSTILE[case]))
    assert forged != text
    with pytest.raises(RecordError, match="serial: contains the control or format character"):
        SanitisationRecord.from_json(forged.encode())


def test_document_strings_checked_keys_and_values() -> None:
    with pytest.raises(RecordError, match=r"manifest\.devices\[0\]\.asset: contains"):
        check_document_strings({"devices": [{"asset": "L\u202e1"}]}, "manifest")
    with pytest.raises(RecordError, match="manifest key: contains"):
        check_document_strings({"a\nb": 1}, "manifest")
    check_document_strings({"devices": [{"asset": "LAPTOP-0042", "count": 2}]}, "manifest")


def test_a_signed_manifest_with_a_bidi_asset_is_refused_at_issue(world: PkiWorld, tmp_path: Path) -> None:
    from certs.destruction import issue_destruction_report

    record = {"schema": 1, "kind": "destruction_report", "document_id": "d-1", "station_id": "station-01",
              "created_at": "2026-01-01T00:00:00+00:00", "demo": False, "asset": "LAPTOP-\u202e2400",
              "drives": [{"serial": "S1"}], "method": "shred", "witness": "W", "operator": "O",
              "reasons": ["failed"], "summary": "shredded"}
    with pytest.raises(RecordError, match=r"destruction record\.asset: contains the control or format character "
                                          "U\\+202E"):
        issue_destruction_report(record, world.station, tmp_path / "d.pdf")
    assert not (tmp_path / "d.pdf").exists()


# --- I2/I3: what verify reads -------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.pdf"
    os.mkfifo(path)
    return path


def test_a_fifo_is_not_read(fifo: Path) -> None:
    with pytest.raises(NotReadable, match="is a FIFO, not a regular file"):
        read_regular_file(fifo, 1024)


def test_a_character_device_is_not_read() -> None:
    with pytest.raises(NotReadable, match="is a character device, not a regular file"):
        read_regular_file(Path("/dev/zero"), 1024)


def test_a_file_over_the_limit_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big.pdf"
    path.write_bytes(b"%PDF-" + b"0" * 2000)
    with pytest.raises(NotReadable, match="larger than"):
        read_regular_file(path, 1024)
    assert read_regular_file(path, 4096) == path.read_bytes()


def test_verify_reports_fifo_and_device_unreadable(world: PkiWorld, fifo: Path) -> None:
    for path in (fifo, Path("/dev/zero")):
        report = verify_file(path, world.bundle)
        assert (report.valid, report.code) == (False, "unreadable"), report.reason
        assert "not a regular file" in report.reason


def test_a_fifo_or_device_as_bundle_is_bad_input(fifo: Path) -> None:
    for path in (fifo, Path("/dev/zero")):
        with pytest.raises(TrustBundleError, match="not a regular file"):
            load_trust_bundle(path)


def test_directory_expansion_names_non_regular_entries(tmp_path: Path, fifo: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF-1.7")
    assert expand_paths([tmp_path]) == [tmp_path / "a.pdf", fifo]


def test_python_m_certs_verify_of_fifo_and_zero(world: PkiWorld, fifo: Path) -> None:
    """The partners' command: one line per file or a one-line bad-input error, never a hang."""
    command = [sys.executable, "-m", "certs", "verify"]
    result = subprocess.run([*command, str(fifo), "--trust", str(world.bundle)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 1 and "[unreadable]" in result.stdout and "is a FIFO" in result.stdout, result
    result = subprocess.run([*command, str(world.bundle), "--trust", "/dev/zero"], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result
    assert result.stderr.strip().count("\n") == 0 and "character device" in result.stderr, result
