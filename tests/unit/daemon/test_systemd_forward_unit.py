"""The station forwarder unit's hardening: no capability, no device, only its state directory writable (its
exposure score: test_systemd_exposure.py)."""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).resolve().parents[3] / "systemd" / "wipe-agent-forward.service"
DAEMON = Path(__file__).resolve().parents[3] / "systemd" / "wipe-agent.service"


def test_the_forwarder_has_the_network_and_nothing_else_the_daemon_has_everything_else_and_no_network() -> None:
    forwarder, daemon = UNIT.read_text(), DAEMON.read_text()
    for needed in ("CapabilityBoundingSet=\n", "PrivateDevices=yes", "DevicePolicy=closed", "ProtectSystem=strict",
                   "ReadWritePaths=/var/lib/wipe-agent\n", "fleet push --every", "NoNewPrivileges=yes"):
        assert needed in forwarder, needed
    assert "AF_INET" in forwarder and "IPAddressDeny=any" not in forwarder
    assert "IPAddressDeny=any" in daemon and "AF_INET" not in daemon  # the drive daemon stays off the network
