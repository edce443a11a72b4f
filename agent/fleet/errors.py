"""Errors of the fleet registry (part of the one error tree: agent.errors)."""

from __future__ import annotations

from agent.errors import AgentError, ConfigError


class FleetUnavailable(AgentError):
    """The fleet (its database, or the service) cannot be reached or refused the request now: nothing is
    lost, try again later (exit 1)."""

    code = "fleet_unavailable"
    exit_code = 1
    http_status = 400  # what the station API's fallback gave it (it never crosses that API)


class FleetConfigError(ConfigError):
    """The fleet is configured wrongly here: a bad address, missing or unsafe TLS files, a bad listen address."""

    code = "bad_fleet_config"


class FleetInputError(AgentError):
    """Input to the fleet (an asset register, an API request) is invalid; ``problems`` lists each, located."""

    code = "bad_fleet_input"
    http_status = 400  # what the station API's fallback gave it (it never crosses that API)

    def __init__(self, message: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


class FleetSchemaError(ConfigError):
    """The fleet database's schema is newer than this program or not a fleet database."""

    code = "fleet_schema"
