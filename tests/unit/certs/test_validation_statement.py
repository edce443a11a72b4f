"""Validation statements: signed by an officer or by the station on instruction, checked like any document.

Each adversarial case is refused by its own code and names what is wrong.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from certs import pki
from certs.documents import sign_document
from certs.errors import RecordError
from certs.issue import issue_certificate, write_atomic
from certs.oids import STATION_SIGNING_EKU, VALIDATOR_SIGNING_EKU
from certs.pki import StationSigner
from certs.validation import ValidatedCertificate, ValidationStatement, issue_statement, summary_of
from certs.validation_render import render_statement
from certs.verify import DocumentKind, load_trust_bundle, verify_with_bundle
from tests.unit.certs.certs_test_kit import PkiWorld, pdf_text, record_for
from tests.unit.certs.verify_kit import mint, signer_from

HASH = hashlib.sha256(b"a certificate's record").hexdigest()


@pytest.fixture(scope="module")
def officer(world: PkiWorld, tmp_path_factory: pytest.TempPathFactory) -> StationSigner:
    """Alex Officer's validator signer (chain and CRL from the good station)."""
    issued = pki.issue_person(world.ca_dir, "Alex Officer", "validator", tmp_path_factory.mktemp("people"))
    return pki.load_person_signer(issued.key_path, issued.certificate_path, world.station)


def statement(station_id: str = "station-01", **overrides: object) -> ValidationStatement:
    """A one-certificate accepting statement (``overrides`` replace fields)."""
    values: dict[str, object] = {
        "schema_version": 1, "kind": "validation", "document_id": "VS-TEST-0001", "station_id": station_id,
        "created_at": "2026-12-02T12:00:00+00:00", "decision": "accept", "by": "Alex Officer",
        "role": "Validation officer", "reason": "", "signer_kind": "officer", "demo": False,
        "certificates": [{"certificate_id": "0b8c2d1e-1111-4222-8333-444455556666", "record_sha256": HASH,
                          "job_id": "job-1", "drive": "Samsung SSD 870 S/N S5Y1NX0R"}],
        "summary": summary_of("accept", 1, "Alex Officer", "Validation officer"),
    }
    values.update(overrides)
    if "summary" not in overrides:  # the summary states the decision, count, person and role it is signed with
        values["summary"] = summary_of(str(values["decision"]), len(values["certificates"]),  # type: ignore[arg-type]
                                       str(values["by"]), str(values["role"]))
    return ValidationStatement.from_json(json.dumps(values).encode())


def _verify(world: PkiWorld, path: Path):  # type: ignore[no-untyped-def]
    return verify_with_bundle(path, load_trust_bundle(world.bundle))


def test_an_officer_signed_statement_verifies_and_says_who_signed(world: PkiWorld, officer: StationSigner,
                                                                     tmp_path: Path) -> None:
    path = tmp_path / "statement.pdf"
    issue_statement(statement(), officer, path)
    report = _verify(world, path)
    assert report.valid, report.reason
    assert report.kind is DocumentKind.VALIDATION and report.certificate_id == "VS-TEST-0001"
    assert "signed by officer" in report.summary
    text = " ".join(pdf_text(path).split())
    assert "Signed by the validation officer, with their own certificate from the organisation CA" in text
    assert "ACCEPTED" in text and HASH[:20] in text.replace(" ", "")


def test_a_station_signed_statement_on_instruction_verifies(world: PkiWorld, tmp_path: Path) -> None:
    path = tmp_path / "statement.pdf"
    issue_statement(statement(signer_kind="station-on-instruction", decision="reject", reason="dirty sector"),
                    world.station, path)
    report = _verify(world, path)
    assert report.valid, report.reason
    assert "the station, on the validation officer's recorded instruction" in " ".join(pdf_text(path).split())


def test_a_station_certificate_claiming_to_be_an_officer_is_refused(world: PkiWorld, tmp_path: Path) -> None:
    path = tmp_path / "statement.pdf"
    issue_statement(statement(signer_kind="officer"), world.station, path)
    report = _verify(world, path)
    assert report.code == "signer_kind_mismatch" and "station certificate 'station-01' did" in report.reason


def test_a_validator_claiming_the_station_signed_is_refused(world: PkiWorld, officer: StationSigner,
                                                             tmp_path: Path) -> None:
    path = tmp_path / "statement.pdf"
    issue_statement(statement(signer_kind="station-on-instruction"), officer, path)
    report = _verify(world, path)
    assert report.code == "signer_kind_mismatch" and "validator certificate 'Alex Officer'" in report.reason


def test_an_officer_signing_for_someone_else_is_refused(world: PkiWorld, officer: StationSigner,
                                                        tmp_path: Path) -> None:
    path = tmp_path / "statement.pdf"
    issue_statement(statement(by="Sam Other"), officer, path)
    report = _verify(world, path)
    assert report.code == "signer_kind_mismatch" and "'Sam Other'" in report.reason


def test_a_validator_certificate_cannot_sign_a_sanitisation_certificate(world: PkiWorld, officer: StationSigner,
                                                                         tmp_path: Path) -> None:
    # The record must name the signer's "station" for issue_certificate to sign at all.
    path = issue_certificate(record_for(world.station),
                             StationSigner("station-01", officer.certificate, officer.chain, officer.private_key,
                                           officer.crl), tmp_path / "cert.pdf")
    report = _verify(world, path)
    assert report.code == "signer_profile" and "validator certificate" in report.reason


