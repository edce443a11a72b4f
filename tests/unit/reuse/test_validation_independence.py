"""Adversarial: validation that is not independent, or whose registry rows lie about the signed statements.

* an officer's signed statement is never superseded by the station's acceptance "on instruction" (H2);
* nobody validates a job they performed, names compared by :func:`certs.validation.person_key` (H3);
* eligibility takes each statement's decision from the signed PDF, and names a row, file or chain entry
  that disagrees (M16); loose ends of the signer profile and input lengths (L4, L7).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from agent.reuse import service
from agent.reuse.errors import ReuseInputError, ReuseRefused
from agent.reuse.service import create_manifest, decide
from agent.reuse.service import validate as sign_validation
from agent.reuse.store import ReuseStore
from certs import pki
from certs.pki import StationSigner
from certs.verify import load_trust_bundle
from tests.unit.reuse.kit import World, drive, ready_device

ROLE = "information-security-officer"


def _officer(world: World, tmp_path: Path, name: str = "Ms Validator") -> StationSigner:
    issued = pki.issue_person(world.ca, name, "validator", tmp_path / "people")
    return pki.load_person_signer(issued.key_path, issued.certificate_path, world.signer)


def _sign(store: ReuseStore, world: World, job_id: str, *, decision: str = "accept", by: str = "Ms Validator",
          reason: str = "", officer: StationSigner | None = None) -> dict:  # type: ignore[type-arg]
    return sign_validation(store, [job_id], decision=decision, by=by, role=ROLE, reason=reason,
                           station=world.signer, officer=officer, bundle=load_trust_bundle(world.bundle),
                           out_dir=world.state / "validations")


def _codes(store: ReuseStore, world: World, asset: str, bundle: bool = True) -> list[str]:
    result = decide(store, asset, bundle=load_trust_bundle(world.bundle) if bundle else None).result("schools")
    assert result is not None
    return [reason.code for reason in result.reasons]


def _messages(store: ReuseStore, world: World, asset: str) -> str:
    result = decide(store, asset, bundle=load_trust_bundle(world.bundle)).result("schools")
    assert result is not None
    return " | ".join(reason.message for reason in result.reasons)


def _statements(world: World) -> list[Path]:
    folder = world.state / "validations"
    return sorted(folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
def rejected(store: ReuseStore, world: World, tmp_path: Path) -> tuple[str, StationSigner, dict]:  # type: ignore[type-arg]
    """PC-9's drive, rejected by Ms Validator with her own validator certificate."""
    (job,) = ready_device(store, world, "PC-9", [drive("SSD-9")], validate=False)
    officer = _officer(world, tmp_path)
    entry = _sign(store, world, job.id, decision="reject", reason="sample too small", officer=officer)
    assert _codes(store, world, "PC-9") == ["validation_rejected"]
    return job.id, officer, entry


# H2 ---------------------------------------------------------------------------------------------
def test_the_station_cannot_accept_in_the_name_of_an_officer_who_holds_a_certificate(
        store: ReuseStore, world: World, rejected: tuple[str, StationSigner, dict]) -> None:  # type: ignore[type-arg]
    job_id, _officer_signer, _entry = rejected
    before = _statements(world)
    with pytest.raises(ReuseRefused, match="ms  VALIDATOR holds a validator certificate"):
        _sign(store, world, job_id, by="ms  VALIDATOR")  # another spelling of the same person
    assert _statements(world) == before and _codes(store, world, "PC-9") == ["validation_rejected"]


def test_the_station_cannot_accept_over_an_officers_rejection_in_anyone_elses_name(
        store: ReuseStore, world: World, rejected: tuple[str, StationSigner, dict]) -> None:  # type: ignore[type-arg]
    job_id, _officer_signer, entry = rejected
    with pytest.raises(ReuseRefused) as refused:
        _sign(store, world, job_id, by="Mr Deputy")
    assert any(f"Ms Validator signed statement {entry['statement_id']} (reject) with a validator certificate"
               in reason for reason in refused.value.reasons)
    # the station may still record a further *rejection* on instruction
    _sign(store, world, job_id, decision="reject", by="Mr Deputy", reason="labels still on")
    assert _codes(store, world, "PC-9") == ["validation_rejected"]


