"""Shell completion for the values an operator types most: profile names, bay names and devices.

Enabled with click's own mechanism (see the README): ``eval "$(_WIPE_AGENT_COMPLETE=bash_source wipe-agent)"``.
Each completer is cheap at import (the command modules import this one) and never raises: a shell
completing a word must not print a traceback, so anything unreadable simply offers nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from click.shell_completion import CompletionItem

BY_ID = Path("/dev/disk/by-id")
SYS_BLOCK = Path("/sys/block")
_NOT_DRIVES = ("ram", "zram", "dm-", "md", "sr", "fd")  # never a wipe target: not offered


def complete_profile(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Profile names (wipe_profiles/ and the site's overrides), as ``profiles list`` shows them."""
    try:
        from agent.policy.profiles import available_profiles

        names = sorted(available_profiles())
    except Exception:  # a broken override directory: complete nothing, 'profiles list' says what is wrong
        return []
    return [CompletionItem(name) for name in names if name.startswith(incomplete)]


def _config_path(ctx: click.Context) -> str | None:
    """The station.toml this command line names (its own --config, else the root's), else the default."""
    context: click.Context | None = ctx
    while context is not None:
        value = context.params.get("config_path") or context.params.get("config")
        if value:
            return str(value)
        context = context.parent
    return None


def complete_bay(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Bay names from station.toml."""
    try:
        from agent.config import default_config_path, load_config

        path = _config_path(ctx) or default_config_path()
        bays = load_config(path, check_profiles=False).bays
    except Exception:  # no or unreadable station.toml: nothing to offer
        return []
    return [CompletionItem(bay.name) for bay in bays if bay.name.startswith(incomplete)]


def _block_devices() -> list[tuple[str, str]]:
    """(path, what) for each whole-disk block device: stable /dev/disk/by-id names, then kernel names
    (loop devices only while attached to a file)."""
    found: list[tuple[str, str]] = []
    try:
        for link in sorted(BY_ID.iterdir()):
            if "-part" not in link.name:
                found.append((str(link), os.path.basename(os.path.realpath(link))))
    except OSError:
        pass
    try:
        names = sorted(entry.name for entry in SYS_BLOCK.iterdir())
    except OSError:
        names = []
    for name in names:
        if name.startswith(_NOT_DRIVES):
            continue
        what = "disk"
        if name.startswith("loop"):
            try:
                what = "loop: " + (SYS_BLOCK / name / "loop" / "backing_file").read_text().strip()
            except OSError:
                continue  # not attached
        found.append((f"/dev/{name}", what))
    return found


def complete_device(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """Whole-disk devices: /dev/disk/by-id names and kernel names (attached loop devices included)."""
    return [CompletionItem(path, help=what) for path, what in _block_devices() if path.startswith(incomplete)]
