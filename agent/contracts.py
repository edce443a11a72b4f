"""Typed contracts shared by the job runner, the daemon and its job workers.

Every value is a :class:`~enum.StrEnum` whose members equal today's strings: a member compares
equal to, hashes like and serialises (``json.dumps``, SQLite) as the bare string, so stored jobs,
journal events and the daemon↔worker JSON are unchanged while mypy catches a misspelt literal.

The daemon↔worker protocol is one request (:class:`WorkerRequest`, one JSON line on the worker's
stdin) and a stream of :data:`WorkerMessage` lines on its stdout. Each dataclass is its own field
list: ``to_json`` and ``from_json`` are derived from it, so the two sides cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, TypeVar

from agent.errors import AgentError


class JobState(StrEnum):
    """A job's state in the registry (``agent.store.registry``)."""

    CREATED = "created"
    CHECKING = "checking"
    RUNNING = "running"
    VERIFYING = "verifying"
    SANITISED = "sanitised"
    FAILED = "failed"
    REFUSED = "refused"
    INTERRUPTED = "interrupted"

    @property
    def final(self) -> bool:
        """The job ended (nothing more happens to it)."""
        return self in FINAL_JOB_STATES


FINAL_JOB_STATES = frozenset({JobState.SANITISED, JobState.FAILED, JobState.INTERRUPTED, JobState.REFUSED})
CERTIFIABLE_STATES = (JobState.SANITISED, JobState.FAILED)
"""Only these get a document: a certificate (sanitised) or a failure report (failed)."""


class Route(StrEnum):
    """Where a drive goes after its job."""

    REUSE = "reuse"
    DESTROY = "destroy"
    HOLD = "hold"


class Phase(StrEnum):
    """The phase a job's progress reports (the method's, then read-back verification)."""

    OVERWRITE = "overwrite"
    SANITIZE = "sanitize"
    SECURITY_ERASE = "security-erase"
    FORMAT = "format"
    VERIFY = "verify"


class WorkerEvent(StrEnum):
    """The ``event`` of a line a job worker writes to the daemon."""

    CREATED = "created"
    PROGRESS = "progress"
    DONE = "done"
    ERROR = "error"
    LEFT_RUNNING = "left-running"
    CERTIFICATE_ERROR = "certificate-error"
    NOT_RESUMABLE = "not-resumable"


class ContractError(AgentError):
    """A request or message that does not have the contract's shape."""

    code = "bad_worker_message"
    http_status = 400


_T = TypeVar("_T")


def _build(cls: type[_T], data: Mapping[str, Any], what: str) -> _T:
    """``cls`` from its JSON fields: unknown keys ignored, a missing required one is a ContractError."""
    if not isinstance(data, Mapping):
        raise ContractError(f"{what}: expected a JSON object, got {type(data).__name__}")
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not item.init:
            continue
        if item.name in data:
            values[item.name] = data[item.name]
        elif item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
            raise ContractError(f"{what}: missing field {item.name!r}")
    return cls(**values)


@dataclass(frozen=True)
class WorkerRequest:
    """What the daemon asks one job worker to do: a new job on a device, or ``resume`` an orphaned one."""

    state_dir: str
    device_path: str
    profile: str
    operator: str
    bay: str | None = None
    expected_serial: str | None = None
    asset_tag: str | None = None
    host: dict[str, Any] | None = None
    resume: str | None = None
    operator_stamp: dict[str, Any] | None = None
    """agent.operators.OperatorStamp fields: who the job is attributed to."""
    certificate_settings: dict[str, Any] | None = None
    """agent.jobs.certify.CertificateSettings.to_json(), built by the daemon from its configuration."""
    seating: dict[str, Any] | None = None
    """The medium the bay saw seated (``dev_t``, ``diskseq``): the job is bound to it."""
    transport: str = "real"
    """The transport specification the worker opens drives with (agent.app.transport_factory)."""
    station_id: str | None = None
    """The daemon's configured station id."""
    parent_pid: int | None = None
    """Set by the subprocess launcher: the worker dies with this process."""
    server_pid: int | None = None
    """Set by the fork server: the forked worker dies with it."""

    def to_json(self) -> dict[str, Any]:
        """The JSON object written to the worker's stdin."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkerRequest:
        """The worker's side; a request without its required fields is a ContractError."""
        return _build(cls, data, "worker request")


