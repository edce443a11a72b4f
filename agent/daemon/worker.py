"""One job in its own process: ``python -m agent.daemon.worker`` (started only by the daemon).

Why a process per job and not a thread: a drive that hangs in an ioctl leaves its thread in
uninterruptible sleep forever, and a crash in a ctypes ioctl takes the whole interpreter with it;
in a separate process the daemon, its API and every other bay carry on (and the kernel, not the
GIL, schedules eight overwrites on two cores). The cost is ~0.2 s of interpreter start per job and
one SQLite connection per job, which WAL handles.

Protocol: one JSON request on stdin; JSON lines on stdout (``created``, ``progress``, ``done``).
Signals from the daemon:

- ``SIGTERM`` — cancel: the runner stops at the next chunk and records ``interrupted``;
- ``SIGUSR1`` — the drive was removed: the job fails with ``drive removed`` (route hold, not destroy);
- ``SIGUSR2`` — the station is shutting down: an overwrite is cancelled, but a *firmware* sanitize
  is left running in the drive and the job left active so the restarted daemon resumes it;
- ``SIGHUP`` — the daemon died (``PR_SET_PDEATHSIG``: ``kill -9``, a crash): as for a shutdown, and
  the journal says which of the three stopped the job (an auditor must not read "cancelled" for a
  crash).
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from agent.app import Application
from agent.contracts import (
    CertificateFailed,
    ContractError,
    Created,
    Done,
    Error,
    JobState,
    LeftRunning,
    NotResumable,
    Progress,
    WorkerMessage,
    WorkerRequest,
)
from agent.discovery.guard import Authorisation, Guard
from agent.discovery.medium import MediumInstance
from agent.discovery.medium import capture as capture_medium
from agent.errors import AgentError, DriveRemoved, JobInterrupted, MediaError
from agent.jobs.runner import JobRequest
from agent.jobs.service import JobService
from agent.methods.registry import runs_in_firmware
from agent.operators import OperatorStamp
from agent.policy.profiles import load_profile
from agent.store.registry import JobRow
from agent.transport.block import BlockDevice

PR_SET_PDEATHSIG = 1
PARENT_DIED = signal.SIGHUP  # a signal of its own: a worker tells its daemon's death from a cancel
EXIT_LEFT_RUNNING = 75  # firmware sanitize left running in the drive for the next daemon to resume
PROGRESS_INTERVAL = 0.25


class RemovalAwareGuard(Guard):
    """The guard, with an I/O error of a drive the daemon has seen removed read as removal.

    ``BlockDevice`` already waits briefly for a failing drive's node to vanish before calling an
    EIO a media error; the daemon may learn of the removal from udev first, and then says so.
    """

    def __init__(self, removed: Callable[[], bool]) -> None:
        super().__init__()
        self._removed = removed

    def acquire(self, path: str, authorisation: Authorisation) -> BlockDevice:
        """Acquire as usual, then make the device's error mapping aware of the daemon's removal signal."""
        device = super().acquire(path, authorisation)
        original = device._io_error
        removed = self._removed

        def io_error(exc: OSError, what: str, offset: int) -> Exception:
            mapped = original(exc, what, offset)
            if isinstance(mapped, MediaError) and removed():
                return DriveRemoved(f"{device.path}: drive removed during {what} at offset {offset}")
            return mapped

        setattr(device, "_io_error", io_error)  # noqa: B010 - instance override of the mapping
        return device


class _Flags:
    cancel = False
    removed = False
    shutdown = False
    orphaned = False


def _emit(message: WorkerMessage) -> None:
    try:
        sys.stdout.write(json.dumps(message.to_json(), default=str) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass  # the daemon is gone; the registry still gets every transition


def die_with_parent(parent: int) -> None:
    """SIGHUP this process when its parent dies (``PR_SET_PDEATHSIG``)."""
    _die_with_parent(parent)


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, PARENT_DIED, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if parent and os.getppid() != parent:
        os.kill(os.getpid(), PARENT_DIED)  # the parent died before prctl took effect


def _firmware_method(app: Application, job_id: str | None) -> bool:
    if job_id is None:
        return False
    registry = app.open_store()
    try:
        row = registry.job(job_id)
        return row.state in (JobState.RUNNING, JobState.VERIFYING) and runs_in_firmware(row.method)
    finally:
        registry.close()


AppFactory = Callable[[WorkerRequest], Application]
"""Builds the worker's application from the daemon's request (a test entry point passes its seams)."""


def main(build: AppFactory = Application.for_worker) -> int:
    """Run the job described on stdin; return the process exit code."""
    try:
        request = WorkerRequest.from_json(json.loads(sys.stdin.readline()))
    except (ValueError, ContractError) as exc:
        message = exc.message if isinstance(exc, ContractError) else f"worker request: not JSON: {exc}"
        _emit(Error(None, ContractError(message).to_json()))
        return 1
    _die_with_parent(request.parent_pid or 0)
    return run_request(request, build)


def _certify(service: JobService, row: JobRow) -> str | None:
    """Sign the certificate (sanitised) or failure report (failed) when the station has a key.

    ``certify`` itself refuses interrupted and refused jobs: an attempt that did not finish never
    gets a certificate. A signing problem is reported, and the job's outcome stands.
    """
    try:
        certified = service.certify(row)
        error: AgentError | None = certified.error
    except AgentError as exc:
        error = exc
    if error is not None:
        _emit(CertificateFailed(row.id, error.to_json()))
        return None
    return certified.path


def _seated_medium(device_path: str, seating: Mapping[str, Any] | None) -> MediumInstance | None:
    """The medium the bay saw seated, as the job's binding: the runner compares it with the node now.

    The bay knew the seating's dev_t and diskseq when it queued the job; a drive swapped while the
    kernel name was free (or a loop detached and attached to another image) has another diskseq, and
    the runner then refuses the job before its first write, held for a person.
    """
    if not isinstance(seating, Mapping):
        return None
    now = capture_medium(device_path)
    dev_t, diskseq = seating.get("dev_t"), seating.get("diskseq")
    return dataclasses.replace(
        now,
        device_number=dev_t if isinstance(dev_t, int) else now.device_number,
        diskseq=diskseq if isinstance(diskseq, int) else now.diskseq,
    )


def run_request(request: WorkerRequest | Mapping[str, Any], build: AppFactory = Application.for_worker) -> int:
    """Run one job in this process (a fresh interpreter, or a child of the fork server)."""
    if not isinstance(request, WorkerRequest):
        try:
            request = WorkerRequest.from_json(request)
        except ContractError as exc:
            _emit(Error(None, exc.to_json()))
            return 1
    try:
        app = build(request)
    except AgentError as exc:  # e.g. a transport recording that cannot be read
        _emit(Error(request.resume, exc.to_json()))
        return 1
    flags = _Flags()
    current: dict[str, str | None] = {"job_id": request.resume}

    def on_term(number: int, frame: FrameType | None) -> None:
        flags.cancel = True

    def on_removed(number: int, frame: FrameType | None) -> None:
        flags.removed = True

    def on_shutdown(number: int, frame: FrameType | None) -> None:
        flags.shutdown = True
        try:
            firmware = _firmware_method(app, current["job_id"])
        except AgentError:
            firmware = False
        if firmware:
            _emit(LeftRunning(current["job_id"]))
            os._exit(EXIT_LEFT_RUNNING)
        flags.cancel = True

    def on_orphaned(number: int, frame: FrameType | None) -> None:
        flags.orphaned = True
        on_shutdown(number, frame)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(PARENT_DIED, on_orphaned)
    signal.signal(signal.SIGUSR1, on_removed)
    signal.signal(signal.SIGUSR2, on_shutdown)

    last = [0.0]

    def progress(job_id: str, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_INTERVAL or done >= total:
            last[0] = now
            _emit(Progress(job_id, phase, done, total))

    device_path = request.device_path

    def cancelled() -> bool:
        if flags.orphaned:
            raise JobInterrupted("the station daemon stopped during the job (killed, crashed or lost power); "
                                 "the drive starts again from the beginning")
        if flags.shutdown:
            raise JobInterrupted("the station was shut down during the job; the drive starts again from the "
                                 "beginning")
        if flags.removed:
            raise DriveRemoved(f"{device_path}: drive removed from its bay during the job")
        return flags.cancel

    def on_created(job_id: str) -> None:
        current["job_id"] = job_id
        _emit(Created(job_id))

    registry = app.open_store()
    try:
        service = JobService(app, registry, RemovalAwareGuard(lambda: flags.removed))
        if request.resume:
            _emit(Created(request.resume))
            verify_mode = load_profile(request.profile).verify_mode
            resumed = service.resume(request.resume, progress=progress, cancelled=cancelled, verify_mode=verify_mode)
            if resumed is None:  # no sanitize in progress after all (or another drive): not ours to finish
                _emit(NotResumable(request.resume))  # (a cut-short SECURITY ERASE's password was removed)
                return 0
            row = resumed
        else:
            authorisation = Authorisation(
                request.device_path, request.operator, bay=request.bay, expected_serial=request.expected_serial,
            )
            stamp = request.operator_stamp
            job_request = JobRequest(
                request.device_path, load_profile(request.profile), authorisation,
                asset_tag=request.asset_tag, host=request.host,
                medium=_seated_medium(request.device_path, request.seating),
                operator=OperatorStamp(**stamp) if stamp else None,
            )
            row = service.run(job_request, progress, cancelled, on_created)
        certificate = _certify(service, row)
        _emit(Done(row.id, row.state, row.reason, row.error_code, row.route, row.method, certificate))
    except AgentError as exc:
        _emit(Error(current["job_id"], exc.to_json()))
        return 1
    finally:
        registry.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
