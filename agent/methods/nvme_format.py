"""NVMe Format NVM with Secure Erase Settings (NVMe Base 2.0 Format NVM, opcode 80h).

SES=001b (user data erase) is listed as Purge for NVMe (STANDARDS.md) — provided the erase covers
every namespace: the Format NVM Attributes (FNA) byte says whether a secure erase applies to all
namespaces (bit 1) and whether formats apply to all namespaces (bit 0). On a controller with more
than one namespace whose secure erase is per namespace, one Format would leave the others intact:
the method refuses and says so (Sanitize, which acts on the whole subsystem, is the right tool).
SES=010b (crypto erase) needs FNA bit 2 and is recorded as Clear (see :mod:`agent.methods.firmware`).

The current LBA format (FLBAS) is kept, so the block device geometry does not change. Format NVM
is synchronous and has no progress log; after it the user data content is indeterminate by spec,
so the read-back accepts the erased state (00h/FFh) for SES=1 and any non-canary content for SES=2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agent.drive.opcodes import (
    NVME_BROADCAST_NSID,
    NVME_FORMAT_NVM,
)
from agent.errors import NotSupported
from agent.methods.base import Applicability, Level, MethodContext, Reach, Target, Technique
from agent.methods.canary import CanarySet
from agent.methods.capabilities import Capabilities, refuse_sanitize_states
from agent.methods.expectations import ErasedState, Indeterminate
from agent.methods.firmware import CRYPTO_ERASE, FirmwareMethod
from agent.transport.commands import NvmeAdminCommand
from agent.verify.expectation import Expectation

FORMAT_TIMEOUT_S = 4 * 3600.0


def namespace_count(capabilities: Capabilities) -> int:
    """Namespaces on the controller: from the namespace list; NN (the highest possible NSID) only as a
    conservative fallback when the controller would not list them."""
    if capabilities.nvme_namespaces is not None:
        return len(capabilities.nvme_namespaces)
    assert capabilities.nvme is not None
    return capabilities.nvme.namespace_count


class NvmeFormat(FirmwareMethod):
    """Format NVM with SES=1 (user data erase) or SES=2 (cryptographic erase)."""

    interface = "nvme"
    phase = "format"
    synchronous = True
    REACH: ClassVar[Mapping[str, Reach]] = {
        "crypto": CRYPTO_ERASE,
        # Purge on any media; check() refuses when one Format would not reach every namespace
        "user_erase": Reach.by_media(Technique.BLOCK_ERASE, *[Applicability(
            Level.PURGE, "NVMe Format NVM user data erase (SES=001b) of every namespace: Purge "
                         "(NIST SP 800-88 Rev. 1, NVMe row; STANDARDS.md)")] * 2),
    }

    def __init__(self, crypto: bool) -> None:
        self.crypto = crypto
        self.action = "crypto" if crypto else "user_erase"
        self.name = "nvme.format.crypto" if crypto else "nvme.format.user_erase"
        self.summary = ("NVMe Format NVM, SES=010b cryptographic erase" if crypto
                        else "NVMe Format NVM, SES=001b user data erase")

    def refuse_states(self, capabilities: Capabilities, target: Target) -> None:
        """No Format NVM, no crypto format, namespace scope, sanitize in progress or failed."""
        controller = capabilities.nvme
        if controller is None or not controller.oacs.format:
            raise NotSupported(f"{self.name}: the controller does not support Format NVM (OACS bit 1)")
        if self.crypto and not controller.fna.crypto_erase_supported:
            raise NotSupported(f"{self.name}: FNA bit 2 clear: no cryptographic erase in Format NVM")
        if capabilities.nvme_namespace is None:
            raise NotSupported(f"{self.name}: namespace 1 could not be identified ({'; '.join(capabilities.errors)})")
        count = namespace_count(capabilities)
        if count > 1 and not controller.fna.erase_all_namespaces:
            raise NotSupported(f"{self.name}: the controller has {count} namespaces and its "
                               "secure erase is per namespace (FNA bit 1 clear): one Format would leave the others; "
                               "use Sanitize")
        refuse_sanitize_states(capabilities.sanitize, self.name, what="Format NVM")

    def judge(self, capabilities: Capabilities, target: Target) -> Applicability:
        """SES=1 Purge (scope checked); SES=2 Clear: the declared levels, the reason naming the scope."""
        declared = super().judge(capabilities, target)
        if self.crypto:
            return declared
        controller = capabilities.nvme
        scope = ("every namespace (FNA bit 1)" if controller is not None and controller.fna.erase_all_namespaces
                 else "the only namespace")
        return Applicability(declared.level, declared.reason.replace("every namespace", scope, 1))

    def _nsid(self, capabilities: Capabilities) -> int:
        controller = capabilities.nvme
        assert controller is not None
        if namespace_count(capabilities) > 1 and not controller.fna.format_broadcast_unsupported:
            return NVME_BROADCAST_NSID
        return 1

    def _cdw10(self, capabilities: Capabilities) -> int:
        namespace = capabilities.nvme_namespace
        assert namespace is not None
        index = namespace.current_format_index
        # CDW10: LBAFL 3:0, MSET 4, PI 7:5, PIL 8, SES 11:9, LBAFU 13:12
        return (index & 0xF) | ((index >> 4) & 0x3) << 12 | (0b010 if self.crypto else 0b001) << 9

    def command_facts(self, capabilities: Capabilities) -> dict[str, Any]:
        """What is sent."""
        controller = capabilities.nvme
        assert controller is not None
        return {"command": "NVMe Format NVM (80h)", "ses": 2 if self.crypto else 1, "cdw10": self._cdw10(capabilities),
                "nsid": self._nsid(capabilities), "fna": controller.fna.to_json(),
                "namespaces": namespace_count(capabilities)}

    def start(self, context: MethodContext, capabilities: Capabilities) -> None:
        """Send Format NVM and wait for it (synchronous)."""
        # NVMe Base 2.0 Format NVM (80h): CDW10 SES 11:9, current LBA format kept
        self._transport(context).execute(NvmeAdminCommand(NVME_FORMAT_NVM, nsid=self._nsid(capabilities),
                                                          cdw10=self._cdw10(capabilities), timeout_s=FORMAT_TIMEOUT_S))

    def expectation(self, capabilities: Capabilities, canaries: CanarySet, facts: dict[str, Any]) -> Expectation:
        """Erased state for SES=1, indeterminate for SES=2."""
        if self.crypto:
            return Indeterminate(f"{self.name}: content after a cryptographic format is undefined", canaries)
        return ErasedState(f"{self.name}: user data after SES=001b is indeterminate by spec; accepted: erased state "
                           "(00h/FFh)", canaries=canaries)


def factory(crypto: bool) -> Any:
    """Registry factory."""
    return lambda _options: NvmeFormat(crypto)
