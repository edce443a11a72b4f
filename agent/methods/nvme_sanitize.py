"""NVMe Sanitize (NVMe Base 2.0 Sanitize command, opcode 84h): crypto erase, block erase, overwrite.

Sanitize acts on the whole NVM subsystem (every namespace, caches, unallocated blocks) and runs in
the background: progress and the outcome come from the Sanitize Status log page (81h).

Deallocation: after a sanitize the controller may deallocate every LBA, and deallocated blocks
read as DLFEAT says (usually zeros) whatever the media holds. To read the media's real state the
command sets No-Deallocate After Sanitize (NDAS) — unless the controller reports No-Deallocate
Inhibited (SANICAP NDI), in which case it deallocates anyway. The facts recorded: NDI, NODMMAS
(whether media is additionally modified after a no-deallocate sanitize), DLFEAT, and SSTAT 100b
("completed with deallocation although no-deallocate was requested": an *unexpected deallocation*).
When blocks were deallocated the read-back expectation is :class:`DeallocatedZero`, which says in
the record that zeros are not proof; the proof is the canaries.

Failure: AUSE=0 (restricted) by default — a failed sanitize leaves the drive refusing media access
until a sanitize succeeds. With ``failure_mode = "unrestricted"`` AUSE=1 and, after a failure,
Exit Failure Mode (SANACT 001b) returns the drive to service (data not sanitised, route hold).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agent.drive.opcodes import (
    NVME_SANACT_BLOCK,
    NVME_SANACT_CRYPTO,
    NVME_SANACT_EXIT_FAILURE,
    NVME_SANACT_OVERWRITE,
    NVME_SANITIZE,
    NVME_SC_SANITIZE_FAILED,
    NVME_SC_SANITIZE_IN_PROGRESS,
    NVME_SSTAT_SUCCESS_DEALLOCATED,
)
from agent.errors import NotSupported
from agent.methods.base import MethodContext, Reach, Target
from agent.methods.canary import CanarySet
from agent.methods.capabilities import (
    Capabilities,
    SanitizeState,
    nvme_sanitize_log,
    nvme_state,
    refuse_sanitize_states,
)
from agent.methods.expectations import DeallocatedZero, ErasedState, FirmwareResult, Indeterminate
from agent.methods.firmware import (
    BLOCK_ERASE,
    CRYPTO_ERASE,
    NVME_OVERWRITE,
    OVERWRITE_PATTERN,
    FirmwareMethod,
    SanitizeOptions,
)
from agent.transport.commands import CommandFailed, NvmeAdminCommand, Transport
from agent.verify.expectation import Expectation, Pattern

SANACT = {"exit_failure": NVME_SANACT_EXIT_FAILURE, "block": NVME_SANACT_BLOCK, "overwrite": NVME_SANACT_OVERWRITE,
          "crypto": NVME_SANACT_CRYPTO}


class NvmeSanitize(FirmwareMethod):
    """One NVMe Sanitize action."""

    interface = "nvme"
    REACH: ClassVar[Mapping[str, Reach]] = {"crypto": CRYPTO_ERASE, "block": BLOCK_ERASE, "overwrite": NVME_OVERWRITE}

    def __init__(self, action: str, options: SanitizeOptions) -> None:
        self.action = action
        self.options = options
        self.name = f"nvme.sanitize.{action}"
        self.summary = {
            "crypto": "NVMe Sanitize crypto erase (SANACT 100b): all media encryption keys changed",
            "block": "NVMe Sanitize block erase (SANACT 010b): every flash block erased",
            "overwrite": "NVMe Sanitize overwrite (SANACT 011b): every block overwritten with a pattern",
        }[action]

    @property
    def unrestricted(self) -> bool:
        """AUSE requested."""
        return self.options.unrestricted

    def refuse_states(self, capabilities: Capabilities, target: Target) -> None:
        """No Sanitize / action unsupported; sanitize in progress or failed."""
        controller = capabilities.nvme
        if controller is None or not controller.sanicap.supported:
            raise NotSupported(f"{self.name}: the controller has no Sanitize command (SANICAP = 0)")
        if not getattr(controller.sanicap, self.action):
            raise NotSupported(f"{self.name}: SANICAP does not offer the {self.action} sanitize action")
        refuse_sanitize_states(capabilities.sanitize, self.name)

    def _no_deallocate(self, capabilities: Capabilities) -> bool:
        controller = capabilities.nvme
        return controller is not None and not controller.sanicap.ndi

    def _cdw10(self, capabilities: Capabilities) -> int:
        # CDW10: SANACT 2:0, AUSE 3, OWPASS 7:4, OIPBP 8, NDAS 9
        cdw10 = SANACT[self.action] | (0x8 if self.unrestricted else 0)
        if self.action == "overwrite":
            cdw10 |= 1 << 4  # one pass, no inversion
        if self._no_deallocate(capabilities):
            cdw10 |= 1 << 9
        return cdw10

    def command_facts(self, capabilities: Capabilities) -> dict[str, Any]:
        """The command as sent, and the deallocation facts known before it."""
        controller = capabilities.nvme
        assert controller is not None
        return {"command": "NVMe Sanitize (84h)", "sanact": SANACT[self.action], "cdw10": self._cdw10(capabilities),
                "ause": self.unrestricted, "ndas": self._no_deallocate(capabilities),
                "ovrpat": OVERWRITE_PATTERN if self.action == "overwrite" else None,
                "ndi": controller.sanicap.ndi, "nodmmas": controller.sanicap.nodmmas,
                "nodmmas_meaning": controller.sanicap.nodmmas_meaning, "dlfeat": capabilities.nvme_dlfeat}

    def start(self, context: MethodContext, capabilities: Capabilities) -> None:
        """Send Sanitize."""
        cdw11 = OVERWRITE_PATTERN if self.action == "overwrite" else 0
        # NVMe Base 2.0 Sanitize (84h): CDW10 SANACT/AUSE/OWPASS/OIPBP/NDAS, CDW11 Overwrite Pattern
        command = NvmeAdminCommand(NVME_SANITIZE, nsid=0, cdw10=self._cdw10(capabilities), cdw11=cdw11)
        try:
            self._transport(context).execute(command)
        except CommandFailed as exc:
            status = exc.completion.nvme_status
            if status is not None and status.sct == 0 and status.sc == NVME_SC_SANITIZE_IN_PROGRESS:
                refuse_sanitize_states(SanitizeState("in_progress", detail=status.describe()), self.name)
            if status is not None and status.sct == 0 and status.sc == NVME_SC_SANITIZE_FAILED:
                refuse_sanitize_states(SanitizeState("failed", detail=status.describe()), self.name)
            raise

    def poll(self, transport: Transport) -> SanitizeState:
        """Sanitize Status log page."""
        return nvme_state(nvme_sanitize_log(transport))

    def exit_failure_mode(self, transport: Transport) -> None:
        """SANACT 001b."""
        # NVMe Base 2.0 Sanitize (84h) SANACT 001b Exit Failure Mode (only after an unrestricted failure)
        transport.execute(NvmeAdminCommand(NVME_SANITIZE, nsid=0, cdw10=SANACT["exit_failure"]))

    def completion_facts(self, context: MethodContext, before: Capabilities) -> dict[str, Any]:
        """SSTAT after completion: deallocation, passes, GDE."""
        log = nvme_sanitize_log(self._transport(context))
        requested_no_deallocate = self._no_deallocate(before)
        controller = before.nvme
        ndi = controller.sanicap.ndi if controller is not None else False
        unexpected = log.status == NVME_SSTAT_SUCCESS_DEALLOCATED
        deallocated = unexpected or not requested_no_deallocate
        return {"sanitize_log": log.to_json(), "deallocation": {
            "ndas_requested": requested_no_deallocate, "ndi": ndi, "unexpected_deallocation": unexpected,
            "deallocated": deallocated, "dlfeat": before.nvme_dlfeat,
            "nodmmas": controller.sanicap.nodmmas if controller is not None else None,
            "note": ("every LBA was deallocated after the sanitize: reads return the DLFEAT value (zeros), not "
                     "the media — reading zeros is not proof; the canaries are") if deallocated else
                    "no deallocation: reads return the media's post-sanitize state"}}

    def expectation(self, capabilities: Capabilities, canaries: CanarySet, facts: dict[str, Any]) -> Expectation:
        """Zero-by-deallocation, erased state, the overwrite pattern, or indeterminate (crypto)."""
        if facts["deallocation"]["deallocated"] and (capabilities.nvme_dlfeat or 0) & 0x7 == 0b001:
            return DeallocatedZero(f"{self.name}: all LBAs deallocated after the sanitize and DLFEAT 001b says "
                                   "deallocated blocks read as zeros")
        if self.action == "overwrite" and not facts["deallocation"]["deallocated"]:
            return FirmwareResult(Pattern(OVERWRITE_PATTERN.to_bytes(4, "big")),
                                  f"{self.name}: one pass of OVRPAT {OVERWRITE_PATTERN:08X}h, not deallocated")
        if self.action == "block":
            return ErasedState(f"{self.name}: block erase leaves flash in its erased state", canaries=canaries)
        return Indeterminate(f"{self.name}: content after a crypto erase (or a deallocation with undefined read "
                             "values) is undefined", canaries)


def factory(action: str) -> Any:
    """Registry factory for ``nvme.sanitize.<action>``."""
    return lambda options: NvmeSanitize(action, options)
