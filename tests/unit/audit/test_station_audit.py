"""The station's own entries: the configuration in use, intake, the daemon's checkpoints at shutdown."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.app import Application
from agent.audit.station import record_configuration
from agent.config import StationConfig, load_config
from agent.daemon.intake import StationStore
from agent.daemon.station import Station
from agent.discovery.monitor import PipeDriveSource
from agent.errors import ConfigError
from agent.store.registry import Registry
from tests.unit.audit.conftest import station_registry
from tests.unit.certs.certs_test_kit import PkiWorld


def _config(tmp_path: Path, text: str) -> StationConfig:
    path = tmp_path / "station.toml"
    path.write_text(f'station_id = "station-01"\nstate_dir = "{tmp_path / "state"}"\n{text}')
    return load_config(path, check_profiles=False)


def test_audit_section_is_read_and_checked(tmp_path: Path) -> None:
    config = _config(tmp_path, "[audit]\ncheckpoint_every = 7\ncheckpoint_minutes = 2\n")
    assert (config.audit_checkpoint_every, config.audit_checkpoint_minutes) == (7, 2.0)
    assert (StationConfig("s").audit_checkpoint_every, StationConfig("s").audit_checkpoint_minutes) == (100, 15.0)
    for text, message in (("checkpoint_every = 0", "checkpoint_every must be a whole number"),
                          ("checkpoint_every = true", "checkpoint_every must be a whole number"),
                          ("checkpoint_minutes = 0.1", "checkpoint_minutes must be 0.5 to 1440"),
                          ("every = 3", "unknown key 'every'")):
        with pytest.raises(ConfigError, match=message):
            _config(tmp_path, f"[audit]\n{text}\n")


def test_a_configuration_is_chained_once_and_again_when_it_changes(tmp_path: Path) -> None:
    config = _config(tmp_path, "[audit]\ncheckpoint_every = 7\n")
    registry = Registry(config.state_dir).open()
    first = record_configuration(registry, config)
    assert first is not None and first.kind == "configuration"
    assert first.data["path"] == str(tmp_path / "station.toml") and len(first.data["sha256"]) == 64
    assert record_configuration(registry, config) is None  # unchanged: nothing new
    # another process appending follows the recorded interval
    assert Registry(config.state_dir).open().audit.checkpoint_every == 7
    changed = _config(tmp_path, "[audit]\ncheckpoint_every = 9\n")
    second = record_configuration(registry, changed)
    assert second is not None and second.data["previous_sha256"] == first.data["sha256"]
    assert second.data["sha256"] != first.data["sha256"] and registry.audit.checkpoint_every == 9


def test_intake_is_chained_with_its_claim_and_consumption(tmp_path: Path) -> None:
    Registry(tmp_path).open().close()
    store = StationStore(tmp_path)
    store.create()
    intake = store.add_intake("bay-1", "LAPTOP-7", "HS7", "Dell", "Latitude 5400", "alice")
    store.claim(intake.id, "SSD-7", "job1")
    store.consume(intake.id, "job1")
    entries = Registry(tmp_path).open().audit.entries()
    assert [(e.kind, e.subject) for e in entries] == [("intake", "LAPTOP-7"), ("intake-claimed", "job1"),
                                                      ("intake-consumed", "job1")]
    assert entries[0].data["make"] == "Dell" and entries[0].data["operator"] == "alice"


def test_the_daemon_records_its_configuration_and_signs_the_head_at_shutdown(
        tmp_path: Path, world: PkiWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIPE_AGENT_NO_FORKSERVER", "1")
    config = _config(tmp_path, "")
    station_registry(config.state_dir, world.station_state).close()
    station = Station(Application.from_config(config), PipeDriveSource())
    runner = threading.Thread(target=station.serve)
    runner.start()
    assert station.ready.wait(60)
    station.request_stop()
    runner.join(60)
    registry = Registry(config.state_dir).open()
    kinds = [entry.kind for entry in registry.audit.entries()]
    assert kinds == ["configuration"]
    latest = registry.audit.latest_checkpoint()
    assert latest is not None and (latest.seq, latest.station_id) == (1, "station-01")
    assert registry.audit.verify().anchored_to == 1
