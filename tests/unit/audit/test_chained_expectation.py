"""M14: what verify-media --job regenerates its expectation from (the job's method details and canaries, kept
outside the chain) is bound to the chain by SHA-256; a registry row changed afterwards is refused by name."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import ConfigError
from agent.methods.canary import CanarySet
from agent.store.registry import Registry
from agent.verify.secondary import job_expectation
from tests.unit.core.test_secondary_expectation import DRIVE, STREAM, _job

CANARIES = CanarySet("seed-1", 4096, (0, 8192), ("a" * 64, "b" * 64))


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path).open()
    yield registry
    registry.close()


def _firmware_job(registry: Registry) -> str:
    job = registry.create_job(DRIVE, "purge-crypto", "alice", "explicit command by alice")
    registry.transition(job, "checking", "guard")
    registry.transition(job, "running", "method-start", method="ata.crypto", level="purge")
    registry.journal(job, "canaries-planted", CANARIES.to_json())
    registry.transition(job, "sanitised", "verified",
                        method_json=json.dumps({"expectation": {"kind": "erased", "reason": "crypto erase"}}))
    return job


def test_an_untouched_job_regenerates(registry: Registry) -> None:
    expectation, _ = job_expectation(registry, registry.job(_job(registry, {"expectation": STREAM.describe()})))
    assert expectation == STREAM
    _, canaries = job_expectation(registry, registry.job(_firmware_job(registry)))
    assert canaries == CANARIES
    assert registry.audit.verify().valid


def test_an_altered_expectation_row_is_refused(registry: Registry) -> None:
    job = _job(registry, {"expectation": STREAM.describe()})
    other = {"expectation": {**STREAM.describe(), "key": "11" * 32}}
    registry.db.execute("UPDATE jobs SET method_json=? WHERE id=?", (json.dumps(other), job))
    assert registry.audit.verify().valid  # the chain itself is untouched: only the comparison finds it
    with pytest.raises(ConfigError, match="recorded expectation is not the one in the audit chain"):
        job_expectation(registry, registry.job(job))


def test_altered_or_planted_canaries_are_refused(registry: Registry) -> None:
    job = _firmware_job(registry)
    moved = {**CANARIES.to_json(), "offsets": [4096, 8192]}
    registry.db.execute("UPDATE job_events SET data_json=? WHERE job_id=? AND event='canaries-planted'",
                        (json.dumps(moved, sort_keys=True), job))
    with pytest.raises(ConfigError, match="recorded canaries are not the ones in the audit chain"):
        job_expectation(registry, registry.job(job))
    # an indeterminate job given canaries the chain never saw
    job = _job(registry, {"expectation": {"kind": "indeterminate", "reason": "x"}})
    registry.db.execute("INSERT INTO job_events(job_id, at, state, event, data_json) VALUES(?,?,?,?,?)",
                        (job, "2026-12-02T00:00:00+00:00", "sanitised", "canaries-planted",
                         json.dumps(CANARIES.to_json(), sort_keys=True)))
    with pytest.raises(ConfigError, match="canaries are recorded that the audit chain never saw"):
        job_expectation(registry, registry.job(job))
