"""`audit export --out` (H8) and the CLI edges (L5, C1): nothing existing is replaced without --force, never a
symlink, device or FIFO; an empty or unanchored export is refused; the station can be required."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from agent.store.registry import Registry
from certs import pki
from tests.conftest import run_cli


@pytest.fixture
def station(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A station-01 state directory with its key and 7 entries; the environment that selects it; the bundle."""
    pki.init_ca("Example Police", tmp_path / "ca")
    pki.issue_station(tmp_path / "ca", "station-01", tmp_path / "state")
    bundle = pki.make_bundle(tmp_path / "ca", tmp_path / "bundle.pem")
    registry = Registry(tmp_path / "state").open()
    for number in range(7):
        with registry.transaction() as tx:
            registry.record(tx, "intake", f"asset-{number}", {"n": number})
    registry.close()
    return {"WIPE_AGENT_STATE_DIR": str(tmp_path / "state")}, bundle


def _one_line_refusal(result: object, message: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    stderr = result.stderr.strip()  # type: ignore[attr-defined]
    assert message in stderr and len(stderr.splitlines()) == 1 and "Traceback" not in stderr, stderr


def test_existing_paths_are_never_replaced_without_force(station: tuple[dict[str, str], Path],
                                                         tmp_path: Path) -> None:
    env, _ = station
    existing = tmp_path / "station.toml"
    existing.write_text("precious\n")
    _one_line_refusal(run_cli("audit", "export", "--out", str(existing), env=env), "exists: not overwritten")
    assert existing.read_text() == "precious\n"

    link = tmp_path / "link.json"
    link.symlink_to(existing)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (link, fifo):
        for extra in ((), ("--force",)):
            _one_line_refusal(run_cli("audit", "export", "--out", str(path), *extra, env=env),
                              "exists and is not a regular file")
    assert link.is_symlink() and os.readlink(link) == str(existing) and existing.read_text() == "precious\n"
    assert fifo.is_fifo()

    _one_line_refusal(run_cli("audit", "export", "--out", str(tmp_path / "no" / "dir" / "x.json"), env=env),
                      "is not a directory")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left

    forced = run_cli("audit", "export", "--out", str(existing), "--force", env=env)
    assert forced.returncode == 0, forced.stderr
    assert json.loads(existing.read_text())["format"] == "wipe-agent-audit-export/1"


def test_device_nodes_are_refused(station: tuple[dict[str, str], Path]) -> None:
    env, _ = station
    before = os.stat("/dev/null")
    _one_line_refusal(run_cli("audit", "export", "--out", "/dev/null", "--force", env=env),
                      "exists and is not a regular file")
    after = os.stat("/dev/null")
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)


def test_an_empty_range_writes_nothing(station: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    env, _ = station
    for bounds in (("--from", "5", "--to", "2"), ("--to", "2020-01-01")):
        _one_line_refusal(run_cli("audit", "export", *bounds, "--out", str(tmp_path / "e.json"), env=env),
                          "an empty export proves nothing")
    assert not (tmp_path / "e.json").exists()


def test_export_signs_its_head_and_a_stripped_rewrite_fails(station: tuple[dict[str, str], Path],
                                                            tmp_path: Path) -> None:
    env, bundle = station
    # the checkpoints deleted in the registry: export still anchors everything with a fresh one
    with sqlite3.connect(tmp_path / "state" / "registry.sqlite3") as db:
        db.execute("DELETE FROM audit_checkpoints")
    out = tmp_path / "x.json"
    assert run_cli("audit", "export", "--out", str(out), env=env).returncode == 0
    document = json.loads(out.read_text())
    assert document["checkpoints"][-1]["seq"] == document["entries"][-1]["seq"]
    good = run_cli("audit", "verify", "--file", str(out), "--trust", str(bundle), "--station", "station-01")
    assert good.returncode == 0 and good.stdout.startswith("audit export intact"), good.stdout
    other = run_cli("audit", "verify", "--file", str(out), "--trust", str(bundle), "--station", "station-02")
    assert other.returncode == 1 and "not of station 'station-02'" in other.stdout

    document["checkpoints"] = []
    document["entries"][-1]["data"]["n"] = 99
    stripped = tmp_path / "stripped.json"
    stripped.write_text(json.dumps(document))
    broken = run_cli("audit", "verify", "--file", str(stripped), "--trust", str(bundle))
    assert broken.returncode == 1
    assert "not covered by any valid station checkpoint: unanchored, refused" in broken.stdout


def test_local_verify_uses_the_state_bundle(station: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    env, bundle = station
    assert run_cli("audit", "verify", env=env).returncode == 0
    shutil.copy(bundle, tmp_path / "state" / "trust-bundle.pem")
    other = tmp_path / "other"
    pki.init_ca("Evil", other / "ca")
    pki.issue_station(other / "ca", "station-01", other / "state")
    registry = Registry(tmp_path / "state").open()
    registry.audit.signer = lambda: pki.load_station_signer(other / "state")
    registry.audit.checkpoint()
    registry.close()
    result = run_cli("audit", "verify", env=env)
    assert result.returncode == 1 and "(untrusted)" in result.stdout, result.stdout


def test_a_person_certificate_is_a_chained_key_change(station: tuple[dict[str, str], Path], tmp_path: Path) -> None:
    env, _ = station
    result = run_cli("pki", "issue-person", "Ms Validator", "--role", "validator", "--ca", str(tmp_path / "ca"),
                     "--out", str(tmp_path / "person"), env=env)
    assert result.returncode == 0, result.stderr
    registry = Registry(tmp_path / "state").open()
    try:
        last = registry.audit.entries()[-1]
    finally:
        registry.close()
    assert (last.kind, last.subject, last.data["role"]) == ("key-person-issued", "Ms Validator", "validator")


def test_the_first_station_key_is_the_first_entry_of_a_new_station(tmp_path: Path) -> None:
    pki.init_ca("Example Police", tmp_path / "ca")
    result = run_cli("pki", "issue-station", "--ca", str(tmp_path / "ca"), "--station-id", "station-09",
                     "--state-dir", str(tmp_path / "new-state"))
    assert result.returncode == 0 and "not recorded" not in result.stderr, result.stderr
    registry = Registry(tmp_path / "new-state").open()
    try:
        first = registry.audit.entries()[0]
        assert registry.audit.verify().valid
    finally:
        registry.close()
    assert (first.seq, first.kind, first.subject) == (1, "key-station-issued", "station-09")
