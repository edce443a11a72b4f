"""Station commands: ``run`` (the daemon) and the operator commands that talk to it over its API.

``status``, ``watch``, ``start``, ``cancel`` and ``intake`` find the daemon's socket through the
station configuration (``--config FILE``, default ``$WIPE_AGENT_CONFIG`` or
``/etc/wipe-agent/station.toml``; without a file, the default socket path is used).
"""

from __future__ import annotations

import os
import re
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any

import click

from agent.api.client import ApiClient
from agent.cli.completion import complete_bay, complete_profile
from agent.cli.output import OneOf, handle_errors, json_option, print_json, printable
from agent.config import DEFAULT_API_SOCKET, StationConfig, default_config_path, load_config
from agent.errors import AgentError, ConfigError

config_option = click.option(
    "--config", "config_path", type=click.Path(dir_okay=False), default=None,
    help="Station configuration (default $WIPE_AGENT_CONFIG or /etc/wipe-agent/station.toml).",
)

def _socket(config_path: str | None) -> Path:
    path = Path(config_path) if config_path else default_config_path()
    if config_path is None and not path.exists():
        return Path(DEFAULT_API_SOCKET)
    return load_config(path, check_profiles=False).api_socket


def _client(config_path: str | None) -> ApiClient:
    return ApiClient(_socket(config_path))


_SEGMENT = re.compile(r"[A-Za-z0-9._-]{1,64}")  # what a bay name (config) or job id can be


def _segment(value: str, what: str) -> str:
    """``value`` as one path segment of an API URL, or a clear error (never a malformed request)."""
    if not _SEGMENT.fullmatch(value) or value in (".", ".."):
        raise ConfigError(f"no {what} {value!r}: not a valid {what} (1-64 letters, digits, '.', '_', '-')")
    return value


# run --------------------------------------------------------------------------------------------
@click.command("run")
@config_option
@click.option("--udev-source", type=OneOf(["auto", "udev", "kernel"]), default="auto", show_default=True,
              help="udev: events after udevd processed them (full properties); kernel: raw netlink uevents.")
@handle_errors
def run(config_path: str | None, udev_source: str) -> None:
    """Run the station daemon (systemd Type=notify): hot-plug, bays, parallel jobs, the operator API."""
    from agent.api.server import ApiServer
    from agent.app import Application
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
    station = Station(Application.from_config(config), source, notifier=notifier, logger=logger)
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
def _status_lines(data: dict[str, Any]) -> list[str]:
    """``status`` as text: one line per bay, then each bay's reasons, pending intake and previous drive."""
    from agent.cli.bay_view import bay_row

    lines = [f"station {data['station_id']}: {data['running']} running, {data['queued']} queued"]
    covering: dict[int, tuple[dict[str, Any], list[str]]] = {}  # sign-in → the bays it covers (agent.operators)
    for bay in data["bays"]:
        person = bay.get("operator")
        if person:
            covering.setdefault(person["sign_in_id"], (person, []))[1].append(bay["name"])
    for person, names in covering.values():
        lines.append(f"operator {person['name']} ({person['title']}) for {', '.join(names)} "
                     f"until {person['expires_at']}")
    if data["bays"] and not covering:
        lines.append("no operator signed in for any bay: auto-start jobs name no person")
    rows = [bay_row(bay) for bay in data["bays"]]
    bay_width = max([3] + [len(row.bay) for row in rows])
    serials = [str((bay.get("drive") or {}).get("serial") or "-") for bay in data["bays"]]
    serial_width = max([6] + [len(serial) for serial in serials])  # whole here: status is read, not glanced at
    lines.append(f"{'BAY':<{bay_width}} {'DEVICE':<12} {'SERIAL':<{serial_width}} {'PHASE':<9} {'PROGRESS':>8} "
                 f"{'ELAPSED':>7} {'ASSET':<14} {'PULL':<12} STATE")
    for bay, row, serial in zip(data["bays"], rows, serials, strict=True):
        device = (bay.get("drive") or {}).get("device") or "-"
        lines.append(f"{row.bay:<{bay_width}} {device:<12} {serial:<{serial_width}} {row.phase:<9} {row.progress:>8} "
                     f"{row.elapsed:>7} {row.asset:<14} {row.pull:<12} {row.label}")
        for note in row.notes:
            lines.append(f"{'':<{bay_width}}   {note}")
        intake = bay.get("pending_intake")
        if intake:
            claimed = f", claimed by drive {intake['claimed_serial']}" if intake.get("claimed_serial") else ""
            lines.append(f"{'':<{bay_width}}   pending intake {intake['intake_id']}: asset {intake['asset_tag']}"
                         f"{claimed}")
        previous = bay.get("previous")
        if previous:
            lines.append(f"{'':<{bay_width}}   ({previous.get('label')}, job {previous.get('job_id') or '-'};"
                         " not the drive in the bay now)")
    for drive in data.get("unbayed_drives", []):
        identity = drive.get("drive") or {}
        lines.append(f"(outside every bay, not touched) {drive['device']} {identity.get('model', '?')} "
                     f"{identity.get('serial', '?')}" + (f": {drive['note']}" if drive.get("note") else ""))
    return lines


