"""Real ioctl paths against whatever pass-through devices this machine has (root only).

Loop devices have no SCSI layer, so this probes /dev/sg* and NVMe controllers when present and
skips with a reason otherwise; the QEMU guest harness in tests/system exercises these paths fully.
"""

from __future__ import annotations

import glob
import os
import re

import pytest

from agent.errors import CommandError
from agent.transport.commands import NvmeAdminCommand, ScsiCommand
from agent.transport.nvme_ioctl import NvmeIoctlTransport
from agent.transport.sgio import SgIoTransport

pytestmark = pytest.mark.root

SG_DEVICES = sorted(glob.glob("/dev/sg[0-9]*"))
NVME_CONTROLLERS = sorted(
    path for path in glob.glob("/dev/nvme[0-9]*") if re.fullmatch(r"/dev/nvme\d+", path)
)


def _require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to open pass-through devices")


@pytest.mark.skipif(not SG_DEVICES, reason="no /dev/sg* device on this machine (loop devices have no SG)")
def test_sg_io_inquiry_on_first_sg_device() -> None:
    _require_root()
    with SgIoTransport(SG_DEVICES[0]) as transport:
        try:
            completion = transport.execute(ScsiCommand(bytes([0x12, 0, 0, 0, 96, 0]), data_in_length=96))
        except CommandError as error:  # a real device may refuse; it must never be a bare OSError
            pytest.skip(f"{SG_DEVICES[0]} refused INQUIRY: {error}")
        assert completion.ok and len(completion.data) >= 36
        assert completion.data[0] & 0x1F in range(0x20)


@pytest.mark.skipif(not NVME_CONTROLLERS, reason="no NVMe controller character device on this machine")
def test_nvme_identify_controller() -> None:
    _require_root()
    with NvmeIoctlTransport(NVME_CONTROLLERS[0]) as transport:
        completion = transport.execute(NvmeAdminCommand(0x06, cdw10=0x01, data_in_length=4096))
    assert completion.ok and len(completion.data) == 4096
    assert completion.data[4:24].strip()  # a serial number
