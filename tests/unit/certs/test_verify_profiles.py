"""The verifier decides everything itself: signer and TSA profiles, page text, kinds, and time.

Every crafted file is signed for real with keys our CA (or a foreign one) certified, so each case
differs from a genuine document in exactly the property under test; each asserts its exact code.
Time travel uses the verifier's injected clock (``now=``) at +0, +3 and +7 years; one test runs
the real CLI under ``faketime``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs import fleet_manifest, pki
from certs.destruction import issue_destruction_report
from certs.documents import canonical_json, sign_document
from certs.issue import issue_certificate, sign_pdf
from certs.manifest import issue_manifest, render_manifest
from certs.pki import StationSigner
from certs.record import Canary, Person
from certs.render import render_pdf
from certs.structure import check_structure
from certs.verify import FAILURE_CODES, DocumentKind, TimestampSource, VerificationReport, load_trust_bundle
from certs.verify import verify_with_bundle as verify_bundle
from tests.unit.certs import verify_kit as kit
from tests.unit.certs.certs_test_kit import PkiWorld, record_for, run_tool

YEAR = timedelta(days=365)
NOW = pki.utc_now()
"""This module's "today": documents are signed now and verified at NOW + 0, 3 and 7 years."""


@pytest.fixture(scope="module", autouse=True)
def _today() -> None:
    """Set "today" when this module's tests start, not when it was imported: a long suite may run
    other modules for many minutes in between, and "now" must not fall behind the TSA's clock."""
    global NOW
    NOW = pki.utc_now()


def verify(path: Path, bundle: Path, *, now: datetime | None = None,
           expect: DocumentKind | None = DocumentKind.CERTIFICATE) -> VerificationReport:
    report = verify_bundle(path, load_trust_bundle(bundle), now=now, expect=expect)
    assert report.code in ("valid", *FAILURE_CODES), report
    return report


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def tsa(world: PkiWorld) -> kit.KitTsa:
    """The organisation's TSA (certificate issued by the trusted CA, timeStamping EKU critical)."""
    return kit.make_tsa(world.ca_dir)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("verify-profiles")


@pytest.fixture(scope="module")
def blta(world: PkiWorld, tsa: kit.KitTsa, out: Path) -> Path:
    """A genuine B-LTA certificate: signature timestamp, DSS with chain and CRL, document timestamp."""
    record = record_for(world.station, demo=False)
    data = kit.sign_with(record, world.station, stamper=tsa.stamper())
    assert len(check_structure(data).document_timestamps) == 1, "the station made it B-LTA"
    return write(out, "blta.pdf", data)


# --- signer profiles ------------------------------------------------------------------------------


def _ca_signer(world: PkiWorld) -> StationSigner:
    certificate, key = kit.ca_of(world.ca_dir)
    return StationSigner("station-01", certificate, (certificate,), key)


def _minted(**profile: object) -> Callable[[PkiWorld], StationSigner]:
    def build(world: PkiWorld) -> StationSigner:
        certificate, key = kit.mint(world.ca_dir, **profile)  # type: ignore[arg-type]
        return kit.signer_from(certificate, key, world.ca_dir)
    return build


PROFILES: dict[str, tuple[Callable[[PkiWorld], StationSigner], str, str]] = {
    "timestamping certificate": (
        _minted(unit=pki.TSA_OU, extended=[ExtendedKeyUsageOID.TIME_STAMPING], extended_critical=True),
        "signer_profile", "not a station signing certificate"),
    "CA=true certificate issued by the CA": (_minted(ca=True), "signer_profile", "is a CA certificate"),
    "staff e-mail certificate": (
        _minted(unit="IT staff", extended=[ExtendedKeyUsageOID.EMAIL_PROTECTION]),
        "signer_profile", "not a station signing certificate"),
    "no extended key usage at all": (_minted(extended=None), "signer_profile", "not a station signing certificate"),
    "station EKU but no OU": (_minted(unit=None), "signer_profile", "does not name the unit"),
    "no nonRepudiation": (_minted(non_repudiation=False), "signer_profile", "digitalSignature + nonRepudiation"),
    "another CN than the record": (_minted(common_name="station-99"), "station_mismatch",
                                   "the record names station 'station-01' but 'station-99' signed it"),
    "the CA key itself": (_ca_signer, "signer_is_ca", "the CA signs only certificates and CRLs"),
    "impostor CA with the same name": (lambda world: world.impostor_station, "untrusted",
                                       "not a station certificate of the trusted CA"),
    "another organisation's CA": (lambda world: world.other_ca_station, "untrusted",
                                  "not a station certificate of the trusted CA"),
}


@pytest.mark.parametrize("case", list(PROFILES))
def test_wrong_signer_profile_is_rejected_with_its_code(world: PkiWorld, tmp_path: Path, case: str) -> None:
    build, code, words = PROFILES[case]
    signer = build(world)
    path = write(tmp_path, "forged.pdf", kit.sign_with(record_for(world.station, demo=False), signer))
    report = verify(path, world.bundle)
    assert (report.valid, report.code) == (False, code), report.reason
    assert words in report.reason


