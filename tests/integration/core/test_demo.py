"""The demo end to end, and its clean-up when interrupted."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from certs.ltv import later_revision_objects
from tests.conftest import WIPE_AGENT, run_cli

pytestmark = pytest.mark.root


def _demo_loops() -> list[str]:
    output = subprocess.run(["losetup", "-a"], capture_output=True, text=True, check=True).stdout
    return [line for line in output.splitlines() if "wipe-agent-demo-" in line]


def _demo_dirs() -> list[Path]:
    return list(Path("/dev/shm").glob("wipe-agent-demo-*")) + list(Path("/tmp").glob("wipe-agent-demo-*"))


def test_demo_keeps_verifiable_results_by_default() -> None:
    result = run_cli("demo", "--json", "--size", "40", timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    results = Path(data["results_dir"])
    try:
        certificates = sorted((results / "state" / "certificates").glob("*.pdf"))
        assert len(certificates) == 4
        verified = run_cli("verify", str(results / "state" / "certificates"), "--trust", data["trust_bundle"],
                           "--json")
        assert verified.returncode == 0, verified.stdout
        for certificate in certificates:  # B-LTA: DSS then a document timestamp after the signed revision
            revisions = later_revision_objects(certificate.read_bytes())
            assert [("/DSS" in item.objects, "/DocTimeStamp" in item.objects) for item in revisions] == [
                (True, False), (False, True)], revisions
        jobs = json.loads(run_cli("--state-dir", data["state_dir"], "jobs", "--json", check=True).stdout)["jobs"]
        assert sorted(job["certificate"] for job in jobs) == [str(path) for path in certificates]
    finally:
        shutil.rmtree(results, ignore_errors=True)


def test_demo_runs_and_cleans_up() -> None:
    before = set(_demo_dirs())
    result = run_cli("demo", "--json", "--size", "48", "--discard", timeout=300)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True and len(data["drives"]) == 4
    for row in data["drives"]:
        assert row["job"]["outcome"] == "sanitised"
        assert row["proof"]["markers_found"] == 0 and row["proof"]["markers_planted"] >= 3
        assert row["proof"]["cmp_equals_zero"] is True
        check = row["certificate_check"]
        assert check["valid"] is True and check["demo"] is True and check["kind"] == "certificate"
        assert check["timestamped"] is True  # by the demo's own TSA
        assert check["certificate_id"] and check["record_sha256"]
    reuse = data["reuse"]
    routes = {asset: decision["route"] for asset, decision in reuse["decisions"].items()}
    assert routes == {"DEMO-LAPTOP-A": "reuse:demo-schools", "DEMO-LAPTOP-B": "reuse:demo-schools",
                      "DEMO-LAPTOP-C": "destroy"}
    assert reuse["manifest"]["valid"] is True and reuse["manifest"]["assets"] == ["DEMO-LAPTOP-A", "DEMO-LAPTOP-B"]
    assert all(check["ok"] for check in reuse["manifest"]["certificates_checked"])
    assert reuse["destruction"]["valid"] is True and reuse["audit"]["valid"] is True
    assert _demo_loops() == []
    assert set(_demo_dirs()) == before


def test_demo_interrupted_still_cleans_up() -> None:
    before = set(_demo_dirs())
    process = subprocess.Popen([*WIPE_AGENT, "demo", "--size", "512"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ})
    deadline = time.monotonic() + 60
    while not _demo_loops():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=60)
    assert process.returncode != 0
    assert _demo_loops() == []
    assert set(_demo_dirs()) == before
