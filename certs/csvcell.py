"""The one CSV-injection rule, for the station's tables (``jobs --csv``) and the partners' manifest CSV.

Here in :mod:`certs` (which imports nothing from the station agent) so both sides share it; it
imports nothing itself, so ``jobs --csv`` loads no PDF library for it.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")
"""A cell starting with one of these is prefixed with an apostrophe: a spreadsheet would otherwise run
it as a formula (CSV injection, OWASP). The PDF and JSON keep the value as recorded."""


def neutralise_formula(text: str) -> str:
    """``text`` as a CSV cell a spreadsheet shows as text (a ``'`` before a leading formula character).

    Judged as a spreadsheet may read it: after leading white space (some trim it on import) and with full-width
    forms folded (NFKC: a full-width ``=``, U+FF1D, is taken for ``=`` by some input methods and locales)."""
    import unicodedata  # here, not at the top: the module imports nothing (jobs --csv stays light)

    folded = unicodedata.normalize("NFKC", text).lstrip(" \u00a0\u3000")
    return f"'{text}" if text.startswith(FORMULA_STARTS) or folded.startswith(FORMULA_STARTS) else text


def table_csv(columns: tuple[tuple[str, str], ...] | list[tuple[str, str]], rows: list[dict[str, str]]) -> bytes:
    """``rows`` as CSV bytes (RFC 4180, UTF-8, CRLF, a heading row of ``columns``' headings), each cell neutralised."""
    import csv
    import io

    output = io.StringIO()
    writer = csv.writer(output, lineterminator="\r\n")
    writer.writerow([heading for _key, heading in columns])
    for row in rows:
        writer.writerow([neutralise_formula(row[key]) for key, _heading in columns])
    return output.getvalue().encode("utf-8")
