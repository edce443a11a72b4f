"""The one error tree of wipe-agent, and the registry of its codes.

Every error wipe-agent raises on purpose is an :class:`AgentError` and declares, as class
attributes, what each layer needs from it:

``code``         short stable string: the CLI's ``--json`` output, the API and the job record carry it
``exit_code``    the CLI's exit status (2: the request was wrong, 1: the drive or the job failed)
``http_status``  the station API's status for it
``route``        where the drive goes when a job ends on it (None: the runner decides; "hold", "destroy")
``instruction``  the operator's next step (None: the message says it all)

A code names exactly one class: the class whose body declares it, either as its ``code`` or in its
``codes`` table (classes whose code is chosen per instance: API refusals, blocked drive states).
:data:`CODES` is that registry, filled as the classes are defined; a second class declaring a taken
code is a ``TypeError`` at import. A subclass that declares no code reports its parent's (it is that
error, refined: ``NoMethod`` is ``not_supported``). ``tests/unit/core/test_errors.py`` checks that
every raised class and code string in ``agent/`` is registered and that this tree is the registry's.

The tree (``error_tree()`` renders it; ``·`` = the parent's code, ``[n codes]`` = a per-instance table;
modules under ``agent``)::

    AgentError                        internal                 500  exit 2  errors
     ├── ConfigError                  bad_config               400  exit 2  errors
     │    ├── StationUnavailable      daemon_unavailable       400  exit 2  api.client
     │    ├── InStationBay            drive_in_station_bay     409  exit 2  cli.station_commands
     │    ├── FleetConfigError        bad_fleet_config         400  exit 2  fleet.errors
     │    ├── FleetSchemaError        fleet_schema             400  exit 2  fleet.errors
     │    ├── OperatorError           bad_operator             400  exit 2  operators
     │    ├── ReuseInputError         bad_input                400  exit 2  reuse.errors
     │    ├── AccountsError           bad_accounts             400  exit 2  web.accounts
     │    └── WebConfigError          bad_web_config           400  exit 2  web.serve
     ├── ProfileError                 bad_profile              400  exit 2  errors
     ├── DriveError                   drive_error              409  exit 2  errors
     │    ├── DriveNotFound           drive_not_found          409  exit 2  errors
     │    ├── DriveBusy               drive_busy               409  exit 2  errors
     │    ├── DriveProtected          drive_protected          409  exit 2  errors
     │    ├── DriveFrozen             drive_frozen             409  exit 2  errors
     │    ├── DriveRemoved            drive_removed            409  exit 1  errors
     │    ├── MediaError              media_error              400  exit 1  errors
     │    ├── MediumChanged           medium_changed           400  exit 1  errors  route hold
     │    ├── NotSupported            not_supported            400  exit 2  errors
     │    │    ├── Blocked            [10 codes]               400  exit 2  methods.base  route hold
     │    │    └── NoMethod           ·                        400  exit 2  policy.select
     │    └── PasswordCleanupFailed   password_cleanup_failed  400  exit 2  methods.ata_security_erase  route hold
     ├── CommandError                 command_failed           400  exit 1  errors
     │    ├── SanitizeFailed          sanitize_failed          400  exit 1  methods.firmware  route destroy
     │    ├── CommandFailed           ·                        400  exit 1  transport.commands
     │    ├── CommandTimeout          ·                        400  exit 1  transport.commands
     │    ├── PassThroughBlocked      passthrough_blocked      400  exit 1  transport.commands
     │    └── ReplayMiss              ·                        400  exit 1  transport.replay
     ├── VerificationFailed           verification_failed      400  exit 1  errors
     ├── JobInterrupted               interrupted              400  exit 1  errors
     ├── CertificateError             certificate_error        400  exit 2  errors
     ├── RequestRefused               [30 codes]               409  exit 2  errors
     │    ├── ApiError                ·                        400  exit 2  api.server
     │    └── RequestError            ·                        409  exit 2  daemon.station
     ├── RemoteError                  ·                        500  exit 2  api.client
     ├── ContractError                bad_worker_message       400  exit 2  contracts
     ├── IdentifyParseError           bad_dump                 400  exit 2  drive.errors
     ├── FleetInputError              bad_fleet_input          400  exit 2  fleet.errors
     ├── FleetUnavailable             fleet_unavailable        400  exit 1  fleet.errors
     ├── PasswordRejected             password_rejected        400  exit 2  methods.ata_security_erase
     ├── ReuseRefused                 refused                  409  exit 2  reuse.errors
     ├── SchemeError                  bad_scheme               400  exit 2  reuse.errors
     ├── BadQuery                     bad_query                400  exit 2  web.fleet_dashboard
     └── ManifestUnavailable          manifest_unavailable     503  exit 1  web.fleet_partner

The certs package (a separately installable verifier) has its own twin tree and registry,
``certs.errors.CODES``; the two share only ``certificate_error``.
OSError from the kernel is mapped at the transport boundary (``raise ... from exc``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any, ClassVar

CODES: dict[str, type[AgentError]] = {}
"""Every error code → the one class that declares it (its ``code`` or an entry of its ``codes``)."""

_order = itertools.count()


def _register(code: str, owner: type[AgentError]) -> None:
    held = CODES.get(code)
    if held is not None and (held.__module__, held.__qualname__) != (owner.__module__, owner.__qualname__):
        raise TypeError(f"error code {code!r} of {owner.__module__}.{owner.__qualname__} is already "
                        f"{held.__module__}.{held.__qualname__}'s")
    CODES[code] = owner  # the same class defined again (a module reloaded) takes its own code back


def status_of(code: str, default: int = 500) -> int:
    """The HTTP status declared for ``code`` (``default`` for a code no class declares)."""
    owner = CODES.get(code)
    if owner is None:
        return default
    return owner.codes.get(code, owner.http_status)


class AgentError(Exception):
    """Base of every error wipe-agent raises on purpose."""

    code: str = "internal"
    exit_code: int = 2
    http_status: int = 500
    route: str | None = None
    instruction: str | None = None
    codes: ClassVar[Mapping[str, int]] = {}
    """Codes an instance of this class may carry instead of one class code, each with its HTTP status."""
    _rank: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._rank = next(_order)
        own = cls.__dict__
        if "code" in own:
            _register(own["code"], cls)
        for code in own.get("codes", {}):
            _register(code, cls)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def carry(self, code: str) -> None:
        """Give this instance ``code`` (a registered one) and that code's declared HTTP status."""
        self.code = code
        self.http_status = status_of(code, type(self).http_status)

    def to_json(self) -> dict[str, str]:
        """The stable error object used by ``--json`` output and the API."""
        return {"code": self.code, "message": self.message}