def test_genuine_station_passes_the_same_path(world: PkiWorld, tmp_path: Path) -> None:
    """The control for the profile cases: same record, same code path, the real station."""
    path = write(tmp_path, "genuine.pdf", kit.sign_with(record_for(world.station, demo=False), world.station))
    report = verify(path, world.bundle)
    assert (report.valid, report.code, report.kind) == (True, "valid", DocumentKind.CERTIFICATE), report.reason
    assert report.timestamp_source is TimestampSource.NONE and report.status == "valid now; not timestamped"


# --- what a person reads ----------------------------------------------------------------------------


def _media(record: object, **changes: object) -> dict[str, object]:
    return {"media": dataclasses.replace(record.media, **changes)}  # type: ignore[attr-defined]


LIES: dict[str, tuple[Callable[[object], dict[str, object]], str]] = {
    "serial": (lambda record: _media(record, serial="S64KNX0R999999"), "drive serial"),
    "model": (lambda record: _media(record, model="MZVL21T0HCLR"), "drive model"),
    "asset tag": (lambda record: _media(record, asset_tag="MPS-LT-000001"), "asset tag"),
    "host": (lambda record: {"host": dataclasses.replace(record.host, serial="FAKE-777")}, "host"),  # type: ignore[attr-defined]
    "host make": (lambda record: {"host": dataclasses.replace(record.host, make="Lenovo")}, "host"),  # type: ignore[attr-defined]
    "firmware": (lambda record: _media(record, firmware="GXA7999Q"), "drive serial and firmware"),
    "health": (lambda record: {"health": dataclasses.replace(record.health, smart_passed=False)},  # type: ignore[attr-defined]
               "drive health"),
    "capacity": (lambda record: _media(record, capacity_bytes=1_024_209_543_168), "capacity"),
    "classification": (lambda record: {"classification_after": "OFFICIAL"}, "classification"),
    "level": (lambda record: {"level": "Clear"}, "outcome and level"),
    "operator": (lambda record: {"operator": dataclasses.replace(record.operator, name="Chris Fake")},  # type: ignore[attr-defined]
                 "operator"),
    "issue date": (lambda record: {"issued_at": "2026-01-01T10:00:00+00:00"}, "issue date"),
    # H7: every value page 1 prints after Method, and page 2's verification, hidden areas and canaries
    "tool": (lambda record: {"tool": dataclasses.replace(record.tool, version="9.9.9")}, "tool"),  # type: ignore[attr-defined]
    "profile": (lambda record: {"profile": "nvme-purge-strict"}, "profile"),
    "verification": (lambda record: {"verification": dataclasses.replace(  # type: ignore[attr-defined]
        record.verification, mode="full", coverage=1.0)}, "verification"),  # type: ignore[attr-defined]
    "validated by": (lambda record: {"validator": Person(name="Information Security Officer", title="CISO")},
                     "validator"),
    "seed (page 2)": (lambda record: {"verification": dataclasses.replace(  # type: ignore[attr-defined]
        record.verification, seed="0" * 32)}, "verification seed (page 2)"),  # type: ignore[attr-defined]
    "hidden areas (page 2)": (lambda record: {"evidence": dataclasses.replace(  # type: ignore[attr-defined]
        record.evidence, hidden_area=dataclasses.replace(record.evidence.hidden_area,  # type: ignore[attr-defined]
                                                         actions=("HPA removed", "DCO restored")))},
                              "hidden areas actions (page 2)"),
    "canary (page 2)": (lambda record: {"evidence": dataclasses.replace(  # type: ignore[attr-defined]
        record.evidence, canary=Canary(result="passed", blocks_written=640, blocks_found_after=0))},
                        "canary blocks"),
}


@pytest.mark.parametrize("case", ["operator phone", "operator location"])
def test_page_that_lies_about_the_organisation_contact(world: PkiWorld, tmp_path: Path, case: str) -> None:
    """The configured location and phone are printed from the signed record, and checked."""
    genuine = record_for(world.station, demo=False)
    field = case.split()[1]
    shown = dataclasses.replace(genuine, operator=dataclasses.replace(genuine.operator, **{field: "+44 0 FORGED"}))
    path = write(tmp_path, "lies.pdf", kit.sign_with(genuine, world.station, rendered=shown))
    report = verify(path, world.bundle)
    assert (report.valid, report.code) == (False, "visible_text_mismatch"), report.reason
    assert "signed operator " in report.reason


def test_schema_1_certificate_still_verifies(world: PkiWorld, tmp_path: Path) -> None:
    """A record issued before schema 2 (no host, no SMART summary) keeps its hash and verifies."""
    old = record_for(world.station, demo=False, schema=1, host=None, health=None)
    assert b'"host"' not in old.to_canonical_json() and b'"health"' not in old.to_canonical_json()
    path = write(tmp_path, "old.pdf", kit.sign_with(old, world.station))
    report = verify(path, world.bundle)
    assert report.valid, report.reason
    assert report.record is not None and report.record.schema == 1 and report.record_sha256 == old.sha256()


