"""The demo's reuse flow without root: four certified virtual-drive jobs in a temporary registry."""

from __future__ import annotations

import json
from pathlib import Path

from agent.reuse.demo import run_reuse_demo
from agent.reuse.store import ReuseStore
from agent.store.registry import Registry
from tests.unit.reuse.kit import build_world, drive, make_job


def test_demo_ships_two_laptops_destroys_one_and_verifies_the_manifest(tmp_path: Path) -> None:
    world = build_world(tmp_path)
    registry = Registry(world.state).open()
    jobs = {f"DEMO-LAPTOP-{index}": make_job(registry, world.signer, drive(f"loop:/demo/{index}.img", "virtual"),
                                             asset=f"DEMO-LAPTOP-{index}", level="clear", demo=True)
            for index in range(1, 5)}
    result = run_reuse_demo(registry, world.signer, world.bundle, jobs, out_dir=tmp_path / "manifest")
    assert result.ok, json.dumps(result.summary, indent=1, default=str)[:4000]
    decisions = result.summary["decisions"]
    assert decisions["DEMO-LAPTOP-A"]["route"] == "reuse:demo-schools"
    assert decisions["DEMO-LAPTOP-B"]["route"] == "reuse:demo-schools"
    assert decisions["DEMO-LAPTOP-C"]["route"] == "destroy"
    assert "health" in decisions["DEMO-LAPTOP-C"]["route_reasons"][0]
    # the real schemes never take the demo's virtual media
    for scheme in decisions["DEMO-LAPTOP-A"]["schemes"]:
        if scheme["scheme"] in ("schools", "gla-reuse"):
            assert not scheme["eligible"]
            assert {reason["code"] for reason in scheme["reasons"]} >= {"media_refused"}
    manifest = result.summary["manifest"]
    assert manifest["valid"] and sorted(manifest["assets"]) == ["DEMO-LAPTOP-A", "DEMO-LAPTOP-B"]
    assert len(manifest["certificates_checked"]) == 3
    assert result.summary["destruction"]["valid"]
    assert ReuseStore(registry).audit.verify().valid
    assert any("manifest" in line for line in result.lines)
