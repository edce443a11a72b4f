"""Drive identity from udev properties and sysfs facts: a pure function, testable on recorded sets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

# Kernel names of devices that are software, not drives: treated as "virtual" media.
_VIRTUAL_PREFIXES = ("loop", "ram", "zram", "nbd", "vd", "xvd", "dm-", "md", "pmem")


@dataclass(frozen=True)
class SysfsFacts:
    """What sysfs says about a whole-disk block device (read by ``agent.discovery.sysfs``)."""

    name: str
    size_bytes: int
    logical_sector: int
    physical_sector: int
    rotational: bool
    removable: bool
    read_only: bool
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    vendor: str | None = None
    wwid: str | None = None
    backing_file: str | None = None  # loop devices only
    parent_subsystems: tuple[str, ...] = ()


@dataclass(frozen=True)
class DriveIdentity:
    """Who a drive is: what the operator confirms, the registry stores and the certificate prints."""

    path: str
    name: str
    by_id: str | None
    model: str
    serial: str
    firmware: str | None
    vendor: str | None
    size_bytes: int
    logical_sector: int
    physical_sector: int
    rotational: bool
    transport: str  # sata | nvme | scsi | usb | mmc | virtual
    media: str  # ssd | hdd | usb | virtual
    removable: bool
    read_only: bool
    id_path: str | None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON form (stable keys)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriveIdentity:
        """Inverse of :meth:`to_json`."""
        return cls(**{key: data[key] for key in cls.__dataclass_fields__})


def _decode_udev(value: str) -> str:
    r"""udev's *_ENC values escape bytes as ``\xNN``; decode them and trim padding."""
    out = bytearray()
    index = 0
    raw = value.encode("utf-8", "surrogateescape")
    while index < len(raw):
        if raw[index : index + 2] == b"\\x" and index + 4 <= len(raw):
            try:
                out.append(int(raw[index + 2 : index + 4], 16))
                index += 4
                continue
            except ValueError:
                pass
        out.append(raw[index])
        index += 1
    return out.decode("utf-8", "replace").strip()


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().replace("_", " ") if value.strip() else ""
    return value or None


def classify_transport(name: str, properties: Mapping[str, str], facts: SysfsFacts) -> str:
    """The bus a drive sits on, from most to least specific evidence."""
    bus = properties.get("ID_BUS", "")
    id_path = properties.get("ID_PATH", "")
    if bus == "usb" or "usb" in properties.get("ID_USB_DRIVER", "") or "-usb-" in id_path:
        return "usb"
    if "usb" in facts.parent_subsystems:
        return "usb"
    if name.startswith("nvme") or "nvme" in facts.parent_subsystems:
        return "nvme"
    if name.startswith("mmcblk") or "mmc" in facts.parent_subsystems:
        return "mmc"
    if name.startswith(_VIRTUAL_PREFIXES):
        return "virtual"
    if bus == "ata" or properties.get("ID_ATA") == "1" or "-ata-" in id_path:
        return "sata"
    if bus == "scsi" or name.startswith("sd"):
        return "scsi"
    return "virtual"


def classify_media(transport: str, rotational: bool) -> str:
    """Media type used by profiles and schemes: ssd, hdd, usb or virtual."""
    if transport == "virtual":
        return "virtual"
    if transport in ("usb", "mmc"):
        return "usb"
    return "hdd" if rotational else "ssd"


def identity_from(path: str, properties: Mapping[str, str], facts: SysfsFacts) -> DriveIdentity:
    """Combine udev properties (when udevd runs) with sysfs facts (always there)."""
    name = facts.name
    model = (
        (_decode_udev(properties["ID_MODEL_ENC"]) if "ID_MODEL_ENC" in properties else None)
        or _clean(properties.get("ID_MODEL"))
        or facts.model
    )
    serial = (
        _clean(properties.get("ID_SERIAL_SHORT"))
        or facts.serial
        or _clean(properties.get("ID_SCSI_SERIAL"))
        or facts.wwid
    )
    transport = classify_transport(name, properties, facts)
    if name.startswith("loop"):
        model = model or "Linux loop device"
        serial = serial or (f"loop:{facts.backing_file}" if facts.backing_file else None)
    links = properties.get("DEVLINKS", "").split()
    by_id_links = sorted(link for link in links if link.startswith("/dev/disk/by-id/"))
    # prefer the human-readable bus link over the wwn-/nvme-eui. ones
    by_id_links.sort(key=lambda link: ("/wwn-" in link or "nvme-eui." in link, link))
    rotational = facts.rotational and transport != "virtual"
    return DriveIdentity(
        path=path,
        name=name,
        by_id=by_id_links[0] if by_id_links else None,
        model=model or "unknown",
        serial=serial or "unknown",
        firmware=_clean(properties.get("ID_REVISION")) or facts.firmware,
        vendor=_clean(properties.get("ID_VENDOR")) or facts.vendor,
        size_bytes=facts.size_bytes,
        logical_sector=facts.logical_sector,
        physical_sector=facts.physical_sector,
        rotational=rotational,
        transport=transport,
        media=classify_media(transport, rotational),
        removable=facts.removable,
        read_only=facts.read_only,
        id_path=properties.get("ID_PATH"),
    )
