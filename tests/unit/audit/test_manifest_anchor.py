"""Each manifest carries the station's latest signed checkpoint: the partner's anchor for the chain."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agent.reuse.service import create_manifest
from agent.reuse.store import ReuseStore
from agent.store.registry import Registry
from certs.audit_chain import AuditFileError, parse_export, run_audit_verify, verify_checkpoint, verify_export
from certs.verify import load_trust_bundle, verify_with_bundle
from tests.unit.reuse.kit import build_world, drive, ready_device


def test_the_manifest_carries_a_checkpoint_that_verifies_and_anchors_an_export(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    registry = Registry(world.state).open()
    store = ReuseStore(registry)
    ready_device(store, world, "PC-1", [drive("SSD-1")])
    bundle = load_trust_bundle(world.bundle)
    created = create_manifest(store, "schools", assets=["PC-1"], all_eligible=False, out_dir=tmp_path / "out",
                              signer=world.signer, bundle=bundle)
    report = verify_with_bundle(Path(str(created["pdf"])), bundle)
    assert report.valid and report.document is not None, report.reason
    anchor = report.document["audit_checkpoint"]
    # signed just before the manifest: it covers every entry but the manifest's own
    entries = registry.audit.entries()
    assert entries[-1].kind == "manifest" and anchor["seq"] == entries[-2].seq and anchor["head"] == entries[-2].hash
    assert verify_checkpoint(anchor, bundle, "station-test") is None
    text = subprocess.run(["pdftotext", "-layout", str(created["pdf"]), "-"], capture_output=True, text=True,
                          check=True).stdout
    assert f"audit checkpoint #{anchor['seq']} head {anchor['head'][:12]}" in text
    forged = {**anchor, "head": "0" * 64}
    assert verify_checkpoint(forged, bundle) == ("the signature value does not verify with the signer's key "
                                                 "(bad_signature)")
    assert verify_checkpoint({"seq": 1}, bundle) == "the checkpoint has no 'number'"
    # the partner holding the manifest checks an export against the same head; the export's own
    # checkpoint (signed at export time, as `audit export` does) anchors the manifest entry after it
    assert registry.audit.checkpoint() is not None
    document = registry.audit.export(1, entries[-1].seq, "station-test", [])
    exported = verify_export(parse_export(json.dumps(document).encode()), bundle)
    assert exported.valid and anchor in document["checkpoints"]


def test_an_export_cut_before_the_manifests_anchor_is_refused_with_anchor(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    registry = Registry(world.state).open()
    store = ReuseStore(registry)
    ready_device(store, world, "PC-1", [drive("SSD-1")])
    early = registry.audit.checkpoint()  # an earlier checkpoint: a cut there is a self-consistent export
    bundle = load_trust_bundle(world.bundle)
    created = create_manifest(store, "schools", assets=["PC-1"], all_eligible=False, out_dir=tmp_path / "out",
                              signer=world.signer, bundle=bundle)
    report = verify_with_bundle(Path(str(created["pdf"])), bundle)
    assert report.valid and report.document is not None
    assert not [w for w in report.warnings if "audit checkpoint" in w]  # the anchor verified
    anchor = report.document["audit_checkpoint"]
    assert early is not None and early.seq < anchor["seq"]
    registry.audit.checkpoint()
    full = registry.audit.export(1, registry.audit.verify().entries, "station-test", [])
    cut = json.loads(json.dumps(full))
    cut["entries"] = [entry for entry in cut["entries"] if entry["seq"] <= early.seq]
    cut["checkpoints"] = [c for c in cut["checkpoints"] if c["seq"] <= early.seq]
    cut["range"]["to_seq"] = early.seq
    (tmp_path / "full.json").write_text(json.dumps(full))
    (tmp_path / "cut.json").write_text(json.dumps(cut))
    lines: list[str] = []
    pdf = str(created["pdf"])
    assert run_audit_verify(str(tmp_path / "cut.json"), str(world.bundle), as_json=False, echo=lines.append) == 0
    assert run_audit_verify(str(tmp_path / "full.json"), str(world.bundle), as_json=False, echo=lines.append,
                            anchor=pdf) == 0
    lines.clear()
    assert run_audit_verify(str(tmp_path / "cut.json"), str(world.bundle), as_json=False, echo=lines.append,
                            anchor=pdf) == 1
    assert (f"  the anchor (checkpoint {anchor['number']}, seq {anchor['seq']}) is beyond the export's end: "
            "truncated") in lines
    with pytest.raises(AuditFileError, match="not a valid manifest"):
        run_audit_verify(str(tmp_path / "cut.json"), str(world.bundle), as_json=False,
                         anchor=str(tmp_path / "cut.json"))
