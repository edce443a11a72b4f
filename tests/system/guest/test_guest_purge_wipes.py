"""Inside the guest: firmware purges and overwrite against QEMU's real emulated drives, driven by the
host (``tests/system/test_system_purge.py``), which then reads the backing images.

* QEMU NVMe has no Sanitize (SANICAP=0, opcode 84h invalid) and FNA=0 with NN=256 but one
  namespace: the agent's ``nist-purge`` ladder skips the Sanitize steps and takes
  ``nvme.format.user_erase`` (Purge): the planted data must be gone (the host checks the image too).
* A profile of only ``nvme.sanitize.block`` is refused; forced, the device answers Invalid Command
  Opcode and the transport raises it. Planted data stays.
* A profile of only ``ata.security_erase.enhanced`` on the AHCI disk is refused (IDENTIFY: no
  Security feature set); forced, SECURITY SET PASSWORD is aborted by the device — and the transport
  raises it, where ``hdparm`` would exit 0. Planted data stays.
* ``scsi_debug`` with an injected medium error: ``nist-clear-overwrite`` fails with
  ``media_error`` and routes the drive to ``destroy``.

The host passes ``WIPE_AGENT_MARKER``; each drive gets ``MARKER:SERIAL:N`` at every MiB. The CLI runs
in this process (click's CliRunner) to spare the guest a Python start-up per wipe.
"""

from __future__ import annotations

import json
import mmap
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agent.cli.main import cli
from agent.drive.ata import parse_ata_identify
from agent.drive.opcodes import ATA_IDENTIFY_DEVICE
from agent.methods.nvme_sanitize import NVME_SANITIZE, SANACT
from agent.transport import AtaCommand, AtaProtocol, CommandFailed, NvmeAdminCommand
from agent.transport.nvme_ioctl import NvmeIoctlTransport
from agent.transport.sgio import SgIoTransport
from tests.system.guest.guestlib import BlockDevice, find_block_device

BLOCK = 4096
MARKER_STRIDE = 1 << 20
NVME_SC_INVALID_OPCODE = 0x01  # NVMe Base 2.0 Generic Command Status 01h: Invalid Command Opcode
ATA_SECURITY_SET_PASSWORD = 0xF1  # ACS-4 SECURITY SET PASSWORD (F1h)

PROFILE = """schema = 1
summary = "system test: {method} only"
minimum_level = "purge"

[match]
media = ["ssd", "hdd"]

[[steps]]
method = "{method}"

[verify]
mode = "sampling"
"""


@pytest.fixture
def agent_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh state directory and a profile directory with one-step test profiles; returns the latter."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for method in ("nvme.sanitize.block", "ata.security_erase.enhanced"):
        (profiles / f"only-{method.replace('.', '-')}.toml").write_text(PROFILE.format(method=method))
    monkeypatch.setenv("WIPE_AGENT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("WIPE_AGENT_PROFILE_DIR", str(profiles))
    return profiles


def wipe(node: Path, profile: str) -> tuple[int, dict[str, Any]]:
    """``wipe-agent wipe NODE --profile PROFILE --yes --json``: its exit code and job JSON."""
    result = CliRunner().invoke(cli, ["wipe", str(node), "--profile", profile, "--yes", "--json"], obj={})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    try:
        job: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"wipe {node} --profile {profile} printed no JSON (exit {result.exit_code}): {result.output}")
    return result.exit_code, job


def _marker() -> str:
    marker = os.environ.get("WIPE_AGENT_MARKER")
    if not marker:
        pytest.fail("the host sets WIPE_AGENT_MARKER")
    return marker


def _manifest_drive(manifest: dict[str, Any], serial: str) -> tuple[dict[str, Any], BlockDevice]:
    drive = next((drive for drive in manifest["drives"] if drive["serial"] == serial), None)
    assert drive is not None, f"the host configured no drive {serial}"
    device = find_block_device(drive["kind"], serial)
    assert device is not None, drive
    return drive, device


def _offsets(device: BlockDevice) -> Iterator[int]:
    return iter(range(0, device.size_bytes, MARKER_STRIDE))


