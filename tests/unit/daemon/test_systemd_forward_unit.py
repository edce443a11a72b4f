"""The station forwarder unit's hardening: no capability, no device, only its state directory writable."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[3] / "systemd" / "wipe-agent-forward.service"
DAEMON = Path(__file__).resolve().parents[3] / "systemd" / "wipe-agent.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed (Debian package 'systemd'); CI installs it")
def test_forwarder_exposure_score_at_most_3() -> None:
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for wipe-agent-forward\.service: (\d+\.\d+)",
                      result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 3.0, result.stdout


def test_the_forwarder_has_the_network_and_nothing_else_the_daemon_has_everything_else_and_no_network() -> None:
    forwarder, daemon = UNIT.read_text(), DAEMON.read_text()
    for needed in ("CapabilityBoundingSet=\n", "PrivateDevices=yes", "DevicePolicy=closed", "ProtectSystem=strict",
                   "ReadWritePaths=/var/lib/wipe-agent\n", "fleet push --every", "NoNewPrivileges=yes"):
        assert needed in forwarder, needed
    assert "AF_INET" in forwarder and "IPAddressDeny=any" not in forwarder
    assert "IPAddressDeny=any" in daemon and "AF_INET" not in daemon  # the drive daemon stays off the network
