"""Replaying exchanges recorded through the real SG_IO / NVMe ioctl transports in the QEMU guest
(Linux 6.1; AHCI ide-hd, virtio-scsi scsi-hd, QEMU NVMe), with RecordingTransport. They pin down
what real kernels answer, including the failures QEMU gives for the firmware purges it lacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.drive.ata import parse_ata_identify
from agent.drive.nvme import parse_nvme_id_ctrl, parse_nvme_id_ns
from agent.drive.scsi import parse_inquiry, parse_read_capacity16
from agent.transport.commands import (
    AtaCommand,
    AtaProtocol,
    CommandFailed,
    NvmeAdminCommand,
    NvmeIoCommand,
    PassThroughBlocked,
    ScsiCommand,
)
from agent.transport.replay import ReplayTransport
from agent.transport.sense import SenseKey

DATA = Path(__file__).parent / "data"


def test_qemu_sata_disk_through_libata() -> None:
    replay = ReplayTransport(DATA / "qemu-ata.jsonl")
    identify = replay.execute(AtaCommand(0xEC, AtaProtocol.PIO_IN, count=1, data_in_length=512))
    assert identify.sense is not None and identify.sense.descriptor_format  # libata: CK_COND → 72h + 09h
    assert identify.ata is not None and not identify.ata.failed
    parsed = parse_ata_identify(identify.data)
    assert parsed.serial == "SATA0001" and parsed.model == "EMU SATA DISK"
    assert not parsed.checksum_verified  # QEMU leaves word 255 without the A5h signature
    assert not parsed.security.supported and not parsed.sanitize.supported  # QEMU has neither
    for command in (AtaCommand(0xB4, extend=True), AtaCommand(0xF1, AtaProtocol.PIO_OUT, count=1, data_out=bytes(512))):
        with pytest.raises(CommandFailed) as caught:
            replay.execute(command)
        registers = caught.value.completion.ata
        assert registers is not None and registers.aborted and caught.value.status == 0x41
    read = replay.execute(AtaCommand(0x25, AtaProtocol.DMA, count=1, lba=0, data_in_length=512, extend=True))
    assert len(read.data) == 512
    assert replay.remaining == 0


def test_qemu_scsi_disk_through_sg_io() -> None:
    replay = ReplayTransport(DATA / "qemu-scsi.jsonl")
    inquiry = parse_inquiry(replay.execute(ScsiCommand(bytes([0x12, 0, 0, 0, 96, 0]), data_in_length=96)).data)
    assert inquiry.vendor == "QEMU"
    capacity = replay.execute(
        ScsiCommand(bytes([0x9E, 0x10]) + bytes(8) + (32).to_bytes(4, "big") + bytes(2), data_in_length=32)
    )
    assert parse_read_capacity16(capacity.data).logical_block_length == 512
    with pytest.raises(CommandFailed) as caught:
        replay.execute(ScsiCommand(bytes([0x48, 0x82, 0, 0, 0, 0, 0, 0, 0, 0])))
    sense = caught.value.completion.sense
    assert sense is not None and sense.sense_key is SenseKey.ILLEGAL_REQUEST and sense.asc_ascq == (0x20, 0x00)
    with pytest.raises(PassThroughBlocked):  # scsi-hd has no SATL: the 85h CDB is unknown
        replay.execute(AtaCommand(0xEC, AtaProtocol.PIO_IN, count=1, data_in_length=512))


def test_qemu_nvme_controller_through_admin_ioctl() -> None:
    replay = ReplayTransport(DATA / "qemu-nvme.jsonl")
    controller = parse_nvme_id_ctrl(replay.execute(NvmeAdminCommand(0x06, cdw10=1, data_in_length=4096)).data)
    assert controller.serial == "NVME0001" and controller.sanicap.raw == 0 and controller.fna.raw == 0
    namespace = parse_nvme_id_ns(replay.execute(NvmeAdminCommand(0x06, nsid=1, cdw10=0, data_in_length=4096)).data)
    assert namespace.size_bytes == 16 * 1024 * 1024
    with pytest.raises(CommandFailed) as sanitize:  # QEMU 7.2: no Sanitize at all
        replay.execute(NvmeAdminCommand(0x84, cdw10=0b010))
    status = sanitize.value.completion.nvme_status
    assert status is not None and (status.sct, status.sc, status.dnr) == (0, 0x01, True)
    with pytest.raises(CommandFailed) as log:  # nor the Sanitize Status log page
        replay.execute(NvmeAdminCommand(0x02, nsid=0xFFFFFFFF, cdw10=0x81 | 127 << 16, data_in_length=512))
    assert log.value.completion.nvme_status is not None and log.value.completion.nvme_status.sc == 0x02
    read = replay.execute(NvmeIoCommand(0x02, nsid=1, cdw10=0, cdw12=0, data_in_length=512))
    assert read.data == bytes(512)
