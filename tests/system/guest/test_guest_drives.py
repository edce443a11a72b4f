"""Inside the guest: the real 6.1 kernel sees every configured QEMU drive with the right transport,
serial and size, udev has described it, and the pass-through nodes the transport layer needs exist."""

from __future__ import annotations

import errno
import mmap
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.system.guest.guestlib import BlockDevice, find_block_device, udev_properties


def _drives(manifest: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [drive for drive in manifest["drives"] if drive["kind"] == kind]


def _located(drive: dict[str, Any]) -> BlockDevice:
    device = find_block_device(drive["kind"], drive["serial"])
    assert device is not None, f"no block device for {drive} in {sorted(os.listdir('/sys/block'))}"
    return device


def test_every_drive_is_a_block_device_of_the_configured_size(guest_manifest: dict[str, Any]) -> None:
    assert guest_manifest["drives"], "the host configured no drives"
    for drive in guest_manifest["drives"]:
        device = _located(drive)
        assert device.node.is_block_device()
        assert device.size_bytes == drive["size_bytes"], drive


def test_nvme_drives(guest_manifest: dict[str, Any]) -> None:
    for drive in _drives(guest_manifest, "nvme"):
        device = _located(drive)
        controller = device.sys_path.parent  # /sys/devices/pci.../nvme/nvmeX
        assert (controller / "transport").read_text().strip() == "pcie"
        assert device.pci_driver() == "nvme"
        assert (controller / "model").read_text().strip() == "QEMU NVMe Ctrl"
        assert Path("/dev", controller.name).is_char_device(), "no NVMe admin character device"
        properties = udev_properties(device.node)
        assert properties["ID_SERIAL_SHORT"] == drive["serial"]
        assert "-nvme-" in properties["ID_PATH"]  # udev 252 sets no ID_BUS for NVMe
        # Namespaces: nvmeXnN for nsid N (private namespaces, so no multipath head renames them).
        for nsid, size in enumerate(drive["namespaces"], start=1):
            namespace = Path("/sys/block", f"{controller.name}n{nsid}")
            assert int((namespace / "size").read_text()) * 512 == size, namespace
            assert (namespace / "nsid").read_text().strip() == str(nsid)


def test_sata_drives_sit_on_ahci(guest_manifest: dict[str, Any]) -> None:
    for drive in _drives(guest_manifest, "sata"):
        device = _located(drive)
        assert re.search(r"/ata\d+/host\d+/", str(device.sys_path)), device.sys_path
        assert device.attribute("device/vendor") == "ATA"  # libata's SCSI translation
        assert device.pci_driver() == "ahci", device.sys_path
        properties = udev_properties(device.node)
        assert properties["ID_BUS"] == "ata"
        assert properties["ID_ATA_SATA"] == "1"
        assert properties["ID_SERIAL"] == f"{(drive['model'] or 'QEMU HARDDISK').replace(' ', '_')}_{drive['serial']}"
        assert _sg_node(device).is_char_device()


def test_scsi_drives_sit_on_virtio_scsi(guest_manifest: dict[str, Any]) -> None:
    for drive in _drives(guest_manifest, "scsi"):
        device = _located(drive)
        assert re.search(r"/virtio\d+/host\d+/", str(device.sys_path)), device.sys_path
        assert device.pci_driver() == "virtio-pci"
        assert device.attribute("device/vendor") == (drive["vendor"] or "QEMU")
        properties = udev_properties(device.node)
        assert properties["ID_BUS"] == "scsi"
        assert properties["ID_SCSI_SERIAL"] == drive["serial"]  # from VPD page 80h
        assert _sg_node(device).is_char_device()


def test_scsi_debug(guest_manifest: dict[str, Any]) -> None:
    if guest_manifest["scsi_debug"] is None:
        pytest.skip("no scsi_debug configured for this guest")
    devices = [
        entry.name
        for entry in Path("/sys/block").iterdir()
        if (entry / "device" / "model").exists() and (entry / "device" / "model").read_text().strip() == "scsi_debug"
    ]
    assert len(devices) == 1, devices
    device = BlockDevice(devices[0], Path("/sys/block", devices[0]).resolve())
    assert "/pseudo_0/adapter0/" in str(device.sys_path)
    options = dict(option.split("=", 1) for option in guest_manifest["scsi_debug"].split())
    expected_megabytes = int(options.get("dev_size_mb", "8"))
    assert device.size_bytes == expected_megabytes << 20
    properties = udev_properties(device.node)
    assert properties["ID_BUS"] == "scsi"
    assert properties["ID_MODEL"] == "scsi_debug"
    assert _sg_node(device).is_char_device()
    if int(options.get("opts", "0"), 0) & 2:  # SDEBUG_OPT_MEDIUM_ERR: reads of the range fail
        _assert_medium_error(device, int(options.get("medium_error_start", "4660"), 0))


def _assert_medium_error(device: BlockDevice, first_bad_sector: int) -> None:
    """A direct read of the injected range fails with ENODATA, a read before it succeeds."""
    block = 4096
    bad_offset = first_bad_sector * 512 // block * block
    with mmap.mmap(-1, block) as buffer:
        descriptor = os.open(device.node, os.O_RDONLY | os.O_DIRECT)
        try:
            assert os.preadv(descriptor, [buffer], bad_offset - 16 * block) == block
            with pytest.raises(OSError) as raised:
                os.preadv(descriptor, [buffer], bad_offset)
            # Not EIO: since 5.x the block layer maps MEDIUM ERROR to BLK_STS_MEDIUM -> ENODATA.
            assert raised.value.errno == errno.ENODATA
        finally:
            os.close(descriptor)


def test_full_module_tree_is_available() -> None:
    # Later tests load dm-flakey, null_blk, nvmet, or reload scsi_debug with other options.
    completed = subprocess.run(
        ["modprobe", "--dry-run", "--show-depends", "dm-flakey"], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    assert "dm-flakey.ko" in completed.stdout


def test_root_is_a_private_overlay() -> None:
    mounts = {fields[1]: fields for fields in (line.split() for line in Path("/proc/mounts").read_text().splitlines())}
    assert mounts["/"][2] == "overlay"
    probe = Path("/etc/wipe-agent-guest-probe")
    probe.write_text("written inside the guest; must never reach the host\n")
    assert probe.read_text().startswith("written inside")


def _sg_node(device: BlockDevice) -> Path:
    generic = list((Path("/sys/block") / device.name / "device" / "scsi_generic").iterdir())
    assert len(generic) == 1, generic
    return Path("/dev") / generic[0].name
