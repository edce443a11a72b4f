"""A day of station activity → `audit export` → checked on "another machine" by both verifiers.

The station side runs the real command line (pki, audit export) on a real registry; the registry
API stands in for the jobs, intake and decisions the daemon and the reuse commands would write.
The verifier side gets only the export and the trust bundle, copied to a directory of their own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from agent.audit.station import record_configuration
from agent.config import StationConfig
from agent.daemon.intake import StationStore
from agent.discovery.identity import DriveIdentity
from agent.reuse.store import ReuseStore
from agent.store.registry import Registry
from tests.conftest import run_cli


def _drive(serial: str) -> DriveIdentity:
    return DriveIdentity(
        path="/dev/sdz", name="sdz", by_id=None, model="Day Disk", serial=serial, firmware="2.1", vendor=None,
        size_bytes=1 << 30, logical_sector=512, physical_sector=4096, rotational=False, transport="sata",
        media="ssd", removable=False, read_only=False, id_path=None)


def _a_day(state: Path, config_file: Path) -> None:
    registry = Registry(state).open()
    record_configuration(registry, StationConfig(station_id="station-day", state_dir=state,
                                                 source=str(config_file), audit_checkpoint_every=10))
    intake = StationStore(state)
    intake.create()
    for number in range(8):
        taken = intake.add_intake("bay-1", f"LAPTOP-{number}", f"HS{number}", "Dell", "Latitude", "alice")
        job = registry.create_job(_drive(f"SSD-{number}"), "nist-purge", "alice", "alice",
                                  asset_tag=f"LAPTOP-{number}", durable=False)
        registry.transition(job, "checking", "checks", durable=False)
        if number == 3:
            registry.transition(job, "refused", "mounted", reason="a partition is mounted")
            continue
        registry.transition(job, "running", "started", method="clear-zero", level="clear")
        intake.claim(taken.id, f"SSD-{number}", job)
        registry.transition(job, "verifying", "written")
        registry.transition(job, "sanitised", "verified", route="reuse")
        intake.consume(taken.id, job)
    store = ReuseStore(registry)
    store.attest("LAPTOP-0", "mdm-removed", "Sgt Example")
    store.record_decision("LAPTOP-0", "reuse", {"eligible": True})
    registry.close()


def test_a_day_exported_and_verified_elsewhere_and_tampering_named(tmp_path: Path) -> None:
    state, ca = tmp_path / "state", tmp_path / "ca"
    env = {"WIPE_AGENT_STATE_DIR": str(state)}
    config_file = tmp_path / "station.toml"
    config_file.write_text('station_id = "station-day"\n[audit]\ncheckpoint_every = 10\n')
    run_cli("pki", "init-ca", "--org", "Day Constabulary", "--out", str(ca), check=True, env=env)
    Registry(state).open().close()  # the station exists: key changes from now on are chained
    run_cli("pki", "issue-station", "--ca", str(ca), "--station-id", "station-day", "--state-dir", str(state),
            check=True, env=env)
    run_cli("pki", "bundle", "--ca", str(ca), "--out", str(tmp_path / "bundle.pem"), check=True, env=env)
    run_cli("pki", "install-crl", "--from", str(tmp_path / "bundle.pem"), "--state-dir", str(state), check=True,
            env=env)
    _a_day(state, config_file)

    local = run_cli("audit", "verify", "--json", env=env)
    assert local.returncode == 0, local.stdout + local.stderr
    summary = json.loads(local.stdout)
    assert summary["valid"] and summary["checkpoints"] >= 4

    out = tmp_path / "export.json"
    result = run_cli("audit", "export", "--out", str(out), "--json", env=env)
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text())
    kinds = [entry["kind"] for entry in document["entries"]]
    assert kinds[:2] == ["key-station-issued", "crl-installed"]
    for kind in ("configuration", "intake", "intake-claimed", "intake-consumed", "job-created", "job-checking",
                 "job-refused", "job-running", "job-verifying", "job-sanitised", "attestation",
                 "eligibility-decision"):
        assert kind in kinds, kind
    assert kinds.count("job-sanitised") == 7 and kinds.count("intake") == 8

    # "another machine": only the export and the bundle, in a directory of their own, no state directory
    elsewhere = tmp_path / "partner"
    elsewhere.mkdir()
    shutil.copy(out, elsewhere / "export.json")
    shutil.copy(tmp_path / "bundle.pem", elsewhere / "bundle.pem")
    partner = subprocess.run([sys.executable, "-m", "certs", "audit-verify", "--file", "export.json", "--trust",
                              "bundle.pem"], capture_output=True, text=True, cwd=elsewhere,
                             env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd())}, timeout=120)
    assert partner.returncode == 0, partner.stdout + partner.stderr
    assert partner.stdout.startswith(f"audit export intact: {len(kinds)} entries (seq 1-{len(kinds)}) of station "
                                     "station-day")
    agent_side = run_cli("audit", "verify", "--file", str(elsewhere / "export.json"), "--trust",
                         str(elsewhere / "bundle.pem"), env={"WIPE_AGENT_STATE_DIR": str(tmp_path / "none")})
    assert agent_side.returncode == 0 and agent_side.stdout == partner.stdout

    # an edited entry: exit 1, named
    edited = json.loads(out.read_text())
    edited["entries"][20]["data"]["operator"] = "mallory"
    (elsewhere / "edited.json").write_text(json.dumps(edited))
    broken = run_cli("audit", "verify", "--file", str(elsewhere / "edited.json"), "--trust",
                     str(elsewhere / "bundle.pem"))
    assert broken.returncode == 1
    assert "entry 21: hash does not match its content (entry modified)" in broken.stdout

    # bad files: one line, exit 2
    (elsewhere / "junk.json").write_text("{not json")
    for arguments, message in (
        (["--file", str(elsewhere / "junk.json"), "--trust", str(elsewhere / "bundle.pem")], "not JSON"),
        (["--file", str(elsewhere / "missing.json"), "--trust", str(elsewhere / "bundle.pem")], "missing.json"),
        (["--file", str(elsewhere / "export.json")], "--trust BUNDLE is required"),
        (["--file", str(elsewhere / "export.json"), "--trust", str(elsewhere / "junk.json")], "trust bundle"),
    ):
        bad = run_cli("audit", "verify", *arguments)
        assert bad.returncode == 2, (arguments, bad.stdout, bad.stderr)
        assert message in bad.stderr and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr

    # a partial export by date and sequence, and a bad bound
    part = run_cli("audit", "export", "--from", "5", "--to", "25", "--out", str(tmp_path / "part.json"), env=env)
    assert part.returncode == 0, part.stderr
    # extended to the checkpoint that signs seq 25 (every 10 entries: seq 30), so that its end is anchored
    assert [e["seq"] for e in json.loads((tmp_path / "part.json").read_text())["entries"]] == list(range(5, 31))
    assert "extended from seq 25" in part.stdout
    assert run_cli("audit", "verify", "--file", str(tmp_path / "part.json"), "--trust",
                   str(tmp_path / "bundle.pem")).returncode == 0
    bad_bound = run_cli("audit", "export", "--from", "yesterday", "--out", str(tmp_path / "x.json"), env=env)
    assert bad_bound.returncode == 2 and "neither a sequence number nor an ISO date" in bad_bound.stderr
    assert not (tmp_path / "x.json").exists()
