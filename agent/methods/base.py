"""What every sanitisation method is: a name, options, check() → estimate() → run(context).

``check`` raises before anything is touched; ``run`` cleans up after itself on failure. The job
runner commits the journal *before* calling ``run`` (see ``agent.jobs.runner``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from agent.discovery.identity import DriveIdentity
from agent.errors import NotSupported
from agent.transport.block import BlockDevice
from agent.verify.expectation import Expectation
from agent.vocabulary import MEDIA


class MethodKind(StrEnum):
    """Where a method's work happens: the drive's firmware (one command, may outlive the station's
    process), or the host writing every LBA itself."""

    FIRMWARE = "firmware"
    HOST = "host"


class Level(StrEnum):
    """NIST SP 800-88 sanitisation levels."""

    CLEAR = "clear"
    PURGE = "purge"
    DESTROY = "destroy"

    def at_least(self, other: Level) -> bool:
        """Whether this level meets ``other`` (Destroy meets Purge, Purge meets Clear)."""
        order = (Level.CLEAR, Level.PURGE, Level.DESTROY)
        return order.index(self) >= order.index(other)


class Technique(StrEnum):
    """How a method sanitises, as a certificate prints it (NIST SP 800-88 Rev. 1, Table A's columns)."""

    OVERWRITE = "overwrite"
    CRYPTO_ERASE = "crypto erase"
    BLOCK_ERASE = "block erase"
    OTHER = "other"


@dataclass(frozen=True)
class Target:
    """The drive a method is judged against: identity plus parsed capabilities when known."""

    identity: DriveIdentity
    capabilities: Any | None = None  # agent.drive parser results, when a pass-through probe ran
    transport: Any | None = None  # agent.transport command transport, when one exists


class Blocked(NotSupported):
    """The drive is in a state that forbids the method; nothing was attempted.

    ``state`` names the state (``security-frozen``, ``security-locked``, ``sanitize-frozen``,
    ``sanitize-failed``, ``sanitize-in-progress``, ``passthrough-blocked``), ``instruction`` is what
    the operator must do, ``route`` where the drive goes if the job is refused (``hold`` or
    ``destroy``). The message always ends with the instruction, so it reaches the operator as is.
    The code is ``blocked_<state>``, one registered code per state of :attr:`STATES`.
    """

    STATES: ClassVar[tuple[str, ...]] = (
        "security-frozen", "security-locked", "sanitize-frozen", "sanitize-failed", "sanitize-in-progress",
        "passthrough-blocked", "dco-frozen", "hidden-area-unchecked", "hidden-area-locked", "kernel-capacity-stale",
    )
    codes: ClassVar[Mapping[str, int]] = {f"blocked_{state.replace('-', '_')}": 400 for state in STATES}
    route: str | None = "hold"

    def __init__(self, state: str, what: str, instruction: str, route: str = "hold") -> None:
        super().__init__(f"{what}: {instruction}")
        self.state = state
        self.instruction = instruction
        self.route = route
        self.carry(f"blocked_{state.replace('-', '_')}")


@dataclass(frozen=True)
class Applicability:
    """``check()``'s verdict when a method applies: the level it achieves here and why."""

    level: Level
    reason: str


@dataclass(frozen=True)
class Reach:
    """What a method declares about itself for the policy and the certificate: its technique, and the
    NIST SP 800-88 level it reaches on each media kind, with the reason recorded for it.

    Declared on the method class (one table per class, by variant), read by ``check()`` on a drive and
    by the registry without building the method; ``check()`` may still refuse, or add what it found on
    the drive to the reason, never change the level."""

    technique: Technique
    levels: Mapping[str, Applicability]
    """By media kind (every one of :data:`agent.vocabulary.MEDIA`)."""

    def __post_init__(self) -> None:
        missing = [media for media in MEDIA if media not in self.levels]
        if missing:
            raise ValueError(f"reach: no level declared for media {', '.join(missing)}")

    @classmethod
    def by_media(cls, technique: Technique, magnetic: Applicability, flash: Applicability) -> Reach:
        """One rule for magnetic media (``hdd``) and one for every other kind (flash, and virtual media
        judged as flash: the stricter rules)."""
        return cls(technique, {media: magnetic if media == "hdd" else flash for media in MEDIA})

    def on(self, media: str) -> Applicability:
        """The level and reason on ``media`` (a kind not declared is judged as flash, the stricter)."""
        return self.levels.get(media) or self.levels["ssd"]


# progress(phase, bytes_done, bytes_total)
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class MethodContext:
    """Everything ``run()`` may use; built by the job runner."""

    target: Target
    device: BlockDevice
    progress: ProgressCallback
    cancelled: Callable[[], bool]
    journal: Callable[[str, dict[str, Any]], None]
    # how firmware methods wait between progress polls (tests pass a no-op with an emulator clock)
    sleep: Callable[[float], None] = time.sleep


@dataclass(frozen=True)
class MethodEvidence:
    """What a method found and proved on the drive, as the certificate builder reads it.

    Stored as the job's ``method_json`` (:meth:`to_json`, the shape it always had) and read back by
    :mod:`agent.jobs.certify` (:meth:`from_json`): the three sections a certificate prints as its own
    blocks are fields, everything else is an observation printed as ``key: value``.
    """

    capabilities: Mapping[str, Any] | None = None
    """The drive's capabilities as probed before the command (firmware methods)."""
    hidden_areas: Mapping[str, Any] | None = None
    """HPA/DCO/AMAC found, restored or not checked (``agent.methods.hidden_areas``)."""
    canaries: Mapping[str, Any] | None = None
    """The canary proof: blocks planted before the command and what they read as after it."""
    observations: Mapping[str, Any] = field(default_factory=dict)
    """Every other fact (command, polls, expectation, deallocation …)."""

    SECTIONS: ClassVar[tuple[str, ...]] = ("capabilities", "hidden_areas", "canaries")

    def __post_init__(self) -> None:
        clash = set(self.observations) & set(self.SECTIONS)
        if clash:
            raise ValueError(f"evidence: {sorted(clash)} are sections of their own, not observations")

    def to_json(self) -> dict[str, Any]:
        """The flat JSON object stored on the job (sections absent when None)."""
        data = dict(self.observations)
        for name in self.SECTIONS:
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MethodEvidence:
        """Inverse of :meth:`to_json`; a section that is not an object reads as absent."""
        sections = {name: data[name] for name in cls.SECTIONS if isinstance(data.get(name), Mapping)}
        return cls(observations={key: value for key, value in data.items() if key not in cls.SECTIONS},
                   **sections)


@dataclass(frozen=True)
class MethodOutcome:
    """What a method did: the level, what verification must expect, and the evidence."""

    method: str
    level: Level
    expectation: Expectation | None
    bytes_written: int
    seconds: float
    evidence: MethodEvidence = field(default_factory=MethodEvidence)

    @property
    def details(self) -> dict[str, Any]:
        """The evidence as stored on the job (``MethodEvidence.to_json``)."""
        return self.evidence.to_json()

    @property
    def throughput(self) -> float:
        """Bytes per second written (0 for firmware methods that write nothing from the host)."""
        return self.bytes_written / self.seconds if self.seconds > 0 else 0.0


class Method(Protocol):
    """A sanitisation method (one module each, registered in ``agent.methods.registry``)."""

    name: str
    summary: str
    kind: MethodKind

    @property
    def reach(self) -> Reach:
        """Technique and level by media, as the method's class declares them."""

    def check(self, target: Target) -> Applicability:
        """Raise ``NotSupported``/``DriveFrozen``/… if the method cannot run on ``target``."""

    def estimate(self, target: Target) -> float:
        """Expected duration in seconds."""

    def run(self, context: MethodContext) -> MethodOutcome:
        """Do it; on failure leave the drive in a usable state (e.g. no ATA password left set)."""
