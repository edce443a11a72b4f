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

A host overwrite reaches only what the kernel exposes, so it first calls :func:`detect_hidden_areas`
(read-only: native max and DCO IDENTIFY) and, when something is hidden, :func:`restore_hidden_areas`,
then has the kernel re-read the capacity (:mod:`agent.methods.overwrite`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.drive.ata import AtaIdentify
from agent.drive.opcodes import (
    AMAC_GET_NATIVE_MAX,
    AMAC_SET_ACCESSIBLE_MAX,
    ATA_ACCESSIBLE_MAX_ADDRESS,
    ATA_DEVICE_CONFIGURATION,
    ATA_READ_NATIVE_MAX_ADDRESS_EXT,
    ATA_SET_MAX_ADDRESS_EXT,
    DCO_IDENTIFY,
    DCO_RESTORE,
)
from agent.errors import AgentError
from agent.methods.capabilities import Capabilities, ata_identify
from agent.transport.commands import AtaCommand, AtaProtocol, PassThroughBlocked, Transport


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
    # the first command the drive or the path refused: "native-max", "dco-identify", "set-max", "dco-restore"
    refused: str | None = None
    passthrough_blocked: bool = False  # that refusal came from the path (a bridge), not the drive

    @property
    def hidden(self) -> bool:
        """True when a native or DCO maximum read is above the maximum the drive reported before."""
        before = self.max_lba_before
        return before is not None and any(value is not None and value > before
                                          for value in (self.native_max_lba, self.dco_max_lba))

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
                "refused": self.refused, "kernel_size_stale": self.max_lba_after != self.max_lba_before}


def _lba(transport: Transport, command: AtaCommand) -> int:
    registers = transport.execute(command).ata
    if registers is None or registers.partial:
        raise AgentError(f"ATA {command.command:02X}h: no complete output registers")
    return registers.lba


def _read_native_max(transport: Transport, identify: AtaIdentify) -> int | None:
    """Native max by AMAC where supported, else by the HPA feature set; None when neither exists."""
    if identify.amac_supported:
        # ACS-3 ACCESSIBLE MAX ADDRESS CONFIGURATION - GET NATIVE MAX ADDRESS EXT (78h/0000h)
        return _lba(transport, AtaCommand(ATA_ACCESSIBLE_MAX_ADDRESS, features=AMAC_GET_NATIVE_MAX, extend=True))
    if identify.hpa_supported:
        # ACS-2 READ NATIVE MAX ADDRESS EXT (27h)
        return _lba(transport, AtaCommand(ATA_READ_NATIVE_MAX_ADDRESS_EXT, extend=True))
    return None


def _read_dco_max(transport: Transport) -> int:
    # ATA8-ACS DEVICE CONFIGURATION IDENTIFY (B1h/C2h), PIO data-in: words 3-6 maximum LBA
    data = transport.execute(AtaCommand(ATA_DEVICE_CONFIGURATION, AtaProtocol.PIO_IN, features=DCO_IDENTIFY,
                                        count=1, data_in_length=512, extend=False)).data
    return int.from_bytes(data[6:14], "little")


def _refused(report: HiddenAreaReport, step: str, exc: AgentError) -> None:
    report.errors.append(f"{step}: {exc.message}")
    report.refused = report.refused or step
    report.passthrough_blocked = report.passthrough_blocked or isinstance(exc, PassThroughBlocked)


def detect_hidden_areas(transport: Transport, capabilities: Capabilities) -> HiddenAreaReport:
    """Read native max (AMAC or HPA) and the DCO maximum without changing anything.

    ``max_lba_after`` stays equal to ``max_lba_before``; ``hidden`` says whether a restore is
    needed, ``errors``/``refused`` whether some maximum could not be read (then nothing can be said).
    """
    identify = capabilities.ata
    report = HiddenAreaReport(max_lba_before=identify.max_lba if identify is not None else None)
    report.max_lba_after = report.max_lba_before
    if identify is None:
        report.errors.append("no IDENTIFY data")
        return report
    report.supported = {"hpa": identify.hpa_supported, "dco": identify.dco_supported, "amac": identify.amac_supported}
    try:
        report.native_max_lba = _read_native_max(transport, identify)
    except AgentError as exc:
        _refused(report, "native-max", exc)
    if identify.dco_supported:
        try:
            report.dco_max_lba = _read_dco_max(transport)
        except AgentError as exc:
            _refused(report, "dco-identify", exc)
    return report


def restore_hidden_areas(transport: Transport, capabilities: Capabilities) -> HiddenAreaReport:
    """Read native max (AMAC or HPA) and the DCO maximum; restore the largest; record before/after."""
    identify = capabilities.ata
    report = HiddenAreaReport(max_lba_before=identify.max_lba if identify is not None else None)
    if identify is None:
        report.errors.append("no IDENTIFY data")
        return report
    report.supported = {"hpa": identify.hpa_supported, "dco": identify.dco_supported, "amac": identify.amac_supported}
    current = identify.max_lba or 0
    step = "native-max"
    try:
        # the HPA's SET MAX ADDRESS EXT must immediately follow READ NATIVE MAX ADDRESS EXT (ACS-2)
        report.native_max_lba = _read_native_max(transport, identify)
        if report.native_max_lba is not None and report.native_max_lba > current:
            step = "set-max"
            if identify.amac_supported:
                # ACS-3 ACCESSIBLE MAX ADDRESS CONFIGURATION - SET ACCESSIBLE MAX ADDRESS EXT (78h/0001h)
                transport.execute(AtaCommand(ATA_ACCESSIBLE_MAX_ADDRESS, features=AMAC_SET_ACCESSIBLE_MAX,
                                             lba=report.native_max_lba, extend=True))
                report.actions.append(f"AMAC: accessible max {current} -> {report.native_max_lba}")
            else:
                # ACS-2 SET MAX ADDRESS EXT (37h); COUNT bit 0 VV=1: keep the restored maximum across power cycles
                transport.execute(AtaCommand(ATA_SET_MAX_ADDRESS_EXT, count=1, lba=report.native_max_lba,
                                             extend=True))
                report.actions.append(f"HPA removed: max {current} -> {report.native_max_lba}")
        if identify.dco_supported:
            step = "dco-identify"
            report.dco_max_lba = _read_dco_max(transport)
            if report.dco_max_lba > max(current, report.native_max_lba or 0):
                step = "dco-restore"
                # ATA8-ACS DEVICE CONFIGURATION RESTORE (B1h/C0h); aborted while an HPA is set, hence after it
                transport.execute(AtaCommand(ATA_DEVICE_CONFIGURATION, features=DCO_RESTORE, extend=False))
                report.actions.append(f"DCO restored: factory max {report.dco_max_lba}")
    except AgentError as exc:
        _refused(report, step, exc)
    try:
        report.max_lba_after = ata_identify(transport).max_lba
    except AgentError as exc:
        report.errors.append(f"IDENTIFY after restore: {exc.message}")
    return report
