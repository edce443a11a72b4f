"""``verify-media DEVICE --job ID`` on real loop drives: the job's own expectation, extents, the chain, openssl."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from agent.audit.log import AuditLog
from tests.conftest import LoopDevice, run_cli

pytestmark = pytest.mark.root

DIRTY_LBA = 20_001


def _wipe(device: LoopDevice, profile: str) -> str:
    result = run_cli("wipe", device.path, "--profile", profile, "--yes", "--json")  # nobody signed in: said so
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["job_id"])


def _verify(device: LoopDevice, job_id: str, *extra: str) -> tuple[int, dict]:
    result = run_cli("verify-media", device.path, "--job", job_id, "--json", "--operator", "auditor", *extra)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def _chain(state_dir: Path) -> list:
    db = sqlite3.connect(state_dir / "registry.sqlite3")
    try:
        return [entry for entry in AuditLog(db).entries() if entry.kind == "secondary-verification"]
    finally:
        db.close()


def test_clear_random_drive_reverified_and_dirty_sector_found(loop_factory: Callable[..., LoopDevice],
                                                              state_dir: Path) -> None:
    device = loop_factory(24 << 20)
    job_id = _wipe(device, "clear-random")

    code, clean = _verify(device, job_id, "--mode", "full")
    assert code == 0 and clean["passed"] is True and clean["secondary"] is True
    assert clean["expectation"]["kind"] == "random" and clean["bytes_checked"] == device.size
    assert clean["mismatches"]["mismatched_bytes"] == 0 and clean["mismatches"]["extents"] == []
    # the printed independent check, run as printed, agrees (exit 0: identical)
    assert clean["independent_check"].startswith("openssl enc -aes-256-ctr")
    assert subprocess.run(["bash", "-c", clean["independent_check"]], capture_output=True).returncode == 0

    # plant a dirty sector after the job
    device.write(DIRTY_LBA * 512, b"\xa5" * 512)
    code, dirty = _verify(device, job_id, "--mode", "full")
    assert code == 1 and dirty["passed"] is False
    assert dirty["mismatches"]["extents"] == [{"first_lba": DIRTY_LBA, "last_lba": DIRTY_LBA, "sectors": 1}]
    assert dirty["mismatches"]["mismatched_bytes"] == 512
    # the other tool finds the same byte: cmp numbers bytes from 1
    repeat = subprocess.run(["bash", "-c", dirty["independent_check"]], capture_output=True, text=True)
    assert repeat.returncode == 1 and f"byte {DIRTY_LBA * 512 + 1}," in repeat.stdout

    human = run_cli("verify-media", device.path, "--job", job_id, "--mode", "full")
    assert human.returncode == 1 and f"LBA {DIRTY_LBA}-{DIRTY_LBA} (1 sector)" in human.stdout

    # beside the job (its own verification unchanged) and in the audit chain, linked by row id
    shown = json.loads(run_cli("job", job_id, "--json", check=True).stdout)
    assert shown["verification"].get("secondary") is None  # the job's own verification is still its own
    assert [item["passed"] for item in shown["secondary_verifications"]] == [True, False, False]
    entries = _chain(state_dir)
    assert [entry.data["verification_id"] for entry in entries] == [
        item["verification_id"] for item in shown["secondary_verifications"]]
    assert entries[1].subject == job_id
    assert entries[1].data["by"] == "auditor (uid 0)"  # the name given, with the uid that gave it
    # the stream key is the job's, once: no re-check's stored row copies it, nor the openssl line (L2)
    key = shown["verification"]["expectation"]["key"]
    assert len(key) == 64 and key in dirty["independent_check"]
    stored = json.dumps(shown["secondary_verifications"])
    assert key not in stored and "independent_check" not in stored
    assert entries[1].data["mismatched_bytes"] == 512
    assert "key" not in json.dumps([entry.data for entry in entries])  # the stream key stays out of the chain
    assert json.loads(run_cli("audit", "verify", "--json").stdout)["valid"] is True


def test_sampling_zero_job_and_cmp_line(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    device = loop_factory(24 << 20)
    job_id = _wipe(device, "nist-clear-overwrite")
    code, first = _verify(device, job_id, "--seed", "fixed")
    assert code == 0 and first["mode"] == "sampling" and first["seed"] == "fixed"
    assert first["independent_check"] == f"cmp -n {device.size} /dev/zero {device.path}"
    assert subprocess.run(first["independent_check"].split(), capture_output=True).returncode == 0
    device.write(512, b"\x01" * 512)  # LBA 1: the first sectors of the medium are always in the sample
    code, dirty = _verify(device, job_id, "--seed", "fixed")
    assert code == 1 and dirty["mismatches"]["extents"] == [{"first_lba": 1, "last_lba": 1, "sectors": 1}]
    assert subprocess.run(first["independent_check"].split(), capture_output=True).returncode == 1


def test_another_drive_is_refused_by_name(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    wiped, other = loop_factory(16 << 20), loop_factory(16 << 20)
    job_id = _wipe(wiped, "clear-random")
    result = run_cli("verify-media", other.path, "--job", job_id)
    assert result.returncode == 2 and f"is not the drive of job {job_id}" in result.stderr
    assert "serial" in result.stderr and result.stderr.count("\n") == 1
    assert _chain(state_dir) == []  # nothing read, nothing recorded


def test_expect_random_without_job_points_at_job(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    device = loop_factory(8 << 20)
    result = run_cli("verify-media", device.path, "--expect", "random")
    assert result.returncode == 2 and "--job" in result.stderr and result.stderr.count("\n") == 1
    both = run_cli("verify-media", device.path, "--expect", "zero", "--job", "abcd")
    assert both.returncode == 2 and "exclude each other" in both.stderr
