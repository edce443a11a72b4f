"""Real ioctl paths (SG_IO with ATA PASS-THROUGH / SCSI CDBs, NVMe admin ioctl) against whatever
disks this machine has. Root only, read-only commands only (IDENTIFY, INQUIRY, READ CAPACITY,
SANITIZE STATUS EXT, a reserved NVMe opcode): safe on a real station, and inside the QEMU guest
(tests/system) it runs against the emulated AHCI, virtio-scsi and NVMe drives:

    guest.run_pytest("tests/integration/transport")

Loop devices have no SCSI or NVMe layer, so on a plain host this skips with a reason.
"""

from __future__ import annotations

import os
import re
from contextlib import closing
from pathlib import Path

import pytest

from agent.drive.ata import parse_ata_identify
from agent.drive.nvme import parse_nvme_id_ctrl, parse_nvme_id_ns
from agent.errors import CommandError
from agent.transport import (
    AtaCommand,
    AtaProtocol,
    CommandFailed,
    DeviceInterface,
    NvmeAdminCommand,
    PassThroughBlocked,
    ScsiCommand,
    detect_interface,
    open_transport,
)

pytestmark = pytest.mark.root


def _disks() -> list[tuple[str, DeviceInterface]]:
    found = []
    for entry in sorted(Path("/sys/block").glob("*")):
        if not re.fullmatch(r"sd[a-z]+|nvme\d+n\d+", entry.name):
            continue
        try:
            found.append((f"/dev/{entry.name}", detect_interface(f"/dev/{entry.name}")))
        except CommandError:
            continue
    return found


DISKS = _disks()
ATA = [path for path, interface in DISKS if interface.kind == "ata"]
SCSI = [path for path, interface in DISKS if interface.kind == "scsi"]
NVME = [path for path, interface in DISKS if interface.kind == "nvme"]


@pytest.fixture(autouse=True)
def _need_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to open devices for pass-through")


@pytest.mark.skipif(not ATA, reason="no ATA (libata) disk on this machine")
@pytest.mark.parametrize("path", ATA)
def test_ata_identify_through_sg_io(path: str) -> None:
    with closing(open_transport(path)) as transport:
        completion = transport.execute(AtaCommand(0xEC, AtaProtocol.PIO_IN, count=1, data_in_length=512))
        assert completion.ata is not None and not completion.ata.failed
        identify = parse_ata_identify(completion.data)
        assert identify.user_addressable_sectors > 0 and identify.model
        try:  # SANITIZE STATUS EXT is read-only: either registers or an ATA abort, never a bare OSError
            status = transport.execute(AtaCommand(0xB4, extend=True))
            assert status.ata is not None
        except CommandFailed as error:
            assert error.completion.ata is not None and error.completion.ata.aborted


@pytest.mark.skipif(not SCSI, reason="no SCSI disk on this machine")
@pytest.mark.parametrize("path", SCSI)
def test_scsi_inquiry_and_capacity_through_sg_io(path: str) -> None:
    with closing(open_transport(path)) as transport:
        inquiry = transport.execute(ScsiCommand(bytes([0x12, 0, 0, 0, 96, 0]), data_in_length=96))
        assert len(inquiry.data) >= 36 and inquiry.data[0] & 0x1F == 0x00
        cdb = bytes([0x9E, 0x10]) + bytes(8) + (32).to_bytes(4, "big") + bytes(2)
        capacity = transport.execute(ScsiCommand(cdb, data_in_length=32))
        assert int.from_bytes(capacity.data[8:12], "big") in (512, 4096)
        try:  # an ATA disk behind a SATL answers; a SCSI disk refuses; never a bare OSError
            transport.execute(AtaCommand(0xEC, AtaProtocol.PIO_IN, count=1, data_in_length=512))
        except (PassThroughBlocked, CommandFailed) as error:
            assert error.opcode == 0xEC


@pytest.mark.skipif(not NVME, reason="no NVMe namespace on this machine")
@pytest.mark.parametrize("path", NVME)
def test_nvme_identify_through_admin_ioctl(path: str) -> None:
    with closing(open_transport(path)) as transport:
        controller = parse_nvme_id_ctrl(transport.execute(NvmeAdminCommand(0x06, cdw10=0x01, data_in_length=4096)).data)
        assert controller.serial
        namespace = parse_nvme_id_ns(
            transport.execute(NvmeAdminCommand(0x06, nsid=1, cdw10=0x00, data_in_length=4096)).data
        )
        assert namespace.size_blocks > 0
        with pytest.raises(CommandFailed) as caught:  # a reserved admin opcode (not vendor-specific)
            transport.execute(NvmeAdminCommand(0x3C))
        status = caught.value.completion.nvme_status
        assert status is not None and (status.sct, status.sc) == (0, 0x01)
