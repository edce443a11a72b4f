"""Red-team round 11 (C1, H1, H5, M1, M2, L1, L5): what an export or a registry rewritten without the station key,
or signed with a stolen one, looks like to the verifiers — each refused by name."""

from __future__ import annotations

import base64
import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.store.registry import Registry
from certs import pki
from certs.audit_chain import AuditFileError, checkpoint_payload, parse_export, verify_export
from certs.pki import StationSigner
from certs.verify import load_trust_bundle
from tests.unit.audit.test_export_tampering import check, export_of, fill, rehash_from, unanchored
from tests.unit.certs.certs_test_kit import PkiWorld


@pytest.fixture
def exported(signed_registry: Registry, world: PkiWorld) -> dict[str, Any]:
    fill(signed_registry, 12)  # checkpoints at 5, 10; 11-12 not yet signed
    signed_registry.audit.checkpoint()  # what `audit export` does first: checkpoint 3 at 12
    return export_of(signed_registry, world)


def _sign(signer: StationSigner, document: dict[str, Any], number: int, seq: int, at: str) -> dict[str, Any]:
    head = next(entry["hash"] for entry in document["entries"] if entry["seq"] == seq)
    payload = checkpoint_payload(signer.station_id, seq, head, seq, at)
    return {"number": number, "station_id": signer.station_id, "seq": seq, "head": head, "count": seq, "at": at,
            "signature": base64.b64encode(signer.private_key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode(),
            "certificate": base64.b64encode(signer.certificate.public_bytes(serialization.Encoding.DER)).decode()}


# --- C1: nothing unanchored is accepted ----------------------------------------------------------------------------

def test_the_fresh_export_is_anchored_to_its_last_entry(exported: dict[str, Any], world: PkiWorld) -> None:
    assert check(exported, world) == (True, [])
    assert [c["seq"] for c in exported["checkpoints"]] == [5, 10, 12]


def test_rewritten_rehashed_and_checkpoints_stripped_is_refused(exported: dict[str, Any], world: PkiWorld) -> None:
    exported["entries"][0]["data"]["operator"] = "mallory"
    rehash_from(exported, 0)
    exported["checkpoints"] = []
    assert check(exported, world) == (False, [unanchored(1, 12)])


def test_last_checkpoint_dropped_and_the_tail_edited_is_refused(exported: dict[str, Any], world: PkiWorld) -> None:
    del exported["checkpoints"][2:]
    exported["entries"][11]["data"]["asset_tag"] = "A-EDITED"
    rehash_from(exported, 11)
    assert check(exported, world) == (False, [unanchored(11, 12)])


def test_cut_at_a_checkpoint_with_the_stated_range_kept_is_named_truncated(exported: dict[str, Any],
                                                                           world: PkiWorld) -> None:
    del exported["entries"][10:]
    del exported["checkpoints"][2:]
    assert check(exported, world) == (False, ["the export ends at seq 10 but states it holds entries up to 12: "
                                              "truncated"])


def test_an_empty_export_proves_nothing(exported: dict[str, Any], world: PkiWorld) -> None:
    exported["entries"], exported["checkpoints"] = [], []
    exported["range"] = {"from_seq": 10, "to_seq": 5}
    valid, problems = check(exported, world)
    assert not valid
    assert problems == ["the export states the range seq 10-5, which is empty",
                        "the export holds no entries: an empty export proves nothing"]


# --- M2, L1, L5 ----------------------------------------------------------------------------------------------------

def test_a_middle_checkpoint_removed_is_named(exported: dict[str, Any], world: PkiWorld) -> None:
    del exported["checkpoints"][1]
    assert check(exported, world) == (False, ["checkpoint(s) 2 missing between checkpoints 1 and 3 (removed from "
                                              "the export)"])


def test_a_range_that_understates_its_entries_is_named(exported: dict[str, Any], world: PkiWorld) -> None:
    exported["range"]["to_seq"] = -5
    valid, problems = check(exported, world)
    assert not valid
    assert problems[:2] == ["the export states the range seq 1--5, which is empty",
                            "entries 1-12 lie outside the stated range seq 1--5 (range altered)"]


def test_control_characters_in_entry_text_are_named(signed_registry: Registry, world: PkiWorld) -> None:
    signed_registry.audit.append("intake", "\u202e\x1b[31mEVIL", {"note": "ok"})
    signed_registry.audit.append("intake", "fine", {"note": "a\u200bb"})
    signed_registry.audit.checkpoint()
    report = verify_export(parse_export(json.dumps(export_of(signed_registry, world)).encode()),
                           load_trust_bundle(world.bundle))
    assert report.valid  # what the station recorded; shown, never hidden
    assert len(report.warnings) == 2
    assert report.warnings[0].startswith("entry 1 subject: ") and "U+202E" in report.warnings[0]
    assert report.warnings[1].startswith("entry 2 data .note: ") and "U+200B" in report.warnings[1]


def test_another_station_of_the_same_ca_is_refused_with_station(exported: dict[str, Any], world: PkiWorld) -> None:
    document = parse_export(json.dumps(exported).encode())
    report = verify_export(document, load_trust_bundle(world.bundle), station_id="station-02")
    assert not report.valid
    assert report.problems == ("the export is of station 'station-01', not of station 'station-02'",)


# --- M1: bad JSON is one line, never a crash ----------------------------------------------------------------------

@pytest.mark.parametrize(("content", "message"), [
    (b'{"format":"wipe-agent-audit-export/1","x":' + b"[" * 200000 + b"]" * 200000 + b"}", "nested too deeply"),
    (b'{"format":"wipe-agent-audit-export/1","x":NaN}', "NaN is not a JSON number"),
    (b'{"format":"wipe-agent-audit-export/1","x":-Infinity}', "-Infinity is not a JSON number"),
])
def test_deep_or_non_finite_json_is_a_bad_file(content: bytes, message: str) -> None:
    with pytest.raises(AuditFileError, match=message) as error:
        parse_export(content)
    assert "\n" not in str(error.value)


def test_an_overflowing_number_is_a_modified_entry(exported: dict[str, Any], world: PkiWorld) -> None:
    # 1e400 is a JSON number that parses as infinity, which the station's canonical form cannot hash
    text = json.dumps(exported).replace('"n": 3}', '"n": 1e400}', 1)
    assert "1e400" in text
    report = verify_export(parse_export(text.encode()), load_trust_bundle(world.bundle))
    assert report.problems == ("entry 4: hash does not match its content (entry modified)",)


# --- H5: a stolen key revoked for key compromise signs nothing acceptable, whatever time it writes ---------------

def test_back_dated_checkpoint_of_a_compromised_key_is_refused(tmp_path: Path) -> None:
    year_ago = datetime.now(UTC) - timedelta(days=365)
    pki.init_ca("Example Police", tmp_path / "ca", clock=lambda: year_ago)
    pki.issue_station(tmp_path / "ca", "station-01", tmp_path / "st", clock=lambda: year_ago)
    registry = Registry(tmp_path / "st").open()
    fill(registry, 3)
    since = datetime.now(UTC) - timedelta(minutes=30)
    signer = pki.load_station_signer(tmp_path / "st")
    document = json.loads(json.dumps(registry.audit.export(1, 3, "station-01", [])))
    pki.revoke(tmp_path / "ca", station_id="station-01", reason="key-compromise", compromised_since=since)
    bundle = load_trust_bundle(pki.make_bundle(tmp_path / "ca", tmp_path / "bundle.pem"))
    for at in (since - timedelta(minutes=1), since - timedelta(days=200)):
        document["checkpoints"] = [_sign(signer, document, 1, 3, at.isoformat(timespec="milliseconds"))]
        report = verify_export(parse_export(json.dumps(document).encode()), bundle)
        assert not report.valid and report.anchored_to is None
        assert report.problems[0] == ("checkpoint 1 (seq 3): untimestamped checkpoint of a compromised key: the "
                                      "station certificate was revoked for key compromise and the checkpoint's "
                                      "stated time cannot be trusted (revoked)")
    # dated after the compromise: the CRL's own verdict, the serial named once
    document["checkpoints"] = [_sign(signer, document, 1, 3, datetime.now(UTC).isoformat(timespec="milliseconds"))]
    report = verify_export(parse_export(json.dumps(document).encode()), bundle)
    serial = pki.format_serial(signer.certificate.serial_number)
    assert report.problems[0].count(serial) == 1 and "(revoked)" in report.problems[0]


# --- H1: the station's own check does not trust the row's certificate --------------------------------------------

def _rewrite_registry(registry: Registry) -> None:
    """Edit entry 1, re-hash the chain and the head as someone with write access to the file would."""
    rows = registry.db.execute("SELECT seq, at, kind, subject, data_json FROM audit_log ORDER BY seq").fetchall()
    from certs.audit_chain import GENESIS, entry_hash

    prev = GENESIS
    for seq, at, kind, subject, data_json in rows:
        data = json.loads(data_json)
        if seq == 1:
            data["operator"] = "mallory"
        digest = entry_hash(prev, seq, at, kind, subject, data)
        registry.db.execute("UPDATE audit_log SET data_json=?, prev_hash=?, hash=? WHERE seq=?",
                            (json.dumps(data, sort_keys=True, separators=(",", ":")), prev, digest, seq))
        prev = digest
    registry.db.execute("UPDATE audit_head SET hash=? WHERE id=1", (prev,))


def test_local_verify_with_checkpoints_deleted_is_broken(signed_registry: Registry, world: PkiWorld) -> None:
    fill(signed_registry, 12)
    _rewrite_registry(signed_registry)
    signed_registry.db.execute("DELETE FROM audit_checkpoints")
    assert signed_registry.audit.verify().valid  # nothing to pin against: what the old check said
    report = signed_registry.audit.verify(station=world.station)
    assert not report.valid
    assert report.problems == ("12 entries after the newest valid checkpoint (seq 0) although the station key is "
                               "installed and signs every 5: checkpoints deleted or replaced",)


def test_local_verify_refuses_a_checkpoint_by_a_foreign_key(signed_registry: Registry, world: PkiWorld) -> None:
    fill(signed_registry, 12)
    _rewrite_registry(signed_registry)
    signed_registry.db.execute("DELETE FROM audit_checkpoints")
    signed_registry.audit.signer = lambda: world.other_ca_station
    signed_registry.audit.checkpoint()
    report = signed_registry.audit.verify(station=world.station)
    assert not report.valid
    assert report.problems[0] == ("checkpoint 1 (seq 12): signed by a certificate that is not this station's "
                                  "installed station certificate (untrusted; give --trust BUNDLE if the station "
                                  "certificate was renewed)")
    bundled = signed_registry.audit.verify(bundle=load_trust_bundle(world.bundle), station=world.station)
    assert not bundled.valid and "(untrusted)" in bundled.problems[0]


def test_local_verify_names_a_deleted_middle_checkpoint(signed_registry: Registry, world: PkiWorld) -> None:
    fill(signed_registry, 15)
    signed_registry.db.execute("DELETE FROM audit_checkpoints WHERE number=2")
    report = signed_registry.audit.verify(station=world.station)
    assert report.problems == ("checkpoint(s) 2 missing between checkpoints 1 and 3 (removed from the export)",)


def test_local_verify_of_an_untouched_station_is_intact(signed_registry: Registry, world: PkiWorld) -> None:
    fill(signed_registry, 13)
    report = signed_registry.audit.verify(bundle=load_trust_bundle(world.bundle), station=world.station)
    assert report.valid and report.anchored_to == 10 and report.warnings == ()


# --- M6: a key that could not be read once is tried again -------------------------------------------------------

def test_a_failed_key_load_is_retried_at_the_next_checkpoint(tmp_path: Path, world: PkiWorld) -> None:
    registry = Registry(tmp_path / "state").open()
    registry.audit.checkpoint_every = 2
    fill(registry, 2)  # due, but no key yet: nothing signed
    assert registry.audit.checkpoints() == []
    shutil.copytree(world.station_state / "pki", tmp_path / "state" / "pki")
    fill(registry, 1)
    assert [c.seq for c in registry.audit.checkpoints()] == [3]
