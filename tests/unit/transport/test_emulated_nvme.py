"""The emulated NVMe controller: Identify layouts, Sanitize + log 81h, Format NVM, blocking states."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import DriveRemoved
from agent.transport.commands import CommandFailed, NvmeAdminCommand, PassThroughBlocked
from wipe_agent_testing.emulated import DriveModel, EmulatedNvmeDrive, Faults, ManualClock

from .transport_helpers import (
    identify,
    nvme_format,
    nvme_identify,
    nvme_read,
    nvme_sanitize,
    nvme_sanitize_log,
    nvme_write,
)

SIZE = 256 * 1024
CANARY = b"NVME-CANARY-" * 40


def make(
    tmp_path: Path, model: DriveModel | None = None, clock: ManualClock | None = None, **faults: object
) -> EmulatedNvmeDrive:
    path = tmp_path / "nvme.img"
    fresh = not path.exists()
    drive = EmulatedNvmeDrive(path, size_bytes=SIZE, model=model, clock=clock, faults=Faults(**faults))  # type: ignore[arg-type]
    if fresh:
        path.write_bytes(CANARY.ljust(SIZE, b"\x01"))
    return drive


def log(drive: EmulatedNvmeDrive) -> tuple[int, int, int]:
    data = drive.execute(nvme_sanitize_log()).data
    sprog = int.from_bytes(data[0:2], "little")
    sstat = int.from_bytes(data[2:4], "little")
    return sprog, sstat, int.from_bytes(data[4:8], "little")


def wait(drive: EmulatedNvmeDrive, limit: int = 50) -> int:
    for _ in range(limit):
        _sprog, sstat, _cdw10 = log(drive)
        if sstat & 0x7 != 0b010:
            return sstat
    raise AssertionError("sanitize never finished")


def status_of(error: pytest.ExceptionInfo[CommandFailed]) -> tuple[int, int]:
    status = error.value.completion.nvme_status
    assert status is not None
    return status.sct, status.sc


def test_identify_controller_layout(tmp_path: Path) -> None:
    model = DriveModel(serial="S123", model="Emu NVMe", nvme_no_deallocate_inhibited=True, sanitize_overwrite=False)
    data = make(tmp_path, model=model).execute(nvme_identify(0x01)).data
    assert len(data) == 4096
    assert data[4:24].rstrip() == b"S123" and data[24:64].rstrip() == b"Emu NVMe"
    assert int.from_bytes(data[256:258], "little") & 0x2  # OACS Format NVM
    sanicap = int.from_bytes(data[328:332], "little")
    assert sanicap & 0x7 == 0b011 and sanicap & (1 << 29)  # CES, BES, no OWS; NDI
    assert data[524] == 0x07  # FNA: all namespaces, secure erase all, crypto erase
    assert int.from_bytes(data[516:520], "little") == 1  # NN


def test_identify_namespace_layout(tmp_path: Path) -> None:
    drive = make(tmp_path)
    data = drive.execute(nvme_identify(0x00, nsid=1)).data
    assert int.from_bytes(data[0:8], "little") == SIZE // 512  # NSZE
    assert data[25] == 1 and data[26] & 0xF == 0  # NLBAF (0-based), FLBAS
    assert (int.from_bytes(data[128:132], "little") >> 16) & 0xFF == 9
    assert (int.from_bytes(data[132:136], "little") >> 16) & 0xFF == 12
    with pytest.raises(CommandFailed) as caught:
        drive.execute(nvme_identify(0x00, nsid=7))
    assert status_of(caught) == (0, 0x0B)
    with pytest.raises(CommandFailed):
        drive.execute(nvme_identify(0x99))


def test_sanitize_crypto_with_progress_and_deallocation(tmp_path: Path) -> None:
    clock = ManualClock()
    drive = make(tmp_path, clock=clock)
    assert log(drive) == (0xFFFF, 0, 0)  # never sanitized
    drive.execute(nvme_sanitize(0b100))
    clock.advance(2.0)
    sprog, sstat, cdw10 = log(drive)
    assert sprog == 0x8000 and sstat & 0x7 == 0b010 and cdw10 & 0x7 == 0b100
    for blocked in (nvme_sanitize(0b010), nvme_format(), nvme_sanitize(0b001)):
        with pytest.raises(CommandFailed) as caught:
            drive.execute(blocked)
        assert status_of(caught) == (0, 0x1D)  # Sanitize In Progress
    with pytest.raises(CommandFailed) as io_caught:
        drive.execute(nvme_read(0, 1))
    assert status_of(io_caught) == (0, 0x1D)
    drive.execute(nvme_identify(0x01))  # Identify still allowed
    clock.advance(2.0)
    sprog, sstat, _ = log(drive)
    assert sprog == 0xFFFF and sstat & 0x7 == 0b001 and sstat & 0x100  # success, Global Data Erased
    assert drive.data_path.read_bytes() == bytes(SIZE)  # NDAS=0: deallocated, reads zeros
    drive.execute(nvme_write(0, b"x" * 512))
    assert not log(drive)[1] & 0x100  # written since: GDE clears


def test_sanitize_no_deallocate_keeps_crypto_garbage(tmp_path: Path) -> None:
    drive = make(tmp_path)
    drive.execute(nvme_sanitize(0b100, ndas=True))
    assert wait(drive) & 0x7 == 0b001
    data = drive.data_path.read_bytes()
    assert CANARY not in data and data != bytes(SIZE)


def test_no_deallocate_inhibited_reports_sstat_100b(tmp_path: Path) -> None:
    drive = make(tmp_path, model=DriveModel(nvme_no_deallocate_inhibited=True))
    drive.execute(nvme_sanitize(0b100, ndas=True))
    assert wait(drive) & 0x7 == 0b100
    assert drive.data_path.read_bytes() == bytes(SIZE)


def test_block_erase_and_overwrite(tmp_path: Path) -> None:
    drive = make(tmp_path, model=DriveModel(block_erase_fill=0xFF, nvme_deallocate_after_sanitize=False))
    drive.execute(nvme_sanitize(0b010))
    wait(drive)
    assert drive.data_path.read_bytes() == b"\xff" * SIZE
    drive.execute(nvme_sanitize(0b011, owpass=3, pattern=0x11223344))
    sstat = wait(drive)
    assert (sstat >> 3) & 0x1F == 3  # overwrite passes completed
    assert drive.data_path.read_bytes() == bytes.fromhex("44332211") * (SIZE // 4)


def test_unsupported_and_invalid_sanact(tmp_path: Path) -> None:
    drive = make(tmp_path, model=DriveModel(sanitize_overwrite=False))
    for command in (nvme_sanitize(0b011), nvme_sanitize(0b000), nvme_sanitize(0b111)):
        with pytest.raises(CommandFailed) as caught:
            drive.execute(command)
        assert status_of(caught) == (0, 0x02)


def test_failure_restricted_blocks_exit_failure_mode(tmp_path: Path) -> None:
    drive = make(tmp_path, sanitize_fails="restricted")
    assert log(drive)[1] & 0x7 == 0b011
    with pytest.raises(CommandFailed) as caught:
        drive.execute(nvme_sanitize(0b001))
    assert status_of(caught) == (0, 0x1C)
    with pytest.raises(CommandFailed) as io_caught:
        drive.execute(nvme_read(0, 1))
    assert status_of(io_caught) == (0, 0x1C)
    with pytest.raises(CommandFailed):
        drive.execute(nvme_format(ses=1))
    healthy = EmulatedNvmeDrive(drive.data_path)  # failure persists across power cycle
    assert log(healthy)[1] & 0x7 == 0b011
    healthy.execute(nvme_sanitize(0b010))
    assert wait(healthy) & 0x7 == 0b001
    healthy.execute(nvme_read(0, 1))


def test_failure_unrestricted_exit_failure_mode(tmp_path: Path) -> None:
    drive = make(tmp_path)
    failing = EmulatedNvmeDrive(drive.data_path, faults=Faults(sanitize_fails="restricted"))
    failing.execute(nvme_sanitize(0b100, ause=True))  # AUSE=1: unrestricted completion mode
    assert wait(failing) & 0x7 == 0b011
    failing.execute(nvme_sanitize(0b001))
    failing.execute(nvme_read(0, 1))


def test_format_nvm_ses_and_lbaf(tmp_path: Path) -> None:
    drive = make(tmp_path)
    drive.execute(nvme_format(ses=1))
    assert drive.data_path.read_bytes() == bytes(SIZE)
    drive.data_path.write_bytes(CANARY.ljust(SIZE, b"\x02"))
    drive.execute(nvme_format(lbaf=1, ses=2))
    data = drive.data_path.read_bytes()
    assert CANARY not in data and data != bytes(SIZE)
    namespace = drive.execute(nvme_identify(0x00, nsid=1)).data
    assert namespace[26] & 0xF == 1 and int.from_bytes(namespace[0:8], "little") == SIZE // 4096
    assert drive.execute(nvme_read(0, 1, 4096)).data == data[:4096]
    with pytest.raises(CommandFailed) as caught:
        drive.execute(nvme_format(lbaf=5))
    assert status_of(caught) == (1, 0x0A)  # Invalid Format
    with pytest.raises(CommandFailed):
        drive.execute(nvme_format(ses=3))
    with pytest.raises(CommandFailed):
        drive.execute(nvme_format(nsid=9))


def test_format_crypto_unsupported(tmp_path: Path) -> None:
    drive = make(tmp_path, model=DriveModel(nvme_crypto_format_supported=False))
    assert drive.execute(nvme_identify(0x01)).data[524] & 0x4 == 0
    with pytest.raises(CommandFailed) as caught:
        drive.execute(nvme_format(ses=2))
    assert status_of(caught) == (0, 0x02)


def test_power_loss_mid_sanitize_persists(tmp_path: Path) -> None:
    drive = make(tmp_path, power_loss_after_polls=1)
    drive.execute(nvme_sanitize(0b010))
    log(drive)
    with pytest.raises(DriveRemoved):
        log(drive)
    reopened = EmulatedNvmeDrive(drive.data_path)
    assert log(reopened)[1] & 0x7 == 0b010
    assert wait(reopened) & 0x7 == 0b001


def test_faults_abort_blocked_lies(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    aborting = make(tmp_path / "a", abort_on=frozenset({0x84}))
    with pytest.raises(CommandFailed) as caught:
        aborting.execute(nvme_sanitize(0b100))
    assert status_of(caught) == (0, 0x07)
    (tmp_path / "b").mkdir()
    blocked = make(tmp_path / "b", passthrough_blocked=True)
    with pytest.raises(PassThroughBlocked):
        blocked.execute(nvme_identify(0x01))
    (tmp_path / "c").mkdir()
    liar = make(tmp_path / "c", lies_about_success=True)
    before = liar.data_path.read_bytes()
    liar.execute(nvme_sanitize(0b100))
    assert log(liar)[1] & 0x7 == 0b001
    liar.execute(nvme_format(ses=1))
    assert liar.data_path.read_bytes() == before


def test_io_and_other_commands(tmp_path: Path) -> None:
    drive = make(tmp_path)
    drive.execute(nvme_write(2, b"\x33" * 1024))
    assert drive.execute(nvme_read(2, 2)).data == b"\x33" * 1024
    with pytest.raises(CommandFailed) as caught:
        drive.execute(nvme_read(SIZE // 512, 1))
    assert status_of(caught) == (0, 0x80)
    with pytest.raises(CommandFailed):
        drive.execute(NvmeAdminCommand(0x0D))  # namespace management: not implemented
    with pytest.raises(CommandFailed) as log_caught:
        drive.execute(NvmeAdminCommand(0x02, cdw10=0xC0 | 127 << 16, data_in_length=512))
    assert status_of(log_caught) == (1, 0x09)
    assert drive.execute(NvmeAdminCommand(0x02, cdw10=0x02 | 127 << 16, data_in_length=512)).data == bytes(512)
    with pytest.raises(Exception, match="NVMe commands only"):
        drive.execute(identify())


def test_no_sanitize_support_means_invalid_opcode(tmp_path: Path) -> None:
    model = DriveModel(sanitize_crypto=False, sanitize_block=False, sanitize_overwrite=False)
    drive = make(tmp_path, model=model)
    assert int.from_bytes(drive.execute(nvme_identify(0x01)).data[328:332], "little") == 0
    with pytest.raises(CommandFailed) as caught:
        drive.execute(nvme_sanitize(0b010))
    assert status_of(caught) == (0, 0x01)
