"""The manifest a school ticks off: 200 numbered rows with page totals, a CSV equal to the JSON, and a
verification that checks the certificates folder beside it (or says plainly that it did not).

Signing 200 real certificates takes about a minute on a station (measured: 26 s to build them, 16 s
for the manifest, 15 s to verify it with its folder), so the 200-row layout and CSV tests list 200
drives that share one real certificate, and the folder checks use a handful of real ones.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import re
import shutil
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.reuse.service import create_manifest
from agent.reuse.store import ReuseStore
from certs.cli import BadInput, run_verify
from certs.documents import canonical_json, sign_document
from certs.errors import RecordError
from certs.manifest import (
    CSV_NEUTRALISED,
    MANIFEST_COLUMNS,
    check_csv_copy,
    issue_manifest,
    render_csv,
    render_manifest,
)
from certs.verify import load_trust_bundle, verify_with_bundle
from tests.unit.reuse.kit import World, drive, ready_device

DEVICES = 200


def _pdftext(pdf: Path | bytes, tmp_path: Path, *options: str) -> str:
    if isinstance(pdf, bytes):
        path = tmp_path / "rendered.pdf"
        path.write_bytes(pdf)
        pdf = path
    return subprocess.run(["pdftotext", *options, str(pdf), "-"], check=True, capture_output=True,
                          text=True).stdout


def _batch(store: ReuseStore, world: World, count: int) -> dict[str, Any]:
    """``count`` eligible laptops, one real certificate each, in a signed manifest."""
    for index in range(1, count + 1):
        ready_device(store, world, f"PC-{index:03d}", [drive(f"SSD-{index:03d}")])
    return create_manifest(store, "schools", assets=None, all_eligible=True, out_dir=world.state.parent / "batch",
                           signer=world.signer, bundle=load_trust_bundle(world.bundle))


def _big_manifest(store: ReuseStore, world: World) -> tuple[dict[str, Any], Path]:
    """A manifest of :data:`DEVICES` devices whose drives all point at one real certificate."""
    created = _batch(store, world, 1)
    template = json.loads(Path(created["json"]).read_text())
    device = template["devices"][0]
    certificate = Path(created["certificates"]) / device["drives"][0]["certificate_file"]
    devices = []
    for index in range(1, DEVICES + 1):
        drives = [{**device["drives"][0], "serial": f"S{index:04d}-A", "certificate_id": f"CERT-{index:04d}-A",
                   "record_sha256": f"{index:064x}"}]
        if index % 50 == 0:  # some laptops hold two drives
            drives.append({**drives[0], "serial": f"S{index:04d}-B", "certificate_id": f"CERT-{index:04d}-B",
                           "record_sha256": f"{index + 10_000:064x}", "level": "Clear", "method": "overwrite.zero"})
        devices.append({**device, "asset": f"SCH-{index:04d}", "make": "Dell", "model": "Latitude 5420",
                        "serial": f"HOST{index:05d}", "drives": drives, "validation": None})
    devices[6]["model"] = "Latitude-5420-with-a-model-name-far-longer-than-its-column-can-hold-XYZ"
    devices[1]["validation"] = {"decision": "accept", "by": "Ms Validator", "role": "information-security-officer",
                                "at": "2026-12-01T10:00:00+00:00", "statement_id": "VS-1", "signer_kind": "officer"}
    devices[2]["asset"] = "=HYPERLINK(\"http://x\")"
    devices[3]["serial"] = "-2+3"
    manifest = {**template, "document_id": "MF-BIG-0001", "devices": devices,
                "summary": f"{DEVICES} device(s) for schools", "audit_checkpoint": {"sequence": 42, "head": "ab" * 32}}
    return manifest, certificate


def test_a_200_device_manifest_has_numbered_rows_page_totals_and_a_csv_equal_to_its_json(
        store: ReuseStore, world: World, tmp_path: Path) -> None:
    manifest, certificate = _big_manifest(store, world)
    files = {drive["certificate_id"]: certificate for device in manifest["devices"] for drive in device["drives"]}
    written = issue_manifest(manifest, world.signer, tmp_path / "big", files)
    report = verify_with_bundle(written.pdf, load_trust_bundle(world.bundle))
    assert report.valid, report.reason  # the verifier finds every row number, asset, serial and certificate id
    text = _pdftext(written.pdf, tmp_path)
    footers = re.findall(r"page (\d+) of (\d+) · (?:rows (\d+)\u2013(\d+) of (\d+)|no rows)", text)
    pages = int(footers[0][1])
    assert [int(page) for page, *_ in footers] == list(range(1, pages + 1)) and pages > 5
    assert {total for _page, total, *_ in footers} == {str(pages)}
    spans = [(int(first), int(last)) for _p, _t, first, last, total in footers if first]
    assert spans[0][0] == 1 and spans[-1][1] == DEVICES and all(total in ("", str(DEVICES))
                                                                 for *_x, total in footers)
    assert all(after[0] == before[1] + 1 for before, after in itertools.pairwise(spans))
    layout = _pdftext(written.pdf, tmp_path, "-layout")
    for number in (1, 2, 117, DEVICES):
        assert re.search(rf"^\s*{number}\s+SCH-{number:04d}\s+Dell\s+Latitude", layout, re.MULTILINE), number
    assert "200 device(s), 204 drive(s) (Clear 4, Purge 200); validated 1 of 200" in text
    squashed = "".join(text.split())  # cells wrap anywhere, even inside a word
    assert "acceptbyMsValidator(information-security-officer),2026-12-01,statementVS-1,signedbyofficer" in squashed
    assert "not validated" in text and "audit checkpoint #42 head abababababab" in text
    assert "Released by" in text and "Received by" in text and written.sha256 in text.replace("\n", "")
    # the CSV: one row per device, the values of the JSON, cells a spreadsheet would run neutralised
    rows = list(csv.reader(io.StringIO(written.csv.read_text(encoding="utf-8"))))
    assert rows[0] == [heading for _key, heading in MANIFEST_COLUMNS] and len(rows) == DEVICES + 1
    signed = json.loads(written.json.read_text())
    for number, (row, device) in enumerate(zip(rows[1:], signed["devices"], strict=True), start=1):
        cells = dict(zip([key for key, _heading in MANIFEST_COLUMNS], row, strict=True))
        plain = {key: value[1:] if value.startswith("'") and value[1:].startswith(CSV_NEUTRALISED) else value
                 for key, value in cells.items()}
        assert plain["no"] == str(number) and plain["asset"] == device["asset"]
        assert (plain["make"], plain["model"], plain["host_serial"]) == (device["make"], device["model"],
                                                                         device["serial"])
        for key, field in (("drive_serials", "serial"), ("level", "level"), ("method", "method"),
                           ("verification", "verification"), ("certificate_ids", "certificate_id"),
                           ("record_sha256", "record_sha256")):
            assert plain[key].split("; ") == [drive[field] for drive in device["drives"]], (number, key)
        assert plain["sanitised_on"].split("; ") == [drive["sanitised_at"][:10] for drive in device["drives"]]
    assert rows[3][1] == "'=HYPERLINK(\"http://x\")" and rows[4][4] == "'-2+3"
    assert check_csv_copy(written.pdf, signed) == ""
    written.csv.write_bytes(written.csv.read_bytes().replace(b"SCH-0117", b"SCH-9117"))
    assert "differs from the manifest signed" in check_csv_copy(written.pdf, signed)


def test_long_values_wrap_inside_their_cell(store: ReuseStore, world: World, tmp_path: Path) -> None:
    manifest, _certificate = _big_manifest(store, world)
    manifest["devices"] = manifest["devices"][:10]
    bbox = _pdftext(render_manifest(manifest), tmp_path, "-bbox")
    words = re.findall(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="[\d.]+">([^<]*)</word>', bbox)
    model_start = next(float(x) for x, _y, _x2, word in words if word == "Model")
    serial_start = next(float(x) for x, _y, _x2, word in words if word == "Host")
    pieces = [(float(x), float(x2)) for x, _y, x2, word in words if "with-a-model" in word or "XYZ" in word
              or "its-column" in word]
    assert len(pieces) >= 2  # wrapped over several lines
    assert all(model_start - 1 <= start and end < serial_start for start, end in pieces)


def test_the_shape_check_allows_an_audit_checkpoint_and_validation_only_as_mappings(
        store: ReuseStore, world: World, tmp_path: Path) -> None:
    manifest, certificate = _big_manifest(store, world)
    manifest["devices"] = manifest["devices"][:2]
    files = {drive["certificate_id"]: certificate for device in manifest["devices"] for drive in device["drives"]}
    with pytest.raises(RecordError, match="audit_checkpoint must be a mapping"):
        issue_manifest({**manifest, "audit_checkpoint": "42"}, world.signer, tmp_path / "a", files)
    bad = [{**manifest["devices"][0], "validation": "accepted"}, manifest["devices"][1]]
    with pytest.raises(RecordError, match="validation of SCH-0001 must be a mapping or null"):
        issue_manifest({**manifest, "devices": bad}, world.signer, tmp_path / "b", files)
    assert render_csv(manifest).count(b"\r\n") == 3
    # L8: a drive value holding the separator would read as two drives in the CSV and the PDF
    two = json.loads(json.dumps(manifest))
    two["devices"][0]["drives"][0]["serial"] = "SSD-1; SSD-2"
    with pytest.raises(RecordError, match="SCH-0001 has '; ' in its serial"):
        issue_manifest(two, world.signer, tmp_path / "c", files)


def test_one_csv_injection_rule_for_jobs_csv_and_the_manifest(store: ReuseStore, world: World) -> None:
    """L8: ``jobs --csv`` and the manifest CSV neutralise exactly the same leading characters."""
    from agent.cli.output import csv_cell
    from certs.csvcell import FORMULA_STARTS

    manifest, _certificate = _big_manifest(store, world)
    manifest["devices"] = manifest["devices"][:1]
    for start in FORMULA_STARTS:
        if start in "\t\r\n":  # not in a signed value (text_problem); jobs --csv shows them as \\x09 ...
            assert not csv_cell(f"{start}x").startswith(start)
            continue
        manifest["devices"][0]["make"] = f"{start}cmd|' /C calc'!A0"
        row = next(itertools.islice(csv.reader(io.StringIO(render_csv(manifest).decode())), 1, None))
        assert row[2] == csv_cell(manifest["devices"][0]["make"]) == "'" + manifest["devices"][0]["make"]
    assert csv_cell("Dell") == "Dell"


def _verify(pdf: str, world: World, *options: str) -> tuple[int, list[str], dict[str, Any]]:
    lines: list[str] = []
    status = run_verify([pdf], str(world.bundle), expect="manifest", echo=lines.append,
                        certificates_dir=options[1] if options[:1] == ("--certificates",) else None,
                        no_certificates="--no-certificates" in options)
    output: list[str] = []
    run_verify([pdf], str(world.bundle), expect="manifest", echo=output.append, as_json=True,
               certificates_dir=options[1] if options[:1] == ("--certificates",) else None,
               no_certificates="--no-certificates" in options)
    return status, lines, json.loads(output[0])["results"][0]


def test_verify_checks_the_certificates_beside_the_manifest_and_names_each_problem(
        store: ReuseStore, world: World, tmp_path: Path) -> None:
    created = _batch(store, world, 4)
    folder = Path(created["certificates"])
    status, lines, result = _verify(created["pdf"], world)
    assert status == 0 and lines[0].startswith("VALID    ") and result["certificates_checked"]
    assert result["complete"] and len(result["certificates"]) == 4 and "4 of 4 listed present" in "\n".join(lines)
    names = sorted(item.name for item in folder.iterdir())
    original = {name: (folder / name).read_bytes() for name in names}

    def problems() -> list[str]:
        status, _lines, result = _verify(created["pdf"], world)
        assert status == 1 and not result["complete"]
        return [check["problem"] for check in result["certificates"] if not check["ok"]]

    (folder / names[0]).unlink()  # missing
    found = problems()
    assert len(found) == 1 and found[0].endswith(f"missing: no {names[0]} in {folder}")
    (folder / names[0]).write_bytes(original[names[0]])
    (folder / "certificate-extra.pdf").write_bytes(original[names[1]])  # extra
    assert problems() == [f"certificate-extra.pdf is in {folder} but the manifest does not list it"]
    (folder / "certificate-extra.pdf").unlink()
    (folder / names[0]).write_bytes(original[names[1]])  # swapped: valid, but another certificate
    (folder / names[1]).write_bytes(original[names[0]])
    found = problems()
    assert len(found) == 2 and all("the manifest lists" in problem for problem in found)
    assert {problem.split(" ")[0] for problem in found} == {names[0], names[1]}
    (folder / names[0]).write_bytes(original[names[0]])
    (folder / names[1]).write_bytes(original[names[1]])
    altered = bytearray(original[names[2]])
    altered[len(altered) // 3] ^= 0x20  # inside the signed byte range
    (folder / names[2]).write_bytes(bytes(altered))
    found = problems()
    assert len(found) == 1 and found[0].startswith(f"certificate {names[2]} is invalid")
    (folder / names[2]).write_bytes(original[names[2]])
    assert _verify(created["pdf"], world)[0] == 0


def test_a_manifest_verified_without_its_certificates_says_they_were_not_checked(
        store: ReuseStore, world: World, tmp_path: Path) -> None:
    created = _batch(store, world, 2)
    status, lines, result = _verify(created["pdf"], world, "--no-certificates")
    assert status == 0 and lines[0].startswith(
        "VALID (manifest only: certificates were NOT checked \u2014 --no-certificates given)")
    assert result["certificates_checked"] is False and result["certificates_not_checked"] == "--no-certificates given"
    assert result["accepted"] is True
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(created["pdf"], alone)
    status, lines, result = _verify(str(alone / Path(created["pdf"]).name), world)
    # M3: an incomplete delivery is not exit 0 unless the manifest alone was asked for
    assert status == 1 and result["accepted"] is False and lines[0].startswith(
        "INVALID (manifest only: certificates were NOT checked \u2014 no certificates/ folder beside it; "
        "--no-certificates checks it alone)")
    assert result["certificates_checked"] is False and result["certificates_dir"] is None
    # pointed at a folder elsewhere, it checks that one
    status, lines, result = _verify(str(alone / Path(created["pdf"]).name), world, "--certificates",
                                    created["certificates"])
    assert status == 0 and result["certificates_checked"] and result["certificates_dir"] == created["certificates"]
    with pytest.raises(BadInput, match="not both"):
        run_verify([created["pdf"]], str(world.bundle), certificates_dir=created["certificates"],
                   no_certificates=True)


@pytest.mark.parametrize("change", ["row dropped", "rows renumbered", "certificate id changed"])
def test_a_page_that_does_not_show_every_signed_row_is_refused_by_name(store: ReuseStore, world: World,
                                                                        tmp_path: Path, change: str) -> None:
    """The signed JSON lists 12 devices; the pages a person reads must show each, numbered as signed."""
    manifest, _certificate = _big_manifest(store, world)
    manifest["devices"] = manifest["devices"][10:22]
    shown = json.loads(json.dumps(manifest))
    if change == "row dropped":
        del shown["devices"][5]
        expected = "row 6 ('SCH-0016'): the page's Asset cell"
    elif change == "rows renumbered":
        shown["devices"][3], shown["devices"][4] = shown["devices"][4], shown["devices"][3]
        expected = "row 4 ('SCH-0014'): the page's Asset cell"
    else:
        shown["devices"][7]["drives"][0]["certificate_id"] = "CERT-FORGED"
        expected = "row 8 ('SCH-0018'): the page's Certificate id(s) cell"
    report = _signed_with_page_of(shown, manifest, world, tmp_path)
    assert not report.valid and report.code == "visible_text_mismatch" and expected in report.reason


def _signed_with_page_of(shown: dict[str, Any], manifest: dict[str, Any], world: World, tmp_path: Path) -> Any:
    """``manifest`` signed by the station's key, its pages rendered from ``shown`` (a lying station)."""
    payload = canonical_json(manifest)
    digest = hashlib.sha256(payload).hexdigest()
    pdf = tmp_path / "forged.pdf"
    pdf.write_bytes(sign_document(render_manifest(shown), kind="manifest", document_id=manifest["document_id"],
                                  payload=payload, sha256=digest, issued_at=manifest["created_at"],
                                  signer=world.signer, reason="test"))
    return verify_with_bundle(pdf, load_trust_bundle(world.bundle))


