"""``wipe-agent web``: serve over TLS as a real process (Secure cookies, HSTS), refuse plain HTTP beyond loopback,
and the account commands' one-line refusals."""

from __future__ import annotations

import http.client
import os
import re
import signal
import ssl
import subprocess
from pathlib import Path

import pytest

from certs import pki
from tests.conftest import WIPE_AGENT, run_cli
from tests.web_kit import PASSWORD


@pytest.fixture
def tls(tmp_path: Path) -> Path:
    """A CA and a TLS server certificate for 127.0.0.1 (the directory holds tls-server.crt/.key and ca.crt)."""
    pki.init_ca("Example Police", tmp_path / "ca")
    pki.issue_tls_server(tmp_path / "ca", tmp_path / "tls", ["127.0.0.1"])
    return tmp_path / "tls"


def _terminated(process: subprocess.Popen[str]) -> int:
    """``process`` (a `web serve`) sent SIGTERM, waited for and its stderr closed: its exit code."""
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=30)
    if process.stderr is not None:
        process.stderr.close()
    return code


def test_serve_over_tls_sends_secure_host_cookies_and_hsts(tls: Path, postgres_dsn: str, accounts_path: Path) -> None:
    process = subprocess.Popen(
        [*WIPE_AGENT, "web", "serve", "--fleet", postgres_dsn, "--listen", "127.0.0.1:0", "--accounts",
         str(accounts_path), "--tls-cert", str(tls / "tls-server.crt"), "--tls-key", str(tls / "tls-server.key")],
        stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"https://127\.0\.0\.1:(\d+)/", line)
        assert match, line + process.stderr.read()
        context = ssl.create_default_context(cafile=str(tls / "ca.crt"))
        connection = http.client.HTTPSConnection("127.0.0.1", int(match.group(1)), context=context, timeout=30)
        connection.request("GET", "/sign-in", headers={"Accept": "text/html"})
        response = connection.getresponse()
        response.read()
        connection.close()
        assert response.status == 200
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("__Host-wa_pre=") and "Secure" in cookie and "HttpOnly" in cookie
        assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    finally:
        code = _terminated(process)
    assert code == 0


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", "192.0.2.2:0", "station.example:0"])
def test_plain_http_beyond_loopback_needs_insecure_http(listen: str, accounts_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "station.toml"
    config.write_text(f'station_id = "station-07"\nstate_dir = "{tmp_path}"\n')
    result = run_cli("--config", str(config), "web", "serve", "--listen", listen, "--accounts", str(accounts_path),
                     timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("wipe-agent: error: plain HTTP on") and result.stderr.count("\n") == 1
    assert "--insecure-http" in result.stderr


def test_half_a_tls_pair_and_an_unreadable_key_are_one_line(tls: Path, accounts_path: Path) -> None:
    half = run_cli("web", "serve", "--fleet", "dbname=x", "--tls-cert", str(tls / "tls-server.crt"),
                   "--accounts", str(accounts_path))
    assert half.returncode == 2 and "--tls-cert and --tls-key go together" in half.stderr
    wrong = run_cli("web", "serve", "--fleet", "dbname=x", "--tls-cert", str(tls / "tls-server.crt"),
                    "--tls-key", str(tls / "ca.crt"), "--accounts", str(accounts_path))
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1 and "Traceback" not in wrong.stderr


def test_account_commands(tmp_path: Path) -> None:
    path = tmp_path / "web-accounts.json"
    environment = {"WIPE_AGENT_WEB_ACCOUNTS": str(path)}
    added = run_cli("web", "account", "add", "pat", "--role", "partner", "--title", "Collections",
                    "--partner", "Reuse Partner Ltd", "--password-stdin", input_text=PASSWORD + "\n", env=environment)
    assert added.returncode == 0, added.stderr
    assert os.stat(path).st_mode & 0o777 == 0o600
    short = run_cli("web", "account", "add", "sam", "--role", "operator", "--title", "Operator", "--password-stdin",
                    input_text="short\n", env=environment)
    assert short.returncode == 2
    assert short.stderr == "wipe-agent: error: the password must have at least 12 characters\n"
    no_partner = run_cli("web", "account", "add", "sam", "--role", "partner", "--title", "x", "--password-stdin",
                         input_text=PASSWORD + "\n", env=environment)
    assert no_partner.returncode == 2 and "names its partner" in no_partner.stderr
    os.chmod(path, 0o640)  # the console's group reads it; a rewrite keeps that
    assert run_cli("web", "account", "remove", "pat", env=environment).returncode == 0
    assert os.stat(path).st_mode & 0o777 == 0o640
    listed = run_cli("web", "account", "list", "--json", env=environment)
    assert listed.returncode == 0 and '"accounts": []' in listed.stdout
    os.chmod(path, 0o644)
    refused = run_cli("web", "account", "list", env=environment)
    assert refused.returncode == 2 and "lets others read it" in refused.stderr


def test_a_console_on_loopback_answers_only_to_loopback_names(tmp_path: Path) -> None:
    config = tmp_path / "station.toml"
    config.write_text(f'station_id = "station-07"\nstate_dir = "{tmp_path}"\napi_socket = "{tmp_path}/api.sock"\n')
    process = subprocess.Popen(
        [*WIPE_AGENT, "--config", str(config), "web", "serve", "--kiosk", "--listen", "127.0.0.1:0", "--accounts",
         str(tmp_path / "none.json")], stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        warning = process.stderr.readline()
        assert warning.startswith("web: warning: no accounts in") and "nobody can sign in" in warning
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", process.stderr.readline())
        assert match
        port = int(match.group(1))

        def status(host: str) -> int:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("GET", "/", headers={"Host": host, "Accept": "text/html"})
            response = connection.getresponse()
            response.read()
            connection.close()
            return response.status

        assert status(f"127.0.0.1:{port}") == 200 and status(f"localhost:{port}") == 200
        assert status(f"[::1]:{port}") == 200
        assert status(f"rebound.evil.example:{port}") == 421 and status("evil.example") == 421
    finally:
        code = _terminated(process)
    assert code == 0
