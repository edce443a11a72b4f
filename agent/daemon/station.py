"""The station daemon's core: drives in bays, a queue, parallel isolated jobs, recovery, shutdown.

Threads and processes:

- the **main thread** owns the loop: it ``select``s on the drive-event source and a wake-up pipe
  (signals and API calls write to it), matches drives to bays, starts job workers, pings the
  watchdog. Workers are started *only* here, because ``PR_SET_PDEATHSIG`` fires when the creating
  *thread* exits, and the main thread lives as long as the daemon;
- one **supervisor thread** per job reads its worker's JSON lines (progress, outcome) and reaps it;
- the **API** serves requests in threads of its own; state-changing calls queue work for the loop.

All shared state is guarded by one lock. Each job runs in its own process (see ``worker.py``), so
a hung drive or a crash takes only its own job with it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pwd
import re
import select
import signal
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from agent.app import Application
from agent.audit.station import record_configuration
from agent.config import Bay, certificate_text_problem
from agent.contracts import (
    OUTCOME_MESSAGES,
    CertificateFailed,
    ContractError,
    Created,
    Error,
    JobState,
    NotResumable,
    Phase,
    Progress,
    Route,
    WorkerMessage,
    WorkerRequest,
    message_from_json,
)
from agent.daemon.bays import NEEDS_RERUN, BayState, PullAdvice, Seating, derive_view
from agent.daemon.intake import StationStore
from agent.daemon.launcher import ForkServerLauncher, Launcher, SubprocessLauncher, WorkerHandle
from agent.daemon.notify import Notifier
from agent.daemon.worker import EXIT_LEFT_RUNNING
from agent.discovery.guard import Guard
from agent.discovery.identity import DriveIdentity
from agent.discovery.monitor import INSERTED, REMOVED, DriveEvent, DriveSource
from agent.errors import AgentError, ConfigError, RequestRefused
from agent.jobs.runner import JobRunner
from agent.methods.registry import runs_in_firmware
from agent.operators import (
    VIA_API,
    VIA_DAEMON,
    VIA_WEB,
    ConsoleAccount,
    OperatorError,
    Operators,
    OperatorStamp,
    SignIn,
    attribute,
    check_text,
    signed_in_now,
    user_name,
)
from agent.policy.profiles import load_profile
from agent.store.registry import FINAL_STATES, JobRow, Registry, has_serial
from certs.record import asset_tag_problem

RESYNC_SECONDS = 5.0  # netlink drops events when its buffer overflows: compare with sysfs this often
PROBE_WAIT_SECONDS = 0.5  # udev/blkid probing a fresh drive: how long the main loop waits for them to let go
RECHECK_FIRST_SECONDS = 0.2  # a drive that was busy is looked at again after this, then ever less often
SHUTDOWN_SECONDS = 8.0  # systemd's TimeoutStopSec is 10 s: leave margin for the last journal writes
START_ANSWER_SECONDS = 7.0  # ``start`` waits this long for the guard and checks: under the client's 10 s
VERIFY_SHARE = {"full": 0.5, "sampling": 0.05}  # of a job's work, for overall progress
CONSOLE_KIND = re.compile(r"web-[a-z][a-z-]{0,38}")  # the web console's own audit entries, and only those


class RequestError(RequestRefused):
    """A request the station cannot honour; ``code`` (one of ``RequestRefused.codes``) is stable and
    its declared status is the HTTP status (409 when the call site gives none)."""


class Closeable(Protocol):
    """Something the station stops on shutdown (the API server)."""

    def close(self) -> None:
        """Stop and release resources."""
        ...


@dataclass
class ActiveJob:
    """A job the station has queued or is running."""

    key: int
    bay: str | None
    device_path: str
    name: str
    profile: str
    operator: str
    expected_serial: str | None = None
    asset_tag: str | None = None
    host: dict[str, Any] | None = None
    intake_id: int | None = None
    resume: str | None = None
    job_id: str | None = None
    state: str = "queued"
    phase: str | None = None
    done: int = 0
    total: int = 0
    phase_started: float = 0.0
    heard_at: float | None = None  # the worker's last message: a drive hung in the kernel goes quiet
    queued_at: float = field(default_factory=time.monotonic)
    launched_at: float | None = None
    running_at: float | None = None
    process: WorkerHandle | None = None
    removed: bool = False
    cancelled_by: str | None = None
    outcome: WorkerMessage | None = None  # the worker's last Done, Error, LeftRunning or NotResumable
    seating: int | None = None  # the bay seating this job was started for (its outcome belongs to it)
    medium: Seating | None = None  # that seating's kernel identity
    verify_share: float = 0.05
    claimed_intake: bool = False
    settled: threading.Event = field(default_factory=threading.Event)  # past the checks, or ended
    final: dict[str, Any] | None = None  # the summary it ended with
    certificate_error: str | None = None
    stamp: dict[str, Any] | None = None  # who the job is attributed to (agent.operators.OperatorStamp fields)

    def cancelled_summary(self) -> dict[str, Any]:
        """The bay's last outcome for a job cancelled before its worker created it."""
        return {"job_id": self.job_id, "outcome": "cancelled", "operator": self.cancelled_by,
                "reason": f"cancelled by {self.cancelled_by} before it started"}

    def overall_progress(self) -> float | None:
        """Progress across phases: the write (or sanitize) phase, then verification, weighted by the
        profile's verification mode (a full read-back is as long as the write; a sample is short)."""
        if not self.total or self.phase is None:
            return None
        fraction = min(1.0, self.done / self.total)
        if self.phase == "verify":
            return round((1 - self.verify_share) + self.verify_share * fraction, 4)
        return round((1 - self.verify_share) * fraction, 4)

    def to_json(self) -> dict[str, Any]:
        """Status view: progress, rate and ETA of the current phase; elapsed time and overall progress."""
        now = time.monotonic()
        elapsed = now - self.phase_started if self.phase_started else 0.0
        rate = self.done / elapsed if elapsed > 0 and self.done else None
        eta = (self.total - self.done) / rate if rate and self.total >= self.done else None
        began = self.running_at or self.launched_at
        return {
            "overall_progress": self.overall_progress(),
            "elapsed_seconds": round(now - began, 1) if began is not None else None,
            "job_id": self.job_id, "state": self.state, "profile": self.profile, "operator": self.operator,
            "device": self.device_path, "phase": self.phase, "done": self.done, "total": self.total,
            "progress": round(self.done / self.total, 4) if self.total else None,
            "rate_bytes_per_second": round(rate) if rate else None,
            "eta_seconds": round(eta, 1) if eta is not None else None,
            "asset_tag": self.asset_tag, "resumed": self.resume is not None,
            "quiet_seconds": round(now - self.heard_at, 1) if self.heard_at is not None else None,
            "pid": self.process.pid if self.process is not None else None,
        }


@dataclass
class BaySlot:
    """What the station knows about one bay."""

    bay: Bay
    drive: DriveEvent | None = None
    identity: DriveIdentity | None = None
    protected: tuple[str, ...] = ()
    job: ActiveJob | None = None
    outcome: dict[str, Any] | None = None  # of a job of THIS seating only (see agent.daemon.bays)
    previous: dict[str, Any] | None = None  # the last outcome of an earlier drive/seating, labelled as such
    history: dict[str, Any] | None = None  # the registry's latest job of this exact drive, as found at insertion
    seating: Seating | None = None
    written_at_outcome: int | None = None  # the write counter as this seating's sanitised job ended
    notice: str | None = None  # why this seating's outcome was withdrawn (written or resized since)
    started: bool = False  # a job was queued for the drive now in the bay (auto-start only once per insertion)
    waiting_until_free: bool = False  # auto-start bay, drive only busy: started when the holder lets go
    recheck_at: float = 0.0  # when a waiting drive is looked at again (backing off: a udev probe lets go in
    recheck_every: float = 0.0  # a moment, a dd runs for hours)


def medium_size(name: str) -> int | None:
    """The medium's size now, from sysfs (512-byte units whatever the sector size), None if unreadable."""
    try:
        with open(f"/sys/block/{name}/size") as handle:
            return int(handle.read().strip()) * 512
    except (OSError, ValueError):
        return None


