"""Fleet ingest and query speed on a real PostgreSQL server (issue 14's bars).

Ingest: job records per second from several stations in batches (each batch one transaction holding the
station's row lock, each job's asset state recomputed in it), into a fleet holding the 30,000-asset register;
audit entries per second (each hashed and linked on the fleet). Queries, with 30,000
assets and 40,000 jobs: asset by tag and by serial (median and worst of 200), the state summary.

Run as root: ``.venv/bin/python bench/bench_fleet.py [JOBS_PER_STATION] [STATIONS] [--database DSN]``.
Without ``--database`` it starts a throw-away server (agent/fleet/localdb.py) with fsync and synchronous
commit on, as in production (``--fast`` turns them off, as the tests do).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.fleet.assets import counts_by_state, find_asset, import_register
from agent.fleet.database import FleetDatabase
from agent.fleet.ingest import Ingestor
from agent.fleet.localdb import PostgresServer
from agent.fleet.programme import summary
from tests.integration.store.fleet_kit import StationFeed


def ingest_in_parallel(dsn: str, feeds: list[StationFeed], batch: int) -> float:
    """Push each feed through the real ingest from a thread of its own (one connection each), ``batch`` records a
    request, as the stations' outboxes would; returns the seconds it took. A refusal is a failure."""

    def push(feed: StationFeed) -> None:
        with FleetDatabase(dsn) as fleet:
            ingestor = Ingestor(fleet, None)
            for start in range(0, len(feed.records), batch):
                result = ingestor.ingest(feed.station_id, feed.batch(feed.records[start:start + batch]))
                assert not result.refused, result.refused[:3]

    threads = [threading.Thread(target=push, args=(feed,)) for feed in feeds]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def ingest(dsn: str, stations: int, per_station: int, batch: int) -> tuple[float, float]:
    """Job records/s (all stations in parallel threads) and audit entries/s (one station)."""
    feeds = []
    for number in range(stations):
        feed = StationFeed(f"bench-{number:02d}")
        for job in range(per_station):
            feed.job(job, asset=f"PF-{(number * per_station + job) % 30_000:06d}")
        feeds.append(feed)

    jobs_rate = stations * per_station / ingest_in_parallel(dsn, feeds, batch)

    chain = StationFeed("bench-audit")
    for _ in range(5_000):
        chain.audit()
    with FleetDatabase(dsn) as fleet:
        ingestor = Ingestor(fleet, None)
        started = time.perf_counter()
        for start in range(0, len(chain.records), batch):
            assert not ingestor.ingest("bench-audit", chain.batch(chain.records[start:start + batch])).refused
        audit_rate = len(chain.records) / (time.perf_counter() - started)
    return jobs_rate, audit_rate


def register(dsn: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "register.csv"
        lines = ["asset_tag,make,model,serial,type,department,due_date"]
        lines += [f"PF-{n:06d},Dell,Latitude {n % 9},SN{n:08d},laptop,Dept {n % 40},2027-01-15" for n in range(30_000)]
        path.write_text("\r\n".join(lines) + "\r\n")
        with FleetDatabase(dsn) as fleet:
            started = time.perf_counter()
            import_register(fleet, path)
            print(f"asset register: 30,000 rows imported in {time.perf_counter() - started:.2f} s")


def queries(dsn: str) -> None:
    with FleetDatabase(dsn) as fleet:
        fleet.db.execute("ANALYZE")
        fleet.db.commit()
        jobs = fleet.db.execute("SELECT count(*) FROM fleet_jobs").fetchone()
        states = fleet.db.execute("SELECT state, count(*) FROM fleet_assets GROUP BY state ORDER BY 1").fetchall()
        fleet.db.commit()
        print(f"fleet holds {jobs[0] if jobs else 0} jobs; asset states {dict(states)}")
        for what, keys in (("tag", [f"PF-{n * 149 % 30_000:06d}" for n in range(200)]),
                           ("serial", [f"sn{n * 151 % 30_000:08d}" for n in range(200)])):
            times = []
            for key in keys:
                started = time.perf_counter()
                assert find_asset(fleet, key) is not None
                times.append((time.perf_counter() - started) * 1000)
            print(f"asset by {what}: median {statistics.median(times):.2f} ms, worst {max(times):.2f} ms")
        started = time.perf_counter()
        counts_by_state(fleet)
        print(f"state summary: {(time.perf_counter() - started) * 1000:.1f} ms")
        started = time.perf_counter()
        summary(fleet.db)
        fleet.db.commit()
        print(f"programme summary (states, schemes, jobs by station): {(time.perf_counter() - started) * 1000:.1f} ms")
        from datetime import UTC, datetime, timedelta

        from agent.fleet.report import build, to_pdf

        today = datetime.now(UTC).date()
        started = time.perf_counter()
        data = build(fleet.db, today - timedelta(days=30), today + timedelta(days=1))
        fleet.db.commit()
        with tempfile.TemporaryDirectory() as folder:
            to_pdf(data, Path(folder) / "month.pdf")
        print(f"monthly report ({sum(data['jobs'].values())} jobs) as PDF with charts: "
              f"{time.perf_counter() - started:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("per_station", nargs="?", type=int, default=10_000)
    parser.add_argument("stations", nargs="?", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--database", default=None)
    parser.add_argument("--fast", action="store_true", help="fsync off on the throw-away server")
    arguments = parser.parse_args()
    server = None
    dsn = arguments.database
    if dsn is None:
        server = PostgresServer(durable=not arguments.fast)
        dsn = server.create_database("bench") if server.start() else ""
    try:
        register(dsn)
        jobs_rate, audit_rate = ingest(dsn, arguments.stations, arguments.per_station, arguments.batch)
        print(f"ingest: {arguments.stations} stations x {arguments.per_station} job records, batches of "
              f"{arguments.batch}: {jobs_rate:,.0f} job records/s")
        print(f"ingest: audit entries (hashed and linked on the fleet): {audit_rate:,.0f} entries/s")
        queries(dsn)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
