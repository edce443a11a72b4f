"""Fleet manifests on a real PostgreSQL with real certificates: eligible assets of every station, signed by the
fleet's own certificate, verified by the partners' verifier, never an asset twice — not even under concurrency."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from agent.fleet.assets import find_asset, import_register
from agent.fleet.database import FleetDatabase
from agent.fleet.errors import FleetInputError
from agent.fleet.ingest import Ingestor
from agent.fleet.manifests import create, list_manifests, show, void
from certs import pki
from certs.cli import run_verify
from certs.pki import StationSigner
from certs.record import Host
from certs.verify import load_trust_bundle
from tests.conftest import run_cli
from tests.integration.store.fleet_kit import StationFeed
from tests.integration.store.test_fleet_assets import register_rows, write_register
from tests.unit.certs.certs_test_kit import PkiWorld, build_world, record_for

pytestmark = pytest.mark.root


@dataclass(frozen=True)
class FleetWorld:
    pki: PkiWorld
    second: StationSigner
    """station-04, a second good station."""
    signer_dir: Path
    signer: StationSigner


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> FleetWorld:
    """A PKI world of this module's own (its revocations must not reach other modules' bundles), a second good
    station and the fleet's signing certificate."""
    root = tmp_path_factory.mktemp("fleet-manifest-pki")
    world = build_world(root)
    pki.issue_station(world.ca_dir, "station-04", root / "station-04")
    pki.issue_fleet(world.ca_dir, "fleet-hq", root / "fleet-signer")
    pki.make_bundle(world.ca_dir, world.bundle)  # the bundle as of now (the fleet certificate is not revoked)
    return FleetWorld(world, pki.load_station_signer(root / "station-04"), root / "fleet-signer",
                      pki.load_fleet_signer(root / "fleet-signer"))


@pytest.fixture
def fleet(postgres_dsn: str, tmp_path: Path) -> Any:
    with FleetDatabase(postgres_dsn) as database:
        import_register(database, write_register(tmp_path / "register.csv", register_rows(12)))
        yield database


def tag(number: int) -> str:
    return f"PF-{number:06d}"


def eligible(feed: StationFeed, signer: StationSigner, world: PkiWorld, number: int, out: Path, *,
             route: str = "reuse:schools", document: bool = True) -> None:
    """Asset ``number`` of the register, one drive sanitised on ``feed``'s station with a real certificate, the
    certificate forwarded, the decision routing it to ``route``."""
    asset, job = tag(number), number
    job_id = f"{feed.station_id}-J{job:06d}"
    serial = f"DRIVE-{number:04d}"
    feed.job(job, state="sanitised", asset=asset, serial=serial)
    feed.records[-1]["body"]["certificate_id"] = f"C-{job_id}"
    base = record_for(signer, demo=False)
    record = dataclasses.replace(base, certificate_id=f"C-{job_id}", job_id=job_id,
                                 host=Host(asset_tag=asset, make="Dell", model="Latitude", serial=f"SN{number:08d}"),
                                 media=dataclasses.replace(base.media, serial=serial))
    if document:
        feed.document(world.issue(record, signer, directory=out, name=f"{job_id}.pdf"))
    feed.audit("eligibility-decision", asset, {"asset": asset, "route": route})


def push(fleet: FleetDatabase, world: PkiWorld, feed: StationFeed) -> None:
    result = Ingestor(fleet, load_trust_bundle(world.bundle)).ingest(feed.station_id, feed.batch())
    assert result.refused == [], result.refused
    feed.records.clear()


def state(fleet: FleetDatabase, number: int) -> str:
    asset = find_asset(fleet, tag(number))
    fleet.db.commit()
    assert asset is not None
    return str(asset.state)


@pytest.fixture
def programme(fleet: FleetDatabase, own: FleetWorld, tmp_path: Path) -> FleetDatabase:
    """Assets 1-3 eligible for schools on station-01, 4-5 on station-04; 6 sanitised with no decision; 7 eligible
    for gla-reuse; 8 in station-01's own manifest."""
    first, second = StationFeed("station-01"), StationFeed("station-04")
    for number in (1, 2, 3, 8):
        eligible(first, own.pki.station, own.pki, number, tmp_path / "certificates")
    for number in (4, 5):
        eligible(second, own.second, own.pki, number, tmp_path / "certificates")
    eligible(second, own.second, own.pki, 7, tmp_path / "certificates", route="reuse:gla-reuse")
    second.job(6, state="sanitised", asset=tag(6), serial="DRIVE-0006")
    first.audit("manifest", "MF-20261203-station01", {"scheme": "schools", "assets": [tag(8)]})
    push(fleet, own.pki, first)
    push(fleet, own.pki, second)
    assert [state(fleet, n) for n in range(1, 9)] == ["eligible"] * 5 + ["sanitised", "eligible", "allocated"]
    return fleet