def sectors_written(name: str) -> int | None:
    """The kernel's count of sectors written to the device since it was created (``/sys/block/NAME/stat``,
    field 7): any write after a job ended - an automounter, a copy, a VM - raises it."""
    try:
        with open(f"/sys/block/{name}/stat") as handle:
            return int(handle.read().split()[6])
    except (OSError, ValueError, IndexError):
        return None


def medium_identity(name: str, path: str) -> tuple[int | None, int | None]:
    """``(dev_t, diskseq)`` of the medium at ``path`` now (None for what this kernel or node lacks)."""
    try:
        dev_t: int | None = os.stat(path).st_rdev or None
    except OSError:
        dev_t = None
    try:
        with open(f"/sys/block/{name}/diskseq") as handle:
            diskseq: int | None = int(handle.read().strip())
    except (OSError, ValueError):
        diskseq = None  # kernels before 5.15, or not a whole disk
    return dev_t, diskseq


def boot_id() -> str:
    """This boot's id: a seating record from another boot proves nothing (diskseq restarts at boot)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _only_busy(reasons: tuple[str, ...]) -> bool:
    """True when every reason not to touch a drive is that something holds it open (it may let go)."""
    return bool(reasons) and all(reason.startswith("busy:") for reason in reasons)


def console_operator(stamp: OperatorStamp) -> str:
    """How a console-started job names its operator: ``NAME (TITLE) via the web console, uid U``."""
    return f"{stamp.name} ({stamp.title}) via {VIA_WEB}, uid {stamp.uid}"


def _job_summary(row: JobRow) -> dict[str, Any]:
    return {"job_id": row.id, "outcome": row.state, "method": row.method, "level": row.level,
            "reason": row.reason, "error_code": row.error_code, "route": row.route, "profile": row.profile,
            "finished_at": row.finished_at, "asset_tag": row.asset_tag, "certificate": row.certificate_path}


class Station:
    """Wires discovery, bays, the queue and job workers; ``serve()`` runs until SIGTERM."""

    def __init__(
        self,
        app: Application,
        source: DriveSource,
        *,
        notifier: Notifier | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        config = app.config
        self.app = app
        self.config = config
        self.source = source
        self.notifier = notifier or Notifier()
        self.log = logger or logging.getLogger("wipe-agent")
        self.identify: Callable[[str], DriveIdentity] = app.identify
        # the bays' own guard waits less for udev probes of a fresh drive than a job's does
        self.guard = app.guard or Guard(probe_wait=PROBE_WAIT_SECONDS)
        self.launcher: Launcher | None = app.launcher
        self.store = StationStore(config.state_dir)
        self.slots: dict[str, BaySlot] = {bay.name: BaySlot(bay) for bay in config.bays}
        self.unbayed: dict[str, dict[str, Any]] = {}
        self.queue: deque[ActiveJob] = deque()
        self.active: dict[int, ActiveJob] = {}
        self.lock = threading.RLock()
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self._supervisors: list[threading.Thread] = []
        self._keys = 0
        self._seatings = 0
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._registry: Registry | None = None
        self._registry_thread: int | None = None
        self._restart_interrupted: list[JobRow] = []
        self._coldplug = False  # handling the drives found at start-up
        self.started_at = time.time()

    # lifecycle ----------------------------------------------------------------------------
    def wake(self) -> None:
        """Make the loop run now (safe from threads and signal handlers)."""
        try:
            os.write(self._wake_write, b"w")
        except (BlockingIOError, OSError):
            pass

    def request_stop(self) -> None:
        """Stop taking jobs and shut down (SIGTERM)."""
        self.stopping.set()
        self.wake()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT → orderly shutdown (main thread only)."""
        def handler(number: int, frame: object) -> None:
            self.request_stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def serve(self, api_factory: Callable[[Station], Closeable] | None = None) -> int:
        """Run the station until :meth:`request_stop`; returns the exit code."""
        self._registry = self.app.open_store()
        self._registry_thread = threading.get_ident()
        record_configuration(self._registry, self.config)
        self.store.create()
        if self.launcher is None and os.environ.get("WIPE_AGENT_NO_FORKSERVER") == "1":
            self.launcher = SubprocessLauncher()
        if self.launcher is None:
            try:
                self.launcher = ForkServerLauncher(on_ready=self.wake)
            except OSError as exc:
                self.log.warning("no fork server: one interpreter per job", extra={"fields": {"error": str(exc)}})
                self.launcher = SubprocessLauncher()
        api: Closeable | None = None
        try:
            scanned = self.source.scan()
            self._recover(scanned)
            self._coldplug = True
            try:
                for event in scanned:
                    self._on_event(event)
            finally:
                self._coldplug = False
            if api_factory is not None:
                api = api_factory(self)
            self._schedule()
            self.ready.set()
            self.notifier.notify(READY=1, STATUS=self._status_line())
            self.log.info("station ready", extra={"fields": {"station": self.config.station_id,
                                                             "bays": len(self.slots)}})
            self._loop()
        finally:
            self._shutdown(api)
        return 0

    def _loop(self) -> None:
        interval = 1.0
        if self.notifier.watchdog_seconds:
            interval = min(interval, self.notifier.watchdog_seconds / 2)
        next_tick = 0.0
        next_resync = time.monotonic() + RESYNC_SECONDS
        while not self.stopping.is_set():
            now = time.monotonic()
            timeout = max(0.0, min(interval, next_tick - now)) if next_tick else interval
            recheck = self._next_recheck()
            if recheck is not None:
                timeout = max(0.0, min(timeout, recheck - now))
            readable, _, _ = select.select([self.source.fileno(), self._wake_read], [], [], timeout)
            if self._wake_read in readable:
                try:
                    while os.read(self._wake_read, 4096):
                        pass
                except BlockingIOError:
                    pass
            if self.source.fileno() in readable:
                for event in self.source.read():
                    try:
                        self._on_event(event)
                    except Exception:  # one bad event never stops the station
                        self.log.exception("drive event failed", extra={"fields": {"device": event.device_path}})
            if self.stopping.is_set():
                break
            if time.monotonic() >= next_resync:
                next_resync = time.monotonic() + RESYNC_SECONDS
                for event in self.source.resync():
                    try:
                        self._on_event(event)
                    except Exception:
                        self.log.exception("drive event failed", extra={"fields": {"device": event.device_path}})
            try:
                self._reassess_waiting_bays()  # only the drives that are due
            except Exception:  # never stops the station
                self.log.exception("re-assessing waiting bays failed")
            self._schedule()
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + interval
                with self.lock:
                    self._recheck_media()
                self._checkpoint_if_due()
                self.notifier.notify(WATCHDOG=1, STATUS=self._status_line())

    def _shutdown(self, api: Closeable | None) -> None:
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        self.stopping.set()
        self.notifier.notify(STOPPING=1, STATUS="stopping: journalling every job")
        if api is not None:
            api.close()
        with self.lock:
            self.queue.clear()
            running = [job for job in self.active.values() if job.process is not None]
        for job in running:
            self._signal(job, signal.SIGUSR2)  # overwrite: cancel; firmware sanitize: left running in the drive
        for thread in list(self._supervisors):
            thread.join(max(0.0, deadline - time.monotonic()))
        with self.lock:
            stragglers = [job for job in self.active.values() if job.process is not None]
        for job in stragglers:  # hung in the kernel: the next start reconciles its job
            self.log.warning("worker did not stop in time", extra={"fields": {"job_id": job.job_id}})
            self._signal(job, signal.SIGKILL)
        for thread in list(self._supervisors):
            thread.join(0.5)
        if self.launcher is not None:
            self.launcher.close()
        self.source.close()
        if self._registry is not None:
            self._sign_audit_head("shutdown")
            self._registry.close()
        for fd in (self._wake_read, self._wake_write):
            os.close(fd)
        self.log.info("station stopped", extra={"fields": {"station": self.config.station_id}})

    def _checkpoint_if_due(self) -> None:
        """Sign the audit head once its oldest unsigned entry is [audit] checkpoint_minutes old (appends check the
        entry count themselves; this covers a station that goes quiet)."""
        try:
            if self._registry is not None and self._registry.audit.checkpoint_due():
                self._sign_audit_head("timer")
        except Exception:  # never stops the station
            self.log.exception("audit checkpoint check failed")

    def _sign_audit_head(self, why: str) -> None:
        """A signed checkpoint of the audit chain's head now (at shutdown: whatever the last jobs appended)."""
        assert self._registry is not None
        try:
            made = self._registry.audit.checkpoint(at=self._registry.clock())
        except Exception:  # a full disk or a broken key must not keep the station from stopping
            self.log.exception("audit checkpoint failed", extra={"fields": {"why": why}})
            return
        if made is not None:
            self.log.info("audit checkpoint signed", extra={"fields": {"why": why, "seq": made.seq,
                                                                        "number": made.number}})

    # recovery ----------------------------------------------------------------------------
    def _recover(self, scanned: list[DriveEvent]) -> None:
        """Orphaned jobs: resume firmware sanitizes still running in a present drive; the rest → interrupted."""
        assert self._registry is not None
        registry = self._registry
        can_resume = callable(getattr(JobRunner, "resume", None))
        present = {event.device_path: event for event in scanned}
        resumable: dict[str, JobRow] = {}
        for job_id in registry.orphaned_jobs():
            row = registry.job(job_id)
            firmware = runs_in_firmware(row.method)
            running = row.state in (JobState.RUNNING, JobState.VERIFYING)
            if can_resume and firmware and running and row.device_path in present:
                try:
                    same = self.identify(row.device_path).serial == row.drive.serial
                except AgentError:
                    same = False
                if same:
                    resumable[job_id] = row
        interrupted = registry.reconcile(keep=lambda job_id: job_id in resumable)
        for job_id in interrupted:
            self.log.warning("job interrupted by a restart", extra={"fields": {"job_id": job_id}})
        for job_id, row in resumable.items():
            event = present[row.device_path]
            bay = self.config.bay_for(event.properties)
            job = self._new_job(bay.name if bay else None, row.device_path, event.name, row.profile, row.operator,
                                resume=job_id)
            job.job_id = job_id
            if bay is not None:
                self.slots[bay.name].job, self.slots[bay.name].started = job, True
            self.queue.append(job)
            self.log.info("resuming firmware sanitize", extra={"fields": {"job_id": job_id}})
        self._restart_interrupted = [registry.job(job_id) for job_id in interrupted]

    # drive events -----------------------------------------------------------------------
    def _assess(self, path: str) -> tuple[str, ...]:
        """The guard's reasons not to touch ``path``. A worker of ours running a job on this very drive
        holds it and is not a reason (after a restart that resumes a job); any other holder is."""
        name = os.path.basename(os.path.realpath(path))
        with self.lock:
            ours = [job.process.pid for job in self.active.values()
                    if job.process is not None and job.name == name]
        return tuple(self.guard.assess(path, ignore_pids=ours).reasons)

    def _auto_start(self, slot: BaySlot) -> None:
        """Under the lock, for a drive in an auto-start bay with no job: start it, once per insertion.

        An attempt interrupted by a station restart starts again from the beginning with its own
        operator and host link; otherwise a new job with the bay's profile. A drive that is only
        *busy* (another process holds it open) waits and starts when it is free; any other reason
        (mounted, holders, read-only, system disk …) leaves it for the operator — it was never meant
        to be wiped by itself just because a condition cleared.
        """
        if not slot.bay.auto_start or slot.job is not None or slot.started or slot.drive is None:
            return
        fields = {"bay": slot.bay.name, "device": slot.drive.device_path,
                  "serial": slot.identity.serial if slot.identity else "?"}
        if self._coldplug and self._interrupted_for(slot, take=False) is None and self._already_sanitised(slot):
            return
        if slot.protected:
            waiting = all(reason.startswith("busy:") for reason in slot.protected)
            if waiting and not slot.waiting_until_free:
                slot.recheck_every = RECHECK_FIRST_SECONDS
                slot.recheck_at = time.monotonic() + slot.recheck_every
            slot.waiting_until_free = waiting
            self.log.warning("drive in bay is protected: not started" + (
                " (starts when it is free)" if slot.waiting_until_free else ""),
                extra={"fields": {**fields, "reasons": "; ".join(slot.protected)}})
            return
        slot.waiting_until_free = False
        restart = self._interrupted_for(slot)
        if restart is not None and not self._same_medium(slot, restart):
            # a look-alike (same model and serial, another medium) is wiped as a new drive: it never
            # inherits the interrupted job's operator, asset tag or laptop link
            self.log.warning("a drive with the serial of an interrupted job, not proven to be its medium: wiped as "
                             "a new drive, without that job's host link", extra={"fields": {
                                 **fields, "interrupted": restart.id}})
            if slot.identity is not None:
                self._enqueue(slot, self.config.profile_for(slot.bay, slot.identity.media),
                              stamp=self._stamp(VIA_DAEMON, os.geteuid(), slot.bay.name))
        elif restart is not None:
            # the re-run is a sanitisation done now: attributed like any auto-start, to whoever is signed
            # in for the bay now (else to nobody, said so), never to the interrupted job's person, whose
            # shift may have ended or who signed out meanwhile; that person stays on the interrupted job
            self._enqueue(slot, restart.profile, None, restart.asset_tag, restart.host, use_intake=False,
                          stamp=self._stamp(VIA_DAEMON, os.geteuid(), slot.bay.name))
            self.log.info("restarting interrupted job from the beginning",
                          extra={"fields": {**fields, "interrupted": restart.id,
                                            "interrupted_operator": restart.operator}})
        elif slot.identity is not None:
            self._enqueue(slot, self.config.profile_for(slot.bay, slot.identity.media),
                          stamp=self._stamp(VIA_DAEMON, os.geteuid(), slot.bay.name))
        else:
            self.log.warning("drive in bay could not be identified: not started", extra={"fields": fields})

    def _already_sanitised(self, slot: BaySlot) -> bool:
        """At start-up, a drive still in its bay whose last job sanitised *this very medium* is not wiped again.

        The station restarted (an update, a crash) with finished drives still seated: wiping them
        again would only cost hours and issue a second certificate. "This very medium" is proven
        by the station's seating record (bay, model, serial, dev_t, diskseq and boot id as the job
        ended), never by the serial alone: USB docks report their bridge's serial for any disk,
        serials are cloned, and a loop's "serial" is its backing path. Without that proof (a
        reboot, a re-seat, a look-alike) the drive is wiped again. A drive plugged in while the
        station runs is an operator's act and is wiped; ``start`` always wipes.
        """
        identity = slot.identity
        if identity is None or self._registry is None:
            return False
        last = self._registry.last_job_of(identity.model, identity.serial)
        if last is None or last.state != JobState.SANITISED:
            return False
        fields = {"bay": slot.bay.name, "serial": identity.serial, "job_id": last.id}
        if not self._proven_seating(slot, last.id):
            self.log.warning("a drive with this serial was sanitised before the restart, but nothing proves it is "
                             "this medium: it is wiped again", extra={"fields": fields})
            return False
        slot.started = True
        slot.outcome = {**_job_summary(last), "note": "sanitised before the station restarted; never pulled since"}
        self.log.info("drive already sanitised: not started again", extra={"fields": fields})
        return True

    def _same_medium(self, slot: BaySlot, row: JobRow) -> bool:
        """Whether the drive in ``slot`` is the medium the interrupted job ``row`` ran on.

        Within one boot the kernel's ``dev_t`` and ``diskseq`` tell (a re-seat or a look-alike has
        another diskseq). Across a reboot (a power cut, the usual interruption) diskseq restarts and
        proves nothing: model, serial and size must match. A job without a record (from before the
        station kept them) is matched as before, by model and serial.
        """
        seating = slot.seating
        try:
            recorded = self.store.job_medium(row.id)
        except AgentError:
            recorded = None
        if recorded is None or seating is None:
            return recorded is None
        if recorded["boot_id"] == boot_id():
            return (seating.dev_t, seating.diskseq) == (recorded["dev_t"], recorded["diskseq"]) and (
                seating.diskseq is not None)
        return recorded["size_bytes"] is not None and seating.size_bytes == recorded["size_bytes"]

    def _proven_seating(self, slot: BaySlot, job_id: str) -> bool:
        """True when the station's seating record says ``job_id`` ran on exactly the medium in the bay now."""
        seating, identity = slot.seating, slot.identity
        if seating is None or identity is None or seating.dev_t is None or seating.diskseq is None:
            return False
        if not has_serial(identity.serial):
            return False
        written = sectors_written(seating.name)
        if written is None:
            return False
        try:
            recorded = self.store.sanitised_seating(slot.bay.name, identity.model, identity.serial, seating.dev_t,
                                                    seating.diskseq, boot_id(), written)
        except AgentError:
            return False
        if recorded != job_id:
            return False
        slot.written_at_outcome = written
        return True

    def _look_up_history(self, slot: BaySlot) -> None:
        """A new seating: the registry's latest job of this exact drive, and whether it proves this seating."""
        identity = slot.identity
        slot.history = None
        if identity is None or self._registry is None:
            return
        try:
            last = self._registry.last_job_of(identity.model, identity.serial)
        except AgentError:
            return
        if last is None:
            return
        slot.history = {**_job_summary(last), "serial": identity.serial,
                        "label": f"this drive's last recorded job ({last.state}); not this seating's outcome"}
        if last.state == JobState.SANITISED and self._proven_seating(slot, last.id):
            slot.outcome = {**_job_summary(last), "note": "sanitised before the station restarted; never pulled since"}

    def _reassess_waiting_bays(self) -> None:
        """Drives in auto-start bays that were only busy: look again, and start those now free.

        Only these: every assessment scans /proc and may wait for udev probes, on the main thread.
        """
        now = time.monotonic()
        with self.lock:
            waiting = [slot for slot in self.slots.values() if slot.waiting_until_free and slot.drive is not None
                       and slot.job is None and now >= slot.recheck_at]
        for slot in waiting:
            drive = slot.drive
            assert drive is not None
            reasons = self._assess(drive.device_path)
            with self.lock:
                if slot.drive is not drive or slot.job is not None or not slot.waiting_until_free:
                    continue  # removed, started or cancelled meanwhile
                if reasons != slot.protected:
                    self.log.info("drive protection changed", extra={"fields": {
                        "bay": slot.bay.name, "device": drive.device_path, "reasons": "; ".join(reasons) or "-"}})
                slot.protected = reasons
                if slot.bay.auto_start:
                    self._auto_start(slot)
                else:  # a manual bay: only what it shows changes (a probe let go: "present", not "busy")
                    slot.waiting_until_free = _only_busy(reasons)
                if slot.waiting_until_free:
                    slot.recheck_every = min(slot.recheck_every * 2, RESYNC_SECONDS)
                    slot.recheck_at = time.monotonic() + slot.recheck_every

    def _next_recheck(self) -> float | None:
        """When the earliest waiting drive is due for another look (monotonic), if any waits."""
        with self.lock:
            due = [slot.recheck_at for slot in self.slots.values() if slot.waiting_until_free and slot.job is None]
        return min(due) if due else None

    def _on_event(self, event: DriveEvent) -> None:
        with self.lock:
            if event.action == INSERTED:
                self._on_inserted(event)
            elif event.action == REMOVED:
                self._on_removed(event)

    def _on_inserted(self, event: DriveEvent) -> None:
        bay = self.config.bay_for(event.properties)
        try:
            identity: DriveIdentity | None = self.identify(event.device_path)
        except AgentError:
            identity = None
        protected = self._assess(event.device_path)
        fields = {"device": event.device_path, "bay": bay.name if bay else "-",
                  "serial": identity.serial if identity else "?"}
        if bay is None:
            self.unbayed[event.name] = {"device": event.device_path, "drive": identity.to_json() if identity else None,
                                        "protected": list(protected), "state": BayState.UNLISTED.value}
            self.log.info("drive outside every bay: shown, never touched", extra={"fields": fields})
            return
        slot = self.slots[bay.name]
        if slot.drive is not None and slot.drive.name != event.name:
            # a bay holds one drive: a second disk its match also fits (a match without a per-port
            # property) never takes the place of the one whose job and outcome the bay shows
            held = slot.identity.serial if slot.identity else slot.drive.device_path
            self.unbayed[event.name] = {
                "device": event.device_path, "drive": identity.to_json() if identity else None,
                "protected": list(protected), "state": BayState.UNLISTED.value,
                "note": f"matches bay {bay.name}, which already holds {held}: not touched (re-seat it alone)"}
            self.log.warning("second drive matches a bay that already holds one: shown, never touched",
                             extra={"fields": {**fields, "holds": held}})
            return
        dev_t, diskseq = medium_identity(event.name, event.device_path)
        new_seating = slot.seating is None or slot.drive is None or not slot.seating.same_medium(
            event.name, dev_t, diskseq)
        if new_seating and slot.job is None:
            slot.started = False  # a new insertion (a resumed job already holds the bay: it counts as started)
        slot.drive, slot.identity, slot.protected = event, identity, protected
        if new_seating:
            self._new_seating(slot, event, identity, dev_t, diskseq)
        self.log.info("drive inserted", extra={"fields": fields})
        if slot.job is not None:
            return  # a resumed job already holds this bay
        # an attempt interrupted by a station restart starts again only where the bay starts jobs by
        # itself anyway; in a manual bay the operator sees the drive and decides
        if bay.auto_start:
            self._auto_start(slot)
        elif protected:
            self.log.warning("drive in bay is protected", extra={"fields": {**fields, "reasons": "; ".join(protected)}})
            if _only_busy(protected) and not slot.waiting_until_free:
                # held only (udev's probe, losetup a moment after attaching): looked at again, backing off,
                # so the bay does not go on showing a holder that has let go
                slot.waiting_until_free = True
                slot.recheck_every = RECHECK_FIRST_SECONDS
                slot.recheck_at = time.monotonic() + slot.recheck_every

    def _new_seating(self, slot: BaySlot, event: DriveEvent, identity: DriveIdentity | None, dev_t: int | None,
                     diskseq: int | None) -> None:
        """Under the lock: a new medium in the bay. What the bay showed belongs to the drive before."""
        self._retire_outcome(slot)
        self._seatings += 1
        slot.seating = Seating(self._seatings, event.name, dev_t, diskseq, identity.serial if identity else None,
                               identity.model if identity else None, medium_size(event.name))
        if slot.job is not None and slot.job.seating is None:
            slot.job.seating = slot.seating.number  # a job resumed at start-up is this seating's
        if self._registry_thread in (None, threading.get_ident()):
            self._look_up_history(slot)  # only on the thread whose registry connection this is

    def _forget_seating(self, bay: str) -> None:
        try:
            self.store.forget_seating(bay)
        except AgentError as exc:  # a stale record cannot prove anything anyway: diskseq changes on re-seat
            self.log.error("cannot forget seating", extra={"fields": {"bay": bay, "error": exc.message}})

    def _recheck_media(self) -> None:
        """Under the lock: a medium that changed size in its bay (``losetup -c``, a host-protected area
        removed) no longer is what its job sanitised - the kernel keeps diskseq for a resize, so the
        size is compared too; its outcome becomes history, never the bay's "sanitised"."""
        for slot in self.slots.values():
            seating, outcome = slot.seating, slot.outcome
            if seating is None or slot.drive is None or outcome is None or slot.job is not None:
                continue
            size = medium_size(seating.name)
            if size == 0:
                continue  # the medium is going (a loop detached, a card pulled): its removal event follows
            written = sectors_written(seating.name)
            if seating.size_bytes is not None and size is not None and size != seating.size_bytes:
                change = f"its size changed ({seating.size_bytes} → {size} bytes)"
                slot.seating = dataclasses.replace(seating, size_bytes=size)
            elif (outcome.get("outcome") == "sanitised" and slot.written_at_outcome is not None
                  and written is not None and written > slot.written_at_outcome):
                change = f"it was written after its job ({written - slot.written_at_outcome} sectors)"
            else:
                continue
            self.log.warning("drive in its bay changed after its job: its outcome no longer describes it", extra={
                "fields": {"bay": slot.bay.name, "job_id": outcome.get("job_id"), "change": change}})
            slot.outcome = None
            slot.notice = f"{change}: {outcome.get('outcome')} no longer holds - {NEEDS_RERUN}"
            slot.previous = {**outcome, "serial": seating.serial,
                             "label": f"this drive before {change}: {outcome.get('outcome')}"}
            slot.started = True  # the operator decides: nothing starts by itself on a medium that changed under us
            self._forget_seating(slot.bay.name)

    def _retire_outcome(self, slot: BaySlot) -> None:
        """Under the lock: the bay's outcome becomes the previous drive's, labelled with its serial."""
        if slot.outcome is not None:
            serial = slot.seating.serial if slot.seating is not None else None
            slot.previous = {**slot.outcome, "serial": serial,
                             "label": f"previous drive S/N {serial or '?'}: {slot.outcome.get('outcome')}"}
        slot.outcome, slot.history, slot.notice, slot.written_at_outcome = None, None, None, None

    def _interrupted_for(self, slot: BaySlot, take: bool = True) -> JobRow | None:
        """The interrupted job of exactly this drive: same model and serial, and a real serial at that
        (drives without one all read "unknown" and must never stand in for each other). ``take``:
        it is restarted now, so no other insertion continues it."""
        identity = slot.identity
        if identity is None or not has_serial(identity.serial):
            return None
        pending = self._restart_interrupted
        for row in pending:
            if (row.state == JobState.INTERRUPTED and row.drive.serial == identity.serial
                    and row.drive.model == identity.model):
                if take:
                    pending.remove(row)
                return row
        return None

    def _on_removed(self, event: DriveEvent) -> None:
        self.unbayed.pop(event.name, None)
        for slot in self.slots.values():
            if slot.drive is not None and slot.drive.name == event.name:
                self._retire_outcome(slot)
                slot.drive, slot.identity, slot.protected, slot.seating = None, None, (), None
                self._forget_seating(slot.bay.name)
                slot.started = slot.waiting_until_free = False
                self.log.info("drive removed", extra={"fields": {"bay": slot.bay.name, "device": event.device_path}})
        for job in list(self.queue):
            if job.name == event.name:
                self.queue.remove(job)
                self._release(job)
        for job in self.active.values():
            if job.name == event.name and job.process is not None:
                job.removed = True
                self._signal(job, signal.SIGUSR1)
                self.log.warning("drive removed mid-job", extra={"fields": {"job_id": job.job_id, "bay": job.bay}})

    # scheduling -------------------------------------------------------------------------
    def _new_job(self, bay: str | None, device_path: str, name: str, profile: str, operator: str,
                 **extra: Any) -> ActiveJob:
        self._keys += 1
        return ActiveJob(self._keys, bay, device_path, name, profile, operator, **extra)

    def _stamp(self, via: str, uid: int, bay: str | None) -> OperatorStamp:
        """Who a job started now is attributed to (agent.operators), from the sign-ins read on a plain
        short-lived connection, from any thread: cheap enough for every start and status poll, and no
        :class:`Registry` open-time checks on an API thread. (The "disk I/O error" once seen when a full
        Registry was opened here was the registry's header read dropping the daemon's POSIX locks, fixed in
        ``Registry._check_existing``; this connection is a cost choice, not that workaround.)"""
        return attribute(self._signed_in(), via, uid=uid, bay=bay)

    def _enqueue(self, slot: BaySlot, profile: str, operator: str | None = None, asset_tag: str | None = None,
                 host: dict[str, Any] | None = None, use_intake: bool = True,
                 stamp: OperatorStamp | None = None) -> ActiveJob:
        """Queue a job for the bay's drive; ``operator`` defaults to the display text of ``stamp``."""
        assert slot.drive is not None
        if operator is None:
            operator = stamp.display() if stamp is not None else f"station {self.config.station_id}"
        # a restarted attempt keeps the host link it had; a pending intake is for the next new drive
        serial = slot.identity.serial if slot.identity else None
        intake = self.store.usable(slot.bay.name, serial) if use_intake else None
        intake_id = None
        if intake is not None:
            asset_tag, host, intake_id = intake.asset_tag, intake.host(), intake.id
        try:
            verify_share = VERIFY_SHARE.get(load_profile(profile).verify_mode, 0.05)
        except AgentError:
            verify_share = 0.05  # the worker refuses the profile with its reason
        job = self._new_job(slot.bay.name, slot.drive.device_path, slot.drive.name, profile, operator,
                            expected_serial=serial, asset_tag=asset_tag, host=host, intake_id=intake_id,
                            seating=slot.seating.number if slot.seating else None, medium=slot.seating,
                            verify_share=verify_share, stamp=dataclasses.asdict(stamp) if stamp else None)
        slot.job, slot.started, slot.waiting_until_free = job, True, False
        self.queue.append(job)
        self.wake()
        return job

    def _schedule(self) -> None:
        """Start queued jobs up to the limit (main thread only: see the module docstring)."""
        with self.lock:
            while self.queue and not self.stopping.is_set():
                running = sum(1 for job in self.active.values() if job.process is not None)
                if running >= self.config.max_parallel_jobs:
                    return
                self._replace_dead_launcher()
                if isinstance(self.launcher, ForkServerLauncher) and self.launcher.starting:
                    return  # queued jobs start when it is ready (it wakes the loop); the loop never blocks on it
                job = self.queue.popleft()
                try:
                    self._launch(job)
                except OSError as exc:
                    if self._replace_dead_launcher():
                        self.queue.appendleft(job)  # the fork server died under this launch: again, fresh
                        continue
                    self.log.error("cannot start worker", extra={"fields": {"bay": job.bay, "error": str(exc)}})
                    self._release(job, {"job_id": job.job_id, "outcome": "error", "code": "worker_start_failed",
                                        "message": f"the job's worker could not be started: {exc}"})

    def _replace_dead_launcher(self) -> bool:
        """A dead fork server is replaced by one interpreter per job; True if that happened now."""
        if isinstance(self.launcher, ForkServerLauncher) and not self.launcher.alive:
            self.log.error("fork server died: one interpreter per job from now on")
            self.launcher.close()
            self.launcher = SubprocessLauncher()
            return True
        return False

    def _launch(self, job: ActiveJob) -> None:
        request = WorkerRequest(
            state_dir=str(self.config.state_dir), device_path=job.device_path, profile=job.profile,
            operator=job.operator, bay=job.bay, expected_serial=job.expected_serial, asset_tag=job.asset_tag,
            host=job.host, resume=job.resume, operator_stamp=job.stamp,
            station_id=self.config.station_id, transport=self.app.transport,
            certificate_settings=self.app.certificate.to_json(),
            # the medium the bay saw seated: the job is bound to it, not to whatever is at the node now
            seating=None if job.medium is None else {"dev_t": job.medium.dev_t, "diskseq": job.medium.diskseq})
        assert self.launcher is not None
        process = self.launcher.launch(request.to_json())
        job.process, job.state, job.launched_at = process, "starting", time.monotonic()
        self.active[job.key] = job
        thread = threading.Thread(target=self._supervise, args=(job, process), name=f"job-{job.key}", daemon=True)
        self._supervisors.append(thread)
        thread.start()

    def _supervise(self, job: ActiveJob, process: WorkerHandle) -> None:
        stdout: IO[bytes] | None = process.stdout
        assert stdout is not None
        with stdout:
            for line in stdout:
                try:
                    message = message_from_json(json.loads(line))
                except (ValueError, ContractError):
                    continue
                with self.lock:
                    self._on_worker_message(job, message)
        code = process.wait()
        self._finish(job, code)

    def _on_worker_message(self, job: ActiveJob, message: WorkerMessage) -> None:
        job.heard_at = time.monotonic()
        if isinstance(message, Created):
            job.job_id, job.state, job.running_at = message.job_id, JobState.CHECKING, time.monotonic()
            medium = job.medium
            if medium is not None and medium.serial is not None and job.resume is None:
                try:
                    self.store.note_job_medium(message.job_id or "", medium.model or "", medium.serial,
                                               medium.size_bytes, medium.dev_t, medium.diskseq, boot_id())
                except AgentError as exc:
                    self.log.error("cannot note job medium", extra={"fields": {"job_id": job.job_id,
                                                                               "error": exc.message}})
            self.log.info("job started", extra={"fields": {"job_id": job.job_id, "bay": job.bay,
                                                           "profile": job.profile}})
        elif isinstance(message, Progress):
            if message.phase != job.phase:
                job.phase, job.phase_started = message.phase, time.monotonic()
            job.state = JobState.VERIFYING if job.phase == Phase.VERIFY else JobState.RUNNING
            job.done, job.total = message.done, message.total
            if job.intake_id is not None and not job.claimed_intake and job.job_id and job.expected_serial:
                job.claimed_intake = True  # writing: this link is this drive's now, never the next drive's
                try:
                    self.store.claim(job.intake_id, job.expected_serial, job.job_id)
                except AgentError as exc:
                    self.log.error("cannot claim intake", extra={"fields": {"job_id": job.job_id,
                                                                            "error": exc.message}})
            job.settled.set()  # past the guard and the method choice: ``start`` can answer
        elif isinstance(message, OUTCOME_MESSAGES):
            job.outcome = message
        elif isinstance(message, CertificateFailed):  # the job's outcome stands; the bay must say it has none
            job.certificate_error = str(message.error.get("message") or "signing failed")

    def _finish(self, job: ActiveJob, code: int) -> None:
        """Reap a worker: make sure its job reached a final state, record the outcome, free the bay."""
        summary: dict[str, Any] | None = None
        restart = False
        if job.job_id is not None and code != EXIT_LEFT_RUNNING:
            registry = self.app.open_store()
            try:
                row = registry.job(job.job_id)
                if isinstance(job.outcome, NotResumable):
                    if row.state not in FINAL_STATES:
                        registry.transition(row.id, JobState.INTERRUPTED, "owner-gone",
                                            {"resume": "no sanitize in progress"},
                                            reason="the process running the job stopped before it finished",
                                            route=Route.HOLD)
                        row = registry.job(job.job_id)
                    if row.state == JobState.INTERRUPTED:
                        self._restart_interrupted.append(row)
                        restart = True
                if row.state not in FINAL_STATES:
                    # the worker died without an outcome (crash, SIGKILL): never leave it looking alive
                    reason = "drive removed" if job.removed else f"job worker exited with status {code}"
                    registry.transition(row.id, JobState.FAILED, "worker-died", {"exit_status": code}, reason=reason,
                                        error_code="drive_removed" if job.removed else "internal", route=Route.HOLD)
                    row = registry.job(job.job_id)
                summary = _job_summary(row)
            except AgentError as exc:
                self.log.error("cannot finish job", extra={"fields": {"job_id": job.job_id, "error": exc.message}})
            finally:
                registry.close()
            if summary is not None:
                route = self.store.note_outcome(row.drive.model, row.drive.serial,
                                                job.medium.size_bytes if job.medium is not None else None)
                if route == Route.DESTROY:
                    summary["drive_route"] = Route.DESTROY
                self._settle_intake(job, row)
                if row.state == JobState.SANITISED:
                    self._note_seating(job, row)
        elif isinstance(job.outcome, Error):
            summary = {"job_id": None, "outcome": "error", **job.outcome.error}
        elif job.job_id is None and job.cancelled_by is not None:  # stopped before it created its job
            summary = job.cancelled_summary()
        if summary is not None and summary.get("outcome") in ("failed", "refused", "error"):
            self.log.warning("job did not sanitise the drive", extra={"fields": {
                "job_id": job.job_id, "bay": job.bay, "outcome": summary.get("outcome"),
                "reason": summary.get("reason") or summary.get("message")}})
        if summary is not None and summary.get("outcome") == "sanitised" and not summary.get("certificate"):
            summary["warning"] = (f"no certificate: signing failed: {job.certificate_error}" if job.certificate_error
                                  else "no certificate (this station has no signing key)")
        with self.lock:
            job.process = None
            self.active.pop(job.key, None)
            self._release(job, summary)
            slot = self.slots.get(job.bay) if job.bay else None
            if restart and slot is not None and slot.drive is not None and slot.job is None:
                slot.started = False  # the resume found nothing to resume: this drive's attempt starts again
                self._on_inserted(slot.drive)  # an overwrite-style restart from the beginning, as after any stop
        self.log.info("job finished", extra={"fields": {"job_id": job.job_id, "bay": job.bay,
                                                        "outcome": (summary or {}).get("outcome", "left-running")}})
        self.wake()

    def _settle_intake(self, job: ActiveJob, row: JobRow) -> None:
        """A job's final state decides its intake: used up when the drive's story ends with a document that
        names the host (sanitised; failed and routed to destruction); kept, claimed by this drive, for its
        re-run when interrupted or failed on hold (pulled mid-job, a worker crash); untouched when refused."""
        if job.intake_id is None:
            return
        try:
            if row.state == JobState.SANITISED or (row.state == JobState.FAILED and row.route == Route.DESTROY):
                self.store.consume(job.intake_id, row.id)
        except AgentError as exc:
            self.log.error("cannot settle intake", extra={"fields": {"job_id": row.id, "error": exc.message}})

    def _note_seating(self, job: ActiveJob, row: JobRow) -> None:
        """Remember the medium a sanitised job ran on, if it is still the bay's medium."""
        with self.lock:
            slot = self.slots.get(job.bay) if job.bay else None
            seating = slot.seating if slot is not None else None
        if seating is None or seating.number != job.seating or seating.dev_t is None or seating.diskseq is None:
            return
        written = sectors_written(seating.name)
        if not has_serial(row.drive.serial) or written is None:
            return
        try:
            self.store.note_seating(job.bay or "", row.drive.model, row.drive.serial, seating.dev_t, seating.diskseq,
                                    boot_id(), written, row.id)
        except AgentError as exc:
            self.log.error("cannot note seating", extra={"fields": {"job_id": row.id, "error": exc.message}})

    def _release(self, job: ActiveJob, summary: dict[str, Any] | None = None) -> None:
        """Under the lock: the bay's job is over; its outcome goes to the seating it was started for.

        If the drive was pulled (or another seated) meanwhile, the outcome is the previous drive's,
        labelled with its serial, and never the state of the bay.
        """
        job.final = summary
        job.settled.set()
        if job.bay is not None:
            slot = self.slots.get(job.bay)
            if slot is not None and slot.job is job:
                slot.job = None
                if summary is None:
                    return
                if slot.seating is not None and slot.drive is not None and slot.seating.number == job.seating:
                    slot.outcome, slot.notice = summary, None
                    # the worker has exited: from here on, any write to the drive is someone else's
                    slot.written_at_outcome = sectors_written(slot.seating.name)
                else:
                    serial = job.expected_serial
                    slot.previous = {**summary, "serial": serial,
                                     "label": f"previous drive S/N {serial or '?'}: {summary.get('outcome')}"}

    def _signal(self, job: ActiveJob, number: int) -> None:
        process = job.process
        if process is None:
            return
        try:
            process.send_signal(number)
        except (ProcessLookupError, OSError):
            pass

    # services for the API ------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Everything ``status`` and ``watch`` show."""
        with self.lock:
            self._recheck_media()  # a resize between two ticks is never shown as sanitised either
            bays: list[dict[str, Any]] = []
            for slot in self.slots.values():
                job = slot.job.to_json() if slot.job else None
                history = slot.history
                if history is None and slot.drive is not None:
                    restart = self._interrupted_for(slot, take=False)  # interrupted by the last restart
                    if restart is not None:
                        history = {**_job_summary(restart), "serial": restart.drive.serial}
                view = derive_view(present=slot.drive is not None, job=job, outcome=slot.outcome,
                                   protected=slot.protected, waiting=slot.waiting_until_free, history=history,
                                   notice=slot.notice)
                bays.append({
                    "name": slot.bay.name, "auto_start": slot.bay.auto_start, "profile": slot.bay.profile,
                    "state": view.state.value, "reason": view.reason, "needs_rerun": view.needs_rerun,
                    "modified_since_job": slot.notice is not None,
                    "pull": view.advice.value, "safe_to_pull": view.advice is PullAdvice.SAFE,
                    "drive": ({"device": slot.drive.device_path, **(slot.identity.to_json() if slot.identity else {}),
                               "protected": list(slot.protected)} if slot.drive else None),
                    "seating": slot.seating.to_json() if slot.seating else None,
                    "job": job,
                    "outcome": slot.outcome,
                    "previous": slot.previous,
                    "history": history,
                    "asset_tag": (slot.job.asset_tag if slot.job else None) or (slot.outcome or {}).get("asset_tag"),
                    "pending_intake": None,
                })
            running = sum(1 for job in self.active.values() if job.process is not None)
            data: dict[str, Any] = {"station_id": self.config.station_id, "organisation": (
                        self.config.organisation.name if self.config.organisation is not None else None),
                    "pid": os.getpid(), "uptime_seconds": round(time.time() - self.started_at, 1),
                    "max_parallel_jobs": self.config.max_parallel_jobs, "running": running,
                    "queued": len(self.queue), "stopping": self.stopping.is_set(), "bays": bays,
                    "unbayed_drives": list(self.unbayed.values())}
        signed_in = self._signed_in()
        for bay in bays:
            # who an auto-start job of this bay would be attributed to now (agent.operators)
            bay["operator"] = next((item.to_json() for item in signed_in if item.covers(bay["name"])), None)
            intake = self.store.pending(bay["name"])
            bay["pending_intake"] = intake.to_json() if intake else None
            if bay["asset_tag"] is None and intake is not None and bay["drive"] is not None and (
                    intake.claimed_serial in (None, bay["drive"].get("serial"))):
                bay["asset_tag"] = intake.asset_tag  # the link this drive's next job will carry
            drive = bay["drive"]
            if drive and drive.get("serial"):
                bay["drive_route"] = self.store.route(drive.get("model", ""), drive["serial"], drive.get("size_bytes"))
        return data

    def _signed_in(self) -> list[SignIn]:
        """Everyone signed in now, newest first (empty when the registry cannot be read: status still answers)."""
        try:
            return signed_in_now(self.store.registry)
        except (sqlite3.Error, ValueError) as exc:
            self.log.warning("cannot read operator sign-ins", extra={"fields": {"error": str(exc)}})
            return []

    def start_bay(self, name: str, profile: str | None, operator: str, serial: str | None = None, *,
                  caller_uid: int | None = None, console: ConsoleAccount | None = None) -> dict[str, Any]:
        """Queue a job for the drive in bay ``name`` (explicit operator command).

        ``caller_uid`` (the API's ``SO_PEERCRED``) attributes the job to the person signed in for that
        uid, or to nobody, said so (agent.operators); without it ``operator`` is recorded as given.
        ``console``: the web account the web console acts for, honoured only from the console's own uid
        (:meth:`console_stamp`).

        The drive is identified again now, and the job is bound to that serial: the worker refuses
        to write if the drive it opens is another one. ``serial``, when the operator gives it, must
        match — the operator confirms the drive they are looking at, not just a bay.
        """
        if self.stopping.is_set():
            raise RequestError("shutting_down", "the station is shutting down", 503)
        if name not in self.slots:
            raise RequestError("not_found", f"no bay {name!r}", 404)
        if profile is not None:
            load_profile(profile)  # ProfileError → 400 before anything is queued
        stamp = self._stamp(VIA_API, caller_uid, name) if caller_uid is not None else None
        if console is not None:
            stamp = self.console_stamp(console, caller_uid)
            operator = console_operator(stamp)
        elif stamp is not None:
            operator = stamp.display()
        with self.lock:
            drive = self.slots[name].drive
        reasons = self._assess(drive.device_path) if drive is not None else ()  # now, not as it was at insertion
        with self.lock:
            slot = self.slots[name]
            if slot.drive is None:
                raise RequestError("no_drive", f"bay {name} is empty")
            if slot.drive is drive:
                slot.protected = reasons
            if slot.job is not None:
                raise RequestError("bay_busy", f"bay {name} already has a job ({slot.job.job_id or 'queued'})")
            try:
                identity = self.identify(slot.drive.device_path)
            except AgentError as exc:
                raise RequestError("drive_unidentified",
                                   f"bay {name}: cannot identify the drive ({exc.message}); re-seat it") from None
            if serial is not None and serial.strip().upper() != identity.serial.strip().upper():
                raise RequestError("serial_mismatch", f"bay {name} holds serial {identity.serial}, not {serial}")
            slot.identity = identity
            if slot.protected:
                reason = "; ".join(slot.protected)
                self._refuse_on_bay(slot, operator, "drive_protected", reason)
                raise RequestError("drive_protected", f"bay {name}: refused: {reason}")
            if console is not None and profile is not None:
                # the console offers the bay's profile, else the media's default (agent.web.station.allowed_profiles)
                # for the drive its page showed; checked again here against the drive identified now, so a drive
                # swapped meanwhile (or a console process not keeping to its page) never gets a weaker profile
                offered = slot.bay.profile or self.config.default_profiles.get(identity.media)
                if profile != offered:
                    reason = (f"profile {profile} is not offered for {identity.media} media in bay {name} "
                              f"(the console may start {offered or 'nothing'} here)")
                    self._refuse_on_bay(slot, operator, "profile_not_allowed", reason)
                    raise RequestError("profile_not_allowed", f"bay {name}: refused: {reason}")
            chosen = self.config.profile_for(slot.bay, identity.media, profile)
            chosen_profile = load_profile(chosen)
            if identity.media not in chosen_profile.media:  # what the worker would refuse: say so now
                reason = (f"profile {chosen} does not take {identity.media} media "
                          f"(it takes: {', '.join(chosen_profile.media)})")
                self._refuse_on_bay(slot, operator, "profile_media", reason)
                raise RequestError("profile_media", f"bay {name}: refused: {reason}")
            job = self._enqueue(slot, chosen, operator, stamp=stamp)
        return self._await_start(job, {"bay": name, "profile": chosen, "operator": operator,
                                       "operator_named": stamp.named if stamp is not None else True,
                                       "device": job.device_path, "serial": identity.serial})

    def _refuse_on_bay(self, slot: BaySlot, operator: str, code: str, reason: str) -> None:
        """Under the lock: ``start`` refused this drive: the bay and the log say why (nothing was touched)."""
        slot.outcome = {"job_id": None, "outcome": "refused", "error_code": code, "reason": reason,
                        "operator": operator, "note": "refused by start before any job was created"}
        self.log.warning("start refused", extra={"fields": {"bay": slot.bay.name, "operator": operator,
                                                            "code": code, "reason": reason}})

    def _await_start(self, job: ActiveJob, answer: dict[str, Any]) -> dict[str, Any]:
        """``start``'s answer: wait (briefly) until the worker's guard and method choice passed, or it ended.

        A job waiting for a free slot (``max_parallel_jobs``) is answered as queued at once: its
        checks run when it starts, and a refusal then shows in ``status`` and ``watch`` with its reason.
        """
        deadline = time.monotonic() + START_ANSWER_SECONDS
        while not job.settled.wait(0.05):
            with self.lock:
                running = sum(1 for other in self.active.values() if other.process is not None)
                if job in self.queue and running >= self.config.max_parallel_jobs:
                    return {**answer, "queued": True, "job_id": None, "state": "queued"}
            if time.monotonic() >= deadline:
                with self.lock:
                    return {**answer, "queued": job in self.queue, "job_id": job.job_id, "state": job.state}
        final = job.final
        if final is None and job.job_id is None and job.process is None:
            with self.lock:
                dequeued = job not in self.queue
            if dequeued:  # released before it started: the drive was pulled
                raise RequestError("drive_removed",
                                   f"bay {answer['bay']}: the drive was removed before its job started")
        if final is not None and final.get("outcome") not in ("sanitised",):
            reason = final.get("reason") or final.get("message") or final.get("outcome")
            code = "refused" if final.get("outcome") == "refused" else "job_" + str(final.get("outcome"))
            raise RequestError(code, f"bay {answer['bay']}: job {final.get('job_id') or '-'} "
                               f"{final.get('outcome')}: {reason}")
        with self.lock:
            return {**answer, "queued": False, "job_id": job.job_id, "state": job.state if final is None
                    else str(final.get("outcome"))}

    def claims(self, dev_t: int | None, diskseq: int | None, name: str | None) -> dict[str, Any]:
        """Which bay (if any) holds the medium with this kernel identity (for the CLI's ``wipe``)."""
        with self.lock:
            for slot in self.slots.values():
                seating = slot.seating
                if seating is None or slot.drive is None:
                    continue
                if dev_t is not None and seating.dev_t is not None:
                    same = dev_t == seating.dev_t
                else:
                    same = name is not None and name == seating.name
                # a diskseq that differs only means the bay's medium changed and the event is on its way:
                # the node is still a bay's node, so it stays claimed (never a window for a CLI wipe)
                if same or (slot.job is not None and name is not None and slot.job.name == name):
                    return {"claimed": True, "bay": slot.bay.name, "device": slot.drive.device_path,
                            "job_id": slot.job.job_id if slot.job else None}
        return {"claimed": False, "bay": None}

    def cancel(self, job_id: str, operator: str) -> dict[str, Any]:
        """Cancel a queued or running job by id or id prefix (a running one ends ``interrupted``)."""
        if not job_id:
            raise RequestError("bad_request", "job id is empty", 400)
        with self.lock:
            queued = [job for job in self.queue if job.job_id and job.job_id.startswith(job_id)]
            matches = queued + [job for job in self.active.values() if job.job_id and job.job_id.startswith(job_id)]
            if len(matches) > 1:
                raise RequestError("ambiguous", f"job id prefix {job_id!r} is ambiguous", 400)
            if matches:
                return self._cancel(matches[0], operator)
        registry = self.app.open_store()
        try:
            row = registry.job(job_id)
        except ConfigError:
            raise RequestError("not_found", f"no job {job_id!r}", 404) from None
        finally:
            registry.close()
        raise RequestError("not_active", f"job {row.id} is {row.state}: nothing to cancel")

    def cancel_bay(self, name: str, operator: str, *, caller_uid: int | None = None,
                   console: ConsoleAccount | None = None) -> dict[str, Any]:
        """Cancel whatever job bay ``name`` has: queued (it has no job id yet), starting or running."""
        if console is not None:
            operator = console_operator(self.console_stamp(console, caller_uid))
        if name not in self.slots:
            raise RequestError("not_found", f"no bay {name!r}", 404)
        with self.lock:
            job = self.slots[name].job
            if job is None:
                raise RequestError("no_job", f"bay {name} has no job to cancel")
            return {"bay": name, **self._cancel(job, operator)}

    def _cancel(self, job: ActiveJob, operator: str) -> dict[str, Any]:
        """Under the lock: dequeue a job not started yet, or tell a running worker to stop."""
        fields = {"job_id": job.job_id, "bay": job.bay, "operator": operator}
        if job.resume is not None:
            raise RequestError("not_cancellable", f"job {job.job_id}: a firmware sanitize is in progress inside the "
                               "drive and cannot be stopped; the station is waiting for it to finish")
        job.cancelled_by = operator
        if job in self.queue:
            self.queue.remove(job)
            self._release(job, job.cancelled_summary())
            self.log.info("queued job cancelled", extra={"fields": fields})
            return {"job_id": job.job_id, "cancelled": True, "state": "dequeued"}
        self._signal(job, signal.SIGTERM)  # before its first write: ``interrupted``, nothing touched
        self.log.info("job cancelled", extra={"fields": fields})
        return {"job_id": job.job_id, "cancelled": True, "state": "cancelling"}

    # the web console ------------------------------------------------------------------------
    def _check_console(self, caller_uid: int | None) -> None:
        """Refuse (403) unless ``caller_uid`` is the ``[web] console_user``'s: only the console speaks for accounts."""
        user = self.config.web_console_user
        if user is None:
            raise RequestError("forbidden", "this station names no web console ([web] console_user): "
                               "no call may act for a web account", 403)
        try:
            console_uid = pwd.getpwnam(user).pw_uid
        except KeyError:
            raise RequestError("forbidden", f"[web] console_user {user!r} is no user here", 403) from None
        if caller_uid != console_uid:
            who = f"uid {caller_uid} ({user_name(caller_uid)})" if caller_uid is not None else "an unknown caller"
            self.log.warning("console impersonation refused", extra={"fields": {"caller_uid": caller_uid}})
            raise RequestError("forbidden", f"{who} is not the web console's user {user}: it may not act "
                               "for a web account", 403)

    def console_stamp(self, console: ConsoleAccount, caller_uid: int | None) -> OperatorStamp:
        """Whom a console call is attributed to: the web account it names, checked, with the console's uid."""
        self._check_console(caller_uid)
        assert caller_uid is not None
        try:
            name, title = check_text("name", console.account), check_text("title", console.title)
        except OperatorError as exc:
            raise RequestError("bad_request", exc.message, 400) from None
        return OperatorStamp(name=name, title=title, uid=caller_uid, via=VIA_WEB)

    def console_audit(self, kind: str, subject: str, data: dict[str, Any], *, caller_uid: int) -> dict[str, Any]:
        """Append the web console's ``web-*`` entry (a sign-in, an action) to the station's audit chain."""
        self._check_console(caller_uid)
        if not CONSOLE_KIND.fullmatch(kind):
            raise RequestError("bad_request", f"audit kind {kind[:40]!r}: the console writes web-… entries only", 400)
        registry = self.app.open_store()
        try:
            entry = registry.audit.append(kind, subject, {**data, "console_uid": caller_uid}, at=registry.clock())
        except ValueError as exc:  # NaN and the like: not canonical JSON
            raise RequestError("bad_request", f"audit data: {exc}", 400) from None
        finally:
            registry.close()
        return {"seq": entry.seq, "kind": entry.kind, "hash": entry.hash}

    def intake(self, bay: str, asset_tag: str, host_serial: str | None, make: str | None, model: str | None,
               operator: str) -> dict[str, Any]:
        """Link the next drive in ``bay`` to its host device."""
        if bay not in self.slots:
            raise RequestError("not_found", f"no bay {bay!r}", 404)
        if not asset_tag.strip():
            raise RequestError("bad_request", "asset tag is empty", 400)
        # what goes on the next drive's certificate is checked now, not after that drive is wiped (M15)
        for label, value in (("asset tag", asset_tag), ("host serial", host_serial), ("make", make),
                             ("model", model)):
            problem = certificate_text_problem(value) if value is not None else None
            if not problem and label == "asset tag":  # one label, one spelling: never a second record in disguise
                problem = asset_tag_problem(asset_tag)
            if problem:
                raise RequestError("bad_request", f"{label}: {problem} (it is printed on the certificate)", 400)
        return self.store.add_intake(bay, asset_tag, host_serial, make, model, operator).to_json()

    def sign_in(self, name: str, title: str, bays: tuple[str, ...] | None, shift_hours: float, *,
                caller_uid: int) -> dict[str, Any]:
        """Sign ``name`` in for the socket caller's own uid (``SO_PEERCRED``): how an operator who is not
        root signs in (``operator sign-in`` writes the registry directly only as root)."""
        unknown = [bay for bay in bays or () if bay not in self.slots]
        if unknown:
            raise RequestError("not_found", f"no bay {unknown[0]!r} at this station", 404)
        # a Registry of its own on this API thread: safe since a second open in the daemon's process
        # no longer reads the file outside SQLite (that dropped the daemon's locks: "disk I/O error")
        registry = self.app.open_store()
        try:
            return Operators(registry).sign_in(name, title, caller_uid, bays=bays, shift_hours=shift_hours).to_json()
        except OperatorError as exc:
            raise RequestError("bad_request", exc.message, 400) from None
        finally:
            registry.close()

    def sign_out(self, *, caller_uid: int) -> dict[str, Any]:
        """End the socket caller's own sign-in (never another uid's: that is root's, on the station)."""
        registry = self.app.open_store()
        try:
            ended = Operators(registry).sign_out(uid=caller_uid, by_uid=caller_uid)
        except OperatorError as exc:
            raise RequestError("not_found", exc.message, 404) from None
        finally:
            registry.close()
        return {"signed_out": [entry.to_json() for entry in ended]}

    def jobs(self, limit: int) -> dict[str, Any]:
        """Recent jobs from the registry."""
        registry = self.app.open_store()
        try:
            return {"jobs": [row.to_json() for row in registry.jobs(limit)]}
        finally:
            registry.close()

    def job(self, job_id: str) -> dict[str, Any]:
        """One job with its journal."""
        registry = self.app.open_store()
        try:
            try:
                row = registry.job(job_id)
            except ConfigError as exc:
                raise RequestError("not_found", exc.message, 404) from None
            return {**row.to_json(), "events": registry.events(row.id)}
        finally:
            registry.close()

    def _status_line(self) -> str:
        with self.lock:
            running = sum(1 for job in self.active.values() if job.process is not None)
            drives = sum(1 for slot in self.slots.values() if slot.drive is not None)
            return f"{running} job(s) running, {len(self.queue)} queued, {drives}/{len(self.slots)} bays occupied"
