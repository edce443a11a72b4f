"""Fixtures for guest-side tests: they run INSIDE the QEMU guest, never on the host.

Why ``collect_ignore_glob`` keyed on ``WIPE_AGENT_IN_GUEST`` (set only by the guest's
``main.sh``) rather than ``norecursedirs``: ``norecursedirs`` lives in pyproject.toml, matches
directory names globally, and could not be switched off from inside the guest without another
config file. Keeping the rule next to the files it governs lets the same checkout serve both sides:
a normal host run (``pytest tests``) skips this directory silently, and the guest collects it.
Should someone name a guest test file explicitly on the host, the items are skipped with a reason
instead of touching the host's disks.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

IN_GUEST = os.environ.get("WIPE_AGENT_IN_GUEST") == "1"

if not IN_GUEST:
    collect_ignore_glob = ["*"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip guest-side tests that were collected on the host anyway (explicit path on the host)."""
    if IN_GUEST:
        return
    skip = pytest.mark.skip(reason="guest-side test: runs only inside the QEMU guest (WIPE_AGENT_IN_GUEST=1)")
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def guest_manifest() -> dict[str, Any]:
    """What the host configured: ``drives`` (name, kind, serial, size_bytes, ...), ``scsi_debug``."""
    path = os.environ.get("WIPE_AGENT_GUEST_MANIFEST")
    if not path:
        pytest.fail("WIPE_AGENT_GUEST_MANIFEST is not set: not started by tests/system/qemu.py?")
    manifest: dict[str, Any] = json.loads(Path(path).read_text())
    return manifest


@pytest.fixture(scope="session")
def results_directory() -> Path:
    """The writable share back to the host (``Guest.share`` there)."""
    return Path(os.environ.get("WIPE_AGENT_RESULTS", "/results"))
