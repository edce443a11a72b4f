"""certs.structure on genuine station documents: every kind, B-B and B-LTA, passes and is described.

Each document is made by the project's own issuing code (certificate, failure report, batch
manifest, destruction report); the B-LTA revisions are added with pyHanko as the ``ltv`` branch will.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms

from certs import structure
from certs.destruction import issue_destruction_report
from certs.issue import sign_pdf
from certs.manifest import issue_manifest
from certs.render import render_pdf
from certs.structure import STRUCTURE_CODES, SignatureKind, StructureError, check_structure
from tests.unit.certs.certs_test_kit import PkiWorld, record_for, run_tool
from tests.unit.certs.structure_kit import (
    Ltv,
    add_document_timestamp,
    add_dss,
    make_blta,
    make_ltv,
    passes,
    pyhanko_update,
    raw_update,
    signed_revision_only,
    write,
)


@dataclass(frozen=True)
class Genuine:
    """The genuine B-B documents of each kind, and the LTV material to extend them."""

    ltv: Ltv
    documents: dict[str, bytes]


def _destruction_record(station_id: str) -> dict[str, object]:
    return {
        "schema": 1, "kind": "destruction_report", "document_id": "DR-TEST-0001", "station_id": station_id,
        "created_at": "2026-11-25T10:00:00+00:00", "demo": True, "asset": "PC-0042",
        "host": {"make": "Dell", "model": "OptiPlex 7080", "serial": "HOST123"},
        "drives": [{"model": "TEST HDD", "serial": "S1", "media": "hdd", "job_id": "job-1", "state": "failed"}],
        "method": "shred", "witness": "Sam Witness", "reference": "SHRED-778", "operator": "Alex Morgan",
        "reasons": ["the drive failed sanitisation"], "note": "", "tool": "wipe-agent test",
        "summary": "PC-0042: 1 drive(s) destroyed by shred, witnessed by Sam Witness",
    }


def _manifest(station_id: str, certificate_id: str, record_sha256: str) -> dict[str, object]:
    return {
        "schema": 2, "kind": "manifest", "document_id": "MF-TEST-0001", "station_id": station_id,
        "created_at": "2026-11-25T11:00:00+00:00", "demo": True,
        "scheme": {"name": "schools", "summary": "laptops for schools", "destination": "Example School",
                   "rules": {}},
        "devices": [{"asset": "PC-0042", "kind": "laptop", "make": "Dell", "model": "Latitude", "serial": "H1",
                     "drives": [{"model": "TEST SSD", "serial": "S2", "media": "ssd", "job_id": "job-2",
                                 "level": "Purge", "verification": "full", "certificate_id": certificate_id,
                                 "record_sha256": record_sha256, "certificate_file": "cert.pdf",
                                 "validations": []}],
                     "attestations": []}],
        "tool": "wipe-agent test", "summary": "1 device(s) for schools: Example School",
    }


@pytest.fixture(scope="module")
def genuine(world: PkiWorld, tmp_path_factory: pytest.TempPathFactory) -> Genuine:
    """One document of each kind, signed once for the module (with and without a signature timestamp)."""
    ltv = make_ltv(world)
    folder = tmp_path_factory.mktemp("structure-genuine")
    record = record_for(world.station)
    certificate = sign_pdf(render_pdf(record), record, world.station, timestamper=ltv.stamper)
    failed = record_for(world.station, failed=True)
    failure_report = sign_pdf(render_pdf(failed), failed, world.station)
    (folder / "cert.pdf").write_bytes(certificate)
    issue_destruction_report(_destruction_record(world.station.station_id), world.station, folder / "dr.pdf",
                             timestamper=ltv.stamper)
    files = issue_manifest(_manifest(world.station.station_id, record.certificate_id, record.sha256()),
                           world.station, folder / "manifest", {record.certificate_id: folder / "cert.pdf"})
    # The station now writes B-LTA (branch ltv); these tests build the later revisions themselves,
    # so they start from the signed revision alone (B-B / B-T).
    documents = {"certificate": certificate, "failure_report": failure_report,
                 "destruction_report": (folder / "dr.pdf").read_bytes(), "manifest": files.pdf.read_bytes()}
    return Genuine(ltv, {kind: signed_revision_only(data) for kind, data in documents.items()})


KINDS = ("certificate", "failure_report", "destruction_report", "manifest")


@pytest.mark.parametrize("kind", KINDS)
def test_genuine_b_b_document_passes(genuine: Genuine, kind: str) -> None:
    data = genuine.documents[kind]
    report = passes(data)
    assert report.revision_ends == (report.revision_ends[0], len(data))  # rendered PDF, then the signature
    signature = report.signature
    assert signature.kind is SignatureKind.SIGNATURE and signature.revision == 1
    assert signature.field_name == "WipeAgentSignature"
    start, gap_start, gap_end, tail = signature.byte_range
    assert start == 0 and gap_end + tail == len(data)
    # the CMS is exactly the DER (no padding) and the gap is its hex form plus zero padding
    assert asn1_cms.ContentInfo.load(signature.cms).dump() == signature.cms
    gap = data[gap_start:gap_end]
    assert gap.lower().startswith(b"<" + signature.cms.hex().encode())
    assert set(gap[1 + 2 * len(signature.cms):-1]) == {ord("0")}
    assert report.document_timestamps == () and report.later_revisions == ()


@pytest.mark.parametrize("kind", KINDS)
def test_genuine_b_lta_document_passes(genuine: Genuine, kind: str) -> None:
    signed = genuine.documents[kind]
    data = make_blta(signed, genuine.ltv)
    report = passes(data)
    assert len(report.revision_ends) == 4 and report.revision_ends[1] == len(signed)
    (timestamp,) = report.document_timestamps
    assert timestamp.kind is SignatureKind.DOCUMENT_TIMESTAMP and timestamp.revision == 3
    assert timestamp.byte_range[2] + timestamp.byte_range[3] == len(data)
    assert timestamp.field_name.startswith("Timestamp")
    info = asn1_cms.ContentInfo.load(timestamp.cms)
    assert info["content"]["encap_content_info"]["content_type"].native == "tst_info"
    assert report.later_revisions[0].startswith("revision 2: DSS (2 certificates, 1 CRLs")
    assert report.later_revisions[1].startswith("revision 3: document timestamp Timestamp")


@pytest.mark.parametrize("kind", KINDS)
def test_b_lta_extended_twice_passes_with_timestamps_in_file_order(genuine: Genuine, kind: str) -> None:
    once = make_blta(genuine.documents[kind], genuine.ltv)
    twice = add_document_timestamp(add_dss(once, genuine.ltv), genuine.ltv)
    report = passes(twice)
    assert [item.revision for item in report.document_timestamps] == [3, 5]
    assert report.document_timestamps[0].byte_range[2] < report.document_timestamps[1].byte_range[2]
    assert report.later_revisions[2].startswith("revision 4: DSS (3 certificates")


def _validation_context(world: PkiWorld, ltv: Ltv) -> object:
    """A pyHanko validation context trusting the world's CA, offline, with the LTV material."""
    from asn1crypto import x509 as asn1_x509
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from pyhanko_certvalidator import ValidationContext

    ca = x509.load_pem_x509_certificate((world.ca_dir / "ca.crt").read_bytes())
    return ValidationContext(
        trust_roots=[asn1_x509.Certificate.load(ca.public_bytes(serialization.Encoding.DER))],
        crls=list(ltv.crls), other_certs=list(ltv.certificates), allow_fetching=False, revocation_mode="soft-fail")