def make(fleet: FleetDatabase, own: FleetWorld, out: Path, *, assets: list[str] | None = None,
         signer: StationSigner | None = None, bundle: Path | None = None, partner: str = "Hillside Primary") -> Any:
    return create(fleet, "schools", partner, assets=assets, out_dir=out, signer=signer or own.signer,
                  bundle=load_trust_bundle(bundle or own.pki.bundle))


def test_all_eligible_assets_of_every_station_are_listed_signed_and_verifiable(
        programme: FleetDatabase, own: FleetWorld, tmp_path: Path) -> None:
    started = time.monotonic()
    created = make(programme, own, tmp_path / "out")
    elapsed = time.monotonic() - started
    assert created["assets"] == [tag(n) for n in range(1, 6)]
    assert created["stations"] == ["station-01", "station-04"] and created["fleet"] == "fleet-hq"
    assert [state(programme, n) for n in range(1, 6)] == ["allocated"] * 5
    assert state(programme, 6) == "sanitised" and state(programme, 7) == "eligible"
    lines: list[str] = []
    assert run_verify([created["pdf"]], str(own.pki.bundle), echo=lines.append) == 0, lines
    assert "[fleet manifest]" in lines[0] and "signed by fleet fleet-hq" in lines[0], lines
    assert "5 of 5 listed present, valid and matching" in "\n".join(lines), lines
    document = json.loads(Path(created["json"]).read_text())
    drive = document["devices"][3]["drives"][0]
    assert (drive["station_id"], drive["serial"], drive["certificate_id"]) == \
        ("station-04", "DRIVE-0004", "C-station-04-J000004")
    assert len(drive["record_sha256"]) == 64
    listed = list_manifests(programme)
    assert [(item["manifest_id"], item["status"], item["assets"]) for item in listed] == \
        [(created["manifest_id"], "issued", 5)]
    print(f"fleet manifest of {len(created['assets'])} assets from 2 stations created in {elapsed:.2f} s")


def test_a_named_asset_that_cannot_be_listed_refuses_the_whole_manifest(programme: FleetDatabase, own: FleetWorld,
                                                                        tmp_path: Path) -> None:
    with pytest.raises(FleetInputError) as refused:
        make(programme, own, tmp_path / "out", assets=[tag(1), tag(6), tag(7), tag(8), "NOT-A-TAG"])
    problems = "\n".join(refused.value.problems)
    assert "NOT-A-TAG: not in the asset register" in problems
    assert f"{tag(6)}: its programme state is sanitised, not eligible for schools" in problems
    assert f"{tag(7)}: eligible for gla-reuse, not schools" in problems
    assert f"{tag(8)}: already allocated in manifest MF-20261203-station01 of station station-01" in problems
    assert tag(1) not in problems
    assert list_manifests(programme) == [] and not (tmp_path / "out").exists()
    assert state(programme, 1) == "eligible"
    for again in (tag(1).lower(), f" {tag(1)}", tag(1).replace("-", "\uff0d")):  # case, white space, full width
        with pytest.raises(FleetInputError, match="named twice"):
            make(programme, own, tmp_path / "out", assets=[tag(1), again])
    # a partner name the page cannot print as signed is refused before anything is claimed
    for partner, problem in (("\u5b66\u6821", "cannot print"), ("Hill\u202eside", "must be printable")):
        with pytest.raises(FleetInputError, match=problem):
            make(programme, own, tmp_path / "out", assets=[tag(1)], partner=partner)
    assert list_manifests(programme) == [] and state(programme, 1) == "eligible"


