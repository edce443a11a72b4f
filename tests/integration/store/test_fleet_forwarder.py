"""The station's forwarder (`fleet push --every`) as a real process: it forwards as the station works, rides out
the fleet going away, and catches up by itself afterwards without duplicates; SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent.fleet.database import FleetDatabase
from agent.fleet.outbox import Outbox
from agent.fleet.service import FleetHttpServer, make_server
from agent.store.registry import Registry
from certs import pki
from certs.verify import load_trust_bundle
from tests.conftest import WIPE_AGENT
from tests.integration.store.fleet_kit import free_port
from tests.integration.store.test_fleet_outbox import STATION, run_jobs

pytestmark = pytest.mark.root


def serve(dsn: str, tls: Path, bundle: Path, port: int) -> FleetHttpServer:
    server = make_server(dsn, tls, load_trust_bundle(bundle), "127.0.0.1", port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def fleet_records(dsn: str) -> int:
    with FleetDatabase(dsn) as fleet:
        row = fleet.db.execute("SELECT count(*) FROM fleet_records").fetchone()
        fleet.db.commit()
    return int(row[0]) if row else -1


def wait_for(condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_the_forwarder_catches_up_after_an_outage_without_duplicates(postgres_dsn: str, state_dir: Path,
                                                                     tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    pki.init_ca("Example Police", ca)
    pki.issue_station(ca, STATION, state_dir)
    pki.issue_tls_client(ca, STATION, state_dir)
    pki.issue_tls_server(ca, tmp_path / "tls", ["127.0.0.1"])
    bundle = pki.make_bundle(ca, tmp_path / "bundle.pem")
    registry = Registry(state_dir).open()
    port = free_port()
    server = serve(postgres_dsn, tmp_path / "tls", bundle, port)
    forwarder = subprocess.Popen([*WIPE_AGENT, "--state-dir", str(state_dir), "fleet", "push", "--url",
                                  f"https://127.0.0.1:{port}", "--every", "1"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        outbox = Outbox(registry, STATION)
        run_jobs(registry, state_dir, 0, 3)
        wait_for(lambda: outbox.status().backlog == 0 and outbox.status().records > 0)
        before = fleet_records(postgres_dsn)
        server.shutdown()
        server.server_close()  # the fleet is away
        run_jobs(registry, state_dir, 3, 3)  # the station works on
        time.sleep(3)
        assert outbox.status().backlog > 0 and fleet_records(postgres_dsn) == before
        server = serve(postgres_dsn, tmp_path / "tls", bundle, port)  # back, with nobody pushing by hand
        wait_for(lambda: outbox.status().backlog == 0, timeout=90)
        status = outbox.status()
        assert fleet_records(postgres_dsn) == status.records == status.acknowledged
        with FleetDatabase(postgres_dsn) as fleet:
            jobs = fleet.db.execute("SELECT count(*) FROM fleet_jobs").fetchone()
            quarantined = fleet.db.execute("SELECT count(*) FROM fleet_quarantine").fetchone()
            fleet.db.commit()
        assert jobs == (6,) and quarantined == (0,)
    finally:
        forwarder.send_signal(signal.SIGTERM)
        _, err = forwarder.communicate(timeout=30)
        server.shutdown()
        server.server_close()
        registry.close()
    assert forwarder.returncode == 0, err
    assert "fleet: forwarder stopped" in err and "not forwarded" in err and "Traceback" not in err
