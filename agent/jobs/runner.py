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
the cleanup on both jobs. That recovery is the ATA security method's
(:func:`agent.methods.ata_security_erase.release_journalled_password`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.contracts import JobState, Phase, Route
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
from agent.methods.ata_security_erase import AtaSecurityErase, release_journalled_password
from agent.methods.base import Blocked, Method, MethodContext, MethodOutcome, Target
from agent.methods.canary import CanarySet
from agent.methods.capabilities import Capabilities, interface_for, probe_capabilities
from agent.methods.firmware import (
    CANARIES_PLANTED,
    FIRMWARE_COMMAND,
    FIRMWARE_STARTED,
    FirmwareMethod,
    SanitizeOptions,
)
from agent.operators import OperatorStamp
from agent.policy.profiles import Profile
from agent.policy.select import NoMethod, select_method
from agent.store.registry import JobRow, Registry
from agent.transport.block import BlockDevice
from agent.transport.commands import Transport
from agent.verify.readback import VerifyCancelled, verify

# progress(job_id, phase, done, total)
JobProgress = Callable[[str, str, int, int], None]
# opens the command transport of a drive (None: no pass-through, e.g. virtual media)
TransportFactory = Callable[[DriveIdentity], Transport | None]

_log = logging.getLogger(__name__)
_PASSTHROUGH_TRANSPORTS = ("sata", "nvme", "scsi", "usb")


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


def _message(exc: BaseException) -> str:
    return exc.message if isinstance(exc, AgentError) else str(exc)


def _code(exc: BaseException) -> str:
    return exc.code if isinstance(exc, AgentError) else "internal"


def _decisions(exc: BaseException) -> str | None:
    decisions = [d.to_json() for d in exc.decisions] if isinstance(exc, NoMethod) else []
    return _json(decisions) if decisions else None


@dataclass(frozen=True)
class Outcome:
    """One row of :data:`OUTCOMES`: what a job that ended with an exception of ``types`` is recorded as."""

    types: tuple[type[BaseException], ...]
    state: JobState
    event: str
    data: Callable[[Any], dict[str, Any]]
    reason: Callable[[Any], str] = _message
    error_code: Callable[[Any], str] = _code
    route: Callable[[Any], str | None] = lambda exc: Route.HOLD
    when: Callable[[Any], bool] = lambda exc: True
    unfinished: bool = True
    """Something may have been written: no level reached, the bytes really written (``_unfinished``)."""
    decisions: bool = False
    route_optional: bool = False
    """No route column when ``route`` gives none (else the column is set, also to NULL)."""
    reraise: bool = False

    def columns(self, exc: Any) -> dict[str, Any]:
        """The job columns of this outcome."""
        columns: dict[str, Any] = {"reason": self.reason(exc), "error_code": self.error_code(exc)}
        if self.decisions:
            columns["decisions_json"] = _decisions(exc)
        route = self.route(exc)
        if route or not self.route_optional:
            columns["route"] = route
        return columns


OUTCOMES: tuple[Outcome, ...] = (
    # the medium changed after something was written: failed, held for a person
    Outcome((MediumChanged,), JobState.FAILED, "medium-changed", lambda exc: {"changes": list(exc.changes)},
            when=lambda exc: exc.written),
    # nothing was written: a refusal, and the drive waits for a person
    Outcome((MediumChanged,), JobState.REFUSED, "refused", lambda exc: {"reason": exc.message},
            unfinished=False),
    Outcome((DriveProtected, NoMethod, Blocked), JobState.REFUSED, "refused",
            lambda exc: {"reason": exc.message, "instruction": exc.instruction},
            route=lambda exc: exc.route, route_optional=True, unfinished=False, decisions=True),
    Outcome((JobInterrupted, VerifyCancelled), JobState.INTERRUPTED, "interrupted", lambda exc: {},
            reason=lambda exc: str(exc) or "cancelled", error_code=lambda exc: "interrupted"),
    # one removal is not a hardware fault: the drive goes back to the queue, not to the shredder
    Outcome((DriveRemoved,), JobState.FAILED, "drive-removed", lambda exc: {"reason": exc.message},
            reason=lambda exc: f"drive removed: {exc.message}"),
    Outcome((MediaError,), JobState.FAILED, "media-error", lambda exc: {"reason": exc.message, "offset": exc.offset},
            route=lambda exc: Route.DESTROY),
    # the drive said it erased and did not (or read-back found data): it cannot be trusted again
    Outcome((VerificationFailed,), JobState.FAILED, "verification-failed", lambda exc: {"reason": exc.message},
            route=lambda exc: Route.DESTROY),
    Outcome((AgentError,), JobState.FAILED, "error", lambda exc: {"reason": exc.message},
            route=lambda exc: exc.route or Route.HOLD),
    Outcome((BaseException,), JobState.FAILED, "internal-error", lambda exc: {"error": repr(exc)},
            reason=lambda exc: f"internal error: {exc!r}", error_code=lambda exc: "internal", reraise=True),
)
"""How a job that ended with an exception is recorded, first matching row wins — one table, applied
alike by :meth:`JobRunner.run` and :meth:`JobRunner.resume`. (Before the table the resume mapped more
coarsely: a media error during a resumed sanitize was held instead of routed to destruction, a failed
resumed job kept its *planned* level and byte count — what the unfinished columns exist to prevent —
and an internal error was left for the daemon to record as a vague worker death.)"""


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
        self.registry.transition(job_id, JobState.CHECKING, "guard", durable=False)
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
        except BaseException as exc:
            if self._record_outcome(job_id, exc, device, resuming=False):
                raise
        finally:
            if binding is not None:
                binding.close()
            if device is not None:
                device.close()
        return self.registry.job(job_id)

    def _record_outcome(self, job_id: str, exc: BaseException, device: BlockDevice | None, *,
                        resuming: bool) -> bool:
        """Record the outcome :data:`OUTCOMES` gives ``exc``; True when the exception must propagate."""
        for row in OUTCOMES:
            if not isinstance(exc, row.types) or not row.when(exc):
                continue
            columns = row.columns(exc)
            if row.unfinished:
                columns.update(self._unfinished(job_id, device))
            self.registry.transition(job_id, row.state, row.event, row.data(exc), **columns)
            return row.reraise
        return True  # not reached: the last row takes every exception

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
            # a temporary ATA password an earlier job of this drive left on it (the ATA security method's)
            target, note = release_journalled_password(self.registry, job_id, target,
                                                       lambda stale: self._refresh(job_id, stale))
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
                job_id, JobState.RUNNING, "method-start",
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
        details = {**outcome.evidence.to_json(), "level_reason": level_reason}
        self.registry.transition(
            job_id, JobState.VERIFYING, "method-done",
            {"bytes_written": outcome.bytes_written, "seconds": outcome.seconds},
            bytes_written=outcome.bytes_written, seconds=outcome.seconds, throughput=outcome.throughput,
            method_json=_json(details), level=outcome.level.value,
        )
        started = time.monotonic()
        result = verify(
            device,
            outcome.expectation,
            verify_mode,
            progress=lambda done, total: context.progress(Phase.VERIFY, done, total),
            cancelled=cancelled,
        )
        # before any verdict: a read-back of another medium, or of part of a grown one, proves nothing
        binding.check(device, "during the job, after verification", written=True)
        self.registry.record_verification(job_id, identity, result.to_json())
        if result.passed:
            self.registry.transition(
                job_id, JobState.SANITISED, "verified",
                {"mode": result.mode, "coverage": result.coverage, "verify_seconds": time.monotonic() - started},
                route=Route.REUSE,
            )
        else:
            reason = (f"verification ({result.mode}) found unexpected data in {result.mismatched_extents} extent(s), "
                      f"first at byte {result.first_mismatches[0] if result.first_mismatches else '?'}")
            self.registry.transition(job_id, JobState.FAILED, "verification-failed",
                                     {"first": list(result.first_mismatches)}, reason=reason,
                                     error_code=VerificationFailed.code, route=Route.DESTROY)

    # -- resuming after a restart ---------------------------------------------------------------
    def _resumable_method(self, job: JobRow) -> tuple[FirmwareMethod, CanarySet] | None:
        if job.state != JobState.RUNNING or job.method is None or job.method not in method_registry.METHODS:
            return None
        events = self.registry.events(job.id)
        names = [event.get("event") for event in events]
        if FIRMWARE_STARTED not in names and FIRMWARE_COMMAND not in names:
            return None
        planted = [event for event in events if event.get("event") == CANARIES_PLANTED]
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
        spec = method_registry.METHODS.get(job.method or "")
        if spec is not None and issubclass(spec.method, AtaSecurityErase) and job.state == JobState.RUNNING:
            return self.release_security_password(job_id)  # its resume: remove the password, end interrupted
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
            except BaseException as exc:
                if self._record_outcome(job_id, exc, device, resuming=True):
                    raise
            finally:
                if binding is not None:
                    binding.close()
                if device is not None:
                    device.close()
        finally:
            _close(target)
        return self.registry.job(job_id)


    def release_security_password(self, job_id: str) -> JobRow | None:
        """Remove the temporary ATA password a cut-short SECURITY ERASE UNIT left on the drive (the ATA
        security method's resume hook, :meth:`AtaSecurityErase.recover_orphan`); None when there was
        nothing to do or the drive is not there."""
        if not AtaSecurityErase.recover_orphan(self.registry, job_id, self.identify, self.transports):
            return None
        return self.registry.job(job_id)

def _step_options(method: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The sanitize options the job ran with, from the journalled command (AUSE / FAILURE MODE bit)."""
    if method_registry.METHODS[method].options is not SanitizeOptions:
        return {}
    commands = [event["data"] for event in events if event.get("event") == FIRMWARE_COMMAND]
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
