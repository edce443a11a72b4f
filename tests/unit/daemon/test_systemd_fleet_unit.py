"""The fleet service unit's hardening: what it keeps and refuses (its exposure score: test_systemd_exposure.py)."""

from __future__ import annotations

import re
from pathlib import Path

UNIT = Path(__file__).resolve().parents[3] / "systemd" / "wipe-agent-fleet.service"


def test_fleet_unit_runs_unprivileged_with_its_files_in_its_state_directory() -> None:
    text = UNIT.read_text()
    for needed in ("DynamicUser=yes", "StateDirectory=wipe-agent-fleet", "ProtectSystem=strict",
                   "CapabilityBoundingSet=\n", "fleet serve --tls /var/lib/wipe-agent-fleet/tls",
                   "--trust /var/lib/wipe-agent-fleet/bundle.pem", "EnvironmentFile=/etc/wipe-agent/fleet.env",
                   "UMask=0077"):
        assert needed in text, needed
    assert "User=root" not in text
    assert re.search(r"--listen \S+:(\d+)", text) and int(re.search(r"--listen \S+:(\d+)", text).group(1)) >= 1024
