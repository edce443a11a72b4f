"""What every command needs to know about the station it talks to: its config and state directory."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import click

from agent.config import DEFAULT_CONFIG_PATH, StationConfig, load_config
from agent.errors import DriveNotFound
from agent.jobs.certify import CertificateSettings, settings_from_config
from agent.store.registry import RUN_AS_ROOT, default_state_dir


def station_config(ctx: click.Context) -> StationConfig | None:
    """The station configuration named by the global --config (or $WIPE_AGENT_CONFIG), if any.

    Without either, ``/etc/wipe-agent/station.toml`` when it exists (a station's own file is read
    by default, so its [organisation] reaches the certificates); None when it does not."""
    root = ctx.find_root()
    path = root.obj.get("config") if root.obj else None
    if path is None and "WIPE_AGENT_CONFIG" not in os.environ and not DEFAULT_CONFIG_PATH.exists():
        return None
    return load_config(path, check_profiles=False)


def state_dir(ctx: click.Context) -> Path:
    """--state-dir, else the configured station's, else $WIPE_AGENT_STATE_DIR or /var/lib/wipe-agent."""
    root = ctx.find_root()
    value = root.obj.get("state_dir") if root.obj else None
    if value:
        return Path(value)
    station = station_config(ctx)
    return station.state_dir if station is not None else default_state_dir()


def certificate_settings(ctx: click.Context) -> CertificateSettings:
    """Station facts for certificates from the station configuration (no organisation: no certificate)."""
    return settings_from_config(station_config(ctx))


def resolve_device(argument: str) -> str:
    """A device argument as the kernel names it: ``/dev/<name>`` of the block device it denotes.

    Every command that takes a device resolves it here, once, before it records or touches
    anything: ``/dev/loop3/``, ``/dev/disk/by-id/…`` and ``/dev/./loop3`` all become ``/dev/loop3``
    (found through the device number, ``/sys/dev/block/MAJOR:MINOR``, not by editing the string);
    anything that is not a block device is a one-line error (exit 2)."""
    if not argument.strip():
        raise DriveNotFound("the device argument is empty")
    if "\x00" in argument:
        raise DriveNotFound("the device argument contains a NUL byte")
    # "/dev/loop3/" names the node with a trailing slash, which the kernel refuses (ENOTDIR)
    candidate = argument.rstrip("/") or argument
    try:
        status = os.stat(candidate)
    except FileNotFoundError:
        raise DriveNotFound(f"{argument}: no such device") from None
    except PermissionError:
        raise DriveNotFound(f"{argument}: permission denied; {RUN_AS_ROOT}") from None
    except (OSError, ValueError) as exc:
        raise DriveNotFound(f"{argument}: {getattr(exc, 'strerror', None) or exc}") from None
    if not stat.S_ISBLK(status.st_mode):
        kind = "is a directory" if stat.S_ISDIR(status.st_mode) else "is a file" if stat.S_ISREG(
            status.st_mode) else "is a character device" if stat.S_ISCHR(status.st_mode) else "is a special file"
        raise DriveNotFound(f"{argument}: not a block device ({kind})")
    number = f"{os.major(status.st_rdev)}:{os.minor(status.st_rdev)}"
    try:
        name = os.path.basename(os.path.realpath(f"/sys/dev/block/{number}"))
    except OSError:
        name = ""
    canonical = f"/dev/{name}" if name and name != number else ""
    try:
        if canonical and os.stat(canonical).st_rdev == status.st_rdev:
            return canonical
    except OSError:
        pass
    # no /dev node of the kernel's name for this device number (a private /dev): keep the path given
    return os.path.normpath(candidate)