@pytest.mark.parametrize("case", list(LIES))
def test_page_that_lies_about_the_signed_record(world: PkiWorld, tmp_path: Path, case: str) -> None:
    """The genuine record embedded and signed by the genuine station, but pages rendered from another."""
    changes, field_name = LIES[case]
    genuine = record_for(world.station, demo=False)
    shown = dataclasses.replace(genuine, **changes(genuine))
    path = write(tmp_path, "lies.pdf", kit.sign_with(genuine, world.station, rendered=shown))
    report = verify(path, world.bundle)
    assert (report.valid, report.code) == (False, "visible_text_mismatch"), report.reason
    assert f"signed {field_name} " in report.reason


def test_page_that_claims_a_validation_the_record_does_not_have(world: PkiWorld, tmp_path: Path) -> None:
    """H7: the record says validation is pending; the page prints an officer's name in the Validation block."""
    genuine = record_for(world.station, demo=False, validator=None)
    shown = dataclasses.replace(genuine, validator=Person(name="Chief Information Security Officer", title="CISO"))
    report = verify(write(tmp_path, "lies.pdf", kit.sign_with(genuine, world.station, rendered=shown)), world.bundle)
    assert (report.valid, report.code) == (False, "visible_text_mismatch"), report.reason
    assert "signed validation (pending) " in report.reason
    honest = verify(write(tmp_path, "honest.pdf", kit.sign_with(genuine, world.station)), world.bundle)
    assert honest.valid, honest.reason


AWKWARD: dict[str, Callable[[object], dict[str, object]]] = {
    "long model": lambda record: _media(record, model="ULTRASTAR-DC-HC550-WUH721818ALE6L4-0F38459-" * 2),
    "long serial": lambda record: _media(record, serial="SERIAL" * 20),
    "spaces in the serial": lambda record: _media(record, serial="  WD-WX11  A1B2 "),
    "markup characters": lambda record: _media(record, serial="<b>&amp;\"'", asset_tag="A&B <1>"),
    "accents and dashes": lambda record: {"operator": dataclasses.replace(  # type: ignore[attr-defined]
        record.operator, name="Zoë Ångström-Ñúñez", organisation="Polícia \u2014 Ünit")},  # type: ignore[attr-defined]
    "long destination": lambda record: {"destination": "GLA reuse scheme, Hillside Primary School " * 6},
    "no asset tag or host": lambda record: _media(record, asset_tag=None, host_device=None),
}


@pytest.mark.parametrize("case", list(AWKWARD))
def test_genuine_pages_with_awkward_values_still_match(world: PkiWorld, tmp_path: Path, case: str) -> None:
    """Values that wrap, split inside a word, need escaping or are absent: the page still matches."""
    genuine = record_for(world.station, demo=False)
    record = dataclasses.replace(genuine, **AWKWARD[case](genuine))
    report = verify(write(tmp_path, "awkward.pdf", kit.sign_with(record, world.station)), world.bundle)
    assert (report.valid, report.code) == (True, "valid"), report.reason


def test_a_second_value_drawn_beside_the_true_one(world: PkiWorld, tmp_path: Path) -> None:
    """The true serial stays on the page (so the anchored check finds it once), and a forged
    "Serial number" line is drawn over it in the same signed revision."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    record = record_for(world.station, demo=False)
    writer = IncrementalPdfFileWriter(io.BytesIO(render_pdf(record)))
    overlay = generic.StreamObject(stream_data=b"q 1 1 1 rg 40 560 520 14 re f Q BT /Forged 9 Tf 0 0 0 rg 60 562 Td "
                                               b"(Serial number S64KNX0R999999 Media type / interface) Tj ET")
    font = generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Font"),
        generic.NameObject("/Subtype"): generic.NameObject("/Type1"),
        generic.NameObject("/BaseFont"): generic.NameObject("/Helvetica"),
    })
    resources = generic.DictionaryObject({
        generic.NameObject("/Font"): generic.DictionaryObject({generic.NameObject("/Forged"): font})})
    writer.add_stream_to_page(0, writer.add_object(overlay), resources=resources)
    page = io.BytesIO()
    writer.write(page)
    path = write(tmp_path, "beside.pdf", sign_pdf(page.getvalue(), record, world.station))
    report = verify(path, world.bundle)
    assert (report.valid, report.code) == (False, "visible_text_mismatch"), report.reason
    assert "label 'Serial number' 2 times" in report.reason


def test_a_qr_code_for_another_certificate(world: PkiWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every printed field true, but the QR code (what a phone scans) encodes another certificate."""
    from certs import render

    record = record_for(world.station, demo=False)
    genuine_payload = render.qr_payload
    monkeypatch.setattr(render, "qr_payload", lambda certificate_id, record_sha256:
                        genuine_payload("0b7e9f1c-0000-4d6e-9a0b-5c1d2e3f4a5b", record_sha256))
    page = render_pdf(record)
    monkeypatch.undo()
    path = write(tmp_path, "qr.pdf", sign_pdf(page, record, world.station))
    report = verify(path, world.bundle)
    assert (report.valid, report.code) == (False, "visible_text_mismatch"), report.reason
    assert "the QR code does not encode the signed certificate id and record hash" in report.reason


