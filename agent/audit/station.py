"""What the station daemon and ``wipe`` record in the audit chain about themselves: the configuration in use.

Kept apart from :mod:`agent.audit.log` (which knows nothing of station.toml) and from the callers
(which should not know how the chain decides a configuration changed).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from agent.audit.log import AuditEntry
from agent.config import StationConfig
from agent.store.registry import Registry


def configuration_sha256(config: StationConfig) -> str | None:
    """SHA-256 of the station.toml the configuration was read from (None: built-in defaults, or unreadable)."""
    path = Path(config.source)
    try:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


def record_configuration(registry: Registry, config: StationConfig) -> AuditEntry | None:
    """Chain the configuration (path + SHA-256 + checkpoint interval) when it differs from the last recorded one,
    and make its [audit] interval the one every process appending to this registry follows."""
    return registry.audit.record_configuration(config.source, configuration_sha256(config),
                                               config.audit_checkpoint_every, config.audit_checkpoint_minutes,
                                               at=registry.clock())
