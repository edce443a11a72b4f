"""Reuse schemes: TOML data → validated, frozen dataclasses (validated as strictly as wipe profiles).

A scheme says what a device must prove before it may go to a partner: the level each media type
needs, the verification modes accepted, SMART health limits, the people's attestations and whether
an accountable person must validate the evidence (NIST SP 800-88 Rev. 2 validation), and the
destination printed on the manifest. Two safety rules hold for every file, whatever it says:

* flash media (ssd, usb) need Purge: an overwrite cannot reach spare blocks, so Clear on flash is
  refused at load time (STANDARDS.md "Purge by interface");
* virtual media (loop devices) are acceptable only to a scheme marked ``demo = true``, which in
  turn accepts nothing else, so a demonstration can never route a real device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.policy.catalogue import Catalogue
from agent.reuse.errors import SchemeError
from agent.tomlfile import exact_type, parse_toml

SCHEMA = 1
MEDIA = ("ssd", "hdd", "usb", "virtual")
FLASH_MEDIA = ("ssd", "usb")
LEVEL_RULES = ("purge", "clear", "refuse")
VERIFY_MODES = ("full", "sampling")
SYSTEM_SCHEME_DIR = Path("/etc/wipe-agent/schemes")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

_TOP = {"schema", "summary", "destination", "rank", "demo", "attestations", "levels", "verification", "health",
        "validation"}
_HEALTH_LIMITS = ("max_reallocated_sectors", "max_pending_sectors", "max_offline_uncorrectable",
                  "max_percentage_used", "max_media_errors")
_HEALTH = {"required", "allow_nvme_critical_warning", *_HEALTH_LIMITS}


@dataclass(frozen=True)
class HealthLimits:
    """SMART limits: a reading above any of them routes the device to destruction."""

    required: bool
    max_reallocated_sectors: int
    max_pending_sectors: int
    max_offline_uncorrectable: int
    max_percentage_used: int
    max_media_errors: int
    allow_nvme_critical_warning: bool

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Scheme:
    """A validated reuse scheme."""

    name: str
    summary: str
    destination: str
    rank: int
    demo: bool
    attestations: tuple[str, ...]
    levels: tuple[tuple[str, str], ...]
    verification_modes: tuple[str, ...]
    clear_verification_modes: tuple[str, ...]
    health: HealthLimits
    validation_required: bool
    validator_roles: tuple[str, ...]
    source: str

    def level_for(self, media: str) -> str:
        """"purge", "clear" or "refuse" for a media type (unknown media are refused)."""
        return dict(self.levels).get(media, "refuse")

    def to_json(self) -> dict[str, Any]:
        """JSON form (``schemes show --json`` and the decision inputs)."""
        return {
            "name": self.name, "summary": self.summary, "destination": self.destination, "rank": self.rank,
            "demo": self.demo, "attestations": list(self.attestations), "levels": dict(self.levels),
            "verification": {"modes": list(self.verification_modes),
                             "clear_modes": list(self.clear_verification_modes)},
            "health": self.health.to_json(),
            "validation": {"required": self.validation_required, "roles": list(self.validator_roles)},
            "source": self.source,
        }


class _Where:
    """Finds the line of a key in TOML text, for error messages."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = text.splitlines()

    def error(self, message: str, key: str | None = None, section: str | None = None) -> SchemeError:
        line = None
        if key is not None:
            current: str | None = None
            for number, text in enumerate(self.lines, start=1):
                header = re.match(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]", text)
                if header:
                    current = header.group(1)
                    continue
                if current == section and re.match(rf"^\s*{re.escape(key)}\s*=", text):
                    line = number
                    break
        return SchemeError(f"{self.source}:{line}: {message}" if line else f"{self.source}: {message}")


def _typed(where: _Where, table: dict[str, Any], key: str, kind: type, default: Any, section: str | None) -> Any:
    value = table.get(key, default)
    label = f"[{section}].{key}" if section else key
    # bool is an int in Python; TOML keeps them apart and so do we
    if not exact_type(value, kind):
        got = "boolean" if isinstance(value, bool) else type(value).__name__
        raise where.error(f"{label}: expected {kind.__name__}, got {got}", key, section)
    return value


def _strings(where: _Where, table: dict[str, Any], key: str, section: str | None, allowed: tuple[str, ...] | None,
             default: list[str]) -> tuple[str, ...]:
    value = _typed(where, table, key, list, default, section)
    label = f"[{section}].{key}" if section else key
    for item in value:
        if not exact_type(item, str):
            raise where.error(f"{label}: expected a list of strings", key, section)
        if allowed is not None and item not in allowed:
            raise where.error(f"{label}: unknown value {item!r} (known: {', '.join(allowed)})", key, section)
        if allowed is None and not _NAME.match(item):
            raise where.error(f"{label}: {item!r} must be lower-case letters, digits, . _ -", key, section)
    if len(set(value)) != len(value):
        raise where.error(f"{label}: duplicate entries", key, section)
    return tuple(value)


def _table(where: _Where, data: dict[str, Any], name: str, allowed: set[str]) -> dict[str, Any]:
    table = data.get(name, {})
    if not exact_type(table, dict) or not isinstance(table, dict):  # the second narrows the type
        raise where.error(f"[{name}] must be a table", name)
    for key in table:
        if key not in allowed:
            raise where.error(f"[{name}]: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})", key, name)
    return table


