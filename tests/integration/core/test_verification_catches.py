"""NIST sampling verification catches a dirty first LBA, last LBA and a whole dirty subsection."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.verify.sampling import plan_sampling
from tests.conftest import LoopDevice, run_cli

pytestmark = pytest.mark.root
SIZE = 64 << 20


def _sampling(device: LoopDevice) -> tuple[int, dict]:
    result = run_cli("verify-media", device.path, "--expect", "zero", "--mode", "sampling", "--json")
    return result.returncode, json.loads(result.stdout)


@pytest.mark.parametrize("where", ["first", "last", "subsection"])
def test_dirt_is_found(loop_factory: Callable[..., LoopDevice], state_dir: Path, where: str) -> None:
    device = loop_factory(SIZE, fill=b"\0")
    code, clean = _sampling(device)
    assert code == 0 and clean["passed"], clean
    subsection = SIZE // 1000 // 512 * 512
    if where == "first":
        offset, data = 0, b"\x01"
    elif where == "last":
        offset, data = SIZE - 512, b"\x00" * 511 + b"\x01"
    else:
        # two subsections' worth: subsections differ by a sector (the remainder is spread over the first
        # ones), so one subsection's length from here straddled two and either could be missed by both
        # its samples (a fresh-machine CI run hit that); twice the length always contains a whole one
        offset, data = 517 * subsection, b"\xff" * (2 * subsection + 1024)
    device.write(offset, data)
    code, result = _sampling(device)
    assert code == 1 and result["passed"] is False
    dirty_end = offset + len(data)
    assert any(offset <= found < dirty_end for found in result["first_mismatches"]), result


def test_seed_reproduces_the_same_locations(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    device = loop_factory(SIZE, fill=b"\0")
    plan = plan_sampling(SIZE, 512, "fixed-seed")
    # dirty a byte that this seed's plan reads (its 600th sample) — a random seed would likely miss it
    target = plan.extents[600]
    device.write(target.offset, b"\x07")
    result = run_cli("verify-media", device.path, "--mode", "sampling", "--seed", "fixed-seed", "--json")
    data = json.loads(result.stdout)
    assert result.returncode == 1 and data["seed"] == "fixed-seed"
    assert data["first_mismatches"] == [target.offset]
