"""Issue and verify real signed certificates; attack them; cross-check with pyHanko and poppler's pdfsig."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext

from certs import pki
from certs.errors import SigningError, TrustBundleError
from certs.issue import ATTACHMENT_NAME, issue_certificate, sign_pdf
from certs.render import render_pdf
from certs.samples import sample_record
from certs.verify import FAILURE_CODES, verify_file, verify_many
from tests.unit.certs.certs_test_kit import PkiWorld, pdf_text, record_for, run_tool


@pytest.fixture(scope="module")
def certificate(world: PkiWorld) -> Path:
    """One valid, signed, non-demo certificate."""
    return world.issue(record_for(world.station, demo=False), name="valid.pdf")


@pytest.fixture(scope="module")
def failure_report(world: PkiWorld) -> Path:
    return world.issue(record_for(world.station, failed=True, demo=False), name="failure.pdf")


def _variant(source: Path, tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- the happy path -----------------------------------------------------------------------------


def test_valid_certificate_verifies_with_a_summary(world: PkiWorld, certificate: Path) -> None:
    report = verify_file(certificate, world.bundle)
    assert report.valid, report.reason
    assert report.code == "valid"
    record = record_for(world.station, demo=False)
    assert report.record == record
    assert report.certificate_id == record.certificate_id
    assert report.record_sha256 == record.sha256()
    assert report.kind == "certificate" and not report.demo
    assert report.signer_subject is not None and "CN=station-01" in report.signer_subject
    assert "Purge by nvme.sanitize.crypto" in report.summary and "S64KNX0R123456" in report.summary
    assert json.loads(json.dumps(report.to_json()))["valid"] is True


def test_failure_report_is_signed_and_verifies_as_such(world: PkiWorld, failure_report: Path) -> None:
    report = verify_file(failure_report, world.bundle)
    assert report.valid, report.reason
    assert report.kind == "failure_report"
    assert "NOT sanitised (ATA security locked with an unknown password); route destroy" in report.summary


def test_embedded_record_is_the_canonical_json(certificate: Path, world: PkiWorld) -> None:
    reader = PdfFileReader(io.BytesIO(certificate.read_bytes()))
    names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
    assert str(names[0]) == ATTACHMENT_NAME
    data = names[1].get_object()["/EF"]["/F"].get_object().data
    assert data == record_for(world.station, demo=False).to_canonical_json()
    # And poppler sees the attachment too.
    assert ATTACHMENT_NAME in run_tool("pdfdetach", "-list", certificate).stdout


def _pyhanko_status(path: Path, bundle_path: Path) -> tuple[Any, Any]:
    """pyHanko's own verdict, with the bundle's CA as the only trust root and its CRL (no fetching)."""
    bundle = pki.parse_trust_bundle(bundle_path.read_bytes())
    der = serialization.Encoding.DER
    context = ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(bundle.ca_certificate.public_bytes(der))],
        crls=[bundle.crl.public_bytes(der)], allow_fetching=False, revocation_mode="require",
    )
    reader = PdfFileReader(io.BytesIO(path.read_bytes()))
    (signature,) = reader.embedded_signatures
    return signature, validate_pdf_signature(signature, signer_validation_context=context)


def test_pyhanko_validator_accepts_with_the_bundle_as_trust_root(world: PkiWorld, certificate: Path) -> None:
    signature, status = _pyhanko_status(certificate, world.bundle)
    assert status.bottom_line, status.pretty_print_details()
    assert status.trusted and status.intact and status.valid
    # Since issue 10 a DSS revision follows the signature (B-LT): the signature covers its own
    # revision, and pyHanko classes what follows as LTV updates only.
    assert status.coverage == SignatureCoverageLevel.ENTIRE_REVISION
    assert status.modification_level == ModificationLevel.LTA_UPDATES and status.docmdp_ok
    assert signature.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    # The chain to the organisation CA travels inside the signature.
    embedded = {choice.chosen.subject.human_friendly for choice in signature.signed_data["certificates"]}
    assert any("Example Police sanitisation CA" in subject for subject in embedded)


def test_pdfsig_reports_the_signature_valid(certificate: Path) -> None:
    result = run_tool("pdfsig", certificate)
    assert "Signature Validation: Signature is Valid." in result.stdout, result.stdout
    # The DSS revision (chain and CRL) follows the signature; "Total document signed" is the
    # document timestamp's line (tests/integration/certs/test_ltv_signing.py).
    assert "Not total document signed" in result.stdout
    assert "ETSI.CAdES.detached" in result.stdout
    assert "Signer Certificate Common Name: station-01" in result.stdout


def test_demo_certificate_verifies_but_says_demonstration(world: PkiWorld, tmp_path: Path) -> None:
    path = world.issue(record_for(world.station, demo=True), name="demo.pdf", directory=tmp_path)
    report = verify_file(path, world.bundle)
    assert report.valid and report.demo
    assert report.summary.startswith("DEMONSTRATION, not real media")


def test_issue_refuses_another_stations_record_and_an_expired_key(world: PkiWorld, tmp_path: Path) -> None:
    with pytest.raises(SigningError, match="belongs to 'station-01'"):
        issue_certificate(record_for(world.revoked), world.station, tmp_path / "x.pdf")
    with pytest.raises(SigningError, match="not valid now"):
        issue_certificate(record_for(world.expired), world.expired, tmp_path / "x.pdf")
    assert not list(tmp_path.iterdir()), "nothing may be written when issuing fails"


# --- attacks and damage: each rejected with its own reason ----------------------------------------


def test_byte_changed_inside_signed_range(world: PkiWorld, certificate: Path, tmp_path: Path) -> None:
    data = certificate.read_bytes()
    # The document information dictionary of the first revision: inside the first signed range.
    target = b"/Title (Certificate of sanitisation"
    position = data.index(target)
    signed_end = int(run_tool("pdfsig", certificate).stdout.split("Signed Ranges: [0 - ")[1].split("]")[0])
    assert position + len(target) < signed_end
    changed = data[:position] + b"/Title (Certificate of sanitisatioN" + data[position + len(target):]
    tampered = _variant(certificate, tmp_path, "tampered.pdf", changed)
    report = verify_file(tampered, world.bundle)
    assert (report.valid, report.code) == (False, "modified")
    assert "altered after signing" in report.reason
    pdfsig = run_tool("pdfsig", tampered).stdout
    assert "Signature is Valid" not in pdfsig
    assert "Digest Mismatch" in pdfsig or "Signature is Invalid" in pdfsig


def test_text_altered_by_appended_incremental_update(
    world: PkiWorld, certificate: Path, tmp_path: Path
) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(certificate.read_bytes()))
    overlay = generic.StreamObject(stream_data=b"q 1 1 1 rg 40 600 520 40 re f Q "
                                   b"BT /Forged 16 Tf 0 0 0 rg 60 610 Td (FORGED LEVEL: Purge) Tj ET")
    font = generic.DictionaryObject({
        generic.NameObject("/Type"): generic.NameObject("/Font"),
        generic.NameObject("/Subtype"): generic.NameObject("/Type1"),
        generic.NameObject("/BaseFont"): generic.NameObject("/Helvetica"),
    })
    resources = generic.DictionaryObject({
        generic.NameObject("/Font"): generic.DictionaryObject({generic.NameObject("/Forged"): font})})
    writer.add_stream_to_page(0, writer.add_object(overlay), resources=resources)
    output = io.BytesIO()
    writer.write(output)
    tampered = _variant(certificate, tmp_path, "appended.pdf", output.getvalue())
    assert "FORGED LEVEL" in pdf_text(tampered, page=1), "the update really changes what is shown"
    report = verify_file(tampered, world.bundle)
    # The structure check finds a revision no signature covers (pyHanko would call it "covered").
    assert (report.valid, report.code) == (False, "unsigned_tail")
    pdfsig = run_tool("pdfsig", tampered).stdout
    assert "Total document signed" not in pdfsig


def test_bytes_appended_after_signing(world: PkiWorld, certificate: Path, tmp_path: Path) -> None:
    tampered = _variant(certificate, tmp_path, "junk.pdf", certificate.read_bytes() + b"\n% trailing junk\n")
    assert verify_file(tampered, world.bundle).code == "unsigned_tail"


def test_certificate_from_another_ca(world: PkiWorld, tmp_path: Path) -> None:
    path = world.issue(record_for(world.other_ca_station), world.other_ca_station, directory=tmp_path)
    report = verify_file(path, world.bundle)
    assert (report.valid, report.code) == (False, "untrusted")
    assert "CN=Someone Else sanitisation CA" in report.reason
    assert "not a station certificate of the trusted CA (Example Police)" in report.reason
    _, status = _pyhanko_status(path, world.bundle)
    assert not status.trusted and not status.bottom_line


def test_certificate_from_an_impostor_ca_with_the_same_name(world: PkiWorld, tmp_path: Path) -> None:
    path = world.issue(record_for(world.impostor_station), world.impostor_station, directory=tmp_path)
    report = verify_file(path, world.bundle)
    assert (report.valid, report.code) == (False, "untrusted")


def test_revoked_station(world: PkiWorld, tmp_path: Path) -> None:
    path = world.issue(record_for(world.revoked), world.revoked, directory=tmp_path)
    report = verify_file(path, world.bundle)
    assert (report.valid, report.code) == (False, "revoked")
    assert "(station-02) was revoked on" in report.reason
    _, status = _pyhanko_status(path, world.bundle)
    assert status.revoked and not status.bottom_line, "pyHanko must independently see the revocation"


def test_expired_station_certificate(world: PkiWorld, tmp_path: Path) -> None:
    path = world.issue(record_for(world.expired), world.expired, directory=tmp_path)
    report = verify_file(path, world.bundle)
    assert (report.valid, report.code) == (False, "expired")
    expiry = world.expired.certificate.not_valid_after_utc
    assert f"(station-03) expired on {expiry:%Y-%m-%d}" in report.reason
    _, status = _pyhanko_status(path, world.bundle)
    assert not status.trusted and not status.bottom_line, "pyHanko must independently reject it"


@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_truncated_file(world: PkiWorld, certificate: Path, tmp_path: Path, keep: float) -> None:
    data = certificate.read_bytes()
    truncated = _variant(certificate, tmp_path, "truncated.pdf", data[: int(len(data) * keep)])
    report = verify_file(truncated, world.bundle)
    assert not report.valid
    # Half a file has no revision end at all; a cut further on keeps an earlier revision whole,
    # plus a torn tail no signature covers.
    assert report.code in {"damaged", "unsigned_tail"}, report


def test_pdf_without_signature(world: PkiWorld, tmp_path: Path) -> None:
    unsigned = _variant(tmp_path, tmp_path, "unsigned.pdf", render_pdf(record_for(world.station)))
    report = verify_file(unsigned, world.bundle)
    assert (report.valid, report.code) == (False, "not_certified")


def test_non_pdf(world: PkiWorld, tmp_path: Path) -> None:
    report = verify_file(_variant(tmp_path, tmp_path, "note.pdf", b"hello, not a PDF\n" * 10), world.bundle)
    assert (report.valid, report.code, report.reason) == (False, "not_pdf", "not a PDF file")


def test_unreadable_file(world: PkiWorld, tmp_path: Path) -> None:
    report = verify_file(tmp_path / "missing.pdf", world.bundle)
    assert (report.valid, report.code) == (False, "unreadable")


def test_record_signed_by_another_station(world: PkiWorld, tmp_path: Path) -> None:
    # sign_pdf (unlike issue_certificate) does not check the station: the verifier must.
    pdf = sign_pdf(render_pdf(record_for(world.station)), record_for(world.station), world.impostor_station)
    impostor = _variant(tmp_path, tmp_path, "x.pdf", pdf)
    assert verify_file(impostor, world.bundle).code == "untrusted"
    other = pki.load_station_signer(world.station_state)
    record = sample_record(station_id="station-09")
    mismatch = _variant(tmp_path, tmp_path, "y.pdf", sign_pdf(render_pdf(record), record, other))
    report = verify_file(mismatch, world.bundle)
    assert (report.valid, report.code) == (False, "station_mismatch")


def test_bad_bundle_is_an_error_not_a_verdict(world: PkiWorld, certificate: Path, tmp_path: Path) -> None:
    with pytest.raises(TrustBundleError, match="not found"):
        verify_file(certificate, tmp_path / "nope.pem")
    broken = _variant(tmp_path, tmp_path, "broken.pem", b"# nothing here\n")
    with pytest.raises(TrustBundleError, match="exactly one CA certificate"):
        verify_file(certificate, broken)


def test_batch_over_a_folder(
    world: PkiWorld, certificate: Path, failure_report: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    shutil.copy(certificate, folder / "a.pdf")
    shutil.copy(failure_report, folder / "b.pdf")
    (folder / "c.pdf").write_bytes(b"not a pdf")
    (folder / "notes.txt").write_text("ignored")
    reports = verify_many([folder], world.bundle)
    assert [(report.path.name, report.code) for report in reports] == [
        ("a.pdf", "valid"), ("b.pdf", "valid"), ("c.pdf", "not_pdf")]


@pytest.fixture(scope="module")
def nss_database(world: PkiWorld, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An NSS database trusting only the organisation CA, so pdfsig can judge the chain too."""
    certutil = shutil.which("certutil")
    if certutil is None:
        pytest.skip("certutil not installed (apt-get install libnss3-tools)")
    directory = tmp_path_factory.mktemp("nss")
    database = f"sql:{directory}"
    for arguments in (["-N", "--empty-password"], ["-A", "-n", "organisation-ca", "-t", "C,C,C",
                                                   "-i", str(world.ca_dir / "ca.crt")]):
        subprocess.run([certutil, "-d", database, *arguments], check=True, capture_output=True, timeout=60)
    return database


