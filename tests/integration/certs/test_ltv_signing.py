"""PAdES B-LTA on the signing side, against a real ``wipe-agent tsa serve`` on loopback.

Read back from the bytes: the signature timestamp, the DSS (certificates and CRL), the document
timestamp, and that the revisions after the signed one hold nothing else. pdfsig is the second
reader; ``certificates extend`` is run as a real CLI subprocess.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.reader import PdfFileReader

from certs import pki
from certs.documents import canonical_json, render_document, sign_document_long_term
from certs.issue import issue_certificate_details
from certs.ltv import LtvLevel, later_revision_objects
from certs.verify import verify_file
from tests.integration.certs.tsa_kit import running_tsa
from tests.unit.certs.certs_test_kit import PkiWorld, record_for, run_tool

DER = serialization.Encoding.DER
DSS_REVISION = ("/Catalog", "/DSS")
"""A DSS revision writes the catalog (to point at the DSS), the DSS and one stream per certificate/CRL."""
TIMESTAMP_REVISION = ("/Annot", "/DocTimeStamp", "dictionary")
"""A document timestamp writes its field (merged widget, on no page), the signature value and the AcroForm."""


@dataclass(frozen=True)
class Tsa:
    """A TSA issued by a CA, running on loopback."""

    url: str
    certificate: x509.Certificate


@pytest.fixture(scope="module")
def tsa(world: PkiWorld, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tsa]:
    """The organisation's TSA (issued by the world's CA), served by a real subprocess."""
    directory = tmp_path_factory.mktemp("ltv") / "tsa"
    issued = pki.issue_tsa(world.ca_dir, directory)
    with running_tsa(directory) as running:
        yield Tsa(running.url, x509.load_pem_x509_certificate(issued.certificate_path.read_bytes()))


def _reader(path: Path) -> PdfFileReader:
    return PdfFileReader(io.BytesIO(path.read_bytes()), strict=True)


def _dss(path: Path) -> tuple[set[bytes], set[bytes]]:
    """(certificate DERs, CRL DERs) in the document's DSS."""
    dss = _reader(path).root["/DSS"]
    certificates = {item.get_object().data for item in dss.get("/Certs", [])}
    crls = {item.get_object().data for item in dss.get("/CRLs", [])}
    return certificates, crls


def _signature_timestamp(path: Path) -> Any:
    """The station signature's RFC 3161 token (None when absent)."""
    station = [item for item in _reader(path).embedded_signatures if item.sig_object_type != "/DocTimeStamp"]
    assert len(station) == 1
    for info in station[0].signed_data["signer_infos"]:
        for attribute in info["unsigned_attrs"] or []:
            if attribute["type"].native == "signature_time_stamp_token":
                return attribute["values"][0]
    return None


def _document_timestamps(path: Path) -> list[Any]:
    return [item for item in _reader(path).embedded_signatures if item.sig_object_type == "/DocTimeStamp"]


def _pdfsig_blocks(path: Path) -> list[str]:
    output = run_tool("pdfsig", path).stdout
    return [block for block in output.split("Signature #")[1:]]


def _assert_b_lta(path: Path, world: PkiWorld, tsa: Tsa) -> None:
    token = _signature_timestamp(path)
    assert token is not None, "no signature timestamp"
    token_certificates = {choice.chosen.dump() for choice in token["content"]["certificates"]}
    assert tsa.certificate.public_bytes(DER) in token_certificates
    certificates, crls = _dss(path)
    station_der = world.station.certificate.public_bytes(DER)
    ca_der = x509.load_pem_x509_certificate((world.ca_dir / "ca.crt").read_bytes()).public_bytes(DER)
    assert {station_der, ca_der, tsa.certificate.public_bytes(DER)} <= certificates
    assert world.station.crl is not None
    assert crls == {world.station.crl.public_bytes(DER)}, "the DSS holds the station's CRL, as at signing"
    stamps = _document_timestamps(path)
    assert len(stamps) == 1
    assert stamps[0].signer_cert.dump() == tsa.certificate.public_bytes(DER)
    revisions = later_revision_objects(path.read_bytes())
    assert [revision.objects for revision in revisions] == [
        (*DSS_REVISION, *["stream"] * (len(certificates) + len(crls))), TIMESTAMP_REVISION]
    blocks = _pdfsig_blocks(path)
    assert len(blocks) == 2
    assert "Signature Validation: Signature is Valid." in blocks[0]
    assert "Not total document signed" in blocks[0]
    assert "Total document signed" in blocks[1] and "Not total" not in blocks[1]
    assert "timestamping authority" in blocks[1]