def plant(device: BlockDevice, serial: str) -> None:
    """Write ``MARKER:SERIAL:N`` at each MiB with O_DIRECT, flush, read it back."""
    marker = _marker()
    with mmap.mmap(-1, BLOCK) as buffer:
        descriptor = os.open(device.node, os.O_RDWR | os.O_DIRECT)
        try:
            for index, offset in enumerate(_offsets(device)):
                buffer.seek(0)
                buffer.write(f"{marker}:{serial}:{index}".encode().ljust(BLOCK, b"\xa5"))
                assert os.pwrite(descriptor, buffer, offset) == BLOCK
            os.fsync(descriptor)  # FLUSH: QEMU has written its image
        finally:
            os.close(descriptor)
    assert markers_on(device, serial) == len(list(_offsets(device)))


def markers_on(device: BlockDevice, serial: str) -> int:
    """How many of the planted blocks read back intact (O_DIRECT: the medium, not the page cache)."""
    marker, found = _marker(), 0
    with mmap.mmap(-1, BLOCK) as buffer:
        descriptor = os.open(device.node, os.O_RDONLY | os.O_DIRECT)
        try:
            for index, offset in enumerate(_offsets(device)):
                assert os.preadv(descriptor, [buffer], offset) == BLOCK
                found += buffer[:BLOCK] == f"{marker}:{serial}:{index}".encode().ljust(BLOCK, b"\xa5")
        finally:
            os.close(descriptor)
    return found


def _decision(job: dict[str, Any], method: str) -> dict[str, Any]:
    decisions: list[dict[str, Any]] = job["decisions"]
    decision = next((decision for decision in decisions if decision["method"] == method), None)
    assert decision is not None, decisions
    return decision


def assert_refused_untouched(code: int, job: dict[str, Any], method: str, reason: str) -> None:
    """Refused before any write: no method taken, nothing written, ``method`` skipped for ``reason``."""
    assert job["outcome"] == "refused", job
    assert code == 2, job  # EXIT_REFUSED, never 0 (sanitised)
    assert job["error_code"] == "not_supported", job
    assert job["method"] is None and job["bytes_written"] == 0 and job["verification"] is None, job
    decision = _decision(job, method)
    assert decision["taken"] is False and reason in decision["reason"], decision


def test_nvme_purge_ladder_takes_format_user_erase_and_erases(
    guest_manifest: dict[str, Any], agent_environment: Path
) -> None:
    """nist-purge on QEMU NVMe, a real job end to end: the three Sanitize steps are skipped (SANICAP=0),
    Format NVM user data erase is taken as Purge — QEMU's NN=256 is the highest NSID, its namespace
    list holds one — and the canaries and the read-back find nothing of the planted data."""
    serial = os.environ["WIPE_AGENT_NVME_FORMAT_SERIAL"]
    _, device = _manifest_drive(guest_manifest, serial)
    plant(device, serial)

    code, job = wipe(device.node, "nist-purge")
    assert code == 0 and job["outcome"] == "sanitised", job
    for action in ("crypto", "block", "overwrite"):
        decision = _decision(job, f"nvme.sanitize.{action}")
        assert decision["taken"] is False and "SANICAP = 0" in decision["reason"], decision
    taken = _decision(job, "nvme.format.user_erase")
    assert taken["taken"] is True and taken["level"] == "purge", taken
    assert job["method"] == "nvme.format.user_erase" and job["level"] == "purge", job
    details = job["method_details"]
    assert details["command"]["ses"] == 1 and details["command"]["namespaces"] == 1, details
    assert details["canaries"]["passed"] is True, details
    assert job["verification"]["passed"] is True and job["verification"]["mode"] == "sampling", job
    # independent of the job's own read-back: every planted block reads as zeros (QEMU punches holes)
    assert markers_on(device, serial) == 0
    with mmap.mmap(-1, BLOCK) as buffer:
        descriptor = os.open(device.node, os.O_RDONLY | os.O_DIRECT)
        try:
            for offset in _offsets(device):
                assert os.preadv(descriptor, [buffer], offset) == BLOCK
                assert buffer[:BLOCK] == bytes(BLOCK), f"offset {offset} not erased after Format NVM SES=1"
        finally:
            os.close(descriptor)


