"""hidden_areas.restore: HPA and DCO found, restored and recorded (max LBA before/after).

The emulated ATA drive has no HPA/DCO, so a thin test transport in front of it plays them: it
answers READ NATIVE MAX ADDRESS EXT / SET MAX ADDRESS EXT / DEVICE CONFIGURATION IDENTIFY /
RESTORE and patches IDENTIFY DEVICE words 60-61, 82, 83 and 100-103 (checksum recomputed).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import NotSupported
from agent.methods.capabilities import probe_capabilities
from agent.methods.hidden_areas import restore_hidden_areas
from agent.transport.commands import AtaCommand, Command, CommandFailed, Completion
from agent.transport.sense import AtaRegisters
from wipe_agent_testing.emulated import DriveModel, EmulatedAtaDrive

from .methods_kit import FileDevice, Recorder, build, context, identity

SIZE = 4 << 20
SECTORS = SIZE // 512


class HiddenAreaDrive:
    """An EmulatedAtaDrive with an HPA (and optionally a DCO) in front of its last sectors."""

    def __init__(self, inner: EmulatedAtaDrive, *, hpa: int = 1000, dco: int = 0, dco_restorable: bool = True,
                 amac: bool = False) -> None:
        self.inner = inner
        self.amac = amac
        self.dco_max = SECTORS - 1
        self.native_max = self.dco_max - dco
        self.max_lba = self.native_max - hpa
        self.dco = dco > 0
        self.dco_restorable = dco_restorable

    @staticmethod
    def _ok(lba: int = 0) -> Completion:
        return Completion(ok=True, ata=AtaRegisters(error=0, status=0x50, count=0, lba=lba, device=0x40))

    def execute(self, command: Command) -> Completion:
        if not isinstance(command, AtaCommand):
            return self.inner.execute(command)
        if command.command == 0x27 or (command.command == 0x78 and command.features == 0x0000 and self.amac):
            return self._ok(self.native_max)
        if command.command == 0x78 and command.features == 0x0001 and self.amac:
            self.max_lba = command.lba
            return self._ok()
        if command.command == 0x37:
            self.max_lba = command.lba
            return self._ok(command.lba)
        if command.command == 0xB1 and command.features == 0xC2:
            data = bytearray(512)
            data[6:14] = self.dco_max.to_bytes(8, "little")
            return Completion(ok=True, data=bytes(data))
        if command.command == 0xB1 and command.features == 0xC0:
            if not self.dco_restorable:
                failed = Completion(ok=False, ata=AtaRegisters(error=0x04, status=0x51, count=0, lba=0, device=0x40))
                raise CommandFailed("DCO RESTORE aborted", failed, opcode=0xB1, status=0x51)
            self.native_max = self.max_lba = self.dco_max
            return self._ok()
        completion = self.inner.execute(command)
        if command.command == 0xEC:
            words = [int.from_bytes(completion.data[i : i + 2], "little") for i in range(0, 512, 2)]
            sectors = self.max_lba + 1
            words[60], words[61] = sectors & 0xFFFF, sectors >> 16
            for index in range(4):
                words[100 + index] = (sectors >> (16 * index)) & 0xFFFF
            if self.amac:
                words[86] |= 1 << 15  # words 119-120 valid
                words[119] = 0x4000 | 1 << 8  # AMAC supported
            else:
                words[82] |= 1 << 10  # HPA supported
            if self.dco:
                words[83] |= 1 << 11  # DCO supported
            data = bytearray(b"".join(word.to_bytes(2, "little") for word in words))
            data[511] = (-sum(data[:511])) & 0xFF
            return Completion(ok=True, data=bytes(data), ata=completion.ata)
        return completion

    def close(self) -> None:
        self.inner.close()


def test_hpa_is_removed_and_max_lba_recorded(data_path: Path) -> None:
    drive = HiddenAreaDrive(EmulatedAtaDrive(data_path))
    capabilities = probe_capabilities(drive, "ata")
    assert capabilities.ata is not None and capabilities.ata.hpa_supported
    report = restore_hidden_areas(drive, capabilities)
    assert report.max_lba_before == SECTORS - 1001 and report.native_max_lba == SECTORS - 1
    assert report.max_lba_after == SECTORS - 1 and report.complete
    assert report.to_json()["kernel_size_stale"] is True and report.actions


def test_amac_accessible_max_is_restored(data_path: Path) -> None:
    drive = HiddenAreaDrive(EmulatedAtaDrive(data_path), hpa=64, amac=True)
    capabilities = probe_capabilities(drive, "ata")
    assert capabilities.ata is not None and capabilities.ata.amac_supported and not capabilities.ata.hpa_supported
    report = restore_hidden_areas(drive, capabilities)
    assert report.max_lba_before == SECTORS - 65 and report.max_lba_after == SECTORS - 1 and report.complete
    assert report.actions[0].startswith("AMAC")


def test_dco_is_restored_after_hpa(data_path: Path) -> None:
    drive = HiddenAreaDrive(EmulatedAtaDrive(data_path), hpa=100, dco=500)
    report = restore_hidden_areas(drive, probe_capabilities(drive, "ata"))
    assert report.dco_max_lba == SECTORS - 1 and report.max_lba_after == SECTORS - 1
    assert len(report.actions) == 2 and report.complete and not report.dco_hidden


def test_security_erase_refuses_when_a_dco_area_stays_hidden(data_path: Path) -> None:
    inner = EmulatedAtaDrive(data_path, model=DriveModel(rotation_rpm=7200))
    drive = HiddenAreaDrive(inner, hpa=0, dco=500, dco_restorable=False)
    tgt = probe_capabilities(drive, "ata")
    from agent.methods.base import Target

    target = Target(identity(data_path, transport="sata", media="hdd"), tgt, drive)
    method = build("ata.security_erase.enhanced")
    method.check(target)
    device = FileDevice(data_path)
    before = data_path.read_bytes()
    recorder = Recorder()
    try:
        with pytest.raises(NotSupported, match="Device Configuration Overlay hides"):
            method.run(context(target, device, recorder))
    finally:
        device.close()
    assert recorder.data("hidden-areas")["errors"] and data_path.read_bytes() == before  # nothing written
