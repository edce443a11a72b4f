"""The programme dashboard (``/``): progress against the programme total, throughput, outcomes, routes, time in state.

Every number comes from the fleet's own queries — :func:`agent.fleet.report.build` for the jobs finished in
the period, :mod:`agent.fleet.programme` for the assets (summary, burn-up, routes, time in state) — and every
chart (:mod:`agent.web.charts`) is followed by a table of the same numbers. The period is a GET query
(``?from=YYYY-MM-DD&to=YYYY-MM-DD``, both UTC days, ``to`` inclusive; the last 30 days by default); anything
else is a 400 page of one line. The report's PDF and CSV for the same period download from here.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.errors import AgentError
from agent.fleet import programme, report
from agent.web import charts
from agent.web.accounts import Role
from agent.web.render import render
from agent.web.server import Console

READERS = frozenset({Role.ADMIN, Role.COMPLIANCE, Role.AUDITOR})
DEFAULT_DAYS = 30
PDF_AT_ONCE = 2
OUTCOMES = ("sanitised", "failed", "interrupted", "refused")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class BadQuery(AgentError):
    """A query parameter the page does not take, or not in its form (the error page shows the one line)."""

    code = "bad_query"
    http_status = 400


def _day(request: web.Request, name: str) -> date | None:
    values = request.query.getall(name, [])
    if not values or values == [""]:
        return None
    if len(values) > 1:
        raise BadQuery(f"{name} is given {len(values)} times")
    value = values[0]
    try:
        if not _DAY.fullmatch(value):
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise BadQuery(f"{name} must be a day as YYYY-MM-DD, not {value[:40]!r}") from None


def period_of(request: web.Request, *, allowed: frozenset[str] = frozenset()) -> tuple[date, date]:
    """(first day, last day) of the page's period, both inclusive, from ``from`` and ``to`` (validated)."""
    unknown = sorted(set(request.query) - {"from", "to"} - allowed)
    if unknown:
        raise BadQuery(f"unknown query parameter {unknown[0][:40]!r} (the period is from=YYYY-MM-DD&to=YYYY-MM-DD)")
    today = datetime.now(UTC).date()
    end = _day(request, "to") or today
    start = _day(request, "from") or end - timedelta(days=DEFAULT_DAYS - 1)
    if end < start:
        raise BadQuery(f"to ({end}) is before from ({start})")
    if (end - start).days + 1 > report.MAX_DAYS:
        raise BadQuery(f"a period covers at most {report.MAX_DAYS} days, not {(end - start).days + 1}")
    return start, end


def programme_now(db: Any) -> dict[str, Any]:
    """What the dashboard shows of the assets, whatever the period: summary, done per day, routes, time in state."""
    try:
        return {"as_of": datetime.now(UTC).strftime("%H:%M:%S"), "summary": programme.summary(db),
                "done_per_day": programme.done_per_day(db), "routes": programme.routes(db),
                "time_in_state": programme.time_in_state(db)}
    finally:
        db.rollback()  # read only: the pooled connection goes back idle


async def dashboard_snapshot(fleet: Any, start: date, end: date) -> dict[str, Any]:
    """Everything the dashboard shows for ``start``…``end`` (inclusive), from the fleet's snapshots: the assets'
    part is shared by every period, the jobs' part is the period's own (moving the dates costs one scan of that
    period's jobs)."""
    now = await fleet.snapshot(("programme",), lambda database: programme_now(database.db))
    jobs = await fleet.snapshot(("report", start, end), lambda database: _report(database.db, start, end))
    return {**now, "report": jobs,
            "burn_up": programme.burn_up_of(now["done_per_day"], start, end + timedelta(days=1))}