def test_a_station_acceptance_recorded_anyway_does_not_lift_the_officers_rejection(
        store: ReuseStore, world: World, rejected: tuple[str, StationSigner, dict],
        monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[type-arg]
    job_id, officer, entry = rejected
    # as if signed by a build without the refusal: eligibility must not count it either
    monkeypatch.setattr(service, "_independence_refusals", lambda *args: [])
    monkeypatch.setattr(ReuseStore, "officers", lambda self: set())
    _sign(store, world, job_id, by="Ms Validator")
    assert _codes(store, world, "PC-9") == ["validation_rejected"]
    assert entry["statement_id"] in _messages(store, world, "PC-9")
    # the officer herself, with her certificate, can lift it; a later station rejection still stops it
    _sign(store, world, job_id, officer=officer)
    assert _codes(store, world, "PC-9") == []
    _sign(store, world, job_id, decision="reject", by="Mr Deputy", reason="dent in the chassis")
    assert _codes(store, world, "PC-9") == ["validation_rejected"]


def test_the_manifest_names_the_deciding_officer_statement(store: ReuseStore, world: World, tmp_path: Path,
                                                           rejected: tuple[str, StationSigner, dict],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[type-arg]
    job_id, officer, _entry = rejected
    accepted = _sign(store, world, job_id, officer=officer)
    monkeypatch.setattr(service, "_independence_refusals", lambda *args: [])
    monkeypatch.setattr(ReuseStore, "officers", lambda self: set())
    _sign(store, world, job_id, by="Mr Deputy")  # a later station acceptance: not the deciding statement
    created = create_manifest(store, "schools", assets=["PC-9"], all_eligible=False, out_dir=tmp_path / "m",
                              signer=world.signer, bundle=load_trust_bundle(world.bundle))
    (device,) = json.loads(Path(created["json"]).read_text())["devices"]
    assert device["validation"]["statement_id"] == accepted["statement_id"]
    assert device["validation"]["signer_kind"] == "officer"


# H3 ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("by", ["PC Test", "pc  test", "\uff30\uff23 Test"])
def test_the_operator_cannot_validate_his_own_job(store: ReuseStore, world: World, by: str) -> None:
    (job,) = ready_device(store, world, "PC-8", [drive("SSD-8")], validate=False)
    assert job.operator == "PC Test"
    with pytest.raises(ReuseRefused) as refused:
        _sign(store, world, job.id, by=by)
    assert any(f"job {job.id}: {by} performed this job and cannot validate it" in r for r in refused.value.reasons)
    assert _statements(world) == [] and store.validations(job.id) == []


def test_the_operator_cannot_validate_his_own_job_with_a_validator_certificate(store: ReuseStore, world: World,
                                                                               tmp_path: Path) -> None:
    (job,) = ready_device(store, world, "PC-8", [drive("SSD-8")], validate=False)
    with pytest.raises(ReuseRefused, match="PC Test performed this job"):
        _sign(store, world, job.id, by="PC Test", officer=_officer(world, tmp_path, "PC Test"))


def test_a_self_validation_recorded_anyway_is_not_counted(store: ReuseStore, world: World,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (job,) = ready_device(store, world, "PC-8", [drive("SSD-8")], validate=False)
    monkeypatch.setattr(service, "_independence_refusals", lambda *args: [])
    _sign(store, world, job.id, by="PC Test")
    assert _codes(store, world, "PC-8") == ["validator_not_independent"]
    assert f"validated by PC Test, who performed job {job.id}" in _messages(store, world, "PC-8")


# M16 --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bundle", [True, False], ids=["signature", "journal"])
def test_a_flipped_registry_row_is_named_not_believed(store: ReuseStore, world: World, bundle: bool,
                                                      rejected: tuple[str, StationSigner, dict]) -> None:  # type: ignore[type-arg]
    _job_id, _officer_signer, entry = rejected
    store.db.execute("UPDATE reuse_validation_statements SET decision='accept' WHERE id=?", (entry["statement_id"],))
    assert _codes(store, world, "PC-9", bundle) == ["validation_tampered"]
    assert "the registry row's decision differ from the signed statement's" in _messages(store, world, "PC-9")


def test_a_row_naming_another_person_or_signer_is_named(store: ReuseStore, world: World,
                                                        rejected: tuple[str, StationSigner, dict]) -> None:  # type: ignore[type-arg]
    _job_id, _officer_signer, entry = rejected
    store.db.execute("UPDATE reuse_validation_statements SET by_name='Mr Other', signer_kind='station-on-instruction'"
                     " WHERE id=?", (entry["statement_id"],))
    assert "the registry row's by, signer_kind differ" in _messages(store, world, "PC-9")


def test_a_statement_file_swapped_for_another_genuine_statement_is_named(
        store: ReuseStore, world: World, rejected: tuple[str, StationSigner, dict]) -> None:  # type: ignore[type-arg]
    _job_id, _officer_signer, entry = rejected
    (other,) = ready_device(store, world, "PC-7", [drive("SSD-7")], validate=False)
    accepting = _sign(store, world, other.id, by="Mr Deputy")
    shutil.copyfile(accepting["pdf"], entry["pdf"])
    store.db.execute("UPDATE reuse_validation_statements SET decision='accept', reason='' WHERE id=?",
                     (entry["statement_id"],))
    assert _codes(store, world, "PC-9") == ["validation_tampered"]
    assert "the PDF holds another statement than the one recorded" in _messages(store, world, "PC-9")
    for bundle in (True, False):
        assert _codes(store, world, "PC-9", bundle) == ["validation_tampered"]


def test_a_deleted_rejection_row_is_found_in_the_audit_chain(store: ReuseStore, world: World,
                                                             rejected: tuple[str, StationSigner, dict]) -> None:  # type: ignore[type-arg]
    _job_id, _officer_signer, entry = rejected
    store.db.execute("DELETE FROM reuse_statement_jobs WHERE statement_id=?", (entry["statement_id"],))
    store.db.execute("DELETE FROM reuse_validation_statements WHERE id=?", (entry["statement_id"],))
    assert _codes(store, world, "PC-9") == ["validation_tampered"]
    assert f"{entry['statement_id']} is in the audit chain but its registry row is gone" \
        in _messages(store, world, "PC-9")


def test_a_missing_or_damaged_statement_file_blocks_by_name(store: ReuseStore, world: World,
                                                            rejected: tuple[str, StationSigner, dict]) -> None:  # type: ignore[type-arg]
    _job_id, _officer_signer, entry = rejected
    data = bytearray(Path(entry["pdf"]).read_bytes())
    data[len(data) // 2] ^= 0x01
    Path(entry["pdf"]).write_bytes(bytes(data))
    assert _codes(store, world, "PC-9") == ["validation_tampered"]
    assert f"validation statement {entry['statement_id']} cannot be checked" in _messages(store, world, "PC-9")
    Path(entry["pdf"]).unlink()
    assert _codes(store, world, "PC-9", False) == ["validation_tampered"]
    os.mkfifo(entry["pdf"])  # nothing in its place may hang the check
    assert _codes(store, world, "PC-9") == ["validation_tampered"]
    assert "is a FIFO" in _messages(store, world, "PC-9") or "not a regular file" in _messages(store, world, "PC-9")


def test_an_edited_chain_entry_is_named(store: ReuseStore, world: World,
                                        rejected: tuple[str, StationSigner, dict]) -> None:  # type: ignore[type-arg]
    _job_id, _officer_signer, entry = rejected
    store.db.execute("UPDATE audit_log SET data_json=json_set(data_json, '$.statement_sha256', ?) "
                     "WHERE kind='validation-statement' AND subject=?", ("0" * 64, entry["statement_id"]))
    assert "the audit chain recorded another statement under its id" in _messages(store, world, "PC-9")


# L4, L7 -----------------------------------------------------------------------------------------
def test_a_validator_named_like_the_station_cannot_sign(store: ReuseStore, world: World, tmp_path: Path) -> None:
    (job,) = ready_device(store, world, "PC-5", [drive("SSD-5")], validate=False)
    officer = _officer(world, tmp_path, world.signer.station_id)
    with pytest.raises(ReuseInputError, match="is the station's name"):
        _sign(store, world, job.id, by=world.signer.station_id, officer=officer)
    with pytest.raises(ReuseInputError, match="is the station's name"):
        _sign(store, world, job.id, by=world.signer.station_id.upper())
    assert _statements(world) == []


@pytest.mark.parametrize(("field", "limit"), [("by", 64), ("role", 64), ("reason", 500)])
def test_overlong_statement_fields_are_refused_before_signing(store: ReuseStore, world: World, field: str,
                                                              limit: int) -> None:
    (job,) = ready_device(store, world, "PC-4", [drive("SSD-4")], validate=False)
    values = {"by": "Ms Validator", "role": ROLE, "reason": "ok", "decision": "reject"}
    values[field] = "x" * (limit + 1)
    with pytest.raises(ReuseInputError, match=f"{field}: is {limit + 1} characters long; at most {limit}"):
        sign_validation(store, [job.id], station=world.signer, officer=None, bundle=load_trust_bundle(world.bundle),
                        out_dir=world.state / "validations", **values)
    assert _statements(world) == []


def test_fields_at_their_limit_are_signed_and_read_back(store: ReuseStore, world: World) -> None:
    (job,) = ready_device(store, world, "PC-4", [drive("SSD-4")], validate=False)
    reason = " ".join(["sample"] * 71)[:500]
    entry = sign_validation(store, [job.id], decision="reject", by="B" * 64, role="R" * 64, reason=reason,
                            station=world.signer, officer=None, bundle=load_trust_bundle(world.bundle),
                            out_dir=world.state / "validations")
    assert entry["reason"] == reason and _codes(store, world, "PC-4") == ["validation_rejected"]


def test_the_cli_refuses_self_validation_by_name_and_signs_nothing(store: ReuseStore, world: World) -> None:
    from tests.unit.reuse.test_cli import _run

    (job,) = ready_device(store, world, "PC-3", [drive("SSD-3")], validate=False)
    result = _run(world, "validate", job.id, "--decision", "accept", "--by", "PC Test", "--role", ROLE,
                  "--station-on-instruction", "--trust", str(world.bundle))
    assert result.exit_code == 2, result.output  # a refusal: one line, nothing touched
    assert f"job {job.id}: PC Test performed this job and cannot validate it" in result.stderr
    assert "Traceback" not in result.stderr and _statements(world) == []
    long_by = _run(world, "validate", job.id, "--decision", "accept", "--by", "x" * 5000, "--role", ROLE,
                   "--station-on-instruction", "--trust", str(world.bundle))
    assert long_by.exit_code == 2 and "by: is 5000 characters long; at most 64" in long_by.stderr
    assert _statements(world) == []


def test_one_statement_over_many_drives_is_checked_once_per_content(store: ReuseStore, world: World,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.reuse import eligibility

    jobs = ready_device(store, world, "PC-2", [drive(f"SSD-2{n}") for n in range(3)], validate=False)
    entry = sign_validation(store, [job.id for job in jobs], decision="accept", by="Ms Validator", role=ROLE,
                            reason="", station=world.signer, officer=None, bundle=load_trust_bundle(world.bundle),
                            out_dir=world.state / "validations")
    checked: list[Path] = []
    real = eligibility._check_statement
    monkeypatch.setattr(eligibility, "_check_statement",
                        lambda path, bundle: checked.append(path) or real(path, bundle))
    assert _codes(store, world, "PC-2") == [] and checked == [Path(entry["pdf"])]
    data = bytearray(Path(entry["pdf"]).read_bytes())  # new content: checked again, and refused
    data[len(data) // 2] ^= 0x01
    Path(entry["pdf"]).write_bytes(bytes(data))
    assert _codes(store, world, "PC-2") == ["validation_tampered"] * 3 and len(checked) == 2
