"""ATA Security feature set erase: SECURITY ERASE UNIT, normal or enhanced (ACS-4 Security feature set).

Sequence: restore hidden areas → plant canaries → journal a fresh temporary user password
(committed *before* it is set, so a crash can never leave a drive locked with a password nobody
knows) → SECURITY SET PASSWORD (user, High) → SECURITY ERASE PREPARE → SECURITY ERASE UNIT
(synchronous: the host waits up to twice the IDENTIFY words 89/90 estimate) → IDENTIFY to confirm
security is disabled again.

On any failure after the password was set, the password is removed (SECURITY UNLOCK if the drive
locked itself, then SECURITY DISABLE PASSWORD). If even that fails — the drive lost power and is
gone — the error names the journal event holding the password, and it is removed when the drive
comes back: after a station crash by the method's resume hook (:meth:`AtaSecurityErase.recover_orphan`,
called by ``JobRunner.resume``), and in every other case by the next job started on the same drive
(model + serial) before it selects a method (:func:`release_journalled_password`, called by
``JobRunner.run``). That recovery lives here, with the password it removes.

Levels: enhanced on an HDD is Purge (it also writes reallocated sectors); normal reaches LBA 0..
native max only (Clear); on flash SECURITY ERASE UNIT is **Clear only** (spare blocks are not
guaranteed to be erased). Expectation: normal mode writes binary zeros; enhanced writes a vendor
pattern (indeterminate to the host) — the canaries are the proof either way.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from agent.contracts import JobState, Route
from agent.discovery.identity import DriveIdentity
from agent.drive.opcodes import (
    ATA_SECURITY_DISABLE_PASSWORD,
    ATA_SECURITY_ERASE_PREPARE,
    ATA_SECURITY_ERASE_UNIT,
    ATA_SECURITY_SET_PASSWORD,
    ATA_SECURITY_UNLOCK,
)
from agent.errors import AgentError, DriveError, DriveRemoved, NotSupported
from agent.methods.ata_sanitize import FROZEN_INSTRUCTION, refuse_security_locked
from agent.methods.base import Applicability, Blocked, Level, MethodContext, Reach, Target, Technique
from agent.methods.canary import CanarySet
from agent.methods.capabilities import Capabilities, ata_identify, refuse_sanitize_states
from agent.methods.expectations import FirmwareResult, Indeterminate
from agent.methods.firmware import FirmwareMethod
from agent.methods.hidden_areas import restore_hidden_areas
from agent.store.registry import FINAL_STATES, OpenEvent, Registry, identity_matchable
from agent.transport.commands import AtaCommand, AtaProtocol, CommandFailed, Transport
from agent.verify.expectation import Expectation, Zero

PASSWORD_EVENT = "ata-temporary-password"
CLEANUP_EVENT = "password-cleanup"  # answers a PASSWORD_EVENT in the same job's journal
RELEASED_EVENT = "ata-password-released"  # in the new job: whose password it removed
# ACS-4: failed SECURITY UNLOCKs count down the password attempt counter (five, then it expires until a
# power cycle); trying at most four journalled passwords never expires it on a stranger's drive
MAX_PASSWORD_TRIES = 4
DEFAULT_ERASE_TIMEOUT_S = 12 * 3600.0


def _password_block(password: bytes, *, enhanced: bool = False) -> bytes:
    # ACS-4 SECURITY SET PASSWORD / ERASE UNIT / UNLOCK / DISABLE data: word 0 control
    # (bit 0 identifier: 0 = user, bit 1 enhanced erase, bit 8 master capability 0 = High), words 1-16 password
    block = bytearray(512)
    block[0:2] = (0x0002 if enhanced else 0x0000).to_bytes(2, "little")
    block[2:34] = password.ljust(32, b"\0")
    return bytes(block)


def _pio_out(opcode: int, payload: bytes, timeout_s: float = 30.0) -> AtaCommand:
    return AtaCommand(opcode, AtaProtocol.PIO_OUT, count=1, data_out=payload, timeout_s=timeout_s, extend=False)


class PasswordRejected(AgentError):
    """The drive refused the password (SECURITY UNLOCK or DISABLE PASSWORD aborted, state unchanged).

    Not a fault of the station: the password is simply not the one set on the drive (or the drive's
    password attempt counter has expired).
    """

    code = "password_rejected"
    http_status = 400


class PasswordCleanupFailed(DriveError):
    """A temporary password this station set is known to be on the drive, and removing it failed."""

    code = "password_cleanup_failed"
    http_status = 400  # not a ``drive_*`` code: the API always answered it 400
    route = "hold"  # our own password is on it: never a reason to destroy the drive


def release_password(transport: Transport, password: bytes) -> str:
    """Remove a temporary user password this station set: unlock if locked, then disable. Returns what was done.

    Raises :class:`PasswordRejected` when the drive refuses ``password`` itself (IDENTIFY read back
    after the aborted command still shows the drive locked / enabled), any other AgentError when
    the password was right but the removal failed. Every step is confirmed by IDENTIFY, never by the
    command's status alone.
    """
    security = ata_identify(transport).security
    if not security.enabled:
        return "security already disabled"
    unlocked_here = False
    if security.locked:
        try:
            # ACS-4 SECURITY UNLOCK (F2h): SEC4 -> SEC5 with the user password
            transport.execute(_pio_out(ATA_SECURITY_UNLOCK, _password_block(password)))
        except CommandFailed as exc:
            if ata_identify(transport).security.locked:
                raise PasswordRejected(f"SECURITY UNLOCK refused the password ({exc.message})") from exc
            raise
        if ata_identify(transport).security.locked:
            raise AgentError("SECURITY UNLOCK completed but IDENTIFY still reports the drive locked")
        unlocked_here = True
    try:
        # ACS-4 SECURITY DISABLE PASSWORD (F6h): SEC5 -> SEC1
        transport.execute(_pio_out(ATA_SECURITY_DISABLE_PASSWORD, _password_block(password)))
    except CommandFailed as exc:
        # after an UNLOCK with this very password succeeded, an aborted DISABLE is a fault, not a wrong password
        if not unlocked_here and ata_identify(transport).security.enabled:
            raise PasswordRejected(f"SECURITY DISABLE PASSWORD refused the password ({exc.message})") from exc
        raise
    if ata_identify(transport).security.enabled:
        raise AgentError("SECURITY DISABLE PASSWORD completed but IDENTIFY still reports security enabled")
    return "temporary password removed"


_ON_FLASH = Applicability(Level.CLEAR, "SECURITY ERASE UNIT on flash is Clear only: the firmware is not "
                                       "required to erase spare/over-provisioned blocks (STANDARDS.md)")


class AtaSecurityErase(FirmwareMethod):
    """SECURITY ERASE UNIT, normal or enhanced."""

    interface = "ata"
    action = "security"
    # the certificate has always printed "other" for a security erase: the mode's pattern is the vendor's
    REACH: ClassVar[Mapping[str, Reach]] = {
        "normal": Reach.by_media(Technique.OTHER, flash=_ON_FLASH, magnetic=Applicability(
            Level.CLEAR, "normal SECURITY ERASE UNIT reaches LBA 0..native max only, not reallocated sectors: Clear")),
        "enhanced": Reach.by_media(Technique.OTHER, flash=_ON_FLASH, magnetic=Applicability(
            Level.PURGE, "ENHANCED SECURITY ERASE UNIT on an HDD writes every user data area including "
                         "reallocated sectors: Purge (NIST SP 800-88 Rev. 1, Table A)")),
    }

    @property
    def reach(self) -> Reach:
        """The normal or the enhanced mode's row."""
        return self.REACH["enhanced" if self.enhanced else "normal"]
    phase = "security-erase"
    synchronous = True

    @staticmethod
    def recover_orphan(registry: Registry, job_id: str, identify: Callable[[str], DriveIdentity],
                       transports: Callable[[DriveIdentity], Transport | None]) -> bool:
        """The resume hook: a security erase cannot be adopted (the command died with the station),
        but the temporary password it journalled is removed and the job ends interrupted
        (:func:`recover_orphan_password`)."""
        return recover_orphan_password(registry, job_id, identify, transports)

    def __init__(self, enhanced: bool) -> None:
        self.enhanced = enhanced
        self.name = "ata.security_erase.enhanced" if enhanced else "ata.security_erase.normal"
        self.summary = ("ATA ENHANCED SECURITY ERASE UNIT (vendor pattern over all user data, incl. reallocated)"
                        if enhanced else "ATA SECURITY ERASE UNIT, normal mode (binary zeros over LBA 0..max)")

    def refuse_states(self, capabilities: Capabilities, target: Target) -> None:
        """Unsupported, frozen, locked/enabled, attempts expired, sanitize in progress or failed."""
        identify = capabilities.ata
        if identify is None or not identify.security.supported:
            raise NotSupported(f"{self.name}: the drive has no Security feature set")
        security = identify.security
        if self.enhanced and not security.enhanced_erase_supported:
            raise NotSupported(f"{self.name}: the drive does not support ENHANCED SECURITY ERASE (word 128 bit 5)")
        refuse_sanitize_states(capabilities.sanitize, self.name, what="security commands")
        refuse_security_locked(capabilities, self.name)
        if security.frozen:
            raise Blocked("security-frozen", f"{self.name}: ATA security is FROZEN (SECURITY FREEZE LOCK, usually "
                                             "sent by the BIOS at boot)", FROZEN_INSTRUCTION)
        if security.count_expired:
            raise Blocked("security-frozen", f"{self.name}: the password attempt counter has expired",
                          "power-cycle the drive (re-plug it) and run the job again")

    def estimate(self, target: Target) -> float:
        """IDENTIFY words 89/90 when known."""
        capabilities = target.capabilities
        if isinstance(capabilities, Capabilities) and capabilities.ata is not None:
            security = capabilities.ata.security
            minutes = security.enhanced_erase_minutes if self.enhanced else security.erase_minutes
            if minutes:
                return minutes * 60.0
        return target.identity.size_bytes / 150e6

    def _timeout(self, capabilities: Capabilities) -> float:
        if capabilities.ata is not None:
            security = capabilities.ata.security
            minutes = security.enhanced_erase_minutes if self.enhanced else security.erase_minutes
            if minutes:
                return max(600.0, minutes * 60.0 * 2)
        return DEFAULT_ERASE_TIMEOUT_S

    def prepare(self, context: MethodContext, capabilities: Capabilities) -> dict[str, Any]:
        """Restore hidden areas; a DCO-hidden area that stays hidden stops the erase."""
        report = restore_hidden_areas(self._transport(context), capabilities)
        context.journal("hidden-areas", report.to_json())
        if report.dco_hidden:
            raise NotSupported(f"{self.name}: a Device Configuration Overlay hides LBAs {report.max_lba_after}.."
                               f"{report.dco_max_lba} and could not be restored; SECURITY ERASE UNIT would not reach "
                               "them")
        return {"hidden_areas": report.to_json()}

    def command_facts(self, capabilities: Capabilities) -> dict[str, Any]:
        """What is sent."""
        return {"command": "ATA SECURITY SET PASSWORD (F1h) + SECURITY ERASE PREPARE (F3h) + SECURITY ERASE UNIT "
                           "(F4h)", "enhanced": self.enhanced, "timeout_s": self._timeout(capabilities),
                "password_event": PASSWORD_EVENT}

    def start(self, context: MethodContext, capabilities: Capabilities) -> None:
        """Set a journalled temporary password, erase, and make sure no password is left behind."""
        transport = self._transport(context)
        password = secrets.token_hex(16).encode("ascii")  # 32 ASCII bytes: typeable by an operator if ever needed
        context.journal(PASSWORD_EVENT, {"password": password.decode("ascii"), "identifier": "user",
                                         "why": "temporary; removed after the erase (the erase also clears it)"})
        try:
            # ACS-4 SECURITY SET PASSWORD (F1h): user password, Master Password Capability High
            transport.execute(_pio_out(ATA_SECURITY_SET_PASSWORD, _password_block(password)))
            # ACS-4 SECURITY ERASE PREPARE (F3h): must immediately precede SECURITY ERASE UNIT
            transport.execute(AtaCommand(ATA_SECURITY_ERASE_PREPARE, extend=False))
            # ACS-4 SECURITY ERASE UNIT (F4h): word 0 bit 1 selects enhanced mode
            transport.execute(_pio_out(ATA_SECURITY_ERASE_UNIT, _password_block(password, enhanced=self.enhanced),
                                       timeout_s=self._timeout(capabilities)))
        except DriveRemoved:
            raise DriveRemoved(f"{self.name}: the drive went away during SECURITY ERASE UNIT; it may come back locked "
                               f"with the temporary password recorded in this job's journal ({PASSWORD_EVENT}); "
                               "the next job started on this drive removes it") from None
        except AgentError as exc:
            try:
                done = release_password(transport, password)
            except AgentError as cleanup:
                context.journal("password-cleanup-failed", {"reason": cleanup.message})
                raise AgentError(f"{self.name}: {exc.message}; removing the temporary password ALSO failed "
                                 f"({cleanup.message}) — unlock it with the password in the journal event "
                                 f"{PASSWORD_EVENT}") from exc
            context.journal(CLEANUP_EVENT, {"result": done})
            raise
        done = release_password(transport, password)  # a successful erase disables security; check, never assume
        context.journal(CLEANUP_EVENT, {"result": done})

    def expectation(self, capabilities: Capabilities, canaries: CanarySet, facts: dict[str, Any]) -> Expectation:
        """Zeros for normal mode; indeterminate (vendor pattern) for enhanced."""
        if self.enhanced:
            return Indeterminate(f"{self.name}: ENHANCED SECURITY ERASE writes a vendor-specific pattern", canaries)
        return FirmwareResult(Zero(), f"{self.name}: normal SECURITY ERASE UNIT writes binary zeros to all user "
                                      "data areas")


