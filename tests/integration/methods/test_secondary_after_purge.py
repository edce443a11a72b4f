"""``verify-media --job`` after a firmware purge: the erased state re-read, the canaries proven absent again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.verify.secondary import verify_job
from tests.conftest import LoopDevice
from tests.integration.methods.purge_kit import identify_as, make_runner, purge
from wipe_agent_testing.emulated import EmulatedNvmeDrive

pytestmark = pytest.mark.root
SIZE = 64 << 20


def test_purged_drive_reverified_with_its_canaries(loop_factory: Callable[..., LoopDevice], state_dir: Path) -> None:
    loop = loop_factory(SIZE)
    runner, registry = make_runner(state_dir, "nvme", "ssd", EmulatedNvmeDrive(loop.backing))
    job = purge(runner, loop.path)
    assert job.state == "sanitised" and job.method == "nvme.sanitize.block"
    # the identity seam the runner used: the loop presented as the emulated drive
    identity = identify_as("nvme", "ssd")(loop.path)

    clean = verify_job(registry, job, identity, "full", seed=None, by="auditor")
    assert clean["passed"] is True and clean["expectation"]["kind"] == "erased"
    assert clean["canaries"]["checked"] == 64 and clean["canaries"]["survivors"] == []
    assert clean["independent_check"] is None  # no standard tool regenerates "00h or FFh anywhere"

    loop.write(777 * 512, b"\x42" * 1024)  # two sectors of data appear after the purge
    dirty = verify_job(registry, job, identity, "full", seed=None, by="auditor")
    assert dirty["passed"] is False
    assert dirty["mismatches"]["extents"] == [{"first_lba": 777, "last_lba": 778, "sectors": 2}]
    assert [item["passed"] for item in registry.job(job.id).secondary_verifications] == [True, False]

    with pytest.raises(ConfigError, match="is not the drive of job"):
        verify_job(registry, job, identify_as("nvme", "ssd", serial="EMU-OTHER")(loop.path), "full", seed=None,
                   by="auditor")
    registry.close()