@click.command("status")
@config_option
@json_option
@handle_errors
def status(config_path: str | None, as_json: bool) -> None:
    """Every bay: the drive in it now, its state, phase, progress, reasons; safe to pull or not."""
    data = _client(config_path).get("/v1/status")
    if as_json:
        print_json(data)
        return
    for line in _status_lines(data):
        # drive identity is whatever the firmware (or a loop's file name) says: never raw to the terminal
        click.echo(printable(line))


@click.command("watch")
@config_option
@click.option("--interval", type=click.FloatRange(min=0.01, max=3600), default=1.0, show_default=True,
              help="Refresh interval in seconds.")
@click.option("--count", type=click.IntRange(min=0), default=0,
              help="Stop after this many refreshes (0: until Ctrl-C).")
@handle_errors
def watch(config_path: str | None, interval: float, count: int) -> None:
    """Live view of all bays (fits 80x24), refreshed in place; rides out a daemon restart."""
    from rich.console import Console
    from rich.live import Live

    from agent.cli.bay_view import WatchSession

    client = _client(config_path)
    console = Console()
    session = WatchSession(lambda: client.get("/v1/status"), lambda: console.width)
    refreshes = 0
    try:
        with Live(session.frame(), console=console, auto_refresh=False) as live:
            while count == 0 or refreshes < count:
                time.sleep(interval)
                live.update(session.frame(), refresh=True)
                refreshes += 1
    except KeyboardInterrupt:
        pass


# start / cancel / intake ------------------------------------------------------------------------
@click.command("start")
@click.argument("bay", shell_complete=complete_bay)
@click.option("--profile", "profile_name", default=None, shell_complete=complete_profile,
              help="Profile (default: the bay's, else by media type).")
@click.option("--serial", default=None, help="Serial number of the drive you mean; refused if the bay holds another.")
@config_option
@json_option
@handle_errors
def start(bay: str, profile_name: str | None, serial: str | None, config_path: str | None, as_json: bool) -> None:
    """Start a job on the drive in BAY (the caller is recorded as the operator)."""
    body: dict[str, Any] = {"profile": profile_name} if profile_name else {}
    if serial:
        body["serial"] = serial
    # a refusal comes back as an error with its reason: exit 2
    data = _client(config_path).post(f"/v1/bays/{_segment(bay, 'bay')}/start", body)
    if as_json:
        print_json(data)
    elif data.get("job_id"):
        click.echo(f"bay {data['bay']}: job {data['job_id']} {data.get('state', 'started')} for serial "
                   f"{data.get('serial', '?')} with profile {data['profile']} (operator {data['operator']})")
    else:
        click.echo(f"bay {data['bay']}: queued for serial {data.get('serial', '?')} with profile {data['profile']} "
                   f"(operator {data['operator']}); it starts when a slot is free - its checks run then, "
                   "see `wipe-agent status`")


@click.command("cancel")
@click.argument("job_id", required=False)
@click.option("--bay", default=None, shell_complete=complete_bay,
              help="Cancel the job of this bay instead (also one still queued).")
@config_option
@json_option
@handle_errors
def cancel(job_id: str | None, bay: str | None, config_path: str | None, as_json: bool) -> None:
    """Cancel a queued or running job (by JOB_ID or --bay); a started one ends interrupted, never certified."""
    if (job_id is None) == (bay is None):
        raise click.UsageError("give either a JOB_ID or --bay BAY")
    path = (f"/v1/bays/{_segment(bay, 'bay')}/cancel" if bay is not None
            else f"/v1/jobs/{_segment(job_id or '', 'job id')}/cancel")
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
@click.option("--bay", required=True, shell_complete=complete_bay,
              help="Bay the host's drive goes into next.")
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


# the CLI's ``wipe`` and the daemon's bays ----------------------------------------------------------
class InStationBay(ConfigError):
    """The drive is in a bay of the running station daemon (or the daemon cannot be asked)."""

    code = "drive_in_station_bay"
    http_status = 409  # a ``drive_*`` code: the API's answer for those


