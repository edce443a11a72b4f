"""What the partner view does with what the fleet lacks or was told later: a listed certificate it never
received (the page and the pack's README say so), a manifest PDF that never arrived (listed, not served),
a manifest the station voided (gone for the partner, marked for an admin), a held PDF that no longer
verifies (not handed out); and the names a pack gives files."""

from __future__ import annotations

import dataclasses
import io
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from agent.fleet.database import FleetDatabase
from agent.fleet.ingest import Ingestor
from agent.web.fleet_partner import manifests_of, safe_name
from certs.verify import load_trust_bundle
from tests.integration.web.fleet_partner_kit import (
    ListAudit,
    PartnerWorld,
    feed,
    fetch,
    partner_console,
    run_client,
    sign_in,
)

SCHOOLS, GLA = "/partner/manifests/station-01/MF-SCH-0001", "/partner/manifests/station-01/MF-GLA-0001"


@pytest.mark.parametrize(("name", "safe"), [
    ("C-SCH-0002.pdf", "C-SCH-0002.pdf"),
    ("..\\..\\Windows\\evil.pdf", "Windows_evil.pdf"),
    ("../../etc/passwd", "etc_passwd"),
    ("/absolute.pdf", "absolute.pdf"),
    ("C:\\boot.ini", "C_boot.ini"),
    (".hidden.pdf", "hidden.pdf"),
    ("a..b.pdf", "a_b.pdf"),
    ("...", "fallback.pdf"),
    ("", "fallback.pdf"),
    ("x" * 300 + ".pdf", "x" * 100),
    # names Windows keeps for devices, or changes (a trailing dot): extracted there they are not the file listed
    ("CON.pdf", "_CON.pdf"), ("nul", "_nul"), ("Com1.PDF", "_Com1.PDF"), ("lpt9.tar.pdf", "_lpt9.tar.pdf"),
    ("cert.pdf.", "cert.pdf"), ("CONSOLE.pdf", "CONSOLE.pdf"),
])
def test_a_pack_name_is_a_plain_name(name: str, safe: str) -> None:
    assert safe_name(name, "fallback.pdf") == safe


def _fed(dsn: str, world: PartnerWorld) -> FleetDatabase:
    fleet = FleetDatabase(dsn).open()
    feed(fleet, world)
    return fleet


def _get(dsn: str, world: PartnerWorld, name: str, *paths: str) -> list[tuple[int, bytes]]:
    return [(status, body) for status, body, _ in fetch(dsn, world, name, *paths)]


def test_a_certificate_the_fleet_never_received_is_named_on_the_page_and_in_the_pack(
        postgres_dsn: str, partner_world: PartnerWorld) -> None:
    with _fed(postgres_dsn, partner_world) as fleet, fleet.transaction() as db:
        db.execute("DELETE FROM fleet_documents WHERE document_id = 'C-SCH-0002'")
    (status, page), (pack_status, pack) = _get(postgres_dsn, partner_world, "schools-partner", SCHOOLS,
                                               SCHOOLS + "/pack")
    assert status == pack_status == 200
    assert b"The fleet holds no copy of 1 listed certificate(s): C-SCH-0002" in page
    assert b"C-SCH-0002 <strong>(not held)</strong>" in page
    with zipfile.ZipFile(io.BytesIO(pack)) as archive:
        names = archive.namelist()
        readme = archive.read("manifest-MF-SCH-0001/README.txt").decode()
    assert not [name for name in names if name.endswith("C-SCH-0002.pdf")]
    assert "INCOMPLETE" in readme and "C-SCH-0002 (C-SCH-0002.pdf)" in readme


def test_a_manifest_whose_pdf_never_arrived_is_listed_but_not_served(postgres_dsn: str,
                                                                    partner_world: PartnerWorld
                                                                    ) -> None:
    with _fed(postgres_dsn, partner_world) as fleet, fleet.transaction() as db:
        db.execute("DELETE FROM fleet_documents WHERE document_id = 'MF-GLA-0001'")
    (listing_status, listing), (status, page), (pack_status, _) = _get(
        postgres_dsn, partner_world, "gla-partner", "/partner", GLA, GLA + "/pack")
    assert listing_status == 200 and b"MF-GLA-0001" in listing
    assert b"the signed PDF has not reached the fleet" in listing
    assert (status, pack_status) == (503, 503)
    assert b"the fleet holds no signed PDF of manifest MF-GLA-0001" in page and b"Traceback" not in page


