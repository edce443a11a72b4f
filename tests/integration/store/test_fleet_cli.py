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
        url = f"https://127.0.0.1:{found.group(1)}"
        waiting = run_cli("--state-dir", str(state), "fleet", "status", "--json", check=True)
        backlog = json.loads(waiting.stdout)
        assert backlog["station_id"] == "station-07" and backlog["backlog"] == backlog["records"] >= 2
        pushed = run_cli("--state-dir", str(state), "fleet", "push", "--url", url, "--json", check=True)
        answer = json.loads(pushed.stdout)
        assert answer["push"]["accepted"] == backlog["records"] and answer["status"]["backlog"] == 0
        assert FleetClient(url, state / "pki").next_seq() == backlog["records"] + 1
        shown = run_cli("--state-dir", str(state), "fleet", "status", check=True)
        assert "backlog 0" in shown.stdout and "0 refused" in shown.stdout
        # the station's key change, chained in its audit log, reached the fleet's copy of the chain
        import psycopg

        with psycopg.connect(postgres_dsn) as db:
            kinds = [row[0] for row in db.execute("SELECT kind FROM fleet_audit ORDER BY seq")]
        assert "key-station-issued" in kinds and "key-tls-client-issued" in kinds
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
    offline = run_cli("--state-dir", str(state), "fleet", "push", "--url", "https://127.0.0.1:9")
    assert offline.returncode == 1 and "Traceback" not in offline.stderr and offline.stderr.count("\n") == 1
    assert json.loads(run_cli("--state-dir", str(state), "fleet", "status", "--json", check=True).stdout)[
        "backlog"] == 0


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
    assert result.returncode == (1 if case == "no-database" else 2), result.stderr
    assert expected in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
