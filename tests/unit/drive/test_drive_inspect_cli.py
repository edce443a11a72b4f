"""``wipe-agent inspect``: the offline --dump form and the not-yet-live DEVICE form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from agent.cli.inspect_command import inspect
from agent.drive import probe
from agent.drive.probe import probe_transport
from tests.unit.drive.drive_builders import DATA_DIR, nvme_id_ctrl, nvme_id_ns
from wipe_agent_testing.emulated import DriveModel, EmulatedAtaDrive, EmulatedNvmeDrive, EmulatedScsiDrive

SSD = str(DATA_DIR / "ata-samsung-ssd-870-evo.bin")
HDD = str(DATA_DIR / "ata-hitachi-hde721010sla330.bin")
SATL = str(DATA_DIR / "ata-hitachi-hua722010cla330.bin")
WD_PREFIX = str(DATA_DIR / "nvme-id-ctrl-wdc-wds250g2b0c.prefix.bin")


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(inspect, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_ata_dump_json() -> None:
    code, out, _ = run("--dump", SSD, "--kind", "ata-identify", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["model"] == "Samsung SSD 870 EVO 2TB"
    assert report["security"]["frozen"] is False
    assert report["sanitize"] == {
        "supported": False, "crypto": False, "block": False, "overwrite": False,
        "antifreeze_lock_supported": False,
    }  # fmt: skip
    assert report["rotation_rate"] == 1
    assert report["max_lba"] == 3_907_029_167


def test_ata_dump_text_summary() -> None:
    code, out, _ = run("--dump", HDD, "--kind", "ata-identify")
    assert code == 0
    assert "Hitachi HDE721010SLA330" in out
    assert "7200 rpm" in out
    assert "frozen" in out
    assert "324 min" in out


def test_bad_checksum_exits_2_with_one_line() -> None:
    code, out, err = run("--dump", SATL, "--kind", "ata-identify")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and "checksum mismatch" in err


def test_bad_checksum_json_error_object() -> None:
    code, out, _ = run("--dump", SATL, "--kind", "ata-identify", "--json")
    assert code == 2
    error = json.loads(out)["error"]
    assert error["code"] == "bad_dump" and "checksum" in error["message"]


def test_ignore_checksum_parses_satl_data() -> None:
    code, out, _ = run("--dump", SATL, "--kind", "ata-identify", "--json", "--ignore-checksum")
    assert code == 0
    report = json.loads(out)
    assert report["model"] == "Hitachi HUA722010CLA330" and report["checksum_verified"] is False


def test_short_dump() -> None:
    code, out, _ = run("--dump", WD_PREFIX, "--kind", "nvme-id-ctrl", "--json")
    assert code == 2
    assert "expected exactly 4096 bytes, got 384" in json.loads(out)["error"]["message"]


def test_wrong_kind() -> None:
    code, _, err = run("--dump", SSD, "--kind", "nvme-id-ctrl")
    assert code == 2 and "4096" in err


def test_garbage(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(bytes(range(256)) * 16)
    code, out, _ = run("--dump", str(garbage), "--kind", "nvme-id-ctrl", "--json")
    assert code == 2 and json.loads(out)["error"]["code"] == "bad_dump"


def test_huge_file_is_refused(tmp_path: Path) -> None:
    huge = tmp_path / "huge.bin"
    huge.write_bytes(bytes(70_000))
    code, _, err = run("--dump", str(huge), "--kind", "ata-identify")
    assert code == 2 and "larger than" in err


def test_missing_file(tmp_path: Path) -> None:
    code, _, err = run("--dump", str(tmp_path / "nope.bin"), "--kind", "ata-identify")
    assert code == 2 and "no such identify dump" in err


def test_nvme_controller_and_namespace_dumps(tmp_path: Path) -> None:
    controller = tmp_path / "id-ctrl.bin"
    controller.write_bytes(nvme_id_ctrl(sanicap=0x0000_0003, fna=0b101))
    code, out, _ = run("--dump", str(controller), "--kind", "nvme-id-ctrl", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["sanicap"]["crypto"] and report["sanicap"]["block"]
    assert report["fna"]["format_all_namespaces"] and report["fna"]["crypto_erase_supported"]
    code, out, _ = run("--dump", str(controller), "--kind", "nvme-id-ctrl")
    assert code == 0 and "crypto, block" in out

    namespace = tmp_path / "id-ns.bin"
    namespace.write_bytes(nvme_id_ns(nsze=1000, flbas=1))
    code, out, _ = run("--dump", str(namespace), "--kind", "nvme-id-ns")
    assert code == 0 and "1000 blocks x 4096 B" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dump", SSD], "--dump needs --kind"),
        (["/dev/sda", "--dump", SSD, "--kind", "ata-identify"], "not both"),
        ([], "give a DEVICE"),
        (["/dev/sda", "--kind", "ata-identify"], "--kind only applies"),
    ],
)
def test_usage_errors(args: list[str], message: str) -> None:
    code, _, err = run(*args)
    assert code == 2 and message in err


def test_live_device_missing_node() -> None:
    code, out, _ = run("/dev/wipe-agent-test-no-such-disk", "--json")
    assert code == 2
    assert json.loads(out)["error"]["code"] == "drive_not_found"


def test_live_device_goes_through_probe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    drive = EmulatedAtaDrive(tmp_path / "ata.img", size_bytes=1 << 20, model=DriveModel(model="Emu SSD"))

    def fake_probe(path: str) -> dict[str, Any]:
        return {"device": path, "usb": True, **probe_transport(drive, "ata")}

    monkeypatch.setattr(probe, "probe_device", fake_probe)
    # /dev/sdz is not on this machine: the kernel-name resolution is tested on real loops (tests/unit/inputs)
    monkeypatch.setattr("agent.cli.context.resolve_device", lambda device: device)
    code, out, _ = run("/dev/sdz")
    assert code == 0
    assert "/dev/sdz (behind USB bridge)" in out and "Emu SSD" in out
    code, out, _ = run("/dev/sdz", "--json")
    assert code == 0 and json.loads(out)["model"] == "Emu SSD"


def test_live_scsi_and_nvme_text(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    scsi = EmulatedScsiDrive(tmp_path / "sas.img", size_bytes=1 << 20, model=DriveModel(rotation_rpm=15000))
    nvme = EmulatedNvmeDrive(tmp_path / "nvme.img", size_bytes=1 << 20)
    monkeypatch.setattr("agent.cli.context.resolve_device", lambda device: device)  # no /dev/sdy here
    monkeypatch.setattr(probe, "probe_device", lambda path: {"device": path, **probe_transport(scsi, "scsi")})
    code, out, _ = run("/dev/sdy")
    assert code == 0 and "15000 rpm" in out and "crypto, block, overwrite" in out
    monkeypatch.setattr(probe, "probe_device", lambda path: {"device": path, **probe_transport(nvme, "nvme")})
    code, out, _ = run("/dev/nvme0")
    assert code == 0 and "namespace 1" in out and "2048 blocks x 512 B" in out