def test_an_asset_is_never_in_two_fleet_manifests_until_the_first_is_voided(programme: FleetDatabase,
                                                                             own: FleetWorld, tmp_path: Path) -> None:
    first = make(programme, own, tmp_path / "one", assets=[tag(1), tag(2)])
    with pytest.raises(FleetInputError) as refused:
        make(programme, own, tmp_path / "two", assets=[tag(2), tag(3)])
    assert f"{tag(2)}: already allocated in fleet manifest {first['manifest_id']}" in "\n".join(refused.value.problems)
    second = make(programme, own, tmp_path / "three")  # all eligible: what is left
    assert second["assets"] == [tag(3), tag(4), tag(5)]
    voided = void(programme, first["manifest_id"], "partner cancelled")
    assert voided["status"] == "voided" and state(programme, 1) == "eligible"
    again = make(programme, own, tmp_path / "four", assets=[tag(2)])
    assert again["assets"] == [tag(2)]
    # the database refuses a second claim whatever the code above it does
    row = programme.db.execute("SELECT id FROM fleet_manifests WHERE document_id = %s",
                               (second["manifest_id"],)).fetchone()
    programme.db.commit()
    assert row is not None
    with pytest.raises(psycopg.errors.UniqueViolation):
        programme.db.execute("INSERT INTO fleet_manifest_assets (manifest_id, asset_tag) VALUES (%s, %s)",
                             (row[0], tag(2).lower()))
    programme.db.rollback()


def test_two_creates_at_once_never_list_an_asset_twice(programme: FleetDatabase, own: FleetWorld,
                                                        postgres_dsn: str, tmp_path: Path) -> None:
    start = threading.Barrier(2)
    results: list[Any] = []

    def run(name: str) -> None:
        with FleetDatabase(postgres_dsn) as database:
            start.wait()
            try:
                results.append(make(database, own, tmp_path / name))
            except FleetInputError as error:
                results.append(error)

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    made = [result for result in results if isinstance(result, dict)]
    assert len(results) == 2 and made, results
    listed = [asset for result in made for asset in result["assets"]]
    assert sorted(listed) == [tag(n) for n in range(1, 6)]  # every eligible asset, each once
    rows = programme.db.execute("SELECT upper(asset_tag), count(*) FROM fleet_manifest_assets WHERE NOT voided "
                                "GROUP BY 1 HAVING count(*) > 1").fetchall()
    programme.db.commit()
    assert rows == []
    for result in results:
        # the loser read every asset eligible, as the winner did, and found each claimed when it came to lock them:
        # the race was run, and the lock decided it (the unique index would have named the other manifest instead)
        if isinstance(result, FleetInputError):
            assert "no asset is eligible" in str(result)
            assert len(result.problems) == 5 and all("allocated meanwhile" in item for item in result.problems)
    assert all(item["status"] == "issued" for item in list_manifests(programme))


def test_a_station_key_or_a_revoked_fleet_key_signs_nothing_and_frees_the_assets(
        programme: FleetDatabase, own: FleetWorld, tmp_path: Path) -> None:
    station_as_fleet = dataclasses.replace(own.pki.station, station_id="station-01")
    with pytest.raises(FleetInputError, match=r"not issued: .*signer_profile"):
        make(programme, own, tmp_path / "station", assets=[tag(1)], signer=station_as_fleet)
    assert state(programme, 1) == "eligible"
    # nothing to hand over is left: the refused PDF is kept for support under a name no one takes for the delivery
    assert [path.name.endswith(".refused") for path in (tmp_path / "station").iterdir()] == [True]
    assert [item["status"] for item in list_manifests(programme)] == ["voided"]
    pki.issue_fleet(own.pki.ca_dir, "fleet-old", tmp_path / "old")
    old = pki.load_fleet_signer(tmp_path / "old")
    pki.revoke(own.pki.ca_dir, old.certificate.serial_number)
    bundle = pki.make_bundle(own.pki.ca_dir, tmp_path / "bundle.pem")
    with pytest.raises(FleetInputError, match=r"not issued: .*revoked"):
        make(programme, own, tmp_path / "revoked", assets=[tag(1)], signer=old, bundle=bundle)
    assert state(programme, 1) == "eligible"


def test_a_certificate_no_longer_valid_keeps_its_asset_out(programme: FleetDatabase, own: FleetWorld,
                                                           tmp_path: Path) -> None:
    # a copy of the world whose CRL revokes station-04 (key compromise since before its certificates)
    ca = tmp_path / "ca"
    import shutil

    shutil.copytree(own.pki.ca_dir, ca)
    pki.revoke(ca, station_id="station-04", reason="key-compromise",
               compromised_since=pki.utc_now().replace(year=pki.utc_now().year - 1))
    bundle = pki.make_bundle(ca, tmp_path / "bundle.pem")
    created = make(programme, own, tmp_path / "out", bundle=bundle)
    assert created["assets"] == [tag(1), tag(2), tag(3)]
    assert any(tag(4) in reason and "revoked" in reason for reason in created["skipped"]), created["skipped"]
    with pytest.raises(FleetInputError) as refused:
        make(programme, own, tmp_path / "named", assets=[tag(5)], bundle=bundle)
    assert "not valid now (revoked" in refused.value.problems[0]


