"""Compliance and the per-asset record on a real PostgreSQL fed through the real ingest path: the sample drawn
from the page (compliance and admin only, CSRF, recorded, refused without its audit), the exceptions and their
CSV, the asset page with every job, certificate, attestation and audit entry, and the downloads."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from tests.integration.web.fleet_web_kit import CSRF, HOSTILE_TAG, Console, RecordingAudit
from tests.unit.certs.certs_test_kit import PkiWorld

pytestmark = pytest.mark.root


def draws(fleet: dict[str, Any]) -> int:
    db = fleet["database"].db
    row = db.execute("SELECT count(*) FROM fleet_sample_draws").fetchone()
    db.rollback()
    return int(row[0])


def test_compliance_draws_a_sample_from_the_page_and_the_draw_is_recorded(console: Console,
                                                                         fleet: dict[str, Any]) -> None:
    status, _, html = console.page("compliance", "/compliance")
    assert status == 200 and "No sample has been drawn yet." in html and 'action="/compliance/sample"' in html
    token = console.token("compliance")
    # without the session's token, or with another's, nothing is drawn
    assert console.post("compliance", "/compliance/sample", {"percent": "20", "seed": "q4"})[0] == 403
    assert console.post("compliance", "/compliance/sample", {"percent": "20", "seed": "q4",
                                                             "csrf": console.token("admin")})[0] == 403
    assert draws(fleet) == 0
    status, headers, _ = console.post("compliance", "/compliance/sample",
                                      {"percent": "20", "seed": "2026-Q4 board", "csrf": token})
    assert status == 303 and headers["Location"] == "/compliance?draw=1"
    [(_, subject, data)] = [entry for entry in console.audit.entries if entry[0] == "web-sample-drawn"]
    assert subject == "compliance" and data["draw"] == 1 and data["seed"] == "2026-Q4 board"
    assert data["role"] == "compliance" and data["client"] == "127.0.0.1"
    # population: the 31 drives whose latest job is sanitised (PF-000002's is eligible, not allocated: in it)
    assert data["population"] == 31 and data["percent"] == 20.0
    status, _, html = console.page("compliance", "/compliance?draw=1")
    assert status == 200 and "Draw <strong>1</strong>" in html and "seed “2026-Q4 board”" in html
    strata = re.findall(r"<tr><td>(station-0\d)</td><td>([\w.-]+)</td><td class=\"num\">(\d+)</td>", html)
    # strata (station, method): 20 % of station-01's 11 NVMe (10 odd jobs + the hostile tag's) and 10 overwrites,
    # and of station-02's 10 NVMe, each rounded up
    assert sorted((station, method, int(count)) for station, method, count in strata) == [
        ("station-01", "nvme-sanitize", 3), ("station-01", "overwrite.zero", 2), ("station-02", "nvme-sanitize", 2)]
    assert data["drawn"] == 7
    status, headers, body = console.fetch("auditor", "/compliance/sample.csv?draw=1")
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert status == 200 and headers["Content-Disposition"] == 'attachment; filename="sample-1.csv"'
    assert rows[0] == ["draw", "seed", "percent", "station", "job_id", "method", "result", "checked_at"]
    assert len(rows) - 1 == data["drawn"] and {row[6] for row in rows[1:]} == {"pending"}


def test_a_bad_draw_is_one_line_and_draws_nothing(console: Console, fleet: dict[str, Any]) -> None:
    token = console.token("admin")
    for percent, seed, message in (("0", "s", "--percent must be above 0"), ("abc", "s", "percent must be a number"),
                                   ("nan", "s", "percent must be a number"), ("20", " ", "--seed must not be blank"),
                                   ("20", "a\x1bb", "control or format character")):
        status, _, html = console.post("admin", "/compliance/sample", {"percent": percent, "seed": seed,
                                                                       "csrf": token})
        assert status == 400 and message in html and "Traceback" not in html, (percent, seed)
    assert draws(fleet) == 0


def test_only_compliance_and_admin_may_draw(console: Console, fleet: dict[str, Any]) -> None:
    status, _, html = console.page("auditor", "/compliance")
    assert status == 200 and 'action="/compliance/sample"' not in html  # read-only: no form
    token = console.token("auditor")
    status, _, html = console.post("auditor", "/compliance/sample", {"percent": "20", "seed": "x", "csrf": token})
    assert status == 403 and draws(fleet) == 0
    for role in ("operator", "partner"):
        assert console.page(role, "/compliance")[0] == 403
        assert console.page(role, "/assets/PF-000001")[0] == 403
        assert console.fetch(role, "/compliance/exceptions.csv")[0] == 403


def test_a_draw_the_audit_cannot_record_is_not_made(postgres_dsn: str, fleet: dict[str, Any],
                                                    tmp_path: Path) -> None:
    served = Console(postgres_dsn, tmp_path / "failing", audit=RecordingAudit(failing=True))
    try:
        _, _, html = served.page("compliance", "/compliance")
        token = CSRF.search(html)
        assert token is not None
        status, _, html = served.post("compliance", "/compliance/sample", {"percent": "50", "seed": "s",
                                                                           "csrf": token.group(1)})
        assert status == 503 and "nothing was done" in html
    finally:
        served.close()
    assert draws(fleet) == 0


def test_the_exceptions_are_listed_and_downloaded(console: Console) -> None:
    _, _, html = console.page("compliance", "/compliance")
    counts = dict((name, int(count)) for count, name in re.findall(r"<li><strong>(\d+)</strong> ([\w -]+)</li>", html))
    assert counts["held"] == 3 and counts["interrupted"] == 1
    assert counts["certificate missing"] == 31 + 1 - 1  # 31 sanitised, 1 failed; C-0001 came
    assert counts["late audit checkpoints"] == 0 and counts["refused-record groups"] == 0
    assert counts["overdue"] == 0  # due dates are in 2027
    assert "station-01-J000021" in html and '<a href="/assets/PF-000020">PF-000020</a>' in html
    status, headers, body = console.fetch("auditor", "/compliance/exceptions.csv")
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert rows[0] == ["class", "station", "asset_tag", "job_id", "state", "detail", "since"]
    by_class: dict[str, list[list[str]]] = {}
    for row in rows[1:]:
        by_class.setdefault(row[0], []).append(row)
    assert len(by_class["held"]) == 3 and len(by_class["certificate_missing"]) == 31
    assert [row[3] for row in by_class["interrupted"]] == ["station-01-J000021"]
    assert console.fetch("admin", "/compliance/exceptions.csv?x=1")[0] == 400


def test_the_asset_page_shows_every_record_and_its_downloads(console: Console, fleet: dict[str, Any]) -> None:
    status, _, html = console.page("auditor", "/assets/PF-000000")
    assert status == 200 and "Asset PF-000000" in html and "station-01-J000000" in html
    link = '/certificates/station-01/C-0001'
    assert f'href="{link}"' in html
    status, headers, pdf = console.fetch("auditor", link)
    assert status == 200 and headers["Content-Type"] == "application/pdf" and pdf.startswith(b"%PDF-")
    assert pdf == fleet["certificate"].read_bytes()
    assert console.fetch("auditor", "/certificates/station-01/C-9999")[0] == 404
    assert console.fetch("auditor", "/certificates/station-02/C-0001")[0] == 404  # another station's: none
    # intake and attestation of PF-000001: shown, and in its audit export with each entry's hash
    status, _, html = console.page("compliance", "/assets/PF-000001")
    assert "no-stickers" in html and "Alex Morgan" in html and "attestation" in html
    status, headers, body = console.fetch("compliance", "/compliance/asset-audit.json?asset=pf-000001")
    export = json.loads(body)
    assert status == 200 and export["asset_tag"] == "PF-000001"
    kinds = [entry["kind"] for entry in export["entries"]]
    assert "intake" in kinds and "attestation" in kinds
    db = fleet["database"].db
    for entry in export["entries"]:  # each entry as the fleet holds its station's chain
        row = db.execute("SELECT hash FROM fleet_audit WHERE station_id = %s AND seq = %s",
                         (entry["station_id"], entry["seq"])).fetchone()
        assert row is not None and row[0] == entry["hash"]
    db.rollback()
    # search by tag or serial (any case) goes to the asset; an unknown key is a 404 of one line
    status, headers, _ = console.fetch("compliance", "/assets?q=sn00000001")
    assert status == 303 and headers["Location"] == "/assets/PF-000001"
    status, _, html = console.page("compliance", "/assets?q=NOPE-1")
    assert status == 404 and "no asset with the tag or serial &#39;NOPE-1&#39;" in html
    assert console.page("compliance", "/assets?q=")[0] == 400
    assert console.page("compliance", "/assets/PF-000001?debug=1")[0] == 400


def test_hostile_tags_and_models_are_text_on_every_page(console: Console) -> None:
    status, headers, _ = console.fetch("admin", f"/assets?q={quote(HOSTILE_TAG)}")
    assert status == 303 and headers["Location"].startswith("/assets/%3Cscript%3E")
    status, _, html = console.page("admin", headers["Location"])
    assert status == 200 and "Asset &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Not in the asset register" in html and "<script" not in html
    status, _, html = console.page("admin", f"/assets/{quote('<img src=x onerror=alert(1)>', safe='')}")
    assert status == 404 and "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    _, _, html = console.page("compliance", "/compliance")
    assert "<script" not in html


def test_a_station_chain_exported_from_the_fleet_verifies_offline(console: Console, world: PkiWorld,
                                                                   tmp_path: Path) -> None:
    from certs.audit_chain import parse_export, verify_export
    from certs.verify import load_trust_bundle

    _, _, html = console.page("auditor", "/compliance")
    assert 'href="/compliance/audit-export/station-01"' in html
    status, headers, body = console.fetch("auditor", "/compliance/audit-export/station-01")
    assert status == 200 and headers["Content-Disposition"] == 'attachment; filename="audit-export-station-01.json"'
    bundle = load_trust_bundle(world.bundle)
    checked = verify_export(parse_export(body), bundle, station_id="station-01")
    assert checked.valid, checked.problems
    assert checked.entries == 4 and checked.anchored_to == 4  # intake, attestation, two decisions; one checkpoint
    # the same file through the CLI partners and auditors use
    path = tmp_path / "audit-export-station-01.json"
    path.write_bytes(body)
    from tests.conftest import run_cli

    verified = run_cli("audit", "verify", "--file", str(path), "--trust", str(world.bundle), "--station",
                       "station-01")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # one entry changed after export: the chain says so
    export = json.loads(body)
    export["entries"][1]["data"]["by"] = "Someone Else"
    tampered = verify_export(parse_export(json.dumps(export).encode()), bundle, station_id="station-01")
    assert not tampered.valid and any("entry 2" in problem for problem in tampered.problems)
    # a station with no signed checkpoint (station-02 pushed only jobs) gives no valid export
    status, _, body = console.fetch("auditor", "/compliance/audit-export/station-02")
    assert status == 200 and not verify_export(parse_export(body), bundle).valid
    assert console.fetch("auditor", "/compliance/audit-export/station-99")[0] == 404
