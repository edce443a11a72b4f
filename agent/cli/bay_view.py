"""What ``status`` and ``watch`` show per bay, from the daemon's ``/v1/status``.

The bay's state comes from the daemon (``agent.daemon.bays``): it is the state of the drive in the
bay now, never an earlier drive's. ``watch`` is laid out for an 80x24 console: the priority
columns (bay, drive serial, phase, progress, state) always fit, bay names are never cut; rate,
ETA, elapsed time and asset tag are added while there is room. Reasons (refusals, failures,
protection, "needs re-run", "no certificate") go on lines of their own under the table, whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from agent.cli.output import human_size, printable
from agent.errors import AgentError

STATE_COLOURS = {"sanitised": "green", "failed": "red", "refused": "yellow", "interrupted": "magenta",
                 "running": "cyan", "starting": "cyan", "queued": "white", "waiting": "yellow",
                 "protected": "yellow", "present": "white", "empty": "bright_black"}
QUIET_WARNING_SECONDS = 120  # no word from a job's worker for this long is shown (a hung drive, or a long erase)
SERIAL_WIDTH = 14  # the tail of a serial is what tells two drives of a model apart
RECONNECTING = "daemon restarting… reconnecting"


def duration(seconds: float | None) -> str:
    """``1h02m``, ``4m05s``, ``12s``."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def _serial(serial: str | None) -> str:
    if not serial:
        return "-"
    return serial if len(serial) <= SERIAL_WIDTH else "…" + serial[-(SERIAL_WIDTH - 1):]


@dataclass(frozen=True)
class BayRow:
    """One bay as the operator reads it."""

    bay: str
    serial: str
    phase: str
    progress: str
    state: str  # the daemon's BayState value
    label: str  # the state as shown (``needs re-run``, ``sanitised*`` when it has no certificate …)
    rate: str
    eta: str
    elapsed: str
    asset: str
    pull: str
    notes: tuple[str, ...]  # reasons and warnings, shown whole under the table


def bay_row(bay: dict[str, Any]) -> BayRow:
    """The row for one bay of ``/v1/status``."""
    drive, job, outcome = bay.get("drive"), bay.get("job"), bay.get("outcome")
    state = str(bay.get("state") or ("empty" if drive is None else "present"))
    label = state
    notes: list[str] = []
    phase = progress = rate = eta = elapsed = "-"
    if job:
        phase = str(job.get("phase") or job.get("state") or "-")
        overall = job.get("overall_progress")
        if overall is not None:
            progress = f"{overall * 100:.1f}%"
        if job.get("rate_bytes_per_second"):
            rate = f"{human_size(job['rate_bytes_per_second'])}/s"
        if job.get("eta_seconds") is not None:
            eta = duration(job["eta_seconds"])
        elapsed = duration(job.get("elapsed_seconds"))
        quiet = job.get("quiet_seconds")
        if quiet is not None and quiet >= QUIET_WARNING_SECONDS:  # a blocking firmware command is quiet too
            notes.append(f"no word from the job for {quiet / 60:.0f} min")
    if bay.get("needs_rerun"):
        label = "needs re-run"
    if state == "sanitised" and outcome and not outcome.get("certificate"):
        label = "sanitised*"  # the note under the table says: no certificate
        notes.append(str(outcome.get("warning") or "no certificate (this station has no signing key)"))
    recorded = bay.get("drive_route") or {}
    if outcome and outcome.get("drive_route") == "destroy":
        label += " → destroy"  # this drive's own job, in this seating, ended with that route
    elif recorded.get("route") == "destroy":
        # a record kept by model and serial: a look-alike behind the same USB bridge shares it
        notes.append(f"this serial is on record for destruction ({recorded.get('reason')}); check it is that drive")
    reason = bay.get("reason")
    if reason and state not in ("running", "starting"):
        notes.insert(0, f"{state}: {reason}" if not str(reason).startswith(label) else str(reason))
    # a drive's serial and a loop's file name are whatever firmware or a user wrote: escaped, never obeyed
    return BayRow(
        bay=printable(bay["name"]), serial=_serial(printable(drive.get("serial")) if drive and drive.get("serial")
                                                   else None), phase=printable(phase),
        progress=progress, state=state, label=printable(label), rate=rate, eta=eta, elapsed=elapsed,
        asset=printable(bay.get("asset_tag") or "-"), pull=printable(bay.get("pull") or "-"),
        notes=tuple(printable(note) for note in notes),
    )


