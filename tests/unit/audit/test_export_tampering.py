"""Exports and signed checkpoints: every kind of tampering is found and named."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.store.registry import Registry
from certs import pki
from certs.audit_chain import (
    GENESIS,
    AuditFileError,
    checkpoint_payload,
    entry_hash,
    parse_export,
    verify_export,
)
from certs.pki import StationSigner
from certs.verify import load_trust_bundle
from tests.unit.audit.conftest import station_registry
from tests.unit.certs.certs_test_kit import PkiWorld


def fill(registry: Registry, entries: int) -> None:
    """``entries`` audit entries through the registry (each in its own transaction, as the stores do)."""
    for number in range(entries):
        with registry.transaction() as tx:
            registry.record(tx, "intake", f"asset-{number}", {"asset_tag": f"A-{number}", "n": number})


def export_of(registry: Registry, world: PkiWorld, first: int = 1, last: int | None = None) -> dict[str, Any]:
    last = last if last is not None else registry.audit.verify().entries
    pem = serialization.Encoding.PEM
    return json.loads(json.dumps(registry.audit.export(
        first, last, world.station.station_id, [world.station.certificate.public_bytes(pem).decode()])))


def check(document: dict[str, Any], world: PkiWorld) -> tuple[bool, list[str]]:
    report = verify_export(parse_export(json.dumps(document).encode()), load_trust_bundle(world.bundle))
    return report.valid, list(report.problems)


def unanchored(first: int, last: int) -> str:
    """The verifier's refusal of entries no valid checkpoint covers."""
    return (f"entries {first}-{last} are not covered by any valid station checkpoint: unanchored, refused (anyone "
            "can re-hash entries no checkpoint signs)")


def rehash_from(document: dict[str, Any], index: int) -> None:
    """Recompute every hash from ``index`` on, as someone without the key would after editing."""
    entries = document["entries"]
    for position in range(index, len(entries)):
        entry = entries[position]
        entry["prev_hash"] = entries[position - 1]["hash"] if position else GENESIS
        entry["hash"] = entry_hash(entry["prev_hash"], entry["seq"], entry["at"], entry["kind"], entry["subject"],
                                   entry["data"])


@pytest.fixture
def exported(signed_registry: Registry, world: PkiWorld) -> dict[str, Any]:
    fill(signed_registry, 20)  # checkpoints at 5, 10, 15, 20
    return export_of(signed_registry, world)


def test_an_untouched_export_verifies_and_is_anchored_to_its_last_entry(exported: dict[str, Any],
                                                                        world: PkiWorld) -> None:
    report = verify_export(parse_export(json.dumps(exported).encode()), load_trust_bundle(world.bundle))
    assert report.valid, report.problems
    assert (report.entries, report.checkpoints, report.anchored_to, report.warnings) == (20, 4, 20, ())
    assert [c["seq"] for c in exported["checkpoints"]] == [5, 10, 15, 20]


def test_an_edited_entry_is_named(exported: dict[str, Any], world: PkiWorld) -> None:
    exported["entries"][6]["data"]["asset_tag"] = "A-666"
    valid, problems = check(exported, world)
    assert not valid
    assert problems == ["entry 7: hash does not match its content (entry modified)"]


def test_deleted_entries_are_named_with_the_jump(exported: dict[str, Any], world: PkiWorld) -> None:
    del exported["entries"][11:14]  # seq 12-14
    valid, problems = check(exported, world)
    assert not valid
    assert "entries 12-14 missing: seq jumps 11 → 15" in problems
    assert any(p.startswith("entry 15: previous-hash link broken") for p in problems)


def test_an_inserted_entry_is_named(exported: dict[str, Any], world: PkiWorld) -> None:
    forged = copy.deepcopy(exported["entries"][8])
    forged["data"]["asset_tag"] = "A-FORGED"
    forged["hash"] = entry_hash(forged["prev_hash"], forged["seq"], forged["at"], forged["kind"], forged["subject"],
                                forged["data"])
    exported["entries"].insert(9, forged)
    valid, problems = check(exported, world)
    assert not valid
    assert "entry 9 appears twice (entry inserted or duplicated)" in problems


def test_reordered_entries_are_named(exported: dict[str, Any], world: PkiWorld) -> None:
    entries = exported["entries"]
    entries[3], entries[4] = entries[4], entries[3]
    valid, problems = check(exported, world)
    assert not valid
    assert "entry 4 out of order: it comes after entry 5 (entries reordered or inserted)" in problems


def test_truncation_below_a_checkpoint_is_named(exported: dict[str, Any], world: PkiWorld) -> None:
    del exported["entries"][17:]  # ends at 17; checkpoint 4 covers 20
    exported["range"]["to_seq"] = 17  # even with the stated range edited to match
    valid, problems = check(exported, world)
    assert not valid
    assert "the export ends at seq 17 but checkpoint 4 covers seq 20: truncated" in problems