def test_demo_and_failure_report_pages_match_their_records(world: PkiWorld, tmp_path: Path) -> None:
    demo = world.issue(record_for(world.station, demo=True), name="demo.pdf", directory=tmp_path)
    failed = world.issue(record_for(world.station, failed=True, demo=False), name="failed.pdf", directory=tmp_path)
    assert verify(demo, world.bundle).valid
    report = verify(failed, world.bundle, expect=DocumentKind.FAILURE_REPORT)
    assert (report.valid, report.kind) == (True, DocumentKind.FAILURE_REPORT), report.reason


# --- kinds ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def documents(world: PkiWorld, tsa: kit.KitTsa, out: Path) -> dict[DocumentKind, Path]:
    """One genuine B-LTA document of each kind, signed by the genuine station."""
    record = record_for(world.station, demo=False)
    certificate = issue_certificate(record, world.station, out / "certificate.pdf", timestamper=tsa.stamper())
    failure = issue_certificate(record_for(world.station, failed=True, demo=False), world.station,
                                out / "failure.pdf", timestamper=tsa.stamper())
    created = NOW.replace(microsecond=0).isoformat()
    manifest = {
        "schema": 2, "kind": "manifest", "document_id": "MF-TEST-1", "station_id": "station-01",
        "created_at": created, "demo": False, "summary": "one laptop for the scheme",
        "scheme": {"name": "GLA reuse", "summary": "schools", "destination": "Hillside Primary School"},
        "devices": [{"asset": "MPS-LT-004211", "make": "Dell", "model": "Latitude 5440", "serial": "DL5440X",
                     "drives": [{"model": record.media.model, "serial": record.media.serial, "media": "ssd",
                                 "level": "Purge", "verification": "sampling passed",
                                 "certificate_id": record.certificate_id, "record_sha256": record.sha256(),
                                 "certificate_file": "certificate.pdf"}]}],
    }
    files = issue_manifest(manifest, world.station, out / "manifest", {record.certificate_id: certificate},
                           timestamper=tsa.stamper())
    destruction = {
        "schema": 1, "kind": "destruction_report", "document_id": "DR-TEST-1", "station_id": "station-01",
        "created_at": created, "demo": False, "asset": "MPS-LT-003118", "method": "shred",
        "host": {"make": "HP", "model": "EliteBook 840", "serial": "HP840Y"},
        "drives": [{"model": "ST1000LM035", "serial": "WKP3ABCD", "media": "hdd", "job_id": "job-1",
                    "state": "failed"}],
        "witness": "PC Witness", "operator": "Alex Morgan", "reference": "WEEE-123",
        "reasons": ["ATA security locked"], "summary": "one drive shredded",
    }
    issue_destruction_report(destruction, world.station, out / "destruction.pdf", timestamper=tsa.stamper())
    from certs.validation import ValidatedCertificate, ValidationStatement, issue_statement, summary_of

    statement = ValidationStatement(
        schema_version=1, kind="validation", document_id="VS-TEST-1", station_id="station-01", created_at=created,
        decision="accept", by="Alex Officer", role="information-security-officer", reason="",
        signer_kind="station-on-instruction", demo=False,
        summary=summary_of("accept", 1, "Alex Officer", "information-security-officer"),
        certificates=(ValidatedCertificate(certificate_id=record.certificate_id, record_sha256=record.sha256(),
                                           job_id="job-1", drive=record.media.serial),))
    issue_statement(statement, world.station, out / "validation.pdf", timestamper=tsa.stamper())
    pki.issue_fleet(world.ca_dir, "fleet-profiles", out / "fleet-signer")
    name = fleet_manifest.certificate_file_name("station-01", record.certificate_id)
    fleet_files = fleet_manifest.issue({
        "schema": 1, "kind": "fleet_manifest", "document_id": "FM-TEST-1", "fleet": "fleet-profiles",
        "created_at": created, "demo": False, "summary": "one laptop for the scheme", "partner": "Hillside Primary",
        "scheme": {"name": "schools", "summary": "schools", "destination": "Hillside Primary School"},
        "devices": [{"asset": "MPS-LT-004211", "make": "Dell", "model": "Latitude 5440", "serial": "DL5440X",
                     "drives": [{"serial": record.media.serial, "station_id": "station-01",
                                 "certificate_id": record.certificate_id, "record_sha256": record.sha256(),
                                 "certificate_file": name}]}],
    }, pki.load_fleet_signer(out / "fleet-signer"), out / "fleet", {name: certificate.read_bytes()},
        timestamper=tsa.stamper())
    return {DocumentKind.CERTIFICATE: certificate, DocumentKind.FAILURE_REPORT: failure,
            DocumentKind.MANIFEST: files.pdf, DocumentKind.DESTRUCTION: out / "destruction.pdf",
            DocumentKind.VALIDATION: out / "validation.pdf", DocumentKind.FLEET_MANIFEST: fleet_files.pdf}


