"""The one CSV-injection rule, for the station's tables (``jobs --csv``) and the partners' manifest CSV.

Here in :mod:`certs` (which imports nothing from the station agent) so both sides share it; it
imports nothing itself, so ``jobs --csv`` loads no PDF library for it.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
"""A cell starting with one of these is prefixed with an apostrophe: a spreadsheet would otherwise run
it as a formula (CSV injection, OWASP). The PDF and JSON keep the value as recorded."""


def neutralise_formula(text: str) -> str:
    """``text`` as a CSV cell a spreadsheet shows as text (a ``'`` before a leading formula character)."""
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text