def parse_scheme(text: str, name: str, source: str) -> Scheme:
    """Validate TOML text as the scheme ``name``; raise SchemeError naming file, key and line."""
    where = _Where(source, text)
    data = parse_toml(text, source, SchemeError)
    if not _NAME.match(name):
        raise SchemeError(f"{source}: scheme name {name!r} must be lower-case letters, digits, . _ -")
    for key in data:
        if key not in _TOP:
            raise where.error(f"unknown key {key!r} (allowed: {', '.join(sorted(_TOP))})", key)
    if data.get("schema") != SCHEMA:
        raise where.error(f"schema must be {SCHEMA}, got {data.get('schema')!r}", "schema")
    summary = _typed(where, data, "summary", str, "", None)
    destination = _typed(where, data, "destination", str, "", None)
    if not destination.strip():
        raise where.error("destination is required: the text printed on the manifest", "destination")
    rank = _typed(where, data, "rank", int, 100, None)
    demo = _typed(where, data, "demo", bool, False, None)
    attestations = _strings(where, data, "attestations", None, None, [])

    levels_table = _table(where, data, "levels", set(MEDIA))
    levels: list[tuple[str, str]] = []
    for media in MEDIA:
        rule = _typed(where, levels_table, media, str, "refuse", "levels")
        if rule not in LEVEL_RULES:
            raise where.error(f"[levels].{media} must be one of {', '.join(LEVEL_RULES)}, got {rule!r}", media,
                              "levels")
        if media in FLASH_MEDIA and rule == "clear":
            raise where.error(f"[levels].{media}: flash media need Purge; Clear cannot reach spare blocks "
                              "(NIST SP 800-88 Rev. 1 App. A, flash memory devices)", media, "levels")
        if media == "virtual" and rule != "refuse" and not demo:
            raise where.error("[levels].virtual: virtual media are acceptable only to a scheme with demo = true",
                              media, "levels")
        if demo and media != "virtual" and rule != "refuse":
            raise where.error(f"[levels].{media}: a demo scheme accepts virtual media only", media, "levels")
        levels.append((media, rule))
    if all(rule == "refuse" for _, rule in levels):
        raise where.error("[levels]: the scheme accepts no media type at all", "levels")

    verification = _table(where, data, "verification", {"modes", "clear_modes"})
    modes = _strings(where, verification, "modes", "verification", VERIFY_MODES, list(VERIFY_MODES))
    if not modes:
        raise where.error("[verification].modes: must accept at least one mode", "modes", "verification")
    clear_modes = _strings(where, verification, "clear_modes", "verification", VERIFY_MODES, ["full"])
    if any(mode not in modes for mode in clear_modes):
        raise where.error("[verification].clear_modes must be a subset of modes", "clear_modes", "verification")
    if any(rule == "clear" for _, rule in levels) and not clear_modes:
        raise where.error("[verification].clear_modes: Clear is accepted, so name the verification it needs",
                          "clear_modes", "verification")

    health_table = _table(where, data, "health", _HEALTH)
    limits: dict[str, int] = {}
    for key in _HEALTH_LIMITS:
        value = _typed(where, health_table, key, int, 0, "health")
        if value < 0 or (key == "max_percentage_used" and value > 255):
            raise where.error(f"[health].{key}: out of range ({value})", key, "health")
        limits[key] = value
    if "max_percentage_used" not in health_table:
        limits["max_percentage_used"] = 100
    health = HealthLimits(
        required=_typed(where, health_table, "required", bool, True, "health"),
        allow_nvme_critical_warning=_typed(where, health_table, "allow_nvme_critical_warning", bool, False, "health"),
        **limits,
    )
    validation = _table(where, data, "validation", {"required", "roles"})
    return Scheme(
        name=name, summary=summary, destination=destination, rank=rank, demo=demo, attestations=attestations,
        levels=tuple(levels), verification_modes=modes, clear_verification_modes=clear_modes, health=health,
        validation_required=_typed(where, validation, "required", bool, True, "validation"),
        validator_roles=_strings(where, validation, "roles", "validation", None, []),
        source=source,
    )


SCHEMES = Catalogue("scheme", "agent.reuse", "schemes", "WIPE_AGENT_SCHEME_DIR", SYSTEM_SCHEME_DIR, SchemeError)


def load_scheme_file(path: Path) -> Scheme:
    """Load and validate one scheme file (its name is the file's stem)."""
    return parse_scheme(SCHEMES.read_file(path), path.stem, str(path))


def available_schemes() -> dict[str, str]:
    """Scheme name → source; files in /etc/wipe-agent/schemes override shipped ones."""
    return SCHEMES.available()


def load_scheme(name: str) -> Scheme:
    """Load a scheme by name (override directory first, then the shipped ones)."""
    text, source = SCHEMES.read(name)
    return parse_scheme(text, name, source)


def load_all_schemes() -> list[Scheme]:
    """Every available scheme, most preferred (lowest rank) first."""
    return sorted((load_scheme(name) for name in available_schemes()), key=lambda scheme: (scheme.rank, scheme.name))