@pytest.mark.parametrize("expect", list(DocumentKind))
@pytest.mark.parametrize("kind", list(DocumentKind))
def test_each_kind_is_valid_only_when_expected(world: PkiWorld, documents: dict[DocumentKind, Path],
                                               kind: DocumentKind, expect: DocumentKind) -> None:
    report = verify(documents[kind], world.bundle, expect=expect)
    assert report.kind is kind
    if kind is expect:
        assert (report.valid, report.code) == (True, "valid"), report.reason
    else:
        assert (report.valid, report.code) == (False, "wrong_kind"), report.reason


def test_manifest_page_that_lies_about_a_serial(world: PkiWorld, documents: dict[DocumentKind, Path],
                                                tmp_path: Path) -> None:
    genuine = verify(documents[DocumentKind.MANIFEST], world.bundle, expect=DocumentKind.MANIFEST).document
    assert genuine is not None
    shown = json.loads(json.dumps(genuine))
    shown["devices"][0]["drives"][0]["serial"] = "S64KNX0R999999"
    payload = canonical_json(genuine)
    pdf = sign_document(render_manifest(shown), kind="manifest", document_id=genuine["document_id"], payload=payload,
                        sha256=hashlib.sha256(payload).hexdigest(), issued_at=genuine["created_at"],
                        signer=world.station, reason="Batch manifest for a reuse partner")
    report = verify(write(tmp_path, "manifest.pdf", pdf), world.bundle, expect=DocumentKind.MANIFEST)
    assert (report.valid, report.code) == (False, "visible_text_mismatch"), report.reason
    assert "Drive serial(s) cell" in report.reason


@pytest.mark.parametrize("disguise", ["{}", "{} ", " {}", "lower", "full-width"])
def test_a_station_manifest_listing_an_asset_twice_in_disguise(world: PkiWorld, documents: dict[DocumentKind, Path],
                                                               tmp_path: Path, disguise: str) -> None:
    """The page shows both rows as signed; the second is the first asset again (case, white space, full width)."""
    genuine = verify(documents[DocumentKind.MANIFEST], world.bundle, expect=DocumentKind.MANIFEST).document
    assert genuine is not None
    doubled = json.loads(json.dumps(genuine))
    again = json.loads(json.dumps(doubled["devices"][0]))
    tag = again["asset"]
    again["asset"] = {"lower": tag.lower(), "full-width": "".join(
        chr(ord(char) + 0xFEE0) if "!" <= char <= "~" else char for char in tag)}.get(disguise, disguise.format(tag))
    doubled["devices"].append(again)
    payload = canonical_json(doubled)
    pdf = sign_document(render_manifest(doubled), kind="manifest", document_id=doubled["document_id"],
                        payload=payload, sha256=hashlib.sha256(payload).hexdigest(), issued_at=doubled["created_at"],
                        signer=world.station, reason="Batch manifest for a reuse partner")
    report = verify(write(tmp_path, "manifest.pdf", pdf), world.bundle, expect=DocumentKind.MANIFEST)
    assert (report.valid, report.code) == (False, "bad_record"), report.reason
    assert f"lists asset {tag!r} twice" in report.reason


# --- timestamps -------------------------------------------------------------------------------------


def test_timestamp_from_a_foreign_tsa(world: PkiWorld, tmp_path: Path) -> None:
    foreign = kit.make_tsa(world.root / "other-ca")
    path = write(tmp_path, "foreign.pdf",
                 kit.sign_raw(record_for(world.station, demo=False), world.station, foreign.stamper()))
    report = verify(path, world.bundle)
    assert (report.valid, report.code) == (False, "untrusted_timestamp"), report.reason
    assert "not a TSA of the trusted CA" in report.reason


@pytest.mark.parametrize(("profile", "words"), [
    ({"time_stamping": False}, "lacks the critical timeStamping"),
    ({"critical": False}, "lacks the critical timeStamping"),
])
def test_tsa_certificate_without_the_critical_timestamping_eku(
    world: PkiWorld, tmp_path: Path, profile: dict[str, bool], words: str
) -> None:
    weak = kit.make_tsa(world.ca_dir, **profile)
    path = write(tmp_path, "weak.pdf", kit.sign_raw(record_for(world.station, demo=False), world.station,
                                                    weak.stamper()))
    report = verify(path, world.bundle)
    assert (report.valid, report.code) == (False, "untrusted_timestamp"), report.reason
    assert words in report.reason


def test_document_timestamp_from_a_foreign_tsa(world: PkiWorld, tsa: kit.KitTsa, tmp_path: Path) -> None:
    foreign = kit.make_tsa(world.root / "other-ca")
    signed = kit.sign_with(record_for(world.station, demo=False), world.station, stamper=tsa.stamper())
    path = write(tmp_path, "foreign-doc-ts.pdf", kit.add_document_timestamp(signed, foreign.stamper()))
    report = verify(path, world.bundle)
    assert (report.valid, report.code) == (False, "untrusted_timestamp"), report.reason


def _replace_cms(data: bytes, byte_range: tuple[int, int, int, int], new_cms: bytes) -> bytes:
    """Write ``new_cms`` into the signature's /Contents hex string (same length, zero padded)."""
    start, end = byte_range[1] + 1, byte_range[2] - 1
    hex_cms = new_cms.hex().encode()
    assert len(hex_cms) <= end - start
    return data[:start] + hex_cms + b"0" * (end - start - len(hex_cms)) + data[end:]


