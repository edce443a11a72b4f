"""ATA Sanitize Device feature set (ACS-4 7.43): CRYPTO SCRAMBLE EXT, BLOCK ERASE EXT, OVERWRITE EXT.

Each sub-command carries its key in the LBA field; the operation runs in the background and
SANITIZE STATUS EXT reports progress (LBA 15:0, n/65536) and the outcome (COUNT bit 15 completed
without error; an abort with reason 01h when it failed). A sanitize reaches every LBA up to the
native max — hidden areas included — so HPA/DCO/AMAC do not limit it; their state is still
recorded before and after (:mod:`agent.methods.hidden_areas`).

Blocking states, refused before anything is touched: security LOCKED (sanitize commands abort in
SEC4: unknown password → destroy route), SANITIZE FROZEN (SANITIZE FREEZE LOCK EXT, cleared only
by a power cycle: re-plug), a sanitize in progress (wait) or failed (SD2 → destroy route).
FAILURE MODE = 0 (restricted) unless the profile asks for ``failure_mode = "unrestricted"``, in
which case a failure is cleared with SANITIZE STATUS EXT + CLEAR SANITIZE OPERATION FAILED.
"""

from __future__ import annotations

from typing import Any

from agent.drive.opcodes import (
    ATA_BLOCK_ERASE_EXT,
    ATA_BLOCK_ERASE_KEY,
    ATA_CRYPTO_SCRAMBLE_EXT,
    ATA_CRYPTO_SCRAMBLE_KEY,
    ATA_OVERWRITE_EXT,
    ATA_OVERWRITE_KEY,
    ATA_SANITIZE_DEVICE,
    ATA_SANITIZE_FAILURE_MODE,
)
from agent.errors import NotSupported
from agent.methods.base import Blocked, MethodContext, Target
from agent.methods.canary import CanarySet
from agent.methods.capabilities import Capabilities, SanitizeState, ata_sanitize_status, refuse_sanitize_states
from agent.methods.expectations import ErasedState, FirmwareResult, Indeterminate
from agent.methods.firmware import OVERWRITE_PATTERN, SANITIZE_ACTIONS, FirmwareMethod, SanitizeOptions
from agent.methods.hidden_areas import restore_hidden_areas
from agent.transport.commands import AtaCommand, CommandFailed, Transport
from agent.verify.expectation import Expectation, Pattern

SUBCOMMANDS = {
    "crypto": (ATA_CRYPTO_SCRAMBLE_EXT, ATA_CRYPTO_SCRAMBLE_KEY),  # ACS-4 7.43 CRYPTO SCRAMBLE EXT (B4h/0011h)
    "block": (ATA_BLOCK_ERASE_EXT, ATA_BLOCK_ERASE_KEY),  # ACS-4 7.43 BLOCK ERASE EXT (B4h/0012h)
    "overwrite": (ATA_OVERWRITE_EXT, ATA_OVERWRITE_KEY << 32),  # ACS-4 7.43 OVERWRITE EXT (B4h/0014h), LBA 47:32
}

LOCKED_INSTRUCTION = ("the drive is locked with a password this station does not know: route it to destruction "
                      "(or have the owner unlock it and disable the password, then run the job again)")
FROZEN_INSTRUCTION = ("re-plug the drive (hot-unplug and reconnect its power/data) or suspend and resume the station, "
                      "then run the job again — the freeze clears only on a power cycle")


def refuse_security_locked(capabilities: Capabilities, method: str) -> None:
    """ATA security locked (SEC4) or enabled with a password nobody here knows."""
    identify = capabilities.ata
    if identify is None:
        return
    security = identify.security
    if security.supported and (security.locked or security.enabled):
        state = "locked" if security.locked else "enabled with an unknown user password"
        raise Blocked("security-locked", f"{method}: ATA security is {state}", LOCKED_INSTRUCTION, route="destroy")


