"""Issue 3 in a real 6.1 kernel: identify parsing, NVMe Format user-data erase, refused firmware
erases that must not be reported as done, and a medium error during an overwrite.

One guest (2 NVMe, 1 AHCI SATA, 1 virtio-scsi disk, scsi_debug with an injected medium error) runs
``tests/system/guest/test_guest_purge_*.py`` in a single pytest session; the guest then powers off
and the host reads the backing images: planted markers must be gone where the drive erased and
still there where the agent refused. What QEMU 7.2 emulates and where it lies:
``/work/shared/design/HARDWARE-TESTING.md``.
"""

from __future__ import annotations

import secrets
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.system.qemu import Drive, Guest, GuestImage, Nvme, Sata, ScsiHd

pytestmark = pytest.mark.system

MARKER_STRIDE = 1 << 20  # the guest plants MARKER:SERIAL:N at every MiB
NVME_FORMAT = Nvme(size="8M", serial="WA-NVME-FORMAT")
NVME_SANITIZE = Nvme(size="8M", serial="WA-NVME-SANITIZE")
SATA = Sata(size="8M", serial="WA-SATA-SECURITY", model="WIPEAGENT TEST SATA DISK")
SCSI = ScsiHd(size="12M", serial="WA-SCSI-IDENT", vendor="WIPEAGNT", product="TEST SCSI DISK")
# opts=2: reads of 512-byte sectors [4096, 4096+2048) fail with MEDIUM ERROR. 1 MiB, so the
# read-back's samples cannot miss it (writes are not failed by scsi_debug).
SCSI_DEBUG = "dev_size_mb=8 opts=2 medium_error_start=4096 medium_error_count=2048"


@dataclass(frozen=True)
class PurgeRun:
    """The powered-off guest (images still on disk), the marker it planted and its test results."""

    guest: Guest
    marker: str
    outcomes: dict[str, str]  # guest test name -> passed / failed / error / skipped
    output: str


def _outcomes(junit_xml: str) -> dict[str, str]:
    outcomes: dict[str, str] = {}
    for case in ElementTree.parse(junit_xml).getroot().iter("testcase"):
        states = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.get("name", "")] = states[0] if states else "passed"
    return outcomes


@pytest.fixture(scope="module")
def purge_run(guest_image: GuestImage) -> Iterator[PurgeRun]:
    """Boot once, run both guest files in one pytest session, power off cleanly."""
    marker = f"wipe-agent-purge-{secrets.token_hex(8)}"
    environment = {
        "WIPE_AGENT_MARKER": marker,
        "WIPE_AGENT_NVME_FORMAT_SERIAL": NVME_FORMAT.serial,
        "WIPE_AGENT_NVME_SANITIZE_SERIAL": NVME_SANITIZE.serial,
        "WIPE_AGENT_SATA_SERIAL": SATA.serial,
    }
    # NVMe ordering: the identify checks take the first NVMe drive of the manifest (NVME_SANITIZE).
    drives: list[Drive] = [NVME_SANITIZE, NVME_FORMAT, SATA, SCSI]
    with Guest(drives, scsi_debug=SCSI_DEBUG, image=guest_image, environment=environment) as guest:
        result = guest.run_pytest(
            "tests/system/guest/test_guest_purge_identify.py",
            "tests/system/guest/test_guest_purge_wipes.py",
            name="purge",
            timeout=400,
        )
        assert result.junit_xml.exists(), f"guest pytest exited {result.exit_code} without a report:\n{result.output}"
        assert guest.shutdown() == 0, guest.console()
        yield PurgeRun(guest, marker, _outcomes(str(result.junit_xml)), result.output)


def assert_guest_passed(run: PurgeRun, *names: str) -> None:
    """Each named guest test ran and passed (a skip or a missing test is a failure here)."""
    for name in names:
        assert run.outcomes.get(name) == "passed", f"{name}: {run.outcomes.get(name, 'did not run')}\n{run.output}"


def markers_in_image(run: PurgeRun, drive: Drive) -> int:
    """How many ``MARKER:SERIAL:`` records the drive's backing image holds."""
    return run.guest.read_image(drive).count(f"{run.marker}:{drive.serial}:".encode())


def test_identify_through_the_real_kernel(purge_run: PurgeRun) -> None:
    """NVMe (admin ioctl), SATA (ATA PASS-THROUGH on AHCI), SCSI (SG_IO on virtio-scsi): inspect
    reports QEMU's configured serial/model/size and the capabilities QEMU really has."""
    assert_guest_passed(
        purge_run,
        "test_nvme_identify_through_the_admin_ioctl",
        "test_sata_identify_through_ata_pass_through",
        "test_sata_identify_comes_back_with_ata_registers",
        "test_scsi_identify_through_sg_io",
    )


def test_nvme_format_user_erase_leaves_no_planted_data_in_the_image(purge_run: PurgeRun) -> None:
    """The ladder refused (SANICAP=0; FNA=0 with NN=256); the method's Format NVM SES=1 then
    erased: no marker left in the host-side image, the planted blocks are zeros."""
    assert_guest_passed(purge_run, "test_nvme_purge_ladder_takes_format_user_erase_and_erases")
    assert markers_in_image(purge_run, NVME_FORMAT) == 0
    for offset in range(0, NVME_FORMAT.size_bytes, MARKER_STRIDE):
        assert purge_run.guest.read_image(NVME_FORMAT, offset, 4096) == bytes(4096), offset


def test_refused_firmware_erases_leave_the_data_and_claim_nothing(purge_run: PurgeRun) -> None:
    """NVMe Sanitize and ATA security erase: refused with the device's real limits, the forced
    commands fail with the device's error, and every planted marker is still in the images."""
    assert_guest_passed(
        purge_run,
        "test_nvme_sanitize_is_refused_and_the_device_really_lacks_it",
        "test_ata_security_erase_is_refused_and_the_device_really_aborts",
    )
    for drive in (NVME_SANITIZE, SATA):
        assert markers_in_image(purge_run, drive) == drive.size_bytes // MARKER_STRIDE, drive


def test_scsi_debug_medium_error_routes_the_drive_to_destroy(purge_run: PurgeRun) -> None:
    """An injected MEDIUM ERROR (ENODATA) fails the overwrite job: media_error, route destroy."""
    assert_guest_passed(purge_run, "test_scsi_debug_medium_error_fails_the_overwrite_to_destroy")
