"""Signed validation end to end: officer and station signers, refusals by name, manifests that need a statement."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli.certificate_commands import pki as pki_group
from agent.reuse.errors import ReuseInputError, ReuseRefused
from agent.reuse.service import create_manifest, decide
from agent.reuse.service import validate as sign_validation
from agent.reuse.store import ReuseStore
from certs.verify import DocumentKind, load_trust_bundle, verify_with_bundle
from tests.unit.reuse.kit import World, drive, make_job, ready_device
from tests.unit.reuse.test_cli import _run

ROLE = "information-security-officer"


def _station_validate(store: ReuseStore, world: World, items: list[str], decision: str = "accept",
                      reason: str = "") -> dict:  # type: ignore[type-arg]
    return sign_validation(store, items, decision=decision, by="Ms Validator", role=ROLE, reason=reason,
                           station=world.signer, officer=None, bundle=load_trust_bundle(world.bundle),
                           out_dir=world.state / "validations")


def _audit(world: World, kind: str) -> list[dict]:  # type: ignore[type-arg]
    with sqlite3.connect(world.state / "registry.sqlite3") as db:
        columns = [row[1] for row in db.execute("PRAGMA table_info(audit_log)")]
        rows = db.execute("SELECT * FROM audit_log").fetchall()
    return [dict(zip(columns, row, strict=True)) for row in rows if kind in row]


def test_an_officer_signs_with_their_own_certificate_through_the_cli(store: ReuseStore, world: World,
                                                                     tmp_path: Path) -> None:
    jobs = [make_job(store.registry, world.signer, drive(serial), asset="PC-1") for serial in ("SSD-1", "SSD-2")]
    people = tmp_path / "people"
    issued = CliRunner().invoke(pki_group, ["issue-person", "Ms Validator", "--role", "validator", "--ca",
                                            str(world.ca), "--out", str(people), "--json"])
    assert issued.exit_code == 0, issued.output
    person = json.loads(issued.stdout)
    folder = tmp_path / "to-validate"
    folder.mkdir()
    for job in jobs:
        source = Path(job.certificate_path or "")
        (folder / source.name).write_bytes(source.read_bytes())
    result = _run(world, "validate", "--certificates", str(folder), "--decision", "accept", "--by", "Ms Validator",
                  "--role", ROLE, "--key", person["key"], "--cert", person["certificate"], "--trust", str(world.bundle),
                  "--json")
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)
    assert entry["signer_kind"] == "officer" and {j["job_id"] for j in entry["jobs"]} == {j.id for j in jobs}
    report = verify_with_bundle(Path(entry["pdf"]), load_trust_bundle(world.bundle), expect=DocumentKind.VALIDATION)
    assert report.valid, report.reason
    assert report.signer_subject is not None and "CN=Ms Validator" in report.signer_subject
    assert report.document is not None and report.document["signer_kind"] == "officer"
    # one registry row per statement, linked to each job, and its audit entry
    for job in jobs:
        (validation,) = store.validations(job.id)
        assert validation["statement_id"] == entry["statement_id"] and validation["decision"] == "accept"
    assert len(_audit(world, "validation-statement")) == 1
    # the partners' verify command checks the statement like any document
    verified = _run(world, "verify", entry["pdf"], "--trust", str(world.bundle), "--expect", "validation", "--json")
    assert verified.exit_code == 0, verified.output
    # someone else's --by with this certificate is refused before anything is signed
    other = _run(world, "validate", jobs[0].id, "--decision", "accept", "--by", "Mr Other", "--role", ROLE,
                 "--key", person["key"], "--cert", person["certificate"])
    assert other.exit_code == 2 and "is not the person the --cert names" in other.stderr


def test_a_forged_certificate_is_refused_by_name_and_nothing_is_signed(store: ReuseStore, world: World,
                                                                       tmp_path: Path) -> None:
    good = make_job(store.registry, world.signer, drive("SSD-1"), asset="PC-2")
    forged = tmp_path / "forged.pdf"
    data = bytearray(Path(good.certificate_path or "").read_bytes())
    data[len(data) // 2] ^= 0x01
    forged.write_bytes(bytes(data))
    with pytest.raises(ReuseRefused) as refused:
        _station_validate(store, world, [good.id, str(forged)])
    assert any(reason.startswith("forged.pdf: refused (") for reason in refused.value.reasons)
    assert not (world.state / "validations").exists() or not any((world.state / "validations").iterdir())
    assert store.validations(good.id) == [] and _audit(world, "validation-statement") == []


def test_a_certificate_this_registry_did_not_issue_is_refused(store: ReuseStore, world: World,
                                                              tmp_path: Path) -> None:
    job = make_job(store.registry, world.signer, drive("SSD-1"), asset="PC-3")
    store.db.execute("UPDATE job_events SET data_json=json_set(data_json, '$.certificate_id', 'someone-else') "
                     "WHERE job_id=? AND event='certificate-issued'", (job.id,))
    with pytest.raises(ReuseRefused) as refused:
        _station_validate(store, world, [str(job.certificate_path)])
    assert any("is not one this station's registry issued" in reason for reason in refused.value.reasons)


def test_rejection_needs_a_reason_and_blocks_the_manifest_by_name(store: ReuseStore, world: World,
                                                                  tmp_path: Path) -> None:
    (job,) = ready_device(store, world, "PC-4", [drive("SSD-1")], validate=False)
    with pytest.raises(ReuseInputError, match="a rejection needs --reason"):
        _station_validate(store, world, [job.id], decision="reject")
    rejected = _station_validate(store, world, [job.id], decision="reject", reason="verification sample too small")
    bundle = load_trust_bundle(world.bundle)
    result = decide(store, "PC-4", bundle=bundle).result("schools")
    assert result is not None and [reason.code for reason in result.reasons] == ["validation_rejected"]
    assert rejected["statement_id"] in result.reasons[0].message
    assert "verification sample too small" in result.reasons[0].message
    with pytest.raises(ReuseRefused) as refused:
        create_manifest(store, "schools", assets=["PC-4"], all_eligible=False, out_dir=tmp_path / "m",
                        signer=world.signer, bundle=bundle)
    assert any("was rejected by Ms Validator" in reason for reason in refused.value.reasons)
    # a later accepting statement over the same certificate supersedes the rejection
    accepted = _station_validate(store, world, [job.id])
    created = create_manifest(store, "schools", assets=["PC-4"], all_eligible=False, out_dir=tmp_path / "m",
                              signer=world.signer, bundle=bundle)
    manifest = json.loads(Path(created["json"]).read_text())
    (device,) = manifest["devices"]
    assert device["validation"] == {"decision": "accept", "by": "Ms Validator", "role": ROLE,
                                    "at": accepted["at"], "statement_id": accepted["statement_id"],
                                    "signer_kind": "station-on-instruction"}


def test_unsigned_legacy_validations_do_not_satisfy_a_scheme(store: ReuseStore, world: World) -> None:
    (job,) = ready_device(store, world, "PC-5", [drive("SSD-1")], validate=False)
    store.db.execute("INSERT INTO reuse_validations(job_id, by_name, role, at) VALUES(?,?,?,?)",
                     (job.id, "Ms Validator", ROLE, "2026-01-01T00:00:00+00:00"))
    result = decide(store, "PC-5", bundle=load_trust_bundle(world.bundle)).result("schools")
    assert result is not None and [reason.code for reason in result.reasons] == ["validation_missing"]
    assert "unsigned validation was recorded before signed statements" in result.reasons[0].message


def test_a_statement_over_another_record_hash_does_not_cover_the_certificate(store: ReuseStore, world: World) -> None:
    (job,) = ready_device(store, world, "PC-6", [drive("SSD-1")], validate=False)
    accepted = _station_validate(store, world, [job.id])
    assert decide(store, "PC-6", bundle=load_trust_bundle(world.bundle)).eligible_for("schools")
    # the registry row now pins another record than the signed statement does: the row is not believed,
    # and the disagreement is named (the statement's bytes decide, never the row)
    store.db.execute("UPDATE reuse_statement_jobs SET record_sha256=? WHERE statement_id=?",
                     ("0" * 64, accepted["statement_id"]))
    result = decide(store, "PC-6", bundle=load_trust_bundle(world.bundle)).result("schools")
    assert result is not None and [reason.code for reason in result.reasons] == ["validation_tampered"]
    assert f"the signed statement does not cover certificate {accepted['jobs'][0]['certificate_id']}" \
        in result.reasons[0].message