def test_truncation_against_the_stated_range_is_named(exported: dict[str, Any], world: PkiWorld) -> None:
    del exported["entries"][17:]
    del exported["checkpoints"][3:]
    valid, problems = check(exported, world)
    assert not valid
    assert problems == ["the export ends at seq 17 but states it holds entries up to 20: truncated",
                        unanchored(16, 17)]


def test_a_rewritten_and_rehashed_chain_fails_on_its_checkpoints(exported: dict[str, Any], world: PkiWorld) -> None:
    exported["entries"][6]["data"]["asset_tag"] = "A-666"
    rehash_from(exported, 6)
    valid, problems = check(exported, world)
    assert not valid
    # every entry fits its neighbours now; only the signatures give it away
    assert problems == [f"checkpoint {n} (seq {n * 5}): the signed head hash does not match entry {n * 5} "
                        "(the chain was rewritten after it was signed)" for n in (2, 3, 4)] + [unanchored(6, 20)]


def _forge(exported: dict[str, Any], signer: StationSigner, *, station_id: str | None = None) -> None:
    """Rewrite entry 7, re-hash, and re-sign every checkpoint with ``signer``."""
    exported["entries"][6]["data"]["asset_tag"] = "A-666"
    rehash_from(exported, 6)
    hashes_by_seq = {entry["seq"]: entry["hash"] for entry in exported["entries"]}
    for checkpoint in exported["checkpoints"]:
        checkpoint["station_id"] = station_id or checkpoint["station_id"]
        checkpoint["head"] = hashes_by_seq[checkpoint["seq"]]
        payload = checkpoint_payload(checkpoint["station_id"], checkpoint["seq"], checkpoint["head"],
                                     checkpoint["count"], checkpoint["at"])
        checkpoint["signature"] = base64.b64encode(signer.private_key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
        der = signer.certificate.public_bytes(serialization.Encoding.DER)
        checkpoint["certificate"] = base64.b64encode(der).decode()


def test_checkpoints_resigned_by_another_ca_are_refused(exported: dict[str, Any], world: PkiWorld) -> None:
    _forge(exported, world.other_ca_station)
    valid, problems = check(exported, world)
    assert not valid and problems[-1] == unanchored(1, 20) and len(problems) == 5
    assert all("not a station certificate of the trusted CA" in p and "(untrusted)" in p for p in problems[:-1])


def test_checkpoints_resigned_by_an_impostor_ca_of_the_same_name_are_refused(exported: dict[str, Any],
                                                                              world: PkiWorld) -> None:
    _forge(exported, world.impostor_station)
    valid, problems = check(exported, world)
    assert not valid and problems[-1] == unanchored(1, 20) and all("(untrusted)" in p for p in problems[:-1])


def test_checkpoints_resigned_by_the_ca_key_itself_are_refused(exported: dict[str, Any], world: PkiWorld) -> None:
    key = serialization.load_pem_private_key((world.ca_dir / pki.CA_KEY).read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    ca = x509.load_pem_x509_certificate((world.ca_dir / pki.CA_CERT).read_bytes())
    _forge(exported, StationSigner("station-01", ca, (), key))
    valid, problems = check(exported, world)
    assert not valid and problems[-1] == unanchored(1, 20) and all("(signer_is_ca)" in p for p in problems[:-1])


def test_checkpoints_signed_by_a_revoked_station_are_refused(world: PkiWorld, tmp_path: Path) -> None:
    registry = station_registry(tmp_path / "revoked", world.root / "station-02")
    registry.audit.checkpoint_every = 5
    fill(registry, 10)
    pem = serialization.Encoding.PEM
    document = registry.audit.export(1, 10, "station-02", [world.revoked.certificate.public_bytes(pem).decode()])
    valid, problems = check(document, world)
    assert not valid and len(problems) == 3 and problems[-1] == unanchored(1, 10)
    assert all("was revoked on" in p and "(revoked)" in p for p in problems[:-1])


def test_checkpoints_of_another_station_id_are_refused(exported: dict[str, Any], world: PkiWorld) -> None:
    # station-02's key signs checkpoints claiming to be station-01's
    _forge(exported, world.revoked, station_id="station-01")
    valid, problems = check(exported, world)
    assert not valid
    assert problems[-1] == unanchored(1, 20)
    assert all("(station_mismatch)" in p or "(revoked)" in p for p in problems[:-1])
    assert any("signed by station 'station-02', not by station 'station-01'" in p for p in problems)


def test_an_export_relabelled_for_another_station_is_refused(exported: dict[str, Any], world: PkiWorld) -> None:
    exported["station_id"] = "station-07"
    valid, problems = check(exported, world)
    assert not valid
    assert problems[0] == ("checkpoint 1 (seq 5): signed for station 'station-01', the export is of station "
                           "'station-07'")


def test_an_expired_station_certificate_does_not_sign(world: PkiWorld, exported: dict[str, Any]) -> None:
    exported["station_id"] = "station-03"
    _forge(exported, world.expired, station_id="station-03")
    valid, problems = check(exported, world)
    assert not valid and len(problems) == 5 and problems[-1] == unanchored(1, 20)
    assert all("(station-03) expired on" in p and "(expired)" in p for p in problems[:-1])


def test_a_tampered_signature_is_named(exported: dict[str, Any], world: PkiWorld) -> None:
    signature = bytearray(base64.b64decode(exported["checkpoints"][1]["signature"]))
    signature[-1] ^= 1
    exported["checkpoints"][1]["signature"] = base64.b64encode(bytes(signature)).decode()
    valid, problems = check(exported, world)
    assert not valid and len(problems) == 1
    assert problems[0].startswith("checkpoint 2 (seq 10): ")


def test_a_moved_checkpoint_time_breaks_its_signature(exported: dict[str, Any], world: PkiWorld) -> None:
    checkpoint = exported["checkpoints"][3]
    checkpoint["at"] = (datetime.fromisoformat(checkpoint["at"]) + timedelta(minutes=1)).isoformat()
    valid, problems = check(exported, world)
    assert not valid
    assert problems == ["checkpoint 4 (seq 20): the signature value does not verify with the signer's key "
                        "(bad_signature)", unanchored(16, 20)]


def test_entries_after_the_last_checkpoint_are_refused_as_unanchored(signed_registry: Registry,
                                                                    world: PkiWorld) -> None:
    fill(signed_registry, 7)
    report = verify_export(parse_export(json.dumps(export_of(signed_registry, world)).encode()),
                           load_trust_bundle(world.bundle))
    assert not report.valid and report.anchored_to == 5
    assert report.problems == (unanchored(6, 7),)


def test_a_partial_export_checks_what_it_holds(signed_registry: Registry, world: PkiWorld) -> None:
    fill(signed_registry, 20)
    document = export_of(signed_registry, world, 6, 15)
    assert [c["seq"] for c in document["checkpoints"]] == [10, 15]
    valid, problems = check(document, world)
    assert valid, problems
    del document["entries"][0]
    valid, problems = check(document, world)
    assert "entries 6 missing: the export starts at seq 7, not 6" in problems


def test_minutes_since_the_first_unsigned_entry_make_a_checkpoint(signed_registry: Registry) -> None:
    signed_registry.audit.checkpoint_every = 1000
    signed_registry.audit.checkpoint_minutes = 15
    start = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    for minutes in (0, 5, 14):
        signed_registry.audit.append("intake", "x", {}, at=start + timedelta(minutes=minutes))
    assert signed_registry.audit.checkpoints() == []
    signed_registry.audit.append("intake", "x", {}, at=start + timedelta(minutes=15))
    assert [c.seq for c in signed_registry.audit.checkpoints()] == [4]


def test_a_checkpoint_on_demand_signs_the_head_once(signed_registry: Registry) -> None:
    fill(signed_registry, 3)
    made = signed_registry.audit.checkpoint()
    assert made is not None and (made.seq, made.head) == (3, signed_registry.audit.verify().head)
    assert signed_registry.audit.checkpoint() is None  # nothing new to sign


def test_no_station_key_no_checkpoint_and_no_refusal(tmp_path: Path) -> None:
    registry = Registry(tmp_path).open()
    registry.audit.checkpoint_every = 1
    fill(registry, 3)
    assert registry.audit.checkpoints() == [] and registry.audit.checkpoint() is None
    assert registry.audit.verify().valid


def test_local_verify_checks_checkpoints_against_the_entries(signed_registry: Registry) -> None:
    fill(signed_registry, 10)
    assert signed_registry.audit.verify().anchored_to == 10
    signed_registry.db.execute("UPDATE audit_checkpoints SET head=? WHERE seq=5", ("f" * 64,))
    report = signed_registry.audit.verify()
    assert not report.valid
    assert report.problems[0].startswith("checkpoint 1 (seq 5): the signature value does not verify")


@pytest.mark.parametrize(("content", "message"), [
    (b"\xff\xfe", "not JSON"),
    (b"[]", "the export is not an object"),
    (b'{"format": "something-else"}', "format 'something-else'"),
    (b'{"format": "wipe-agent-audit-export/1", "station_id": "s", "range": {"from_seq": 1, "to_seq": 1}, '
     b'"entries": [{"seq": "1"}], "checkpoints": []}', "entries[0]: seq is not an integer"),
    (b'{"format": "wipe-agent-audit-export/1", "station_id": "s", "range": {"from_seq": 1, "to_seq": 1}, '
     b'"entries": [], "checkpoints": [{"number": 1}]}', "checkpoints[0] has no 'station_id'"),
    (b'{"format": "wipe-agent-audit-export/1", "station_id": "s\\u200b", "range": {}, "entries": [], '
     b'"checkpoints": []}', "station_id:"),
])
def test_a_bad_file_is_one_line(content: bytes, message: str) -> None:
    with pytest.raises(AuditFileError, match=message.replace("[", r"\[").replace("]", r"\]")) as error:
        parse_export(content)
    assert "\n" not in str(error.value)