def _whole_disk(device: str) -> tuple[int, str] | None:
    """``(dev_t, kernel name)`` of the whole disk ``device`` is (or is a partition of); None if no block device."""
    try:
        rdev = os.stat(device).st_rdev
        if not stat.S_ISBLK(os.stat(device).st_mode):
            return None
    except OSError:
        return None  # the guard says what is wrong with the path
    return _disk_of(Path(os.path.realpath(f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}")))


def _disk_of(node: Path) -> tuple[int, str] | None:
    """``(dev_t, name)`` of the whole disk the sysfs block ``node`` is (or is a partition of)."""
    if (node / "partition").exists():
        node = node.parent
    try:
        major, minor = (node / "dev").read_text().strip().split(":")
        return os.makedev(int(major), int(minor)), node.name
    except (OSError, ValueError):
        return None


def _underneath(name: str, depth: int = 0) -> list[tuple[int, str]]:
    """The whole disks a disk is built on: device-mapper/md slaves, a loop's backing block device.

    A loop or a mapping over a bay's drive writes that drive: it is the bay's too.
    """
    if depth > 8:  # stacks are shallow; a cycle cannot exist, but a bound costs nothing
        return []
    found: list[tuple[int, str]] = []
    base = Path("/sys/block") / name
    try:
        slaves = sorted((base / "slaves").iterdir())
    except OSError:
        slaves = []
    for slave in slaves:
        disk = _disk_of(slave.resolve())
        if disk is not None:
            found.append(disk)
            found.extend(_underneath(disk[1], depth + 1))
    try:
        backing = (base / "loop" / "backing_file").read_text().strip()
        if stat.S_ISBLK(os.stat(backing).st_mode):
            rdev = os.stat(backing).st_rdev
            disk = _disk_of(Path(os.path.realpath(f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}")))
            if disk is not None:
                found.append(disk)
                found.extend(_underneath(disk[1], depth + 1))
    except (OSError, ValueError):
        pass
    return found


def _station_sockets(config_path: str | None) -> list[Path]:
    """The sockets a station daemon on this machine would listen on: its configuration's, and the default."""
    sockets = [Path(DEFAULT_API_SOCKET)]
    path = Path(config_path) if config_path else default_config_path()
    if path.exists():
        try:
            sockets.insert(0, load_config(path, check_profiles=False).api_socket)
        except AgentError:
            pass  # an unreadable configuration: the default socket is still asked
    return list(dict.fromkeys(sockets))


def _listening(socket_path: Path) -> bool:
    """False when the kernel says nobody listens there (no file, or a stale socket: ECONNREFUSED)."""
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    connection.settimeout(3)
    try:
        connection.connect(str(socket_path))
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        return False
    except PermissionError:
        raise InStationBay(f"{socket_path}: permission denied asking the station daemon whether it holds this "
                           "drive; run as root") from None
    except OSError as exc:
        raise InStationBay(f"a station daemon socket is at {socket_path} but cannot be asked whether it holds "
                           f"this drive ({exc.strerror or exc}): refusing to be safe") from None
    finally:
        connection.close()
    return True


def refuse_if_in_station_bay(device: str, config_path: str | None = None) -> None:
    """Before a CLI ``wipe``: refuse a drive that sits in a bay of the running station daemon.

    The daemon is asked over its socket whether it holds the medium, by kernel identity (the whole
    disk's ``dev_t``, with ``diskseq``), never by path. No socket, or one nobody listens on, means
    no daemon; a daemon that is there but does not answer is a refusal too: the daemon's view of
    its bays must never be wrong, and a wipe it does not know of would make it wrong.
    """
    whole = _whole_disk(device)
    if whole is None:
        return
    disks = list(dict.fromkeys([whole, *_underneath(whole[1])]))
    for socket_path in _station_sockets(config_path):
        if not _listening(socket_path):
            continue
        client = ApiClient(socket_path, timeout=5)
        for dev_t, name in disks:
            try:
                with open(f"/sys/block/{name}/diskseq") as handle:
                    diskseq = handle.read().strip()
            except OSError:
                diskseq = ""
            query = f"/v1/claims?dev_t={dev_t}&name={name}" + (f"&diskseq={diskseq}" if diskseq.isdigit() else "")
            try:
                answer = client.get(query)
            except AgentError as exc:
                raise InStationBay(f"the station daemon at {socket_path} did not say whether it holds {device} "
                                   f"({exc.message}): refusing to be safe") from None
            if answer.get("claimed"):
                bay = answer.get("bay")
                over = "" if name == whole[1] else f" (it is built on /dev/{name})"
                raise InStationBay(f"{device}: drive is in bay {bay} of the running station daemon{over}: use "
                                   f"`wipe-agent start {bay}`")


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