def test_nvme_sanitize_is_refused_and_the_device_really_lacks_it(
    guest_manifest: dict[str, Any], agent_environment: Path
) -> None:
    """Only nvme.sanitize.block: refused (SANICAP=0); forced, Invalid Command Opcode is raised."""
    serial = os.environ["WIPE_AGENT_NVME_SANITIZE_SERIAL"]
    _, device = _manifest_drive(guest_manifest, serial)
    plant(device, serial)

    code, job = wipe(device.node, "only-nvme-sanitize-block")
    assert_refused_untouched(code, job, "nvme.sanitize.block", "SANICAP = 0")

    with NvmeIoctlTransport(str(device.node)) as transport, pytest.raises(CommandFailed) as raised:
        transport.execute(NvmeAdminCommand(NVME_SANITIZE, nsid=0, cdw10=SANACT["block"], timeout_s=30.0))
    status = raised.value.completion.nvme_status
    assert status is not None and (status.sct, status.sc) == (0, NVME_SC_INVALID_OPCODE), status
    assert markers_on(device, serial) == len(list(_offsets(device)))


def test_ata_security_erase_is_refused_and_the_device_really_aborts(
    guest_manifest: dict[str, Any], agent_environment: Path
) -> None:
    """Only ata.security_erase.enhanced on AHCI: refused (no Security feature set); forced, SECURITY
    SET PASSWORD comes back aborted (hdparm exits 0 on it) and security stays disabled."""
    serial = os.environ["WIPE_AGENT_SATA_SERIAL"]
    _, device = _manifest_drive(guest_manifest, serial)
    plant(device, serial)

    code, job = wipe(device.node, "only-ata-security_erase-enhanced")
    assert_refused_untouched(code, job, "ata.security_erase.enhanced", "no Security feature set")

    password = bytearray(512)  # word 0: user password, High; words 1-16: the password
    password[2:18] = b"wipe-agent-test!"
    with SgIoTransport(str(device.node)) as transport:
        with pytest.raises(CommandFailed) as raised:
            transport.execute(
                AtaCommand(
                    ATA_SECURITY_SET_PASSWORD, AtaProtocol.PIO_OUT, count=1, data_out=bytes(password), extend=False
                )
            )
        registers = raised.value.completion.ata
        assert registers is not None and registers.aborted, raised.value
        identify = transport.execute(
            AtaCommand(command=ATA_IDENTIFY_DEVICE, protocol=AtaProtocol.PIO_IN, count=1, data_in_length=512)
        )
    security = parse_ata_identify(identify.data, verify_checksum=False).security
    assert not security.enabled and not security.locked, security
    assert markers_on(device, serial) == len(list(_offsets(device)))


def test_scsi_debug_medium_error_fails_the_overwrite_to_destroy(
    guest_manifest: dict[str, Any], agent_environment: Path
) -> None:
    """nist-clear-overwrite on scsi_debug with an injected MEDIUM ERROR (ENODATA in user space):
    failed, media_error, route destroy, and the failing offset lies in the injected range."""
    assert guest_manifest["scsi_debug"], "the host configured no scsi_debug"
    options = dict(option.split("=", 1) for option in guest_manifest["scsi_debug"].split())
    first, count = int(options["medium_error_start"]), int(options["medium_error_count"])
    models = {entry.name: entry / "device" / "model" for entry in Path("/sys/block").iterdir()}
    names = [name for name, model in models.items() if model.exists() and model.read_text().strip() == "scsi_debug"]
    assert len(names) == 1, names

    code, job = wipe(Path("/dev", names[0]), "nist-clear-overwrite")
    assert (job["outcome"], job["error_code"], job["route"]) == ("failed", "media_error", "destroy"), job
    assert code == 1 and job["method"] == "overwrite.zero", job
    found = re.search(r"offset (\d+)", job["reason"] or "")
    assert found is not None, job["reason"]
    assert first * 512 <= int(found.group(1)) < (first + count) * 512, job["reason"]
