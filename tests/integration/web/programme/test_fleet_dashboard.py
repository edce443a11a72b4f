"""The programme dashboard on a real PostgreSQL fed through the real ingest path: charts with their tables,
the numbers they show, the period filter and its refusals, hostile values escaped, the report downloads."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent.fleet import programme
from agent.fleet.database import FleetDatabase
from tests.integration.web.fleet_web_kit import HOSTILE_MODEL, Console

pytestmark = pytest.mark.root
SVG = re.compile(r"<svg class=\"chart\".*?</svg>", re.S)


def _rows(html: str, caption: str) -> list[list[str]]:
    """The cells of the table whose caption starts with ``caption`` (tags stripped)."""
    match = re.search(r"<table class=\"data\">\s*<caption>" + re.escape(caption) + r".*?</table>", html, re.S)
    assert match, f"no table {caption!r}"
    rows = re.findall(r"<tr>(.*?)</tr>", match.group(0), re.S)
    return [[re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in rows[1:]]


def test_the_dashboard_draws_every_chart_with_a_table_of_the_same_numbers(console: Console,
                                                                            fleet: dict[str, Any]) -> None:
    status, headers, html = console.page("admin", "/")
    assert status == 200 and "script-src 'self'" in headers["Content-Security-Policy"]
    charts = SVG.findall(html)
    assert len(charts) == 7
    for chart in charts:  # each is well-formed SVG, an image with a title and a description
        root = ElementTree.fromstring(chart)
        assert root.get("role") == "img" and root.get("viewBox", "").startswith("0 0 ")
        assert root.find("{http://www.w3.org/2000/svg}title") is not None
        assert root.find("{http://www.w3.org/2000/svg}desc") is not None
    assert " style=" not in html and "<script" not in html  # the CSP allows neither
    db = fleet["database"].db
    done = programme.summary(db)["done"]
    db.rollback()
    # station-01's 20 and station-02's 10 sanitised, but PF-000003 is routed to destruction (held): 29 done
    assert done == 29
    assert f"<strong>{done}</strong> of 60 devices done" in html
    burn = _rows(html, "Devices done per day")[::-1]  # newest first in the table
    assert len(burn) == 30 and burn[-1][2] == str(done)
    assert sum(int(row[1]) for row in burn) == done  # every done asset finished in the last 30 days
    # station-01's over five days (PF-000003, of day 3, held), station-02's all today
    assert [int(row[1]) for row in burn[-5:]] == [4, 3, 4, 4, 4 + 10]
    stations = {row[0]: row for row in _rows(html, "Jobs finished per station")}
    assert stations["station-01"][1] == "23" and stations["station-02"][1] == "10"  # 21 sanitised, failed, interrupted
    assert stations["station-01"][3:] == ["21", "1", "1", "0"]
    assert stations["station-02"][2] == f"{10 / 30:.1f}"  # per day over the 30-day period
    methods = {row[0]: row[1] for row in _rows(html, "Jobs by method")}
    assert methods == {"nvme-sanitize": "23", "overwrite.zero": "10"}  # 10 odd + failed, interrupted, hostile + 10
    routes = {row[0]: row[1] for row in _rows(html, "Assets by route")}
    assert routes["reuse:schools"] == "1" and routes["destroy"] == "1"
    assert sum(int(value) for value in routes.values()) == 60
    states = {row[0]: row[1] for row in _rows(html, "Assets in each state")}
    assert states["held"] == "3" and states["awaiting"] == "28"  # failed, interrupted, routed to destruction
    # the chart draws the numbers of its table: the burn-up's last point is labelled with the done count
    assert f">{done}</text>" in charts[0]


def test_the_period_is_a_validated_query(console: Console) -> None:
    today = datetime.now(UTC).date()
    status, _, html = console.page("auditor", f"/?from={today - timedelta(days=6)}&to={today}")
    assert status == 200 and len(_rows(html, "Devices done per day")) == 7
    status, _, html = console.page("compliance", f"/?from={today - timedelta(days=3)}&to={today - timedelta(days=1)}")
    burn = _rows(html, "Devices done per day")[::-1]
    assert [row[1] for row in burn] == ["3", "4", "4"] and burn[-1][2] == str(4 + 3 + 4 + 4)  # 4 done before
    for query, message in (
            ("from=2026-13-01", "from must be a day as YYYY-MM-DD, not &#39;2026-13-01&#39;"),
            ("to=20260101", "to must be a day as YYYY-MM-DD"),
            ("from=2026-05-02&to=2026-05-01", "to (2026-05-01) is before from (2026-05-02)"),
            ("from=2020-01-01&to=2026-01-01", "a period covers at most 400 days"),
            ("from=2026-01-01&from=2026-01-02", "from is given 2 times"),
            ("colour=red", "unknown query parameter &#39;colour&#39;"),
            ("from=%3Cscript%3Ealert(1)%3C/script%3E", "not &#39;&lt;script&gt;alert(1)&lt;/script&gt;&#39;")):
        status, _, html = console.page("admin", f"/?{query}")
        assert status == 400, query
        assert message in html, (query, html)
        assert "<script>" not in html and "Traceback" not in html
        assert html.count('role="alert"') == 1


def test_hostile_values_from_a_station_are_shown_as_text(console: Console) -> None:
    _, _, html = console.page("admin", "/")
    assert "&lt;script&gt;alert(&#39;model&#39;)&lt;/script&gt;" in html
    assert HOSTILE_MODEL not in html and "<script" not in html


def test_who_may_open_the_dashboard(console: Console) -> None:
    for role in ("admin", "compliance", "auditor"):
        assert console.page(role, "/")[0] == 200
    for role in ("operator", "partner"):
        assert console.page(role, "/")[0] == 403
        assert console.fetch(role, "/report.pdf")[0] == 403
    assert console.page("anonymous", "/")[0] == 303


def test_the_report_downloads_for_the_period(console: Console) -> None:
    today = datetime.now(UTC).date()
    query = f"from={today - timedelta(days=9)}&to={today}"
    status, headers, pdf = console.fetch("compliance", f"/report.pdf?{query}")
    assert status == 200 and headers["Content-Type"] == "application/pdf" and pdf.startswith(b"%PDF-")
    assert headers["Content-Disposition"] == (f'attachment; filename="programme-report-{today - timedelta(days=9)}'
                                              f'-to-{today}.pdf"')
    status, headers, csv = console.fetch("auditor", f"/report.csv?{query}")
    lines = csv.decode().splitlines()
    assert status == 200 and headers["Content-Type"].startswith("text/csv")
    assert lines[0] == "section,key,measure,value" and "jobs,total,sanitised,31" in lines
    assert console.fetch("admin", "/report.csv?from=nope")[0] == 400


def test_the_programme_queries_behind_the_dashboard(fleet: dict[str, Any]) -> None:
    db = fleet["database"].db
    today = datetime.now(UTC).date()
    burn = programme.burn_up(db, today - timedelta(days=1), today + timedelta(days=1))
    assert burn["before"] == 4 + 3 + 4 and burn["daily"] == [4, 14] and burn["cumulative"] == [15, 29]
    assert burn["after"] == 0
    routes = {item["route"]: item for item in programme.routes(db)}
    assert routes["reuse:schools"]["states"] == {"eligible": 1}
    assert routes["destroy"]["states"] == {"held": 1}
    assert routes["undecided"]["assets"] == 58
    hours = {item["state"]: item for item in programme.time_in_state(db, datetime.now(UTC) + timedelta(hours=5))}
    assert hours["sanitised"]["assets"] == 28 and 4.9 < hours["sanitised"]["median_hours"] < 5.5
    db.rollback()


def test_a_snapshot_is_reused_only_while_the_fleet_holds_nothing_new(postgres_dsn: str, console: Console,
                                                                     fleet: dict[str, Any]) -> None:
    import asyncio

    from agent.fleet.ingest import Ingestor
    from agent.web.fleet import FleetContext
    from tests.integration.store.fleet_kit import StationFeed

    computed: list[int] = []

    def work(database: FleetDatabase) -> int:
        computed.append(1)
        row = database.db.execute("SELECT count(*) FROM fleet_jobs").fetchone()
        database.db.rollback()
        return int(row[0]) if row else -1

    async def twice(context: FleetContext) -> list[int]:
        return list(await asyncio.gather(*(context.snapshot("jobs", work) for _ in range(5))))

    context = FleetContext(postgres_dsn)
    loop = asyncio.new_event_loop()  # the context's locks belong to one loop, as in the console
    try:
        assert loop.run_until_complete(twice(context)) == [33] * 5 and len(computed) == 1  # five at once: once
        assert loop.run_until_complete(twice(context)) == [33] * 5 and len(computed) == 1
        _, _, before = console.page("admin", "/")
        feed = StationFeed("station-02", seq=10)
        feed.job(10, asset="PF-000040", serial="S2-0010")
        assert Ingestor(fleet["database"], None).ingest("station-02", feed.batch()).refused == []
        assert loop.run_until_complete(twice(context)) == [34] * 5 and len(computed) == 2  # a record came: anew
        _, _, after = console.page("admin", "/")
    finally:
        context.close()
        loop.close()
    assert "<strong>29</strong> of 60" in before and "<strong>30</strong> of 60" in after