def test_signature_timestamp_transplanted_from_another_document(
    world: PkiWorld, tsa: kit.KitTsa, tmp_path: Path
) -> None:
    """A genuine token of the trusted TSA, but for another signature: the imprint gives it away."""
    donor = kit.sign_with(record_for(world.station, demo=False, certificate_id="donor-1"), world.station,
                          stamper=tsa.stamper())
    target = kit.sign_with(record_for(world.station, demo=False), world.station, stamper=tsa.stamper())
    donor_cms = cms.ContentInfo.load(check_structure(donor).signature.cms)
    signature = check_structure(target).signature
    target_cms = cms.ContentInfo.load(signature.cms)
    target_info = target_cms["content"]["signer_infos"][0]
    target_info["unsigned_attrs"] = donor_cms["content"]["signer_infos"][0]["unsigned_attrs"].copy()
    path = write(tmp_path, "transplant.pdf", _replace_cms(target, signature.byte_range, target_cms.dump(force=True)))
    report = verify(path, world.bundle)
    assert (report.valid, report.code) == (False, "bad_timestamp"), report.reason
    assert "message imprint mismatch" in report.reason


def test_document_timestamp_alone_sets_the_validation_time(world: PkiWorld, tsa: kit.KitTsa, tmp_path: Path) -> None:
    signed = kit.sign_with(record_for(world.station, demo=False), world.station)
    path = write(tmp_path, "doc-ts-only.pdf", kit.add_document_timestamp(signed, tsa.stamper()))
    report = verify(path, world.bundle, now=NOW + 3 * YEAR)
    assert (report.valid, report.timestamp_source) == (True, TimestampSource.DOCUMENT_TIMESTAMP), report.reason
    assert report.validation_time is not None and abs(report.validation_time - NOW) < timedelta(minutes=10)


def test_a_tsa_certificate_that_aged_out_without_a_newer_document_timestamp(world: PkiWorld, tmp_path: Path) -> None:
    short = kit.make_tsa(world.ca_dir, days=365)
    path = write(tmp_path, "aged.pdf",
                 kit.sign_with(record_for(world.station, demo=False), world.station, stamper=short.stamper()))
    assert verify(path, world.bundle).valid
    report = verify(path, world.bundle, now=NOW + 3 * YEAR)
    assert (report.valid, report.code) == (False, "untrusted_timestamp"), report.reason
    assert "needed a newer document timestamp" in report.reason


def test_a_document_timestamp_carries_an_aged_out_signature_timestamp(
    world: PkiWorld, tsa: kit.KitTsa, tmp_path: Path
) -> None:
    """The archive timestamp was made while the first TSA certificate was valid: it is enough."""
    short = kit.make_tsa(world.ca_dir, days=365)
    signed = kit.sign_with(record_for(world.station, demo=False), world.station, stamper=short.stamper())
    path = write(tmp_path, "renewed.pdf", kit.add_document_timestamp(signed, tsa.stamper()))
    report = verify(path, world.bundle, now=NOW + 7 * YEAR)
    assert report.valid, report.reason
    assert report.timestamp_source is TimestampSource.SIGNATURE_TIMESTAMP


@pytest.mark.parametrize(("signature_at", "document_at", "code", "words"), [
    (timedelta(days=2), None, "bad_timestamp", "claims a future time"),
    (timedelta(0), -timedelta(days=1), "bad_timestamp", "go backwards in time"),
    (-timedelta(days=400), None, "untrusted_timestamp", "the time its token claims"),
    (-timedelta(hours=1), None, "expired", "is not valid before"),
], ids=["from-the-future", "out-of-order", "before-the-tsa-existed", "before-the-station-existed"])
def test_timestamps_that_cannot_be_true(world: PkiWorld, tsa: kit.KitTsa, tmp_path: Path, signature_at: timedelta,
                                        document_at: timedelta | None, code: str, words: str) -> None:
    """Tokens of the trusted TSA whose times contradict each other, the clock or the certificates."""
    station = world.station
    if code == "expired":  # a station certified just now, a token from an hour ago (by a TSA valid then)
        certificate, key = kit.mint(world.ca_dir, not_before=pki.utc_now() - timedelta(minutes=1))
        station = kit.signer_from(certificate, key, world.ca_dir)
        tsa = kit.make_tsa(world.ca_dir, not_before=pki.utc_now() - timedelta(days=1))
    signed = kit.sign_with(record_for(world.station, demo=False), station,
                           stamper=tsa.stamper(pki.utc_now() + signature_at))
    if document_at is not None:
        signed = kit.add_document_timestamp(signed, tsa.stamper(pki.utc_now() + document_at))
    report = verify(write(tmp_path, "times.pdf", signed), world.bundle)
    assert (report.valid, report.code) == (False, code), report.reason
    assert words in report.reason


# --- time travel ------------------------------------------------------------------------------------


def _flip(data: bytes, offset: int) -> bytes:
    flipped = bytearray(data)
    flipped[offset] ^= 0x01
    return bytes(flipped)


def _stream_offset(data: bytes, start: int) -> int:
    """An offset inside the first stream's data at or after ``start``."""
    return data.index(b"stream", start) + 20