_VALIDATED = {"decision": "accept", "by": "Chief Information Security Officer", "role": "ciso",
              "at": "2026-12-01T10:00:00+00:00", "statement_id": "VS-FAKE", "signer_kind": "officer"}
_STRONGER_CLAIMS: dict[str, tuple[Any, str]] = {
    # what a lying page prints → the column (or field) the verifier must name
    "make": (lambda d: d.update(make="Apple"), "Make"),
    "model": (lambda d: d.update(model="Latitude 9999"), "Model"),
    "host serial": (lambda d: d.update(serial="HOST-OTHER"), "Host serial"),
    "drive serial": (lambda d: d["drives"][0].update(serial="S-OTHER"), "Drive serial(s)"),
    "level": (lambda d: d["drives"][0].update(level="Purge"), "Level"),
    "method": (lambda d: d["drives"][0].update(method="nvme.sanitize.crypto"), "Method"),
    "verification": (lambda d: d["drives"][0].update(verification="full"), "Verification"),
    "sanitised on": (lambda d: d["drives"][0].update(sanitised_at="2030-01-01T00:00:00+00:00"), "Sanitised on"),
    "record hash": (lambda d: d["drives"][0].update(record_sha256="f" * 64), "Certificate id(s)"),
    "attestations": (lambda d: d.update(attestations={"data-erased-twice": {"by": "Sgt Example",
                                                                           "at": "2026-12-01T10:00:00+00:00"}}),
                     "Attestations"),
    "validation": (lambda d: d.update(validation=_VALIDATED), "Validation"),
    "level beside the true one": (lambda d: d["drives"][0].update(level="Clear (re-done as Purge)"), "Level"),
}