def test_a_manifest_left_issuing_by_a_dead_creator_is_voided_by_the_next(programme: FleetDatabase,
                                                                         own: FleetWorld, postgres_dsn: str,
                                                                         tmp_path: Path) -> None:
    from agent.fleet import manifests
    from agent.reuse.schemes import load_scheme

    with FleetDatabase(postgres_dsn) as dying:
        manifest_id, _ = manifests._claim(dying, load_scheme("schools"), "P", "fleet-hq", "FM-dead",
                                          [{"asset": tag(1), "drives": [{"station_id": "station-01"}]}],
                                          explicit=True, skipped=[])
        assert state(programme, 1) == "allocated"
        held = make(programme, own, tmp_path / "while", assets=[tag(2)])  # its lock is held: left alone
        assert held["voided_unfinished"] == []
    # the connection is closed: the process is gone, its lock with it
    created = make(programme, own, tmp_path / "after", assets=[tag(1)])
    assert created["voided_unfinished"] == ["FM-dead"] and created["assets"] == [tag(1)]
    assert show(programme, "FM-dead")["status"] == "voided"
    assert manifest_id > 0


def test_the_command_line(programme: FleetDatabase, own: FleetWorld, postgres_dsn: str, tmp_path: Path) -> None:
    issued = run_cli("pki", "issue-fleet", "--name", "fleet-cli", "--ca", str(own.pki.ca_dir), "--out",
                     str(tmp_path / "signer"), "--json", check=True)
    assert json.loads(issued.stdout)["name"] == "fleet-cli"
    assert (tmp_path / "signer" / "fleet.key").stat().st_mode & 0o777 == 0o600
    again = run_cli("pki", "issue-fleet", "--name", "fleet-cli", "--ca", str(own.pki.ca_dir), "--out",
                    str(tmp_path / "signer"))
    assert again.returncode == 1 and "refusing to overwrite" in again.stderr and "Traceback" not in again.stderr
    bad = run_cli("pki", "issue-fleet", "--name", "fleet cli", "--ca", str(own.pki.ca_dir), "--out",
                  str(tmp_path / "bad"))
    assert bad.returncode == 1 and len(bad.stderr.strip().splitlines()) == 1 and "fleet name" in bad.stderr
    common = ["--database", postgres_dsn, "--signer", str(tmp_path / "signer"), "--trust", str(own.pki.bundle)]
    neither = run_cli("fleet", "manifest", "create", "--scheme", "schools", "--partner", "P", "--out",
                      str(tmp_path / "x"), *common)
    assert neither.returncode == 2 and "--asset TAG" in neither.stderr and "Traceback" not in neither.stderr
    station_dir = run_cli("fleet", "manifest", "create", "--scheme", "schools", "--partner", "P", "--all-eligible",
                          "--out", str(tmp_path / "x"), "--database", postgres_dsn, "--signer",
                          str(own.pki.station_state / "pki"), "--trust", str(own.pki.bundle))
    assert station_dir.returncode == 2 and "no fleet signing key" in station_dir.stderr
    made = run_cli("fleet", "manifest", "create", "--scheme", "schools", "--partner", "Hillside Primary",
                   "--asset", tag(4), "--asset", tag(5), "--out", str(tmp_path / "out"), *common, "--json",
                   check=True)
    created = json.loads(made.stdout)
    assert created["assets"] == [tag(4), tag(5)]
    checked = run_cli("verify", created["pdf"], "--trust", str(own.pki.bundle), check=True)
    assert "[fleet manifest]" in checked.stdout and "signed by fleet fleet-cli" in checked.stdout
    assert "2 of 2 listed present, valid and matching" in checked.stdout
    as_fleet = run_cli("verify", created["pdf"], "--trust", str(own.pki.bundle), "--expect", "fleet-manifest")
    assert as_fleet.returncode == 0
    import subprocess
    import sys

    partner = subprocess.run([sys.executable, "-m", "certs", "verify", created["pdf"], "--trust", str(own.pki.bundle),
                              "--json"], capture_output=True, text=True, check=False, timeout=120)
    verdict = json.loads(partner.stdout)
    assert partner.returncode == 0 and verdict["valid"], partner.stdout
    result = verdict["results"][0]
    assert (result["kind"], result["accepted"], result["complete"]) == ("fleet_manifest", True, True)
    assert [item["ok"] for item in result["certificates"]] == [True, True]
    # the CSV beside it edited: the delivery is refused, the PDF is what counts
    csv_path = Path(created["csv"])
    csv_path.write_text(csv_path.read_text().replace("DRIVE-0004", "DRIVE-9999"))
    edited = run_cli("verify", created["pdf"], "--trust", str(own.pki.bundle))
    assert edited.returncode == 1 and "differs from the manifest signed" in edited.stdout
    wrong = run_cli("verify", created["pdf"], "--trust", str(own.pki.bundle), "--expect", "certificate")
    assert wrong.returncode == 1 and "wrong_kind" in wrong.stdout
    shown = run_cli("fleet", "manifest", "show", created["manifest_id"], "--database", postgres_dsn, "--pdf",
                    str(tmp_path / "kept.pdf"), check=True)
    assert "issued" in shown.stdout and (tmp_path / "kept.pdf").read_bytes() == Path(created["pdf"]).read_bytes()
    listed = run_cli("fleet", "manifest", "list", "--database", postgres_dsn, check=True)
    assert created["manifest_id"] in listed.stdout
    voided = run_cli("fleet", "manifest", "void", created["manifest_id"], "--reason", "cancelled", "--database",
                     postgres_dsn, check=True)
    assert "2 asset(s) released" in voided.stdout
    again = run_cli("fleet", "manifest", "void", created["manifest_id"], "--reason", "x", "--database", postgres_dsn)
    assert again.returncode == 2 and "voided, not issued" in again.stderr


