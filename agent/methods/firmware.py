"""The shape every firmware purge shares: re-check → canaries → command → poll → prove → expectation.

How the level is decided (an auditor's reading of STANDARDS.md / NIST SP 800-88 Rev. 1 Table A
rows / IEEE 2883):

* **Block erase** (ATA BLOCK ERASE EXT, SCSI BLOCK ERASE, NVMe SANACT 010b) is Purge on flash.
  Magnetic media are not listed for it, so on an HDD it is recorded as Clear.
* **Overwrite sanitize** (ATA OVERWRITE EXT, SCSI OVERWRITE) is Purge on HDDs; on ATA/SCSI flash
  it is not a listed Purge technique (the firmware may leave retired blocks alone), so Clear.
  NVMe Sanitize overwrite (011b) is listed for NVMe and recorded as Purge.
* **Cryptographic erase** (CRYPTO SCRAMBLE EXT, SCSI CRYPTOGRAPHIC ERASE, NVMe SANACT 100b,
  Format SES=2) is Purge only if all data was encrypted from first use by a validated module
  with ≥128-bit keys and every key was destroyed. Nothing an IDENTIFY page says establishes that
  (ATA word 69 bit 4 is the vendor's claim, not a validation), so this tool records crypto erase
  as **Clear, with that reason**. ``nist-purge`` therefore skips it and takes a verifiable purge
  (block erase / overwrite) when the drive has one, and refuses otherwise — it never upgrades a
  claim it cannot check. A drive that offers only crypto erase is refused with that explanation.
* **Security erase**: ENHANCED SECURITY ERASE UNIT on an HDD is Purge; the normal mode reaches LBA
  0..native max only (Clear); on flash both are Clear.
* **NVMe Format user-data erase** (SES=1) is listed as Purge for NVMe, provided the erase covers
  every namespace (FNA bit 1, or the controller has a single namespace).

Verification: canaries are planted and journalled before the command and proven absent after
(:mod:`agent.methods.canary`); the expectation for the sampling read-back is built from what the
spec says the media reads and what the drive reported (deallocation facts), and says what it
does not prove (:mod:`agent.methods.expectations`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from agent.errors import CommandError, NotSupported, ProfileError, VerificationFailed
from agent.methods.base import (
    Applicability,
    Level,
    MethodContext,
    MethodEvidence,
    MethodKind,
    MethodOutcome,
    Reach,
    Target,
    Technique,
)
from agent.methods.canary import CanarySet, plant, prove_absent
from agent.methods.capabilities import Capabilities, SanitizeState, capabilities_of, media_of, probe_capabilities
from agent.transport.commands import Transport
from agent.verify.expectation import Expectation

POLL_SECONDS = 5.0
MAX_WAIT_SECONDS = 72 * 3600.0  # the slowest overwrite sanitize of a large HDD takes well under a day
CANARY_COUNT = 64
# Pattern used by overwrite sanitize: the same byte four times, so byte order cannot matter, and not
# zero, so an overwrite is never confused with deallocated blocks reading as zeros.
OVERWRITE_PATTERN = 0xA5A5A5A5


CANARIES_PLANTED = "canaries-planted"
"""Journal event: the canary set written before the command (a resume proves the erase with it)."""
FIRMWARE_COMMAND = "firmware-command"
"""Journal event: what is about to be sent (a resume reads the options it was sent with)."""
FIRMWARE_STARTED = "firmware-started"
"""Journal event: the command was accepted; from here the sanitize may outlive the station's process."""


class SanitizeFailed(CommandError):
    """The drive reports that the sanitize it ran failed; ``route`` says where the drive goes."""

    code = "sanitize_failed"
    route: str | None = "destroy"

    def __init__(self, message: str, route: str = "destroy") -> None:
        super().__init__(message)
        self.route = route