CODES[AgentError.code] = AgentError


class ConfigError(AgentError):
    """Station configuration or command-line input is invalid."""

    code = "bad_config"
    http_status = 400


class ProfileError(AgentError):
    """A wipe profile is malformed: unknown key, unknown method, wrong type or impossible value."""

    code = "bad_profile"
    http_status = 400


class DriveError(AgentError):
    """Something about a drive prevents the job."""

    code = "drive_error"
    http_status = 409


class DriveNotFound(DriveError):
    """The named device does not exist or is not a whole-disk block device."""

    code = "drive_not_found"


class DriveBusy(DriveError):
    """The device is in use: an exclusive open was refused."""

    code = "drive_busy"


class DriveProtected(DriveError):
    """The guard refused the device; ``reasons`` lists every reason found."""

    code = "drive_protected"

    def __init__(self, message: str, reasons: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.reasons = reasons


class DriveFrozen(DriveError):
    """ATA security or sanitize is frozen: only a power cycle or hot re-plug clears it."""

    code = "drive_frozen"


class DriveRemoved(DriveError):
    """The drive disappeared while a job was using it."""

    code = "drive_removed"
    exit_code = 1


class MediaError(DriveError):
    """The device failed a read or write: it cannot be proven clean and goes to destruction."""

    code = "media_error"
    exit_code = 1
    http_status = 400  # the API answered every drive code not named ``drive_*`` with 400: kept as it was

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class MediumChanged(DriveError):
    """The medium the job is bound to changed (diskseq, size, identity, loop backing): held, never certified."""

    code = "medium_changed"
    exit_code = 1
    http_status = 400
    route = "hold"

    def __init__(self, message: str, changes: tuple[str, ...] = (), *, written: bool = True) -> None:
        super().__init__(message)
        self.changes = changes
        self.written = written  # False: found before the first write, the job is refused rather than failed


class NotSupported(DriveError):
    """No method of the profile applies to this drive (the reasons say why for each)."""

    code = "not_supported"
    http_status = 400


class CommandError(AgentError):
    """A device command failed. Fields are typed so the policy can react to sense data.

    ``status`` is the device's status byte, never an HTTP status (that is ``http_status``).
    """

    code = "command_failed"
    exit_code = 1
    http_status = 400

    def __init__(
        self,
        message: str,
        *,
        opcode: int | None = None,
        status: int | None = None,
        sense: bytes | None = None,
    ) -> None:
        super().__init__(message)
        self.opcode = opcode
        self.status = status
        self.sense = sense


class VerificationFailed(AgentError):
    """Read-back found data that should not be there."""

    code = "verification_failed"
    exit_code = 1
    http_status = 400


class JobInterrupted(AgentError):
    """The job was stopped (signal, cancel, shutdown) before it finished."""

    code = "interrupted"
    exit_code = 1
    http_status = 400


class CertificateError(AgentError):
    """A certificate could not be issued."""

    code = "certificate_error"
    http_status = 400


JOB_OUTCOMES = ("failed", "interrupted", "cancelled", "error", "created", "checking", "running", "verifying")
"""What a job the station started can end as, besides ``sanitised`` and ``refused``: ``start`` answers ``job_<it>``."""


class RequestRefused(AgentError):
    """The station API or the station refused a request; ``code`` is one of ``codes`` (or relays a class's).

    One table for both layers that answer requests (``agent.api.server.ApiError`` for the HTTP
    envelope, ``agent.daemon.station.RequestError`` for the station's own refusals): a code means
    the same thing, with the same status, whichever layer says it. A refusal that is some class's
    error (``drive_protected``, ``drive_removed``, ``refused``) relays that class's code and status.
    """

    http_status = 409
    codes: ClassVar[Mapping[str, int]] = {
        # the HTTP envelope (agent.api.server)
        "bad_request": 400, "unknown_field": 400, "bad_json": 400, "json_too_deep": 400, "not_utf8": 400,
        "forbidden": 403, "not_found": 404, "method_not_allowed": 405, "payload_too_large": 413,
        "unsupported_media_type": 415, "busy": 503,
        # the station (agent.daemon.station)
        "shutting_down": 503, "ambiguous": 400, "no_drive": 409, "bay_busy": 409, "drive_unidentified": 409,
        "serial_mismatch": 409, "profile_media": 409, "profile_not_allowed": 409, "not_active": 409, "no_job": 409,
        "not_cancellable": 409,
        **{f"job_{outcome}": 409 for outcome in JOB_OUTCOMES},
    }

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.carry(code)
        del status  # the declared status of ``code`` decides; the argument stays for the call sites' sake

    @property
    def status(self) -> int:
        """The HTTP status (the name the API's callers have always read)."""
        return self.http_status


def error_tree() -> str:
    """The tree of every error class defined so far, as this module's docstring draws it."""
    lines: list[str] = []

    def key(cls: type[AgentError]) -> tuple[int, str, int]:
        core = cls.__module__ == __name__
        return (0, "", cls._rank) if core else (1, f"{cls.__module__}.{cls.__qualname__}", 0)

    def walk(cls: type[AgentError], prefix: str, branch: str) -> None:
        own = cls.__dict__
        code = f"[{len(own['codes'])} codes]" if own.get("codes") else own.get("code", "·")
        route = f"  route {cls.route}" if cls.route else ""
        lines.append(f"{branch + cls.__name__:<34}{code:<25}{cls.http_status}  exit {cls.exit_code}  "
                     f"{cls.__module__.removeprefix('agent.')}{route}")
        children = sorted((c for c in cls.__subclasses__() if c.__module__.split(".")[0] == "agent"), key=key)
        for index, child in enumerate(children):
            last = index == len(children) - 1
            walk(child, prefix + ("     " if last else " │   "), prefix + (" └── " if last else " ├── "))

    walk(AgentError, "", "")
    return "\n".join(lines)
