"""The one error the capability parsers raise.

It lives here rather than in :mod:`agent.errors` because the parsers are the only code that
produces it; it still joins the project's single error tree through :class:`AgentError`.
"""

from __future__ import annotations

from agent.errors import AgentError


class IdentifyParseError(AgentError):
    """Raw IDENTIFY / Identify / SCSI data is short, malformed or of another kind.

    ``code`` is ``"bad_dump"`` so ``inspect --dump --json`` and the API can report it.
    """

    code = "bad_dump"
    http_status = 400