@dataclass(frozen=True)
class _Message:
    event: ClassVar[WorkerEvent]
    job_id: str | None

    def to_json(self) -> dict[str, Any]:
        """The JSON line: ``event`` first, then the fields."""
        return {"event": self.event.value, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class Created(_Message):
    """The worker created (or adopted, for a resume) its job."""

    event: ClassVar[WorkerEvent] = WorkerEvent.CREATED


@dataclass(frozen=True)
class Progress(_Message):
    """Bytes done of the current phase."""

    event: ClassVar[WorkerEvent] = WorkerEvent.PROGRESS
    phase: str
    done: int
    total: int


@dataclass(frozen=True)
class Done(_Message):
    """The job reached its outcome (and got its certificate, when ``certificate`` is a path)."""

    event: ClassVar[WorkerEvent] = WorkerEvent.DONE
    state: str
    reason: str | None = None
    error_code: str | None = None
    route: str | None = None
    method: str | None = None
    certificate: str | None = None


@dataclass(frozen=True)
class Error(_Message):
    """The worker could not run the job (``error``: ``AgentError.to_json()``)."""

    event: ClassVar[WorkerEvent] = WorkerEvent.ERROR
    error: dict[str, Any]


@dataclass(frozen=True)
class LeftRunning(_Message):
    """Shutdown: a firmware sanitize is left running in the drive for the next daemon to resume."""

    event: ClassVar[WorkerEvent] = WorkerEvent.LEFT_RUNNING


@dataclass(frozen=True)
class CertificateFailed(_Message):
    """The job's outcome stands, but its certificate was not issued."""

    event: ClassVar[WorkerEvent] = WorkerEvent.CERTIFICATE_ERROR
    error: dict[str, Any]


@dataclass(frozen=True)
class NotResumable(_Message):
    """The orphaned job had no sanitize in progress after all (or another drive is there)."""

    event: ClassVar[WorkerEvent] = WorkerEvent.NOT_RESUMABLE


WorkerMessage = Created | Progress | Done | Error | LeftRunning | CertificateFailed | NotResumable
MESSAGES: dict[WorkerEvent, type[WorkerMessage]] = {
    kind.event: kind for kind in (Created, Progress, Done, Error, LeftRunning, CertificateFailed, NotResumable)
}
OUTCOME_MESSAGES = (Done, Error, LeftRunning, NotResumable)
"""The messages the daemon keeps as a worker's outcome. ``NotResumable`` (a resumed job whose drive has no
sanitize in progress) was missing here until the contracts were typed, so the daemon recorded such a job as
failed ("job worker exited with status 0") instead of interrupted and started again in its auto-start bay."""


def message_from_json(data: Mapping[str, Any]) -> WorkerMessage:
    """One worker line as its message; an unknown event or a missing field is a ContractError."""
    if not isinstance(data, Mapping):
        raise ContractError(f"worker message: expected a JSON object, got {type(data).__name__}")
    try:
        kind = MESSAGES[WorkerEvent(str(data.get("event")))]
    except ValueError:
        raise ContractError(f"worker message: unknown event {data.get('event')!r}") from None
    message = _build(kind, data, f"worker message {kind.event.value}")
    if isinstance(message, Progress):
        try:
            message = dataclasses.replace(message, done=int(message.done), total=int(message.total))
        except (TypeError, ValueError):
            raise ContractError("worker message progress: done and total must be integers") from None
    return message
