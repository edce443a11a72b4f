"""The job state machine: identify → guard → select → (commit) run → verify → outcome.

States: ``created → checking → running → verifying → sanitised | failed``, with ``refused`` when
the guard or the policy says no before anything is touched, and ``interrupted`` when the job is
cancelled or its process dies (found later by ``Registry.reconcile``). ``running`` is committed
before the first destructive command, so a crash can never leave a job that looks finished.

Firmware methods reach the drive through a command transport: ``transports(identity)`` opens one
(default: :func:`agent.transport.open_transport` for SATA/NVMe/SCSI/USB drives, none for virtual
media), the runner probes capabilities and state through it (:mod:`agent.methods.capabilities`)
before selection, and closes it when the job ends. :meth:`JobRunner.resume` adopts an orphaned
firmware sanitize after a restart instead of letting it be marked interrupted.

A drive this station locked itself must never look like a drive locked by a stranger (that route
is destruction): before the blocking-state checks, a new job looks up every temporary ATA password
an earlier job of the same drive (model + serial) journalled and never removed — the drive lost
power mid-erase, the cleanup failed, the station died — and removes it (newest first), journalling
the cleanup on both jobs. See :meth:`JobRunner._release_journalled_password`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.discovery import medium as media
from agent.discovery.backing_watch import BackingWatch, WatchUnavailable
from agent.discovery.guard import Authorisation, Guard
from agent.discovery.identity import DriveIdentity
from agent.discovery.medium import MediumInstance
from agent.errors import (
    AgentError,
    DriveProtected,
    DriveRemoved,
    JobInterrupted,
    MediaError,
    MediumChanged,
    VerificationFailed,
)
from agent.methods import registry as method_registry
from agent.methods.ata_sanitize import FROZEN_INSTRUCTION
from agent.methods.ata_security_erase import (
    PASSWORD_EVENT,
    PasswordCleanupFailed,
    PasswordRejected,
    release_password,
)
from agent.methods.base import Blocked, Method, MethodContext, MethodOutcome, Target
from agent.methods.canary import CanarySet
from agent.methods.capabilities import Capabilities, ata_identify, interface_for, probe_capabilities
from agent.methods.firmware import FirmwareMethod, SanitizeOptions
from agent.operators import OperatorStamp
from agent.policy.profiles import Profile
from agent.policy.select import NoMethod, select_method
from agent.store.registry import FINAL_STATES, JobRow, OpenEvent, Registry, identity_matchable
from agent.transport.block import BlockDevice
from agent.transport.commands import Transport
from agent.verify.readback import VerifyCancelled, verify

# progress(job_id, phase, done, total)
JobProgress = Callable[[str, str, int, int], None]
# opens the command transport of a drive (None: no pass-through, e.g. virtual media)
TransportFactory = Callable[[DriveIdentity], Transport | None]

_log = logging.getLogger(__name__)
_PASSTHROUGH_TRANSPORTS = ("sata", "nvme", "scsi", "usb")
CLEANUP_EVENT = "password-cleanup"  # answers a PASSWORD_EVENT in the same job's journal
RELEASED_EVENT = "ata-password-released"  # in the new job: whose password it removed
# ACS-4: failed SECURITY UNLOCKs count down the password attempt counter (five, then it expires until a
# power cycle); trying at most four journalled passwords never expires it on a stranger's drive
MAX_PASSWORD_TRIES = 4


def default_transports(identity: DriveIdentity) -> Transport | None:
    """SG_IO / NVMe ioctl transport for real drives; None for virtual media or when it cannot be opened."""
    if identity.transport not in _PASSTHROUGH_TRANSPORTS:
        return None
    from agent.transport.device import open_transport

    try:
        return open_transport(identity.path)
    except AgentError:
        return None


@dataclass(frozen=True)
class JobRequest:
    """What to sanitise, how, and on whose authority."""

    device_path: str
    profile: Profile
    authorisation: Authorisation
    asset_tag: str | None = None
    host: dict[str, Any] | None = None
    # the medium the operator confirmed (``agent.discovery.medium.capture`` before the prompt); None:
    # bound when the job starts
    medium: MediumInstance | None = None
    # the person the job is attributed to (agent.operators); None: the authorisation's operator name as given
    operator: OperatorStamp | None = None


class _Binding:
    """The medium instance a job is bound to, compared again at each step (see agent.discovery.medium).

    Besides the medium's identity, each check after the first write compares the disk's write
    counter with what the job wrote (nobody else may have written: a plain open after the guard's
    last look, a descriptor received over a socket, a loop stacked mid-job) and asks the guard again
    (by the descriptor's dev_t) whether anything now mounts, stacks on or holds the disk.
    """

    def __init__(self, bound: MediumInstance, guard: Guard | None = None) -> None:
        self.bound = bound
        self.guard = guard
        self.writes: media.WriteCount | None = None
        self.watch: BackingWatch | None = None

    def start_counting(self, device: BlockDevice) -> None:
        """Snapshot the disk's write counter before the first write; watch a loop's backing file.

        A file-backed loop whose backing file cannot be watched is refused (MediumChanged before any
        write): its file can be written beside the loop, where the loop's write counter never sees
        it, so without the watch nothing could prove the certified bytes are the ones on the file.
        """
        self.writes = media.write_count(self.bound.name, device.bytes_written)
        loop = self.bound.loop
        if loop is not None and loop.backing_rdevice == 0 and self.watch is None:
            try:
                self.watch = BackingWatch.start(self.bound.name, (loop.backing_device, loop.backing_inode))
            except WatchUnavailable as exc:
                reason = (f"the backing file of {self.bound.name} cannot be watched during the job: {exc.message}; "
                          "a file-backed loop is not wiped without that watch")
                _log.warning("%s: %s", device.path, reason)
                raise MediumChanged(f"{device.path}: refused: {reason}", (reason,), written=False) from exc

    def close(self) -> None:
        """Stop watching."""
        if self.watch is not None:
            self.watch.close()
            self.watch = None

    @classmethod
    def of_open(cls, device: BlockDevice, guard: Guard | None = None) -> _Binding:
        """Bound to the medium behind an open descriptor (a resumed job: bound from the resume on)."""
        try:
            binding = cls(media.capture_open(device), guard)
        except OSError as exc:
            raise MediumChanged(f"{device.path}: the medium cannot be read: {exc.strerror}") from exc
        binding.start_counting(device)
        return binding

    def check(self, device: BlockDevice, when: str, *, written: bool, last_write: bool = False) -> MediumInstance:
        """Raise MediumChanged if the medium behind ``device`` is not the bound one (size: the one the job covered).

        ``last_write``: the job has written its last byte; a loop's backing file is settled here and
        must not change at any later check.
        """
        flushed: list[str] = []
        if written:
            # fsync of a block device writes back its whole page cache, shared by every opener of the
            # disk: another process's buffered writes (a loop stacked on it writes that way) reach the
            # disk, and its write counter, before the counter is read; each partition has a cache of its
            # own, written back one by one (agent.discovery.medium.flush_partitions)
            device.flush()
            flushed = media.flush_partitions(self.bound.name)
        try:
            now = media.capture_open(device)
        except OSError as exc:
            raise MediumChanged(f"{device.path}: the medium cannot be read back {when}: {exc.strerror}",
                                written=written) from exc
        found = media.changes(self.bound, now, when, expected_size=device.size if written else None)
        if written:
            found += [f"{reason} {when}" for reason in flushed]
            found += media.foreign_writes(self.writes, media.write_count(now.name, device.bytes_written),
                                          now.name, when)
            if self.watch is not None:
                found += self.watch.openers(when)
                if last_write:
                    self.watch.settle()  # after the flushes above: every write of the job has landed
                else:
                    found += self.watch.modified(when)
            if self.guard is not None:
                found += [f"{reason} ({when})" for reason in self.guard.assess_device(device).reasons]
        if found:
            raise MediumChanged(f"{device.path}: the medium changed or was touched: " + "; ".join(found), tuple(found),
                                written=written)
        return now


class JobRunner:
    """Runs one job at a time in the calling thread (the daemon runs several runners in parallel)."""

    def __init__(
        self,
        registry: Registry,
        guard: Guard,
        identify: Callable[[str], DriveIdentity],
        transports: TransportFactory | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.registry = registry
        self.guard = guard
        self.identify = identify
        self.transports = transports or default_transports
        self.sleep = sleep

    def run(
        self,
        request: JobRequest,
        progress: JobProgress | None = None,
        cancelled: Callable[[], bool] = lambda: False,
        on_created: Callable[[str], None] | None = None,
    ) -> JobRow:
        """Run the job to an outcome and return it as stored. Never raises for job failures."""
        identity = self.identify(request.device_path)
        stamp = request.operator
        job_id = self.registry.create_job(
            identity,
            request.profile.name,
            stamp.name if stamp is not None else request.authorisation.operator,
            request.authorisation.source,
            request.asset_tag,
            request.host,
            durable=False,  # nothing is touched before ``running``, which is durable (see Registry.transaction)
            operator_title=stamp.title if stamp is not None else None,
            operator_uid=stamp.uid if stamp is not None else None,
            operator_via=stamp.via if stamp is not None else None,
        )
        if on_created is not None:
            on_created(job_id)
        self.registry.transition(job_id, "checking", "guard", durable=False)
        device: BlockDevice | None = None
        binding: _Binding | None = None
        try:
            expected = request.authorisation.expected_serial
            if expected is not None and expected != identity.serial:
                raise DriveProtected(
                    f"serial changed: operator confirmed {expected}, device reports {identity.serial}",
                    ("serial does not match what the operator confirmed",),
                )
            # bound to one medium instance: what the operator confirmed, else what is there now
            bound = request.medium or media.capture(request.device_path)
            if request.medium is not None:
                now = media.capture(request.device_path)
                found = media.changes(request.medium, now, "since the operator confirmed it")
                if found:
                    raise MediumChanged(f"{request.device_path}: refused: " + "; ".join(found), tuple(found),
                                        written=False)
            device = self.guard.acquire(request.device_path, request.authorisation)
            # identify again through the device now held O_EXCL: the drive written is the one confirmed,
            # not whatever took its name between the first look and the open (hot swap)
            held = self.identify(request.device_path)
            if (held.serial, held.model, held.size_bytes) != (identity.serial, identity.model, identity.size_bytes):
                raise DriveProtected(
                    f"drive changed while opening: was {identity.model} {identity.serial}, now {held.model} "
                    f"{held.serial}", ("drive changed between identification and exclusive open",))
            binding = _Binding(bound, self.guard)
            binding.bound = binding.check(device, "between confirmation and the exclusive open", written=False)
            binding.start_counting(device)
            self._run_locked(job_id, request, identity, device, progress, cancelled, binding)
        except MediumChanged as exc:
            if exc.written:
                self.registry.transition(job_id, "failed", "medium-changed", {"changes": list(exc.changes)},
                                         reason=exc.message, error_code=exc.code, route="hold",
                                         **self._unfinished(job_id, device))
            else:  # nothing was written: a refusal, and the drive waits for a person
                self.registry.transition(job_id, "refused", "refused", {"reason": exc.message},
                                         reason=exc.message, error_code=exc.code, route="hold")
        except (DriveProtected, NoMethod, Blocked) as exc:
            decisions = [d.to_json() for d in exc.decisions] if isinstance(exc, NoMethod) else []
            route: dict[str, Any] = {"route": exc.route} if exc.route else {}
            self.registry.transition(
                job_id, "refused", "refused", {"reason": exc.message, "instruction": exc.instruction},
                reason=exc.message, error_code=exc.code, decisions_json=_json(decisions) if decisions else None,
                **route,
            )
        except (JobInterrupted, VerifyCancelled) as exc:
            self.registry.transition(
                job_id, "interrupted", "interrupted", {}, reason=str(exc) or "cancelled", error_code="interrupted",
                route="hold", **self._unfinished(job_id, device),
            )
        except DriveRemoved as exc:
            # one removal is not a hardware fault: the drive goes back to the queue, not to the shredder
            self.registry.transition(job_id, "failed", "drive-removed", {"reason": exc.message},
                                     reason=f"drive removed: {exc.message}", error_code=exc.code, route="hold",
                                     **self._unfinished(job_id, device))
        except MediaError as exc:
            self.registry.transition(
                job_id, "failed", "media-error", {"reason": exc.message, "offset": exc.offset},
                reason=exc.message, error_code=exc.code, route="destroy", **self._unfinished(job_id, device),
            )
        except VerificationFailed as exc:
            # the drive said it erased and did not (or read-back found data): it cannot be trusted again
            self.registry.transition(job_id, "failed", "verification-failed", {"reason": exc.message},
                                     reason=exc.message, error_code=exc.code, route="destroy",
                                     **self._unfinished(job_id, device))
        except AgentError as exc:
            self.registry.transition(job_id, "failed", "error", {"reason": exc.message},
                                     reason=exc.message, error_code=exc.code, route=exc.route or "hold",
                                     **self._unfinished(job_id, device))
        except BaseException as exc:
            self.registry.transition(job_id, "failed", "internal-error", {"error": repr(exc)},
                                     reason=f"internal error: {exc!r}", error_code="internal", route="hold",
                                     **self._unfinished(job_id, device))
            raise
        finally:
            if binding is not None:
                binding.close()
            if device is not None:
                device.close()
        return self.registry.job(job_id)

    def _unfinished(self, job_id: str, device: BlockDevice | None) -> dict[str, Any]:
        """Columns of a job that failed: no level reached, and the bytes this job really wrote (attack B3).

        The level set at ``running`` is the method's *planned* one; a pass that stopped at 20 MiB reached
        none. Bytes: what the job's descriptor wrote, unless the method recorded more (a firmware method
        writes through commands, not the descriptor).
        """
        recorded = self.registry.job(job_id).bytes_written or 0
        written = device.bytes_written if device is not None else 0
        return {"level": None, "bytes_written": max(recorded, written)}

    def _open_target(self, job_id: str, identity: DriveIdentity) -> Target:
        """Open the drive's command transport (if any) and probe its capabilities and state."""
        transport = self.transports(identity)
        if transport is None:
            return Target(identity=identity)
        return self._probe(job_id, identity, transport)

    def _probe(self, job_id: str, identity: DriveIdentity, transport: Transport) -> Target:
        """Probe capabilities and state through an open transport; journal what was found."""
        interface = interface_for(identity.transport)
        capabilities: Capabilities | None = None
        if interface is None:
            self.registry.journal(job_id, "capabilities-error",
                                  {"reason": f"no pass-through command set for {identity.transport} drives"})
        else:
            try:
                capabilities = probe_capabilities(transport, interface, usb=identity.transport == "usb")
            except AgentError as exc:
                self.registry.journal(job_id, "capabilities-error", {"reason": exc.message})
            else:
                self.registry.journal(job_id, "capabilities", capabilities.to_json())
        return Target(identity=identity, capabilities=capabilities, transport=transport)

    def _context(self, job_id: str, target: Target, device: BlockDevice, progress: JobProgress | None,
                 cancelled: Callable[[], bool], binding: _Binding | None = None) -> MethodContext:
        def report(phase: str, done: int, total: int) -> None:
            if binding is not None and binding.watch is not None:
                binding.watch.poll()  # who wrote the backing file, asked while the writer still exists
            if progress is not None:
                progress(job_id, phase, done, total)

        return MethodContext(
            target=target,
            device=device,
            progress=report,
            cancelled=cancelled,
            journal=lambda event, data: self.registry.journal(job_id, event, data),
            sleep=self.sleep,
        )

    def _run_locked(
        self,
        job_id: str,
        request: JobRequest,
        identity: DriveIdentity,
        device: BlockDevice,
        progress: JobProgress | None,
        cancelled: Callable[[], bool],
        binding: _Binding,
    ) -> None:
        target = self._open_target(job_id, identity)
        try:
            target, note = self._release_journalled_password(job_id, target)
            identity = target.identity
            try:
                selection = select_method(request.profile, target)
            except NoMethod as exc:
                if note is None or exc.blocked is None or exc.blocked.state != "security-locked":
                    raise
                raise NoMethod(f"{exc.message}; {note}", exc.decisions, exc.blocked) from None
            decisions = [d.to_json() for d in selection.decisions]
            if cancelled():
                raise JobInterrupted("cancelled before anything was written")
            # committed before the first destructive write: a crash from here on reads "interrupted"
            self.registry.transition(
                job_id, "running", "method-start",
                {"method": selection.method.name, "decisions": decisions, "medium": binding.bound.to_json()},
                method=selection.method.name, level=selection.applicability.level.value,
                decisions_json=_json(decisions), started_at=self.registry.clock().isoformat(timespec="milliseconds"),
            )
            context = self._context(job_id, target, device, progress, cancelled, binding)
            outcome = selection.method.run(context)
            # a device grown under the job (losetup -c) has a tail never written: not the medium we covered
            binding.check(device, "during the job, after the last write", written=True, last_write=True)
            self._verify(job_id, identity, device, outcome, selection.applicability.reason,
                         request.profile.verify_mode, context, cancelled, binding)
        finally:
            _close(target)

    # -- a temporary ATA password an earlier job left on this drive ------------------------------
    def _release_journalled_password(self, job_id: str, target: Target) -> tuple[Target, str | None]:
        """Remove a temporary ATA password an earlier job of this drive journalled and never removed.

        Returns the target to continue with (identified and probed again after a removal) and, when the
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
        pending = self.registry.open_events(identity.model, identity.serial, PASSWORD_EVENT, CLEANUP_EVENT,
                                            exclude_job=job_id)
        if not security.enabled:
            self._close_stale(job_id, pending)
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
                self.registry.journal(entry.job_id, "password-cleanup-failed", {"reason": exc.message,
                                                                                "by_job": job_id})
                self.registry.journal(job_id, "ata-password-release-failed", {"job": entry.job_id,
                                                                              "reason": exc.message})
                raise PasswordCleanupFailed(
                    f"removing the temporary ATA password journalled by job {entry.job_id} (event {PASSWORD_EVENT}) "
                    f"failed: {exc.message}; nothing was erased — re-plug the drive and run the job again, or "
                    "remove the password by hand with the journalled one") from exc
            self.registry.journal(entry.job_id, CLEANUP_EVENT, {"result": result, "by_job": job_id})
            self.registry.journal(job_id, RELEASED_EVENT, {"job": entry.job_id, "journalled_at": entry.at,
                                                           "result": result, "rejected_before": rejected})
            self._close_stale(job_id, [other for other in pending if other is not entry])  # none left on the drive
            return self._refresh(job_id, target), None
        tried = ", ".join(item["job"] for item in rejected)
        not_tried = [entry.job_id for entry in pending[len(rejected):]]
        self.registry.journal(job_id, "ata-passwords-rejected", {"tried": rejected, "not_tried": not_tried})
        note = (f"the temporary password(s) this station journalled for this drive (job(s) {tried}) were tried and "
                "refused: it carries a password this station did not set")
        if not_tried:
            note += (f" ({len(not_tried)} older journalled password(s) not tried, to keep the drive's attempt counter "
                     "from expiring: see journal event ata-passwords-rejected)")
        return self._refresh(job_id, target), note

    def _close_stale(self, job_id: str, pending: list[OpenEvent]) -> None:
        """The drive reports security disabled: journalled passwords are not on it (never set, or erased since)."""
        for entry in pending:
            self.registry.journal(entry.job_id, CLEANUP_EVENT, {"result": "security already disabled",
                                                                "by_job": job_id})
        if pending:
            self.registry.journal(job_id, "ata-password-not-set", {"jobs": [entry.job_id for entry in pending]})

    def _refresh(self, job_id: str, target: Target) -> Target:
        """Identify and probe again after the security state changed, through the same transport."""
        before = target.identity
        fresh = self.identify(before.path)
        if (fresh.serial, fresh.model, fresh.size_bytes) != (before.serial, before.model, before.size_bytes):
            raise DriveProtected(
                f"drive changed while its password was removed: was {before.model} {before.serial}, now "
                f"{fresh.model} {fresh.serial}", ("drive changed during the job",))
        assert target.transport is not None
        return self._probe(job_id, fresh, target.transport)

    def _verify(self, job_id: str, identity: DriveIdentity, device: BlockDevice, outcome: MethodOutcome,
                level_reason: str, verify_mode: str, context: MethodContext, cancelled: Callable[[], bool],
                binding: _Binding) -> None:
        if outcome.expectation is None:
            raise VerificationFailed(f"{outcome.method} did not say what the medium should hold")
        details = {**outcome.details, "level_reason": level_reason}
        self.registry.transition(
            job_id, "verifying", "method-done",
            {"bytes_written": outcome.bytes_written, "seconds": outcome.seconds},
            bytes_written=outcome.bytes_written, seconds=outcome.seconds, throughput=outcome.throughput,
            method_json=_json(details), level=outcome.level.value,
        )
        started = time.monotonic()
        result = verify(
            device,
            outcome.expectation,
            verify_mode,
            progress=lambda done, total: context.progress("verify", done, total),
            cancelled=cancelled,
        )
        # before any verdict: a read-back of another medium, or of part of a grown one, proves nothing
        binding.check(device, "during the job, after verification", written=True)
        self.registry.record_verification(job_id, identity, result.to_json())
        if result.passed:
            self.registry.transition(
                job_id, "sanitised", "verified",
                {"mode": result.mode, "coverage": result.coverage, "verify_seconds": time.monotonic() - started},
                route="reuse",
            )
        else:
            reason = (f"verification ({result.mode}) found unexpected data in {result.mismatched_extents} extent(s), "
                      f"first at byte {result.first_mismatches[0] if result.first_mismatches else '?'}")
            self.registry.transition(job_id, "failed", "verification-failed", {"first": list(result.first_mismatches)},
                                     reason=reason, error_code=VerificationFailed.code, route="destroy")

    # -- resuming after a restart ---------------------------------------------------------------
    def _resumable_method(self, job: JobRow) -> tuple[FirmwareMethod, CanarySet] | None:
        if job.state != "running" or job.method is None or job.method not in method_registry.METHODS:
            return None
        events = self.registry.events(job.id)
        names = [event.get("event") for event in events]
        if "firmware-started" not in names and "firmware-command" not in names:
            return None
        planted = [event for event in events if event.get("event") == "canaries-planted"]
        if not planted:
            return None
        options = _step_options(job.method, events)
        method: Method = method_registry.build(job.method, options)
        if not isinstance(method, FirmwareMethod) or method.synchronous:
            return None
        return method, CanarySet.from_json(planted[-1]["data"])

    def resume(
        self,
        job_id: str,
        progress: JobProgress | None = None,
        cancelled: Callable[[], bool] = lambda: False,
        verify_mode: str = "sampling",
    ) -> JobRow | None:
        """Adopt an orphaned job whose firmware sanitize is still running on the drive, finish it, verify it.

        Returns the finished job, or None when the job is not resumable (not a firmware sanitize that
        reached its command, drive gone or a different drive at the path, or the drive reports no
        sanitize in progress) — the caller then lets ``Registry.reconcile`` mark it interrupted.
        Never sends a second sanitize: only status polls, the canary proof and read-back.
        """
        job = self.registry.job(job_id)
        if job.method is not None and job.method.startswith("ata.security_erase.") and job.state == "running":
            return self.release_security_password(job_id)
        found = self._resumable_method(job)
        if found is None:
            return None
        method, canaries = found
        try:
            identity = self.identify(job.device_path)
        except AgentError:
            return None
        if (identity.model, identity.serial) != (job.drive.model, job.drive.serial):
            return None
        target = self._open_target(job_id, identity)
        try:
            capabilities = target.capabilities
            if not isinstance(capabilities, Capabilities) or capabilities.sanitize.state != "in_progress":
                return None
            self.registry.adopt(job_id, "resumed", {"method": method.name, "sanitize": capabilities.sanitize.to_json()})
            device: BlockDevice | None = None
            binding: _Binding | None = None
            try:
                authorisation = Authorisation(job.device_path, job.operator, expected_serial=job.drive.serial)
                device = self.guard.acquire(job.device_path, authorisation)
                binding = _Binding.of_open(device, self.guard)
                context = self._context(job_id, target, device, progress, cancelled, binding)
                outcome = method.resume(context, canaries)
                reason = next((d.get("reason", "") for d in job.decisions if d.get("taken")), "")
                self._verify(job_id, identity, device, outcome, reason, verify_mode, context, cancelled, binding)
            except VerificationFailed as exc:
                self.registry.transition(job_id, "failed", "verification-failed", {"reason": exc.message},
                                         reason=exc.message, error_code=exc.code, route="destroy")
            except (JobInterrupted, VerifyCancelled) as exc:
                self.registry.transition(job_id, "interrupted", "interrupted", {}, reason=str(exc) or "cancelled",
                                         error_code="interrupted", route="hold")
            except AgentError as exc:
                self.registry.transition(job_id, "failed", "error", {"reason": exc.message}, reason=exc.message,
                                         error_code=exc.code, route=exc.route or "hold")
            finally:
                if binding is not None:
                    binding.close()
                if device is not None:
                    device.close()
        finally:
            _close(target)
        return self.registry.job(job_id)


    def release_security_password(self, job_id: str) -> JobRow | None:
        """Remove the temporary ATA password a cut-short SECURITY ERASE UNIT left on the drive.

        The password was journalled before it was set. For an orphaned job (power loss of the
        station) the job is adopted and ends ``interrupted``; for a job that already ended (the
        drive alone lost power: ``failed``/``drive-removed``) only the cleanup is journalled.
        Returns None when there is nothing to do or the drive is not there.
        """
        job = self.registry.job(job_id)
        events = self.registry.events(job.id)
        names = [event["event"] for event in events]

        def last(name: str) -> int:
            return max((index for index, event in enumerate(names) if event == name), default=-1)

        if last(PASSWORD_EVENT) < 0 or last(CLEANUP_EVENT) > last(PASSWORD_EVENT):
            return None  # no password was set, or it was already removed
        password = [event["data"]["password"] for event in events if event["event"] == PASSWORD_EVENT][-1]
        try:
            identity = self.identify(job.device_path)
        except AgentError:
            return None
        if (identity.model, identity.serial) != (job.drive.model, job.drive.serial):
            return None
        if not identity_matchable(identity.model, identity.serial):
            return None  # drives without a serial cannot be told apart: never send another drive's password
        transport = self.transports(identity)
        if transport is None:
            return None
        active = job.state not in FINAL_STATES
        if active:
            self.registry.adopt(job.id, "resumed", {"method": job.method, "action": "remove temporary ATA password"})
        try:
            done = release_password(transport, str(password).encode("ascii"))
        except AgentError as exc:
            self.registry.journal(job.id, "password-cleanup-failed", {"reason": exc.message})
            if active:
                reason = (f"security erase interrupted; removing the temporary ATA password failed ({exc.message}): "
                          f"unlock the drive with the password in journal event {PASSWORD_EVENT}")
                self.registry.transition(job.id, "failed", "password-cleanup-failed", {"reason": exc.message},
                                         reason=reason, error_code=exc.code, route="hold")
        else:
            self.registry.journal(job.id, CLEANUP_EVENT, {"result": done})
            if active:
                self.registry.transition(
                    job.id, "interrupted", "interrupted", {"result": done}, error_code="interrupted", route="hold",
                    reason="the security erase was cut short (power loss); the temporary ATA password was removed "
                           "and the drive is unlocked — run the job again")
        finally:
            try:
                transport.close()
            except (AgentError, OSError):
                pass
        return self.registry.job(job.id)


def _step_options(method: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The sanitize options the job ran with, from the journalled command (AUSE / FAILURE MODE bit)."""
    if method_registry.METHODS[method].options is not SanitizeOptions:
        return {}
    commands = [event["data"] for event in events if event.get("event") == "firmware-command"]
    unrestricted = bool(commands and commands[-1].get("ause"))
    return {"failure_mode": "unrestricted" if unrestricted else "restricted"}


def _close(target: Target) -> None:
    transport = target.transport
    if transport is not None:
        try:
            transport.close()
        except (AgentError, OSError):
            pass


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)