def test_pyhankos_archival_timestamp_chain_update_passes(world: PkiWorld, genuine: Genuine) -> None:
    """update_archival_timestamp_chain (what an 'extend' may use): DSS and timestamp in one revision, DSS after."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import signers

    blta = make_blta(genuine.documents["certificate"], genuine.ltv)
    data = signers.PdfTimeStamper(genuine.ltv.stamper).update_archival_timestamp_chain(
        PdfFileReader(io.BytesIO(blta)), _validation_context(world, genuine.ltv), in_place=False).getvalue()
    report = passes(data)
    assert [item.revision for item in report.document_timestamps] == [3, 4]
    assert report.later_revisions[-1].startswith("revision 5: DSS")


def test_pyhankos_own_pades_lta_signing_path_passes(world: PkiWorld, genuine: Genuine) -> None:
    """PdfSigner with use_pades_lta writes DSS and document timestamp in one revision, then a DSS after it."""
    import io

    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    context = _validation_context(world, genuine.ltv)
    metadata = signers.PdfSignatureMetadata(
        field_name="WipeAgentSignature", md_algorithm="sha256", subfilter=fields.SigSeedSubFilter.PADES,
        certify=True, docmdp_permissions=fields.MDPPerm.NO_CHANGES, embed_validation_info=True,
        use_pades_lta=True, validation_context=context)
    writer = IncrementalPdfFileWriter(io.BytesIO(render_pdf(record_for(world.station))))
    data = signers.PdfSigner(metadata, signer=world.station.pyhanko_signer(),
                             timestamper=genuine.ltv.stamper).sign_pdf(writer).getvalue()
    report = passes(data)
    assert [item.revision for item in report.document_timestamps] == [2]
    assert "DSS" in report.later_revisions[0] and "document timestamp" in report.later_revisions[0]
    assert report.later_revisions[1].startswith("revision 3: DSS")


def test_dss_with_a_vri_entry_for_the_signature_passes(genuine: Genuine) -> None:
    """The other DSS shape pyHanko writes: validation data tied to the signature by a /VRI entry."""
    import io

    from pyhanko.sign.validation.dss import DocumentSecurityStore

    signed = genuine.documents["certificate"]
    report = passes(signed)
    start, end = report.signature.byte_range[1:3]
    contents = bytes.fromhex(signed[start + 1:end - 1].decode())
    output = io.BytesIO(signed)
    DocumentSecurityStore.add_dss(output, sig_contents=contents, certs=list(genuine.ltv.certificates[:2]),
                                  crls=list(genuine.ltv.crls))
    data = add_document_timestamp(output.getvalue(), genuine.ltv)
    assert b"/VRI" in data[len(signed):]
    assert passes(data).later_revisions[0].startswith("revision 2: DSS (2 certificates")


def test_a_final_dss_revision_nobody_timestamped_is_allowed(genuine: Genuine) -> None:
    """pyHanko writes a timestamp's validation data after it: a DSS-only tail changes nothing a person reads."""
    data = add_dss(make_blta(genuine.documents["certificate"], genuine.ltv), genuine.ltv)
    report = passes(data)
    assert len(report.revision_ends) == 5 and report.later_revisions[-1].startswith("revision 4: DSS")