def test_a_held_pdf_that_no_longer_verifies_is_not_handed_out(postgres_dsn: str,
                                                               partner_world: PartnerWorld) -> None:
    fleet = _fed(postgres_dsn, partner_world)
    app, _console = partner_console(postgres_dsn, partner_world, ListAudit())

    async def scenario(client: Any) -> list[int]:
        await sign_in(client, "gla-partner")
        statuses = [(await client.get(GLA)).status]  # verified, and the verdict kept
        with fleet.transaction() as db:  # one byte changed behind the fleet's back; its sha256 column kept
            db.execute("UPDATE fleet_documents SET pdf = overlay(pdf placing '\\x21'::bytea from 4000 for 1) "
                       "WHERE document_id = 'MF-GLA-0001'")
        for suffix in ("", "/pdf", "/csv", "/pack"):
            response = await client.get(GLA + suffix, headers={"Accept": "text/html"})
            statuses.append(response.status)
            if suffix == "":
                assert "does not verify now" in await response.text()
        return statuses

    with fleet:
        assert run_client(app, scenario) == [200, 503, 503, 503, 503]


def test_a_voided_manifest_is_gone_for_the_partner_and_marked_for_an_admin(postgres_dsn: str,
                                                                            partner_world: PartnerWorld
                                                                            ) -> None:
    fleet = _fed(postgres_dsn, partner_world)
    with fleet:
        station = dataclasses.replace(partner_world.feeds[0], records=list(partner_world.feeds[0].records))
        sent = len(station.records)
        station.audit("manifest-voided", "MF-GLA-0001", {"reason": "not signed"})
        Ingestor(fleet, load_trust_bundle(partner_world.world.bundle)).ingest(
            "station-01", station.batch(station.records[sent:]))
        assert [m.manifest_id for m in manifests_of(fleet.db, "gla-reuse")] == []
        assert sorted((m.manifest_id, m.voided) for m in manifests_of(fleet.db, None, voided=True)) == [
            ("MF-GLA-0001", True), ("MF-SCH-0001", False)]
        assert [m.manifest_id for m in manifests_of(fleet.db, None)] == ["MF-SCH-0001"]
    (status, listing), (page_status, _) = _get(postgres_dsn, partner_world, "gla-partner", "/partner", GLA)
    assert status == 200 and b"MF-GLA-0001" not in listing and page_status == 404
    [(_, everyone)] = _get(postgres_dsn, partner_world, "admin", "/partner")
    assert b"MF-GLA-0001</a> <strong>(voided: never handed over)</strong>" in everyone


def test_a_manifest_whose_entry_names_another_scheme_than_its_signed_pdf_is_not_handed_out(
        postgres_dsn: str, partner_world: PartnerWorld) -> None:
    from tests.integration.store.fleet_kit import StationFeed

    # the station's entry says "schools"; the manifest it signed is for gla-reuse
    station = StationFeed("station-01", signer=partner_world.world.station)
    station.audit("manifest", "MF-GLA-0001", {"scheme": "schools", "assets": ["GLA-LT-0003"]})
    station.document(partner_world.manifests["MF-GLA-0001"])
    with FleetDatabase(postgres_dsn) as fleet:
        Ingestor(fleet, load_trust_bundle(partner_world.world.bundle)).ingest("station-01", station.batch())
    (listing_status, listing), (status, page), (pack_status, _) = _get(
        postgres_dsn, partner_world, "schools-partner", "/partner", GLA, GLA + "/pack")
    assert listing_status == 200 and b"MF-GLA-0001" in listing  # listed by its entry...
    assert (status, pack_status) == (503, 503)  # ...but never handed out
    assert b"the signed manifest is for scheme &#39;gla-reuse&#39;, its audit entry says &#39;schools&#39;" in page
    [(gla_status, _)] = _get(postgres_dsn, partner_world, "gla-partner", GLA)
    assert gla_status == 404  # and not to the partner its PDF names either: the entry allocates it


