"""Identity from recorded udev property sets (as `udevadm info --query=property` prints them)."""

from __future__ import annotations

import pytest

from agent.discovery.identity import SysfsFacts, identity_from
from agent.errors import DriveNotFound

SATA_SSD = {
    "DEVNAME": "/dev/sda", "DEVTYPE": "disk", "ID_ATA": "1", "ID_BUS": "ata", "ID_TYPE": "disk",
    "ID_MODEL": "Samsung_SSD_860_EVO_500GB", "ID_MODEL_ENC": "Samsung\\x20SSD\\x20860\\x20EVO\\x20500GB\\x20\\x20",
    "ID_REVISION": "RVT04B6Q", "ID_SERIAL": "Samsung_SSD_860_EVO_500GB_S4XBNF0M812345X",
    "ID_SERIAL_SHORT": "S4XBNF0M812345X", "ID_PATH": "pci-0000:00:17.0-ata-3",
    "DEVLINKS": "/dev/disk/by-id/wwn-0x5002538e40a1b2c3 /dev/disk/by-path/pci-0000:00:17.0-ata-3 "
                "/dev/disk/by-id/ata-Samsung_SSD_860_EVO_500GB_S4XBNF0M812345X",
}
NVME = {
    "DEVNAME": "/dev/nvme0n1", "DEVTYPE": "disk", "ID_MODEL": "SAMSUNG MZVLB512HBJQ-000L7",
    "ID_SERIAL_SHORT": "S4ENNX0N123456", "ID_REVISION": "4M2QEXH7", "ID_PATH": "pci-0000:3d:00.0-nvme-1",
    "DEVLINKS": "/dev/disk/by-id/nvme-eui.0025388b91b2c3d4 "
                "/dev/disk/by-id/nvme-SAMSUNG_MZVLB512HBJQ-000L7_S4ENNX0N123456",
}
USB_STICK = {
    "DEVNAME": "/dev/sdb", "DEVTYPE": "disk", "ID_BUS": "usb", "ID_USB_DRIVER": "usb-storage",
    "ID_MODEL": "Ultra_Fit", "ID_VENDOR": "SanDisk", "ID_SERIAL_SHORT": "4C530001231122115304",
    "ID_PATH": "pci-0000:00:14.0-usb-0:2:1.0-scsi-0:0:0:0",
    "DEVLINKS": "/dev/disk/by-id/usb-SanDisk_Ultra_Fit_4C530001231122115304-0:0",
}
SAS_HDD = {
    "DEVNAME": "/dev/sdc", "DEVTYPE": "disk", "ID_BUS": "scsi", "ID_MODEL": "ST600MM0088",
    "ID_VENDOR": "SEAGATE", "ID_SCSI_SERIAL": "W420ABCD0000E8123ABC", "ID_PATH": "pci-0000:02:00.0-sas-phy0-lun-0",
}


def facts(name: str, *, rotational: bool = False, serial: str | None = None, backing: str | None = None,
          parents: tuple[str, ...] = ()) -> SysfsFacts:
    return SysfsFacts(name=name, size_bytes=500107862016, logical_sector=512, physical_sector=4096,
                      rotational=rotational, removable=False, read_only=False, serial=serial,
                      backing_file=backing, parent_subsystems=parents)


def test_sata_ssd() -> None:
    identity = identity_from("/dev/sda", SATA_SSD, facts("sda", rotational=False))
    assert identity.transport == "sata" and identity.media == "ssd"
    assert identity.model == "Samsung SSD 860 EVO 500GB"  # decoded, padding trimmed
    assert identity.serial == "S4XBNF0M812345X" and identity.firmware == "RVT04B6Q"
    assert identity.by_id == "/dev/disk/by-id/ata-Samsung_SSD_860_EVO_500GB_S4XBNF0M812345X"  # not wwn-
    assert identity.id_path == "pci-0000:00:17.0-ata-3"


def test_nvme() -> None:
    identity = identity_from("/dev/nvme0n1", NVME, facts("nvme0n1", parents=("nvme", "pci")))
    assert identity.transport == "nvme" and identity.media == "ssd"
    assert identity.by_id is not None and "nvme-SAMSUNG" in identity.by_id


def test_usb_stick_is_usb_even_though_it_is_sd() -> None:
    identity = identity_from("/dev/sdb", USB_STICK, facts("sdb", rotational=True))
    assert identity.transport == "usb" and identity.media == "usb"
    assert identity.vendor == "SanDisk" and identity.model == "Ultra Fit"


def test_sas_hdd_uses_scsi_serial() -> None:
    identity = identity_from("/dev/sdc", SAS_HDD, facts("sdc", rotational=True))
    assert identity.transport == "scsi" and identity.media == "hdd"
    assert identity.serial == "W420ABCD0000E8123ABC"


def test_loop_without_udev_uses_sysfs_and_backing_file() -> None:
    identity = identity_from("/dev/loop3", {"DEVNAME": "/dev/loop3"}, facts("loop3", rotational=True, backing="/x.img"))
    assert identity.transport == "virtual" and identity.media == "virtual" and not identity.rotational
    assert identity.model == "Linux loop device" and identity.serial == "loop:/x.img"


def test_usb_bridge_detected_from_sysfs_ancestry_without_udev() -> None:
    identity = identity_from("/dev/sdd", {}, facts("sdd", serial="ABC", parents=("scsi", "usb", "pci")))
    assert identity.transport == "usb"


def test_virtio_disk_is_virtual() -> None:
    identity = identity_from("/dev/vdb", {"ID_PATH": "pci-0000:00:05.0"}, facts("vdb", rotational=True))
    assert identity.transport == "virtual"


def test_round_trip_json() -> None:
    identity = identity_from("/dev/sda", SATA_SSD, facts("sda"))
    from agent.discovery.identity import DriveIdentity

    assert DriveIdentity.from_json(identity.to_json()) == identity


def test_one_udev_context_per_process_is_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ``pyudev.Context()`` runs an ``ldconfig -p`` subprocess: identification must not pay it every time."""
    import pyudev

    from agent.discovery import udev

    created: list[object] = []
    real = pyudev.Context

    def counting() -> object:
        context = real()
        created.append(context)
        return context

    monkeypatch.setattr(udev, "_shared", None)
    monkeypatch.setattr(udev.pyudev, "Context", counting)
    udev.enumerate_drives()
    udev.enumerate_drives()  # (not compared: other processes may attach loop devices meanwhile)
    with pytest.raises(DriveNotFound):
        udev.identify("/")
    assert len(created) == 1