def test_a_certificate_is_b_lta_with_chain_and_crl_read_back(world: PkiWorld, tsa: Tsa, tmp_path: Path) -> None:
    issued = issue_certificate_details(record_for(world.station), world.station, tmp_path / "cert.pdf",
                                       tsa_url=tsa.url)
    assert (issued.level, issued.timestamped, issued.problems) == (LtvLevel.B_LTA, True, ())
    _assert_b_lta(issued.path, world, tsa)
    report = verify_file(issued.path, world.bundle)
    assert report.valid and report.timestamped, report.reason


def test_a_failure_report_is_b_lta(world: PkiWorld, tsa: Tsa, tmp_path: Path) -> None:
    record = record_for(world.station, failed=True)
    issued = issue_certificate_details(record, world.station, tmp_path / "failure.pdf", tsa_url=tsa.url)
    assert issued.level is LtvLevel.B_LTA
    _assert_b_lta(issued.path, world, tsa)
    report = verify_file(issued.path, world.bundle)
    assert report.valid and report.kind == "failure_report", report.reason


@pytest.mark.parametrize("kind", ["manifest", "destruction_report"])
def test_manifests_and_destruction_reports_are_b_lta(world: PkiWorld, tsa: Tsa, tmp_path: Path, kind: str) -> None:
    payload = canonical_json({"kind": kind, "document_id": "DOC-1", "station_id": "station-01"})
    import hashlib

    pdf = render_document(title=kind, subtitle="test", fields=[("Document", "DOC-1")], header=["a"], rows=[["b"]],
                          widths=[None], demo=True, footer="test")
    signed = sign_document_long_term(
        pdf, kind=kind, document_id="DOC-1", payload=payload, sha256=hashlib.sha256(payload).hexdigest(),
        issued_at="2026-01-01T00:00:00+00:00", signer=world.station, reason="test", tsa_url=tsa.url)
    assert signed.level is LtvLevel.B_LTA
    path = tmp_path / f"{kind}.pdf"
    path.write_bytes(signed.data)
    _assert_b_lta(path, world, tsa)


def _extend(*arguments: str | Path, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli.main", "--state-dir", str(state), "certificates",
                           "extend", *map(str, arguments), "--json"],
                          capture_output=True, text=True, timeout=120, check=False)


def test_unreachable_tsa_signs_b_b_then_extend_makes_it_b_lta(world: PkiWorld, tsa: Tsa, tmp_path: Path) -> None:
    folder = tmp_path / "certificates"
    issued = issue_certificate_details(record_for(world.station), world.station, folder / "cert.pdf",
                                       tsa_url="http://127.0.0.1:9/")
    assert (issued.level, issued.timestamped, issued.needs_extension) == (LtvLevel.B_B, False, True)
    assert _signature_timestamp(issued.path) is None and not _document_timestamps(issued.path)
    certificates, crls = _dss(issued.path)  # the DSS is there even without a TSA
    assert world.station.certificate.public_bytes(DER) in certificates and len(crls) == 1
    before = issued.path.read_bytes()

    result = _extend(folder, "--tsa-url", tsa.url, state=world.station_state)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [item["outcome"] for item in json.loads(result.stdout)["results"]] == ["extended"]
    after = issued.path.read_bytes()
    assert after.startswith(before), "extend only appends"
    assert len(_document_timestamps(issued.path)) == 1
    revisions = later_revision_objects(after)
    # The DSS written at issue already holds everything (no token, so no TSA certificate yet):
    # extend writes no empty DSS revision, just the document timestamp.
    assert [revision.objects[:2] for revision in revisions[:1]] == [DSS_REVISION]
    assert [revision.objects for revision in revisions[1:]] == [TIMESTAMP_REVISION]
    assert "Total document signed" in _pdfsig_blocks(issued.path)[-1]
    assert verify_file(issued.path, world.bundle).valid

    again = _extend(folder, "--tsa-url", tsa.url, state=world.station_state)
    assert again.returncode == 0
    assert [item["outcome"] for item in json.loads(again.stdout)["results"]] == ["unchanged"]
    assert issued.path.read_bytes() == after, "idempotent: a B-LTA file that is not due is not touched"


