"""Wipe real loop devices through the real CLI, then read back independently."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.conftest import LoopDevice, run_cli

pytestmark = pytest.mark.root


def _wipe(device: LoopDevice, profile: str, *extra: str) -> dict:
    # the job names the person signed in for this uid; --operator checks that it is the one meant
    run_cli("operator", "sign-in", "tester", "--title", "Test operator", check=True)
    result = run_cli("wipe", device.path, "--profile", profile, "--yes", "--json", "--operator", "tester", *extra)
    data = json.loads(result.stdout)
    data["_exit"] = result.returncode
    return data


def test_zero_wipe_then_independent_readback(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    # an odd size: the tail that is not a multiple of the 8 MiB chunk must be written too
    device = loop_factory((37 << 20) + 3 * 512)
    assert device.read().count(0) < device.size  # random before
    data = _wipe(device, "nist-clear-overwrite", "--asset", "LAPTOP-0042")
    assert data["_exit"] == 0, data
    assert data["outcome"] == "sanitised" and data["level"] == "clear" and data["method"] == "overwrite.zero"
    assert data["asset_tag"] == "LAPTOP-0042" and data["operator"] == "tester"
    verification = data["verification"]
    assert verification["mode"] == "sampling" and verification["passed"] is True
    assert verification["coverage"] >= 0.10 and len(verification["seed"]) == 32
    assert data["bytes_written"] == device.size
    # independent: buffered reads through the device and the backing file itself
    assert device.read() == bytes(device.size)
    assert device.backing.read_bytes() == bytes(device.size)


def test_random_wipe_matches_regenerated_stream(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    device = loop_factory(24 << 20, fill=b"\x00")
    data = _wipe(device, "clear-random")
    assert data["_exit"] == 0 and data["outcome"] == "sanitised"
    recorded = data["method_details"]["expectation"]
    assert recorded["cipher"] == "AES-256-CTR"
    keystream = Cipher(algorithms.AES(bytes.fromhex(recorded["key"])),
                       modes.CTR(bytes.fromhex(recorded["nonce"]))).encryptor().update(bytes(device.size))
    assert device.read() == keystream


def test_full_verification_profile_reads_everything(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    device = loop_factory(16 << 20)
    data = _wipe(device, "nist-clear-overwrite-full")
    assert data["_exit"] == 0
    assert data["verification"]["mode"] == "full" and data["verification"]["bytes_checked"] == device.size


def test_pattern_profile_and_verify_media(loop_factory: Callable[..., LoopDevice], state_dir: Path,
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "site-pattern.toml").write_text(
        'schema = 1\nsummary = "pattern"\n[[steps]]\nmethod = "overwrite.pattern"\npattern = "55aa33"\n'
        '[verify]\nmode = "full"\n'
    )
    monkeypatch.setenv("WIPE_AGENT_PROFILE_DIR", str(profiles))
    device = loop_factory(9 << 20)
    data = _wipe(device, "site-pattern")
    assert data["_exit"] == 0, data
    assert device.read() == (b"\x55\xaa\x33" * (device.size // 3 + 1))[: device.size]
    again = run_cli("verify-media", device.path, "--expect", "pattern:55aa33", "--mode", "full", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["passed"] is True
    wrong = run_cli("verify-media", device.path, "--expect", "zero", "--mode", "sampling", "--json")
    assert wrong.returncode == 1 and json.loads(wrong.stdout)["passed"] is False


def test_jobs_and_job_commands(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    device = loop_factory(8 << 20)
    job_id = _wipe(device, "nist-clear-overwrite")["job_id"]
    listed = json.loads(run_cli("jobs", "--json", check=True).stdout)["jobs"]
    assert [job["job_id"] for job in listed] == [job_id]
    detail = json.loads(run_cli("job", job_id[:8], "--json", "--events", check=True).stdout)
    states = [event["state"] for event in detail["events"]]
    assert states == ["created", "checking", "running", "running", "verifying", "sanitised"]
    assert "sanitised" in run_cli("job", job_id, check=True).stdout.lower()


def test_wipe_without_yes_and_no_tty_refuses(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    device = loop_factory(8 << 20)
    before = device.read()
    result = run_cli("wipe", device.path, "--profile", "nist-clear-overwrite", input_text="y\n")
    assert result.returncode == 2 and "confirmation" in result.stderr
    assert device.read() == before


def test_malformed_profile_exits_2_and_touches_nothing(loop_factory: Callable[..., LoopDevice], state_dir: Path,
                                                       tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "broken.toml").write_text('schema = 1\n[[steps]]\nmethod = "overwrite.zero"\npasses = 3\n')
    device = loop_factory(8 << 20)
    before = device.read()
    result = run_cli("wipe", device.path, "--profile", "broken", "--yes", "--json",
                     env={"WIPE_AGENT_PROFILE_DIR": str(profiles)})
    assert result.returncode == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "bad_profile" and "broken.toml:4" in error["message"]
    assert device.read() == before


def test_purge_profile_refuses_loop_without_touching_it(loop_factory: Callable[..., LoopDevice],
                                                        state_dir: Path) -> None:
    device = loop_factory(8 << 20)
    before = device.read()
    data = _wipe(device, "nist-purge")
    assert data["_exit"] == 2 and data["outcome"] == "refused"
    assert data["error"]["code"] == "not_supported"
    assert device.read() == before
