"""The composition root: every part from the configuration, every seam passed in (nothing patched)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.app import Application, transport_factory
from agent.config import Organisation, StationConfig
from agent.contracts import WorkerRequest
from agent.discovery.guard import Guard
from agent.discovery.identity import DriveIdentity
from agent.errors import ConfigError
from agent.jobs.settings import settings_from_config
from agent.transport.commands import Command, Completion, NvmeAdminCommand
from agent.transport.replay import ReplayMiss

IDENTITY = DriveIdentity(path="/dev/nvme9n1", name="nvme9n1", by_id=None, model="M", serial="S1", firmware=None,
                         vendor=None, size_bytes=1 << 20, logical_sector=512, physical_sector=512, rotational=False,
                         transport="nvme", media="ssd", removable=False, read_only=False, id_path=None)


class Answering:
    """A transport that answers every command with its opcode in the data."""

    def __init__(self) -> None:
        self.sent: list[Command] = []
        self.closed = False

    def execute(self, command: Command) -> Completion:
        self.sent.append(command)
        return Completion(ok=True, data=bytes([getattr(command, "opcode", 0)]) * 4, result=7)

    def close(self) -> None:
        self.closed = True


def _config(tmp_path: Path) -> StationConfig:
    return StationConfig(station_id="st-1", state_dir=tmp_path / "state",
                         organisation=Organisation(name="Org", location="Here", phone="1"))


@pytest.mark.parametrize("spec", ["", "REAL", "real:x", "record", "record:", "replay:", "tape:/x", "replay"])
def test_a_bad_transport_specification_is_one_clear_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="expected one of real, record:FILE, replay:FILE"):
        transport_factory(spec)


def test_a_replay_that_is_no_recording_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the recording"):
        transport_factory(f"replay:{tmp_path / 'missing.jsonl'}")
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_text("{not json\n")
    with pytest.raises(ConfigError, match="not JSON"):
        transport_factory(f"replay:{garbage}")
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"event": "created"}) + "\n")
    with pytest.raises(ConfigError, match="not a transport recording"):
        transport_factory(f"replay:{other}")
    with pytest.raises(ConfigError, match="no directory"):
        transport_factory(f"record:{tmp_path / 'no-such-dir' / 'r.jsonl'}")


def test_record_then_replay_answers_what_the_drive_said(tmp_path: Path) -> None:
    recording = tmp_path / "drive.jsonl"
    inner = Answering()
    recorder = transport_factory(f"record:{recording}", real=lambda identity: inner)(IDENTITY)
    assert recorder is not None
    identify = NvmeAdminCommand(opcode=0x06, cdw10=1, data_in_length=4)
    first = recorder.execute(identify)
    recorder.close()
    assert inner.sent == [identify] and inner.closed
    # the replay never reaches a device: it answers from the file, once per recorded exchange
    replay = transport_factory(f"replay:{recording}")(IDENTITY)
    assert replay is not None
    assert replay.execute(identify) == first
    with pytest.raises(ReplayMiss):
        replay.execute(identify)
    with pytest.raises(ReplayMiss):
        transport_factory(f"replay:{recording}")(IDENTITY).execute(  # type: ignore[union-attr]
            NvmeAdminCommand(opcode=0x06, cdw10=2, data_in_length=4))
    # a drive without pass-through (the real factory says None) is not recorded
    assert transport_factory(f"record:{recording}", real=lambda identity: None)(IDENTITY) is None


def test_from_config_builds_every_part_from_the_configuration_and_the_seams(tmp_path: Path) -> None:
    config = _config(tmp_path)
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    inner = Answering()
    slept: list[float] = []
    guard = Guard()
    app = Application.from_config(config, identify=lambda path: IDENTITY, transports=lambda identity: inner,
                                  clock=lambda: moment, sleep=slept.append, guard=guard)
    assert app.certificate == settings_from_config(config)
    assert app.certificate.organisation == "Org" and app.state_dir == tmp_path / "state"
    registry = app.open_store()
    try:
        assert registry.state_dir == config.state_dir and registry.clock() == moment
        runner = app.runner(registry)
        assert runner.guard is guard and runner.identify("/dev/x") is IDENTITY
        assert runner.transports(IDENTITY) is inner
        runner.sleep(0.5)
        assert slept == [0.5]
    finally:
        registry.close()
    assert Application.from_config(config).job_guard() is not Application.from_config(config).job_guard()


def test_the_signer_is_loaded_once_from_the_state_directory(tmp_path: Path) -> None:
    calls: list[Path] = []

    def loader(state_dir: Path) -> None:
        calls.append(state_dir)
        return None

    app = Application.from_config(_config(tmp_path), signer_loader=loader)
    assert app.signer() is None and app.signer() is None
    assert calls == [tmp_path / "state"]
    # without a key in the state directory there is no signer (certificates are then not issued)
    assert Application.from_config(_config(tmp_path)).signer() is None


def test_a_worker_application_is_what_the_daemon_asked_for(tmp_path: Path) -> None:
    config = _config(tmp_path)
    daemon = Application.from_config(config)
    request = WorkerRequest(state_dir=str(config.state_dir), device_path="/dev/loop0", profile="p", operator="o",
                            station_id=config.station_id, transport=daemon.transport,
                            certificate_settings=daemon.certificate.to_json())
    wire = WorkerRequest.from_json(json.loads(json.dumps(request.to_json())))
    worker = Application.for_worker(wire, identify=lambda path: IDENTITY)
    assert worker.certificate == daemon.certificate
    assert worker.state_dir == config.state_dir and worker.config.station_id == "st-1"
    assert worker.identify("/dev/loop0") is IDENTITY
    with pytest.raises(ConfigError, match="replay"):
        Application.for_worker(dataclasses.replace(wire, transport=f"replay:{tmp_path / 'none'}"))