class AtaSanitize(FirmwareMethod):
    """One ATA SANITIZE DEVICE sub-command."""

    interface = "ata"
    REACH = SANITIZE_ACTIONS

    def __init__(self, action: str, options: SanitizeOptions) -> None:
        self.action = action
        self.options = options
        self.name = f"ata.sanitize.{action}"
        self.summary = {
            "crypto": "ATA SANITIZE CRYPTO SCRAMBLE EXT: change the media encryption key",
            "block": "ATA SANITIZE BLOCK ERASE EXT: erase every flash block",
            "overwrite": "ATA SANITIZE OVERWRITE EXT: overwrite every LBA up to native max with a pattern",
        }[action]

    @property
    def unrestricted(self) -> bool:
        """FAILURE MODE requested."""
        return self.options.unrestricted

    def refuse_states(self, capabilities: Capabilities, target: Target) -> None:
        """Unsupported, locked, sanitize frozen, in progress, failed."""
        identify = capabilities.ata
        if identify is None or not identify.sanitize.supported:
            raise NotSupported(f"{self.name}: the drive has no Sanitize Device feature set (IDENTIFY word 59 bit 12)")
        if not getattr(identify.sanitize, self.action):
            raise NotSupported(f"{self.name}: the drive does not offer the {self.action} sanitize sub-command")
        refuse_sanitize_states(capabilities.sanitize, self.name)
        refuse_security_locked(capabilities, self.name)
        if capabilities.sanitize.frozen:
            raise Blocked("sanitize-frozen", f"{self.name}: sanitize is frozen (SANITIZE FREEZE LOCK EXT, "
                                             "usually by the BIOS)", FROZEN_INSTRUCTION)

    def prepare(self, context: MethodContext, capabilities: Capabilities) -> dict[str, Any]:
        """Record (and where possible restore) hidden areas; sanitize reaches native max regardless."""
        report = restore_hidden_areas(self._transport(context), capabilities)
        context.journal("hidden-areas", report.to_json())
        return {"hidden_areas": report.to_json()}

    def _registers(self) -> tuple[int, int, int]:
        features, lba = SUBCOMMANDS[self.action]
        count = ATA_SANITIZE_FAILURE_MODE if self.unrestricted else 0
        if self.action == "overwrite":
            lba |= OVERWRITE_PATTERN
            count |= 0x0001  # OVERWRITE LOOP COUNT = 1, INVERT PATTERN BETWEEN PASSES = 0
        return features, count, lba

    def command_facts(self, capabilities: Capabilities) -> dict[str, Any]:
        """The taskfile as sent."""
        features, count, lba = self._registers()
        return {"command": f"ATA SANITIZE DEVICE B4h/{features:04X}h", "features": features, "count": count,
                "lba": lba, "ause": self.unrestricted,
                "pattern": OVERWRITE_PATTERN if self.action == "overwrite" else None}

    def start(self, context: MethodContext, capabilities: Capabilities) -> None:
        """Send the sub-command."""
        features, count, lba = self._registers()
        # ACS-4 7.43 SANITIZE DEVICE - CRYPTO SCRAMBLE / BLOCK ERASE / OVERWRITE EXT (B4h/0011h|0012h|0014h)
        command = AtaCommand(ATA_SANITIZE_DEVICE, features=features, count=count, lba=lba, extend=True)
        try:
            self._transport(context).execute(command)
        except CommandFailed as exc:
            registers = exc.completion.ata
            reason = registers.lba & 0xFF if registers is not None else None
            if reason == 0x03:  # ACS-4 7.43: SANITIZE FROZEN
                raise Blocked("sanitize-frozen", f"{self.name}: the drive refused: sanitize frozen",
                              FROZEN_INSTRUCTION) from exc
            raise

    def poll(self, transport: Transport) -> SanitizeState:
        """SANITIZE STATUS EXT."""
        return ata_sanitize_status(transport)

    def exit_failure_mode(self, transport: Transport) -> None:
        """SANITIZE STATUS EXT with CLEAR SANITIZE OPERATION FAILED (honoured only after FAILURE MODE=1)."""
        state = ata_sanitize_status(transport, clear_failure=True)
        if state.state == "failed":
            raise NotSupported(f"{self.name}: the drive kept its sanitize-failed state after CLEAR")

    def expectation(self, capabilities: Capabilities, canaries: CanarySet, facts: dict[str, Any]) -> Expectation:
        """Pattern for overwrite, erased state for block erase, indeterminate for crypto scramble."""
        if self.action == "overwrite":
            return FirmwareResult(Pattern(OVERWRITE_PATTERN.to_bytes(4, "big")),
                                  f"{self.name}: one OVERWRITE EXT pass with pattern {OVERWRITE_PATTERN:08X}h")
        if self.action == "block":
            return ErasedState(f"{self.name}: content after BLOCK ERASE EXT is vendor specific; flash reads its "
                               "erased state", canaries=canaries)
        return Indeterminate(f"{self.name}: content after CRYPTO SCRAMBLE EXT is undefined (old data decrypted "
                             "with a new key)", canaries)


def factory(action: str) -> Any:
    """Registry factory for ``ata.sanitize.<action>``."""
    return lambda options: AtaSanitize(action, options)
