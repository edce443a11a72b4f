"""Compliance (``/compliance``) and the per-asset record (``/assets/TAG``), with their downloads.

- ``/compliance``: the latest (or ``?draw=N``) fleet sample and its results per station and method; the
  "Draw sample" form (compliance and admin; POST with the session's CSRF token; recorded in the console's
  audit in the draw's own transaction, so a draw that cannot be recorded is not made); the exceptions of
  :func:`agent.fleet.compliance.exceptions`; an asset search by tag or serial.
- ``/assets/TAG``: :func:`agent.fleet.compliance.asset_history` — every job, certificate, validation,
  attestation and audit entry the fleet holds of the asset.
- Downloads: exceptions and sample as CSV (spreadsheet-safe cells), the asset's audit entries as JSON, each
  certificate's PDF as the station sent it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from agent.fleet.compliance import asset_history, exceptions, station_audit_export
from agent.fleet.errors import FleetInputError
from agent.fleet.sampling import draw, sample_status
from agent.web.accounts import Role
from agent.web.fleet_dashboard import BadQuery, _download
from agent.web.render import render
from agent.web.server import Console, session_of

READERS = frozenset({Role.ADMIN, Role.COMPLIANCE, Role.AUDITOR})
DRAWERS = frozenset({Role.ADMIN, Role.COMPLIANCE})
SHOWN = 50       # items of each exception class on the page (the CSV has them all)
SAMPLE_SHOWN = 200  # drawn drives listed on the page (the strata count them all; the CSV lists them all)
MAX_KEY = 128


def _only(request: web.Request, *names: str) -> dict[str, str]:
    """The query's parameters, each at most once and none but ``names``."""
    unknown = sorted(set(request.query) - set(names))
    if unknown:
        raise BadQuery(f"unknown query parameter {unknown[0][:40]!r}")
    values = {}
    for name in names:
        given = request.query.getall(name, [])
        if len(given) > 1:
            raise BadQuery(f"{name} is given {len(given)} times")
        if given:
            values[name] = given[0]
    return values


