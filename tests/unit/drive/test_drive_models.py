"""The drive models: inspect and the job probe send the same command bytes for the same question."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.drive.device import AtaDrive, NvmeDrive, ScsiDrive, drive_for
from agent.drive.probe import probe_transport
from agent.methods.capabilities import probe_capabilities
from agent.transport.commands import Command, Completion, PassThroughBlocked, Transport
from wipe_agent_testing.emulated import DriveModel, EmulatedAtaDrive, EmulatedNvmeDrive, EmulatedScsiDrive

SIZE = 8 * 1024 * 1024


class Recording:
    """A transport that remembers every command it passes on."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.sent: list[Command] = []

    def execute(self, command: Command) -> Completion:
        self.sent.append(command)
        return self.inner.execute(command)

    def close(self) -> None:
        self.inner.close()


class Refusing:
    """A USB bridge that refuses every pass-through command."""

    def execute(self, command: Command) -> Completion:
        raise PassThroughBlocked("bridge refused ATA PASS-THROUGH")

    def close(self) -> None:
        pass


def _drives(tmp_path: Path) -> dict[str, Transport]:
    return {
        "ata": EmulatedAtaDrive(tmp_path / "ata.img", size_bytes=SIZE, model=DriveModel()),
        "nvme": EmulatedNvmeDrive(tmp_path / "nvme.img", size_bytes=SIZE, model=DriveModel()),
        "scsi": EmulatedScsiDrive(tmp_path / "scsi.img", size_bytes=SIZE, model=DriveModel()),
    }


@pytest.mark.parametrize("interface", ["ata", "nvme", "scsi"])
def test_inspect_and_jobs_ask_shared_questions_with_the_same_bytes(tmp_path: Path, interface: str) -> None:
    inspect = Recording(_drives(tmp_path)[interface])
    probe_transport(inspect, interface)
    jobs = Recording(inspect.inner)
    probe_capabilities(jobs, interface)
    shared = [command for command in inspect.sent if command in jobs.sent]
    # ATA: IDENTIFY DEVICE; NVMe: Identify Controller and Namespace 1; SCSI: VPD B1h and RSOC — each
    # built once by the drive model, so equal frozen commands, not two look-alikes
    assert len(shared) == {"ata": 1, "nvme": 2, "scsi": 2}[interface]
    if interface in ("ata", "nvme"):
        assert inspect.sent[0] == jobs.sent[0]  # identify data comes first in both


@pytest.mark.parametrize(("interface", "model"), [("ata", AtaDrive), ("nvme", NvmeDrive), ("scsi", ScsiDrive)])
def test_drive_for_picks_the_model_of_the_command_set(interface: str, model: type) -> None:
    drive = drive_for(Refusing(), interface)
    assert isinstance(drive, model) and drive.interface == interface


def test_drive_for_refuses_an_unknown_command_set() -> None:
    with pytest.raises(ValueError, match="unknown interface 'sas'"):
        drive_for(Refusing(), "sas")


@pytest.mark.parametrize("interface", ["ata", "nvme", "scsi"])
def test_a_refusing_bridge_is_recorded_by_the_job_probe_and_raised_by_inspect(interface: str) -> None:
    capabilities = probe_capabilities(Refusing(), interface, usb=True)
    assert capabilities.usb and (capabilities.blocked or "").startswith("bridge refused ATA PASS-THROUGH")
    with pytest.raises(PassThroughBlocked):
        probe_transport(Refusing(), interface)


def test_the_models_capabilities_are_the_job_probes(tmp_path: Path) -> None:
    drives = _drives(tmp_path)
    assert AtaDrive(drives["ata"]).capabilities() == probe_capabilities(drives["ata"], "ata")
    nvme = NvmeDrive(drives["nvme"]).capabilities()
    assert nvme.to_json() == probe_capabilities(drives["nvme"], "nvme").to_json()
    assert nvme.nvme is not None and nvme.sanitize.state == "idle"
    assert ScsiDrive(drives["scsi"]).sanitize_state().state == "idle"
