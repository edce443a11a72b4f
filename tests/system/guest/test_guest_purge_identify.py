"""Inside the guest: ``wipe-agent inspect DEVICE --json`` through the real 6.1 kernel returns what
QEMU was configured with (serial, model, size) and the capabilities QEMU 7.2 really has.

NVMe goes through the NVMe admin ioctl, SATA through ATA PASS-THROUGH (16) on libata's SATL behind
AHCI, SCSI through SG_IO on virtio-scsi. The CLI runs in this process (click's CliRunner): the same
command code as the console script, without paying the guest's Python start-up once per drive.
"""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner

from agent.cli.main import cli
from agent.drive.opcodes import ATA_IDENTIFY_DEVICE
from agent.transport import AtaCommand, AtaProtocol
from agent.transport.sgio import SgIoTransport
from tests.system.guest.guestlib import BlockDevice, find_block_device


def _drive(manifest: dict[str, Any], kind: str) -> dict[str, Any]:
    drives: list[dict[str, Any]] = [drive for drive in manifest["drives"] if drive["kind"] == kind]
    assert drives, f"the host configured no {kind} drive"
    return drives[0]


def _device(drive: dict[str, Any]) -> BlockDevice:
    device = find_block_device(drive["kind"], drive["serial"])
    assert device is not None, f"no block device for {drive}"
    return device


def inspect_json(node: str) -> dict[str, Any]:
    """``wipe-agent inspect NODE --json``: exit 0 and one JSON document."""
    result = CliRunner().invoke(cli, ["inspect", node, "--json"], obj={})
    assert result.exit_code == 0, f"inspect {node} exited {result.exit_code}: {result.output}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_nvme_identify_through_the_admin_ioctl(guest_manifest: dict[str, Any]) -> None:
    """Identify Controller/Namespace: QEMU's serial and size; no Sanitize at all (SANICAP=0)."""
    drive = _drive(guest_manifest, "nvme")
    device = _device(drive)
    report = inspect_json(str(device.node))
    assert report["interface"] == "nvme" and report["usb"] is False
    assert report["serial"] == drive["serial"]
    assert report["model"] == "QEMU NVMe Ctrl"  # QEMU 7.2 has no model property for -device nvme
    assert report["oacs"]["format"] is True
    sanicap = report["sanicap"]
    assert sanicap["raw"] == 0, sanicap
    assert not any(sanicap[action] for action in ("crypto", "block", "overwrite")), sanicap
    assert report["fna"]["raw"] == 0, report["fna"]
    namespace = report["namespace"]
    assert namespace["nsid"] == 1 and "error" not in namespace, namespace
    assert namespace["size_bytes"] == drive["size_bytes"] == device.size_bytes
    assert namespace["size_blocks"] * namespace["block_size"] == drive["size_bytes"]


def test_sata_identify_through_ata_pass_through(guest_manifest: dict[str, Any]) -> None:
    """IDENTIFY DEVICE via libata's SATL: QEMU's model/serial/size; no Security, no SANITIZE."""
    drive = _drive(guest_manifest, "sata")
    device = _device(drive)
    report = inspect_json(str(device.node))
    assert report["interface"] == "ata" and report["kind"] == "ata-identify"
    assert report["model"] == drive["model"]
    assert report["serial"] == drive["serial"]
    assert report["capacity_bytes"] == drive["size_bytes"] == device.size_bytes
    assert report["max_lba"] == drive["size_bytes"] // 512 - 1
    assert report["logical_sector_size"] == 512
    assert report["security"]["supported"] is False, report["security"]
    assert report["security"]["enhanced_erase_supported"] is False
    assert report["sanitize"]["supported"] is False, report["sanitize"]


def test_sata_identify_comes_back_with_ata_registers(guest_manifest: dict[str, Any]) -> None:
    """Why the SATA inspect works on 6.1 although libata answers CK_COND=1 PIO data-in with
    ABORTED COMMAND (QEMU's PIO Setup FIS reports status 58h, DRQ set): SgIoTransport first sets
    D_SENSE, so the ATA Status Return descriptor arrives and shows neither ERR nor DF, and all 512
    bytes are there. Fixed-format sense from 6.1 puts the registers at the wrong offset (fixed in
    6.10), so without the descriptor the same IDENTIFY would be a CommandFailed."""
    device = _device(_drive(guest_manifest, "sata"))
    with SgIoTransport(str(device.node)) as transport:
        completion = transport.execute(
            AtaCommand(command=ATA_IDENTIFY_DEVICE, protocol=AtaProtocol.PIO_IN, count=1, data_in_length=512)
        )
    assert completion.ok and len(completion.data) == 512
    assert completion.ata is not None and not completion.ata.failed, completion
    assert completion.sense is not None and completion.sense.descriptor_format, completion.sense


def test_scsi_identify_through_sg_io(guest_manifest: dict[str, Any]) -> None:
    """INQUIRY + READ CAPACITY (16) on virtio-scsi: QEMU's vendor/product and exact size."""
    drive = _drive(guest_manifest, "scsi")
    device = _device(drive)
    report = inspect_json(str(device.node))
    assert report["interface"] == "scsi" and report["device_type"] == 0
    assert report["vendor"] == drive["vendor"]
    assert report["model"] == drive["product"]
    capacity = report["capacity"]
    assert capacity["capacity_bytes"] == drive["size_bytes"] == device.size_bytes
    assert capacity["block_count"] == capacity["max_lba"] + 1 == drive["size_bytes"] // 512
    assert capacity["logical_block_length"] == 512
    # QEMU's scsi-hd does not implement REPORT SUPPORTED OPERATION CODES: SANITIZE support unknown.
    assert report["sanitize"]["supported"] is None, report["sanitize"]
