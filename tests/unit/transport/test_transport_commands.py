"""Commands, CDB building (SAT-4), result interpretation, ioctl struct layouts and error mapping."""

from __future__ import annotations

import ctypes
import errno
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.errors import CommandError, DriveNotFound, DriveRemoved
from agent.transport import Transport, detect_interface, open_transport
from agent.transport.commands import (
    AtaCommand,
    AtaProtocol,
    CommandFailed,
    CommandTimeout,
    DataDirection,
    NvmeAdminCommand,
    NvmeStatus,
    PassThroughBlocked,
    ScsiCommand,
    command_label,
    map_os_error,
    nvme_completion,
)
from agent.transport.nvme_ioctl import (
    NVME_IOCTL_ADMIN_CMD,
    NVME_IOCTL_IO_CMD,
    NvmeIoctlTransport,
    NvmePassthruCmd,
)
from agent.transport.sat import (
    DID_NO_CONNECT,
    DID_TIME_OUT,
    build_ata_pass_through_16,
    interpret_ata_result,
    interpret_scsi_result,
    parse_ata_pass_through_16,
)
from agent.transport.sense import AtaRegisters, SenseKey, encode_descriptor_sense, encode_fixed_sense
from agent.transport.sgio import SG_IO, SgIoHeader, SgIoTransport

from .transport_helpers import identify, sanitize


def test_struct_layouts_match_the_kernel_uapi() -> None:
    assert ctypes.sizeof(SgIoHeader) == 88  # include/scsi/sg.h on LP64
    assert SgIoHeader.sb_len_wr.offset == 67 and SgIoHeader.info.offset == 80
    assert SgIoHeader.dxferp.offset == 16 and SgIoHeader.usr_ptr.offset == 56
    assert ctypes.sizeof(NvmePassthruCmd) == 72
    assert NvmePassthruCmd.addr.offset == 24 and NvmePassthruCmd.cdw10.offset == 40
    assert NvmePassthruCmd.timeout_ms.offset == 64 and NvmePassthruCmd.result.offset == 68
    assert SG_IO == 0x2285
    assert NVME_IOCTL_ADMIN_CMD == 0xC0484E41
    assert NVME_IOCTL_IO_CMD == 0xC0484E43


def test_identify_cdb_byte_for_byte() -> None:
    # SAT-4 ATA PASS-THROUGH (16) CDB: 85h, PROTOCOL=4 (PIO in) EXTEND=0, CK_COND T_DIR BYT_BLOK T_LENGTH=10b,
    # COUNT=1, DEVICE=40h, COMMAND=ECh.
    expected = bytes.fromhex("85082e0000000100000000000040ec00")
    assert build_ata_pass_through_16(identify()) == expected


def test_sanitize_crypto_scramble_cdb_byte_for_byte() -> None:
    # 48-bit non-data: PROTOCOL=3 EXTEND=1 → 07h; CK_COND only → 20h; FEATURES 0011h;
    # LBA 43727970h spread as 31:24 | 7:0 | 39:32 | 15:8 | 47:40 | 23:16.
    cdb = build_ata_pass_through_16(sanitize(0x0011, lba=0x43727970))
    assert cdb == bytes.fromhex("8507200011000043700079007240b400")


def test_pio_out_cdb_direction_bits() -> None:
    command = AtaCommand(0xF1, AtaProtocol.PIO_OUT, count=1, data_out=bytes(512))
    cdb = build_ata_pass_through_16(command)
    assert cdb[1] == 0x0A and cdb[2] == 0x26  # PIO out, T_DIR=0, BYT_BLOK, T_LENGTH=10b
    assert command.direction is DataDirection.TO_DEVICE


def test_28bit_command_puts_lba_high_nibble_in_device() -> None:
    command = AtaCommand(0xC8, AtaProtocol.DMA, count=8, lba=0x0ABCDEF1, data_in_length=4096, extend=False)
    cdb = build_ata_pass_through_16(command)
    assert cdb[13] == 0x4A and cdb[8] == 0xF1 and cdb[10] == 0xDE and cdb[12] == 0xBC
    assert parse_ata_pass_through_16(cdb)[4] == 0x0ABCDEF1


