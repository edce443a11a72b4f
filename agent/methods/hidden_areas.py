"""The ``hidden_areas.restore`` step: make an ATA drive's whole native capacity addressable again.

A Host Protected Area (HPA, SET MAX ADDRESS), a Device Configuration Overlay (DCO) or a reduced
Accessible Max Address (AMAC, ACS-3+) hide LBAs from the host: an overwrite — or a *normal*
SECURITY ERASE UNIT where a DCO hides sectors — never reaches them. This step reads the native
maximum, restores it when it is larger than the current maximum, and records the maximum LBA
before and after (STANDARDS.md "Before the purge").

It is not a profile rung of its own (a ladder picks one method): the ATA firmware methods run it
before their destructive command and put the report in the job record. Sanitize reaches native
max by itself, so there an incomplete restore is recorded, not fatal; the security erase refuses
to run when a DCO-hidden area could not be restored.

After a restore the kernel's idea of the device size is stale until the disk is re-scanned; the
report says so (``kernel_size_stale``), and read-back verification covers what the kernel sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.errors import AgentError
from agent.methods.capabilities import Capabilities, ata_identify
from agent.transport.commands import AtaCommand, AtaProtocol, Transport

ATA_READ_NATIVE_MAX_ADDRESS_EXT = 0x27  # ATA8-ACS / ACS-2 READ NATIVE MAX ADDRESS EXT (27h), HPA feature set
ATA_SET_MAX_ADDRESS_EXT = 0x37  # ATA8-ACS / ACS-2 SET MAX ADDRESS EXT (37h), HPA feature set
ATA_ACCESSIBLE_MAX_ADDRESS = 0x78  # ACS-3 ACCESSIBLE MAX ADDRESS CONFIGURATION (78h)
AMAC_GET_NATIVE_MAX = 0x0000  # ACS-3 GET NATIVE MAX ADDRESS EXT (78h/0000h)
AMAC_SET_ACCESSIBLE_MAX = 0x0001  # ACS-3 SET ACCESSIBLE MAX ADDRESS EXT (78h/0001h)
ATA_DEVICE_CONFIGURATION = 0xB1  # ATA8-ACS DEVICE CONFIGURATION OVERLAY (B1h)
DCO_RESTORE = 0xC0  # ATA8-ACS DEVICE CONFIGURATION RESTORE (B1h/C0h)
DCO_IDENTIFY = 0xC2  # ATA8-ACS DEVICE CONFIGURATION IDENTIFY (B1h/C2h)


@dataclass
class HiddenAreaReport:
    """Max LBA before and after, what was found and what was done."""

    max_lba_before: int | None
    max_lba_after: int | None = None
    native_max_lba: int | None = None
    dco_max_lba: int | None = None
    actions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    supported: dict[str, bool] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when the current max LBA reaches every native/DCO maximum that was read."""
        if self.max_lba_after is None:
            return False
        wanted = max((value for value in (self.native_max_lba, self.dco_max_lba) if value is not None), default=None)
        return not self.errors and (wanted is None or self.max_lba_after >= wanted)

    @property
    def dco_hidden(self) -> bool:
        """True when a DCO hides sectors that are still hidden."""
        return (self.dco_max_lba is not None and self.max_lba_after is not None
                and self.dco_max_lba > self.max_lba_after)

    def to_json(self) -> dict[str, Any]:
        """JSON form (job record)."""
        return {"max_lba_before": self.max_lba_before, "max_lba_after": self.max_lba_after,
                "native_max_lba": self.native_max_lba, "dco_max_lba": self.dco_max_lba, "actions": self.actions,
                "errors": self.errors, "supported": self.supported, "complete": self.complete,
                "kernel_size_stale": self.max_lba_after != self.max_lba_before}


def _lba(transport: Transport, command: AtaCommand) -> int:
    registers = transport.execute(command).ata
    if registers is None or registers.partial:
        raise AgentError(f"ATA {command.command:02X}h: no complete output registers")
    return registers.lba


def restore_hidden_areas(transport: Transport, capabilities: Capabilities) -> HiddenAreaReport:
    """Read native max (AMAC or HPA) and the DCO maximum; restore the largest; record before/after."""
    identify = capabilities.ata
    report = HiddenAreaReport(max_lba_before=identify.max_lba if identify is not None else None)
    if identify is None:
        report.errors.append("no IDENTIFY data")
        return report
    report.supported = {"hpa": identify.hpa_supported, "dco": identify.dco_supported, "amac": identify.amac_supported}
    current = identify.max_lba or 0
    try:
        if identify.amac_supported:
            # ACS-3 ACCESSIBLE MAX ADDRESS CONFIGURATION - GET NATIVE MAX ADDRESS EXT (78h/0000h)
            report.native_max_lba = _lba(transport, AtaCommand(ATA_ACCESSIBLE_MAX_ADDRESS,
                                                               features=AMAC_GET_NATIVE_MAX, extend=True))
            if report.native_max_lba > current:
                # ACS-3 ACCESSIBLE MAX ADDRESS CONFIGURATION - SET ACCESSIBLE MAX ADDRESS EXT (78h/0001h)
                transport.execute(AtaCommand(ATA_ACCESSIBLE_MAX_ADDRESS, features=AMAC_SET_ACCESSIBLE_MAX,
                                             lba=report.native_max_lba, extend=True))
                report.actions.append(f"AMAC: accessible max {current} -> {report.native_max_lba}")
        elif identify.hpa_supported:
            # ACS-2 READ NATIVE MAX ADDRESS EXT (27h)
            report.native_max_lba = _lba(transport, AtaCommand(ATA_READ_NATIVE_MAX_ADDRESS_EXT, extend=True))
            if report.native_max_lba > current:
                # ACS-2 SET MAX ADDRESS EXT (37h); COUNT bit 0 VV=1: keep the restored maximum across power cycles
                transport.execute(AtaCommand(ATA_SET_MAX_ADDRESS_EXT, count=1, lba=report.native_max_lba,
                                             extend=True))
                report.actions.append(f"HPA removed: max {current} -> {report.native_max_lba}")
        if identify.dco_supported:
            # ATA8-ACS DEVICE CONFIGURATION IDENTIFY (B1h/C2h), PIO data-in: words 3-6 maximum LBA
            data = transport.execute(AtaCommand(ATA_DEVICE_CONFIGURATION, AtaProtocol.PIO_IN, features=DCO_IDENTIFY,
                                                count=1, data_in_length=512, extend=False)).data
            report.dco_max_lba = int.from_bytes(data[6:14], "little")
            if report.dco_max_lba > max(current, report.native_max_lba or 0):
                # ATA8-ACS DEVICE CONFIGURATION RESTORE (B1h/C0h)
                transport.execute(AtaCommand(ATA_DEVICE_CONFIGURATION, features=DCO_RESTORE, extend=False))
                report.actions.append(f"DCO restored: factory max {report.dco_max_lba}")
    except AgentError as exc:
        report.errors.append(exc.message)
    try:
        report.max_lba_after = ata_identify(transport).max_lba
    except AgentError as exc:
        report.errors.append(f"IDENTIFY after restore: {exc.message}")
    return report