@dataclass(frozen=True)
class SanitizeOptions:
    """Options of the sanitize methods.

    ``failure_mode``: ``restricted`` (default: after a failed sanitize the drive refuses media
    access until a sanitize succeeds — data stays unreachable) or ``unrestricted`` (AUSE / FAILURE
    MODE set: after a failure the method leaves the failure state with Exit Failure Mode so the
    drive is usable again; allowed only because the drive was asked for it in the command).
    """

    failure_mode: str = "restricted"

    def __post_init__(self) -> None:
        if self.failure_mode not in ("restricted", "unrestricted"):
            raise ProfileError(f"failure_mode must be 'restricted' or 'unrestricted', got {self.failure_mode!r}")

    @property
    def unrestricted(self) -> bool:
        """True when the command asks for unrestricted completion (AUSE / FAILURE MODE)."""
        return self.failure_mode == "unrestricted"


# The level rules of the module docstring, declared once; each method class's REACH table picks its rows.
CRYPTO_ERASE = Reach.by_media(Technique.CRYPTO_ERASE, *[Applicability(Level.CLEAR, (
    "cryptographic erase: Purge requires that all data was encrypted from first use by a validated module "
    "with >=128-bit keys and that every key was destroyed; the drive cannot prove that through its identify "
    "data, so it is recorded as Clear (NIST SP 800-88 Rev. 1 §2.6 / STANDARDS.md)"))] * 2)
"""Every firmware crypto erase: Clear, with the reason (a claim the drive cannot prove is not upgraded)."""

BLOCK_ERASE = Reach.by_media(
    Technique.BLOCK_ERASE,
    magnetic=Applicability(Level.CLEAR, "block erase is not a listed Purge technique for magnetic media: Clear"),
    flash=Applicability(Level.PURGE, "firmware block erase of every flash block, including spare and "
                                     "over-provisioned blocks: Purge (NIST SP 800-88 Rev. 1, Table A)"))
"""ATA BLOCK ERASE EXT, SCSI BLOCK ERASE, NVMe SANACT 010b."""

_OVERWRITE_HDD = Applicability(Level.PURGE, "firmware overwrite of every LBA up to native max, including "
                                            "reallocated sectors: Purge for HDDs (NIST SP 800-88 Rev. 1, Table A)")
OVERWRITE = Reach.by_media(
    Technique.OVERWRITE, magnetic=_OVERWRITE_HDD,
    flash=Applicability(Level.CLEAR, "overwrite sanitize on ATA/SCSI flash is not a listed Purge technique "
                                     "(retired blocks may keep data): Clear"))
"""ATA OVERWRITE EXT and SCSI OVERWRITE."""

NVME_OVERWRITE = Reach.by_media(
    Technique.OVERWRITE, magnetic=_OVERWRITE_HDD,
    flash=Applicability(Level.PURGE, "NVMe Sanitize overwrite (SANACT 011b) of the whole NVM subsystem: "
                                     "Purge (NIST SP 800-88 Rev. 1, NVMe row)"))
"""NVMe Sanitize overwrite (SANACT 011b): listed for NVMe."""

SANITIZE_ACTIONS = {"crypto": CRYPTO_ERASE, "block": BLOCK_ERASE, "overwrite": OVERWRITE}
"""The REACH table of the ATA and SCSI sanitize methods (NVMe's differs in its overwrite)."""


