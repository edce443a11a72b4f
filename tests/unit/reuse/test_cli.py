"""The reuse commands end to end through click: output, --json, exit codes, one-line errors, no change on refusal."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agent.cli.main import cli  # the real root group: its usage errors keep the --json contract
from agent.reuse.store import ReuseStore
from tests.unit.reuse.kit import ATTESTATIONS, SMART_DATA, World, drive, make_job


def _run(world: World, *arguments: str) -> Result:
    return CliRunner().invoke(cli, ["--state-dir", str(world.state), *arguments])


def _one_line_error(result: Result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _audit_count(world: World) -> int:
    with sqlite3.connect(world.state / "registry.sqlite3") as db:
        return int(db.execute("SELECT count(*) FROM audit_log").fetchone()[0])


@pytest.fixture
def laptop(store: ReuseStore, world: World) -> list[str]:
    """PC-1 with two purged SSDs, certified (nothing signed off yet); returns the job ids."""
    return [make_job(store.registry, world.signer, drive(serial), asset="PC-1").id for serial in ("SSD-1", "SSD-2")]


def _smart_of(tmp_path: Path, serial: str | None, model: str | None = "TEST DRIVE") -> Path:
    """The healthy sample as smartctl would report it for the drive (model, serial); None leaves the field out."""
    data = json.loads((SMART_DATA / "constructed-ata-ssd-healthy.json").read_text())
    for key, value in (("serial_number", serial), ("model_name", model)):
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = tmp_path / f"smart-{serial}-{model}.json"
    path.write_text(json.dumps(data))
    return path


def test_from_intake_to_a_verified_manifest(world: World, laptop: list[str], tmp_path: Path) -> None:
    result = _run(world, "host", "add", "PC-1", "--make", "HP", "--model", "EliteBook", "--serial", "5CG1")
    assert result.exit_code == 0, result.output
    for serial in ("SSD-1", "SSD-2"):
        result = _run(world, "health", "/dev/sdx", "--from-json", str(_smart_of(tmp_path, serial)),
                      "--serial", serial, "--json")
        assert result.exit_code == 0 and json.loads(result.stdout)["status"] == "ok", result.output
    held = json.loads(_run(world, "eligibility", "PC-1", "--json").stdout)
    assert held["route"] == "hold"
    schools = next(result for result in held["schemes"] if result["scheme"] == "schools")
    codes = {reason["code"] for reason in schools["reasons"]}
    assert codes == {"attestation_missing", "validation_missing"}
    for item in ATTESTATIONS:
        assert _run(world, "attest", "PC-1", "--item", item, "--by", "Sgt Example").exit_code == 0
    result = _run(world, "validate", "--certificates", laptop[0], "--certificates", laptop[1], "--decision", "accept",
                  "--by", "Ms Validator", "--role", "information-security-officer", "--station-on-instruction",
                  "--trust", str(world.bundle))
    assert result.exit_code == 0, result.output
    assert "2 certificate(s) accepted by Ms Validator" in result.stdout and "signed by station-on-instruction" \
        in result.stdout
    result = _run(world, "eligibility", "PC-1", "--trust", str(world.bundle))
    assert result.exit_code == 0 and "route: reuse:schools" in result.stdout and "ELIGIBLE" in result.stdout
    out = tmp_path / "batch"
    result = _run(world, "manifest", "create", "--scheme", "schools", "--assets", "PC-1", "--out", str(out),
                  "--trust", str(world.bundle), "--json")
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    result = _run(world, "verify", created["pdf"], "--trust", str(world.bundle), "--certificates",
                  created["certificates"], "--json")
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.stdout)["results"][0]
    assert verdict["kind"] == "manifest" and verdict["complete"] and len(verdict["certificates"]) == 2
    text = _run(world, "verify", created["pdf"], "--trust", str(world.bundle), "--expect", "manifest").stdout
    # the certificates/ folder beside the manifest is checked by default
    assert text.startswith("VALID    ") and "[batch manifest]" in text and "2 of 2 listed present" in text
    text = _run(world, "verify", created["pdf"], "--trust", str(world.bundle), "--expect", "manifest",
                "--no-certificates").stdout
    assert text.startswith("VALID (manifest only: certificates were NOT checked \u2014 --no-certificates given)")
    # a certificate missing from the folder makes the manifest check fail
    next(Path(created["certificates"]).iterdir()).unlink()
    result = _run(world, "verify", created["pdf"], "--trust", str(world.bundle), "--certificates",
                  created["certificates"])
    assert result.exit_code == 1 and "PROBLEM" in result.stdout and "missing" in result.stdout
    # a second manifest claiming the same asset is refused, nothing written
    before = _audit_count(world)
    result = _run(world, "manifest", "create", "--scheme", "schools", "--assets", "PC-1", "--out",
                  str(tmp_path / "again"), "--trust", str(world.bundle))
    assert result.exit_code == 2 and "already in manifest" in _one_line_error(result)
    assert not (tmp_path / "again").exists()
    assert _audit_count(world) == before + 1  # only the (recorded) eligibility decision
    assert _run(world, "host", "list").stdout.startswith("PC-1")
    result = _run(world, "audit", "verify", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["valid"]


def test_refusals_are_one_line_exit_2_and_change_nothing(world: World, laptop: list[str], tmp_path: Path) -> None:
    before = _audit_count(world)
    cases = [
        (["attest", "PC-1", "--item", "bios-ok", "--by", "X"], "unknown attestation item 'bios-ok'"),
        (["attest", "NOPE", "--item", "mdm-removed", "--by", "X"], "unknown asset 'NOPE'"),
        (["attest", "PC-1", "--item", "mdm-removed"], "--by is required"),
        (["validate", "ffffffff", "--decision", "accept", "--by", "X", "--role", "Y", "--station-on-instruction"],
         "no job 'ffffffff'"),
        (["validate", laptop[0], "--decision", "accept", "--by", "X", "--station-on-instruction"],
         "--role is required"),
        (["validate", laptop[0], "--by", "X", "--role", "Y", "--station-on-instruction"], "--decision accept|reject"),
        (["validate", laptop[0], "--decision", "accept", "--by", "X", "--role", "Y"], "or give --station-on"),
        (["validate", "--decision", "accept", "--by", "X", "--role", "Y", "--station-on-instruction"],
         "give --certificates DIR"),
        (["eligibility", "NOPE"], "unknown asset 'NOPE'"),
        (["destroy-record", "PC-1", "--method", "burn", "--witness", "W"], "--method must be one of"),
        (["destroy-record", "PC-1", "--method", "shred"], "--witness is required"),
        (["manifest", "create", "--scheme", "schools", "--out", str(tmp_path / "m")], "give --assets TAG"),
        (["manifest", "create", "--scheme", "nope", "--assets", "PC-1", "--out", str(tmp_path / "m")],
         "no scheme named 'nope'"),
        (["manifest", "create", "--scheme", "schools", "--assets", "PC-1", "--out", str(tmp_path / "m"),
          "--trust", str(world.bundle)], "not every asset is eligible for schools"),
        (["health", "/dev/sdx", "--from-json", str(tmp_path / "none.json")], "--from-json"),
        (["schemes", "show", "nope"], "no scheme named 'nope'"),
    ]
    for arguments, message in cases:
        result = _run(world, *arguments)
        assert result.exit_code == 2, (arguments, result.output)
        assert message in _one_line_error(result), arguments
        result = _run(world, *arguments, "--json")
        assert result.exit_code == 2 and message in json.loads(result.stdout)["error"]["message"]
    refusal = json.loads(_run(world, "manifest", "create", "--scheme", "schools", "--assets", "PC-1", "--out",
                              str(tmp_path / "m"), "--trust", str(world.bundle), "--json").stdout)["error"]
    assert refusal["code"] == "refused"
    assert any("awaits a signed validation statement" in reason for reason in refusal["reasons"])
    assert not (tmp_path / "m").exists()
    # refused commands journal nothing; manifest refusals journal only the decisions they made
    with sqlite3.connect(world.state / "registry.sqlite3") as db:
        kinds = {row[0] for row in db.execute("SELECT kind FROM audit_log WHERE seq > ?", (before,))}
        decisions = int(db.execute("SELECT count(*) FROM reuse_attestations").fetchone()[0])
    assert kinds <= {"eligibility-decision"} and decisions == 0


def test_destroy_record_and_audit_tamper_detection(world: World, store: ReuseStore) -> None:
    make_job(store.registry, world.signer, drive("HDD-1", "hdd"), asset="PC-9", state="failed", route="destroy")
    assert json.loads(_run(world, "eligibility", "PC-9", "--json").stdout)["route"] == "destroy"
    result = _run(world, "destroy-record", "PC-9", "--method", "shred", "--witness", "PC Witness", "--reference",
                  "WEEE-1", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["report_path"]
    result = _run(world, "verify", report, "--trust", str(world.bundle), "--expect", "destruction")
    assert result.exit_code == 0 and "[destruction report]" in result.stdout
    assert "destroyed" in _run(world, "eligibility", "PC-9").stdout
    assert _run(world, "audit", "verify").exit_code == 0
    with sqlite3.connect(world.state / "registry.sqlite3") as db:
        db.execute("UPDATE audit_log SET subject='PC-8' WHERE kind='destruction'")
    result = _run(world, "audit", "verify")
    assert result.exit_code == 1 and "AUDIT LOG BROKEN" in result.stdout and "modified" in result.stdout


def test_schemes_commands(world: World, tmp_path: Path) -> None:
    listing = _run(world, "schemes", "list").stdout
    assert listing.index("schools") < listing.index("gla-reuse")
    assert "hdd=clear" in _run(world, "schemes", "show", "gla-reuse").stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('schema = 1\ndestination = "x"\n[levels]\nssd = "clear"\n')
    result = _run(world, "schemes", "check", str(bad))
    assert result.exit_code == 2 and f"{bad}:4: [levels].ssd: flash media need Purge" in _one_line_error(result)
    good = tmp_path / "good.toml"
    good.write_text('schema = 1\ndestination = "x"\n[levels]\nssd = "purge"\n')
    assert _run(world, "schemes", "check", str(good), "--json").exit_code == 0


def test_a_json_copy_edited_beside_the_manifest_is_flagged(world: World, store: ReuseStore, tmp_path: Path) -> None:
    from tests.unit.reuse.kit import ready_device

    ready_device(store, world, "PC-1", [drive("SSD-1")])
    result = _run(world, "manifest", "create", "--scheme", "schools", "--assets", "PC-1", "--out",
                  str(tmp_path / "m"), "--trust", str(world.bundle), "--json")
    created = json.loads(result.stdout)
    copy = Path(created["json"])
    copy.write_bytes(copy.read_bytes().replace(b"SSD-1", b"SSD-9"))
    result = _run(world, "verify", created["pdf"], "--trust", str(world.bundle), "--expect", "manifest")
    assert result.exit_code == 1 and "differs from the manifest signed" in result.stdout


def test_health_refuses_a_reading_of_another_drive_and_records_nothing(world: World, laptop: list[str],
                                                                       tmp_path: Path) -> None:
    before = _audit_count(world)
    cases = [
        # the reading names serial OTHER-9 but would be filed under SSD-1
        (["--from-json", str(_smart_of(tmp_path, "OTHER-9")), "--serial", "SSD-1"], "S/N OTHER-9, not S/N SSD-1"),
        # right serial, but the registry's drive SSD-1 is a TEST DRIVE, the reading a different model
        (["--from-json", str(_smart_of(tmp_path, "SSD-1", "ACME 1TB")), "--serial", "SSD-1"], "ACME 1TB"),
        (["--from-json", str(_smart_of(tmp_path, None, "ACME 1TB")), "--serial", "SSD-1"], "ACME 1TB"),
        (["--from-json", str(_smart_of(tmp_path, "SSD-1")), "--serial", "SSD-1", "--model", "ACME 1TB"],
         "TEST DRIVE"),
    ]
    for arguments, message in cases:
        for extra in ((), ("--json",)):
            result = _run(world, "health", "/dev/sdx", *arguments, *extra)
            assert result.exit_code == 2, (arguments, result.output)
            text = json.loads(result.stdout)["error"]["message"] if extra else _one_line_error(result)
            assert message in text and "nothing recorded" in text, (arguments, text)
    assert _audit_count(world) == before
    with sqlite3.connect(world.state / "registry.sqlite3") as db:
        assert int(db.execute("SELECT count(*) FROM reuse_health").fetchone()[0]) == 0
    # the matching reading (udev's underscores are the same model) is filed under the registry's drive
    result = _run(world, "health", "/dev/sdx", "--from-json", str(_smart_of(tmp_path, "SSD-1", "TEST_DRIVE")),
                  "--serial", "SSD-1", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["drive_model"] == "TEST DRIVE"


def test_manifest_for_a_real_scheme_needs_a_trust_bundle(world: World, store: ReuseStore, tmp_path: Path) -> None:
    from tests.unit.reuse.kit import ready_device

    ready_device(store, world, "PC-5", [drive("SSD-5")])
    result = _run(world, "eligibility", "PC-5")
    assert result.exit_code == 0 and "ELIGIBLE" in result.stdout
    assert "record hashes against the registry journal only" in result.stdout
    before = _audit_count(world)
    out = tmp_path / "batch"
    result = _run(world, "manifest", "create", "--scheme", "schools", "--assets", "PC-5", "--out", str(out))
    assert result.exit_code == 2 and "needs a trust bundle" in _one_line_error(result)
    assert not out.exists() and _audit_count(world) == before
    # STATE_DIR/trust-bundle.pem counts as the station's bundle
    (world.state / "trust-bundle.pem").write_bytes(world.bundle.read_bytes())
    result = _run(world, "eligibility", "PC-5")
    assert "signatures and revocation against the trust bundle" in result.stdout
    result = _run(world, "manifest", "create", "--scheme", "schools", "--assets", "PC-5", "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["assets"] == ["PC-5"]


@pytest.mark.parametrize(("arguments", "named"), [
    (("PC-\u202e1",), "ASSET: contains"),
    (("PC-1", "--make", "\U0001f4bb HP"), "--make: contains U+1F4BB"),
    (("PC-1", "--serial", "5CG\u200b1"), "--serial: contains"),
    (("PC-1", "--model", "E" * 201), "--model: longer than 200"),
])
def test_host_add_refuses_what_a_certificate_cannot_carry(world: World, arguments: tuple[str, ...],
                                                          named: str) -> None:
    """M15: a host's values print on its drives' certificates: refused at input, exit 2, nothing recorded."""
    result = _run(world, "host", "add", *arguments)
    assert result.exit_code == 2 and named in _one_line_error(result)
    listed = _run(world, "host", "list", "--json")
    assert "PC-" not in listed.stdout