def test_extend_renews_an_ageing_timestamp_with_an_archive_timestamp(
    world: PkiWorld, tsa: Tsa, tmp_path: Path
) -> None:
    short = tmp_path / "short-tsa"
    ageing = pki.issue_tsa(world.ca_dir, short, name="Ageing TSA", valid_days=30)
    ageing_certificate = x509.load_pem_x509_certificate(ageing.certificate_path.read_bytes())
    with running_tsa(short) as old:
        issued = issue_certificate_details(record_for(world.station), world.station, tmp_path / "c" / "cert.pdf",
                                           tsa_url=old.url)
    assert issued.level is LtvLevel.B_LTA
    first = issued.path.read_bytes()

    # Renewal time: the archive DSS takes the revocation data current now, from a fresh bundle.
    fresh = pki.make_bundle(world.ca_dir, tmp_path / "fresh-bundle.pem")
    fresh_crl = pki.parse_trust_bundle(fresh.read_bytes()).crl.public_bytes(DER)
    result = _extend(issued.path, "--tsa-url", tsa.url, "--trust", fresh,  # default window: 2 years
                     state=world.station_state)
    assert result.returncode == 0, result.stdout + result.stderr
    entry = json.loads(result.stdout)["results"][0]
    assert entry["outcome"] == "renewed" and "previous TSA certificate expires" in entry["detail"]
    stamps = _document_timestamps(issued.path)
    assert [stamp.signer_cert.dump() for stamp in stamps] == [
        ageing_certificate.public_bytes(DER), tsa.certificate.public_bytes(DER)]
    data = issued.path.read_bytes()
    assert data.startswith(first)
    # The archive DSS (before the new timestamp) carries the old TSA's certificate and the CRL.
    new_revisions = later_revision_objects(data)[len(later_revision_objects(first)):]
    assert len(new_revisions) == 2
    # The DSS exists already, so only it and two new streams are written (the catalog is not): the
    # fresh CRL and the bundle's other TSA certificate (the one making the new timestamp).
    assert new_revisions[0].objects == ("/DSS", "stream", "stream")
    assert new_revisions[1].objects == TIMESTAMP_REVISION
    certificates, crls = _dss(issued.path)
    assert {ageing_certificate.public_bytes(DER), tsa.certificate.public_bytes(DER)} <= certificates
    assert world.station.crl is not None and crls == {world.station.crl.public_bytes(DER), fresh_crl}
    blocks = _pdfsig_blocks(issued.path)
    assert len(blocks) == 3 and "Total document signed" in blocks[-1]
    assert verify_file(issued.path, world.bundle).valid

    # With a long-lived TSA now newest, nothing more is due.
    again = _extend(issued.path, "--tsa-url", tsa.url, state=world.station_state)
    assert json.loads(again.stdout)["results"][0]["outcome"] == "unchanged"


def test_extend_refuses_an_untimestamped_document_of_an_expired_station(
    world: PkiWorld, tsa: Tsa, tmp_path: Path
) -> None:
    path = world.issue(record_for(world.expired), world.expired, directory=tmp_path)
    before = path.read_bytes()
    result = _extend(path, "--tsa-url", tsa.url, state=world.station_state)
    assert result.returncode == 1, result.stdout + result.stderr
    entry = json.loads(result.stdout)["results"][0]
    assert entry["outcome"] == "refused" and entry["code"] == "extend_refused"
    assert "expired on" in entry["detail"] and "cannot be extended" in entry["detail"]
    assert path.read_bytes() == before, "a refused file is not touched"
    assert "Traceback" not in result.stderr


