"""Fleet manifests and the fleet signer role: only the fleet's certificate signs a fleet manifest, and it signs
nothing else; every document is signed for real, each case differing from a genuine one in the property tested."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs import fleet_manifest, pki
from certs.documents import canonical_json, sign_document
from certs.errors import RecordError
from certs.oids import FLEET_SIGNING_EKU, STATION_SIGNING_EKU, VALIDATOR_SIGNING_EKU
from certs.pki import StationSigner
from certs.record import Host
from certs.verify import DocumentKind, load_trust_bundle, verify_with_bundle
from tests.unit.certs import verify_kit as kit
from tests.unit.certs.certs_test_kit import PkiWorld, build_world, record_for


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> PkiWorld:
    """A world of this module's own: its fleet certificates are revoked here, which no other test must see."""
    return build_world(tmp_path_factory.mktemp("fleet-pki"))


@pytest.fixture(scope="module")
def fleet_signer(own: PkiWorld) -> StationSigner:
    pki.issue_fleet(own.ca_dir, "fleet-hq", own.root / "fleet")
    return pki.load_fleet_signer(own.root / "fleet")


def _certificate(world: PkiWorld, signer: StationSigner, asset: str, serial: str, out: Path) -> tuple[Path, str]:
    base = record_for(signer, demo=False)
    record = dataclasses.replace(base, certificate_id=f"C-{asset}", job_id=f"J-{asset}",
                                 host=Host(asset_tag=asset, make="Dell", model="Latitude 5440", serial=f"H-{asset}"),
                                 media=dataclasses.replace(base.media, serial=serial))
    path = world.issue(record, signer, directory=out, name=f"{asset}.pdf")
    return path, hashlib.sha256(record.to_canonical_json()).hexdigest()


def _document(fleet: str, entries: list[tuple[str, str, str, str]], **overrides: Any) -> dict[str, Any]:
    """A fleet manifest of (asset, station, drive serial, record hash) entries."""
    devices = [{"asset": asset, "make": "Dell", "model": "Latitude 5440", "serial": f"H-{asset}",
                "drives": [{"serial": serial, "model": "MZVL2512HCJQ", "station_id": station,
                            "certificate_id": f"C-{asset}", "record_sha256": digest,
                            "certificate_file": fleet_manifest.certificate_file_name(station, f"C-{asset}"),
                            "level": "Purge", "method": "nvme.sanitize.crypto",
                            "sanitised_at": "2026-11-25T09:04:10+00:00"}]}
               for asset, station, serial, digest in entries]
    document: dict[str, Any] = {
        "schema": fleet_manifest.SCHEMA, "kind": fleet_manifest.KIND, "document_id": "FM-20261203-0000000001",
        "fleet": fleet, "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "demo": False,
        "scheme": {"name": "schools", "summary": "Laptops for schools", "destination": "GLA schools"},
        "partner": "Hillside Primary", "devices": devices, "tool": "wipe-agent test",
        "summary": f"{len(devices)} device(s) for schools: Hillside Primary"}
    document.update(overrides)
    return document