def test_a_certificate_with_both_ekus_is_refused(world: PkiWorld, tmp_path: Path) -> None:
    certificate, key = mint(world.ca_dir, extended=(STATION_SIGNING_EKU, VALIDATOR_SIGNING_EKU))
    path = tmp_path / "statement.pdf"
    issue_statement(statement(signer_kind="station-on-instruction"), signer_from(certificate, key, world.ca_dir),
                    path)
    report = _verify(world, path)
    assert report.code == "signer_profile" and "both a station and a validator" in report.reason


def test_a_validator_eku_with_the_station_unit_is_refused(world: PkiWorld, tmp_path: Path) -> None:
    certificate, key = mint(world.ca_dir, common_name="Alex Officer", extended=(VALIDATOR_SIGNING_EKU,))
    path = tmp_path / "statement.pdf"
    issue_statement(statement(), signer_from(certificate, key, world.ca_dir), path)
    report = _verify(world, path)
    assert report.code == "signer_profile" and "wipe-agent validator" in report.reason


def _sign_payload(world: PkiWorld, shown: ValidationStatement, payload: bytes, path: Path) -> Path:
    """Sign ``payload`` as a statement's JSON under the rendering of ``shown`` (a lying or buggy signer)."""
    write_atomic(path, sign_document(
        render_statement(shown), kind="validation", document_id=shown.document_id, payload=payload,
        sha256=hashlib.sha256(payload).hexdigest(), issued_at=shown.created_at, signer=world.station,
        reason="test"))
    return path


def test_unknown_keys_in_the_statement_are_refused_by_name(world: PkiWorld, tmp_path: Path) -> None:
    shown = statement(signer_kind="station-on-instruction")
    data = {**shown.to_dict(), "override": "accept everything"}
    payload = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    report = _verify(world, _sign_payload(world, shown, payload, tmp_path / "s.pdf"))
    assert report.code == "bad_record" and "unknown key(s) override" in report.reason


def test_a_page_showing_another_record_hash_is_refused(world: PkiWorld, tmp_path: Path) -> None:
    signed = statement(signer_kind="station-on-instruction")
    other = hashlib.sha256(b"another record").hexdigest()
    certificates = [{**signed.to_dict()["certificates"][0], "record_sha256": other}]
    shown = statement(signer_kind="station-on-instruction", certificates=certificates)
    report = _verify(world, _sign_payload(world, shown, signed.to_canonical_json(), tmp_path / "s.pdf"))
    assert report.code == "visible_text_mismatch" and "record hash" in report.reason


def test_a_page_showing_another_decision_is_refused(world: PkiWorld, tmp_path: Path) -> None:
    signed = statement(signer_kind="station-on-instruction", decision="reject", reason="canary found")
    shown = statement(signer_kind="station-on-instruction", decision="accept", reason="canary found")
    report = _verify(world, _sign_payload(world, shown, signed.to_canonical_json(), tmp_path / "s.pdf"))
    assert report.code == "visible_text_mismatch" and "decision" in report.reason


def test_a_statement_edited_after_signing_is_refused(world: PkiWorld, tmp_path: Path) -> None:
    path = tmp_path / "statement.pdf"
    issue_statement(statement(signer_kind="station-on-instruction"), world.station, path)
    data = path.read_bytes()
    assert data.count(b"VS-TEST-0001") >= 1
    path.write_bytes(data.replace(b"VS-TEST-0001", b"VS-TEST-0002"))
    report = _verify(world, path)
    assert not report.valid and report.code in ("modified", "bad_signature"), report


def test_the_record_class_is_strict() -> None:
    with pytest.raises(RecordError, match="record_sha256"):
        ValidatedCertificate(certificate_id="c-1", record_sha256="ABC", job_id="j", drive="d")
    with pytest.raises(RecordError, match="reason: must not be empty"):
        statement(decision="reject", reason="")
    with pytest.raises(RecordError, match="at least one certificate"):
        statement(certificates=[])
    with pytest.raises(RecordError, match="U\\+202E"):
        statement(by="Alex\u202eOfficer")
    with pytest.raises(RecordError, match="signer_kind"):
        statement(signer_kind="anyone")
    with pytest.raises(RecordError, match="duplicate key"):
        ValidationStatement.from_json(b'{"kind":"validation","kind":"validation"}')


def test_a_summary_stating_another_decision_is_refused_by_name(world: PkiWorld, tmp_path: Path) -> None:
    shown = statement(signer_kind="station-on-instruction")
    data = {**shown.to_dict(), "summary": summary_of("reject", 1, shown.by, shown.role)}
    payload = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    report = _verify(world, _sign_payload(world, shown, payload, tmp_path / "s.pdf"))
    assert report.code == "bad_record" and "summary: does not state the statement's own decision" in report.reason
    with pytest.raises(RecordError, match="summary"):
        statement(summary="ACCEPTED 1 certificate, by Alex Officer (Validation officer)", decision="reject",
                  reason="dirty")


def test_a_validator_certificate_in_the_stations_name_cannot_validate(world: PkiWorld, tmp_path: Path) -> None:
    issued = pki.issue_person(world.ca_dir, "Station-01", "validator", tmp_path / "people")
    impostor = pki.load_person_signer(issued.key_path, issued.certificate_path, world.station)
    path = tmp_path / "statement.pdf"
    issue_statement(statement(by="Station-01"), impostor, path)
    report = _verify(world, path)
    assert report.code == "signer_kind_mismatch" and "is the station's" in report.reason


def test_overlong_fields_are_refused_by_the_record_class() -> None:
    with pytest.raises(RecordError, match="by: is 65 characters long; at most 64"):
        statement(by="A" * 65)
    with pytest.raises(RecordError, match="reason: is 501 characters long; at most 500"):
        statement(decision="reject", reason="r" * 501)
