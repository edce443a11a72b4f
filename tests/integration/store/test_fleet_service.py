"""The fleet service over real mutual TLS on loopback, in front of a real PostgreSQL: only the organisation's
station TLS certificates get in, each can write only its own records, and bad requests get a JSON error."""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent.fleet.client import FleetClient
from agent.fleet.errors import FleetConfigError, FleetUnavailable
from agent.fleet.service import ClientRefused, FleetHttpServer, StationAuthenticator, make_server
from certs import pki
from tests.integration.store.fleet_kit import StationFeed

pytestmark = pytest.mark.root


@dataclass
class Fleet:
    ca: Path
    tls: Path
    server: FleetHttpServer
    url: str
    stations: dict[str, Path]


@pytest.fixture
def fleet(postgres_dsn: str, tmp_path: Path) -> Iterator[Fleet]:
    ca = tmp_path / "ca"
    pki.init_ca("Example Police", ca)
    tls = tmp_path / "fleet-tls"
    pki.issue_tls_server(ca, tls, ["127.0.0.1", "localhost"])
    stations = {}
    for station in ("station-01", "station-02"):
        state = tmp_path / station
        pki.issue_station(ca, station, state)
        pki.issue_tls_client(ca, station, state)
        stations[station] = state / "pki"
    other = tmp_path / "other-ca"
    pki.init_ca("Example Police", other)  # same name, other key: an impostor CA
    pki.issue_tls_client(other, "station-01", tmp_path / "impostor")
    stations["impostor"] = tmp_path / "impostor" / "pki"
    server = make_server(postgres_dsn, tls, None, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Fleet(ca, tls, server, f"https://127.0.0.1:{server.server_address[1]}", stations)
    finally:
        server.shutdown()
        server.server_close()


def test_a_station_pushes_its_records_and_learns_where_to_resume(fleet: Fleet) -> None:
    client = FleetClient(fleet.url, fleet.stations["station-01"])
    assert client.next_seq() == 1
    feed = StationFeed("station-01")
    for number in range(20):
        feed.job(number)
    for _ in range(5):
        feed.audit()
    result = client.push(feed.batch())
    assert result["accepted"] == 25 and result["refused"] == [] and result["next_seq"] == 26
    assert client.push(feed.batch())["resent"] == 25
    assert client.next_seq() == 26


def test_a_station_cannot_write_another_stations_records(fleet: Fleet) -> None:
    client = FleetClient(fleet.url, fleet.stations["station-01"])
    victim = StationFeed("station-02")
    victim.job(1)
    result = client.push(victim.batch())
    assert [item["code"] for item in result["refused"]] == ["foreign_station"]
    assert FleetClient(fleet.url, fleet.stations["station-02"]).next_seq() == 1


def test_a_certificate_of_another_ca_is_refused_at_the_handshake(fleet: Fleet) -> None:
    with pytest.raises(FleetUnavailable):
        FleetClient(fleet.url, fleet.stations["impostor"]).next_seq()


def test_a_station_revoked_after_the_service_started_is_refused(fleet: Fleet) -> None:
    client = FleetClient(fleet.url, fleet.stations["station-02"])
    assert client.next_seq() == 1
    pki.revoke(fleet.ca, station_id="station-02")
    shutil.copy(fleet.ca / "crl.pem", fleet.tls / "crl.pem")  # the fleet host installs the new CRL
    with pytest.raises(FleetUnavailable, match=r"403 forbidden.*revoked"):
        client.next_seq()
    assert FleetClient(fleet.url, fleet.stations["station-01"]).next_seq() == 1


def test_a_signing_certificate_is_not_a_tls_client_certificate(fleet: Fleet, tmp_path: Path) -> None:
    signing = tmp_path / "signing-as-tls"
    signing.mkdir()
    source = fleet.stations["station-01"]
    shutil.copy(source / "station.key", signing / "tls-client.key")
    shutil.copy(source / "station.crt", signing / "tls-client.crt")
    shutil.copy(source / "ca.crt", signing / "ca.crt")
    with pytest.raises(FleetUnavailable):
        FleetClient(fleet.url, signing).next_seq()


def test_the_authenticator_decides_from_the_bytes_itself(fleet: Fleet) -> None:
    """OpenSSL's checks are the first line; these are ours, with OpenSSL out of the way."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    def der(path: Path) -> bytes:
        return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(serialization.Encoding.DER)

    authenticator = StationAuthenticator(fleet.tls / "ca.crt", fleet.tls / "crl.pem")
    assert authenticator.station_of(der(fleet.stations["station-01"] / "tls-client.crt")) == "station-01"
    refusals = {
        "signing": der(fleet.stations["station-01"] / "station.crt"),
        "impostor": der(fleet.stations["impostor"] / "tls-client.crt"),
        "server": der(fleet.tls / "tls-server.crt"),
    }
    for expected, certificate in (("clientAuth only", refusals["signing"]), ("does not verify", refusals["impostor"]),
                                  ("clientAuth only", refusals["server"])):
        with pytest.raises(ClientRefused, match=expected):
            authenticator.station_of(certificate)
    with pytest.raises(ClientRefused, match="no client certificate"):
        authenticator.station_of(None)
    later = StationAuthenticator(fleet.tls / "ca.crt", fleet.tls / "crl.pem",
                                 clock=lambda: datetime.now(UTC) + timedelta(days=400))
    with pytest.raises(ClientRefused, match="validity"):
        later.station_of(der(fleet.stations["station-01"] / "tls-client.crt"))


def test_bad_requests_get_a_json_error_and_change_nothing(fleet: Fleet) -> None:
    client = FleetClient(fleet.url, fleet.stations["station-01"])

    def raw(method: str, path: str, body: bytes | None, headers: dict[str, str]) -> tuple[int, dict[str, object]]:
        connection = http.client.HTTPSConnection("127.0.0.1", fleet.server.server_address[1], timeout=30,
                                                 context=client.context)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, json.loads(response.read())
        finally:
            connection.close()

    cases = [
        ("POST", "/v1/ingest", b"{}", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        ("POST", "/v1/ingest", b"{not json", {"Content-Type": "application/json"}, 400, "bad_json"),
        ("POST", "/v1/ingest", b"NaN", {"Content-Type": "application/json"}, 400, "bad_json"),
        ("POST", "/v1/ingest", b"[]", {"Content-Type": "application/json"}, 400, "bad_fleet_input"),
        ("POST", "/v1/ingest", b"", {"Content-Type": "application/json", "Content-Length": str(1 << 30)}, 413,
         "payload_too_large"),
        ("GET", "/v1/nothing", None, {}, 404, "not_found"),
        ("DELETE", "/v1/ingest", None, {}, 405, "method_not_allowed"),
    ]
    for method, path, body, headers, status, code in cases:
        got_status, answer = raw(method, path, body, headers)
        assert (got_status, answer["error"]["code"]) == (status, code), (method, path, answer)  # type: ignore[index]
    assert client.next_seq() == 1


def test_the_service_refuses_to_start_with_a_readable_key_or_missing_files(postgres_dsn: str, tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    pki.init_ca("Example Police", ca)
    tls = tmp_path / "tls"
    pki.issue_tls_server(ca, tls, ["127.0.0.1"])
    (tls / "tls-server.key").chmod(0o644)
    with pytest.raises(FleetConfigError, match="readable by other users"):
        make_server(postgres_dsn, tls, None, "127.0.0.1", 0)
    (tls / "crl.pem").unlink()
    with pytest.raises(FleetConfigError, match=r"crl\.pem: missing"):
        make_server(postgres_dsn, tls, None, "127.0.0.1", 0)
    assert ssl.OPENSSL_VERSION  # the context above was built by the system's OpenSSL


def test_tls_certificates_have_their_own_profile(fleet: Fleet) -> None:
    """TLS keys sign handshakes only (no content commitment: they never sign a document), CA=false, one EKU;
    the server's names are its subjectAltName."""
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    for path, usage in ((fleet.stations["station-01"] / "tls-client.crt", ExtendedKeyUsageOID.CLIENT_AUTH),
                        (fleet.tls / "tls-server.crt", ExtendedKeyUsageOID.SERVER_AUTH)):
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        assert key_usage.digital_signature and not key_usage.content_commitment and not key_usage.key_cert_sign
        assert list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]
        assert certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    server = x509.load_pem_x509_certificate((fleet.tls / "tls-server.crt").read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(address) for address in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
