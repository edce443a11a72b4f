"""The one error tree of wipe-agent.

::

    AgentError                    code "internal"
     ├── ConfigError              code "bad_config"     station config or CLI input is wrong
     ├── ProfileError             code "bad_profile"    a wipe profile failed validation
     ├── DriveError               code "drive_error"
     │    ├── DriveNotFound       code "drive_not_found"
     │    ├── DriveBusy           code "drive_busy"      opened elsewhere, O_EXCL refused
     │    ├── DriveProtected      code "drive_protected" the guard refused it (system disk, mounted…)
     │    ├── DriveFrozen         code "drive_frozen"    ATA security/sanitize frozen
     │    ├── DriveRemoved        code "drive_removed"   disappeared while a job ran
     │    ├── MediaError          code "media_error"     the device failed an I/O (route: destroy)
     │    ├── MediumChanged       code "medium_changed"  another medium, size or identity under the job (hold)
     │    └── NotSupported        code "not_supported"   no method of the profile applies
     ├── CommandError             code "command_failed"  a device command failed (opcode, status, sense)
     ├── VerificationFailed       code "verification_failed"
     ├── JobInterrupted           code "interrupted"
     └── CertificateError         code "certificate_error" (the certs package has its own twin)

Every error carries a short stable ``code`` that the CLI's ``--json`` output and the API return.
OSError from the kernel is mapped at the transport boundary (``raise ... from exc``).
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error wipe-agent raises on purpose."""

    code = "internal"
    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_json(self) -> dict[str, str]:
        """The stable error object used by ``--json`` output and the API."""
        return {"code": self.code, "message": self.message}


class ConfigError(AgentError):
    """Station configuration or command-line input is invalid."""

    code = "bad_config"


class ProfileError(AgentError):
    """A wipe profile is malformed: unknown key, unknown method, wrong type or impossible value."""

    code = "bad_profile"


class DriveError(AgentError):
    """Something about a drive prevents the job."""

    code = "drive_error"


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

    def __init__(self, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.offset = offset


class MediumChanged(DriveError):
    """The medium the job is bound to changed (diskseq, size, identity, loop backing): held, never certified."""

    code = "medium_changed"
    exit_code = 1
    route = "hold"

    def __init__(self, message: str, changes: tuple[str, ...] = (), *, written: bool = True) -> None:
        super().__init__(message)
        self.changes = changes
        self.written = written  # False: found before the first write, the job is refused rather than failed


class NotSupported(DriveError):
    """No method of the profile applies to this drive (the reasons say why for each)."""

    code = "not_supported"


class CommandError(AgentError):
    """A device command failed. Fields are typed so the policy can react to sense data."""

    code = "command_failed"
    exit_code = 1

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


class JobInterrupted(AgentError):
    """The job was stopped (signal, cancel, shutdown) before it finished."""

    code = "interrupted"
    exit_code = 1


class CertificateError(AgentError):
    """A certificate could not be issued."""

    code = "certificate_error"
