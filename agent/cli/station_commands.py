"""Station commands: ``run`` (the daemon) and the operator commands that talk to it over its API.

``status``, ``watch``, ``start``, ``cancel`` and ``intake`` find the daemon's socket through the
station configuration (``--config FILE``, default ``$WIPE_AGENT_CONFIG`` or
``/etc/wipe-agent/station.toml``; without a file, the default socket path is used).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from agent.api.client import ApiClient
from agent.cli.output import handle_errors, human_size, json_option, print_json, printable
from agent.config import DEFAULT_API_SOCKET, StationConfig, default_config_path, load_config
from agent.errors import ConfigError

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="Station configuration (default $WIPE_AGENT_CONFIG or /etc/wipe-agent/station.toml).",
)

OUTCOME_COLOURS = {"sanitised": "green", "failed": "red", "refused": "yellow", "interrupted": "magenta",
                   "error": "red", "running": "cyan", "verifying": "blue", "checking": "cyan", "starting": "cyan",
                   "queued": "white"}


def _socket(config_path: str | None) -> Path:
    path = Path(config_path) if config_path else default_config_path()
    if config_path is None and not path.exists():
        return Path(DEFAULT_API_SOCKET)
    return load_config(path, check_profiles=False).api_socket


def _client(config_path: str | None) -> ApiClient:
    return ApiClient(_socket(config_path))


# run --------------------------------------------------------------------------------------------
@click.command("run")
@config_option
@click.option("--udev-source", type=click.Choice(["auto", "udev", "kernel"]), default="auto", show_default=True,
              help="udev: events after udevd processed them (full properties); kernel: raw netlink uevents.")
@handle_errors
def run(config_path: str | None, udev_source: str) -> None:
    """Run the station daemon (systemd Type=notify): hot-plug, bays, parallel jobs, the operator API."""
    from agent.api.server import ApiServer
    from agent.daemon.notify import Notifier, setup_logging
    from agent.daemon.station import Station
    from agent.discovery.monitor import UdevDriveSource

    config = load_config(config_path)
    logger = setup_logging()
    notifier = Notifier.from_environment()
    source_name = udev_source
    if source_name == "auto":
        # udevd running → its events carry ID_PATH/ID_SERIAL and arrive after the udev db is written
        source_name = "udev" if os.path.exists("/run/udev/control") else "kernel"
    source = UdevDriveSource(source_name)
    station = Station(config, source, notifier=notifier, logger=logger)
    station.install_signal_handlers()

    def api(service: Station) -> ApiServer:
        return ApiServer(config.api_socket, service, config.api_group,
                         on_error=lambda exc: logger.error("API handler error", exc_info=exc))

    logger.info("starting", extra={"fields": {"config": config.source, "udev_source": source_name,
                                              "state_dir": str(config.state_dir)}})
    try:
        code = station.serve(api)
    finally:
        notifier.close()
    sys.exit(code)


# status / watch ---------------------------------------------------------------------------------
QUIET_WARNING_SECONDS = 120  # no word from a job's worker for this long is shown (a hung drive, or a long erase)


def _bay_cells(bay: dict[str, Any]) -> dict[str, str]:
    drive, job, last = bay.get("drive"), bay.get("job"), bay.get("last")
    cells = {"bay": bay["name"], "drive": "-", "job": "-", "method": "-", "progress": "-", "rate": "-", "eta": "-",
             "outcome": "empty" if drive is None else "idle"}
    if drive:
        cells["drive"] = f"{drive.get('device', '?')} {str(drive.get('model', '?'))[:18]} {drive.get('serial', '?')}"
        if drive.get("protected"):
            cells["outcome"] = "protected"
    if job:
        cells["job"] = job.get("job_id") or "(starting)"
        cells["method"] = f"{job.get('profile')}" + (f" [{job['phase']}]" if job.get("phase") else "")
        if job.get("progress") is not None:
            cells["progress"] = f"{job['progress'] * 100:5.1f}%"
        if job.get("rate_bytes_per_second"):
            cells["rate"] = f"{human_size(job['rate_bytes_per_second'])}/s"
        if job.get("eta_seconds") is not None:
            cells["eta"] = f"{job['eta_seconds']:.0f} s"
        cells["outcome"] = job.get("state", "running")
        quiet = job.get("quiet_seconds")
        if quiet is not None and quiet >= QUIET_WARNING_SECONDS:  # a blocking firmware command is quiet too
            cells["outcome"] += f" (quiet {quiet / 60:.0f} min)"
    elif last:
        cells["job"] = last.get("job_id") or "-"
        cells["method"] = last.get("method") or last.get("profile") or "-"
        cells["outcome"] = str(last.get("outcome"))
        if last.get("drive_route") == "destroy" or bay.get("drive_route"):
            cells["outcome"] += " → destroy"
    # a drive's model and serial are whatever its firmware (or a loop's file name) says: never raw
    return {column: printable(value) for column, value in cells.items()}


_COLUMNS = ("bay", "drive", "job", "method", "progress", "rate", "eta", "outcome")


@click.command("status")
@config_option
@json_option
@handle_errors
def status(config_path: str | None, as_json: bool) -> None:
    """Every bay: drive, job, method, progress, rate, ETA, outcome."""
    data = _client(config_path).get("/v1/status")
    if as_json:
        print_json(data)
        return
    click.echo(f"station {data['station_id']}: {data['running']} running, {data['queued']} queued")
    widths = {"bay": 10, "drive": 40, "job": 16, "method": 30, "progress": 8, "rate": 12, "eta": 8}
    click.echo(" ".join(f"{column.upper():<{widths.get(column, 0)}}" for column in _COLUMNS))
    for bay in data["bays"]:
        cells = _bay_cells(bay)
        click.echo(" ".join(f"{cells[column]:<{widths.get(column, 0)}}" for column in _COLUMNS))
    for drive in data.get("unbayed_drives", []):
        identity = drive.get("drive") or {}
        click.echo(printable(f"(outside every bay, not touched) {drive['device']} {identity.get('model', '?')} "
                             f"{identity.get('serial', '?')}"))


@click.command("watch")
@config_option
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.01, 3600),
              help="Refresh interval in seconds.")
@click.option("--count", default=0, type=click.IntRange(0, 10**9),
              help="Stop after this many refreshes (0: until Ctrl-C).")
@handle_errors
def watch(config_path: str | None, interval: float, count: int) -> None:
    """Live view of all bays, refreshed in place, coloured by outcome."""
    from rich.console import Console
    from rich.live import Live
    from rich.markup import escape
    from rich.table import Table

    client = _client(config_path)

    def table() -> Table:
        data = client.get("/v1/status")
        view = Table(title=f"{data['station_id']} — {data['running']} running, {data['queued']} queued",
                     expand=True)
        for column in _COLUMNS:
            view.add_column(column.upper(), no_wrap=column != "drive")
        for bay in data["bays"]:
            cells = _bay_cells(bay)
            colour = OUTCOME_COLOURS.get(cells["outcome"].split(" ")[0], "white")
            # escaped: a "[red]" in a drive's model is text, not rich markup
            view.add_row(*[escape(cells[column]) for column in _COLUMNS[:-1]],
                         f"[{colour}]{escape(cells['outcome'])}[/]")
        outside = [escape(printable(drive["device"])) for drive in data.get("unbayed_drives", [])]
        if outside:
            view.caption = f"outside every bay, never touched: {', '.join(outside)}"
        return view

    refreshes = 0
    try:
        with Live(table(), console=Console(), auto_refresh=False) as live:
            while count == 0 or refreshes < count:
                time.sleep(interval)
                live.update(table(), refresh=True)
                refreshes += 1
    except KeyboardInterrupt:
        pass


# start / cancel / intake ------------------------------------------------------------------------
@click.command("start")
@click.argument("bay")
@click.option("--profile", "profile_name", default=None, help="Profile (default: the bay's, else by media type).")
@click.option("--serial", default=None, help="Serial number of the drive you mean; refused if the bay holds another.")
@config_option
@json_option
@handle_errors
def start(bay: str, profile_name: str | None, serial: str | None, config_path: str | None, as_json: bool) -> None:
    """Start a job on the drive in BAY (the caller is recorded as the operator)."""
    body: dict[str, Any] = {"profile": profile_name} if profile_name else {}
    if serial:
        body["serial"] = serial
    data = _client(config_path).post(f"/v1/bays/{quote(bay, safe='')}/start", body)
    if as_json:
        print_json(data)
    else:
        click.echo(f"bay {data['bay']}: job queued for serial {data.get('serial', '?')} with profile "
                   f"{data['profile']} (operator {data['operator']})")


@click.command("cancel")
@click.argument("job_id", required=False)
@click.option("--bay", default=None, help="Cancel the job of this bay instead (also one still queued).")
@config_option
@json_option
@handle_errors
def cancel(job_id: str | None, bay: str | None, config_path: str | None, as_json: bool) -> None:
    """Cancel a queued or running job (by JOB_ID or --bay); a started one ends interrupted, never certified."""
    if (job_id is None) == (bay is None):
        raise click.UsageError("give either a JOB_ID or --bay BAY")
    # quoted: a name with a space, a slash or a non-ASCII letter is one path segment, never a request-line error
    target = f"bays/{quote(bay, safe='')}" if bay is not None else f"jobs/{quote(job_id or '', safe='')}"
    path = f"/v1/{target}/cancel"
    data = _client(config_path).post(path)
    if as_json:
        print_json(data)
    else:
        click.echo(f"job {data['job_id'] or '(not started)'}: {data['state']}")


@click.command("intake")
@click.option("--asset", "asset_tag", required=True, help="Asset tag of the host device (laptop/desktop).")
@click.option("--host-serial", default=None, help="Serial number of the host device.")
@click.option("--make", default=None, help="Make of the host device.")
@click.option("--model", default=None, help="Model of the host device.")
@click.option("--bay", required=True, help="Bay the host's drive goes into next.")
@config_option
@json_option
@handle_errors
def intake(asset_tag: str, host_serial: str | None, make: str | None, model: str | None, bay: str,
           config_path: str | None, as_json: bool) -> None:
    """Link the next drive inserted into BAY to the host device it came from."""
    if not asset_tag.strip():
        raise ConfigError("--asset must not be empty")
    data = _client(config_path).post("/v1/intake", {"bay": bay, "asset_tag": asset_tag, "host_serial": host_serial,
                                                    "make": make, "model": model})
    if as_json:
        print_json(data)
    else:
        click.echo(f"bay {data['bay']}: next drive linked to asset {data['asset_tag']} (intake {data['intake_id']})")


STATION_COMMANDS = (run, status, watch, start, cancel, intake)


def register(group: click.Group) -> None:
    """Add the station commands to the ``wipe-agent`` group (for the lead's ``main.py``)."""
    for command in STATION_COMMANDS:
        group.add_command(command)


def load_station_config(config_path: str | None) -> StationConfig:
    """The station configuration the commands use (exposed for the lead's global ``--config``)."""
    return load_config(config_path)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def station_cli() -> None:
    """Station commands on their own (``python -m agent.cli.station_commands``) until main.py registers them."""


register(station_cli)

if __name__ == "__main__":
    station_cli()