@given(
    st.integers(0, 0xFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, (1 << 48) - 1),
)
def test_cdb_round_trip_48bit(opcode: int, features: int, count: int, lba: int) -> None:
    command = AtaCommand(opcode, features=features, count=count, lba=lba, extend=True)
    protocol, parsed_opcode, parsed_features, parsed_count, parsed_lba, device, extend = parse_ata_pass_through_16(
        build_ata_pass_through_16(command)
    )
    assert (protocol, parsed_opcode, parsed_features, parsed_count, parsed_lba, device, extend) == (
        AtaProtocol.NON_DATA,
        opcode,
        features,
        count,
        lba,
        0x40,
        True,
    )


def test_command_validation() -> None:
    with pytest.raises(ValueError):
        AtaCommand(0xEC, AtaProtocol.PIO_IN)  # no data length
    with pytest.raises(ValueError):
        AtaCommand(0x24, lba=1 << 30, extend=False)
    with pytest.raises(ValueError):
        AtaCommand(0xEC, AtaProtocol.PIO_IN, data_in_length=100)
    with pytest.raises(ValueError):
        ScsiCommand(b"\x00")
    with pytest.raises(ValueError):
        NvmeAdminCommand(0x06, cdw10=1 << 32)
    with pytest.raises(ValueError):
        NvmeAdminCommand(0x06, data_out=b"x", data_in_length=4)
    assert AtaCommand(0xB4).is_extended and not AtaCommand(0xE7).is_extended
    assert ScsiCommand(bytes(6), data_in_length=8).direction is DataDirection.FROM_DEVICE
    assert command_label(sanitize(0x0011)) == "ATA B4h/0011h"


def test_nvme_status_fields() -> None:
    status = NvmeStatus(0x401D)
    assert (status.sct, status.sc, status.dnr, status.more, status.crd) == (0, 0x1D, True, False, 0)
    assert "Sanitize In Progress" in status.describe()
    assert NvmeStatus.of(1, 0x0A, dnr=True).raw == 0x410A
    assert NvmeStatus(0).ok


def test_nvme_completion_raises_with_status() -> None:
    command = NvmeAdminCommand(0x84, cdw10=2)
    with pytest.raises(CommandFailed) as caught:
        nvme_completion(command, 0x401C, 0, b"")
    assert caught.value.opcode == 0x84 and caught.value.status == 0x401C
    assert caught.value.completion.nvme_status == NvmeStatus(0x401C)
    with pytest.raises(CommandTimeout):
        nvme_completion(command, 0x371, 0, b"")
    assert nvme_completion(command, 0, 7, b"").result == 7


def test_interpret_ata_result_cases() -> None:
    ok = AtaRegisters(0, 0x50, 1, 0, 0x40, False)
    sense = encode_descriptor_sense(SenseKey.RECOVERED_ERROR, 0, 0x1D, ata=ok)
    completion = interpret_ata_result(identify(), 2, sense, b"x" * 512)
    assert completion.ok and completion.ata == ok and completion.data == b"x" * 512
    aborted = AtaRegisters(0x04, 0x51, 0, 0x03, 0x40, True)
    with pytest.raises(CommandFailed) as caught:
        interpret_ata_result(
            sanitize(0x11), 2, encode_descriptor_sense(SenseKey.ABORTED_COMMAND, 0, 0, ata=aborted), b""
        )
    assert caught.value.status == 0x51 and caught.value.completion.ata == aborted and caught.value.sense
    # A bridge rejecting the 85h CDB: blocked, not "unsupported".
    for asc in ((0x20, 0x00), (0x24, 0x00)):
        with pytest.raises(PassThroughBlocked, match="direct-attach"):
            interpret_ata_result(identify(), 2, encode_fixed_sense(SenseKey.ILLEGAL_REQUEST, *asc), b"")
    # GOOD without registers: data-in is kept, non-data cannot be proven to have run.
    assert interpret_ata_result(identify(), 0, b"", b"d" * 512).info["ata_registers"] == "not returned"
    with pytest.raises(PassThroughBlocked):
        interpret_ata_result(sanitize(0x11), 0, b"", b"")
    with pytest.raises(CommandFailed):
        interpret_ata_result(identify(), 2, encode_fixed_sense(SenseKey.UNIT_ATTENTION, 0x29, 0), b"")
    with pytest.raises(CommandTimeout):
        interpret_ata_result(identify(), 0, b"", b"", host_status=DID_TIME_OUT)
    with pytest.raises(DriveRemoved):
        interpret_ata_result(identify(), 0, b"", b"", host_status=DID_NO_CONNECT)
    with pytest.raises(CommandError):
        interpret_ata_result(identify(), 0, b"", b"", host_status=0x07)


