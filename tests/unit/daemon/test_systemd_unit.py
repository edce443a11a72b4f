"""The service unit's hardening: ``systemd-analyze security --offline=true`` must rate it ≤ 3.0."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[3] / "systemd" / "wipe-agent.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze not installed (Debian package 'systemd'); CI installs it")
def test_exposure_score_at_most_3() -> None:
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", "--no-pager", str(UNIT)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for wipe-agent\.service: (\d+\.\d+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 3.0, result.stdout


def test_unit_keeps_what_the_station_needs() -> None:
    text = UNIT.read_text()
    for needed in ("Type=notify", "WatchdogSec=", "TimeoutStopSec=10", "StateDirectory=wipe-agent",
                   "RuntimeDirectory=wipe-agent", "AF_NETLINK", "CAP_SYS_RAWIO", "char-nvme rw", "block-sd rw",
                   "block-blkext rw"):
        assert needed in text, needed
    assert "PrivateNetwork=yes" not in text  # kernel uevents reach the host network namespace only
    assert "SecureBits=noroot" not in text  # job workers exec python: they must keep the bounded caps
