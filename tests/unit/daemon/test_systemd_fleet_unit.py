"""The fleet service unit's hardening: ``systemd-analyze security --offline=true`` must rate it ≤ 2.0."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[3] / "systemd" / "wipe-agent-fleet.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed (Debian package 'systemd'); CI installs it")
def test_fleet_exposure_score_at_most_2() -> None:
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for wipe-agent-fleet\.service: (\d+\.\d+)",
                      result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_fleet_unit_runs_unprivileged_with_its_files_in_its_state_directory() -> None:
    text = UNIT.read_text()
    for needed in ("DynamicUser=yes", "StateDirectory=wipe-agent-fleet", "ProtectSystem=strict",
                   "CapabilityBoundingSet=\n", "fleet serve --tls /var/lib/wipe-agent-fleet/tls",
                   "--trust /var/lib/wipe-agent-fleet/bundle.pem", "EnvironmentFile=/etc/wipe-agent/fleet.env",
                   "UMask=0077"):
        assert needed in text, needed
    assert "User=root" not in text
    assert re.search(r"--listen \S+:(\d+)", text) and int(re.search(r"--listen \S+:(\d+)", text).group(1)) >= 1024
