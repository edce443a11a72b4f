"""The station's forwarder: ``wipe-agent fleet push --every SECONDS`` (systemd: wipe-agent-forward.service).

Why a process of its own and not a thread of the daemon: the daemon that opens drives has no IP network
at all (its unit: ``PrivateNetwork``-like ``IPAddressDeny=any``, AF_UNIX and AF_NETLINK only), and it
should stay that way — a compromised TLS stack must never share a process with the guard and the
destructive paths. The forwarder only reads the registry and writes the outbox's own tables (SQLite
WAL: the daemon is never blocked for more than a commit), needs no capability and no device, and is
the only station process that talks to the network.

Every round: fill and push everything not yet acknowledged; on a failure (the network or the fleet away)
one line to the log and the next try after a backoff that doubles up to ``MAX_BACKOFF_SECONDS``; a
station offline for a day catches up by itself on its next successful round, without duplicates (the
fleet takes each record once).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.errors import AgentError

MAX_BACKOFF_SECONDS = 600.0
_LOG = logging.getLogger(__name__)


@dataclass
class Round:
    """What one round did (for the log and the tests)."""

    ok: bool
    sent: int = 0
    backlog: int = 0
    error: str | None = None


def forward_once(state_dir: Path, url: str, station_id: str) -> Round:
    """One round: open the registry, fill, push, close."""
    from agent.fleet.client import FleetClient
    from agent.fleet.outbox import Outbox
    from agent.store.registry import Registry

    try:
        registry = Registry(state_dir).open()
    except AgentError as error:
        return Round(False, error=error.message)
    try:
        outbox = Outbox(registry, station_id)
        try:
            result = outbox.push(FleetClient(url, state_dir / "pki"))
        except AgentError as error:
            return Round(False, backlog=outbox.status().backlog, error=error.message)
        return Round(True, sent=result.sent, backlog=outbox.status().backlog)
    finally:
        registry.close()


def run_forever(state_dir: Path, url: str, station_id: str, every: float, stop: threading.Event,
                on_round: Callable[[Round], None] | None = None) -> None:
    """Forward every ``every`` seconds until ``stop`` is set; back off while the fleet is unreachable."""
    delay = every
    while not stop.is_set():
        result = forward_once(state_dir, url, station_id)
        if on_round is not None:
            on_round(result)
        if result.ok:
            if result.sent:
                _LOG.info("fleet: forwarded %d records; backlog %d", result.sent, result.backlog)
            delay = every
        else:
            _LOG.warning("fleet: not forwarded (%s); backlog %d; next try in %.0f s", result.error, result.backlog,
                         delay)
            stop.wait(delay)
            delay = min(delay * 2, MAX_BACKOFF_SECONDS)
            continue
        stop.wait(every)
