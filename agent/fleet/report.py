"""``fleet report``: the programme over a period, for managers — JSON, CSV or a PDF with charts.

A job counts in the period when it *finished* in it (``from`` inclusive, ``to`` exclusive, UTC days).
Sections: jobs finished per day and per station by outcome; outcomes by method, media and model; the
commonest failure reasons; the assets' current routes (state and scheme); and the time from an asset's
receipt (its first intake at any station) to its sanitisation (its drives' latest sanitised job), per
station, as median and 90th percentile hours; and from receipt to hand-over to the partner, for the
assets handed over in the period. The PDF (reportlab, with its own graphics: no plotting
stack on the fleet host) draws the per-day burn-up and the outcome bars, each chart with the table it
is drawn from beside it (the text alternative).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from agent.fleet.errors import FleetInputError

MAX_DAYS = 400
TOP = 15


def period(start: date, end: date) -> tuple[datetime, datetime]:
    if end <= start:
        raise FleetInputError(f"--to ({end}) must be after --from ({start})")
    if (end - start).days > MAX_DAYS:
        raise FleetInputError(f"a report covers at most {MAX_DAYS} days, not {(end - start).days}")
    return datetime.combine(start, time(), UTC), datetime.combine(end, time(), UTC)


def _rows(db: Any, query: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in db.execute(query, args).fetchall()]


def build(db: Any, start: date, end: date) -> dict[str, Any]:
    """The report's data (see the module docstring)."""
    since, until = period(start, end)
    window = "finished_at >= %s AND finished_at < %s"
    args = (since, until)
    # one scan of the period's jobs for every grouping (per day, station, method, media, model, and in total);
    # GROUPING() says which set a row belongs to (1 = that column is not grouped in this row)
    sets = ("day", "station_id", "method", "media", "model")
    grouped_rows = _rows(db, "SELECT day, station_id, method, media, model, state, count(*), "
                             "GROUPING(day, station_id, method, media, model) FROM ("
                             "SELECT (finished_at AT TIME ZONE 'UTC')::date AS day, station_id, "
                             "coalesce(method, '-') AS method, coalesce(media, '-') AS media, "
                             "coalesce(model, '-') AS model, state FROM fleet_jobs "
                             f"WHERE {window}) AS period GROUP BY GROUPING SETS ((day, state), (station_id, state), "
                             "(method, state), (media, state), (model, state), (state))", args)
    tables: dict[str, dict[str, dict[str, int]]] = {name: {} for name in (*sets, "total")}
    for *keys, state, count, grouping in grouped_rows:
        position = next((index for index in range(len(sets)) if not grouping >> (len(sets) - 1 - index) & 1), None)
        if position is None:
            name, key = "total", "total"
        else:
            name, value = sets[position], keys[position]
            key = value.isoformat() if name == "day" else str(value)
        tables[name].setdefault(key, {})[str(state)] = int(count)
    days: dict[str, dict[str, int]] = {}
    cursor = start
    while cursor < end:
        days[cursor.isoformat()] = {}
        cursor += timedelta(days=1)
    for day, states in sorted(tables["day"].items()):
        days.setdefault(day, {}).update(states)

    def grouped(column: str, limit: int | None = None) -> list[dict[str, Any]]:
        table = tables[column]
        ordered = sorted(table.items(), key=lambda item: (-sum(item[1].values()), item[0]))
        return [{"key": key, "total": sum(states.values()), "states": states}
                for key, states in (ordered[:limit] if limit else ordered)]

    reasons = _rows(db, f"SELECT coalesce(reason, '(no reason recorded)'), count(*) FROM fleet_jobs WHERE {window} "
                        "AND state IN ('failed', 'interrupted', 'refused') GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %s",
                    (*args, TOP))
    routes = _rows(db, "SELECT state, coalesce(scheme, ''), count(*) FROM fleet_assets GROUP BY 1, 2 ORDER BY 1, 2",
                   ())
    turnaround = _rows(db, f"""
        WITH received AS (
            SELECT upper(asset_tag) AS asset, min(at::timestamptz) AS at FROM fleet_asset_facts
            WHERE kind = 'intake' GROUP BY 1),
        done AS (
            SELECT upper(asset_tag) AS asset, max(finished_at) AS at, max(station_id) AS station FROM fleet_jobs
            WHERE state = 'sanitised' AND asset_tag IS NOT NULL AND {window} GROUP BY 1)
        SELECT done.station, count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM done.at - received.at) / 3600),
               percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM done.at - received.at) / 3600)
        FROM done JOIN received USING (asset) WHERE done.at >= received.at GROUP BY 1 ORDER BY 1""", args)
    # receipt to hand-over: assets handed over in the period (their hand-over recorded by a station in it)
    handed = _rows(db, """
        WITH received AS (
            SELECT upper(asset_tag) AS asset, min(at::timestamptz) AS at FROM fleet_asset_facts
            WHERE kind = 'intake' GROUP BY 1),
        handed AS (
            SELECT upper(f.asset_tag) AS asset, min(f.at::timestamptz) AS at, min(f.station_id) AS station
            FROM fleet_asset_facts f JOIN fleet_assets a ON upper(a.asset_tag) = upper(f.asset_tag)
            WHERE f.kind = 'manifest-handed-over' AND a.state = 'handed_over' GROUP BY 1)
        SELECT handed.station, count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM handed.at - received.at) / 3600),
               percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM handed.at - received.at) / 3600)
        FROM handed JOIN received USING (asset)
        WHERE handed.at >= received.at AND handed.at >= %s AND handed.at < %s GROUP BY 1 ORDER BY 1""", args)
    return {
        "from": start.isoformat(), "to": end.isoformat(), "generated_at": datetime.now(UTC).isoformat(),
        "jobs": tables["total"].get("total", {}),
        "per_day": days,
        "per_station": grouped("station_id"),
        "by_method": grouped("method"),
        "by_media": grouped("media"),
        "by_model": grouped("model", TOP),
        "failure_reasons": [{"reason": str(reason), "count": int(count)} for reason, count in reasons],
        "routes": [{"state": str(state), "scheme": str(scheme) or None, "assets": int(count)}
                   for state, scheme, count in routes],
        "receipt_to_sanitised_hours": [{"station": str(station), "assets": int(count),
                                        "median": round(float(median), 2), "p90": round(float(p90), 2)}
                                       for station, count, median, p90 in turnaround],
        "receipt_to_handover_hours": [{"station": str(station), "assets": int(count),
                                       "median": round(float(median), 2), "p90": round(float(p90), 2)}
                                      for station, count, median, p90 in handed],
    }


