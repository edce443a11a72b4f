"""The fleet console under load (issue 15's bar): p95 server time of ``/``, ``/compliance`` and ``/assets/TAG``
with 30,000 assets and 40,000 jobs, against loopback, bounded in time.

The fleet is built through the real ingest path: the 30,000-asset register (bench_fleet.register), then four
stations' outboxes — 40,000 jobs over 60 days (more each week, as a programme ramps up), four outcomes, three
media and their methods, a dozen drive models, re-wipes of a third of the assets, intake entries and
eligibility decisions in each station's audit chain — ingested in batches. The console runs as
``wipe-agent web serve --fleet DSN`` in a process of its own; N clients (aiohttp, each signed in as an admin)
ask for one route at a time for a fixed number of seconds each. The time of a request is measured at the
client from sending to the last byte, so it bounds the server's time from above (loopback adds well under a
millisecond). Optionally ``--screenshot PATH`` saves the dashboard at 1366x768 from headless Chromium.

Run as root: ``.venv/bin/python bench/bench_web_fleet.py [--clients 8] [--seconds 20] [--fast]``. Without
``--database`` it starts a throw-away PostgreSQL server (agent/fleet/localdb.py); ``--fast`` turns fsync off.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.fleet.database import FleetDatabase
from agent.fleet.localdb import PostgresServer
from agent.web.accounts import Accounts, Role
from bench.bench_fleet import ingest_in_parallel, register
from tests.integration.store.fleet_kit import StationFeed, free_port
from tests.web_kit import chromium

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench password, not secret"
BOUND_MS = 300.0
MODELS = {"ssd": ["Samsung PM9A1", "Kingston A2000", "Crucial MX500", "Intel 660p"],
          "hdd": ["Seagate ST1000LM", "WD Blue WD10SPZX", "Toshiba MQ04", "HGST Travelstar"],
          "nvme": ["SK hynix PC401", "Samsung PM981", "WD SN520", "Micron 2200"]}
METHODS = {"ssd": "ata.sanitize.crypto", "hdd": "overwrite.single-pass", "nvme": "nvme.sanitize.crypto"}
REASONS = ["write error at LBA 1048576", "drive vanished during the job (pulled)", "SANITIZE aborted: status 0x02",
           "verification found non-zero data in 3 of 1000 samples", "drive is security-frozen"]


def station_feeds(stations: int, per_station: int, days: int) -> list[StationFeed]:
    """Each station's outbox (see the module docstring); deterministic."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    made = []
    for station in range(stations):
        feed = StationFeed(f"station-{station + 1:02d}")
        for number in range(per_station):
            index = station * per_station + number
            pick = random.Random(index)
            asset = f"PF-{index % 30_000:06d}"
            roll = pick.random()
            state = ("sanitised" if roll < 0.94 else "failed" if roll < 0.97 else "interrupted" if roll < 0.99
                     else "refused")
            if number >= per_station - 20:
                state = "running"
            media = pick.choice(("ssd", "hdd", "nvme"))
            finished = now - timedelta(days=days) + timedelta(seconds=days * 86_400 * math.sqrt(pick.random()))
            if number % 4 == 0:
                feed.audit("intake", asset, {"bay": f"bay-{number % 8}", "asset_tag": asset, "operator": "bench"})
            feed.job(number, state=state, asset=asset, serial=f"{feed.station_id}-S{number:06d}")
            body = feed.records[-1]["body"]
            body["method"] = METHODS[media]
            body["drive"].update(model=pick.choice(MODELS[media]), media=media)
            body["created_at"] = (finished - timedelta(minutes=20 + pick.randrange(60))).isoformat()
            body["finished_at"] = None if state == "running" else finished.isoformat()
            if state in ("failed", "interrupted", "refused"):
                body["reason"] = pick.choice(REASONS)
            if state == "sanitised" and number % 10 == 0:
                route = pick.choice(("reuse:schools", "reuse:schools", "reuse:city-scheme", "destroy", "hold"))
                feed.audit("eligibility-decision", asset, {"route": route})
        made.append(feed)
    return made


def populate(dsn: str, stations: int, per_station: int, days: int, batch: int) -> None:
    register(dsn)
    feeds = station_feeds(stations, per_station, days)

    seconds = ingest_in_parallel(dsn, feeds, batch)
    records = sum(len(feed.records) for feed in feeds)
    print(f"ingest: {records:,} records ({stations * per_station:,} jobs) in {seconds:.1f} s")
    with FleetDatabase(dsn) as fleet:
        fleet.db.execute("ANALYZE")
        counts = fleet.db.execute("SELECT (SELECT count(*) FROM fleet_assets), (SELECT count(*) FROM fleet_jobs), "
                                  "(SELECT count(*) FROM fleet_audit), (SELECT count(*) FROM fleet_asset_facts)"
                                  ).fetchone()
        fleet.db.commit()
    assert counts is not None
    print(f"fleet holds {counts[0]:,} assets, {counts[1]:,} jobs, {counts[2]:,} audit entries, "
          f"{counts[3]:,} asset facts")
    from agent.fleet.sampling import draw

    with FleetDatabase(dsn) as fleet, fleet.transaction() as db:
        drawn = draw(db, 10, "bench")
    print(f"sample: {drawn['drawn']:,} of {drawn['population']:,} drives drawn (10 %)")


def serve(dsn: str, accounts: Path, port: int, *, snapshots: bool) -> subprocess.Popen[str]:
    environment = {**os.environ, "WIPE_AGENT_WEB_SNAPSHOT_TTL": "" if snapshots else "0"}
    console = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "wipe-agent"), "web", "serve", "--fleet", dsn, "--listen", f"127.0.0.1:{port}",
         "--accounts", str(accounts)], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=environment)
    assert console.stderr is not None
    line = console.stderr.readline()
    if "console on" not in line:
        console.kill()
        raise RuntimeError(f"the console did not start: {line}{console.stderr.read()[-2000:]}")
    threading.Thread(target=lambda: console.stderr.read() if console.stderr else None, daemon=True).start()
    return console


