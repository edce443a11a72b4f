"""`wipe-agent pki issue-tls-*` and `wipe-agent fleet serve` as an operator runs them: real processes, real TLS,
a real PostgreSQL; bad input is one line and exit 2, SIGTERM stops the service cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.fleet.client import FleetClient
from tests.conftest import WIPE_AGENT, run_cli
from tests.integration.store.fleet_kit import StationFeed

pytestmark = pytest.mark.root


def test_issue_tls_certificates_serve_push_and_stop(postgres_dsn: str, tmp_path: Path) -> None:
    ca, tls, state = tmp_path / "ca", tmp_path / "tls", tmp_path / "station"
    run_cli("pki", "init-ca", "--org", "Example Police", "--out", str(ca), check=True)
    run_cli("pki", "issue-station", "--ca", str(ca), "--station-id", "station-07", "--state-dir", str(state),
            check=True)
    client_cert = run_cli("pki", "issue-tls-client", "--ca", str(ca), "--station-id", "station-07",
                          "--state-dir", str(state), "--json", check=True)
    assert json.loads(client_cert.stdout)["station_id"] == "station-07"
    assert (state / "pki" / "tls-client.key").stat().st_mode & 0o777 == 0o600
    run_cli("pki", "issue-tls-server", "--ca", str(ca), "--out", str(tls), "--name", "127.0.0.1", check=True)
    run_cli("pki", "bundle", "--ca", str(ca), "--out", str(tmp_path / "bundle.pem"), check=True)
    bad_name = run_cli("pki", "issue-tls-server", "--ca", str(ca), "--out", str(tmp_path / "x"), "--name", "a b")
    assert bad_name.returncode != 0 and "neither a DNS name nor an IP address" in bad_name.stderr
    assert "Traceback" not in bad_name.stderr

    service = subprocess.Popen([*WIPE_AGENT, "fleet", "serve", "--database", postgres_dsn, "--tls", str(tls),
                                "--trust", str(tmp_path / "bundle.pem"), "--listen", "127.0.0.1:0"],
                               stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        assert service.stderr is not None
        line = service.stderr.readline()
        found = re.search(r"https://127\.0\.0\.1:(\d+)/", line)
        assert found, line
        client = FleetClient(f"https://127.0.0.1:{found.group(1)}", state / "pki")
        feed = StationFeed("station-07")
        feed.job(1)
        feed.audit()
        assert client.push(feed.batch())["accepted"] == 2
        assert client.next_seq() == 3
    finally:
        service.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while service.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    assert service.stderr is not None
    rest = service.stderr.read()
    service.stderr.close()
    assert service.returncode == 0, rest
    assert "fleet: stopped" in rest and "Traceback" not in rest


@pytest.mark.parametrize("case", ["no-tls-dir", "bad-listen", "bad-trust", "no-database"])
def test_serve_refuses_bad_input_in_one_line(postgres_dsn: str, tmp_path: Path, case: str) -> None:
    ca, tls = tmp_path / "ca", tmp_path / "tls"
    run_cli("pki", "init-ca", "--org", "Example Police", "--out", str(ca), check=True)
    run_cli("pki", "issue-tls-server", "--ca", str(ca), "--out", str(tls), "--name", "127.0.0.1", check=True)
    run_cli("pki", "bundle", "--ca", str(ca), "--out", str(tmp_path / "bundle.pem"), check=True)
    (tmp_path / "not-a-bundle.pem").write_text("hello\n")
    arguments = {"--database": postgres_dsn, "--tls": str(tls), "--trust": str(tmp_path / "bundle.pem"),
                 "--listen": "127.0.0.1:0"}
    expected = {"no-tls-dir": "missing", "bad-listen": "port must be a number", "bad-trust": "not-a-bundle.pem",
                "no-database": "cannot connect to the fleet database"}[case]
    if case == "no-tls-dir":
        arguments["--tls"] = str(tmp_path / "nowhere")
    elif case == "bad-listen":
        arguments["--listen"] = "127.0.0.1:http"
    elif case == "bad-trust":
        arguments["--trust"] = str(tmp_path / "not-a-bundle.pem")
    else:
        arguments["--database"] = f"host={tmp_path} dbname=x connect_timeout=2"
    result = run_cli("fleet", "serve", *[item for pair in arguments.items() for item in pair], timeout=60)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
