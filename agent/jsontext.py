"""JSON from outside (API bodies, saved tool output): bounded in nesting depth before it is parsed.

Python's ``json`` parses arrays and objects recursively: ``[[[[…]]]]`` ten thousand deep raises
RecursionError, which no caller expects. The depth is counted here first, on the raw text, by a
scanner that knows strings (a ``[`` inside ``"…"`` is not nesting) and never recurses itself.
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_DEPTH = 32


class JsonInputError(ValueError):
    """The text is not acceptable JSON; ``reason`` is a short stable word for it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def json_depth(text: str, limit: int = MAX_JSON_DEPTH) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text, counting stops once past ``limit``."""
    depth = deepest = 0
    in_string = escaped = False
    for character in text:
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif character in "]}":
            depth -= 1
    return deepest


def parse_json(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON bytes (strict UTF-8) or text, refusing nesting deeper than ``limit``.

    Raises only :class:`JsonInputError` (reason ``not_utf8``, ``too_deep`` or ``not_json``)."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonInputError("not_utf8", f"not UTF-8 (byte {exc.start})") from None
    else:
        text = raw
    if json_depth(text, limit) > limit:
        raise JsonInputError("too_deep", f"nested more than {limit} levels deep")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: cannot happen within the limit; kept as a net
        raise JsonInputError("not_json", f"not valid JSON: {exc}") from None