async def _signed_in(base: str) -> Any:
    import aiohttp

    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True),
                                    timeout=aiohttp.ClientTimeout(total=60))
    async with session.get(f"{base}/sign-in") as response:
        token = re.search(r'name="csrf" value="([^"]+)"', await response.text())
    assert token is not None
    async with session.post(f"{base}/sign-in", data={"name": "bench", "password": PASSWORD, "csrf": token.group(1),
                                                     "next": "/"}, headers={"Origin": base},
                            allow_redirects=False) as response:
        assert response.status == 303, response.status
    return session


async def load(base: str, clients: int, seconds: float, names: tuple[str, ...]) -> dict[str, list[float]]:
    sessions = [await _signed_in(base) for _ in range(clients)]
    tags = random.Random(7)
    today = datetime.now(UTC).date()
    every: dict[str, Any] = {
        "/": lambda: "/", "/compliance": lambda: "/compliance",
        "/assets/TAG": lambda: f"/assets/PF-{tags.randrange(30_000):06d}",
        # a period of its own each time: what a manager moving the dates costs
        "/?from=…": lambda: f"/?from={today - timedelta(days=tags.randrange(7, 120))}&to={today}"}
    routes = {name: every[name] for name in names}
    results: dict[str, list[float]] = {}
    try:
        for name, target in routes.items():
            async with sessions[0].get(base + target()) as response:  # warm: the pool's connections open
                assert response.status == 200, (name, response.status)
                await response.read()
            times: list[float] = []
            deadline = time.monotonic() + seconds

            async def client(session: Any, target: Any = target, times: list[float] = times,
                             deadline: float = deadline) -> None:
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    async with session.get(base + target()) as response:
                        await response.read()
                        assert response.status == 200, response.status
                    times.append((time.perf_counter() - started) * 1000)

            await asyncio.gather(*(client(session) for session in sessions))
            results[name] = times
    finally:
        for session in sessions:
            await session.close()
    return results


def report(results: dict[str, list[float]], clients: int, seconds: float, what: str) -> bool:
    ok = True
    print(f"load ({what}): {clients} concurrent clients, {seconds:.0f} s per route, request to last byte")
    for name, times in results.items():
        ordered = sorted(times)
        p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
        passed = p95 <= BOUND_MS
        ok = ok and passed
        print(f"  {name:<14} {len(times):6,} requests ({len(times) / seconds:6.1f}/s): median "
              f"{statistics.median(times):7.1f} ms, p95 {p95:7.1f} ms, max {max(times):7.1f} ms"
              f"  [{'ok' if passed else 'OVER'} ≤ {BOUND_MS:.0f} ms]")
    return ok


def screenshot(base: str, path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    with chromium() as driver:
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # type: ignore[attr-defined]
                               {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False})
        driver.get(f"{base}/sign-in")
        field = driver.find_element(By.ID, "name")
        field.send_keys("bench")
        driver.find_element(By.ID, "password").send_keys(PASSWORD + Keys.ENTER)
        WebDriverWait(driver, 30).until(expected_conditions.staleness_of(field))
        path.parent.mkdir(parents=True, exist_ok=True)
        assert "Programme" in driver.title, driver.title
        assert len(driver.find_elements(By.CSS_SELECTOR, "svg.chart")) == 7
        driver.save_screenshot(str(path))
        print(f"screenshot: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--stations", type=int, default=4)
    parser.add_argument("--jobs-per-station", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--database", default=None, help="an already populated fleet database (no ingest)")
    parser.add_argument("--fast", action="store_true", help="fsync off on the throw-away server")
    parser.add_argument("--screenshot", type=Path, default=None, help="save the dashboard as this PNG")
    parser.add_argument("--keep-server", action="store_true",
                        help="leave the throw-away server running (its DSN is printed; for --database next time)")
    arguments = parser.parse_args()
    server = None
    dsn = arguments.database
    console = None
    try:
        if dsn is None:
            server = PostgresServer(durable=not arguments.fast)
            server.start()
            dsn = server.create_database("webbench")
            populate(dsn, arguments.stations, arguments.jobs_per_station, arguments.days, arguments.batch)
        with tempfile.TemporaryDirectory(prefix="wa-web-bench-") as folder:
            accounts = Path(folder) / "web-accounts.json"
            Accounts(accounts).add("bench", Role.ADMIN, "Benchmark", PASSWORD)
            ok = True
            for snapshots, names in ((True, ("/", "/compliance", "/assets/TAG", "/?from=…")),
                                     (False, ("/", "/compliance"))):
                port = free_port()
                console = serve(dsn, accounts, port, snapshots=snapshots)
                base = f"http://127.0.0.1:{port}"
                results = asyncio.run(load(base, arguments.clients, arguments.seconds, names))
                ok = report(results, arguments.clients, arguments.seconds,
                            "snapshots on" if snapshots else "every page computed afresh") and ok
                if arguments.screenshot is not None and snapshots:
                    screenshot(base, arguments.screenshot)
                console.terminate()
                console.wait(timeout=30)
                console = None
    finally:
        if console is not None:
            console.terminate()
            console.wait(timeout=30)
        if server is not None and not arguments.keep_server:
            server.stop()
        elif server is not None:
            print(f"server kept: --database '{dsn}' (stop: pg_ctl -D {server.data} stop; rm -r {server.directory})")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
