"""Every unit's hardening, as ``systemd-analyze security --offline=true`` rates it: at most its bound."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[3] / "systemd"
BOUNDS = {
    "wipe-agent.service": 3.0,          # the drive daemon: root with bounded capabilities, raw device access
    "wipe-agent-tsa.service": 2.0,      # dynamic user, no capability
    "wipe-agent-fleet.service": 2.0,    # dynamic user, no capability
    "wipe-agent-forward.service": 3.0,  # uid 0 for the 0600 registry, no capability, no device
    "wipe-agent-web.service": 2.0,      # its own user in wipe-operators (the API socket), no capability
}


def test_every_unit_has_a_bound() -> None:
    assert sorted(path.name for path in UNITS.glob("*.service")) == sorted(BOUNDS)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed (Debian package 'systemd'); CI installs it")
@pytest.mark.parametrize("unit", sorted(BOUNDS))
def test_exposure_score_at_most_its_bound(unit: str) -> None:
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNITS / unit)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(rf"Overall exposure level for {re.escape(unit)}: (\d+\.\d+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= BOUNDS[unit], result.stdout
