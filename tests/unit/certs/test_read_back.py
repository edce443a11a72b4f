"""The station reads back every document it signs with the partners' verifier before issuing it.

A signing library's success is not proof that a partner can verify the file: a value the font cannot
draw makes the page text differ from the signed record, and such a certificate must never be handed
out as if it were good.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from certs.errors import SigningError
from certs.issue import issue_certificate
from certs.record import Person
from certs.verify import DocumentKind, read_back
from tests.unit.certs.certs_test_kit import PkiWorld, record_for


def test_a_genuine_certificate_reads_back_valid(world: PkiWorld, tmp_path: Path) -> None:
    path = issue_certificate(record_for(world.station), world.station, tmp_path / "good.pdf")
    report = read_back(path, world.station, DocumentKind.CERTIFICATE)
    assert report.valid and report.code == "valid", report
    assert path.exists()


def test_a_certificate_whose_page_cannot_show_the_record_is_not_issued(world: PkiWorld, tmp_path: Path) -> None:
    record = record_for(world.station)
    # DejaVu has no CJK glyphs: the page shows something else than the signed operator name
    record = dataclasses.replace(record, operator=Person(name="\u5c71\u7530\u592a\u90ce", title="Operator",
                                                         organisation="Example Police IT"))
    path = issue_certificate(record, world.station, tmp_path / "unreadable-name.pdf")
    with pytest.raises(SigningError, match="visible_text_mismatch") as raised:
        read_back(path, world.station, DocumentKind.CERTIFICATE)
    assert "not issued" in raised.value.message
    assert not path.exists() and path.with_name(path.name + ".refused").exists()


def test_a_document_of_another_kind_is_not_issued_as_this_one(world: PkiWorld, tmp_path: Path) -> None:
    path = issue_certificate(record_for(world.station), world.station, tmp_path / "kind.pdf")
    with pytest.raises(SigningError, match="wrong_kind"):
        read_back(path, world.station, DocumentKind.FAILURE_REPORT)
