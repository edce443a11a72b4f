"""A firmware Purge's evidence reaches the certificate record: canaries and the method's facts."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

from agent.jobs.certify import CertificateSettings, build_record
from agent.store.registry import Registry
from wipe_agent_testing.emulated import EmulatedNvmeDrive

from .methods_kit import FileDevice, Recorder, identity, run, target


def test_canary_proof_of_a_real_sanitize_is_on_the_record(tmp_path: Path) -> None:
    data_path = tmp_path / "nvme.img"
    data_path.write_bytes(os.urandom(4 << 20))
    device = FileDevice(data_path)
    try:
        outcome = run("nvme.sanitize.block", target(EmulatedNvmeDrive(data_path), data_path), device, Recorder())
    finally:
        device.close()
    registry = Registry(tmp_path / "state").open()
    drive = identity(data_path)
    job_id = registry.create_job(drive, "nist-purge", "PC Jones", "explicit command by PC Jones")
    decision = {"method": "nvme.sanitize.block", "taken": True, "level": "purge", "reason": "firmware block erase"}
    registry.transition(job_id, "running", "method-start", method="nvme.sanitize.block", level="purge",
                        decisions_json=json.dumps([decision]))
    registry.transition(job_id, "verifying", "method-done", method_json=json.dumps(outcome.details, default=str))
    registry.record_verification(job_id, drive, {"mode": "sampling", "passed": True, "coverage": 0.1,
                                                 "bytes_checked": 1 << 20, "seed": "ab", "subsections": 1000,
                                                 "samples": 2000})
    registry.transition(job_id, "sanitised", "verified", route="reuse")
    record = build_record(registry.job(job_id), "station-07", CertificateSettings(), datetime.now(UTC))
    canary = record.evidence.canary
    assert canary is not None and canary.result == "passed"
    assert canary.blocks_written == 64 and canary.blocks_found_after == 0
    assert "seed" in canary.details
    assert record.level == "Purge"
    assert record.evidence.capabilities  # the capability snapshot the policy judged
