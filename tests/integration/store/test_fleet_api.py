"""The fleet's read API over real TLS on a real PostgreSQL: tokens (hashed, revocable) open it and nothing else
does; a station certificate opens only the ingest; answers carry the asset, its jobs and the PDF bytes as stored."""

from __future__ import annotations

import hashlib
import http.client
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.fleet.api import new_token
from agent.fleet.assets import import_register
from agent.fleet.client import FleetClient
from agent.fleet.database import FleetDatabase
from agent.fleet.service import FleetHttpServer, make_server
from certs import pki
from certs.issue import issue_certificate
from certs.samples import sample_record
from certs.verify import load_trust_bundle
from tests.conftest import run_cli
from tests.integration.store.fleet_kit import StationFeed
from tests.integration.store.test_fleet_assets import register_rows, write_register

pytestmark = pytest.mark.root


class Api:
    def __init__(self, port: int, ca: Path) -> None:
        self.port = port
        self.context = ssl.create_default_context(cafile=str(ca))

    def get(self, path: str, token: str | None = None, method: str = "GET",
            context: ssl.SSLContext | None = None) -> tuple[int, str, bytes]:
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=context or self.context)
        try:
            connection.request(method, path, headers={"Authorization": f"Bearer {token}"} if token else {})
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type") or "", response.read()
        finally:
            connection.close()


@pytest.fixture
def world(postgres_dsn: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    ca = tmp_path / "ca"
    pki.init_ca("Example Police", ca)
    state = tmp_path / "station-01"
    pki.issue_station(ca, "station-01", state)
    pki.issue_tls_client(ca, "station-01", state)
    pki.issue_tls_server(ca, tmp_path / "tls", ["127.0.0.1"])
    bundle = pki.make_bundle(ca, tmp_path / "bundle.pem")
    pdf = issue_certificate(sample_record(station_id="station-01", certificate_id="C-0001", demo=False),
                            pki.load_station_signer(state), tmp_path / "C-0001.pdf")
    with FleetDatabase(postgres_dsn) as database:
        import_register(database, write_register(tmp_path / "register.csv", register_rows(5)))
        with database.transaction() as tx:
            token = new_token(tx, "asset-system")
    server: FleetHttpServer = make_server(postgres_dsn, tmp_path / "tls", load_trust_bundle(bundle), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    feed = StationFeed("station-01")
    feed.job(1, asset="PF-000001", serial="SN00000001")
    feed.records[-1]["body"]["events"] = [{"event": "certificate-issued", "data": {"certificate_id": "C-0001"}}]
    feed.document(pdf)
    feed.audit("manifest", "M-1", {"scheme": "schools", "assets": ["PF-000001"]})
    client = FleetClient(f"https://127.0.0.1:{server.server_address[1]}", state / "pki")
    assert client.push(feed.batch())["refused"] == []
    try:
        yield {"api": Api(server.server_address[1], ca / "ca.crt"), "token": token, "pdf": pdf, "client": client,
               "dsn": postgres_dsn}
    finally:
        server.shutdown()
        server.server_close()


def test_a_token_reads_the_asset_its_documents_the_pdf_manifests_summary_and_report(world: dict[str, Any]) -> None:
    api, token = world["api"], world["token"]
    status, kind, body = api.get("/v1/api/assets/sn00000001", token)
    asset = json.loads(body)
    assert (status, kind) == (200, "application/json")
    assert asset["asset_tag"] == "PF-000001" and asset["state"] == "allocated"
    assert [job["certificate_id"] for job in asset["jobs"]] == ["C-0001"]
    status, _, body = api.get("/v1/api/assets/PF-000001/documents", token)
    [document] = json.loads(body)["documents"]
    assert document["kind"] == "certificate" and document["document_id"] == "C-0001"
    status, kind, pdf = api.get(document["href"], token)
    assert (status, kind) == (200, "application/pdf") and pdf == world["pdf"].read_bytes()
    assert document["sha256"] == hashlib.sha256(pdf).hexdigest()
    manifests = json.loads(api.get("/v1/api/manifests", token)[2])["manifests"]
    assert [(m["manifest_id"], m["assets"], m["voided"]) for m in manifests] == [("M-1", ["PF-000001"], False)]
    assert json.loads(api.get("/v1/api/summary", token)[2])["states"]["allocated"] == 1
    report = api.get("/v1/api/report?from=2020-01-01&to=2020-02-01", token)
    assert report[0] == 200 and json.loads(report[2])["jobs"] == {}
    assert api.get("/v1/api/report?from=x&to=y", token)[0] == 400
    assert api.get("/v1/api/assets/NOPE", token)[0] == 404
    assert api.get("/v1/api/documents/station-01/C-9999", token)[0] == 404


def test_only_a_live_token_opens_the_api_and_only_a_station_opens_the_ingest(world: dict[str, Any]) -> None:
    api, token = world["api"], world["token"]
    assert api.get("/v1/api/summary", token)[0] == 200
    assert api.get("/v1/api/summary")[0] == 401
    assert api.get("/v1/api/summary", "wfa_" + "x" * 43)[0] == 401
    assert api.get("/v1/api/summary", token, method="POST")[0] == 405
    assert api.get("/v1/ingest/next", token)[0] == 401  # a token is not a station
    station_context = world["client"].context
    assert api.get("/v1/api/summary", token, context=station_context)[0] == 403  # nor a station a reader
    env = {"WIPE_AGENT_FLEET_DATABASE": world["dsn"]}
    listed = json.loads(run_cli("fleet", "token", "list", "--json", env=env, check=True).stdout)
    assert [item["name"] for item in listed] == ["asset-system"] and listed[0]["last_used"] is not None
    assert "token" not in listed[0] and world["token"] not in json.dumps(listed)
    run_cli("fleet", "token", "revoke", "asset-system", env=env, check=True)
    assert api.get("/v1/api/summary", token)[0] == 401
    again = run_cli("fleet", "token", "revoke", "asset-system", env=env)
    assert again.returncode == 2 and "no active token" in again.stderr
    made = json.loads(run_cli("fleet", "token", "create", "reporting", "--json", env=env, check=True).stdout)
    assert api.get("/v1/api/summary", made["token"])[0] == 200
    with FleetDatabase(world["dsn"]) as database:
        stored = database.db.execute("SELECT sha256 FROM fleet_tokens WHERE name = 'reporting'").fetchone()
        database.db.commit()
    assert stored == (hashlib.sha256(made["token"].encode()).hexdigest(),)
