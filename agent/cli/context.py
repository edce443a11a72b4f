"""What every command needs to know about the station it talks to: its config and state directory."""

from __future__ import annotations

import os
from pathlib import Path

import click

from agent.config import StationConfig, load_config
from agent.jobs.certify import CertificateSettings
from agent.store.registry import default_state_dir


def station_config(ctx: click.Context) -> StationConfig | None:
    """The station configuration named by the global --config (or $WIPE_AGENT_CONFIG), if any."""
    root = ctx.find_root()
    path = root.obj.get("config") if root.obj else None
    if path is None and "WIPE_AGENT_CONFIG" not in os.environ:
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
    """Station facts for certificates: the configured organisation, else the defaults."""
    station = station_config(ctx)
    if station is None:
        return CertificateSettings()
    return CertificateSettings(organisation=station.organisation, tsa_url=station.tsa_url,
                               tsa_timeout=station.tsa_timeout)
