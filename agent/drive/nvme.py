"""NVMe Identify Controller (CNS 01h) and Identify Namespace (CNS 00h) data structures.

Byte offsets follow the Identify Controller data structure of the NVM Express Base Specification
2.0 and the NVM Command Set Identify Namespace data structure of the NVM Command Set
Specification 1.0 (the same offsets as in NVMe Base 1.4).  All integers are little-endian.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.drive._raw import ascii_field, bit, le, require_length
from agent.drive.errors import IdentifyParseError

IDENTIFY_LENGTH = 4096
_WHAT_CTRL = "NVMe Identify Controller"
_WHAT_NS = "NVMe Identify Namespace"

# SANICAP bits 31:30 NODMMAS (No-Deallocate Modifies Media After Sanitize), NVMe Base 2.0.
NODMMAS_NOT_REPORTED = 0b00
NODMMAS_NOT_MODIFIED = 0b01
NODMMAS_MODIFIED = 0b10
_NODMMAS_NAMES = {
    NODMMAS_NOT_REPORTED: "not_reported",
    NODMMAS_NOT_MODIFIED: "media_not_additionally_modified",
    NODMMAS_MODIFIED: "media_additionally_modified",
    0b11: "reserved",
}


@dataclass(frozen=True)
class NvmeOacs:
    """Optional Admin Command Support (bytes 257:256)."""

    raw: int
    security: bool
    format: bool
    firmware: bool
    ns_management: bool
    self_test: bool
    lockdown: bool

    def to_json(self) -> dict[str, Any]:
        """Keys per issue 3 plus ``firmware``, ``self_test`` and ``raw``."""
        return {
            "security": self.security,
            "format": self.format,
            "ns_management": self.ns_management,
            "firmware": self.firmware,
            "self_test": self.self_test,
            "raw": self.raw,
        }


@dataclass(frozen=True)
class NvmeSanicap:
    """Sanitize Capabilities (bytes 331:328)."""

    raw: int
    crypto: bool
    block: bool
    overwrite: bool
    ndi: bool
    nodmmas: int

    @property
    def nodmmas_meaning(self) -> str:
        """Name of the NODMMAS code (what a no-deallocate sanitize does to media)."""
        return _NODMMAS_NAMES[self.nodmmas]

    @property
    def supported(self) -> bool:
        """True when at least one sanitize action is supported."""
        return self.crypto or self.block or self.overwrite

    def to_json(self) -> dict[str, Any]:
        """Keys per issue 3; ``nodmmas`` is the 2-bit code, ``nodmmas_meaning`` its name."""
        return {
            "crypto": self.crypto,
            "block": self.block,
            "overwrite": self.overwrite,
            "ndi": self.ndi,
            "nodmmas": self.nodmmas,
            "nodmmas_meaning": self.nodmmas_meaning,
            "raw": self.raw,
        }


@dataclass(frozen=True)
class NvmeFna:
    """Format NVM Attributes (byte 524)."""

    raw: int
    format_all_namespaces: bool
    erase_all_namespaces: bool
    crypto_erase_supported: bool
    format_broadcast_unsupported: bool

    def to_json(self) -> dict[str, Any]:
        """Keys per issue 3 plus ``format_broadcast_unsupported`` and ``raw``."""
        return {
            "format_all_namespaces": self.format_all_namespaces,
            "erase_all_namespaces": self.erase_all_namespaces,
            "crypto_erase_supported": self.crypto_erase_supported,
            "format_broadcast_unsupported": self.format_broadcast_unsupported,
            "raw": self.raw,
        }


@dataclass(frozen=True)
class NvmeIdController:
    """The parts of Identify Controller data that identity, policy and methods need."""

    vendor_id: int
    subsystem_vendor_id: int
    serial: str
    model: str
    firmware: str
    ieee_oui: int
    version: int
    controller_id: int
    oacs: NvmeOacs
    sanicap: NvmeSanicap
    fna: NvmeFna
    namespace_count: int
    oncs: int
    volatile_write_cache: bool
    total_capacity_bytes: int

    @property
    def version_text(self) -> str:
        """VER as ``major.minor.tertiary`` (``"unreported"`` for NVMe 1.0 controllers: VER = 0)."""
        if self.version == 0:
            return "unreported"
        return f"{self.version >> 16}.{(self.version >> 8) & 0xFF}.{self.version & 0xFF}"

    def to_json(self) -> dict[str, Any]:
        """JSON object with the issue-3 keys first, then extra facts."""
        return {
            "kind": "nvme-id-ctrl",
            "model": self.model,
            "serial": self.serial,
            "firmware": self.firmware,
            "oacs": self.oacs.to_json(),
            "sanicap": self.sanicap.to_json(),
            "fna": self.fna.to_json(),
            "vendor_id": self.vendor_id,
            "subsystem_vendor_id": self.subsystem_vendor_id,
            "ieee_oui": self.ieee_oui,
            "version": self.version_text,
            "controller_id": self.controller_id,
            "namespace_count": self.namespace_count,
            "write_zeroes_supported": bit(self.oncs, 3),
            "dataset_management_supported": bit(self.oncs, 2),
            "volatile_write_cache": self.volatile_write_cache,
            "total_capacity_bytes": self.total_capacity_bytes,
        }


@dataclass(frozen=True)
class NvmeLbaFormat:
    """One LBA Format descriptor (LBAFn, 4 bytes)."""

    index: int
    metadata_size: int
    data_size: int
    relative_performance: int

    def to_json(self) -> dict[str, Any]:
        """Plain fields; ``data_size`` is in bytes (2^LBADS), 0 when LBADS = 0 (unsupported)."""
        return {
            "index": self.index,
            "data_size": self.data_size,
            "metadata_size": self.metadata_size,
            "relative_performance": self.relative_performance,
        }


@dataclass(frozen=True)
class NvmeIdNamespace:
    """Size and LBA formats of one namespace."""

    size_blocks: int
    capacity_blocks: int
    utilization_blocks: int
    features: int
    lba_formats: tuple[NvmeLbaFormat, ...]
    current_format_index: int
    metadata_at_end_of_lba: bool

    @property
    def current_format(self) -> NvmeLbaFormat:
        """The LBA format the namespace is formatted with (FLBAS)."""
        return self.lba_formats[self.current_format_index]

    @property
    def block_size(self) -> int:
        """Logical block data size in bytes for the current format."""
        return self.current_format.data_size

    @property
    def size_bytes(self) -> int:
        """NSZE x logical block size."""
        return self.size_blocks * self.block_size

    def to_json(self) -> dict[str, Any]:
        """Namespace size in blocks and bytes plus the LBA format table."""
        return {
            "kind": "nvme-id-ns",
            "size_blocks": self.size_blocks,
            "capacity_blocks": self.capacity_blocks,
            "utilization_blocks": self.utilization_blocks,
            "block_size": self.block_size,
            "size_bytes": self.size_bytes,
            "current_format_index": self.current_format_index,
            "metadata_at_end_of_lba": self.metadata_at_end_of_lba,
            "deallocate_supported": bit(self.features, 2),
            "lba_formats": [lba_format.to_json() for lba_format in self.lba_formats],
        }


def parse_nvme_id_ctrl(data: bytes) -> NvmeIdController:
    """Parse exactly 4096 bytes of Identify Controller data (CNS 01h).

    Raises :class:`IdentifyParseError` for a wrong length, an all-zero buffer, non-ASCII
    SN/MN/FR or a blank model number.
    """
    require_length(data, IDENTIFY_LENGTH, _WHAT_CTRL)
    data = bytes(data)
    if not any(data):
        raise IdentifyParseError(f"{_WHAT_CTRL}: all 4096 bytes are zero: no controller answered")

    serial = ascii_field(data[4:24], "SN (bytes 23:04)", _WHAT_CTRL)  # bytes 23:04 SN
    model = ascii_field(data[24:64], "MN (bytes 63:24)", _WHAT_CTRL)  # bytes 63:24 MN
    firmware = ascii_field(data[64:72], "FR (bytes 71:64)", _WHAT_CTRL)  # bytes 71:64 FR
    if not model:
        raise IdentifyParseError(f"{_WHAT_CTRL}: model number MN (bytes 63:24) is blank")

    oacs_raw = le(data, 256, 2)  # bytes 257:256 OACS
    oacs = NvmeOacs(
        raw=oacs_raw,
        security=bit(oacs_raw, 0),  # bit 0 Security Send / Security Receive
        format=bit(oacs_raw, 1),  # bit 1 Format NVM
        firmware=bit(oacs_raw, 2),  # bit 2 Firmware Commit / Image Download
        ns_management=bit(oacs_raw, 3),  # bit 3 Namespace Management
        self_test=bit(oacs_raw, 4),  # bit 4 Device Self-test
        lockdown=bit(oacs_raw, 10),  # bit 10 Command and Feature Lockdown
    )

    sanicap_raw = le(data, 328, 4)  # bytes 331:328 SANICAP
    sanicap = NvmeSanicap(
        raw=sanicap_raw,
        crypto=bit(sanicap_raw, 0),  # bit 0 CES Crypto Erase Support
        block=bit(sanicap_raw, 1),  # bit 1 BES Block Erase Support
        overwrite=bit(sanicap_raw, 2),  # bit 2 OWS Overwrite Support
        ndi=bit(sanicap_raw, 29),  # bit 29 NDI No-Deallocate Inhibited
        nodmmas=(sanicap_raw >> 30) & 0b11,  # bits 31:30 NODMMAS
    )

    fna_raw = data[524]  # byte 524 FNA
    fna = NvmeFna(
        raw=fna_raw,
        format_all_namespaces=bit(fna_raw, 0),  # bit 0 FNS: format applies to all namespaces
        erase_all_namespaces=bit(fna_raw, 1),  # bit 1 SENS: secure erase applies to all namespaces
        crypto_erase_supported=bit(fna_raw, 2),  # bit 2 CRYES: crypto erase as part of secure erase
        format_broadcast_unsupported=bit(fna_raw, 3),  # bit 3 FNVMBS (Base 2.0)
    )

    return NvmeIdController(
        vendor_id=le(data, 0, 2),  # bytes 01:00 VID
        subsystem_vendor_id=le(data, 2, 2),  # bytes 03:02 SSVID
        serial=serial,
        model=model,
        firmware=firmware,
        ieee_oui=le(data, 73, 3),  # bytes 75:73 IEEE OUI
        version=le(data, 80, 4),  # bytes 83:80 VER
        controller_id=le(data, 78, 2),  # bytes 79:78 CNTLID
        oacs=oacs,
        sanicap=sanicap,
        fna=fna,
        namespace_count=le(data, 516, 4),  # bytes 519:516 NN
        oncs=le(data, 520, 2),  # bytes 521:520 ONCS
        volatile_write_cache=bit(data[525], 0),  # byte 525 VWC bit 0 present
        total_capacity_bytes=le(data, 280, 16),  # bytes 295:280 TNVMCAP
    )


def parse_nvme_id_ns(data: bytes) -> NvmeIdNamespace:
    """Parse exactly 4096 bytes of Identify Namespace data (CNS 00h, NVM Command Set).

    Raises :class:`IdentifyParseError` for a wrong length, an inactive (zero-size) namespace,
    NCAP > NSZE or NUSE > NCAP, more than 64 LBA formats, or a current format that is out of
    range or has a data size below 512 bytes.
    """
    require_length(data, IDENTIFY_LENGTH, _WHAT_NS)
    data = bytes(data)
    size_blocks = le(data, 0, 8)  # bytes 07:00 NSZE
    capacity_blocks = le(data, 8, 8)  # bytes 15:08 NCAP
    utilization_blocks = le(data, 16, 8)  # bytes 23:16 NUSE
    if size_blocks == 0:
        raise IdentifyParseError(f"{_WHAT_NS}: NSZE is 0: namespace is inactive or this is not id-ns data")
    if capacity_blocks > size_blocks:
        raise IdentifyParseError(f"{_WHAT_NS}: NCAP {capacity_blocks} exceeds NSZE {size_blocks}")
    if utilization_blocks > capacity_blocks:
        raise IdentifyParseError(f"{_WHAT_NS}: NUSE {utilization_blocks} exceeds NCAP {capacity_blocks}")

    features = data[24]  # byte 24 NSFEAT
    format_count = data[25] + 1  # byte 25 NLBAF, a 0's based value
    if format_count > 64:
        raise IdentifyParseError(f"{_WHAT_NS}: NLBAF {data[25]} allows at most 63 (64 formats)")
    flbas = data[26]  # byte 26 FLBAS
    # FLBAS bits 3:0 low index; bits 6:5 high index bits when NLBAF > 16 (Base 2.0); bit 4 extended.
    current = (flbas & 0x0F) | (((flbas >> 5) & 0b11) << 4 if format_count > 16 else 0)
    if current >= format_count:
        raise IdentifyParseError(
            f"{_WHAT_NS}: FLBAS selects format {current} but NLBAF lists only {format_count}"
        )

    formats = []
    for index in range(format_count):
        descriptor = le(data, 128 + 4 * index, 4)  # bytes 131:128 LBAF0, then 4 bytes each
        lbads = (descriptor >> 16) & 0xFF  # bits 23:16 LBADS, 2^n bytes; 0 = not supported
        formats.append(
            NvmeLbaFormat(
                index=index,
                metadata_size=descriptor & 0xFFFF,  # bits 15:00 MS
                data_size=(1 << lbads) if lbads else 0,
                relative_performance=(descriptor >> 24) & 0b11,  # bits 25:24 RP
            )
        )
    current_lbads = formats[current].data_size
    if current_lbads < 512:
        raise IdentifyParseError(
            f"{_WHAT_NS}: current LBA format {current} has data size {current_lbads} (< 512 bytes)"
        )
    return NvmeIdNamespace(
        size_blocks=size_blocks,
        capacity_blocks=capacity_blocks,
        utilization_blocks=utilization_blocks,
        features=features,
        lba_formats=tuple(formats),
        current_format_index=current,
        metadata_at_end_of_lba=bit(flbas, 4),
    )


@dataclass(frozen=True)
class NvmeSanitizeLog:
    """NVMe Base 2.0 Sanitize Status log page (81h), the fields the methods use."""

    sprog: int  # bytes 1:0 Sanitize Progress, numerator of n/65536
    status: int  # SSTAT bits 2:0: 0 never, 1 success, 2 in progress, 3 failed, 4 success + unexpected deallocation
    passes: int  # SSTAT bits 7:3 Overwrite Passes completed
    global_data_erased: bool  # SSTAT bit 8 GDE
    scdw10: int  # bytes 7:4: CDW10 of the sanitize that set the status
    estimates: dict[str, int | None]  # seconds; None = not reported (FFFFFFFFh)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"sprog": self.sprog, "sstat_status": self.status, "passes": self.passes,
                "global_data_erased": self.global_data_erased, "scdw10": self.scdw10,
                "estimates_seconds": self.estimates}


def parse_sanitize_log(data: bytes) -> NvmeSanitizeLog:
    """Parse the first 20 bytes of the Sanitize Status log page."""
    if len(data) < 20:
        raise IdentifyParseError(f"NVMe Sanitize Status log: {len(data)} bytes, need 20")
    sstat = int.from_bytes(data[2:4], "little")

    def estimate(start: int) -> int | None:
        value = int.from_bytes(data[start : start + 4], "little")
        return None if value == 0xFFFFFFFF else value

    return NvmeSanitizeLog(
        sprog=int.from_bytes(data[0:2], "little"),
        status=sstat & 0x7,
        passes=(sstat >> 3) & 0x1F,
        global_data_erased=bool(sstat & 0x100),
        scdw10=int.from_bytes(data[4:8], "little"),
        estimates={"overwrite": estimate(8), "block": estimate(12), "crypto": estimate(16)},
    )


def parse_namespace_list(data: bytes) -> tuple[int, ...]:
    """An Identify namespace ID list: up to 1024 little-endian NSIDs in increasing order, 0 ends it."""
    found: list[int] = []
    for offset in range(0, min(len(data), 4096) - 3, 4):
        nsid = int.from_bytes(data[offset : offset + 4], "little")
        if nsid == 0:
            break
        found.append(nsid)
    return tuple(found)
