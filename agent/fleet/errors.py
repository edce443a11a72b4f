"""Errors of the fleet registry (part of the one error tree: agent.errors)."""

from __future__ import annotations

from agent.errors import AgentError, ConfigError


class FleetUnavailable(ConfigError):
    """The fleet database cannot be reached or used (wrong DSN, server down, missing privileges)."""

    code = "fleet_unavailable"


class FleetInputError(AgentError):
    """Input to the fleet (an asset register, an API request) is invalid; ``problems`` lists each, located."""

    code = "bad_fleet_input"

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class FleetSchemaError(ConfigError):
    """The fleet database's schema is newer than this program or not a fleet database."""

    code = "fleet_schema"
