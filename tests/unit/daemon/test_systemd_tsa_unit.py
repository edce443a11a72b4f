"""The TSA service unit's hardening: what it keeps and refuses (its exposure score: test_systemd_exposure.py)."""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).resolve().parents[3] / "systemd" / "wipe-agent-tsa.service"


def test_tsa_unit_runs_unprivileged_and_keeps_the_clock() -> None:
    text = UNIT.read_text()
    for needed in ("DynamicUser=yes", "StateDirectory=wipe-agent-tsa", "ProtectSystem=strict", "ProtectClock=yes",
                   "CapabilityBoundingSet=\n", "tsa serve --tsa /var/lib/wipe-agent-tsa", "UMask=0077"):
        assert needed in text, needed
    assert "User=root" not in text
