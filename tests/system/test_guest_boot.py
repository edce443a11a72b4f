"""Boot a real Linux 6.1 kernel under QEMU with emulated NVMe, SATA (AHCI), SCSI (virtio-scsi) and
scsi_debug drives, and check from inside the guest what the kernel and udev make of them."""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system.qemu import Guest, GuestImage, Nvme, PytestResult, Sata, ScsiHd

pytestmark = pytest.mark.system

# opts=2: reads of sectors [medium_error_start, +count) fail with MEDIUM ERROR (checked in the guest).
SCSI_DEBUG = "dev_size_mb=16 sector_size=512 opts=2 medium_error_start=8192 medium_error_count=16"


def assert_guest_pytest_passed(result: PytestResult) -> None:
    """The guest's pytest run passed and really ran tests (JUnit report present, failures 0)."""
    assert result.exit_code == 0, f"guest pytest exited {result.exit_code}:\n{result.output}"
    suite = ElementTree.parse(result.junit_xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    assert int(suite.get("tests", "0")) > 0, result.output
    assert int(suite.get("failures", "0")) == 0 and int(suite.get("errors", "0")) == 0, result.output


@pytest.fixture(scope="module")
def storage_guest(guest_image: GuestImage) -> Iterator[Guest]:
    """One guest for several checks: NVMe (one with two namespaces) + SATA + SCSI disks and a
    scsi_debug disk."""
    drives = [
        Nvme(size="64M", serial="NVME0001"),
        Nvme(size="8M", serial="NVME0002", extra_namespaces=("12M",)),
        Sata(size="32M", serial="SATA0001", image_format="qcow2"),
        ScsiHd(size="48M", serial="SCSI0001"),
    ]
    with Guest(drives, scsi_debug=SCSI_DEBUG, image=guest_image) as guest:
        yield guest


def test_guest_sees_each_drive_with_its_transport_and_size(storage_guest: Guest) -> None:
    result = storage_guest.run_pytest("tests/system/guest/test_guest_drives.py", name="drives")
    assert_guest_pytest_passed(result)
    # The guest wrote into its overlay, never into the host's root.
    assert not Path("/etc/wipe-agent-guest-probe").exists()


def test_nvme_hotplug_and_removal_seen_by_udev_in_guest(storage_guest: Guest) -> None:
    monitor = storage_guest.spawn(
        [*storage_guest.pytest_command(), "tests/system/guest/test_guest_hotplug.py"],
        environment={"WIPE_AGENT_HOTPLUG_SERIAL": "HOTPLUG1"},
    )
    storage_guest.wait_for_file("hotplug-listening", timeout=120, process=monitor)
    drive = storage_guest.hotplug(Nvme(size="16M", serial="HOTPLUG1"))
    assert storage_guest.image(drive).exists()
    storage_guest.wait_for_file("hotplug-added", process=monitor)
    storage_guest.unplug(drive)
    result = monitor.wait(timeout=120)
    assert result.exit_code == 0, result.output
    assert all(existing.name != drive.name for existing in storage_guest.drives)


def test_marker_written_in_guest_reaches_host_images(guest_image: GuestImage) -> None:
    marker = f"wipe-agent-marker-{secrets.token_hex(8)}"
    offset = 5 << 20
    drives = [
        Nvme(size="16M", serial="NVMEMARK"),
        Sata(size="16M", serial="SATAMARK", image_format="qcow2"),
        ScsiHd(size="16M", serial="SCSIMARK"),
    ]
    with Guest(drives, image=guest_image) as guest:
        result = guest.run_pytest(
            "tests/system/guest/test_guest_marker.py",
            name="marker",
            environment={"WIPE_AGENT_MARKER": marker, "WIPE_AGENT_MARKER_OFFSET": str(offset)},
        )
        assert_guest_pytest_passed(result)
        assert guest.shutdown() == 0, guest.console()
        for drive in drives:
            expected = f"{marker}:{drive.serial}".encode()
            assert guest.read_image(drive, offset, len(expected)) == expected, drive
            assert guest.read_image(drive).count(marker.encode()) == 1, drive