def test_interpret_scsi_result_cases() -> None:
    inquiry = ScsiCommand(bytes([0x12, 0, 0, 0, 36, 0]), data_in_length=36)
    assert interpret_scsi_result(inquiry, 0, b"", b"i" * 36).data == b"i" * 36
    recovered = encode_fixed_sense(SenseKey.RECOVERED_ERROR, 0x17, 0x01)
    assert interpret_scsi_result(inquiry, 2, recovered, b"").sense is not None
    with pytest.raises(CommandFailed) as caught:
        interpret_scsi_result(inquiry, 2, encode_fixed_sense(SenseKey.NOT_READY, 0x04, 0x1B, progress=0x100), b"")
    assert caught.value.completion.sense is not None and caught.value.completion.sense.progress == 0x100
    with pytest.raises(CommandFailed, match="0x08"):
        interpret_scsi_result(inquiry, 0x08, b"", b"")


def test_map_os_error() -> None:
    command = identify()
    assert isinstance(map_os_error(OSError(errno.ENODEV, "x"), command, "/dev/sdz"), DriveRemoved)
    assert isinstance(map_os_error(OSError(errno.ETIMEDOUT, "x"), command, "/dev/sdz"), CommandTimeout)
    assert isinstance(map_os_error(OSError(errno.ENOTTY, "x"), command, "/dev/sdz"), PassThroughBlocked)
    scsi = map_os_error(OSError(errno.ENOTTY, "x"), ScsiCommand(bytes(6)), "/dev/sdz")
    assert type(scsi) is CommandError
    other = map_os_error(OSError(errno.EIO, "I/O error"), command, "/dev/sdz")
    assert type(other) is CommandError and other.opcode == 0xEC and "EIO" in other.message


def test_real_transports_map_enotty_on_a_regular_file(tmp_path: Path) -> None:
    # SG_IO and the NVMe ioctl on a plain file fail with ENOTTY: no bare OSError escapes.
    path = tmp_path / "plain"
    path.write_bytes(bytes(4096))
    with SgIoTransport(str(path)) as transport:
        assert isinstance(transport, Transport)
        with pytest.raises(PassThroughBlocked) as caught:
            transport.execute(identify())
        assert isinstance(caught.value.__cause__, OSError)
        with pytest.raises(CommandError):
            transport.execute(ScsiCommand(bytes([0x12, 0, 0, 0, 36, 0]), data_in_length=36))
        with pytest.raises(CommandError):
            transport.execute(NvmeAdminCommand(0x06, cdw10=1, data_in_length=4096))
    with pytest.raises(CommandError, match="closed"):
        transport.execute(identify())
    with NvmeIoctlTransport(str(path)) as nvme:
        with pytest.raises(PassThroughBlocked):
            nvme.execute(NvmeAdminCommand(0x06, cdw10=1, data_in_length=4096))
        with pytest.raises(CommandError):
            nvme.execute(identify())
    with pytest.raises(DriveNotFound):
        SgIoTransport(str(tmp_path / "missing"))


def _fake_sysfs(root: Path, name: str, target: str, vendor: str | None = None) -> None:
    device = root / "devices" / target
    device.mkdir(parents=True)
    if vendor is not None:
        (device / "device").mkdir()
        (device / "device" / "vendor").write_text(vendor + "\n")
    link_dir = root / "class" / "block"
    link_dir.mkdir(parents=True, exist_ok=True)
    (link_dir / name).symlink_to(device)


def test_detect_interface_from_sysfs(tmp_path: Path) -> None:
    _fake_sysfs(tmp_path, "sda", "pci0000:00/ata1/host0/block/sda", vendor="ATA     ")
    _fake_sysfs(tmp_path, "sdb", "pci0000:00/usb2/2-1/host6/block/sdb", vendor="JMicron")
    _fake_sysfs(tmp_path, "nvme0n1", "pci0000:00/nvme/nvme0/nvme0n1")
    ata = detect_interface("/dev/sda", sysfs_root=str(tmp_path))
    assert (ata.kind, ata.usb) == ("ata", False)
    usb = detect_interface("/dev/sdb", sysfs_root=str(tmp_path))
    assert (usb.kind, usb.usb) == ("scsi", True)
    assert detect_interface("/dev/nvme0n1", sysfs_root=str(tmp_path)).kind == "nvme"
    with pytest.raises(DriveNotFound):
        detect_interface("/dev/sdq", sysfs_root=str(tmp_path))
    with pytest.raises(DriveNotFound):
        open_transport("/dev/sdq", sysfs_root=str(tmp_path))
