"""Drive identity and capabilities parsed from raw IDENTIFY / Identify / SCSI bytes.

Every parser here is pure: it takes ``bytes`` and returns a frozen dataclass, or raises
:class:`IdentifyParseError` (code ``bad_dump``).  Nothing in this package opens a device;
the transport layer fetches the bytes.
"""

from __future__ import annotations

from agent.drive.ata import AtaIdentify, AtaSanitize, AtaSecurity, parse_ata_identify
from agent.drive.errors import IdentifyParseError
from agent.drive.nvme import (
    NvmeFna,
    NvmeIdController,
    NvmeIdNamespace,
    NvmeLbaFormat,
    NvmeOacs,
    NvmeSanicap,
    parse_nvme_id_ctrl,
    parse_nvme_id_ns,
)
from agent.drive.scsi import (
    ScsiBlockDeviceCharacteristics,
    ScsiInquiry,
    ScsiReadCapacity16,
    ScsiSanitizeSupport,
    parse_block_device_characteristics_vpd,
    parse_inquiry,
    parse_read_capacity16,
    parse_report_supported_opcodes_sanitize,
)

__all__ = [
    "AtaIdentify",
    "AtaSanitize",
    "AtaSecurity",
    "IdentifyParseError",
    "NvmeFna",
    "NvmeIdController",
    "NvmeIdNamespace",
    "NvmeLbaFormat",
    "NvmeOacs",
    "NvmeSanicap",
    "ScsiBlockDeviceCharacteristics",
    "ScsiInquiry",
    "ScsiReadCapacity16",
    "ScsiSanitizeSupport",
    "parse_ata_identify",
    "parse_block_device_characteristics_vpd",
    "parse_inquiry",
    "parse_nvme_id_ctrl",
    "parse_nvme_id_ns",
    "parse_read_capacity16",
    "parse_report_supported_opcodes_sanitize",
]