def _draw_number(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not re.fullmatch(r"[0-9]{1,12}", value):
        raise BadQuery(f"draw must be a sample's number, not {value[:40]!r}")
    return int(value)


def _key(value: str) -> str:
    key = value.strip()
    if not key:
        raise BadQuery("give an asset tag or serial to look for")
    if len(key) > MAX_KEY or not key.isprintable():
        raise BadQuery(f"an asset tag or serial is at most {MAX_KEY} printable characters")
    return key


def strata_of(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The sample's results per (station, method) stratum."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for item in status["items"]:
        row = table.setdefault((item["station_id"], item["method"]), {
            "station": item["station_id"], "method": item["method"], "drawn": 0, "passed": 0, "failed": 0,
            "pending": 0})
        row["drawn"] += 1
        row[item["result"]] += 1
    return [table[key] for key in sorted(table)]


def compliance_data(db: Any, draw_id: int | None) -> dict[str, Any]:
    try:
        try:
            sample: dict[str, Any] | None = sample_status(db, draw_id)
        except FleetInputError:
            if draw_id is not None:
                raise
            sample = None
        db.rollback()
        found = exceptions(db, limit=SHOWN)
        stations = [{"station_id": row[0], "entries": int(row[1]), "checkpoints": int(row[2])}
                    for row in db.execute("SELECT s.station_id, s.audit_seq, count(c.number) FROM fleet_stations s "
                                          "LEFT JOIN fleet_checkpoints c USING (station_id) GROUP BY 1, 2 "
                                          "ORDER BY 1").fetchall()]
        draws = [{"draw": int(row[0]), "at": row[1].isoformat(), "seed": row[2], "percent": float(row[3])}
                 for row in db.execute("SELECT id, at, seed, percent FROM fleet_sample_draws "
                                       "ORDER BY id DESC LIMIT 20").fetchall()]
    finally:
        db.rollback()
    return {"as_of": datetime.now(UTC).strftime("%H:%M:%S"), "sample": sample, "exceptions": found, "draws": draws,
            "stations": stations}


def _csv(header: list[str], rows: list[list[Any]]) -> bytes:
    from certs.csvcell import neutralise_formula

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([neutralise_formula("" if cell is None else str(cell)) for cell in row])
    return out.getvalue().encode()


def exceptions_csv(found: dict[str, Any]) -> bytes:
    """Every exception, one per line: class, station, asset, job, state, detail, since."""
    rows: list[list[Any]] = []
    for item in found["held"]["items"]:
        rows.append(["held", item["station"], item["asset_tag"], "", "held", "", item["since"]])
    for name in ("interrupted", "certificate_missing"):
        for item in found[name]["items"]:
            rows.append([name, item["station_id"], item["asset_tag"], item["job_id"], item["state"],
                         item["certificate_id"] or "no certificate received", item["finished_at"]])
    for item in found["chain"]["refused"]:
        rows.append(["chain_refused", item["station_id"], "", "", item["code"],
                     f"{item['count']} refused: {item['reason']}", item["latest"]])
    for item in found["chain"]["late_checkpoints"]:
        rows.append(["checkpoint_late", item["station_id"], "", "", "",
                     f"{item['entries_after_checkpoint']} entries after the last checkpoint",
                     item["last_checkpoint_at"] or "never"])
    for item in found["overdue"]["items"]:
        rows.append(["overdue", "", item["asset_tag"], "", item["state"], item["department"], item["due_date"]])
    return _csv(["class", "station", "asset_tag", "job_id", "state", "detail", "since"], rows)


def sample_csv(status: dict[str, Any]) -> bytes:
    return _csv(["draw", "seed", "percent", "station", "job_id", "method", "result", "checked_at"],
                [[status["draw"], status["seed"], status["percent"], item["station_id"], item["job_id"],
                  item["method"], item["result"], item["checked_at"]] for item in status["items"]])


def install(console: Console, fleet: Any) -> None:
    """Add compliance, the asset pages and their downloads to the fleet's console."""

    async def compliance(request: web.Request) -> web.StreamResponse:
        draw_id = _draw_number(_only(request, "draw").get("draw"))
        data = await fleet.snapshot(("compliance", draw_id), lambda database: compliance_data(database.db, draw_id))
        session = session_of(request)
        return render(request, "fleet_compliance.html", **data, shown=SHOWN, sample_shown=SAMPLE_SHOWN,
                      strata=strata_of(data["sample"]) if data["sample"] else [],
                      may_draw=session.role in DRAWERS)

    async def draw_sample(request: web.Request) -> web.StreamResponse:
        session = session_of(request)
        form = await request.post()
        percent_text, seed = str(form.get("percent", "")).strip(), str(form.get("seed", ""))
        try:
            percent = float(percent_text)
        except ValueError:
            raise BadQuery(f"percent must be a number above 0 and at most 100, not {percent_text[:40]!r}") from None
        if not math.isfinite(percent):
            raise BadQuery("percent must be a number above 0 and at most 100")

        def work(database: Any) -> dict[str, Any]:
            with database.transaction() as db:
                result = draw(db, percent, seed)
                # in the draw's transaction: a draw the audit cannot record is rolled back with it
                console.record("web-sample-drawn", session.name, {
                    "role": session.role.value, "client": request.remote or "unknown", "draw": result["draw"],
                    "seed": seed, "percent": percent, "population": result["population"],
                    "population_sha256": result["population_sha256"], "drawn": result["drawn"],
                    "earlier_draws": result["earlier_draws"]})
            return result

        result = await fleet.run(work)
        raise web.HTTPSeeOther(f"/compliance?draw={result['draw']}")

    async def exceptions_download(request: web.Request) -> web.StreamResponse:
        _only(request)

        def work(database: Any) -> dict[str, Any]:
            try:
                return exceptions(database.db, limit=10**9)
            finally:
                database.db.rollback()

        found = await fleet.run(work)
        return _download(exceptions_csv(found), "text/csv", "exceptions.csv")

    async def sample_download(request: web.Request) -> web.StreamResponse:
        draw_id = _draw_number(_only(request, "draw").get("draw"))

        def work(database: Any) -> dict[str, Any]:
            try:
                return sample_status(database.db, draw_id)
            finally:
                database.db.rollback()

        status = await fleet.run(work)
        return _download(sample_csv(status), "text/csv", f"sample-{status['draw']}.csv")

    async def search(request: web.Request) -> web.StreamResponse:
        key = _key(_only(request, "q").get("q", ""))
        history = await fleet.run(lambda database: asset_history(database.db, key, limit=1))
        if history is None:
            raise web.HTTPNotFound(text=f"no asset with the tag or serial {key!r}")
        raise web.HTTPSeeOther(f"/assets/{quote(history['asset_tag'], safe='')}")

    async def asset(request: web.Request) -> web.StreamResponse:
        _only(request)
        key = _key(request.match_info["tag"])
        history = await fleet.run(lambda database: asset_history(database.db, key))
        if history is None:
            raise web.HTTPNotFound(text=f"no asset with the tag or serial {key!r}")
        return render(request, "fleet_asset.html", asset=history, quoted=quote(history["asset_tag"], safe=""))

    async def asset_audit(request: web.Request) -> web.StreamResponse:
        key = _key(_only(request, "asset").get("asset", ""))
        history = await fleet.run(lambda database: asset_history(database.db, key, limit=100_000))
        if history is None:
            raise web.HTTPNotFound(text=f"no asset with the tag or serial {key!r}")
        export = {"format": "wipe-agent-fleet-asset-audit/1", "asset_tag": history["asset_tag"],
                  "note": "each entry as its station's hash chain holds it; check a station's whole chain with "
                          "'wipe-agent audit verify --file' on that station's export",
                  "entries": history["audit"], "truncated": history["audit_truncated"]}
        body = json.dumps(export, indent=2, ensure_ascii=True).encode()
        return _download(body, "application/json", f"audit-{history['asset_tag']}.json")

    async def audit_export(request: web.Request) -> web.StreamResponse:
        _only(request)
        station = request.match_info["station"]
        if len(station) > 256 or not station.isprintable():
            raise BadQuery("a station id is at most 256 printable characters")
        export = await fleet.run(lambda database: station_audit_export(database.db, station))
        if export is None:
            raise web.HTTPNotFound(text="the fleet holds no chain of that station")
        body = json.dumps(export, ensure_ascii=True, separators=(",", ":")).encode()
        return _download(body, "application/json", f"audit-export-{station}.json")

    async def certificate(request: web.Request) -> web.StreamResponse:
        _only(request)
        station, document_id = request.match_info["station"], request.match_info["document"]
        if any(len(part) > 256 or not part.isprintable() for part in (station, document_id)):
            raise BadQuery("a station or document id is at most 256 printable characters")

        def work(database: Any) -> bytes | None:
            try:
                row = database.db.execute("SELECT pdf FROM fleet_documents WHERE station_id = %s AND "
                                          "document_id = %s", (station, document_id)).fetchone()
                return bytes(row[0]) if row else None
            finally:
                database.db.rollback()

        pdf = await fleet.run(work)
        if pdf is None:
            raise web.HTTPNotFound(text="the fleet holds no such document")
        return _download(pdf, "application/pdf", f"{station}-{document_id}.pdf")

    console.add("GET", "/compliance", compliance, roles=READERS, nav="Compliance")
    console.add("POST", "/compliance/sample", draw_sample, roles=DRAWERS)
    console.add("GET", "/compliance/exceptions.csv", exceptions_download, roles=READERS)
    console.add("GET", "/compliance/sample.csv", sample_download, roles=READERS)
    console.add("GET", "/compliance/asset-audit.json", asset_audit, roles=READERS)
    console.add("GET", "/compliance/audit-export/{station}", audit_export, roles=READERS)
    console.add("GET", "/assets", search, roles=READERS)
    console.add("GET", "/assets/{tag:.+}", asset, roles=READERS)
    console.add("GET", "/certificates/{station}/{document}", certificate, roles=READERS)