@pytest.mark.parametrize("claim", list(_STRONGER_CLAIMS))
def test_every_printed_cell_must_be_the_signed_value(store: ReuseStore, world: World, tmp_path: Path,
                                                     claim: str) -> None:
    """H7: a station that signs "Clear, sampling, not validated" but prints Purge / full / a CISO's
    acceptance in any column is INVALID, and the verdict names the row and the column."""
    manifest, _certificate = _big_manifest(store, world)
    manifest["devices"] = manifest["devices"][:3]
    manifest["summary"] = "3 device(s) for schools"
    drive_ = manifest["devices"][2]["drives"][0]
    drive_.update(level="Clear", method="overwrite.zero", verification="sampling")
    shown = json.loads(json.dumps(manifest))
    change, column = _STRONGER_CLAIMS[claim]
    change(shown["devices"][2])
    report = _signed_with_page_of(shown, manifest, world, tmp_path)
    assert not report.valid and report.code == "visible_text_mismatch", report.reason
    assert f"row 3 ('=HYPERLINK(\"http://x\")'): the page's {column} cell" in report.reason
    # the honest rendering of the same JSON verifies
    honest = _signed_with_page_of(manifest, manifest, world, tmp_path)
    assert honest.valid, honest.reason


@pytest.mark.parametrize(("field", "change"), [
    ("scheme", lambda m: m["scheme"].update(summary="Purge on every drive, validated by the CISO")),
    ("destination", lambda m: m["scheme"].update(destination="Destroyed (shredded)")),
    ("created", lambda m: m.update(created_at="2031-01-01T00:00:00+00:00")),
    ("summary (subtitle)", lambda m: m.update(summary="3 device(s), all validated")),
    ("footer", lambda m: m.update(audit_checkpoint={"sequence": 99, "head": "cd" * 32})),
])
def test_every_field_above_the_table_must_be_the_signed_value(store: ReuseStore, world: World, tmp_path: Path,
                                                              field: str, change: Any) -> None:
    manifest, _certificate = _big_manifest(store, world)
    manifest["devices"] = manifest["devices"][:3]
    manifest["summary"] = "3 device(s) for schools"
    shown = json.loads(json.dumps(manifest))
    change(shown)
    report = _signed_with_page_of(shown, manifest, world, tmp_path)
    assert not report.valid and report.code == "visible_text_mismatch", report.reason
    assert f"the signed {field}" in report.reason


