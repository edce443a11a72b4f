"""Adversarial tests of the fleet's HTTP layer (real TLS, real PostgreSQL): a hostile path, header or pace of
sending gets a JSON error or a closed connection, never a 500, a traceback or a connection slot held forever."""

from __future__ import annotations

import json
import socket
import ssl
import time
from typing import Any

import pytest

from tests.integration.store.test_fleet_api import world  # noqa: F401  (the fixture: a fleet serving the API)

pytestmark = pytest.mark.root


@pytest.mark.parametrize("path", [
    "/v1/api/assets/%00", "/v1/api/assets/PF-000001%00", "/v1/api/assets/%00/documents",
    "/v1/api/documents/station-01/%00", "/v1/api/documents/%00/C-0001", "/v1/api/documents/station-01/C-0001%00",
    "/v1/api/assets/..%2F..%2Fetc%2Fpasswd", "/v1/api/documents/station-01/..%2FC-0001",
    "/v1/api/assets/%ff%fe", "/v1/api/assets/%ED%A0%80", "/v1/api/assets/" + "A" * 20000,
    "/v1/api/report?from=0001-01-01&to=0001-01-02", "/v1/api/report?from=9999-12-30&to=9999-12-31",
    "/v1/api/report?from=2026-01-01&to=2026-01-02&from=%00", "/v1/api/report?from=%00&to=%00",
])
def test_a_hostile_api_path_is_answered_not_a_500(world: dict[str, Any], path: str) -> None:  # noqa: F811
    status, kind, body = world["api"].get(path, world["token"])
    assert status in (200, 400, 404, 414), (status, body[:200])
    assert kind == "application/json"
    json.loads(body)
    assert world["api"].get("/v1/api/summary", world["token"])[0] == 200  # the service is still whole


def _slowly(port: int, context: ssl.SSLContext, handshake: bool, seconds: float) -> float:
    """Trickle a request's head one byte each 0.25 s; how long until the server closed the connection."""
    started = time.monotonic()
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    secured: ssl.SSLSocket | None = None
    try:
        if not handshake:  # never finish the TLS handshake: send a partial ClientHello byte by byte
            raw.settimeout(0.05)
            for byte in b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64:
                if time.monotonic() - started > seconds:
                    break
                try:
                    raw.sendall(bytes([byte]))
                    if raw.recv(1) == b"":
                        break
                except TimeoutError:
                    pass
                except OSError:
                    break
                time.sleep(0.25)
            return time.monotonic() - started
        secured = context.wrap_socket(raw, server_hostname="127.0.0.1")
        secured.settimeout(0.05)
        for byte in b"GET /v1/api/summary HTTP/1.1\r\nX-Slow: " + b"a" * 400:
            if time.monotonic() - started > seconds:
                break
            try:
                secured.sendall(bytes([byte]))
                if secured.recv(1) == b"":
                    break
            except TimeoutError:
                pass
            except (OSError, ssl.SSLError):
                break
            time.sleep(0.25)
        return time.monotonic() - started
    finally:
        (secured or raw).close()


@pytest.mark.parametrize("handshake", [True, False], ids=["slow-headers", "slow-handshake"])
def test_a_slowloris_client_is_cut_off_at_the_deadline(world: dict[str, Any], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                       handshake: bool) -> None:
    from agent.fleet import service

    monkeypatch.setattr(service, "HEADER_DEADLINE_SECONDS", 1.5)
    api = world["api"]
    assert _slowly(api.port, api.context, handshake, 8.0) < 5.0
    assert api.get("/v1/api/summary", world["token"])[0] == 200  # a prompt client is served as ever


def test_an_unreadable_or_stale_crl_refuses_every_station_in_one_line(tmp_path: Any) -> None:
    import shutil
    from datetime import UTC, datetime, timedelta
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from agent.fleet.service import ClientRefused, StationAuthenticator
    from certs import pki

    ca, tls, state = Path(tmp_path) / "ca", Path(tmp_path) / "tls", Path(tmp_path) / "station-01"
    pki.init_ca("Example Police", ca)
    pki.issue_tls_server(ca, tls, ["127.0.0.1"])
    pki.issue_tls_client(ca, "station-01", state)
    der = x509.load_pem_x509_certificate((state / "pki" / "tls-client.crt").read_bytes()).public_bytes(
        serialization.Encoding.DER)
    crl = Path(tmp_path) / "crl.pem"
    shutil.copy(tls / "crl.pem", crl)
    authenticator = StationAuthenticator(tls / "ca.crt", crl)
    assert authenticator.station_of(der) == "station-01"
    next_update = x509.load_pem_x509_crl(crl.read_bytes()).next_update_utc
    assert next_update is not None
    stale = StationAuthenticator(tls / "ca.crt", crl, clock=lambda: next_update + timedelta(minutes=1))
    assert next_update + timedelta(minutes=1) < x509.load_der_x509_certificate(der).not_valid_after_utc
    with pytest.raises(ClientRefused, match="next update"):  # the certificate is valid; the CRL is not
        stale.station_of(der)
    crl.write_text("-----BEGIN X509 CRL-----\nnot a crl\n-----END X509 CRL-----\n")
    with pytest.raises(ClientRefused, match="CRL"):
        authenticator.station_of(der)
    crl.unlink()
    with pytest.raises(ClientRefused, match="CRL"):
        authenticator.station_of(der)
    assert datetime.now(UTC) < next_update


def _post(world: dict[str, Any], body: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:  # noqa: F811
    import http.client

    connection = http.client.HTTPSConnection("127.0.0.1", world["api"].port, timeout=30,
                                             context=world["client"].context)
    try:
        connection.request("POST", "/v1/ingest", body=body,
                           headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_hostile_ingest_bodies_over_tls_get_an_answer_and_never_wedge(world: dict[str, Any]) -> None:  # noqa: F811
    client = world["client"]
    start = client.next_seq()
    job = {"job_id": "station-01-JX", "state": "sanitised", "drive": {"model": "M\x00", "serial": "S"},
           "created_at": "2026-01-01T00:00:00+00:00"}
    nested: Any = 1
    for _ in range(950):
        nested = [nested]
    cases: list[tuple[bytes, set[int]]] = [
        (b'{"station_id": "station-01", "records": [{"seq": ' + b"9" * 5000 + b"}]}", {400}),  # past int digits
        (b'{"station_id": "station-01", "records": [{"seq": ' + b"9" * 4000 + b', "kind": "job", "key": "k", '
         b'"body": {}}]}', {200}),
        (json.dumps({"station_id": "station-01", "records": [{"seq": start, "kind": "job", "key": "k",
                                                               "body": {"deep": nested}}]}).encode(), {200, 400}),
        (b'{"station_id": "station-01", "records": [{"seq": 1, "kind": "job", "key": "\\udc00", "body": {}}]}', {200}),
        (b'{"station_id": "station-01", "records": [{"seq": 1e400}]}', {200, 400}),
        (b'\xff\xfe{"station_id"', {400}),
        (json.dumps({"station_id": "station-01", "records": [{"seq": start, "kind": "job", "key": "station-01-JX",
                                                               "body": job}]}).encode(), {200}),
    ]
    for body, expected in cases:
        status, answer = _post(world, body)
        assert status in expected, (body[:80], status, answer)
    assert client.next_seq() > start  # the stream moved on: nothing wedged it
