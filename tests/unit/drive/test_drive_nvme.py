"""NVMe Identify Controller / Namespace parsers."""

from __future__ import annotations

import pytest

from agent.drive import IdentifyParseError, parse_nvme_id_ctrl, parse_nvme_id_ns
from agent.drive.nvme import NODMMAS_MODIFIED, NODMMAS_NOT_MODIFIED
from tests.unit.drive.drive_builders import nvme_id_ctrl, nvme_id_ns, recorded

WD_PREFIX = "nvme-id-ctrl-wdc-wds250g2b0c.prefix.bin"


# --- recorded real controller (first 384 bytes only; see tests/data/identify/README.md) ----


def test_real_wd_sn550_recorded_fields() -> None:
    prefix = recorded(WD_PREFIX)
    assert len(prefix) == 384
    # Zero padding only makes the length legal; nothing past byte 383 is asserted.
    controller = parse_nvme_id_ctrl(prefix + bytes(4096 - len(prefix)))
    assert controller.vendor_id == 0x15B7 and controller.subsystem_vendor_id == 0x15B7
    assert controller.serial == "2035A0805352"
    assert controller.model == "WDC WDS250G2B0C-00PXH0"
    assert controller.firmware == "211070WD"
    assert controller.ieee_oui == 0x001B44  # SanDisk/WD OUI 00-1B-44
    assert controller.version_text == "1.4.0"
    assert controller.total_capacity_bytes == 250_059_350_016
    oacs = controller.oacs
    assert oacs.raw == 0x0017
    assert oacs.security and oacs.format and oacs.firmware and oacs.self_test
    assert not oacs.ns_management
    sanicap = controller.sanicap
    assert sanicap.raw == 0x6000_0002
    assert sanicap.block and not sanicap.crypto and not sanicap.overwrite
    assert sanicap.ndi
    assert sanicap.nodmmas == NODMMAS_NOT_MODIFIED
    assert sanicap.nodmmas_meaning == "media_not_additionally_modified"


def test_real_prefix_alone_is_too_short() -> None:
    with pytest.raises(IdentifyParseError, match="exactly 4096 bytes, got 384"):
        parse_nvme_id_ctrl(recorded(WD_PREFIX))


def test_controller_json_has_the_issue_keys() -> None:
    report = parse_nvme_id_ctrl(nvme_id_ctrl()).to_json()
    assert {"model", "serial", "firmware", "oacs", "sanicap", "fna"} <= report.keys()
    assert {"security", "format", "ns_management"} <= report["oacs"].keys()
    assert {"crypto", "block", "overwrite", "ndi", "nodmmas"} <= report["sanicap"].keys()
    assert {"format_all_namespaces", "erase_all_namespaces", "crypto_erase_supported"} <= report["fna"].keys()


# --- constructed controller -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fna", "expected"),
    [
        (0b0000, (False, False, False, False)),
        (0b0001, (True, False, False, False)),
        (0b0010, (False, True, False, False)),
        (0b0100, (False, False, True, False)),
        (0b1000, (False, False, False, True)),
        (0b0111, (True, True, True, False)),
    ],
)
def test_fna_bits(fna: int, expected: tuple[bool, ...]) -> None:
    result = parse_nvme_id_ctrl(nvme_id_ctrl(fna=fna)).fna
    got = (
        result.format_all_namespaces,
        result.erase_all_namespaces,
        result.crypto_erase_supported,
        result.format_broadcast_unsupported,
    )
    assert got == expected


@pytest.mark.parametrize(
    ("sanicap", "expected"),
    [
        (0x0000_0000, (False, False, False, False, 0)),
        (0x0000_0001, (True, False, False, False, 0)),
        (0x0000_0002, (False, True, False, False, 0)),
        (0x0000_0004, (False, False, True, False, 0)),
        (0x2000_0007, (True, True, True, True, 0)),
        (0x8000_0001, (True, False, False, False, NODMMAS_MODIFIED)),
        (0xC000_0000, (False, False, False, False, 0b11)),
    ],
)
def test_sanicap_bits(sanicap: int, expected: tuple[object, ...]) -> None:
    result = parse_nvme_id_ctrl(nvme_id_ctrl(sanicap=sanicap)).sanicap
    assert (result.crypto, result.block, result.overwrite, result.ndi, result.nodmmas) == expected
    assert result.supported == any(expected[:3])


@pytest.mark.parametrize(
    ("oacs", "security", "format_", "ns_management"),
    [(0x0000, False, False, False), (0x0001, True, False, False), (0x0002, False, True, False),
     (0x0008, False, False, True), (0x000B, True, True, True)],
)  # fmt: skip
def test_oacs_bits(oacs: int, security: bool, format_: bool, ns_management: bool) -> None:
    result = parse_nvme_id_ctrl(nvme_id_ctrl(oacs=oacs)).oacs
    assert (result.security, result.format, result.ns_management) == (security, format_, ns_management)


def test_namespace_count_and_version() -> None:
    controller = parse_nvme_id_ctrl(nvme_id_ctrl(nn=32))
    assert controller.namespace_count == 32
    assert controller.version_text == "2.0.0"