def test_an_uncovered_dss_revision_that_also_changes_the_title_is_an_unsigned_tail(genuine: Genuine) -> None:
    from pyhanko.pdf_utils import generic

    def edit(writer: object) -> None:
        info = writer._info.get_object()  # type: ignore[attr-defined]
        info["/Title"] = generic.TextStringObject("Certificate of sanitisation (re-issued)")
        writer.update_container(info)  # type: ignore[attr-defined]

    data = pyhanko_update(add_dss(genuine.documents["certificate"], genuine.ltv), edit)
    with pytest.raises(StructureError) as raised:
        check_structure(data)
    assert raised.value.code == "unsigned_tail"
    assert "/Title" in raised.value.reason and "revision 3" in raised.value.reason


def test_check_structure_in_a_fresh_interpreter(genuine: Genuine, tmp_path: Path) -> None:
    """No reliance on what other modules happened to import first (asn1crypto registers names lazily)."""
    import subprocess
    import sys

    path = write(tmp_path, "blta.pdf", make_blta(genuine.documents["certificate"], genuine.ltv))
    program = ("import sys; from certs.structure import check_structure; "
               "report = check_structure(open(sys.argv[1], 'rb').read()); print(len(report.document_timestamps))")
    result = subprocess.run([sys.executable, "-c", program, str(path)], capture_output=True, text=True, timeout=60,
                            check=False, cwd=Path(__file__).resolve().parents[3])
    assert (result.returncode, result.stdout.strip()) == (0, "1"), result.stderr


def test_pdfsig_agrees_that_a_genuine_b_b_certificate_is_whole_and_valid(genuine: Genuine, tmp_path: Path) -> None:
    path = write(tmp_path, "genuine.pdf", genuine.documents["certificate"])
    output = run_tool("pdfsig", path).stdout
    assert "Total document signed" in output and "Not total" not in output


def test_whitespace_after_the_last_eof_is_allowed_but_nothing_else(genuine: Genuine) -> None:
    data = genuine.documents["certificate"]
    passes(data + b"\r\n \n")
    with pytest.raises(StructureError) as raised:
        check_structure(data + b"\n%")
    assert raised.value.code == "unsigned_tail"


def test_every_code_is_documented_and_unknown_codes_are_refused() -> None:
    assert structure.__doc__ is not None
    for code in STRUCTURE_CODES:
        assert f"``{code}``" in structure.__doc__
    with pytest.raises(ValueError):
        StructureError("valid", "not a failure code")


def test_not_a_pdf_and_a_truncated_pdf_are_damaged(genuine: Genuine) -> None:
    data = genuine.documents["certificate"]
    for broken in (b"GIF89a" + data[6:], data[: len(data) // 2], b""):
        with pytest.raises(StructureError) as raised:
            check_structure(broken)
        assert raised.value.code == "damaged", raised.value.reason


def test_pyhankos_second_opinion_can_fail_a_file(genuine: Genuine) -> None:
    """The second opinion is not decorative: on a revision that rewrites the page's content it refuses."""
    data = raw_update(genuine.documents["certificate"],
                      {19: b"<< /Length 14 >>\nstream\nBT /F1 9 Tf ET\nendstream"})
    with pytest.raises(StructureError) as raised:
        structure._second_opinion(data, 1)
    assert raised.value.code == "modified_after_signing"
    structure._second_opinion(make_blta(genuine.documents["certificate"], genuine.ltv), 1)
