"""Four station processes push 500 jobs each (audit entries on every transition, signed checkpoints, a real
certificate on every 20th job) to a real fleet service on PostgreSQL, which is killed and restarted midway,
while one station cannot reach it for a while: every record arrives exactly once, every station's chain
verifies on the fleet from genesis, and the fleet's counts equal the stations' own registries."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.fleet.database import FleetDatabase
from certs import pki
from certs.audit_chain import Checkpoint, check_checkpoints, check_entries
from certs.verify import load_trust_bundle
from tests.conftest import WIPE_AGENT
from tests.integration.store.fleet_kit import free_port

pytestmark = pytest.mark.root

STATIONS = 4
JOBS = 500


def start_fleet(dsn: str, tls: Path, bundle: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("ab")
    service = subprocess.Popen([*WIPE_AGENT, "fleet", "serve", "--database", dsn, "--tls", str(tls),
                                "--trust", str(bundle), "--listen", f"127.0.0.1:{port}"],
                               stdout=handle, stderr=handle, env=os.environ.copy())
    handle.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return service
        time.sleep(0.1)
    service.kill()
    raise AssertionError(f"fleet did not start: {log.read_text()}")


def test_four_stations_through_a_fleet_restart_and_an_outage(postgres_dsn: str, tmp_path: Path) -> None:
    ca, tls = tmp_path / "ca", tmp_path / "fleet-tls"
    pki.init_ca("Example Police", ca)
    pki.issue_tls_server(ca, tls, ["127.0.0.1"])
    states = []
    for index in range(STATIONS):
        state = tmp_path / f"station-{index + 1:02d}"
        pki.issue_station(ca, f"station-{index + 1:02d}", state)
        pki.issue_tls_client(ca, f"station-{index + 1:02d}", state)
        states.append(state)
    bundle = pki.make_bundle(ca, tmp_path / "bundle.pem")
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    log = tmp_path / "fleet.log"
    with FleetDatabase(postgres_dsn):
        pass  # the schema exists before four processes race to use it
    service = start_fleet(postgres_dsn, tls, bundle, port, log)
    url_files = []
    for index in range(STATIONS):
        url_file = tmp_path / f"url-{index}"
        url_file.write_text("https://127.0.0.1:1" if index == 3 else url)  # station-04 starts cut off
        url_files.append(url_file)
    stations = [subprocess.Popen([sys.executable, "-m", "tests.integration.store.station_pusher", str(state),
                                  str(url_file), str(JOBS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True, env=os.environ.copy())
                for state, url_file in zip(states, url_files, strict=True)]
    try:
        # midway: the fleet dies (SIGKILL, a crash) once some records have arrived, and comes back
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with FleetDatabase(postgres_dsn) as fleet:
                row = fleet.db.execute("SELECT count(*) FROM fleet_records").fetchone()
                fleet.db.commit()
            if row and row[0] >= 1000:
                break
            time.sleep(0.2)
        service.send_signal(signal.SIGKILL)
        service.wait(30)
        time.sleep(2)
        service = start_fleet(postgres_dsn, tls, bundle, port, log)
        url_files[3].write_text(url)  # station-04's network is back
        summaries = []
        for station in stations:
            out, err = station.communicate(timeout=600)
            assert station.returncode == 0, err
            summaries.append(json.loads(out))
    finally:
        for station in stations:
            if station.poll() is None:
                station.kill()
        service.send_signal(signal.SIGTERM)
        service.wait(30)
    trust = load_trust_bundle(bundle)
    assert any(summary["failed_pushes"] > 0 for summary in summaries)  # the outage and the restart were felt
    with FleetDatabase(postgres_dsn) as fleet:
        db = fleet.db
        assert db.execute("SELECT count(*) FROM fleet_quarantine").fetchone() == (0,)
        for summary in summaries:
            station = summary["station_id"]
            assert summary["jobs"] == JOBS and summary["refused"] == 0
            assert summary["acknowledged"] == summary["records"]

            def count(query: str, station: str = station) -> int:
                row = db.execute(query, (station,)).fetchone()
                return int(row[0]) if row else -1

            assert count("SELECT count(*) FROM fleet_records WHERE station_id = %s") == summary["records"]
            assert count("SELECT count(DISTINCT (station_id, seq)) FROM fleet_records WHERE station_id = %s") \
                == summary["records"]
            assert count("SELECT count(*) FROM fleet_jobs WHERE station_id = %s AND state = 'sanitised'") == JOBS
            assert count("SELECT count(*) FROM fleet_audit WHERE station_id = %s") == summary["audit"]
            assert count("SELECT count(*) FROM fleet_checkpoints WHERE station_id = %s") == summary["checkpoints"]
            assert count("SELECT count(*) FROM fleet_documents WHERE station_id = %s") == summary["certificates"]
            # the station's chain, as the fleet holds it, verifies from genesis with its signed checkpoints
            entries = [{"seq": r[0], "at": r[1], "kind": r[2], "subject": r[3], "data": json.loads(r[4]),
                        "prev_hash": r[5], "hash": r[6]} for r in db.execute(
                "SELECT seq, at, kind, subject, data, prev_hash, hash FROM fleet_audit WHERE station_id = %s "
                "ORDER BY seq", (station,)).fetchall()]
            problems, hashes = check_entries(entries)
            assert problems == []
            checkpoints = [Checkpoint.from_json(json.loads(r[0]), "checkpoint") for r in db.execute(
                "SELECT body FROM fleet_checkpoints WHERE station_id = %s ORDER BY number", (station,)).fetchall()]
            checkpoint_problems, anchored = check_checkpoints(checkpoints, hashes, len(entries), trust, station)
            assert checkpoint_problems == [] and anchored == len(entries)
        db.commit()