def test_the_unique_claim_stops_a_second_listing_even_when_the_state_says_eligible(
        programme: FleetDatabase, own: FleetWorld, tmp_path: Path) -> None:
    # a claim the programme state does not show yet (as if its recompute had not run): the index alone decides
    with programme.transaction() as db:
        row = db.execute("INSERT INTO fleet_manifests (document_id, scheme, partner, fleet, created_at, status, "
                         "sha256, body) VALUES ('FM-other', 'schools', 'P', 'fleet-hq', now(), 'issued', '', '{}') "
                         "RETURNING id").fetchone()
        assert row is not None
        db.execute("INSERT INTO fleet_manifest_assets (manifest_id, asset_tag) VALUES (%s, %s)", (row[0], tag(3)))
    assert state(programme, 3) == "eligible"
    with pytest.raises(FleetInputError, match=f"{tag(3)}: already allocated in fleet manifest FM-other"):
        make(programme, own, tmp_path / "out", assets=[tag(2), tag(3)])
    assert state(programme, 2) == "eligible"  # the whole claim was rolled back
    assert [item["manifest_id"] for item in list_manifests(programme)] == ["FM-other"]


def test_a_station_shipping_an_asset_the_fleet_allocated_is_an_exception(programme: FleetDatabase, own: FleetWorld,
                                                                        postgres_dsn: str, tmp_path: Path) -> None:
    from agent.fleet.compliance import exceptions

    created = make(programme, own, tmp_path / "out", assets=[tag(1)])
    assert exceptions(programme.db)["allocated_twice"]["count"] == 0
    feed = StationFeed("station-01")  # the station, autonomous, ships it too; the fleet hears of it later
    feed.audit_seq, feed.audit_head = _chain_position(programme, "station-01")
    feed.seq = _next_seq(programme, "station-01") - 1
    feed.audit("manifest", "MF-late", {"scheme": "schools", "assets": [tag(1)]})
    push(programme, own.pki, feed)
    found = exceptions(programme.db)["allocated_twice"]
    assert found == {"count": 1, "items": [{"asset_tag": tag(1), "manifests": [
        f"fleet manifest {created['manifest_id']}", "manifest MF-late of station station-01"]}]}
    text = run_cli("fleet", "exceptions", "--database", postgres_dsn, check=True).stdout
    assert "allocated twice: 1" in text and f"{tag(1)} is in fleet manifest {created['manifest_id']}" in text


def _chain_position(fleet: FleetDatabase, station: str) -> tuple[int, str]:
    row = fleet.db.execute("SELECT audit_seq, audit_head FROM fleet_stations WHERE station_id = %s",
                           (station,)).fetchone()
    fleet.db.commit()
    assert row is not None
    return int(row[0]), str(row[1])


def _next_seq(fleet: FleetDatabase, station: str) -> int:
    row = fleet.db.execute("SELECT next_seq FROM fleet_stations WHERE station_id = %s", (station,)).fetchone()
    fleet.db.commit()
    assert row is not None
    return int(row[0])
