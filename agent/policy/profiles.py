"""Wipe profiles: TOML data → validated, frozen dataclasses.

Strict on purpose: an unknown key, an unknown method, a wrong type or an impossible value is an
error at load time, naming the file, the key and (where the TOML text shows it) the line. A typo
in a profile must never silently turn a purge into something weaker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import ProfileError
from agent.methods import registry
from agent.methods.base import Level, Method
from agent.policy.catalogue import Catalogue
from agent.tomlfile import exact_type, parse_toml

SCHEMA = 1
MEDIA = ("ssd", "hdd", "usb", "virtual")
VERIFY_MODES = ("sampling", "full")
SYSTEM_PROFILE_DIR = Path("/etc/wipe-agent/profiles")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class Step:
    """One rung of the ladder: a method and its options."""

    method: str
    options: tuple[tuple[str, Any], ...] = ()

    def build(self) -> Method:
        """Instantiate the method."""
        return registry.build(self.method, dict(self.options))


@dataclass(frozen=True)
class Profile:
    """A validated wipe profile."""

    name: str
    summary: str
    minimum_level: Level
    media: tuple[str, ...]
    steps: tuple[Step, ...]
    verify_mode: str
    legacy: bool
    source: str

    def to_json(self) -> dict[str, Any]:
        """JSON form (for ``profiles show --json`` and the job record)."""
        return {
            "name": self.name,
            "summary": self.summary,
            "minimum_level": self.minimum_level.value,
            "media": list(self.media),
            "steps": [{"method": step.method, **dict(step.options)} for step in self.steps],
            "verify": {"mode": self.verify_mode},
            "legacy": self.legacy,
            "source": self.source,
        }


class _Where:
    """Finds the line of a key in TOML text, for error messages."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.lines = text.splitlines()

    def line_of(self, key: str, section: str | None = None, occurrence: int = 0) -> int | None:
        in_section = section is None
        seen = -1
        header = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?")
        for number, line in enumerate(self.lines, start=1):
            match = header.match(line)
            if match:
                in_section = section is not None and match.group(1) == section
                if in_section and section is not None:
                    seen += 1
                continue
            if in_section and (section is None or seen == occurrence):
                if re.match(rf"^\s*{re.escape(key)}\s*=", line):
                    return number
        return None

    def error(self, message: str, key: str | None = None, section: str | None = None, index: int = 0) -> ProfileError:
        line = self.line_of(key, section, index) if key else None
        location = f"{self.source}:{line}" if line else self.source
        return ProfileError(f"{location}: {message}")


def _expect_type(where: _Where, value: Any, kind: type | tuple[type, ...], label: str, key: str,
                 section: str | None = None, index: int = 0) -> None:
    # exact types: bool is an int in Python; TOML keeps them apart and so do we
    if not exact_type(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        got = "boolean" if isinstance(value, bool) else type(value).__name__
        raise where.error(f"{label}: expected {expected}, got {got}", key, section, index)


def parse_profile(text: str, name: str, source: str) -> Profile:
    """Validate TOML text as a profile named ``name``."""
    where = _Where(source, text)
    data = parse_toml(text, source, ProfileError)
    if not _NAME.match(name):
        raise ProfileError(f"{source}: profile name {name!r} must be lower-case letters, digits, . _ -")
    allowed = {"schema", "summary", "minimum_level", "legacy", "match", "steps", "verify"}
    for key in data:
        if key not in allowed:
            raise where.error(f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})", key)
    schema = data.get("schema")
    # exact type: ``true == 1`` in Python, and a boolean schema is a typo, not version 1
    if type(schema) is not int or schema != SCHEMA:
        raise where.error(f"schema must be {SCHEMA}, got {schema!r}", "schema")
    summary = data.get("summary", "")
    _expect_type(where, summary, str, "summary", "summary")
    level_text = data.get("minimum_level", "clear")
    _expect_type(where, level_text, str, "minimum_level", "minimum_level")
    if level_text not in ("clear", "purge"):
        raise where.error(f"minimum_level must be 'clear' or 'purge', got {level_text!r}", "minimum_level")
    legacy = data.get("legacy", False)
    _expect_type(where, legacy, bool, "legacy", "legacy")

    match = data.get("match", {})
    _expect_type(where, match, dict, "[match]", "match")
    for key in match:
        if key != "media":
            raise where.error(f"[match]: unknown key {key!r} (allowed: media)", key, "match")
    media = match.get("media", list(MEDIA))
    _expect_type(where, media, list, "[match].media", "media", "match")
    for item in media:
        if item not in MEDIA:
            raise where.error(f"[match].media: unknown media {item!r} (known: {', '.join(MEDIA)})", "media", "match")
    if not media:
        raise where.error("[match].media: must name at least one media type", "media", "match")

    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise where.error("needs at least one [[steps]] table with a method")
    steps: list[Step] = []
    for index, raw in enumerate(raw_steps):
        label = f"[[steps]] #{index + 1}"
        if not exact_type(raw, dict):
            raise where.error(f"{label}: must be a table")
        method = raw.get("method")
        if not exact_type(method, str):
            raise where.error(f"{label}: 'method' is required and must be a string", "method", "steps", index)
        if method not in registry.METHODS:
            known = ", ".join(sorted(registry.METHODS))
            raise where.error(f"{label}: unknown method {method!r} (known: {known})", "method", "steps", index)
        allowed_options = registry.option_names(method)
        options: dict[str, Any] = {}
        for key, value in raw.items():
            if key == "method":
                continue
            if key not in allowed_options:
                hint = f" (allowed: {', '.join(sorted(allowed_options))})" if allowed_options else " (it takes none)"
                raise where.error(f"{label}: unknown option {key!r} for {method}{hint}", key, "steps", index)
            _expect_type(where, value, str, f"{label}.{key}", key, "steps", index)
            options[key] = value
        try:
            registry.build(method, options)
        except Exception as exc:  # an option the method rejects, e.g. a pattern that is not hex
            message = getattr(exc, "message", str(exc))
            raise where.error(f"{label}: {message}", "method", "steps", index) from exc
        steps.append(Step(method, tuple(sorted(options.items()))))

    verify = data.get("verify", {})
    _expect_type(where, verify, dict, "[verify]", "verify")
    for key in verify:
        if key != "mode":
            raise where.error(f"[verify]: unknown key {key!r} (allowed: mode)", key, "verify")
    mode = verify.get("mode", "sampling")
    _expect_type(where, mode, str, "[verify].mode", "mode", "verify")
    if mode not in VERIFY_MODES:
        raise where.error(f"[verify].mode must be one of {', '.join(VERIFY_MODES)}, got {mode!r}", "mode", "verify")

    return Profile(
        name=name,
        summary=summary,
        minimum_level=Level(level_text),
        media=tuple(media),
        steps=tuple(steps),
        verify_mode=mode,
        legacy=legacy,
        source=source,
    )


PROFILES = Catalogue("profile", "wipe_profiles", None, "WIPE_AGENT_PROFILE_DIR", SYSTEM_PROFILE_DIR, ProfileError)


def load_profile_file(path: Path) -> Profile:
    """Load and validate one profile file (its name is the file's stem)."""
    return parse_profile(PROFILES.read_file(path), path.stem, str(path))


def available_profiles() -> dict[str, str]:
    """Profile name → source; files in /etc/wipe-agent/profiles override shipped ones."""
    return PROFILES.available()


def load_profile(name: str) -> Profile:
    """Load a profile by name (override directory first, then the shipped ones)."""
    text, source = PROFILES.read(name)
    return parse_profile(text, name, source)
