"""The job record a secondary verification trusts: each kind of damage or mismatch is refused by name."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from agent.discovery.identity import DriveIdentity
from agent.errors import ConfigError
from agent.methods.expectations import FirmwareResult
from agent.store.registry import Registry
from agent.verify.expectation import AesCtrStream, Zero
from agent.verify.secondary import drive_problem, independent_check, job_expectation

DRIVE = DriveIdentity(
    path="/dev/sdz", name="sdz", by_id=None, model="Test Disk", serial="SN1", firmware="1.0", vendor=None,
    size_bytes=1 << 30, logical_sector=512, physical_sector=4096, rotational=True, transport="sata",
    media="hdd", removable=False, read_only=False, id_path=None,
)
STREAM = AesCtrStream(bytes(range(32)), bytes(range(16)))


def _job(registry: Registry, details: dict | None, state: str = "sanitised") -> str:
    job = registry.create_job(DRIVE, "clear-random", "alice", "explicit command by alice")
    registry.transition(job, "checking", "guard")
    registry.transition(job, "running", "method-start", method="overwrite.random", level="clear")
    registry.transition(job, state, "verified", method_json=json.dumps(details) if details is not None else None)
    return job


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path).open()
    yield registry
    registry.close()


def test_the_recorded_stream_is_regenerated_exactly(registry: Registry) -> None:
    job = registry.job(_job(registry, {"expectation": STREAM.describe()}))
    expectation, canaries = job_expectation(registry, job)
    assert expectation == STREAM and canaries is None
    line = independent_check(expectation, "/dev/sdz", 4096)
    assert line is not None and f"-K {bytes(range(32)).hex()} -iv {bytes(range(16)).hex()}" in line
    assert line.endswith("| head -c 4096 | cmp -n 4096 - /dev/sdz")


@pytest.mark.parametrize(("details", "state", "message"), [
    ({"expectation": {**STREAM.describe(), "key": "zz"}}, "sanitised", "recorded random expectation is damaged"),
    ({"expectation": {**STREAM.describe(), "nonce": "00"}}, "sanitised", "needs a 32-byte key and a 16-byte nonce"),
    ({"expectation": {"kind": "random", "nonce": "00" * 16}}, "sanitised", "lacks 'key'"),
    ({"expectation": {"kind": "ones"}}, "sanitised", "unknown expectation kind 'ones'"),
    ({"expectation": {"kind": "erased", "reason": "x"}}, "sanitised", "needs the job's canaries"),
    ({"passes": 1}, "sanitised", "recorded no expectation"),
    ({"expectation": STREAM.describe()}, "failed", "is failed, not sanitised"),
])
def test_damaged_or_unfinished_records_are_refused_by_name(registry: Registry, details: dict, state: str,
                                                           message: str) -> None:
    job = registry.job(_job(registry, details, state))
    with pytest.raises(ConfigError, match=message):
        job_expectation(registry, job)


def test_firmware_zero_result_keeps_its_reason_and_cmp_line(registry: Registry) -> None:
    recorded = {**Zero().describe(), "written_by": "device firmware", "reason": "SECURITY ERASE writes zeros"}
    expectation, _ = job_expectation(registry, registry.job(_job(registry, {"expectation": recorded})))
    assert isinstance(expectation, FirmwareResult) and expectation.reason == "SECURITY ERASE writes zeros"
    assert independent_check(expectation, "/dev/sdz", 512) == "cmp -n 512 /dev/zero /dev/sdz"


@pytest.mark.parametrize(("change", "named"), [
    ({"serial": "SN2"}, "serial 'SN2' ≠ job's 'SN1'"),
    ({"model": "Other Disk"}, "model 'Other Disk' ≠ job's 'Test Disk'"),
    ({"size_bytes": 1 << 29}, f"size {1 << 29} ≠ job's {1 << 30}"),
    ({"serial": "unknown"}, "no readable serial"),
])
def test_another_drive_is_named(registry: Registry, change: dict, named: str) -> None:
    job = registry.job(_job(registry, {"expectation": STREAM.describe()}))
    assert drive_problem(job, DRIVE) is None
    problem = drive_problem(job, dataclasses.replace(DRIVE, **change))
    assert problem is not None and named in problem