def test_pdfsig_checks_the_signature_and_openssl_the_chain(
    world: PkiWorld, certificate: Path, nss_database: str, tmp_path: Path
) -> None:
    # The station certificate's only EKU is wipe-agent's own (certs.oids.STATION_SIGNING_EKU), and
    # NSS accepts a document signer's chain only with emailProtection, so pdfsig reports the
    # signature valid but cannot say "Certificate is Trusted". The chain is checked by a second
    # independent reader, openssl, instead (and by our verifier).
    trusted = run_tool("pdfsig", "-nssdir", nss_database, certificate).stdout
    assert "Signature Validation: Signature is Valid." in trusted, trusted
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    station_certificate = world.station_state / "pki" / "station.crt"
    chain = subprocess.run([openssl, "verify", "-CAfile", str(world.ca_dir / "ca.crt"), "-purpose", "any",
                            str(station_certificate)], capture_output=True, text=True, timeout=60, check=False)
    assert chain.returncode == 0 and ": OK" in chain.stdout, chain.stdout + chain.stderr
    foreign = world.issue(record_for(world.other_ca_station), world.other_ca_station, directory=tmp_path)
    untrusted = run_tool("pdfsig", "-nssdir", nss_database, foreign).stdout
    assert "Signature is Valid" in untrusted
    assert "Certificate is Trusted" not in untrusted
    foreign_chain = subprocess.run(
        [openssl, "verify", "-CAfile", str(world.ca_dir / "ca.crt"), "-purpose", "any",
         str(world.root / "other-station" / "pki" / "station.crt")],
        capture_output=True, text=True, timeout=60, check=False)
    assert foreign_chain.returncode != 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_damage_never_crashes_the_verifier(world: PkiWorld, certificate: Path, tmp_path: Path,
                                                  data: st.DataObject) -> None:
    original = certificate.read_bytes()
    position = data.draw(st.integers(0, len(original) - 1), label="position")
    kind = data.draw(st.sampled_from(["flip", "truncate", "delete", "insert"]), label="kind")
    damaged = bytearray(original)
    if kind == "flip":
        damaged[position] ^= 1 << data.draw(st.integers(0, 7))
    elif kind == "truncate":
        del damaged[position:]
    elif kind == "delete":
        del damaged[position:position + data.draw(st.integers(1, 64))]
    else:
        damaged[position:position] = data.draw(st.binary(min_size=1, max_size=32))
    path = tmp_path / "damaged.pdf"
    path.write_bytes(bytes(damaged))
    report = verify_file(path, world.bundle)  # must return a verdict, never raise
    if report.valid:
        # Only the signature's own /Contents (hex padding, unused bytes) is outside the digest; a
        # change there that still verifies has not changed anything the verdict is about.
        # Since issue 10, the DSS revision after the signed one is not covered by any signature in a
        # file made without a TSA (only a document timestamp would cover it), so damage there that
        # leaves it parseable changes nothing signed either.
        contents = re.search(rb"/Contents <([0-9a-fA-F]+)>", original)
        byte_range = re.search(rb"/ByteRange \[(\d+) (\d+) (\d+) (\d+)\]", original)
        assert contents is not None and byte_range is not None
        signed_end = int(byte_range.group(3)) + int(byte_range.group(4))
        in_contents = kind == "flip" and contents.start(1) <= position < contents.end(1)
        assert in_contents or position >= signed_end, (kind, position, signed_end)
        assert report.record == record_for(world.station, demo=False)
    else:
        assert report.code in FAILURE_CODES, report