def test_a_hand_over_the_station_recorded_is_shown(postgres_dsn: str,
                                                   partner_world: PartnerWorld) -> None:
    with _fed(postgres_dsn, partner_world) as fleet:
        station = dataclasses.replace(partner_world.feeds[0], records=list(partner_world.feeds[0].records))
        sent = len(station.records)
        station.audit("manifest-handed-over", "MF-SCH-0001", {
            "assets": ["SCH-LT-0001", "SCH-LT-0002"], "received_by": "<i>R. Receiver</i>", "partner": "Schools Trust",
            "reference": "DN-42", "recorded_by": "operator"})
        Ingestor(fleet, load_trust_bundle(partner_world.world.bundle)).ingest(
            "station-01", station.batch(station.records[sent:]))
        [summary] = manifests_of(fleet.db, "schools")
    assert summary.handed_over is not None and summary.handed_over["received_by"] == "<i>R. Receiver</i>"
    (_, listing), (_, page) = _get(postgres_dsn, partner_world, "schools-partner", "/partner", SCHOOLS)
    assert b"</span> to &lt;i&gt;R. Receiver&lt;/i&gt;" in listing and b"handed over on" in listing
    assert b"received by &lt;i&gt;R. Receiver&lt;/i&gt; (Schools Trust), reference DN-42" in page
    [(_, other)] = _get(postgres_dsn, partner_world, "gla-partner", "/partner")
    assert b"not yet" in other and b"Receiver" not in other


def test_a_new_bundle_judges_a_held_manifest_again(postgres_dsn: str, partner_world: PartnerWorld,
                                                   tmp_path: Path) -> None:
    from certs import pki

    bundle = tmp_path / "bundle.pem"
    shutil.copyfile(partner_world.world.bundle, bundle)
    fleet = _fed(postgres_dsn, partner_world)
    ca = tmp_path / "ca"  # a copy of the CA: the module's world keeps its station unrevoked
    shutil.copytree(partner_world.world.ca_dir, ca)
    app, _console = partner_console(postgres_dsn, partner_world, ListAudit(), trust=bundle)

    async def scenario(client: Any) -> list[int]:
        await sign_in(client, "gla-partner")
        statuses = [(await client.get(GLA)).status]
        pki.revoke(ca, station_id="station-01", reason="superseded")
        pki.make_bundle(ca, tmp_path / "new.pem")
        shutil.copyfile(tmp_path / "new.pem", bundle)  # the organisation hands out a new bundle
        response = await client.get(GLA, headers={"Accept": "text/html"})
        statuses.append(response.status)
        assert "revoked" in await response.text()
        return statuses

    with fleet:
        assert run_client(app, scenario) == [200, 503]


def test_a_hand_over_entered_before_its_manifest_is_not_shown(postgres_dsn: str,
                                                              partner_world: PartnerWorld) -> None:
    from tests.integration.store.fleet_kit import StationFeed

    station = StationFeed("station-01", signer=partner_world.world.station)
    station.audit("manifest-handed-over", "MF-SCH-0001", {"assets": ["SCH-LT-0001"], "received_by": "Early Bird",
                                                          "partner": "Schools Trust", "reference": "DN-1"})
    station.audit("manifest", "MF-SCH-0001", {"scheme": "schools", "assets": ["SCH-LT-0001"]})
    station.audit("manifest-handed-over", "MF-SCH-0001", {"assets": ["SCH-LT-0001"], "received_by": "R. Receiver",
                                                          "partner": "Schools Trust", "reference": "DN-2"})
    with FleetDatabase(postgres_dsn) as fleet:
        Ingestor(fleet, load_trust_bundle(partner_world.world.bundle)).ingest("station-01", station.batch())
        [summary] = manifests_of(fleet.db, "schools")
    assert summary.handed_over is not None and summary.handed_over["received_by"] == "R. Receiver"
