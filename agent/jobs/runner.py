"""The job state machine: identify → guard → select → (commit) run → verify → outcome.

States: ``created → checking → running → verifying → sanitised | failed``, with ``refused`` when
the guard or the policy says no before anything is touched, and ``interrupted`` when the job is
cancelled or its process dies (found later by ``Registry.reconcile``). ``running`` is committed
before the first destructive command, so a crash can never leave a job that looks finished.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.discovery.guard import Authorisation, Guard
from agent.discovery.identity import DriveIdentity
from agent.errors import (
    AgentError,
    DriveProtected,
    DriveRemoved,
    JobInterrupted,
    MediaError,
    VerificationFailed,
)
from agent.methods.base import MethodContext, Target
from agent.policy.profiles import Profile
from agent.policy.select import NoMethod, select_method
from agent.store.registry import JobRow, Registry
from agent.transport.block import BlockDevice
from agent.verify.readback import VerifyCancelled, verify

# progress(job_id, phase, done, total)
JobProgress = Callable[[str, str, int, int], None]


@dataclass(frozen=True)
class JobRequest:
    """What to sanitise, how, and on whose authority."""

    device_path: str
    profile: Profile
    authorisation: Authorisation
    asset_tag: str | None = None
    host: dict[str, Any] | None = None


class JobRunner:
    """Runs one job at a time in the calling thread (the daemon runs several runners in parallel)."""

    def __init__(self, registry: Registry, guard: Guard, identify: Callable[[str], DriveIdentity]) -> None:
        self.registry = registry
        self.guard = guard
        self.identify = identify

    def run(
        self,
        request: JobRequest,
        progress: JobProgress | None = None,
        cancelled: Callable[[], bool] = lambda: False,
        on_created: Callable[[str], None] | None = None,
    ) -> JobRow:
        """Run the job to an outcome and return it as stored. Never raises for job failures."""
        identity = self.identify(request.device_path)
        job_id = self.registry.create_job(
            identity,
            request.profile.name,
            request.authorisation.operator,
            request.authorisation.source,
            request.asset_tag,
            request.host,
        )
        if on_created is not None:
            on_created(job_id)
        self.registry.transition(job_id, "checking", "guard")
        device: BlockDevice | None = None
        try:
            expected = request.authorisation.expected_serial
            if expected is not None and expected != identity.serial:
                raise DriveProtected(
                    f"serial changed: operator confirmed {expected}, device reports {identity.serial}",
                    ("serial does not match what the operator confirmed",),
                )
            device = self.guard.acquire(request.device_path, request.authorisation)
            self._run_locked(job_id, request, identity, device, progress, cancelled)
        except (DriveProtected, NoMethod) as exc:
            decisions = [d.to_json() for d in getattr(exc, "decisions", ())]
            self.registry.transition(
                job_id, "refused", "refused", {"reason": exc.message},
                reason=exc.message, error_code=exc.code, decisions_json=_json(decisions) if decisions else None,
            )
        except (JobInterrupted, VerifyCancelled) as exc:
            self.registry.transition(
                job_id, "interrupted", "interrupted", {}, reason=str(exc) or "cancelled", error_code="interrupted",
                route="hold",
            )
        except DriveRemoved as exc:
            # one removal is not a hardware fault: the drive goes back to the queue, not to the shredder
            self.registry.transition(job_id, "failed", "drive-removed", {"reason": exc.message},
                                     reason="drive removed", error_code=exc.code, route="hold")
        except MediaError as exc:
            self.registry.transition(
                job_id, "failed", "media-error", {"reason": exc.message, "offset": exc.offset},
                reason=exc.message, error_code=exc.code, route="destroy",
            )
        except AgentError as exc:
            self.registry.transition(job_id, "failed", "error", {"reason": exc.message},
                                     reason=exc.message, error_code=exc.code, route="hold")
        except BaseException as exc:
            self.registry.transition(job_id, "failed", "internal-error", {"error": repr(exc)},
                                     reason=f"internal error: {exc!r}", error_code="internal", route="hold")
            raise
        finally:
            if device is not None:
                device.close()
        return self.registry.job(job_id)

    def _run_locked(
        self,
        job_id: str,
        request: JobRequest,
        identity: DriveIdentity,
        device: BlockDevice,
        progress: JobProgress | None,
        cancelled: Callable[[], bool],
    ) -> None:
        target = Target(identity=identity)
        selection = select_method(request.profile, target)
        decisions = [d.to_json() for d in selection.decisions]

        def report(phase: str, done: int, total: int) -> None:
            if progress is not None:
                progress(job_id, phase, done, total)

        # committed before the first destructive write: a crash from here on reads "interrupted"
        self.registry.transition(
            job_id, "running", "method-start", {"method": selection.method.name, "decisions": decisions},
            method=selection.method.name, level=selection.applicability.level.value,
            decisions_json=_json(decisions), started_at=self.registry.clock().isoformat(timespec="milliseconds"),
        )
        context = MethodContext(
            target=target,
            device=device,
            progress=report,
            cancelled=cancelled,
            journal=lambda event, data: self.registry.journal(job_id, event, data),
        )
        outcome = selection.method.run(context)
        if outcome.expectation is None:
            raise VerificationFailed(f"{outcome.method} did not say what the medium should hold")
        details = {**outcome.details, "level_reason": selection.applicability.reason}
        self.registry.transition(
            job_id, "verifying", "method-done",
            {"bytes_written": outcome.bytes_written, "seconds": outcome.seconds},
            bytes_written=outcome.bytes_written, seconds=outcome.seconds, throughput=outcome.throughput,
            method_json=_json(details),
        )
        started = time.monotonic()
        result = verify(
            device,
            outcome.expectation,
            request.profile.verify_mode,
            progress=lambda done, total: report("verify", done, total),
            cancelled=cancelled,
        )
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


def _json(value: Any) -> str:
    import json

    return json.dumps(value, sort_keys=True, default=str)
