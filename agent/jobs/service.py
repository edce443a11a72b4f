"""The job service: recover → run → certify, the one sequence every entry point calls.

The CLI's ``wipe``, the daemon's job worker and the demo each ran this sequence themselves; they
now hold a :class:`JobService` over their registry and differ only in how they report. What a
job is recorded as when it ends with an exception is the runner's (``agent.jobs.runner.OUTCOMES``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.errors import CertificateError
from agent.jobs.runner import JobProgress, JobRequest, JobRunner
from agent.methods.registry import runs_in_firmware
from agent.store.registry import JobRow, Registry

if TYPE_CHECKING:
    from agent.app import Application
    from agent.discovery.guard import Guard


@dataclass(frozen=True)
class Certified:
    """A finished job after certification: the job as stored now, its document, or why it has none."""

    job: JobRow
    path: str | None = None
    error: CertificateError | None = None
    """Why no document was issued (no organisation configured, a signing problem); the job's outcome stands."""


def firmware_job(registry: Registry, job_id: str) -> bool:
    """The job ran a firmware method (its sanitize may still be running in the drive)."""
    return runs_in_firmware(registry.job(job_id).method)


class JobService:
    """Jobs of one registry, run with one application's parts (``guard``: the job guard, if not the app's)."""

    def __init__(self, app: Application, registry: Registry, guard: Guard | None = None) -> None:
        self.app = app
        self.registry = registry
        self.runner: JobRunner = app.runner(registry, guard)

    def recover(self, device_path: str) -> JobRow | None:
        """Before a new job on ``device_path``: finish an orphaned firmware sanitize still running in it
        (never a second command), or clear a temporary ATA password a cut-short security erase left;
        then the orphan ends interrupted. Returns a job that was resumed to its end."""
        registry = self.registry
        for job_id in registry.orphaned_jobs():
            if registry.job(job_id).device_path != device_path or not firmware_job(registry, job_id):
                continue
            finished = self.resume(job_id)
            if finished is not None:
                return finished
            others = set(registry.orphaned_jobs()) - {job_id}
            registry.reconcile(keep=others.__contains__)
        return None

    def run(self, request: JobRequest, progress: JobProgress | None = None,
            cancelled: Callable[[], bool] = lambda: False,
            on_created: Callable[[str], None] | None = None) -> JobRow:
        """Run a new job to its outcome (never raises for job failures)."""
        return self.runner.run(request, progress, cancelled, on_created)

    def resume(self, job_id: str, progress: JobProgress | None = None, cancelled: Callable[[], bool] = lambda: False,
               verify_mode: str = "sampling") -> JobRow | None:
        """Finish an orphaned job whose firmware sanitize still runs in the drive; None when it is not
        resumable, after removing the temporary ATA password a cut-short security erase left."""
        resumed = self.runner.resume(job_id, progress=progress, cancelled=cancelled, verify_mode=verify_mode)
        if resumed is None:
            self.runner.release_security_password(job_id)
        return resumed

    def certify(self, job: JobRow) -> Certified:
        """Sign the certificate (sanitised) or failure report (failed) when the station has a key.

        Interrupted and refused jobs never get one. A refusal to issue is returned, never raised:
        the job's outcome stands as recorded (and the refusal is noted on the job)."""
        from agent.jobs.certify import certify

        try:
            signer = self.app.signer()
            if signer is None:
                return Certified(job)
            path = certify(self.registry, job, signer, self.app.certificate)
        except CertificateError as exc:
            return Certified(self.registry.job(job.id), error=exc)
        if path is None:
            return Certified(job)
        return Certified(self.registry.job(job.id), str(path))