# -- recovering a temporary password a cut-short erase left (the job runner calls these) ----------
def release_journalled_password(registry: Registry, job_id: str, target: Target,
                                refresh: Callable[[Target], Target]) -> tuple[Target, str | None]:
    """Remove a temporary ATA password an earlier job of this drive journalled and never removed.

    Called by the job runner before a new job selects its method (``refresh`` identifies and probes
    the drive again through the same transport). Returns the target to continue with (identified and
    probed again after a removal) and, when the
    drive stays locked or enabled, a note for the refusal: whether this station's passwords were
    tried. Journalled passwords are looked up by model + serial only; a drive that does not report
    both is never matched. Newest first, at most :data:`MAX_PASSWORD_TRIES`, stopping at the first
    one the drive accepts. Raises :class:`Blocked` (hold) when the drive cannot take a password now
    (frozen, attempt counter expired) and :class:`PasswordCleanupFailed` (hold) when the password was
    accepted but the removal failed: nothing else is sent to the drive then.
    """
    capabilities, transport, identity = target.capabilities, target.transport, target.identity
    if transport is None or not isinstance(capabilities, Capabilities) or capabilities.ata is None:
        return target, None
    security = capabilities.ata.security
    if not security.supported:
        return target, None
    if not identity_matchable(identity.model, identity.serial):
        return target, ("the drive reports no model or serial number, so no temporary password journalled by "
                        "this station can be matched to it; none was tried" if security.enabled else None)
    pending = registry.open_events(identity.model, identity.serial, PASSWORD_EVENT, CLEANUP_EVENT,
                                        exclude_job=job_id)
    if not security.enabled:
        _close_stale(registry, job_id, pending)
        return target, None
    if not pending:
        return target, ("no temporary password of this station is journalled for this drive (model "
                        f"{identity.model}, serial {identity.serial}), so none was tried")
    jobs = ", ".join(entry.job_id for entry in pending)
    if security.frozen:
        raise Blocked("security-frozen", f"ATA security is enabled and FROZEN, and the drive may carry the "
                                         f"temporary password journalled by job(s) {jobs}, which cannot be "
                                         "removed while it is frozen", FROZEN_INSTRUCTION)
    if security.count_expired:
        raise Blocked("security-frozen", f"ATA security is enabled and its password attempt counter has "
                                         f"expired; the drive may carry the temporary password journalled by "
                                         f"job(s) {jobs}", "power-cycle the drive (re-plug it) and run the job "
                                                           "again: the station then removes its password")
    rejected: list[dict[str, str]] = []
    for entry in pending[:MAX_PASSWORD_TRIES]:
        password = entry.data.get("password")
        if not isinstance(password, str) or not password.isascii():
            rejected.append({"job": entry.job_id, "reason": "no usable password in the journal event"})
            continue
        try:
            result = release_password(transport, password.encode("ascii"))
        except PasswordRejected as exc:
            rejected.append({"job": entry.job_id, "reason": exc.message})
            if ata_identify(transport).security.count_expired:
                break
            continue
        except DriveRemoved:
            raise  # the job fails as removed; the password stays journalled for the next one
        except AgentError as exc:
            registry.journal(entry.job_id, "password-cleanup-failed", {"reason": exc.message,
                                                                            "by_job": job_id})
            registry.journal(job_id, "ata-password-release-failed", {"job": entry.job_id,
                                                                          "reason": exc.message})
            raise PasswordCleanupFailed(
                f"removing the temporary ATA password journalled by job {entry.job_id} (event {PASSWORD_EVENT}) "
                f"failed: {exc.message}; nothing was erased — re-plug the drive and run the job again, or "
                "remove the password by hand with the journalled one") from exc
        registry.journal(entry.job_id, CLEANUP_EVENT, {"result": result, "by_job": job_id})
        registry.journal(job_id, RELEASED_EVENT, {"job": entry.job_id, "journalled_at": entry.at,
                                                       "result": result, "rejected_before": rejected})
        _close_stale(registry, job_id, [other for other in pending if other is not entry])  # none left on the drive
        return refresh(target), None
    tried = ", ".join(item["job"] for item in rejected)
    not_tried = [entry.job_id for entry in pending[len(rejected):]]
    registry.journal(job_id, "ata-passwords-rejected", {"tried": rejected, "not_tried": not_tried})
    note = (f"the temporary password(s) this station journalled for this drive (job(s) {tried}) were tried and "
            "refused: it carries a password this station did not set")
    if not_tried:
        note += (f" ({len(not_tried)} older journalled password(s) not tried, to keep the drive's attempt counter "
                 "from expiring: see journal event ata-passwords-rejected)")
    return refresh(target), note