def to_csv(report: dict[str, Any]) -> str:
    """One long table: section, key, measure, value — every number of the report, spreadsheet-safe."""
    from certs.csvcell import neutralise_formula

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["section", "key", "measure", "value"])

    def row(*cells: object) -> None:
        writer.writerow([neutralise_formula(str(cell)) for cell in cells])

    for state, count in sorted(report["jobs"].items()):
        row("jobs", "total", state, count)
    for day, states in report["per_day"].items():
        for state, count in sorted(states.items()):
            row("per_day", day, state, count)
    for section in ("per_station", "by_method", "by_media", "by_model"):
        for item in report[section]:
            for state, count in sorted(item["states"].items()):
                row(section, item["key"], state, count)
    for item in report["failure_reasons"]:
        row("failure_reasons", item["reason"], "jobs", item["count"])
    for item in report["routes"]:
        row("routes", item["state"], item["scheme"] or "", item["assets"])
    for section in ("receipt_to_sanitised_hours", "receipt_to_handover_hours"):
        for item in report[section]:
            row(section, item["station"], "median", item["median"])
            row(section, item["station"], "p90", item["p90"])
            row(section, item["station"], "assets", item["assets"])
    return out.getvalue()


def to_pdf(report: dict[str, Any], path: Path) -> Path:
    """A PDF for managers: the numbers at a glance, the burn-up chart and the outcome chart, with their tables."""
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.charts.linecharts import HorizontalLineChart
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    from certs.render import register_fonts

    register_fonts()
    body = ParagraphStyle("body", fontName="WA-Sans", fontSize=9, leading=12)
    heading = ParagraphStyle("heading", fontName="WA-Sans-Bold", fontSize=13, leading=17, spaceBefore=6)
    title = ParagraphStyle("title", fontName="WA-Sans-Bold", fontSize=18, leading=22)

    def table(header: list[str], rows: list[list[object]]) -> Table:
        cells = [[cell if isinstance(cell, Paragraph) else str(cell) for cell in r] for r in rows]
        grid = Table([header, *cells], repeatRows=1, hAlign="LEFT")
        grid.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), "WA-Sans"), ("FONTSIZE", (0, 0), (-1, -1), 8),
                                  ("FONTNAME", (0, 0), (-1, 0), "WA-Sans-Bold"),
                                  ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                                  ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef5"))]))
        return grid

    jobs = report["jobs"]
    done = jobs.get("sanitised", 0)
    story: list[Any] = [
        Paragraph("Refresh programme report", title),
        Paragraph(f"{report['from']} to {report['to']} (UTC days; to is exclusive) · generated "
                  f"{report['generated_at'][:19]}Z", body),
        Spacer(1, 4 * mm),
        Paragraph(f"<b>{sum(jobs.values())}</b> jobs finished: <b>{done}</b> sanitised, "
                  f"{jobs.get('failed', 0)} failed, {jobs.get('interrupted', 0)} interrupted, "
                  f"{jobs.get('refused', 0)} refused.", body),
    ]
    # burn-up: cumulative sanitised per day
    days = list(report["per_day"].items())
    cumulative, running = [], 0
    for _, states in days:
        running += states.get("sanitised", 0)
        cumulative.append(running)
    if days:
        drawing = Drawing(170 * mm, 60 * mm)
        chart = HorizontalLineChart()
        chart.x, chart.y, chart.width, chart.height = 12 * mm, 10 * mm, 150 * mm, 42 * mm
        chart.data = [cumulative]
        chart.categoryAxis.categoryNames = [day[5:] if index % max(1, len(days) // 10) == 0 else ""
                                            for index, (day, _) in enumerate(days)]
        chart.categoryAxis.labels.fontName = chart.valueAxis.labels.fontName = "WA-Sans"
        chart.categoryAxis.labels.fontSize = chart.valueAxis.labels.fontSize = 7
        chart.valueAxis.valueMin = 0
        chart.lines[0].strokeColor = colors.HexColor("#1f6f43")
        chart.lines[0].strokeWidth = 2
        drawing.add(chart)
        drawing.add(String(12 * mm, 55 * mm, "Drives sanitised, cumulative", fontName="WA-Sans-Bold", fontSize=9))
        story += [Paragraph("Burn-up", heading), drawing]
    stations = report["per_station"]
    if stations:
        states = ["sanitised", "failed", "interrupted", "refused"]
        drawing = Drawing(170 * mm, 60 * mm)
        bars = VerticalBarChart()
        bars.x, bars.y, bars.width, bars.height = 12 * mm, 10 * mm, 150 * mm, 42 * mm
        bars.data = [[item["states"].get(state, 0) for item in stations] for state in states]
        bars.categoryAxis.categoryNames = [item["key"][:14] for item in stations]
        bars.categoryAxis.labels.fontName = bars.valueAxis.labels.fontName = "WA-Sans"
        bars.categoryAxis.labels.fontSize = bars.valueAxis.labels.fontSize = 7
        bars.valueAxis.valueMin = 0
        palette = ["#1f6f43", "#b3261e", "#c77700", "#555555"]
        for index, colour in enumerate(palette):
            bars.bars[index].fillColor = colors.HexColor(colour)
        drawing.add(bars)
        drawing.add(String(12 * mm, 55 * mm, "Outcomes per station (sanitised, failed, interrupted, refused)",
                           fontName="WA-Sans-Bold", fontSize=9))
        story += [Paragraph("Stations", heading), drawing,
                  table(["station", "total", *states],
                        [[item["key"], item["total"], *[item["states"].get(s, 0) for s in states]]
                         for item in stations])]
    for section, label in (("by_method", "Outcomes by method"), ("by_media", "Outcomes by media"),
                           ("by_model", f"Outcomes by model (top {TOP})")):
        if report[section]:
            story += [Paragraph(label, heading),
                      table(["", "total", "sanitised", "failed", "interrupted", "refused"],
                            [[item["key"][:40], item["total"],
                              *[item["states"].get(s, 0) for s in ("sanitised", "failed", "interrupted", "refused")]]
                             for item in report[section]])]
    if report["failure_reasons"]:
        story += [Paragraph("Commonest failure reasons", heading),
                  table(["reason", "jobs"], [[Paragraph(item["reason"][:300], body), item["count"]]
                                             for item in report["failure_reasons"]])]
    story += [Paragraph("Assets by state and route (now)", heading),
              table(["state", "scheme", "assets"], [[r["state"], r["scheme"] or "-", r["assets"]]
                                                    for r in report["routes"]])]
    for section, title in (("receipt_to_sanitised_hours", "Receipt to sanitisation (hours)"),
                           ("receipt_to_handover_hours", "Receipt to hand-over (hours)")):
        if report[section]:
            story += [Paragraph(title, heading),
                      table(["station", "assets", "median", "90th percentile"],
                            [[r["station"], r["assets"], r["median"], r["p90"]] for r in report[section]])]
    path.parent.mkdir(parents=True, exist_ok=True)
    document = SimpleDocTemplate(str(path), pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm,
                                 topMargin=16 * mm, bottomMargin=16 * mm, title="Refresh programme report",
                                 author="wipe-agent fleet")
    document.build(story)
    return path
