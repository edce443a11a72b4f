"""The emulated ATA drive: IDENTIFY layout, security states SEC1..SEC6, SANITIZE, every blocking state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import DriveRemoved
from agent.transport.commands import CommandFailed, PassThroughBlocked, ScsiCommand
from wipe_agent_testing.emulated import DriveModel, EmulatedAtaDrive, Faults, ManualClock, state_path_for

from .transport_helpers import (
    ANTIFREEZE,
    BLOCK,
    CRYPTO,
    FREEZE,
    identify,
    overwrite,
    read_sectors,
    sanitize,
    sanitize_status,
    security,
    words,
)

SIZE = 256 * 1024
CANARY = b"CANARY-0123456789abcdef" * 20


def make(tmp_path: Path, name: str = "ata.img", **faults: object) -> EmulatedAtaDrive:
    path = tmp_path / name
    fresh = not path.exists()
    drive = EmulatedAtaDrive(path, size_bytes=SIZE, faults=Faults(**faults))  # type: ignore[arg-type]
    if fresh:
        with open(path, "r+b") as handle:
            handle.write(CANARY)
            handle.seek(SIZE - len(CANARY))
            handle.write(CANARY)
    return drive


def identify_words(drive: EmulatedAtaDrive) -> list[int]:
    return words(drive.execute(identify()).data)


def security_bits(drive: EmulatedAtaDrive) -> int:
    return identify_words(drive)[128]


def wait_for_sanitize(drive: EmulatedAtaDrive, limit: int = 50) -> int:
    for _ in range(limit):
        completion = drive.execute(sanitize_status())
        assert completion.ata is not None
        if not completion.ata.count & 0x4000:
            return completion.ata.count
    raise AssertionError("sanitize never finished")


# --- IDENTIFY DEVICE ---------------------------------------------------------------------------
def test_identify_layout_follows_acs4(tmp_path: Path) -> None:
    drive = EmulatedAtaDrive(
        tmp_path / "a.img",
        size_bytes=SIZE,
        model=DriveModel(serial="SN123", model="Test Model X", firmware="FW1", rotation_rpm=7200),
    )
    data = drive.execute(identify()).data
    assert len(data) == 512
    assert data[510] == 0xA5 and sum(data) % 256 == 0  # word 255 signature + checksum
    assert data[20:40] == b"NS21 3" + b" " * 14  # serial byte-swapped in words 10-19
    swapped = b"".join(data[54 + i + 1 : 54 + i + 2] + data[54 + i : 54 + i + 1] for i in range(0, 40, 2))
    assert swapped.rstrip() == b"Test Model X"
    w = words(data)
    assert w[100] | w[101] << 16 | w[102] << 32 | w[103] << 48 == SIZE // 512
    assert w[60] | w[61] << 16 == SIZE // 512
    assert w[217] == 7200 and w[169] == 0
    assert w[59] & 0xFC00 == 0xFC00  # block erase, overwrite, crypto, sanitize, ACS-3 rules, antifreeze
    assert w[82] & 0x0002 and w[83] & 0x0400 and w[86] & 0x0400  # security, 48-bit
    assert w[128] == 0x0021  # supported, enhanced erase supported; not enabled/locked/frozen


def test_identify_ssd_and_no_sanitize(tmp_path: Path) -> None:
    model = DriveModel(sanitize_crypto=False, sanitize_block=False, sanitize_overwrite=False)
    drive = EmulatedAtaDrive(tmp_path / "a.img", size_bytes=SIZE, model=model)
    w = identify_words(drive)
    assert w[217] == 1 and w[169] & 1
    assert w[59] & 0x1000 == 0
    with pytest.raises(CommandFailed) as caught:
        drive.execute(sanitize(*BLOCK))
    assert caught.value.completion.ata is not None and caught.value.completion.ata.lba == 0x02  # reason


# --- security: SEC1..SEC6 ----------------------------------------------------------------------
def test_set_password_enables_security_and_power_cycle_locks(tmp_path: Path) -> None:
    drive = make(tmp_path)
    drive.execute(security(0xF1, b"secret"))
    assert security_bits(drive) & 0x07 == 0x03  # SEC5: supported, enabled, unlocked
    drive.power_cycle()
    assert security_bits(drive) & 0x07 == 0x07  # SEC4: locked
    with pytest.raises(CommandFailed):
        drive.execute(read_sectors(0, 1))  # media access aborted while locked
    with pytest.raises(CommandFailed):
        drive.execute(security(0xF5))  # FREEZE LOCK aborted in SEC4
    with pytest.raises(CommandFailed):
        drive.execute(sanitize(*CRYPTO))  # sanitize aborted while locked
    drive.execute(security(0xF2, b"secret"))
    assert security_bits(drive) & 0x04 == 0
    assert drive.execute(read_sectors(0, 1)).data.startswith(b"CANARY")


def test_locked_fault_and_password_attempt_counter_expires(tmp_path: Path) -> None:
    drive = make(tmp_path, locked_with_password=b"unknown")
    assert security_bits(drive) & 0x07 == 0x07
    for _ in range(5):
        with pytest.raises(CommandFailed):
            drive.execute(security(0xF2, b"guess"))
    assert security_bits(drive) & 0x10  # count expired
    with pytest.raises(CommandFailed):
        drive.execute(security(0xF2, b"unknown"))  # even the right password, until power cycle
    drive.execute(security(0xF3))
    with pytest.raises(CommandFailed):
        drive.execute(security(0xF4, b"unknown"))
    drive.power_cycle()
    assert security_bits(drive) & 0x10 == 0
    drive.execute(security(0xF2, b"unknown"))


def test_frozen_blocks_every_security_command(tmp_path: Path) -> None:
    drive = make(tmp_path, frozen=True)
    assert security_bits(drive) & 0x08  # SEC2
    for command in (security(0xF1, b"p"), security(0xF3), security(0xF6, b"p"), security(0xF2, b"p")):
        with pytest.raises(CommandFailed) as caught:
            drive.execute(command)
        assert caught.value.completion.ata is not None and caught.value.completion.ata.aborted
    drive.execute(security(0xF5))  # freezing again is harmless


def test_freeze_lock_command_and_sec6(tmp_path: Path) -> None:
    drive = make(tmp_path)
    drive.execute(security(0xF1, b"p"))
    drive.execute(security(0xF5))
    assert security_bits(drive) & 0x0B == 0x0B  # SEC6: enabled, frozen
    with pytest.raises(CommandFailed):
        drive.execute(security(0xF6, b"p"))
    drive.power_cycle()  # only a power cycle clears frozen
    assert security_bits(drive) & 0x0F == 0x07


def test_security_erase_requires_prepare_and_erases(tmp_path: Path) -> None:
    drive = make(tmp_path)
    drive.execute(security(0xF1, b"pw"))
    with pytest.raises(CommandFailed):
        drive.execute(security(0xF4, b"pw"))  # not preceded by ERASE PREPARE
    drive.execute(security(0xF3))
    drive.execute(identify())
    with pytest.raises(CommandFailed):
        drive.execute(security(0xF4, b"pw"))  # another command in between
    drive.execute(security(0xF3))
    drive.execute(security(0xF4, b"pw"))
    assert drive.data_path.read_bytes() == bytes(SIZE)
    assert security_bits(drive) & 0x02 == 0  # back to SEC1


def test_enhanced_erase_and_wrong_password(tmp_path: Path) -> None:
    drive = make(tmp_path)
    before = drive.data_path.read_bytes()
    drive.execute(security(0xF1, b"pw"))
    drive.execute(security(0xF3))
    with pytest.raises(CommandFailed):
        drive.execute(security(0xF4, b"nope", enhanced=True))
    assert drive.data_path.read_bytes() == before
    drive.execute(security(0xF3))
    drive.execute(security(0xF4, b"pw", enhanced=True))
    after = drive.data_path.read_bytes()
    assert CANARY not in after and after != bytes(SIZE)


def test_enhanced_erase_unsupported(tmp_path: Path) -> None:
    drive = EmulatedAtaDrive(tmp_path / "a.img", size_bytes=SIZE, model=DriveModel(enhanced_erase_supported=False))
    assert security_bits(drive) & 0x20 == 0
    drive.execute(security(0xF1, b"pw"))
    drive.execute(security(0xF3))
    with pytest.raises(CommandFailed):
        drive.execute(security(0xF4, b"pw", enhanced=True))


def test_master_password_high_vs_maximum(tmp_path: Path) -> None:
    drive = make(tmp_path)
    master = DriveModel().master_password
    drive.execute(security(0xF1, b"user"))  # capability High
    drive.power_cycle()
    drive.execute(security(0xF2, master, master=True))  # High: master unlocks
    drive.execute(security(0xF6, b"user"))
    drive.execute(security(0xF1, b"user", maximum=True))
    assert security_bits(drive) & 0x100
    drive.power_cycle()
    with pytest.raises(CommandFailed):
        drive.execute(security(0xF2, master, master=True))  # Maximum: master cannot unlock
    drive.execute(security(0xF3))
    drive.execute(security(0xF4, master, master=True))  # …but can still erase
    assert security_bits(drive) & 0x07 == 0x01


def test_set_master_password_and_identifier(tmp_path: Path) -> None:
    drive = make(tmp_path)
    drive.execute(security(0xF1, b"newmaster", master=True, identifier=0x1234))
    assert identify_words(drive)[92] == 0x1234
    assert security_bits(drive) & 0x02 == 0  # setting the master does not enable security


def test_disable_password(tmp_path: Path) -> None:
    drive = make(tmp_path)
    with pytest.raises(CommandFailed):
        drive.execute(security(0xF6, b"x"))  # SEC1: nothing to disable
    drive.execute(security(0xF1, b"pw"))
    with pytest.raises(CommandFailed):
        drive.execute(security(0xF6, b"wrong"))
    drive.execute(security(0xF6, b"pw"))
    assert security_bits(drive) & 0x02 == 0
    with pytest.raises(CommandFailed):
        drive.execute(security(0xF2, b"pw"))  # UNLOCK in SEC1 aborts


def test_security_erase_power_loss_leaves_drive_locked(tmp_path: Path) -> None:
    drive = make(tmp_path, power_loss_after_polls=0)
    drive.execute(security(0xF1, b"pw"))
    drive.execute(security(0xF3))
    with pytest.raises(DriveRemoved):
        drive.execute(security(0xF4, b"pw"))
    with pytest.raises(DriveRemoved):
        drive.execute(identify())  # the instance is gone
    reopened = EmulatedAtaDrive(drive.data_path)
    assert security_bits(reopened) & 0x07 == 0x07  # password still set: locked after power-on
    assert CANARY in reopened.data_path.read_bytes()  # the tail was never erased


def test_security_not_supported(tmp_path: Path) -> None:
    drive = EmulatedAtaDrive(tmp_path / "a.img", size_bytes=SIZE, model=DriveModel(security_supported=False))
    assert identify_words(drive)[128] == 0 and identify_words(drive)[82] & 2 == 0
    with pytest.raises(CommandFailed):
        drive.execute(security(0xF1, b"pw"))


# --- SANITIZE ----------------------------------------------------------------------------------
def test_crypto_scramble_progress_and_completion(tmp_path: Path) -> None:
    clock = ManualClock()
    drive = EmulatedAtaDrive(tmp_path / "a.img", size_bytes=SIZE, clock=clock)
    drive.data_path.write_bytes(CANARY.ljust(SIZE, b"\x01"))
    status = drive.execute(sanitize_status()).ata
    assert status is not None and status.count == 0 and status.lba == 0xFFFF  # never sanitized
    drive.execute(sanitize(*CRYPTO))
    clock.advance(1.0)
    status = drive.execute(sanitize_status()).ata
    assert status is not None and status.count & 0x4000 and status.lba == 0x4000  # 25 %
    with pytest.raises(CommandFailed):
        drive.execute(read_sectors(0, 1))  # SD3: media access aborted
    with pytest.raises(CommandFailed):
        drive.execute(sanitize(*BLOCK))  # no second sanitize while one runs
    with pytest.raises(CommandFailed):
        drive.execute(security(0xF3))
    drive.execute(identify())  # IDENTIFY still answers
    clock.advance(3.0)
    status = drive.execute(sanitize_status()).ata
    assert status is not None and status.count == 0x8000 and status.lba == 0xFFFF
    data = drive.data_path.read_bytes()
    assert CANARY not in data and data != bytes(SIZE)
    assert drive.execute(read_sectors(0, 1)).data == data[:512]


@pytest.mark.parametrize("fill", [0x00, 0xFF])
def test_block_erase_fill(tmp_path: Path, fill: int) -> None:
    drive = EmulatedAtaDrive(tmp_path / "a.img", size_bytes=SIZE, model=DriveModel(block_erase_fill=fill))
    drive.data_path.write_bytes(CANARY.ljust(SIZE, b"\x01"))
    drive.execute(sanitize(*BLOCK))
    assert wait_for_sanitize(drive) & 0x8000
    assert drive.data_path.read_bytes() == bytes([fill]) * SIZE


def test_overwrite_pattern_and_invert(tmp_path: Path) -> None:
    drive = make(tmp_path)
    drive.execute(overwrite(0xDEADBEEF, passes=1))
    wait_for_sanitize(drive)
    assert drive.data_path.read_bytes() == bytes.fromhex("deadbeef") * (SIZE // 4)
    drive.execute(overwrite(0x0F0F0F0F, passes=2, invert=True))
    wait_for_sanitize(drive)
    assert drive.data_path.read_bytes() == b"\xf0" * SIZE  # last of two passes is inverted


def test_sanitize_keys_are_checked(tmp_path: Path) -> None:
    drive = make(tmp_path)
    for command in (
        sanitize(0x0011, lba=1),
        sanitize(0x0012, lba=1),
        sanitize(0x0014, lba=0x1234),
        sanitize(0x0020, lba=1),
        sanitize(0x0040, lba=1),
        sanitize(0x0099),
    ):
        with pytest.raises(CommandFailed):
            drive.execute(command)
    assert not drive.sanitize_in_progress


def test_sanitize_frozen_by_fault_and_by_freeze_lock(tmp_path: Path) -> None:
    frozen = make(tmp_path, "f.img", frozen=True)
    with pytest.raises(CommandFailed) as caught:
        frozen.execute(sanitize(*CRYPTO))
    assert caught.value.completion.ata is not None and caught.value.completion.ata.lba == 0x03
    status = frozen.execute(sanitize_status()).ata
    assert status is not None and status.count & 0x2000
    drive = make(tmp_path)
    drive.execute(sanitize(*FREEZE))
    with pytest.raises(CommandFailed):
        drive.execute(sanitize(*BLOCK))
    drive.power_cycle()
    drive.execute(sanitize(*BLOCK))


def test_antifreeze_blocks_freeze_lock(tmp_path: Path) -> None:
    drive = make(tmp_path)
    drive.execute(sanitize(*ANTIFREEZE))
    status = drive.execute(sanitize_status()).ata
    assert status is not None and status.count & 0x1000
    with pytest.raises(CommandFailed) as caught:
        drive.execute(sanitize(*FREEZE))
    assert caught.value.completion.ata is not None and caught.value.completion.ata.lba == 0x04


def test_sanitize_failure_restricted_persists_until_successful_sanitize(tmp_path: Path) -> None:
    drive = make(tmp_path, sanitize_fails="restricted")
    with pytest.raises(CommandFailed) as caught:
        drive.execute(sanitize_status(clear=True))  # CLEAR refused: failure mode was 0
    assert caught.value.completion.ata is not None and caught.value.completion.ata.lba == 0x01
    with pytest.raises(CommandFailed):
        drive.execute(read_sectors(0, 1))  # SD2 blocks media access
    drive.execute(sanitize(*CRYPTO))  # a new sanitize is allowed …
    with pytest.raises(CommandFailed):
        wait_for_sanitize(drive)  # … but this instance keeps failing
    reopened = EmulatedAtaDrive(drive.data_path)  # power cycle, healthy drive: failure persisted
    with pytest.raises(CommandFailed):
        reopened.execute(sanitize_status())
    reopened.execute(sanitize(*BLOCK))
    assert wait_for_sanitize(reopened) & 0x8000
    reopened.execute(read_sectors(0, 1))


def test_sanitize_failure_unrestricted_can_be_cleared(tmp_path: Path) -> None:
    drive = make(tmp_path, sanitize_fails="unrestricted")
    status = drive.execute(sanitize_status(clear=True)).ata
    assert status is not None and status.count & 0x8000 == 0
    drive.execute(read_sectors(0, 1))


def test_failure_mode_follows_the_command_bit(tmp_path: Path) -> None:
    path = tmp_path / "a.img"
    EmulatedAtaDrive(path, size_bytes=SIZE)
    failing = EmulatedAtaDrive(path, faults=Faults(sanitize_fails="restricted"))
    failing.execute(overwrite(0, passes=1, failure_mode=True))  # FAILURE MODE = 1 → unrestricted
    with pytest.raises(CommandFailed):
        wait_for_sanitize(failing)
    EmulatedAtaDrive(path).execute(sanitize_status(clear=True))


def test_power_loss_mid_sanitize_resumes_in_a_new_instance(tmp_path: Path) -> None:
    drive = make(tmp_path, power_loss_after_polls=1)
    drive.execute(sanitize(*CRYPTO))
    drive.execute(sanitize_status())
    with pytest.raises(DriveRemoved):
        drive.execute(sanitize_status())
    state = json.loads(state_path_for(drive.data_path).read_text())
    assert state["sanitize"] == "in_progress"
    reopened = EmulatedAtaDrive(drive.data_path)
    assert reopened.sanitize_in_progress
    first = reopened.execute(sanitize_status()).ata
    assert first is not None and first.count & 0x4000  # resumed, not restarted from idle
    assert wait_for_sanitize(reopened) & 0x8000
    assert CANARY not in reopened.data_path.read_bytes()


def test_power_loss_in_a_real_subprocess(tmp_path: Path) -> None:
    path = tmp_path / "sub.img"
    script = (
        "import os, sys\n"
        "from wipe_agent_testing.emulated import EmulatedAtaDrive\n"
        "from tests.unit.transport.transport_helpers import sanitize, CRYPTO\n"
        f"drive = EmulatedAtaDrive({str(path)!r}, size_bytes={SIZE})\n"
        "drive.execute(sanitize(*CRYPTO))\n"
        "os._exit(0)\n"  # the process dies with the sanitize running
    )
    root = Path(__file__).resolve().parents[3]
    subprocess.run([sys.executable, "-c", script], check=True, cwd=root, timeout=60)
    reopened = EmulatedAtaDrive(path)
    status = reopened.execute(sanitize_status()).ata
    assert status is not None and status.count & 0x4000
    with pytest.raises(CommandFailed):
        reopened.execute(sanitize(*BLOCK))


# --- injected faults ---------------------------------------------------------------------------
def test_abort_on_injection(tmp_path: Path) -> None:
    drive = make(tmp_path, abort_on=frozenset({0xB4}))
    with pytest.raises(CommandFailed) as caught:
        drive.execute(sanitize(*CRYPTO))
    assert caught.value.opcode == 0xB4 and caught.value.status == 0x51
    drive.execute(identify())


def test_passthrough_blocked_is_not_unsupported(tmp_path: Path) -> None:
    drive = make(tmp_path, passthrough_blocked=True)
    with pytest.raises(PassThroughBlocked, match="direct-attach bay") as caught:
        drive.execute(identify())
    assert caught.value.sense is not None and caught.value.code == "passthrough_blocked"


def test_lies_about_success(tmp_path: Path) -> None:
    drive = make(tmp_path, lies_about_success=True)
    before = drive.data_path.read_bytes()
    drive.execute(sanitize(*CRYPTO))
    status = drive.execute(sanitize_status()).ata
    assert status is not None and status.count & 0x8000  # claims success …
    drive.execute(security(0xF1, b"pw"))
    drive.execute(security(0xF3))
    drive.execute(security(0xF4, b"pw"))
    assert drive.data_path.read_bytes() == before  # … and nothing changed: read back!


def test_scsi_command_to_ata_drive_is_rejected(tmp_path: Path) -> None:
    drive = make(tmp_path)
    with pytest.raises(CommandFailed):
        drive.execute(ScsiCommand(bytes([0x48, 0x83, 0, 0, 0, 0, 0, 0, 0, 0])))


def test_io_commands_and_bounds(tmp_path: Path) -> None:
    from agent.transport.commands import AtaCommand, AtaProtocol

    drive = make(tmp_path)
    drive.execute(AtaCommand(0x34, AtaProtocol.PIO_OUT, count=1, lba=3, data_out=b"\x5a" * 512))
    assert drive.execute(read_sectors(3, 1)).data == b"\x5a" * 512
    with pytest.raises(CommandFailed):
        drive.execute(read_sectors(SIZE // 512, 1))
    with pytest.raises(CommandFailed):
        drive.execute(AtaCommand(0xE7))  # unknown command aborts


def test_new_file_needs_a_size(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        EmulatedAtaDrive(tmp_path / "none.img")
    (tmp_path / "odd.img").write_bytes(b"x" * 1000)
    with pytest.raises(ValueError):
        EmulatedAtaDrive(tmp_path / "odd.img")


def test_erase_unit_outlives_a_short_host_timeout(tmp_path: Path) -> None:
    from dataclasses import replace

    from agent.transport.commands import CommandTimeout

    drive = make(tmp_path)
    drive.execute(security(0xF1, b"pw"))
    drive.execute(security(0xF3))
    with pytest.raises(CommandTimeout, match="words 89/90"):
        drive.execute(replace(security(0xF4, b"pw"), timeout_s=30.0))  # 2-minute estimate
    assert drive.data_path.read_bytes() == bytes(SIZE)  # the drive finished anyway
