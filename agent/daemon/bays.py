"""What a bay shows: one typed state, derived only from the drive that is in the bay now.

The rule the operator relies on (issue 12): a bay never shows another drive's outcome as its own.
Every outcome the station records is bound to a *seating* — one insertion of one medium, numbered
by the station and carrying the kernel's identity of that medium (``dev_t`` and ``diskseq``, which
the kernel bumps for every new medium, even one with the same serial at the same node). Removal or a
new seating moves the outcome to :attr:`BayView.previous`, labelled with the serial of the drive it
belongs to, and the bay's state starts again from ``present``.

``sanitised`` is shown for the drive in the bay only when

- a job of **this seating** ended ``sanitised`` (the station saw the insertion, ran the job, and has
  not seen the medium change since), or
- after a station restart, the station's own seating record (written when that job ended) names the
  same bay, model, serial, ``dev_t``, ``diskseq`` and boot, and the registry's latest job of that
  drive is still that sanitised job. A drive pulled and re-seated, or a reboot, changes ``diskseq``
  or the boot id: then the registry's record is shown only as the drive's history, never as the
  bay's state. On a kernel without ``diskseq`` (before 5.15) nothing can prove it: a restarted
  station shows such drives ``present`` and an auto-start bay wipes them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class BayState(StrEnum):
    """The state of a bay, from its current drive only."""

    EMPTY = "empty"
    PRESENT = "present"  # a drive, nothing started for it in this seating
    WAITING = "waiting"  # auto-start bay, the drive is only busy: starts when the holder lets go
    QUEUED = "queued"
    STARTING = "starting"  # worker launched: guard and checks, nothing written yet
    RUNNING = "running"  # writing or verifying (see the phase)
    SANITISED = "sanitised"  # this drive, this seating (or proven across a restart)
    FAILED = "failed"
    REFUSED = "refused"
    INTERRUPTED = "interrupted"  # needs re-run: an attempt on this drive did not finish
    PROTECTED = "protected"  # the guard refuses it as it is (mounted, held, system disk …)
    UNLISTED = "unlisted"  # a drive outside every bay: shown, never touched


class PullAdvice(StrEnum):
    """Whether pulling the drive now cuts a job short (never whether it may leave: only ``sanitised`` says that)."""

    SAFE = "safe to pull"
    DO_NOT_PULL = "do not pull"
    NOTHING = "bay empty"


NEEDS_RERUN = "needs re-run"
_ACTIVE_JOB_STATES = {"starting": BayState.STARTING, "checking": BayState.STARTING,
                      "running": BayState.RUNNING, "verifying": BayState.RUNNING}
_OUTCOME_STATES = {"sanitised": BayState.SANITISED, "failed": BayState.FAILED, "error": BayState.FAILED,
                   "refused": BayState.REFUSED, "interrupted": BayState.INTERRUPTED}


@dataclass(frozen=True)
class Seating:
    """One insertion of one medium into a bay, as the kernel identifies it."""

    number: int  # the station's own counter: unique for the daemon's life
    name: str  # kernel name (sdb, loop3)
    dev_t: int | None  # st_rdev of the node at insertion
    diskseq: int | None  # /sys/block/NAME/diskseq (kernel ≥ 5.15); None where the kernel has none
    serial: str | None
    model: str | None
    size_bytes: int | None = None  # at insertion; a resize keeps diskseq, so it is compared on its own

    def same_medium(self, name: str, dev_t: int | None, diskseq: int | None) -> bool:
        """True when ``name``/``dev_t``/``diskseq`` describe this very medium (unknown parts never prove sameness)."""
        if name != self.name:
            return False
        if diskseq is not None and self.diskseq is not None and diskseq != self.diskseq:
            return False
        return not (dev_t is not None and self.dev_t is not None and dev_t != self.dev_t)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"number": self.number, "name": self.name, "dev_t": self.dev_t, "diskseq": self.diskseq,
                "serial": self.serial, "model": self.model, "size_bytes": self.size_bytes}


@dataclass(frozen=True)
class BayView:
    """A bay's state and what the operator needs beside it."""

    state: BayState
    reason: str | None  # refusal/failure reason, protection reasons, "needs re-run", the phase
    advice: PullAdvice
    needs_rerun: bool


def derive_view(*, present: bool, job: dict[str, Any] | None, outcome: dict[str, Any] | None,
                protected: tuple[str, ...], waiting: bool, history: dict[str, Any] | None,
                notice: str | None = None) -> BayView:
    """The bay's state from its current drive: the job running for it, else this seating's outcome,
    else what the guard says, else the drive's interrupted history; never an earlier drive's outcome.

    ``job`` is the status form of the bay's queued or running job, ``outcome`` the summary of a job
    of this seating, ``history`` the registry's latest job of this exact drive (serial and model),
    ``notice`` why this seating's outcome was withdrawn (written or resized since its job).
    """
    if not present:
        return BayView(BayState.EMPTY, None, PullAdvice.NOTHING, False)
    if job is not None:
        state = _ACTIVE_JOB_STATES.get(str(job.get("state")), BayState.QUEUED)
        if state is BayState.QUEUED:
            return BayView(state, None, PullAdvice.SAFE, False)  # pulling a queued drive only dequeues it
        return BayView(state, job.get("phase"), PullAdvice.DO_NOT_PULL, False)
    if outcome is not None:
        text = str(outcome.get("outcome"))
        reason = outcome.get("reason") or outcome.get("message")
        if text == "cancelled":  # dequeued before it started: nothing was touched
            return BayView(BayState.PRESENT, str(reason) if reason else "cancelled before it started",
                           PullAdvice.SAFE, False)
        state = _OUTCOME_STATES.get(text, BayState.FAILED)
        if state is BayState.INTERRUPTED:
            return BayView(state, f"{NEEDS_RERUN}: {reason}" if reason else NEEDS_RERUN, PullAdvice.SAFE, True)
        return BayView(state, str(reason) if reason else None, PullAdvice.SAFE, False)
    if protected:
        state = BayState.WAITING if waiting else BayState.PROTECTED
        return BayView(state, "; ".join(protected), PullAdvice.SAFE, False)
    if notice is not None:
        return BayView(BayState.PRESENT, notice, PullAdvice.SAFE, True)
    if history is not None and history.get("outcome") == "interrupted":
        return BayView(BayState.INTERRUPTED, f"{NEEDS_RERUN}: job {history.get('job_id')} did not finish",
                       PullAdvice.SAFE, True)
    return BayView(BayState.PRESENT, None, PullAdvice.SAFE, False)
