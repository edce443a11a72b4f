"""Fleet manifests in the partner view, on a real PostgreSQL with real signed documents: a partner sees the fleet
manifests naming it (any case) beside its station manifests; the PDF is the one ``fleet manifest create`` kept, the
CSV and JSON byte for byte its folder's, the pack passes the offline verifier; another partner's fleet manifest is
the same 404 as none (page, PDF, CSV, pack); a voided one is marked for an admin and never packed; the fleet's
hand-over is shown."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.fleet.assets import import_register
from agent.fleet.database import FleetDatabase
from agent.fleet.manifests import create, handover, void
from agent.web.accounts import Accounts, Role
from certs import pki
from certs.cli import run_verify
from certs.verify import load_trust_bundle
from tests.conftest import run_cli
from tests.integration.store.fleet_kit import StationFeed
from tests.integration.store.test_fleet_assets import register_rows, write_register
from tests.integration.store.test_fleet_manifest import eligible, push, tag
from tests.integration.web.fleet_partner_kit import PASSWORD, ListAudit, run_client
from tests.unit.certs.certs_test_kit import PkiWorld, build_world

pytestmark = pytest.mark.root
ACCOUNTS = {"hillside": (Role.PARTNER, "hillside primary"), "other": (Role.PARTNER, "Other Partner"),
            "admin": (Role.ADMIN, None)}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True)
class World:
    pki: PkiWorld
    dsn: str
    accounts: Path
    created: dict[str, dict[str, Any]]
    """"hillside" (assets 1, 2 of station-01 and 4 of station-04), "other" (3, 5), "voided" (6, Hillside's,
    voided), "handed" (7, Hillside's, handed over): what create returned."""

    def href(self, name: str) -> str:
        return f"/partner/manifests/fleet-hq/{self.created[name]['manifest_id']}"


@pytest.fixture(scope="module")
def world(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory,
          request: pytest.FixtureRequest) -> Iterator[World]:
    root = tmp_path_factory.mktemp("partner-fleet-manifests")
    pkis = build_world(root / "pki")
    pki.issue_station(pkis.ca_dir, "station-04", root / "station-04")
    pki.issue_fleet(pkis.ca_dir, "fleet-hq", root / "fleet-signer")
    pki.make_bundle(pkis.ca_dir, pkis.bundle)
    second, signer = pki.load_station_signer(root / "station-04"), pki.load_fleet_signer(root / "fleet-signer")
    # a database per module using the fixture (the browser test uses it too)
    dsn: str = postgres_server.create_database("f_" + re.sub(r"[^a-z0-9]", "_", request.module.__name__.lower())[-40:])
    accounts = Accounts(root / "web-accounts.json")
    for name, (role, partner) in ACCOUNTS.items():
        accounts.add(name, role, name.title(), PASSWORD, partner)
    created = {}
    with FleetDatabase(dsn) as fleet:
        import_register(fleet, write_register(root / "register.csv", register_rows(12)))
        first, fourth = StationFeed("station-01"), StationFeed("station-04")
        for number in (1, 2, 3, 6, 7):
            eligible(first, pkis.station, pkis, number, root / "certificates")
        for number in (4, 5):
            eligible(fourth, second, pkis, number, root / "certificates")
        push(fleet, pkis, first)
        push(fleet, pkis, fourth)
        bundle = load_trust_bundle(pkis.bundle)
        for name, partner, numbers in (("hillside", "Hillside Primary", (1, 2, 4)), ("other", "Other Partner", (3, 5)),
                                       ("voided", "Hillside Primary", (6,)), ("handed", "Hillside Primary", (7,))):
            created[name] = create(fleet, "schools", partner, assets=[tag(n) for n in numbers], out_dir=root / name,
                                   signer=signer, bundle=bundle, workers=1)
        void(fleet, created["voided"]["manifest_id"], "partner cancelled")
        handover(fleet, created["handed"]["manifest_id"], "<i>J. Smith</i>", "DN-42")
    yield World(pkis, dsn, root / "web-accounts.json", created)


def _get(world: World, name: str, *paths: str) -> list[tuple[int, bytes]]:
    from agent.web.fleet import fleet_console

    console = fleet_console(world.dsn, accounts=Accounts(world.accounts), trust=world.pki.bundle, secure=False,
                            audit=ListAudit())

    async def scenario(client: Any) -> list[tuple[int, bytes]]:
        page = await client.get("/sign-in")
        token = _CSRF.search(await page.text())
        assert token is not None
        signed_in = await client.post("/sign-in", data={"csrf": token.group(1), "next": "/", "name": name,
                                                        "password": PASSWORD}, allow_redirects=False)
        assert signed_in.status == 303
        answers = []
        for path in paths:
            response = await client.get(path, headers={"Accept": "text/html"})
            answers.append((response.status, await response.read()))
        return answers

    return run_client(console.application(), scenario)


def test_a_partner_lists_the_fleet_manifests_naming_it_in_any_case(world: World) -> None:
    ids = {name: created["manifest_id"].encode() for name, created in world.created.items()}
    [(status, hillside)] = _get(world, "hillside", "/partner")
    assert status == 200
    assert ids["hillside"] in hillside and ids["handed"] in hillside
    assert ids["other"] not in hillside and ids["voided"] not in hillside
    assert f'href="{world.href("hillside")}/pack"'.encode() in hillside
    assert b"fleet fleet-hq (fleet manifest)" in hillside
    assert b"</span> to &lt;i&gt;J. Smith&lt;/i&gt;" in hillside and b"handed over on" in hillside
    [(_, other)] = _get(world, "other", "/partner")
    assert ids["other"] in other and not [key for key in ("hillside", "voided", "handed") if ids[key] in other]
    [(_, admin)] = _get(world, "admin", "/partner")
    assert all(value in admin for value in ids.values())
    assert ids["voided"] + b"</a> <strong>(voided: never handed over)</strong>" in admin
    assert f'href="{world.href("voided")}/pack"'.encode() not in admin


def test_another_partners_fleet_manifest_is_the_same_404_as_none(world: World) -> None:
    other, none = world.href("other"), "/partner/manifests/fleet-hq/FM-20261203-0000000000"
    voided = world.href("voided")  # Hillside's own, but voided: gone for the partner
    paths = [base + suffix for base in (other, none, voided) for suffix in ("", "/pdf", "/csv", "/pack")]
    answers = _get(world, "hillside", *paths)
    assert [status for status, _ in answers] == [404] * 12
    assert len({body for _, body in answers}) == 1  # the same page: nothing says which exists
    assert b"FM-" not in answers[0][1]
    [(status, _)] = _get(world, "other", other)
    assert status == 200


def test_the_pdf_and_csv_are_what_create_kept_and_the_page_is_verified(world: World) -> None:
    created, base = world.created["hillside"], world.href("hillside")
    (page_status, page), (pdf_status, pdf), (csv_status, csv) = _get(world, "hillside", base, base + "/pdf",
                                                                      base + "/csv")
    assert (page_status, pdf_status, csv_status) == (200, 200, 200)
    assert pdf == Path(created["pdf"]).read_bytes()
    assert csv == Path(created["csv"]).read_bytes()
    text = page.decode()
    assert "Signed fleet manifest verified by the fleet now" in text and "signed by fleet fleet-hq" in text
    assert "Hillside Primary" in text and "station-01, station-04" in text
    assert text.count("C-station-") == 3 and "(not held)" not in text
    assert "not yet recorded by the fleet" in text


def test_the_pack_is_the_fleet_folder_and_passes_the_offline_verifier(world: World, tmp_path: Path) -> None:
    created = world.created["hillside"]
    folder = Path(created["pdf"]).parent
    [(status, pack)] = _get(world, "hillside", world.href("hillside") + "/pack")
    assert status == 200
    top = f"fleet-manifest-{created['manifest_id']}"
    with zipfile.ZipFile(io.BytesIO(pack)) as archive:
        names = sorted(archive.namelist())
        for name in names:
            inside = name.removeprefix(f"{top}/")
            if inside not in ("README.txt", "trust-bundle.pem"):
                assert archive.read(name) == (folder / inside).read_bytes(), name
        archive.extractall(tmp_path)
    listed = sorted(path.name for path in (folder / "certificates").iterdir())
    assert names == sorted([f"{top}/{top}.pdf", f"{top}/{top}.json", f"{top}/{top}.csv", f"{top}/README.txt",
                            f"{top}/trust-bundle.pem", *(f"{top}/certificates/{name}" for name in listed)])
    assert len(listed) == 3
    readme = (tmp_path / top / "README.txt").read_text()
    assert f"wipe-agent verify {top}.pdf --trust BUNDLE" in readme and "fleet manifest" in readme
    assert "station(s) station-01, station-04" in readme and "INCOMPLETE" not in readme
    assert (tmp_path / top / "trust-bundle.pem").read_bytes() == world.pki.bundle.read_bytes()
    checked = run_cli("verify", str(tmp_path / top / f"{top}.pdf"), "--trust", str(tmp_path / top / "trust-bundle.pem"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "[fleet manifest]" in checked.stdout and "3 of 3 listed present, valid and matching" in checked.stdout
    (tmp_path / top / "certificates" / listed[0]).unlink()  # the verifier is not a rubber stamp
    lines: list[str] = []
    assert run_verify([str(tmp_path / top / f"{top}.pdf")], str(world.pki.bundle), echo=lines.append) != 0


def test_a_voided_fleet_manifest_is_marked_for_an_admin_and_never_packed(world: World) -> None:
    base = world.href("voided")
    (page_status, page), (pack_status, pack), (pdf_status, _) = _get(world, "admin", base, base + "/pack",
                                                                      base + "/pdf")
    assert (page_status, pack_status, pdf_status) == (200, 410, 200)
    assert b"is <strong>voided</strong>: it was never handed over and is never packed" in page
    assert f'href="{base}/pack"'.encode() not in page
    assert b"is voided: it is never packed" in pack


def test_the_fleets_hand_over_is_on_the_manifests_page(world: World) -> None:
    [(status, page)] = _get(world, "hillside", world.href("handed"))
    assert status == 200
    assert re.search(rb"handed over on \d{4}-\d\d-\d\dT[0-9:]+\+00:00 to &lt;i&gt;J\. Smith&lt;/i&gt;, "
                     rb"reference DN-42, as the fleet recorded it", page), page


def test_a_signed_partner_other_than_the_fleets_record_is_not_handed_out(world: World) -> None:
    manifest = world.created["hillside"]["manifest_id"]
    with FleetDatabase(world.dsn) as fleet:  # the record edited behind the fleet's back: Other Partner's now
        with fleet.transaction() as db:
            db.execute("UPDATE fleet_manifests SET partner = 'Other Partner' WHERE document_id = %s", (manifest,))
        try:
            answers = _get(world, "other", *(world.href("hillside") + suffix for suffix in ("", "/pdf", "/pack")))
            [(hillside, _)] = _get(world, "hillside", world.href("hillside"))
        finally:
            with fleet.transaction() as db:
                db.execute("UPDATE fleet_manifests SET partner = 'Hillside Primary' WHERE document_id = %s",
                           (manifest,))
    assert [status for status, _ in answers] == [503, 503, 503]
    assert b"the signed fleet manifest is for &#39;Hillside Primary&#39;" in answers[0][1]
    assert b"%PDF" not in answers[1][1] and hillside == 404
