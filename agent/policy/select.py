"""Method selection: walk a profile's ladder, record why each rung was taken or skipped.

Every rung's verdict becomes a :class:`Decision` (its text goes on the certificate). When no rung
applies and one of them was stopped by a blocking drive state (frozen, locked, sanitize failed or
in progress, pass-through blocked by a USB bridge), the refusal leads with that state's operator
instruction and carries its route: "not supported" would send the operator the wrong way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.errors import AgentError, NotSupported
from agent.methods.base import Applicability, Blocked, Level, Method, Target
from agent.policy.profiles import Profile


@dataclass(frozen=True)
class Decision:
    """One candidate method and what the policy concluded about it."""

    method: str
    taken: bool
    reason: str
    level: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form (goes into the job record and onto the certificate)."""
        return {"method": self.method, "taken": self.taken, "level": self.level, "reason": self.reason}


@dataclass(frozen=True)
class Selection:
    """The chosen method, its applicability, and the whole reasoning."""

    method: Method
    applicability: Applicability
    decisions: tuple[Decision, ...]


class NoMethod(NotSupported):
    """No rung of the ladder applies; ``decisions`` says why for each.

    ``blocked`` is the first blocking drive state met (then ``code``, ``route`` and ``instruction``
    come from it), else None.
    """

    def __init__(self, message: str, decisions: tuple[Decision, ...], blocked: Blocked | None = None) -> None:
        super().__init__(message)
        self.decisions = decisions
        self.blocked = blocked
        if blocked is not None:
            self.route = blocked.route
            self.instruction = blocked.instruction
            self.carry(blocked.code)


def select_method(profile: Profile, target: Target) -> Selection:
    """The first step of ``profile`` that applies to ``target`` at the profile's minimum level."""
    decisions: list[Decision] = []
    media = target.identity.media
    if media not in profile.media:
        decision = Decision("-", False, f"profile {profile.name} does not take {media} media")
        raise NoMethod(
            f"profile {profile.name} does not take {media} media (it takes: {', '.join(profile.media)})",
            (decision,),
        )
    blocked: Blocked | None = None
    for step in profile.steps:
        method = step.build()
        try:
            applicability = method.check(target)
        except Blocked as exc:
            blocked = blocked or exc
            decisions.append(Decision(step.method, False, f"blocked ({exc.state}): {exc.message}"))
            continue
        except AgentError as exc:
            decisions.append(Decision(step.method, False, exc.message))
            continue
        if not applicability.level.at_least(profile.minimum_level):
            decisions.append(
                Decision(
                    step.method,
                    False,
                    f"achieves only {applicability.level.value} here ({applicability.reason}); "
                    f"profile needs {profile.minimum_level.value}",
                    applicability.level.value,
                )
            )
            continue
        decisions.append(Decision(step.method, True, applicability.reason, applicability.level.value))
        return Selection(method, applicability, tuple(decisions))
    if profile.minimum_level is Level.PURGE:
        message = "no purge method available for this drive"
    else:
        message = f"no method of profile {profile.name} applies to this drive"
    details = "; ".join(f"{d.method}: {d.reason}" for d in decisions)
    if blocked is not None:
        raise NoMethod(f"{message}: {blocked.message} (ladder: {details})", tuple(decisions), blocked)
    raise NoMethod(f"{message} ({details})", tuple(decisions))
