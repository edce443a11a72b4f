"""Build IDENTIFY / Identify / SCSI parameter data for edge cases the recorded dumps lack.

Every builder starts from a plausible device and takes keyword overrides, so a test states
only the bits it is about.  Word/byte positions are the same ones the parsers cite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "identify"


def recorded(name: str) -> bytes:
    """Bytes of a recorded dump in tests/data/identify."""
    return (DATA_DIR / name).read_bytes()


def _ata_string(text: str, words: int) -> list[int]:
    raw = text.ljust(words * 2).encode("ascii")
    return [(raw[2 * i] << 8) | raw[2 * i + 1] for i in range(words)]


def ata_words_to_bytes(words: list[int], *, checksum: bool = True) -> bytes:
    """Serialise 256 words; with ``checksum`` set word 255 to A5h + a valid checksum."""
    assert len(words) == 256
    words = list(words)
    if checksum:
        words[255] = 0x00A5
        partial = sum(b for w in words for b in w.to_bytes(2, "little"))
        words[255] = (((-partial) % 256) << 8) | 0xA5
    return b"".join(w.to_bytes(2, "little") for w in words)


def ata_identify_words(
    *,
    model: str = "WIPE-TEST SSD 480GB",
    serial: str = "WT0001",
    firmware: str = "FW01",
    sectors: int = 937_703_088,
    rotation: int = 0x0001,
    security: int = 0x0001,
    erase_time: int = 0x0002,
    enhanced_erase_time: int = 0x0004,
    sanitize: int = 0x0000,
) -> list[int]:
    """A plain ACS-4 SATA SSD: LBA48, security supported, TRIM, 512-byte sectors."""
    words = [0] * 256
    words[0] = 0x0040  # ATA device, fixed
    words[10:20] = _ata_string(serial, 10)
    words[23:27] = _ata_string(firmware, 4)
    words[27:47] = _ata_string(model, 20)
    words[59] = sanitize
    words[60] = min(sectors, 0x0FFFFFFF) & 0xFFFF
    words[61] = min(sectors, 0x0FFFFFFF) >> 16
    words[82] = 0x746B  # includes bit 10 HPA, bit 1 security
    words[83] = 0x7D01  # bits 15:14 = 01b, bit 10 LBA48, bit 11 DCO
    words[84] = 0x4163
    words[86] = 0xBC01  # bit 15: words 119-120 valid
    words[89] = erase_time
    words[90] = enhanced_erase_time
    for index in range(4):
        words[100 + index] = (sectors >> (16 * index)) & 0xFFFF
    words[106] = 0x4000  # valid, one logical sector per physical
    words[119] = 0x4000
    words[128] = security
    words[169] = 0x0001  # TRIM
    words[217] = rotation
    return words


def ata_identify(*, checksum: bool = True, patch: dict[int, int] | None = None, **fields: Any) -> bytes:
    """Bytes of :func:`ata_identify_words` (``fields``), then ``patch`` {word: value} applied."""
    words = ata_identify_words(**fields)
    for index, value in (patch or {}).items():
        words[index] = value
    return ata_words_to_bytes(words, checksum=checksum)


def nvme_id_ctrl(
    *,
    model: str = "WIPE-TEST NVMe 1TB",
    serial: str = "NV0001",
    firmware: str = "1.0",
    oacs: int = 0x0017,
    sanicap: int = 0x0000,
    fna: int = 0x00,
    nn: int = 1,
) -> bytes:
    """A 4096-byte Identify Controller structure."""
    data = bytearray(4096)
    data[0:2] = (0x1B36).to_bytes(2, "little")
    data[4:24] = serial.ljust(20).encode("ascii")
    data[24:64] = model.ljust(40).encode("ascii")
    data[64:72] = firmware.ljust(8).encode("ascii")
    data[80:84] = (0x00020000).to_bytes(4, "little")
    data[256:258] = oacs.to_bytes(2, "little")
    data[328:332] = sanicap.to_bytes(4, "little")
    data[516:520] = nn.to_bytes(4, "little")
    data[524] = fna
    return bytes(data)


def nvme_id_ns(
    *,
    nsze: int = 1_953_525_168,
    ncap: int | None = None,
    nuse: int | None = None,
    flbas: int = 0,
    lbafs: tuple[tuple[int, int, int], ...] = ((9, 0, 2), (12, 0, 0)),
) -> bytes:
    """A 4096-byte Identify Namespace structure; ``lbafs`` = (LBADS, MS, RP) per format."""
    data = bytearray(4096)
    data[0:8] = nsze.to_bytes(8, "little")
    data[8:16] = (nsze if ncap is None else ncap).to_bytes(8, "little")
    data[16:24] = ((nsze if ncap is None else ncap) if nuse is None else nuse).to_bytes(8, "little")
    data[25] = len(lbafs) - 1
    data[26] = flbas
    for index, (lbads, ms, rp) in enumerate(lbafs):
        descriptor = ms | (lbads << 16) | (rp << 24)
        data[128 + 4 * index : 132 + 4 * index] = descriptor.to_bytes(4, "little")
    return bytes(data)


def scsi_inquiry(*, vendor: str = "SEAGATE", product: str = "ST4000NM0025", revision: str = "E002") -> bytes:
    """96 bytes of standard INQUIRY data of a SAS disk."""
    data = bytearray(96)
    data[0] = 0x00  # qualifier 000b, direct access block device
    data[2] = 0x06  # SPC-4
    data[3] = 0x12  # HISUP, RESPONSE DATA FORMAT 2
    data[4] = 91
    data[8:16] = vendor.ljust(8).encode("ascii")
    data[16:32] = product.ljust(16).encode("ascii")
    data[32:36] = revision.ljust(4).encode("ascii")
    return bytes(data)


def scsi_read_capacity16(*, last_lba: int, block: int = 512, exponent: int = 0, byte14: int = 0) -> bytes:
    """32 bytes of READ CAPACITY (16) parameter data."""
    data = bytearray(32)
    data[0:8] = last_lba.to_bytes(8, "big")
    data[8:12] = block.to_bytes(4, "big")
    data[13] = exponent
    data[14] = byte14
    return bytes(data)


def scsi_vpd_b1(*, rotation: int, form_factor: int = 2) -> bytes:
    """64 bytes of the Block Device Characteristics VPD page."""
    data = bytearray(64)
    data[1] = 0xB1
    data[2:4] = (0x3C).to_bytes(2, "big")
    data[4:6] = rotation.to_bytes(2, "big")
    data[7] = form_factor
    return bytes(data)


def rsoc_descriptor(
    opcode: int, service_action: int = 0, *, servactv: bool = False, ctdp: bool = False
) -> bytes:
    """One all_commands command descriptor (8 bytes, 20 with a timeouts descriptor)."""
    descriptor = bytearray(8)
    descriptor[0] = opcode
    descriptor[2:4] = service_action.to_bytes(2, "big")
    descriptor[5] = (0b10 if ctdp else 0) | (0b01 if servactv else 0)
    descriptor[6:8] = (16).to_bytes(2, "big")
    if ctdp:
        descriptor += (10).to_bytes(2, "big") + bytes(10)
    return bytes(descriptor)


def rsoc_all_commands(*descriptors: bytes) -> bytes:
    """REPORT SUPPORTED OPERATION CODES all_commands parameter data."""
    body = b"".join(descriptors)
    return len(body).to_bytes(4, "big") + body
