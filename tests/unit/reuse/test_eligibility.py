"""Eligibility: every rule of both shipped schemes, each refusal reason, and the route."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.reuse.eligibility import Decision, SchemeResult
from agent.reuse.errors import ReuseInputError
from agent.reuse.health import parse_smartctl
from agent.reuse.service import decide, station_trust
from agent.reuse.service import validate as sign_validation
from agent.reuse.store import ReuseStore
from certs.verify import load_trust_bundle
from tests.unit.reuse.kit import World, drive, healthy, make_job, ready_device


def _result(decision: Decision, scheme: str) -> SchemeResult:
    result = decision.result(scheme)
    assert result is not None
    return result


def _codes(decision: Decision, scheme: str) -> set[str]:
    return {reason.code for reason in _result(decision, scheme).reasons}


def _decide(store: ReuseStore, world: World, asset: str) -> Decision:
    return decide(store, asset, bundle=load_trust_bundle(world.bundle))


def test_purged_ssd_with_everything_signed_off_goes_to_schools(store: ReuseStore, world: World) -> None:
    ready_device(store, world, "PC-1", [drive("SSD-1"), drive("SSD-2")])
    decision = _decide(store, world, "PC-1")
    assert decision.route == "reuse:schools"
    assert decision.eligible_for("schools") and decision.eligible_for("gla-reuse")
    assert _codes(decision, "demo-schools") == {"media_refused"}
    inputs = decision.inputs
    assert inputs["certificate_check"] == "signature" and len(inputs["drives"]) == 2
    assert all(d["certificate"]["ok"] and d["certificate"]["check"] == "signature" for d in inputs["drives"])
    # recorded with its inputs, in the audit log
    assert (store.latest_decision("PC-1") or {})["route"] == "reuse:schools"
    assert store.audit.entries("PC-1")[-1].kind == "eligibility-decision"


def test_without_a_bundle_certificates_are_checked_against_the_journal(store: ReuseStore, world: World) -> None:
    ready_device(store, world, "PC-1", [drive("SSD-1")])
    decision = decide(store, "PC-1", bundle=station_trust(world.state))
    assert decision.route == "reuse:schools"
    assert decision.inputs["drives"][0]["certificate"]["check"] == "journal"


def test_hdd_with_fully_verified_clear_goes_to_gla_not_schools(store: ReuseStore, world: World) -> None:
    ready_device(store, world, "PC-2", [drive("HDD-1", "hdd")], level="clear", mode="full")
    decision = _decide(store, world, "PC-2")
    assert _codes(decision, "schools") == {"level_too_low"}
    assert decision.eligible_for("gla-reuse") and decision.route == "reuse:gla-reuse"


def test_gla_accepts_clear_only_with_full_verification(store: ReuseStore, world: World) -> None:
    ready_device(store, world, "PC-3", [drive("HDD-1", "hdd")], level="clear", mode="sampling")
    decision = _decide(store, world, "PC-3")
    assert _codes(decision, "gla-reuse") == {"clear_needs_verification"}
    assert decision.route == "hold"


def test_clear_on_flash_is_too_low_everywhere(store: ReuseStore, world: World) -> None:
    ready_device(store, world, "PC-4", [drive("SSD-1")], level="clear")
    decision = _decide(store, world, "PC-4")
    assert _codes(decision, "schools") == _codes(decision, "gla-reuse") == {"level_too_low"}
    assert decision.route == "hold"


def test_usb_and_virtual_media_are_refused_by_the_real_schemes(store: ReuseStore, world: World) -> None:
    ready_device(store, world, "PC-5", [drive("USB-1", "usb")])
    ready_device(store, world, "PC-6", [drive("loop:/x.img", "virtual")], level="clear")
    for asset in ("PC-5", "PC-6"):
        decision = _decide(store, world, asset)
        assert _codes(decision, "schools") == _codes(decision, "gla-reuse") == {"media_refused"}
    # the demo scheme takes virtual media, but only with a demonstration certificate
    assert _codes(_decide(store, world, "PC-6"), "demo-schools") == {"not_demo"}


def test_a_demo_certificate_never_satisfies_a_real_scheme(store: ReuseStore, world: World) -> None:
    make_job(store.registry, world.signer, drive("SSD-9"), asset="PC-7", demo=True)
    assert "demo_certificate" in _codes(_decide(store, world, "PC-7"), "schools")


def test_missing_attestation_and_validation_hold_the_device(store: ReuseStore, world: World) -> None:
    ready_device(store, world, "PC-8", [drive("SSD-1")], attest=("mdm-removed",), validate=False)
    decision = _decide(store, world, "PC-8")
    result = _result(decision, "schools")
    messages = [reason.message for reason in result.reasons]
    assert {reason.code for reason in result.reasons} == {"attestation_missing", "validation_missing"}
    assert any("'firmware-password-cleared'" in message for message in messages)
    assert any("'asset-labels-removed'" in message for message in messages)
    assert decision.route == "hold"


def test_schools_needs_an_accepted_validator_role_gla_takes_any(store: ReuseStore, world: World) -> None:
    ready_device(store, world, "PC-9", [drive("SSD-1")], role="team-leader")
    decision = _decide(store, world, "PC-9")
    assert _codes(decision, "schools") == {"validator_role"}
    assert decision.route == "reuse:gla-reuse"


def test_no_health_reading_holds_a_real_drive(store: ReuseStore, world: World) -> None:
    make_job(store.registry, world.signer, drive("SSD-1"), asset="PC-10")
    assert "health_missing" in _codes(_decide(store, world, "PC-10"), "schools")


def test_a_drive_failing_health_routes_the_device_to_destruction(store: ReuseStore, world: World) -> None:
    jobs = ready_device(store, world, "PC-11", [drive("HDD-1", "hdd"), drive("HDD-2", "hdd")])
    store.record_health(parse_smartctl(healthy("ata-hitachi-hds721050-failing.json"), "recorded"),
                        drive_serial=jobs[1].drive.serial, drive_model=jobs[1].drive.model)
    decision = _decide(store, world, "PC-11")
    assert _codes(decision, "schools") == _codes(decision, "gla-reuse") == {"health_failed"}
    assert decision.route == "destroy"
    assert "HDD-2" in decision.route_reasons[0] and "1975" in decision.route_reasons[0]


def test_health_within_gla_limits_only_routes_to_gla(store: ReuseStore, world: World) -> None:
    ready_device(store, world, "PC-12", [drive("HDD-1", "hdd")], smart="constructed-ata-hdd-few-reallocated.json")
    decision = _decide(store, world, "PC-12")
    assert _codes(decision, "schools") == {"health_failed"}
    assert decision.route == "reuse:gla-reuse"


def test_one_unsanitised_drive_makes_the_device_ineligible(store: ReuseStore, world: World) -> None:
    ready_device(store, world, "PC-13", [drive("SSD-1")])
    make_job(store.registry, world.signer, drive("SSD-2"), asset="PC-13", state="interrupted")
    decision = _decide(store, world, "PC-13")
    assert _codes(decision, "schools") >= {"not_sanitised"}
    assert decision.route == "hold"


def test_a_failed_drive_routed_to_destruction_destroys_the_device(store: ReuseStore, world: World) -> None:
    ready_device(store, world, "PC-14", [drive("SSD-1")])
    make_job(store.registry, world.signer, drive("SSD-2"), asset="PC-14", state="failed", route="destroy")
    decision = _decide(store, world, "PC-14")
    assert decision.route == "destroy" and "Input/output error" in decision.route_reasons[0]


def test_the_latest_job_per_drive_counts(store: ReuseStore, world: World) -> None:
    identity = drive("SSD-1")
    make_job(store.registry, world.signer, identity, asset="PC-15", level="clear")
    ready_device(store, world, "PC-15", [identity])  # re-run at Purge
    decision = _decide(store, world, "PC-15")
    assert decision.route == "reuse:schools" and len(decision.inputs["drives"]) == 1


def test_certificate_missing_or_tampered(store: ReuseStore, world: World) -> None:
    jobs = ready_device(store, world, "PC-16", [drive("SSD-1")])
    path = Path(jobs[0].certificate_path or "")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = _result(_decide(store, world, "PC-16"), "schools")
    assert [reason.code for reason in result.reasons] == ["certificate"]
    assert "invalid" in result.reasons[0].message
    path.unlink()
    result = _result(_decide(store, world, "PC-16"), "schools")
    assert "is missing" in result.reasons[0].message


def test_intake_links_jobs_through_the_host_record(store: ReuseStore, world: World) -> None:
    host = {"asset": "PC-17", "serial": "5CG1234", "make": "HP", "model": "EliteBook 840 G8"}
    make_job(store.registry, world.signer, drive("SSD-1"), host=host)
    record = store.host("PC-17")
    assert (record.make, record.model, record.serial, record.registered) == ("HP", "EliteBook 840 G8", "5CG1234", False)
    assert [job.drive.serial for job in store.held_drives("PC-17")] == ["SSD-1"]
    assert "PC-17" in store.assets()


def test_registered_drive_serials_link_drives_to_a_host(store: ReuseStore, world: World) -> None:
    make_job(store.registry, world.signer, drive("SSD-1"), asset="MEDIA-1")
    assert "MEDIA-1" in store.assets()
    store.register_host("PC-18", make="Dell", model="Latitude", serial="ABC", drive_serials=("SSD-1",))
    assert [job.drive.serial for job in store.held_drives("PC-18")] == ["SSD-1"]
    # the drive now belongs to PC-18 only: the tag its job carried is no longer a device of its own
    assert "MEDIA-1" not in store.assets() and store.held_drives("MEDIA-1") == []
    store.register_host("PC-19", drive_serials=("NEVER-SEEN",))
    with pytest.raises(ReuseInputError, match="registered but never seen"):
        store.held_drives("PC-19")


def test_unknown_asset_is_bad_input(store: ReuseStore) -> None:
    with pytest.raises(ReuseInputError, match="unknown asset 'NOPE'"):
        decide(store, "NOPE")


def test_the_daemon_intake_host_object_links_by_asset_tag(store: ReuseStore, world: World) -> None:
    # agent.daemon.intake stores {"asset_tag": ..., "serial": ..., "make": ..., "model": ...}
    host = {"asset_tag": "PC-20", "serial": "5CG9", "make": "Lenovo", "model": "T14", "intake_id": 3}
    make_job(store.registry, world.signer, drive("SSD-1"), host=host)
    assert store.host("PC-20").model == "T14" and "PC-20" in store.assets()
    assert [job.drive.serial for job in store.held_drives("PC-20")] == ["SSD-1"]


def test_hold_reasons_name_what_is_left_for_the_preferred_reachable_scheme(store: ReuseStore, world: World) -> None:
    ready_device(store, world, "PC-21", [drive("SSD-1")], validate=False)
    decision = _decide(store, world, "PC-21")
    assert decision.route == "hold"
    result = decision.result("schools")
    assert result is not None and decision.route_reasons == [f"schools: {result.reasons[0].message}"]
    assert "awaits a signed validation statement" in decision.route_reasons[0]


def test_verification_mode_and_optional_sign_offs_in_a_custom_scheme(store: ReuseStore, world: World) -> None:
    from agent.reuse.eligibility import evaluate
    from agent.reuse.schemes import parse_scheme

    strict = parse_scheme('schema = 1\ndestination = "Lab"\n[levels]\nssd = "purge"\n[verification]\n'
                          'modes = ["full"]\nclear_modes = []\n[health]\nrequired = false\n[validation]\n'
                          "required = false\n", "full-only", "full-only.toml")
    make_job(store.registry, world.signer, drive("SSD-1"), asset="PC-22", mode="sampling")
    make_job(store.registry, world.signer, drive("SSD-2"), asset="PC-23", mode="full")
    bundle = load_trust_bundle(world.bundle)
    sampled = evaluate(store, "PC-22", [strict], bundle)
    assert [reason.code for reason in sampled.schemes[0].reasons] == ["verification_mode"]
    # no health reading, no validation, no attestation needed by this scheme
    assert evaluate(store, "PC-23", [strict], bundle).route == "reuse:full-only"


def _spot_check(store: ReuseStore, identity_serial: str, passed: bool, mode: str = "full",
                model: str = "TEST DRIVE") -> None:
    """``wipe-agent verify-media``: a verification with no job, recorded against the drive."""
    store.registry.record_verification(None, drive(identity_serial, model=model),
                                       {"mode": mode, "passed": passed, "coverage": 1.0, "bytes_checked": 4096})


def test_a_failed_spot_check_after_the_wipe_routes_the_device_to_destruction(store: ReuseStore,
                                                                             world: World) -> None:
    ready_device(store, world, "PC-30", [drive("SSD-1"), drive("SSD-2")])
    assert _decide(store, world, "PC-30").route == "reuse:schools"
    _spot_check(store, "SSD-2", passed=False, mode="full")
    decision = _decide(store, world, "PC-30")
    assert decision.route == "destroy"
    assert not decision.eligible_for("schools") and not decision.eligible_for("gla-reuse")
    assert "spot_check_failed" in _codes(decision, "schools")
    at = decision.inputs["drives"][1]["later_verification"]["at"]
    assert "SSD-2" in decision.route_reasons[0] and "(full)" in decision.route_reasons[0]
    assert at in decision.route_reasons[0] and "spot check" in decision.route_reasons[0]
    # a later passing spot check is the drive's most recent verification again
    _spot_check(store, "SSD-2", passed=True, mode="sampling")
    assert _decide(store, world, "PC-30").route == "reuse:schools"


def test_a_spot_check_of_another_model_with_the_same_serial_does_not_count(store: ReuseStore, world: World) -> None:
    ready_device(store, world, "PC-31", [drive("SSD-1")])
    _spot_check(store, "SSD-1", passed=False, model="OTHER MODEL")
    assert _decide(store, world, "PC-31").route == "reuse:schools"


def test_a_failed_spot_check_before_a_new_wipe_does_not_count(store: ReuseStore, world: World) -> None:
    make_job(store.registry, world.signer, drive("SSD-1"), asset="PC-32")
    _spot_check(store, "SSD-1", passed=False)
    ready_device(store, world, "PC-32", [drive("SSD-1")])  # re-wiped, certified and signed off after the check
    assert _decide(store, world, "PC-32").route == "reuse:schools"


def test_drives_are_told_apart_by_model_and_serial(store: ReuseStore, world: World) -> None:
    # two drives of one host share a serial; the one wiped later must not hide the other's failure
    make_job(store.registry, world.signer, drive("S1", "hdd", model="MAKER A"), asset="PC-33", state="failed",
             route="destroy")
    ready_device(store, world, "PC-33", [drive("S1", model="MAKER B")])
    held = store.held_drives("PC-33")
    assert sorted(job.drive.model for job in held) == ["MAKER A", "MAKER B"]
    decision = _decide(store, world, "PC-33")
    assert decision.route == "destroy" and "MAKER A" in decision.route_reasons[0]


def test_health_is_filed_per_model_and_serial(store: ReuseStore, world: World) -> None:
    ready_device(store, world, "PC-34", [drive("S1", "hdd", model="MAKER A")])
    # a failing reading for another drive that happens to share the serial does not touch MAKER A's
    store.record_health(parse_smartctl(healthy("ata-hitachi-hds721050-failing.json"), "recorded"),
                        drive_serial="S1", drive_model="MAKER B")
    assert _decide(store, world, "PC-34").route == "reuse:schools"
    # and a reading filed under the other model is not MAKER A's reading
    make_job(store.registry, world.signer, drive("S2", "hdd", model="MAKER A"), asset="PC-35")
    store.record_health(parse_smartctl(healthy(), "recorded"), drive_serial="S2", drive_model="MAKER B")
    assert "health_missing" in _codes(_decide(store, world, "PC-35"), "schools")


@pytest.mark.parametrize("serial", ["unknown", ""])
def test_a_drive_without_a_serial_never_makes_a_device_eligible(store: ReuseStore, world: World,
                                                                serial: str) -> None:
    ready_device(store, world, "PC-36", [drive("SSD-1")])
    # the certificate layer refuses an empty serial; "unknown" gets a certificate
    job = make_job(store.registry, world.signer if serial else None, drive(serial), asset="PC-36")
    if serial:
        sign_validation(store, [job.id], decision="accept", by="Ms Validator", role="information-security-officer",
                        reason="", station=world.signer, officer=None, bundle=None, out_dir=world.state / "v")
    # a healthy reading filed (by an older version) under the no-serial drive's (model, serial) is not its own
    store.db.execute("INSERT INTO reuse_health(drive_serial, model, at, status, source, reading_json) "
                     "VALUES(?,?,?,?,?,?)", (serial, "TEST DRIVE", "2026-01-01", "ok", "recorded",
                                             json.dumps(parse_smartctl(healthy(), "recorded").to_json())))
    decision = _decide(store, world, "PC-36")
    assert decision.inputs["drives"][1]["health"]["status"] == "unavailable"
    assert decision.route == "hold"
    assert not decision.eligible_for("schools") and not decision.eligible_for("gla-reuse")
    assert "no_serial" in _codes(decision, "schools")
    assert any("drive has no serial number: it cannot be tied to its certificate" in line
               for line in decision.route_reasons)
    with pytest.raises(ReuseInputError):
        store.record_health(parse_smartctl(healthy(), "recorded"), drive_serial=serial or "unknown",
                            drive_model="TEST DRIVE")
