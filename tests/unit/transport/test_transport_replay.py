"""Recording an emulated session and replaying it (fwupd-style emulation keyed by opcode + input)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import DriveRemoved
from agent.transport.commands import CommandFailed, PassThroughBlocked
from agent.transport.replay import RecordingTransport, ReplayMiss, ReplayTransport, command_key
from wipe_agent_testing.emulated import EmulatedAtaDrive, EmulatedNvmeDrive, Faults

from .transport_helpers import CRYPTO, identify, nvme_identify, nvme_sanitize, sanitize, sanitize_status


def test_record_then_replay_ata_session(tmp_path: Path) -> None:
    recording = tmp_path / "session.jsonl"
    drive = EmulatedAtaDrive(tmp_path / "a.img", size_bytes=64 * 1024)
    recorder = RecordingTransport(drive, recording)
    live = [recorder.execute(identify()), recorder.execute(sanitize(*CRYPTO))]
    polls = [recorder.execute(sanitize_status()) for _ in range(5)]
    with pytest.raises(CommandFailed):
        recorder.execute(sanitize(*CRYPTO[:1], lba=1))
    recorder.close()
    lines = [json.loads(line) for line in recording.read_text().splitlines()]
    assert len(lines) == 8 and lines[0]["kind"] == "ata" and lines[0]["opcode"] == 0xEC

    replay = ReplayTransport(recording)
    assert replay.execute(identify()) == live[0]
    assert replay.execute(sanitize(*CRYPTO)) == live[1]
    assert [replay.execute(sanitize_status()) for _ in range(5)] == polls  # progress in order
    with pytest.raises(CommandFailed) as caught:
        replay.execute(sanitize(*CRYPTO[:1], lba=1))
    assert caught.value.completion.ata is not None and caught.value.completion.ata.aborted
    with pytest.raises(ReplayMiss):
        replay.execute(sanitize_status())  # every recorded answer used
    assert replay.remaining == 0
    replay.close()


def test_replay_nvme_and_error_kinds(tmp_path: Path) -> None:
    recording = tmp_path / "nvme.jsonl"
    recorder = RecordingTransport(EmulatedNvmeDrive(tmp_path / "n.img", size_bytes=64 * 1024), recording)
    controller = recorder.execute(nvme_identify(0x01))
    recorder.execute(nvme_sanitize(0b100))
    with pytest.raises(CommandFailed):
        recorder.execute(nvme_sanitize(0b010))
    blocked = RecordingTransport(
        EmulatedAtaDrive(tmp_path / "b.img", size_bytes=64 * 1024, faults=Faults(passthrough_blocked=True)),
        recording,
    )
    with pytest.raises(PassThroughBlocked):
        blocked.execute(identify())
    lost = RecordingTransport(
        EmulatedAtaDrive(tmp_path / "c.img", size_bytes=64 * 1024, faults=Faults(power_loss_after_polls=0)),
        recording,
    )
    lost.execute(sanitize(*CRYPTO))
    with pytest.raises(DriveRemoved):
        lost.execute(sanitize_status())

    replay = ReplayTransport(recording)
    assert replay.execute(nvme_identify(0x01)).data == controller.data
    replay.execute(nvme_sanitize(0b100))
    with pytest.raises(CommandFailed) as caught:
        replay.execute(nvme_sanitize(0b010))
    assert caught.value.completion.nvme_status is not None and caught.value.completion.nvme_status.sc == 0x1D
    with pytest.raises(PassThroughBlocked, match="direct-attach"):
        replay.execute(identify())
    replay.execute(sanitize(*CRYPTO))
    with pytest.raises(DriveRemoved):
        replay.execute(sanitize_status())


def test_key_ignores_timeout_but_not_buffers() -> None:
    from dataclasses import replace

    base = sanitize(*CRYPTO)
    assert command_key(base) == command_key(replace(base, timeout_s=999))
    assert command_key(base) != command_key(replace(base, lba=1))


def test_bad_recording_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        ReplayTransport(path)
