"""Text surfaces: whatever a drive or a file name says is shown, never obeyed by the terminal."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.cli.output import printable
from agent.cli.station_commands import _bay_cells


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_printable_output_has_no_control_characters_and_keeps_printable_text(text: str) -> None:
    shown = printable(text)
    assert shown.isprintable()  # no C0/C1/ESC/DEL, no bidi or other format characters, no separators
    if text.isprintable():
        assert shown == text  # ordinary text (any script) is left alone


def test_status_cells_escape_what_a_drive_reports() -> None:
    hostile = "\x1b[1A\x1b[2K\rSamsung\u202e [red]sanitised[/]"
    bay = {"name": "bay-1", "drive": {"device": "/dev/sdb", "model": hostile, "serial": hostile}, "job": None,
           "last": {"job_id": "ab12", "method": hostile, "outcome": "sanitised"}}
    cells = _bay_cells(bay)
    for value in cells.values():
        assert value.isprintable() and "\x1b" not in value
    assert "\\x1b[1A" in cells["drive"]