@pytest.mark.parametrize("length", [0, 512, 4095, 4097, 8192])
def test_controller_wrong_length(length: int) -> None:
    with pytest.raises(IdentifyParseError, match="4096"):
        parse_nvme_id_ctrl(bytes(length))


def test_controller_all_zero() -> None:
    with pytest.raises(IdentifyParseError, match="zero"):
        parse_nvme_id_ctrl(bytes(4096))


def test_controller_non_ascii_serial() -> None:
    data = bytearray(nvme_id_ctrl())
    data[5] = 0xFF
    with pytest.raises(IdentifyParseError, match="SN"):
        parse_nvme_id_ctrl(bytes(data))


def test_controller_blank_model() -> None:
    with pytest.raises(IdentifyParseError, match="blank"):
        parse_nvme_id_ctrl(nvme_id_ctrl(model=""))


# --- constructed namespace ------------------------------------------------------------------


def test_namespace_512_byte_format() -> None:
    namespace = parse_nvme_id_ns(nvme_id_ns())
    assert namespace.current_format_index == 0
    assert namespace.block_size == 512
    assert namespace.size_bytes == 1_953_525_168 * 512
    assert [lba.data_size for lba in namespace.lba_formats] == [512, 4096]
    assert namespace.lba_formats[0].relative_performance == 2


def test_namespace_4k_format_with_metadata_flag() -> None:
    namespace = parse_nvme_id_ns(nvme_id_ns(nsze=1000, flbas=0x11, lbafs=((9, 0, 2), (12, 8, 0))))
    assert namespace.current_format_index == 1
    assert namespace.block_size == 4096
    assert namespace.current_format.metadata_size == 8
    assert namespace.metadata_at_end_of_lba
    assert namespace.to_json()["size_bytes"] == 4_096_000


def test_namespace_thin_provisioned() -> None:
    namespace = parse_nvme_id_ns(nvme_id_ns(nsze=1000, ncap=800, nuse=10))
    assert (namespace.size_blocks, namespace.capacity_blocks, namespace.utilization_blocks) == (1000, 800, 10)


def test_namespace_format_index_upper_bits_when_more_than_16_formats() -> None:
    formats = (*tuple((9, 0, 0) for _ in range(17)), (12, 0, 0))
    namespace = parse_nvme_id_ns(nvme_id_ns(flbas=0b0010_0001, lbafs=formats))  # index 0x11 = 17
    assert namespace.current_format_index == 17
    assert namespace.block_size == 4096


def test_namespace_upper_bits_ignored_with_16_or_fewer_formats() -> None:
    namespace = parse_nvme_id_ns(nvme_id_ns(flbas=0b0010_0001))
    assert namespace.current_format_index == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nsze": 0}, "inactive"),
        ({"nsze": 10, "ncap": 11}, "NCAP"),
        ({"nsze": 10, "ncap": 10, "nuse": 11}, "NUSE"),
        ({"flbas": 2}, "FLBAS"),
        ({"lbafs": ((0, 0, 0), (12, 0, 0))}, "data size 0"),
        ({"lbafs": ((8, 0, 0),)}, "data size 256"),
    ],
)
def test_namespace_invalid(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(IdentifyParseError, match=message):
        parse_nvme_id_ns(nvme_id_ns(**kwargs))  # type: ignore[arg-type]


def test_namespace_too_many_formats() -> None:
    data = bytearray(nvme_id_ns())
    data[25] = 64  # 65 formats
    with pytest.raises(IdentifyParseError, match="NLBAF"):
        parse_nvme_id_ns(bytes(data))


def test_namespace_wrong_length() -> None:
    with pytest.raises(IdentifyParseError, match="4096"):
        parse_nvme_id_ns(nvme_id_ns()[:100])


# --- QEMU 7.2 emulated controller, read through a real Linux 6.1 NVMe admin ioctl -----------


def test_qemu_nvme_controller_full_structure() -> None:
    controller = parse_nvme_id_ctrl(recorded("qemu-7.2-nvme-id-ctrl.bin"))
    assert (controller.model, controller.serial, controller.firmware) == (
        "QEMU NVMe Ctrl",
        "NVME0001",
        "7.2.22",
    )
    assert controller.vendor_id == 0x1B36 and controller.version_text == "1.4.0"
    assert controller.namespace_count == 256
    assert controller.oacs.format and controller.oacs.ns_management and not controller.oacs.security
    # HARDWARE-TESTING.md: QEMU 7.2 has no Sanitize and reports SANICAP = 0, FNA = 0.
    assert controller.sanicap.raw == 0 and not controller.sanicap.supported
    assert controller.fna.raw == 0


def test_qemu_nvme_namespace() -> None:
    namespace = parse_nvme_id_ns(recorded("qemu-7.2-nvme-id-ns.bin"))
    assert namespace.size_blocks == namespace.capacity_blocks == 131_072
    assert namespace.block_size == 512 and namespace.size_bytes == 64 * 1024 * 1024
    assert {lba.data_size for lba in namespace.lba_formats} == {512, 4096}
    assert any(lba.metadata_size for lba in namespace.lba_formats)