# (header, BayRow attribute, width) — the first five always; the rest while they fit
_PRIORITY = (("BAY", "bay", 0), ("SERIAL", "serial", SERIAL_WIDTH), ("PHASE", "phase", 9),
             ("PROGRESS", "progress", 8), ("STATE", "label", 12))
_OPTIONAL = (("ELAPSED", "elapsed", 7), ("ETA", "eta", 7), ("RATE", "rate", 11), ("ASSET", "asset", 14))
_CELL_OVERHEAD = 3  # a column's padding and rule in box.SIMPLE_HEAD


def columns_for(width: int, bay_width: int) -> list[tuple[str, str, int]]:
    """The columns that fit ``width``: priority ones always, optional ones in order while they fit."""
    chosen = [(header, attribute, bay_width if attribute == "bay" else size) for header, attribute, size in _PRIORITY]
    used = sum(max(size, len(header)) + _CELL_OVERHEAD for header, _, size in chosen)
    for header, attribute, size in _OPTIONAL:
        need = max(size, len(header)) + _CELL_OVERHEAD
        if used + need <= width:
            chosen.insert(-1, (header, attribute, size))
            used += need
    return chosen


def render_status(data: dict[str, Any], width: int) -> RenderableType:
    """The ``watch`` screen for one ``/v1/status`` answer at a console ``width`` columns wide."""
    rows = [bay_row(bay) for bay in data.get("bays", [])]
    bay_width = max([len("BAY")] + [len(row.bay) for row in rows])
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, expand=False, show_edge=False,
                  title=f"{data.get('station_id', '?')} — {data.get('running', 0)} running, "
                        f"{data.get('queued', 0)} queued", title_justify="left")
    for header, attribute, size in columns_for(width, bay_width):
        if attribute == "bay":
            table.add_column(header, no_wrap=True, min_width=bay_width)  # never cut to ambiguity
        elif attribute == "label":
            table.add_column(header, no_wrap=False, min_width=size, ratio=1)
        else:
            table.add_column(header, no_wrap=True, max_width=size, overflow="ellipsis")
    notes: list[Text] = []
    for row in rows:
        cells: list[str | Text] = []
        for _, attribute, _ in columns_for(width, bay_width):
            value = getattr(row, attribute)
            if attribute == "label":
                cells.append(Text(value, style=STATE_COLOURS.get(row.state, "white")))
            else:
                cells.append(Text(value))  # Text, not str: a "[red]" in a serial is not rich markup
        table.add_row(*cells)
        for note in row.notes:
            notes.append(Text(f"{row.bay}: {note}", style=STATE_COLOURS.get(row.state, "white")))
    busy = [row.bay for row in rows if row.state in ("running", "starting")]
    if busy:  # one line, not one per bay: 24 rows hold eight bays and their reasons
        notes.append(Text(f"do not pull: {', '.join(busy)} (running)", style="bold"))
    unbayed = data.get("unbayed_drives", [])
    outside = [printable(drive.get("device")) for drive in unbayed if not drive.get("note")]
    if outside:
        notes.append(Text(f"outside every bay, never touched: {', '.join(outside)}"))
    for drive in unbayed:
        if drive.get("note"):  # a second drive a bay's match fits: the bay keeps the one it holds
            notes.append(Text(printable(f"{drive.get('device')}: {drive['note']}"), style="yellow"))
    return Group(table, *notes)


class WatchSession:
    """Fetches and renders ``watch`` frames; survives a daemon restart.

    The first fetch must succeed (no daemon at all is an error the operator must see at once);
    after that an unreachable daemon is shown as restarting, and the next frame that gets an
    answer is the live view again.
    """

    def __init__(self, fetch: Callable[[], dict[str, Any]], width: Callable[[], int]) -> None:
        self.fetch = fetch
        self.width = width
        self.connected = False
        self.ever_connected = False

    def frame(self) -> RenderableType:
        """One screen: the bays, or the reconnecting notice."""
        try:
            data = self.fetch()
        except AgentError as error:
            if not self.ever_connected:
                raise
            self.connected = False
            return Text(f"{RECONNECTING} ({error.message})", style="yellow")
        self.connected = self.ever_connected = True
        return render_status(data, self.width())
