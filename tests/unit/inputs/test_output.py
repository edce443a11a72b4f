"""Text surfaces: whatever a drive or a file name says is shown, never obeyed by the terminal."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from agent.cli.bay_view import bay_row, render_status
from agent.cli.output import printable


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_printable_output_has_no_control_characters_and_keeps_printable_text(text: str) -> None:
    shown = printable(text)
    assert shown.isprintable()  # no C0/C1/ESC/DEL, no bidi or other format characters, no separators
    if text.isprintable():
        assert shown == text  # ordinary text (any script) is left alone


def test_status_and_watch_escape_what_a_drive_reports() -> None:
    hostile = "\x1b[1A\x1b[2K\rSamsung\u202e [red]sanitised[/]"
    bay = {"name": "bay-1", "state": "present", "reason": hostile, "asset_tag": hostile,
           "drive": {"device": "/dev/sdb", "model": hostile, "serial": hostile}, "job": None}
    row = bay_row(bay)
    for value in (row.bay, row.serial, row.label, row.asset, *row.notes):
        assert value.isprintable() and "\x1b" not in value, value
    assert any("\\x1b[1A" in note for note in row.notes)
    data = {"station_id": "s", "running": 0, "queued": 0, "bays": [bay], "unbayed_drives": []}
    console = Console(width=80, record=True, force_terminal=False, color_system=None)
    console.print(render_status(data, 80))
    shown = console.export_text()
    assert "\x1b" not in shown and "[red]" in shown  # printed as text, not taken as markup
