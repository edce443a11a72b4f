"""The words the agent's data files, configuration and CLI share: one definition each.

Profiles, reuse schemes, ``station.toml`` and the CLI's ``click.Choice`` options all take these
values; defining them once means a new media kind or verification mode is one edit, and an error
message lists the same choices in the same order wherever it is raised. Plain tuples, no imports:
the CLI reads this module at start-up.
"""

from __future__ import annotations

MEDIA = ("ssd", "hdd", "usb", "virtual")
"""Media kinds a drive is classified as (drive probe) and profiles/schemes/defaults are keyed by."""

FLASH_MEDIA = ("ssd", "usb")
"""Media whose spare blocks an overwrite cannot reach: they need Purge for reuse."""

VERIFY_MODES = ("sampling", "full")
"""Verification after a wipe: NIST sampling (the default) or a full read-back."""

LEVELS = ("clear", "purge")
"""NIST SP 800-88 sanitisation levels a profile can require."""

LEVEL_RULES = ("purge", "clear", "refuse")
"""What a reuse scheme demands of one media kind."""

HOST_KINDS = ("laptop", "desktop", "tablet")
"""What a host device is (``host add --kind``, the fleet's asset register)."""

BACKED_UP = ("yes", "no", "unknown")
"""``[organisation] data_backed_up``: printed on certificates."""