class FirmwareMethod:
    """Base of every firmware method; subclasses provide the interface-specific steps."""

    name = ""
    summary = ""
    interface = ""
    action = ""  # crypto | block | overwrite | user_erase | security
    phase = "sanitize"
    synchronous = False  # True: the command returns when done (no polling)
    kind = MethodKind.FIRMWARE
    REACH: ClassVar[Mapping[str, Reach]] = {}
    """Technique and level rules by ``action``: what the subclass declares it reaches on which media."""

    @property
    def reach(self) -> Reach:
        """This method's row of its class's REACH table."""
        return self.REACH[self.action]

    # -- what subclasses provide ----------------------------------------------------------------
    def refuse_states(self, capabilities: Capabilities, target: Target) -> None:
        """Raise Blocked / NotSupported for anything that forbids the method now."""
        raise NotImplementedError

    def judge(self, capabilities: Capabilities, target: Target) -> Applicability:
        """Level and reason on this drive: the declared rule for its media (magnetic by the drive's own
        evidence, else flash)."""
        return self.reach.on(media_of(target))

    def prepare(self, context: MethodContext, capabilities: Capabilities) -> dict[str, Any]:
        """Non-destructive preliminaries (e.g. hidden-area restore); returns facts to record."""
        return {}

    def command_facts(self, capabilities: Capabilities) -> dict[str, Any]:
        """What will be sent (journalled before sending)."""
        raise NotImplementedError

    def start(self, context: MethodContext, capabilities: Capabilities) -> None:
        """Send the destructive command."""
        raise NotImplementedError

    def poll(self, transport: Transport) -> SanitizeState:
        """Read the progress / final state."""
        raise NotImplementedError

    def exit_failure_mode(self, transport: Transport) -> None:
        """Leave an unrestricted failure state (only called when the command asked for unrestricted mode)."""
        raise NotImplementedError

    def completion_facts(self, context: MethodContext, before: Capabilities) -> dict[str, Any]:
        """Facts read after completion (deallocation, passes, …)."""
        return {}

    def expectation(self, capabilities: Capabilities, canaries: CanarySet, facts: dict[str, Any]) -> Expectation:
        """What the sampling read-back must find."""
        raise NotImplementedError

    @property
    def unrestricted(self) -> bool:
        """Whether the command asks for unrestricted failure mode."""
        return False

    # -- the shared flow ------------------------------------------------------------------------
    def check(self, target: Target) -> Applicability:
        """Raise if the method cannot run on ``target`` now; else its level and why."""
        capabilities = capabilities_of(target, self.interface, self.name)
        self.refuse_states(capabilities, target)
        return self.judge(capabilities, target)

    def estimate(self, target: Target) -> float:
        """Seconds; firmware erases of flash are quick, overwrites run at media speed."""
        if self.action == "overwrite":
            return target.identity.size_bytes / 150e6
        return max(60.0, target.identity.size_bytes / 2e9)

    def _transport(self, context: MethodContext) -> Transport:
        transport = context.target.transport
        if transport is None:
            raise NotSupported(f"{self.name}: no pass-through transport")
        return transport  # type: ignore[no-any-return]

    def _probe(self, context: MethodContext) -> Capabilities:
        previous = context.target.capabilities
        usb = previous.usb if isinstance(previous, Capabilities) else False
        return probe_capabilities(self._transport(context), self.interface, usb=usb)

    def run(self, context: MethodContext) -> MethodOutcome:
        """Re-check the drive, plant canaries, send the command, wait, prove, and say what to verify."""
        started = time.monotonic()
        capabilities = self._probe(context)
        target = Target(context.target.identity, capabilities, context.target.transport)
        self.refuse_states(capabilities, target)  # the state may have changed since selection
        applicability = self.judge(capabilities, target)
        details: dict[str, Any] = {"capabilities": capabilities.to_json()}
        details.update(self.prepare(context, capabilities))
        canaries = plant(context.device, CANARY_COUNT)
        context.journal(CANARIES_PLANTED, canaries.to_json())
        command = self.command_facts(capabilities)
        context.journal(FIRMWARE_COMMAND, {"method": self.name, **command})
        self.start(context, capabilities)
        context.journal(FIRMWARE_STARTED, {"method": self.name})
        details["command"] = command
        return self._conclude(context, capabilities, canaries, applicability, details, started)

    def resume(self, context: MethodContext, canaries: CanarySet) -> MethodOutcome:
        """Adopt a sanitize this job started before a restart: keep polling, never start another.

        The caller (``JobRunner.resume``) has seen the drive report the sanitize in progress.
        """
        started = time.monotonic()
        capabilities = self._probe(context)
        # The caller saw the sanitize in progress; it may have finished since. Either way only status
        # polls follow, and the canaries decide whether it really erased anything.
        target = Target(context.target.identity, capabilities, context.target.transport)
        applicability = self.judge(capabilities, target)
        context.journal("firmware-resumed", {"method": self.name, "sanitize": capabilities.sanitize.to_json()})
        details: dict[str, Any] = {"capabilities": capabilities.to_json(), "resumed_after_restart": True}
        return self._conclude(context, capabilities, canaries, applicability, details, started)

    def _conclude(self, context: MethodContext, capabilities: Capabilities, canaries: CanarySet,
                  applicability: Applicability, details: dict[str, Any], started: float) -> MethodOutcome:
        if not self.synchronous:
            final, polls = self._wait(context)
            details["polls"] = polls
            details["final_state"] = final.to_json()
            if final.state == "failed" or final.last_success is False:
                self._failed(context, final)
        details.update(self.completion_facts(context, capabilities))
        report = prove_absent(context.device, canaries)
        context.journal("canaries-checked", report.to_json())
        details["canaries"] = {**report.to_json(), "seed": canaries.seed, "block": canaries.block}
        if not report.passed:
            raise VerificationFailed(
                f"{self.name}: {len(report.survivors)} of {report.checked} canary blocks written before the purge are "
                f"still on the medium (first at byte {report.survivors[0]}): the drive reported success but did not "
                "erase them")
        expectation = self.expectation(capabilities, canaries, details)
        details["expectation"] = expectation.describe()
        return MethodOutcome(
            method=self.name,
            level=applicability.level,
            expectation=expectation,
            bytes_written=0,
            seconds=time.monotonic() - started,
            evidence=MethodEvidence(
                capabilities=details.pop("capabilities"), hidden_areas=details.pop("hidden_areas", None),
                canaries=details.pop("canaries"),
                observations={**details, "canary_bytes_written": len(canaries.offsets) * canaries.block}),
        )

    def _wait(self, context: MethodContext) -> tuple[SanitizeState, int]:
        transport = self._transport(context)
        size = context.device.size
        waited, polls, noted = 0.0, 0, False
        while True:
            state = self.poll(transport)
            polls += 1
            if state.state != "in_progress":
                context.progress(self.phase, size, size)
                return state, polls
            context.progress(self.phase, int((state.progress or 0.0) * size), size)
            if context.cancelled() and not noted:
                noted = True  # a sanitize cannot be stopped: stopping here would only lose track of it
                context.journal("cancel-deferred", {"reason": "a firmware sanitize cannot be aborted; it continues "
                                                              "across resets, so the job keeps polling"})
            if waited >= MAX_WAIT_SECONDS:
                raise CommandError(f"{self.name}: still in progress after {waited:.0f} s; the drive keeps sanitizing "
                                   "— leave it powered and run the job again later")
            context.sleep(POLL_SECONDS)
            waited += POLL_SECONDS

    def _failed(self, context: MethodContext, final: SanitizeState) -> None:
        context.journal("sanitize-failed", {"state": final.to_json(), "unrestricted": self.unrestricted})
        if self.unrestricted:
            self.exit_failure_mode(self._transport(context))
            context.journal("exit-failure-mode", {"reason": "the sanitize was started in unrestricted mode"})
            raise SanitizeFailed(f"{self.name}: the drive reports the sanitize FAILED ({final.detail}); it was "
                                 "started in unrestricted mode, so the failure state was exited and the drive is "
                                 "usable — its data is NOT sanitised; hold it for another attempt", route="hold")
        raise SanitizeFailed(f"{self.name}: the drive reports the sanitize FAILED ({final.detail}); restricted "
                             "failure mode keeps media access blocked until a sanitize succeeds — route the drive "
                             "to destruction", route="destroy")
