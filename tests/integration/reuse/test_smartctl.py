"""The real smartctl (smartmontools), when installed: its JSON goes through the same parser."""

from __future__ import annotations

import shutil

import pytest

from agent.reuse.errors import ReuseInputError
from agent.reuse.health import parse_smartctl, run_smartctl

needs_smartctl = pytest.mark.skipif(shutil.which("smartctl") is None,
                                    reason="smartctl not installed (apt install smartmontools)")


@needs_smartctl
def test_a_device_without_smart_gives_an_unavailable_reading() -> None:
    data, source = run_smartctl("/dev/null")
    assert source.startswith("smartctl ") and source.endswith("-j -a /dev/null")
    reading = parse_smartctl(data, source)
    assert reading.status == "unavailable" and "exit status" in reading.note


def test_missing_smartctl_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ReuseInputError, match="install smartmontools"):
        run_smartctl("/dev/sda")
