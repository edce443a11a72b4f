"""SCSI SANITIZE (SBC-4 SANITIZE, opcode 48h): OVERWRITE, BLOCK ERASE, CRYPTOGRAPHIC ERASE.

Sent with IMMED=1 so the command returns at once; progress comes from sense data: while the
sanitize runs, REQUEST SENSE returns NOT READY / SANITIZE IN PROGRESS (04h/1Bh) with the progress
indication in the sense-key specific bytes (n/65536). Completion is NO SENSE; failure is MEDIUM
ERROR / SANITIZE COMMAND FAILED (31h/03h), which persists until a sanitize succeeds — or, if the
command set AUSE, until EXIT FAILURE MODE (service action 1Fh), which this method sends only then.
SCSI has no "secure erase"; FORMAT UNIT is not used (QEMU's returns success and erases nothing).
"""

from __future__ import annotations

from typing import Any

from agent.drive.opcodes import (
    SCSI_SANITIZE,
    SCSI_SANITIZE_AUSE,
    SCSI_SANITIZE_BLOCK_ERASE,
    SCSI_SANITIZE_CRYPTOGRAPHIC_ERASE,
    SCSI_SANITIZE_EXIT_FAILURE_MODE,
    SCSI_SANITIZE_IMMED,
    SCSI_SANITIZE_OVERWRITE,
)
from agent.errors import NotSupported
from agent.methods.base import MethodContext, Target
from agent.methods.canary import CanarySet
from agent.methods.capabilities import Capabilities, SanitizeState, refuse_sanitize_states, scsi_sanitize_state
from agent.methods.expectations import ErasedState, FirmwareResult, Indeterminate
from agent.methods.firmware import OVERWRITE_PATTERN, SANITIZE_ACTIONS, FirmwareMethod, SanitizeOptions
from agent.transport.commands import CommandFailed, ScsiCommand, Transport
from agent.transport.sense import ASC_NOT_READY_SANITIZE_IN_PROGRESS, ASC_SANITIZE_COMMAND_FAILED
from agent.verify.expectation import Expectation, Pattern

SERVICE_ACTIONS = {"overwrite": SCSI_SANITIZE_OVERWRITE, "block": SCSI_SANITIZE_BLOCK_ERASE,
                   "crypto": SCSI_SANITIZE_CRYPTOGRAPHIC_ERASE, "exit_failure": SCSI_SANITIZE_EXIT_FAILURE_MODE}


class ScsiSanitize(FirmwareMethod):
    """One SCSI SANITIZE service action."""

    interface = "scsi"
    REACH = SANITIZE_ACTIONS

    def __init__(self, action: str, options: SanitizeOptions) -> None:
        self.action = action
        self.options = options
        self.name = f"scsi.sanitize.{action}"
        self.summary = {
            "crypto": "SCSI SANITIZE CRYPTOGRAPHIC ERASE: change the media encryption keys",
            "block": "SCSI SANITIZE BLOCK ERASE: erase every flash block",
            "overwrite": "SCSI SANITIZE OVERWRITE: overwrite every LBA with a pattern",
        }[action]

    @property
    def unrestricted(self) -> bool:
        """AUSE requested."""
        return self.options.unrestricted

    def refuse_states(self, capabilities: Capabilities, target: Target) -> None:
        """Unsupported action (REPORT SUPPORTED OPERATION CODES), sanitize in progress or failed."""
        support = capabilities.scsi_sanitize
        if support is None:
            raise NotSupported(f"{self.name}: the drive does not report its SANITIZE support "
                               f"({'; '.join(capabilities.errors) or 'no REPORT SUPPORTED OPERATION CODES'})")
        if not getattr(support, self.action):
            action = SERVICE_ACTIONS[self.action]
            raise NotSupported(f"{self.name}: SANITIZE service action {action:02X}h is not supported")
        refuse_sanitize_states(capabilities.sanitize, self.name)

    def _command(self) -> ScsiCommand:
        parameters = b""
        if self.action == "overwrite":
            pattern = OVERWRITE_PATTERN.to_bytes(4, "big")
            # SBC-4 OVERWRITE parameter list: byte 0 INVERT 7, TEST 6:5, OVERWRITE COUNT 4:0; bytes 2-3 pattern length
            parameters = bytes([0x01, 0]) + len(pattern).to_bytes(2, "big") + pattern
        cdb = bytearray(10)
        cdb[0] = SCSI_SANITIZE
        cdb[1] = SCSI_SANITIZE_IMMED | (SCSI_SANITIZE_AUSE if self.unrestricted else 0) | SERVICE_ACTIONS[self.action]
        cdb[7:9] = len(parameters).to_bytes(2, "big")
        return ScsiCommand(bytes(cdb), data_out=parameters)

    def command_facts(self, capabilities: Capabilities) -> dict[str, Any]:
        """The CDB as sent."""
        command = self._command()
        return {"command": f"SCSI SANITIZE (48h) service action {SERVICE_ACTIONS[self.action]:02X}h",
                "cdb": command.cdb.hex(), "parameters": command.data_out.hex(), "immed": True,
                "ause": self.unrestricted}

    def start(self, context: MethodContext, capabilities: Capabilities) -> None:
        """Send SANITIZE with IMMED."""
        try:
            # SBC-4 SANITIZE (48h), IMMED=1: returns at once, progress via REQUEST SENSE
            self._transport(context).execute(self._command())
        except CommandFailed as exc:
            sense = exc.completion.sense
            if sense is not None and sense.asc_ascq == ASC_NOT_READY_SANITIZE_IN_PROGRESS:
                refuse_sanitize_states(SanitizeState("in_progress", progress=sense.progress_fraction,
                                                     detail=sense.describe()), self.name)
            if sense is not None and sense.asc_ascq == ASC_SANITIZE_COMMAND_FAILED:
                refuse_sanitize_states(SanitizeState("failed", detail=sense.describe()), self.name)
            raise

    def poll(self, transport: Transport) -> SanitizeState:
        """REQUEST SENSE."""
        return scsi_sanitize_state(transport)

    def exit_failure_mode(self, transport: Transport) -> None:
        """SANITIZE service action EXIT FAILURE MODE (only after an AUSE=1 sanitize failed)."""
        cdb = bytearray(10)
        cdb[0], cdb[1] = SCSI_SANITIZE, SERVICE_ACTIONS["exit_failure"]
        # SBC-4 SANITIZE (48h) service action 1Fh EXIT FAILURE MODE
        transport.execute(ScsiCommand(bytes(cdb)))

    def expectation(self, capabilities: Capabilities, canaries: CanarySet, facts: dict[str, Any]) -> Expectation:
        """Pattern, erased state, or indeterminate."""
        if self.action == "overwrite":
            return FirmwareResult(Pattern(OVERWRITE_PATTERN.to_bytes(4, "big")),
                                  f"{self.name}: one OVERWRITE pass with pattern {OVERWRITE_PATTERN:08X}h")
        if self.action == "block":
            return ErasedState(f"{self.name}: content after BLOCK ERASE is vendor specific; flash reads its erased "
                               "state", canaries=canaries)
        return Indeterminate(f"{self.name}: content after CRYPTOGRAPHIC ERASE is undefined", canaries)


def factory(action: str) -> Any:
    """Registry factory for ``scsi.sanitize.<action>``."""
    return lambda options: ScsiSanitize(action, options)