def test_extend_bad_input_exits_2(world: PkiWorld, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    cases = [((tmp_path / "missing", "--tsa-url", "http://127.0.0.1:9/"), "no such file or folder"),
             ((tmp_path / "empty", "--tsa-url", "http://127.0.0.1:9/"), "no PDF files"),
             ((tmp_path, "--tsa-url", "ftp://x/"), "http:// or https://"),
             ((tmp_path,), "no TSA")]
    for arguments, message in cases:
        result = _extend(*arguments, state=world.station_state)
        assert result.returncode == 2 and message in result.stderr, (arguments, result.stderr)
        assert "Traceback" not in result.stderr


def test_extend_never_writes_an_extension_that_adds_anything_else(
    world: PkiWorld, tsa: Tsa, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    from certs import ltv

    issued = issue_certificate_details(record_for(world.station), world.station, tmp_path / "cert.pdf",
                                       tsa_url="http://127.0.0.1:9/")
    original = issued.path.read_bytes()

    def sneaky_timestamp(pdf: bytes, timestamper: Any) -> bytes:
        # A "timestamp" revision that also rewrites page 1 (as pyHanko's own invisible widget would).
        writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=True)
        page_reference = writer.root["/Pages"]["/Kids"][0]
        page = page_reference.get_object()
        page[generic.NameObject("/Rotate")] = generic.NumberObject(90)
        writer.update_container(page)
        output = io.BytesIO()
        writer.write(output)
        return output.getvalue()

    monkeypatch.setattr(ltv, "add_document_timestamp", sneaky_timestamp)
    with pytest.raises(ltv.ExtendRefused, match="unexpected objects"):
        ltv.extend_pdf(original, timestamper=None, chain=world.station.chain, crl=world.station.crl,
                       now=pki.utc_now())
    with pytest.raises(ltv.ExtendRefused, match="does not keep the original bytes"):
        ltv.check_extension(original, original[:-10] + b"%%EOF\n")


def test_extend_refuses_damaged_and_unsigned_files_and_leaves_them(world: PkiWorld, tsa: Tsa, tmp_path: Path) -> None:
    from certs.render import render_pdf

    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "junk.pdf").write_bytes(b"%PDF-1.7\nnot really\n")
    (folder / "unsigned.pdf").write_bytes(render_pdf(record_for(world.station)))
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    result = _extend(folder, "--tsa-url", tsa.url, state=world.station_state)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    results = json.loads(result.stdout)["results"]
    outcomes = {Path(item["path"]).name: (item["outcome"], item["code"]) for item in results}
    assert outcomes == {"junk.pdf": ("refused", "extend_refused"), "unsigned.pdf": ("refused", "extend_refused")}
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before


def _lta_simulation(path: Path, ca_dir: Path, years: int) -> Any:
    """pyHanko's AdES LTA validation simulated ``years`` ahead, assuming the archive timestamps
    are maintained from now on: does the file hold what a verifier then needs? (A second reader
    of our DSS and timestamps, local data only: nothing is fetched.)"""
    import asyncio
    from datetime import timedelta

    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.validation.ades import simulate_future_ades_lta_validation
    from pyhanko.sign.validation.policy_decl import (
        PdfSignatureValidationSpec,
        RevinfoOnlineFetchingRule,
        RevocationInfoGatheringSpec,
        SignatureValidationSpec,
    )
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
    from pyhanko_certvalidator.registry import SimpleTrustManager

    ca = asn1_x509.Certificate.load(
        x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes()).public_bytes(DER))
    policy = CertValidationPolicySpec(trust_manager=SimpleTrustManager.build(trust_roots=[ca]),
                                      revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO))
    spec = PdfSignatureValidationSpec(SignatureValidationSpec(
        cert_validation_policy=policy,
        revinfo_gathering_policy=RevocationInfoGatheringSpec(online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY)))
    station = next(item for item in _reader(path).embedded_signatures if item.sig_object_type != "/DocTimeStamp")
    moment = pki.utc_now() + timedelta(days=365 * years + 1)
    return asyncio.run(simulate_future_ades_lta_validation(station, spec, moment)).ades_subindic