@pytest.mark.parametrize("years", [0, 3, 7])
def test_genuine_blta_certificate_verifies_with_the_bundle_given_at_issue(
    world: PkiWorld, blta: Path, years: int
) -> None:
    report = verify(blta, world.bundle, now=NOW + years * YEAR)
    assert (report.valid, report.code) == (True, "valid"), report.reason
    assert report.timestamped and report.timestamp_source is TimestampSource.SIGNATURE_TIMESTAMP
    assert report.signed_at == report.validation_time and report.signed_at is not None
    assert abs(report.signed_at - NOW) < timedelta(minutes=10)
    if years:
        assert report.status.startswith("valid when signed; station certificate since expired")
        assert any("CRL expired" in warning for warning in report.warnings)
    else:
        assert report.status.startswith("valid when signed (timestamped") and report.warnings == ()


@pytest.mark.parametrize("years", [0, 3, 7])
def test_one_flipped_byte_fails_at_every_time(world: PkiWorld, blta: Path, tmp_path: Path, years: int) -> None:
    data = blta.read_bytes()
    structure = check_structure(data)
    signed_end = structure.signature.byte_range[2] + structure.signature.byte_range[3]
    in_signed = write(tmp_path, "signed-range.pdf", _flip(data, _stream_offset(data, 0)))
    in_later = write(tmp_path, "later-revision.pdf", _flip(data, _stream_offset(data, signed_end)))
    now = NOW + years * YEAR
    report = verify(in_signed, world.bundle, now=now)
    assert (report.valid, report.code) == (False, "modified"), report.reason
    report = verify(in_later, world.bundle, now=now)
    # The later revisions (DSS) are covered by the document timestamp, whose imprint no longer matches.
    assert (report.valid, report.code) == (False, "bad_timestamp"), report.reason


@pytest.fixture(scope="module")
def station_serial(world: PkiWorld) -> int:
    return world.station.certificate.serial_number


REVOCATIONS = {
    "revoked-before": (-timedelta(days=1), None, False),            # revoked the day before signing
    "revoked-after": (YEAR, None, True),                            # a year after signing: still valid
    "key-compromise-before": (YEAR, -timedelta(days=30), False),    # compromised a month before signing
    "key-compromise-after": (YEAR, YEAR / 2, True),                 # compromised half a year after signing
}
# A newer bundle can only list a revocation published by the time it is used.
REVOCATION_CASES = [(case, years) for case, (revoked_at, _since, _valid) in REVOCATIONS.items()
                    for years in (0, 3, 7) if revoked_at <= years * YEAR]


@pytest.mark.parametrize(("case", "years"), REVOCATION_CASES)
def test_revocation_before_or_after_the_proven_time(
    world: PkiWorld, blta: Path, tmp_path: Path, station_serial: int, case: str, years: int
) -> None:
    revoked_at, compromised_since, valid = REVOCATIONS[case]
    crl = kit.crl_revoking(world, station_serial, NOW + revoked_at, this_update=NOW + max(revoked_at, timedelta(0)),
                           key_compromise_since=None if compromised_since is None else NOW + compromised_since)
    bundle = kit.bundle_with(world, tmp_path / "newer-bundle.pem", crl)
    report = verify(blta, bundle, now=NOW + years * YEAR)
    if valid:
        assert (report.valid, report.code) == (True, "valid"), report.reason
    else:
        assert (report.valid, report.code) == (False, "revoked"), report.reason
        assert ("key compromise" in report.reason) == (compromised_since is not None)


def test_revocation_in_the_embedded_crl_counts(world: PkiWorld, tsa: kit.KitTsa, tmp_path: Path,
                                               station_serial: int) -> None:
    crl = kit.crl_revoking(world, station_serial, NOW - timedelta(days=1), this_update=NOW - timedelta(hours=1))
    station = dataclasses.replace(world.station, crl=crl)  # the CRL the station embeds in its DSS
    path = write(tmp_path, "embedded-revoked.pdf",
                 kit.sign_with(record_for(world.station, demo=False), station, stamper=tsa.stamper()))
    report = verify(path, world.bundle, now=NOW + 3 * YEAR)
    assert (report.valid, report.code) == (False, "revoked"), report.reason


def test_untimestamped_documents_are_judged_now(world: PkiWorld, tmp_path: Path) -> None:
    path = write(tmp_path, "plain.pdf", kit.sign_with(record_for(world.station, demo=False), world.station))
    report = verify(path, world.bundle, now=NOW + YEAR)
    assert (report.valid, report.code) == (False, "crl_expired"), report.reason
    report = verify(path, world.bundle, now=NOW + 3 * YEAR)
    assert (report.valid, report.code) == (False, "expired"), report.reason


# --- second readers and the real CLI ------------------------------------------------------------------


