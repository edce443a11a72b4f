"""`wipe-agent demo --fleet`: two real demo stations (loop drives, certificates, reuse) forwarded over mutual TLS
into a throw-away PostgreSQL fleet, which verifies every record and ends with the expected programme."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.root


def test_demo_fleet_end_to_end(postgres_server: object) -> None:
    result = run_cli("demo", "--fleet", "--json", "--size", "16", "--discard", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    assert outcome["ok"] is True and outcome["results_dir"] is None
    assert set(outcome["stations"]) == {"demo-station-a", "demo-station-b"}
    assert all(station["ok"] for station in outcome["stations"].values())
    fleet = outcome["fleet"]
    assert fleet["programme"]["states"] == {"allocated": 4, "destroyed": 2}
    assert fleet["programme"]["jobs_by_station"] == {"demo-station-a": 4, "demo-station-b": 4}
    for pushed in fleet["pushed"].values():
        assert pushed["refused"] == 0 and pushed["accepted"] == pushed["sent"] > 0
    assert fleet["exceptions"]["certificate_missing"] == 0
    # what each station forwarded: its 4 certificates, and its validation statement, destruction report and
    # manifest as documents of their own, all verified and kept by the fleet
    assert fleet["documents"] == {"demo-station-a": {"certificate": 4, "destruction": 1, "manifest": 1,
                                                     "validation": 1},
                                  "demo-station-b": {"certificate": 4, "destruction": 1, "manifest": 1,
                                                     "validation": 1}}