FIRST_RELEASE = Path(__file__).resolve().parents[2] / "data" / "manifest-v1"
"""A manifest folder signed by the first release (fff86e9, schema 1; its layout has no row numbers),
made with that commit's own ``create_manifest`` and test PKI, with its trust bundle."""


def test_a_manifest_issued_by_the_first_release_still_verifies_with_its_certificates(tmp_path: Path) -> None:
    """C2: the page rules follow the manifest's signed schema, so evidence already handed over stays VALID."""
    pdf = next(FIRST_RELEASE.glob("manifest-*.pdf"))
    bundle = load_trust_bundle(FIRST_RELEASE / "trust-bundle.pem")
    created = datetime.fromisoformat(json.loads(pdf.with_suffix(".json").read_text())["created_at"])
    report = verify_with_bundle(pdf, bundle, now=created + timedelta(days=1))
    assert report.valid and report.kind == "manifest", report.reason
    assert report.document is not None and report.document["schema"] == 1
    lines: list[str] = []
    assert run_verify([str(pdf)], str(FIRST_RELEASE / "trust-bundle.pem"), expect="manifest", echo=lines.append) == 0
    assert "certificates checked in" in "\n".join(lines) and "3 of 3 listed" in "\n".join(lines)
    # and a schema this verifier does not know is refused by name, not checked by a guess
    document = json.loads(pdf.with_suffix(".json").read_text())
    from certs.verify import _check_visible_manifest, _Invalid
    with pytest.raises(_Invalid, match="unknown manifest schema 3"):
        _check_visible_manifest(pdf.read_bytes(), "", {**document, "schema": 3})