def test_pyhanko_finds_b_lta_documents_verifiable_after_the_station_certificate_expires(
    world: PkiWorld, tsa: Tsa, tmp_path: Path
) -> None:
    from pyhanko.sign.ades.report import AdESIndeterminate, AdESPassed

    assert world.station.certificate.not_valid_after_utc < pki.utc_now() + pki.timedelta(days=3 * 365)
    lta = issue_certificate_details(record_for(world.station), world.station, tmp_path / "lta.pdf", tsa_url=tsa.url)
    unstamped = issue_certificate_details(record_for(world.station), world.station, tmp_path / "bb" / "bb.pdf",
                                          tsa_url="http://127.0.0.1:9/")
    for years in (0, 3, 7):
        assert _lta_simulation(lta.path, world.ca_dir, years) is AdESPassed.OK, years
    # pyHanko's AdES algorithm insists on a *signature* timestamp (its own policy: PAdES lets a
    # document timestamp prove the time too, which is what 'certificates extend' adds and what our
    # verifier accepts), so a file signed while the TSA was down stays short of "passed" there.
    assert _lta_simulation(unstamped.path, world.ca_dir, 3) is AdESIndeterminate.SIG_CONSTRAINTS_FAILURE
    # A flipped byte in the signed revision is not maintainable either.
    data = bytearray(lta.path.read_bytes())
    data[len(data) // 4] ^= 0x01
    flipped = tmp_path / "flipped.pdf"
    flipped.write_bytes(bytes(data))
    assert _lta_simulation(flipped, world.ca_dir, 7) is not AdESPassed.OK


def test_extend_refuses_an_untimestamped_document_of_a_revoked_station(
    world: PkiWorld, tsa: Tsa, tmp_path: Path
) -> None:
    path = world.issue(record_for(world.revoked), world.revoked, directory=tmp_path)  # no TSA: B-B
    before = path.read_bytes()
    result = _extend(path, "--tsa-url", tsa.url, "--trust", world.bundle, state=world.station_state)
    assert result.returncode == 1, result.stdout + result.stderr
    entry = json.loads(result.stdout)["results"][0]
    assert entry["outcome"] == "refused" and "revoked" in entry["detail"]
    assert path.read_bytes() == before


def test_extend_refuses_a_tsa_the_organisation_did_not_certify(world: PkiWorld, tmp_path: Path) -> None:
    other = tmp_path / "other-ca"
    pki.init_ca("Someone Else", other)
    pki.issue_tsa(other, tmp_path / "other-tsa")
    path = world.issue(record_for(world.station), directory=tmp_path)  # B-B: extend would stamp it
    before = path.read_bytes()
    with running_tsa(tmp_path / "other-tsa") as foreign:
        result = _extend(path, "--tsa-url", foreign.url, state=world.station_state)
    assert result.returncode == 1, result.stdout + result.stderr
    entry = json.loads(result.stdout)["results"][0]
    assert entry["outcome"] == "refused" and "not certified by the station's CA" in entry["detail"]
    assert path.read_bytes() == before


def test_extend_refuses_a_forged_overlay_and_names_a_fifo(world: PkiWorld, tsa: Tsa, tmp_path: Path) -> None:
    """NEW-R2-6: a genuine B-B certificate with an appended revision that rewrites its page must never
    receive the organisation's document timestamp; a FIFO named *.pdf is named, not skipped silently."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    folder = tmp_path / "mixed"
    issued = issue_certificate_details(record_for(world.station), world.station, folder / "forged.pdf",
                                       tsa_url="http://127.0.0.1:9/")
    writer = IncrementalPdfFileWriter(io.BytesIO(issued.path.read_bytes()), strict=True)
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    page[generic.NameObject("/Rotate")] = generic.NumberObject(90)
    writer.update_container(page)
    output = io.BytesIO()
    writer.write(output)
    issued.path.write_bytes(output.getvalue())
    forged_before = issued.path.read_bytes()
    assert not verify_file(issued.path, world.bundle).valid
    os.mkfifo(folder / "pipe.pdf")

    result = _extend(folder, "--tsa-url", tsa.url, "--trust", world.bundle, state=world.station_state)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stdout + result.stderr
    results = json.loads(result.stdout)["results"]
    outcomes = {Path(item["path"]).name: (item["outcome"], item["code"]) for item in results}
    assert outcomes == {"forged.pdf": ("refused", "extend_refused"), "pipe.pdf": ("skipped", "unreadable")}
    assert issued.path.read_bytes() == forged_before, "a refused forgery is not touched"
