"""The partner view on a real fleet database fed through the real ingest: a partner sees its own manifests
only (list, page, PDF, CSV, pack: another partner's is a 404 like a manifest that does not exist), the pack
is the station's folder and passes the offline verifier, names inside it are safe, text is escaped."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from certs.cli import run_verify
from certs.documents import canonical_json
from certs.manifest import render_csv
from certs.verify import DocumentKind, load_trust_bundle, verify_with_bundle
from tests.integration.web.fleet_partner_kit import (
    HOSTILE_MODEL,
    TRAVERSAL_FILE,
    ListAudit,
    PartnerWorld,
    fetch,
    partner_console,
    run_client,
    sign_in,
)

SCHOOLS, GLA = "/partner/manifests/station-01/MF-SCH-0001", "/partner/manifests/station-01/MF-GLA-0001"


def test_each_partner_lists_only_the_manifests_of_its_own_scheme(partner_dsn: str,
                                                                 partner_world: PartnerWorld) -> None:
    [(status, schools, _)] = fetch(partner_dsn, partner_world, "schools-partner", "/partner")
    assert status == 200
    assert b"MF-SCH-0001" in schools and b"MF-GLA-0001" not in schools
    assert f'href="{SCHOOLS}/pack"'.encode() in schools
    [(_, gla, _)] = fetch(partner_dsn, partner_world, "gla-partner", "/partner")  # partner "GLA-Reuse": any case
    assert b"MF-GLA-0001" in gla and b"MF-SCH-0001" not in gla
    [(_, nobody, _)] = fetch(partner_dsn, partner_world, "nobody-partner", "/partner")
    assert b"MF-" not in nobody and b"No manifest is allocated to another-scheme" in nobody
    [(_, everyone, _)] = fetch(partner_dsn, partner_world, "admin", "/partner")
    assert b"MF-SCH-0001" in everyone and b"MF-GLA-0001" in everyone


@pytest.mark.parametrize("suffix", ["", "/pdf", "/csv", "/pack"])
def test_another_partners_manifest_is_not_found_exactly_as_one_that_does_not_exist(
        partner_dsn: str, partner_world: PartnerWorld, suffix: str) -> None:
    foreign, absent, own = fetch(partner_dsn, partner_world, "schools-partner", GLA + suffix,
                                "/partner/manifests/station-01/MF-NONE-0001" + suffix, SCHOOLS + suffix)
    assert foreign[0] == absent[0] == 404
    assert foreign[1] == absent[1]  # nothing tells the two apart
    assert b"MF-GLA" not in foreign[1]
    assert own[0] == 200
    # the other partner reaches its own
    [(status, _, _)] = fetch(partner_dsn, partner_world, "gla-partner", GLA + suffix)
    assert status == 200


def test_roles_without_manifests_are_refused(partner_dsn: str, partner_world: PartnerWorld) -> None:
    for name in ("auditor", "compliance", "operator"):
        answers = fetch(partner_dsn, partner_world, name, "/partner", SCHOOLS + "/pack")
        assert [status for status, _, _ in answers] == [403, 403], name


def test_the_manifest_page_shows_its_devices_escaped(partner_dsn: str,
                                                     partner_world: PartnerWorld) -> None:
    [(status, page, headers)] = fetch(partner_dsn, partner_world, "schools-partner", SCHOOLS)
    assert status == 200 and "script-src 'self'" in headers["Content-Security-Policy"]
    text = page.decode()
    assert "SCH-LT-0001" in text and "SCH-LT-0002" in text and "C-SCH-0001" in text
    assert "<script>alert" not in text
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; &amp; &#34;Latitude&#34;" in text
    assert "Signed manifest verified by the fleet now" in text and "(not held)" not in text


def test_the_pdf_and_csv_are_the_signed_ones(partner_dsn: str, partner_world: PartnerWorld) -> None:
    (pdf_status, pdf, pdf_headers), (csv_status, rows, csv_headers) = fetch(
        partner_dsn, partner_world, "schools-partner", SCHOOLS + "/pdf", SCHOOLS + "/csv")
    assert pdf_status == csv_status == 200
    assert pdf == partner_world.manifests["MF-SCH-0001"].read_bytes()
    assert pdf_headers["Content-Disposition"] == 'attachment; filename="manifest-MF-SCH-0001.pdf"'
    assert csv_headers["Content-Type"].startswith("text/csv")
    document = verify_with_bundle(partner_world.manifests["MF-SCH-0001"], load_trust_bundle(
        partner_world.world.bundle), expect=DocumentKind.MANIFEST).document
    assert document is not None and rows == render_csv(document)
    table = list(csv.reader(io.StringIO(rows.decode())))
    assert [row[1] for row in table[1:]] == ["SCH-LT-0001", "SCH-LT-0002"] and table[1][3] == HOSTILE_MODEL


def _pack(dsn: str, world: PartnerWorld, name: str, path: str) -> zipfile.ZipFile:
    [(status, data, headers)] = fetch(dsn, world, name, path)
    assert status == 200, data[:300]
    assert headers["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(data))


def test_the_pack_is_the_stations_folder_and_passes_the_offline_verifier(
        partner_dsn: str, partner_world: PartnerWorld, tmp_path: Path) -> None:
    archive = _pack(partner_dsn, partner_world, "gla-partner", GLA + "/pack")
    top = "manifest-MF-GLA-0001"
    assert sorted(archive.namelist()) == sorted([
        f"{top}/manifest-MF-GLA-0001.pdf", f"{top}/manifest-MF-GLA-0001.json", f"{top}/manifest-MF-GLA-0001.csv",
        f"{top}/certificates/C-SCH-0003.pdf", f"{top}/README.txt", f"{top}/trust-bundle.pem"])
    assert archive.testzip() is None
    assert archive.read(f"{top}/certificates/C-SCH-0003.pdf") == partner_world.certificates["C-SCH-0003"].read_bytes()
    assert archive.read(f"{top}/trust-bundle.pem") == partner_world.world.bundle.read_bytes()
    manifest = json.loads(archive.read(f"{top}/manifest-MF-GLA-0001.json"))
    assert archive.read(f"{top}/manifest-MF-GLA-0001.json") == canonical_json(manifest)
    readme = archive.read(f"{top}/README.txt").decode()
    assert "python -m certs verify manifest-MF-GLA-0001.pdf --trust BUNDLE" in readme and "INCOMPLETE" not in readme
    archive.extractall(tmp_path)
    lines: list[str] = []
    folder = tmp_path / top
    status = run_verify([str(folder / "manifest-MF-GLA-0001.pdf")], str(folder / "trust-bundle.pem"),
                        echo=lines.append)
    assert status == 0, lines
    assert lines[0].startswith("VALID") and "1 of 1 listed present, valid and matching" in "\n".join(lines)


def test_names_in_the_pack_never_leave_its_folder(partner_dsn: str, partner_world: PartnerWorld,
                                                  tmp_path: Path) -> None:
    archive = _pack(partner_dsn, partner_world, "schools-partner", SCHOOLS + "/pack")
    names = archive.namelist()
    assert all(name.startswith("manifest-MF-SCH-0001/") and "\\" not in name and "/../" not in name
               and not name.startswith("/") for name in names), names
    certificates = sorted(name.rsplit("/", 1)[1] for name in names if "/certificates/" in name)
    assert certificates == ["C-SCH-0002.pdf", "Windows_evil.pdf"]  # the station's "..\..\Windows\evil.pdf", renamed
    readme = archive.read("manifest-MF-SCH-0001/README.txt").decode()
    assert f"{TRAVERSAL_FILE!r} -> certificates/Windows_evil.pdf" in readme
    archive.extractall(tmp_path)
    assert sorted(path.name for path in tmp_path.rglob("*") if path.is_file()) == sorted(
        ["C-SCH-0002.pdf", "Windows_evil.pdf", "README.txt", "trust-bundle.pem", "manifest-MF-SCH-0001.pdf",
         "manifest-MF-SCH-0001.json", "manifest-MF-SCH-0001.csv"])
    # the offline verifier names the renamed certificate: the manifest lists another file name
    lines: list[str] = []
    folder = tmp_path / "manifest-MF-SCH-0001"
    assert run_verify([str(folder / "manifest-MF-SCH-0001.pdf")], str(folder / "trust-bundle.pem"),
                      echo=lines.append) == 1
    assert any("Windows_evil.pdf" in line for line in lines), lines


def test_downloads_are_recorded(partner_dsn: str, partner_world: PartnerWorld) -> None:
    audit = ListAudit()
    app, _console = partner_console(partner_dsn, partner_world, audit)

    async def scenario(client: Any) -> None:
        await sign_in(client, "schools-partner")
        for suffix in ("/pdf", "/csv", "/pack"):
            assert (await client.get(SCHOOLS + suffix)).status == 200

    run_client(app, scenario)
    downloads = [(data["what"], data["manifest_id"], data["partner"]) for kind, subject, data in audit.entries
                 if kind == "web-partner-download" and subject == "schools-partner"]
    assert downloads == [("pdf", "MF-SCH-0001", "schools"), ("csv", "MF-SCH-0001", "schools"),
                         ("pack", "MF-SCH-0001", "schools")]