def test_verify_without_expect_takes_a_manifest_as_a_manifest_and_names_each_kind(
        store: ReuseStore, world: World, tmp_path: Path) -> None:
    """M4: ``verify manifest.pdf`` (no --expect) checks the manifest and its certificates/ folder; a
    certificate is named as one; a failure report still needs --expect failure-report (exit 0 never
    means a drive was sanitised when it was not)."""
    created = _batch(store, world, 2)
    certificate = next(Path(created["certificates"]).iterdir())
    lines: list[str] = []
    assert run_verify([created["pdf"], str(certificate)], str(world.bundle), echo=lines.append) == 0
    assert lines[0].startswith(f"VALID    {created['pdf']} [batch manifest]: ")
    assert "certificates checked in" in "\n".join(lines) and "2 of 2 listed present" in "\n".join(lines)
    assert any(line.startswith(f"VALID    {certificate}: ") for line in lines)
    output: list[str] = []
    assert run_verify([created["pdf"]], str(world.bundle), echo=output.append, as_json=True) == 0
    assert json.loads(output[0])["expect"] == "any"
    (Path(created["certificates"]) / certificate.name).unlink()  # the folder is still checked by default
    assert run_verify([created["pdf"]], str(world.bundle), echo=[].append) == 1


@pytest.mark.parametrize("cell", [" =1+1", "\u00a0@SUM(A1)", "\uff1dHYPERLINK(\"x\")", "\uff0b1", "\u3000-2+3"])
def test_a_formula_behind_white_space_or_in_full_width_is_neutralised_too(cell: str) -> None:
    from agent.cli.output import csv_cell
    from certs.csvcell import neutralise_formula

    assert neutralise_formula(cell) == "'" + cell
    assert csv_cell(cell)[0] in "'\\"  # jobs --csv: the apostrophe, or the white space shown as \xa0 / \u3000
    assert neutralise_formula("Dell 5440 = laptop") == "Dell 5440 = laptop"
