"""Errors of the reuse layer (subclasses of the agent's one error tree)."""

from __future__ import annotations

from agent.errors import AgentError, ConfigError


class SchemeError(AgentError):
    """A reuse scheme file is malformed: unknown key, wrong type or a rule the standards forbid."""

    code = "bad_scheme"
    http_status = 400


class ReuseInputError(ConfigError):
    """Bad input to a reuse command (unknown asset, job or item): nothing was changed."""

    code = "bad_input"


class ReuseRefused(AgentError):
    """The request is refused (e.g. an asset not eligible for a manifest); the reasons say why."""

    code = "refused"
    http_status = 409  # the station relays a refused job as ``refused`` 409; reuse refusals never reach the API

    def __init__(self, message: str, reasons: tuple[str, ...] = ()) -> None:
        # one line for people: the reasons follow the message
        super().__init__(f"{message}: {'; '.join(reasons)}" if reasons else message)
        self.summary = message
        self.reasons = reasons

    def to_json(self) -> dict[str, object]:  # type: ignore[override]
        """The error object with the reasons."""
        return {"code": self.code, "message": self.summary, "reasons": list(self.reasons)}