@pytest.fixture(scope="module")
def nss(world: PkiWorld, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An NSS database trusting only the organisation CA, so pdfsig judges the chain too."""
    certutil = shutil.which("certutil")
    if certutil is None:
        pytest.skip("certutil not installed (apt-get install libnss3-tools)")
    database = f"sql:{tmp_path_factory.mktemp('nss')}"
    subprocess.run([certutil, "-d", database, "-N", "--empty-password"], check=True, capture_output=True, timeout=60)
    subprocess.run([certutil, "-d", database, "-A", "-n", "org-ca", "-t", "CT,C,C", "-i", str(world.ca_dir / "ca.crt")],
                   check=True, capture_output=True, timeout=60)
    return database


def test_pdfsig_as_second_reader_of_genuine_documents(
    blta: Path, documents: dict[DocumentKind, Path], nss: str
) -> None:
    # NSS accepts a document signer's chain only with emailProtection, which station certificates
    # do not carry (their one EKU is wipe-agent's own): pdfsig judges the signature and the
    # coverage, the chain is ours (and openssl's, in test_certs_sign_verify).
    # The station signature covers its own revision; the last document timestamp covers the file.
    for path in (*documents.values(), blta):
        output = run_tool("pdfsig", "-nssdir", nss, path).stdout
        first = output.split("Signature #2")[0]
        assert "Signature Validation: Signature is Valid." in first, output
        assert "Total document signed" in output.split("Signature #")[-1], output
    # poppler lists the document timestamp (covering the whole file) but cannot validate RFC 3161
    # document timestamps ("Signature Type: unknown"); the signature itself covers its revision.
    signature, stamp = run_tool("pdfsig", "-nssdir", nss, blta).stdout.split("Signature #2")
    assert "Not total document signed" in signature and "Signature is Valid." in signature
    assert "Signer Certificate Common Name: Example Police TSA" in stamp and "Total document signed" in stamp


def test_the_real_cli_seven_years_later_under_faketime(world: PkiWorld, blta: Path, tmp_path: Path) -> None:
    faketime = shutil.which("faketime")
    if faketime is None:
        pytest.skip("faketime not installed (apt-get install faketime)")
    executable = Path(sys.executable).with_name("wipe-agent")
    forged = write(tmp_path, "forged.pdf", _flip(blta.read_bytes(), _stream_offset(blta.read_bytes(), 0)))
    command = [faketime, "-f", "+7y", str(executable), "verify", "--trust", str(world.bundle)]
    result = subprocess.run([*command, str(blta)], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid when signed; station certificate since expired" in result.stdout
    assert "warning: the trust bundle's CRL expired" in result.stdout
    result = subprocess.run([*command, "--json", str(forged)], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 1, result.stdout + result.stderr
    (item,) = json.loads(result.stdout)["results"]
    assert (item["valid"], item["code"]) == (False, "modified")
    clock = subprocess.run([faketime, "-f", "+7y", sys.executable, "-c", "import time; print(time.time())"],
                           capture_output=True, text=True, timeout=60, check=True)
    assert float(clock.stdout) > (NOW + 6 * YEAR).timestamp(), "faketime really moved the clock"


def test_json_states_kind_times_and_signer(world: PkiWorld, blta: Path) -> None:
    executable = Path(sys.executable).with_name("wipe-agent")
    result = subprocess.run([str(executable), "verify", str(blta), "--trust", str(world.bundle), "--json"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    (item,) = json.loads(result.stdout)["results"]
    assert {key: item[key] for key in ("valid", "code", "kind", "timestamp_source", "warnings")} == {
        "valid": True, "code": "valid", "kind": "certificate", "timestamp_source": "signature_timestamp",
        "warnings": []}
    assert item["signed_at"] == item["validation_time"] and "CN=station-01" in item["signer"]


def test_unreadable_file_is_one_line(world: PkiWorld, blta: Path) -> None:
    """A certificate in a folder the verifier may not enter: one line, code unreadable, no traceback."""
    if sys.platform != "linux":
        pytest.skip("permission semantics checked on Linux")
    # Root ignores permissions, so the child runs as "nobody" then; /dev/shm is reachable by it.
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    if prefix and subprocess.run([*prefix, "test", "-r", sys.executable], check=False).returncode != 0:
        pytest.skip(f"an unprivileged user cannot read this checkout's {sys.executable} (a checkout under /root?)")
    base = Path(tempfile.mkdtemp(prefix="wipe-agent-verify-", dir="/dev/shm"))
    try:
        base.chmod(0o755)
        locked = base / "locked"
        locked.mkdir()
        shutil.copy(blta, locked / "certificate.pdf")
        bundle = Path(shutil.copy(world.bundle, base / "bundle.pem"))
        bundle.chmod(0o644)
        locked.chmod(0)
        executable = str(Path(sys.executable).with_name("wipe-agent"))
        results = [subprocess.run([*prefix, executable, "verify", str(target), "--trust", str(bundle)],
                                  capture_output=True, text=True, timeout=120, check=False)
                   for target in (locked / "certificate.pdf", locked)]
    finally:
        (base / "locked").chmod(0o700)
        shutil.rmtree(base)
    for result, target in zip(results, (locked / "certificate.pdf", locked), strict=True):
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr == ""
        (line,) = result.stdout.strip().splitlines()
        assert line.startswith(f"INVALID  {target}: [unreadable] cannot read "), line
        assert "Permission denied" in line, line