def _close_stale(registry: Registry, job_id: str, pending: list[OpenEvent]) -> None:
    """The drive reports security disabled: journalled passwords are not on it (never set, or erased since)."""
    for entry in pending:
        registry.journal(entry.job_id, CLEANUP_EVENT, {"result": "security already disabled",
                                                            "by_job": job_id})
    if pending:
        registry.journal(job_id, "ata-password-not-set", {"jobs": [entry.job_id for entry in pending]})


def recover_orphan_password(registry: Registry, job_id: str, identify: Callable[[str], DriveIdentity],
                            transports: Callable[[DriveIdentity], Transport | None]) -> bool:
    """Remove the temporary ATA password a cut-short SECURITY ERASE UNIT left on the drive.

    The password was journalled before it was set. For an orphaned job (power loss of the
    station) the job is adopted and ends ``interrupted``; for a job that already ended (the
    drive alone lost power: ``failed``/``drive-removed``) only the cleanup is journalled.
    Returns False when there is nothing to do or the drive is not there.
    """
    job = registry.job(job_id)
    events = registry.events(job.id)
    names = [event["event"] for event in events]

    def last(name: str) -> int:
        return max((index for index, event in enumerate(names) if event == name), default=-1)

    if last(PASSWORD_EVENT) < 0 or last(CLEANUP_EVENT) > last(PASSWORD_EVENT):
        return False  # no password was set, or it was already removed
    password = [event["data"]["password"] for event in events if event["event"] == PASSWORD_EVENT][-1]
    try:
        identity = identify(job.device_path)
    except AgentError:
        return False
    if (identity.model, identity.serial) != (job.drive.model, job.drive.serial):
        return False
    if not identity_matchable(identity.model, identity.serial):
        return False  # drives without a serial cannot be told apart: never send another drive's password
    transport = transports(identity)
    if transport is None:
        return False
    active = job.state not in FINAL_STATES
    if active:
        registry.adopt(job.id, "resumed", {"method": job.method, "action": "remove temporary ATA password"})
    try:
        done = release_password(transport, str(password).encode("ascii"))
    except AgentError as exc:
        registry.journal(job.id, "password-cleanup-failed", {"reason": exc.message})
        if active:
            reason = (f"security erase interrupted; removing the temporary ATA password failed ({exc.message}): "
                      f"unlock the drive with the password in journal event {PASSWORD_EVENT}")
            registry.transition(job.id, JobState.FAILED, "password-cleanup-failed", {"reason": exc.message},
                                     reason=reason, error_code=exc.code, route=Route.HOLD)
    else:
        registry.journal(job.id, CLEANUP_EVENT, {"result": done})
        if active:
            registry.transition(
                job.id, JobState.INTERRUPTED, "interrupted", {"result": done}, error_code="interrupted",
                route=Route.HOLD,
                reason="the security erase was cut short (power loss); the temporary ATA password was removed "
                       "and the drive is unlocked — run the job again")
    finally:
        try:
            transport.close()
        except (AgentError, OSError):
            pass
    return True


def factory(enhanced: bool) -> Any:
    """Registry factory."""
    return lambda _options: AtaSecurityErase(enhanced)