def _charts(data: dict[str, Any], days: int) -> dict[str, Any]:
    summary, jobs, burn = data["summary"], data["report"], data["burn_up"]
    target = summary["total"]
    made: dict[str, Any] = {
        "burn_up": charts.burn_up(
            "chart-burn-up", "Devices done, cumulative, against the programme total",
            f"{burn['cumulative'][-1] if burn['cumulative'] else burn['before']:,} of {target:,} devices done by "
            f"{burn['days'][-1] if burn['days'] else '-'}; bars: devices done each day",
            burn["days"], burn["cumulative"], target, burn["daily"]),
    }

    def outcome_chart(chart_id: str, title: str, items: list[dict[str, Any]]) -> Any:
        labels = [item["key"] for item in items]
        series = [(state, [item["states"].get(state, 0) for item in items]) for state in OUTCOMES]
        description = "; ".join(f"{item['key']}: {item['total']:,} jobs" for item in items[:20]) or "no jobs"
        return charts.stacked_bars(chart_id, title, description, labels, series)

    made["stations"] = outcome_chart("chart-stations", "Jobs finished per station, by outcome", jobs["per_station"])
    made["method"] = outcome_chart("chart-method", "Outcomes by method", jobs["by_method"])
    made["media"] = outcome_chart("chart-media", "Outcomes by media", jobs["by_media"])
    made["model"] = outcome_chart("chart-model", f"Outcomes by model (top {report.TOP})", jobs["by_model"])
    routes = data["routes"]
    made["routes"] = charts.bars(
        "chart-routes", "Assets by route", "; ".join(f"{r['route']}: {r['assets']:,}" for r in routes) or "none",
        [r["route"] for r in routes], [r["assets"] for r in routes])
    states = data["time_in_state"]
    made["time"] = charts.bars(
        "chart-time", "Median hours in the current state",
        "; ".join(f"{s['state']}: median {s['median_hours']} h over {s['assets']:,} assets" for s in states) or "none",
        [s["state"] for s in states], [s["median_hours"] for s in states], unit=" h")
    return made


def install(console: Console, fleet: Any) -> None:
    """Add the dashboard and the report downloads to the fleet's console."""
    pdf_slots = asyncio.Semaphore(PDF_AT_ONCE)

    async def dashboard(request: web.Request) -> web.StreamResponse:
        start, end = period_of(request)
        data = await dashboard_snapshot(fleet, start, end)
        days = (end - start).days + 1
        per_day = {item["key"]: round(item["total"] / days, 1) for item in data["report"]["per_station"]}
        return render(request, "fleet_dashboard.html", start=start.isoformat(), end=end.isoformat(), days=days,
                      charts=_charts(data, days), per_day=per_day, outcomes=OUTCOMES,
                      query=f"from={start.isoformat()}&to={end.isoformat()}", **data)

    async def report_pdf(request: web.Request) -> web.StreamResponse:
        start, end = period_of(request)
        data = await fleet.run(lambda database: _report(database.db, start, end))
        async with pdf_slots:  # drawing a PDF is CPU work: a few at once, the rest wait
            pdf = await asyncio.to_thread(_pdf_bytes, data)
        return _download(pdf, "application/pdf", f"programme-report-{start}-to-{end}.pdf")

    async def report_csv(request: web.Request) -> web.StreamResponse:
        start, end = period_of(request)
        data = await fleet.run(lambda database: _report(database.db, start, end))
        return _download(report.to_csv(data).encode(), "text/csv", f"programme-report-{start}-to-{end}.csv")

    console.add("GET", "/", dashboard, roles=READERS, nav="Programme")
    console.add("GET", "/report.pdf", report_pdf, roles=READERS)
    console.add("GET", "/report.csv", report_csv, roles=READERS)


def _report(db: Any, start: date, end: date) -> dict[str, Any]:
    try:
        return report.build(db, start, end + timedelta(days=1))
    finally:
        db.rollback()


def _pdf_bytes(data: dict[str, Any]) -> bytes:
    with tempfile.TemporaryDirectory(prefix="wa-report-") as folder:
        return report.to_pdf(data, Path(folder) / "report.pdf").read_bytes()


def _download(body: bytes, content_type: str, name: str) -> web.Response:
    """A file to save (never shown inline: a PDF or CSV is not rendered in the console's origin)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:120]
    response = web.Response(body=body, content_type=content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{safe}"'
    return response