@pytest.fixture(scope="module")
def delivery(own: PkiWorld, fleet_signer: StationSigner, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A genuine fleet manifest of two devices from two stations, with its certificates folder."""
    work = tmp_path_factory.mktemp("fleet-delivery")
    second = pki.issue_station(own.ca_dir, "station-04", own.root / "station-04")
    assert second
    station_04 = pki.load_station_signer(own.root / "station-04")
    first_pdf, first_hash = _certificate(own, own.station, "PF-000001", "SER-1", work / "src")
    other_pdf, other_hash = _certificate(own, station_04, "PF-000002", "SER-2", work / "src")
    document = _document("fleet-hq", [("PF-000001", "station-01", "SER-1", first_hash),
                                      ("PF-000002", "station-04", "SER-2", other_hash)])
    files = {fleet_manifest.certificate_file_name("station-01", "C-PF-000001"): first_pdf.read_bytes(),
             fleet_manifest.certificate_file_name("station-04", "C-PF-000002"): other_pdf.read_bytes()}
    written = fleet_manifest.issue(document, fleet_signer, work / "out", files)
    return written.pdf


def _verify(path: Path, world: PkiWorld, bundle: Path | None = None, **options: Any) -> Any:
    return verify_with_bundle(path, load_trust_bundle(bundle or world.bundle), **options)


def test_a_fleet_manifest_verifies_as_one_signed_by_its_fleet(delivery: Path, own: PkiWorld) -> None:
    report = _verify(delivery, own)
    assert report.valid, report.reason
    assert report.kind is DocumentKind.FLEET_MANIFEST
    assert "signed by fleet fleet-hq" in report.summary and "2 device(s) for schools" in report.summary
    checks = fleet_manifest.check_certificates(report.document, delivery.parent / "certificates",
                                               load_trust_bundle(own.bundle))
    assert [check.ok for check in checks] == [True, True], checks
    assert fleet_manifest.check_json_copy(delivery, report.document) == ""
    assert fleet_manifest.check_csv_copy(delivery, report.document) == ""
    # a station manifest was asked for: a fleet manifest is another kind
    assert _verify(delivery, own, expect=DocumentKind.MANIFEST).code == "wrong_kind"


def test_the_fleet_certificate_profile(fleet_signer: StationSigner) -> None:
    certificate = fleet_signer.certificate
    from cryptography import x509

    assert list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [FLEET_SIGNING_EKU]
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment and not usage.key_cert_sign
    units = [item.value for item in certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    assert units == [pki.FLEET_OU]


def test_a_fleet_name_that_is_not_an_identifier_and_a_second_key_are_refused(own: PkiWorld, tmp_path: Path) -> None:
    with pytest.raises(pki.PkiError, match="fleet name"):
        pki.issue_fleet(own.ca_dir, "fleet hq/1", tmp_path / "a")
    pki.issue_fleet(own.ca_dir, "fleet-b", tmp_path / "b")
    with pytest.raises(pki.PkiError, match="refusing to overwrite"):
        pki.issue_fleet(own.ca_dir, "fleet-b", tmp_path / "b")


def test_a_station_and_the_fleet_never_share_a_name_whichever_is_issued_first(own: PkiWorld, tmp_path: Path) -> None:
    """"signed by fleet station-01" or "station fleet-c" is a reader's trap: refused both ways, in any case."""
    with pytest.raises(pki.PkiError, match="is a station of this CA"):
        pki.issue_fleet(own.ca_dir, "STATION-01", tmp_path / "upper")
    pki.issue_fleet(own.ca_dir, "fleet-c", tmp_path / "c")
    for name in ("fleet-c", "Fleet-C"):
        with pytest.raises(pki.PkiError, match="is the fleet's name"):
            pki.issue_station(own.ca_dir, name, tmp_path / f"station-{name}")
        assert not (tmp_path / f"station-{name}").exists()


def _sign_fleet_manifest(document: dict[str, Any], signer: StationSigner, path: Path) -> Path:
    """A fleet manifest signed by ``signer`` whatever its role (issue() itself refuses a mismatched name)."""
    payload = canonical_json(document)
    pdf = sign_document(fleet_manifest.render(document), kind=fleet_manifest.KIND, document_id=document["document_id"],
                        payload=payload, sha256=hashlib.sha256(payload).hexdigest(), issued_at=document["created_at"],
                        signer=signer, reason=fleet_manifest.TITLE)
    path.write_bytes(pdf)
    return path


def test_a_station_key_may_not_sign_a_fleet_manifest(own: PkiWorld, tmp_path: Path) -> None:
    document = _document("station-01", [("PF-000001", "station-01", "SER-1", "a" * 64)])
    report = _verify(_sign_fleet_manifest(document, own.station, tmp_path / "f.pdf"), own)
    assert report.code == "signer_profile" and "only the fleet's certificate" in report.reason


def test_a_fleet_key_may_not_sign_a_certificate_or_a_station_document(own: PkiWorld, fleet_signer: StationSigner,
                                                                      tmp_path: Path) -> None:
    record = record_for(fleet_signer, demo=False)  # the record even names the fleet as its station
    certificate = own.issue(record, fleet_signer, directory=tmp_path)
    report = _verify(certificate, own)
    assert report.code == "signer_profile" and "fleet certificate" in report.reason
    from certs.manifest import render_manifest

    station_manifest = {"schema": 2, "kind": "manifest", "document_id": "MF-1", "station_id": "fleet-hq",
                        "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "demo": False,
                        "scheme": {"name": "schools", "summary": "s", "destination": "d"},
                        "devices": [{"asset": "PF-1", "drives": [{"certificate_id": "C", "record_sha256": "a" * 64,
                                                                  "certificate_file": "c.pdf", "serial": "S"}]}],
                        "summary": "1 device"}
    payload = canonical_json(station_manifest)
    pdf = sign_document(render_manifest(station_manifest), kind="manifest", document_id="MF-1", payload=payload,
                        sha256=hashlib.sha256(payload).hexdigest(), issued_at=station_manifest["created_at"],
                        signer=fleet_signer, reason="x")
    (tmp_path / "m.pdf").write_bytes(pdf)
    report = _verify(tmp_path / "m.pdf", own)
    assert report.code == "signer_profile" and "fleet manifests only" in report.reason


@pytest.mark.parametrize(("usages", "unit", "problem"), [
    ((FLEET_SIGNING_EKU, STATION_SIGNING_EKU), pki.FLEET_OU, "both a station and a fleet"),
    ((VALIDATOR_SIGNING_EKU, FLEET_SIGNING_EKU), pki.FLEET_OU, "both a validator and a fleet"),
    ((FLEET_SIGNING_EKU,), pki.STATION_OU, f"does not name the unit {pki.FLEET_OU!r}"),
    ((FLEET_SIGNING_EKU,), pki.TLS_SERVER_OU, f"does not name the unit {pki.FLEET_OU!r}"),  # the fleet's TLS unit
    ((ExtendedKeyUsageOID.SERVER_AUTH,), pki.TLS_SERVER_OU, "not a station signing certificate"),
])
def test_only_the_exact_fleet_profile_signs_a_fleet_manifest(own: PkiWorld, tmp_path: Path, usages: Any, unit: str,
                                                             problem: str) -> None:
    certificate, key = kit.mint(own.ca_dir, common_name="fleet-hq", unit=unit, extended=usages)
    signer = kit.signer_from(certificate, key, own.ca_dir, station_id="fleet-hq")
    document = _document("fleet-hq", [("PF-000001", "station-01", "SER-1", "a" * 64)])
    report = _verify(_sign_fleet_manifest(document, signer, tmp_path / "f.pdf"), own)
    assert report.code == "signer_profile" and problem in report.reason, report.reason


def test_a_manifest_naming_another_fleet_is_refused(own: PkiWorld, fleet_signer: StationSigner,
                                                    tmp_path: Path) -> None:
    document = _document("fleet-other", [("PF-000001", "station-01", "SER-1", "a" * 64)])
    report = _verify(_sign_fleet_manifest(document, fleet_signer, tmp_path / "f.pdf"), own)
    assert report.code == "station_mismatch" and "fleet-other" in report.reason


def test_an_asset_or_certificate_listed_twice_is_refused_when_signing_and_when_verifying(
        own: PkiWorld, fleet_signer: StationSigner, tmp_path: Path) -> None:
    twice = _document("fleet-hq", [("PF-000001", "station-01", "SER-1", "a" * 64),
                                   ("pf-000001", "station-04", "SER-9", "b" * 64)])
    with pytest.raises(RecordError, match="asset pf-000001 is listed twice"):
        fleet_manifest.issue(twice, fleet_signer, tmp_path / "out", {})
    report = _verify(_sign_fleet_manifest(twice, fleet_signer, tmp_path / "twice.pdf"), own)
    assert report.code == "bad_record" and "listed twice" in report.reason
    shared = _document("fleet-hq", [("PF-000001", "station-01", "SER-1", "a" * 64),
                                    ("PF-000002", "station-01", "SER-2", "b" * 64)])
    shared["devices"][1]["drives"][0]["certificate_id"] = "C-PF-000001"
    report = _verify(_sign_fleet_manifest(shared, fleet_signer, tmp_path / "shared.pdf"), own)
    assert report.code == "bad_record" and "certificate C-PF-000001 of station-01 is listed twice" in report.reason


@pytest.mark.parametrize("again", ["pf-000001", "PF-000001 ", " PF-000001", "PF-000001\u00a0",
                                   "\uff30\uff26-000001"])
def test_an_asset_listed_twice_in_disguise_is_refused_when_verifying(
        own: PkiWorld, fleet_signer: StationSigner, tmp_path: Path, again: str) -> None:
    twice = _document("fleet-hq", [("PF-000001", "station-01", "SER-1", "a" * 64),
                                   (again, "station-04", "SER-9", "b" * 64)])
    report = _verify(_sign_fleet_manifest(twice, fleet_signer, tmp_path / "twice.pdf"), own)
    assert report.code == "bad_record" and "listed twice" in report.reason, report.reason


def test_altered_bytes_are_refused(own: PkiWorld, delivery: Path, tmp_path: Path) -> None:
    data = bytearray(delivery.read_bytes())
    offset = len(data) // 3  # inside the signed range (the page's content stream), not the signature
    data[offset] ^= 0x01
    (tmp_path / "altered.pdf").write_bytes(bytes(data))
    report = _verify(tmp_path / "altered.pdf", own)
    assert (report.valid, report.code) == (False, "modified"), report


def test_a_revoked_fleet_certificate_is_refused(own: PkiWorld, tmp_path: Path) -> None:
    issued = pki.issue_fleet(own.ca_dir, "fleet-rev", tmp_path / "fleet")
    signer = pki.load_fleet_signer(tmp_path / "fleet")
    document = _document("fleet-rev", [("PF-000001", "station-01", "SER-1", "a" * 64)])
    path = _sign_fleet_manifest(document, signer, tmp_path / "f.pdf")
    assert _verify(path, own).valid
    pki.revoke(own.ca_dir, issued.serial)
    report = _verify(path, own, pki.make_bundle(own.ca_dir, tmp_path / "bundle.pem"))
    # untimestamped: judged now, and the fleet's certificate is revoked now
    assert report.code == "revoked" and "fleet certificate" in report.reason and "fleet-rev" in report.reason


def test_a_page_that_shows_more_or_other_than_is_signed_is_refused(own: PkiWorld, fleet_signer: StationSigner,
                                                                    tmp_path: Path) -> None:
    signed = _document("fleet-hq", [("PF-000001", "station-01", "SER-1", "a" * 64)])
    payload = canonical_json(signed)

    def forged(shown: dict[str, Any], name: str) -> Any:
        pdf = sign_document(fleet_manifest.render(shown), kind=fleet_manifest.KIND, document_id=signed["document_id"],
                            payload=payload, sha256=hashlib.sha256(payload).hexdigest(),
                            issued_at=signed["created_at"], signer=fleet_signer, reason=fleet_manifest.TITLE)
        (tmp_path / name).write_bytes(pdf)
        return _verify(tmp_path / name, own)

    # one more row printed than is signed (same summary, same count in the subtitle)
    extra = _document("fleet-hq", [("PF-000001", "station-01", "SER-1", "a" * 64),
                                   ("PF-000009", "station-01", "SER-9", "b" * 64)], summary=signed["summary"])
    report = forged(extra, "extra.pdf")
    assert report.code == "visible_text_mismatch" and "PF-000009" in report.reason, report.reason
    # another drive serial printed in the row
    other = _document("fleet-hq", [("PF-000001", "station-01", "SER-X", "a" * 64)])
    report = forged(other, "other.pdf")
    assert report.code == "visible_text_mismatch" and "row 1" in report.reason, report.reason


@pytest.mark.parametrize("demo", [False, True])
def test_a_manifest_of_many_pages_verifies_and_its_demo_form_says_so(own: PkiWorld, fleet_signer: StationSigner,
                                                                      tmp_path: Path, demo: bool) -> None:
    entries = [(f"PF-{number:06d}", f"station-{number % 3 + 1:02d}", f"SER-{number}", f"{number:064x}")
               for number in range(1, 61)]
    document = _document("fleet-hq", entries, demo=demo)
    report = _verify(_sign_fleet_manifest(document, fleet_signer, tmp_path / "many.pdf"), own)
    assert report.valid, report.reason
    from pypdf import PdfReader

    assert len(PdfReader(tmp_path / "many.pdf").pages) > 1
    assert report.summary.startswith("DEMONSTRATION: ") == demo


def test_a_timestamped_fleet_manifest_outlives_a_later_revocation_of_its_key(own: PkiWorld, tmp_path: Path) -> None:
    """Long-term like a station manifest: signature timestamp, DSS with the CRL, document timestamp; a revocation
    after the proven signing time does not undo it, as for a station."""
    tsa = kit.make_tsa(own.ca_dir)
    issued = pki.issue_fleet(own.ca_dir, "fleet-ltv", tmp_path / "fleet")
    signer = pki.load_fleet_signer(tmp_path / "fleet")
    document = _document("fleet-ltv", [("PF-000001", "station-01", "SER-1", "a" * 64)])
    written = fleet_manifest.issue(document, signer, tmp_path / "out", {
        fleet_manifest.certificate_file_name("station-01", "C-PF-000001"): b"%PDF-1.7 placeholder"},
        timestamper=tsa.stamper())
    from cryptography import x509

    crl = x509.load_pem_x509_crl((own.ca_dir / pki.CA_CRL).read_bytes())
    bundle = kit.bundle_with(own, tmp_path / "bundle.pem", crl, [tsa.certificate])
    report = _verify(written.pdf, own, bundle)
    assert report.valid and report.timestamped, report.reason
    untimestamped = _sign_fleet_manifest(document, signer, tmp_path / "untimestamped.pdf")
    import time

    time.sleep(1.1)  # a CRL states revocation times to the second: revoke clearly after the timestamp
    pki.revoke(own.ca_dir, issued.serial)  # revoked after the timestamp proves it was signed
    later = x509.load_pem_x509_crl((own.ca_dir / pki.CA_CRL).read_bytes())
    report = _verify(written.pdf, own, kit.bundle_with(own, tmp_path / "later.pdf.pem", later, [tsa.certificate]))
    assert report.valid and report.kind is DocumentKind.FLEET_MANIFEST, report.reason
    assert "timestamped" in report.status
    # the same key's untimestamped manifest is judged now, when the key is revoked
    assert _verify(untimestamped, own, tmp_path / "later.pdf.pem").code == "revoked"


@pytest.mark.parametrize("signer_kind", ["officer", "station-on-instruction"])
def test_a_fleet_key_may_not_sign_a_validation_statement_or_a_destruction_report(
        own: PkiWorld, fleet_signer: StationSigner, tmp_path: Path, signer_kind: str) -> None:
    from certs.destruction import issue_destruction_report
    from certs.validation import issue_statement
    from tests.unit.certs.test_validation_statement import statement

    issue_statement(statement(station_id="fleet-hq", signer_kind=signer_kind, by="fleet-hq"), fleet_signer,
                    tmp_path / "statement.pdf")
    report = _verify(tmp_path / "statement.pdf", own)
    assert report.code == "signer_profile" and "fleet manifests only, not a validation statement" in report.reason
    destruction = {
        "schema": 1, "kind": "destruction_report", "document_id": "DR-TEST-1", "station_id": "fleet-hq",
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "demo": False, "asset": "PF-000003",
        "method": "shred", "host": {"make": "HP", "model": "EliteBook 840", "serial": "HP840Y"},
        "drives": [{"model": "ST1000LM035", "serial": "WKP3ABCD", "media": "hdd", "job_id": "job-1",
                    "state": "failed"}],
        "witness": "PC Witness", "operator": "Alex Morgan", "reference": "WEEE-123",
        "reasons": ["ATA security locked"], "summary": "one drive shredded"}
    issue_destruction_report(destruction, fleet_signer, tmp_path / "destruction.pdf")
    report = _verify(tmp_path / "destruction.pdf", own)
    assert report.code == "signer_profile" and "fleet manifests only, not a destruction report" in report.reason


def test_a_fleet_key_named_like_a_station_cannot_sign_that_stations_audit_checkpoints(own: PkiWorld,
                                                                                        tmp_path: Path) -> None:
    """Fleet names are identifiers like station ids: a fleet certificate issued as "station-01" must still not
    pass for station-01 where a raw station signature is checked (audit checkpoints)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    from certs.verify import check_station_signature

    with pytest.raises(pki.PkiError, match="is a station of this CA"):
        pki.issue_fleet(own.ca_dir, "station-01", tmp_path / "refused")
    certificate, key = kit.mint(own.ca_dir, common_name="station-01", unit=pki.FLEET_OU, extended=(FLEET_SIGNING_EKU,))
    posing = kit.signer_from(certificate, key, own.ca_dir)  # as another CA tool could issue it
    signed = b"checkpoint payload"
    bundle = load_trust_bundle(own.bundle)
    genuine = own.station.private_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    assert check_station_signature(own.station.certificate, signed, genuine, datetime.now(UTC), bundle,
                                   station_id="station-01") is None
    forged = posing.private_key.sign(signed, ec.ECDSA(hashes.SHA256()))
    problem = check_station_signature(posing.certificate, signed, forged, datetime.now(UTC), bundle,
                                      station_id="station-01")
    assert problem is not None and problem.code == "signer_profile" and "fleet certificate" in problem.reason
