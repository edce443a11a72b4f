"""Wipe profiles: TOML data → validated, frozen dataclasses.

Strict on purpose: an unknown key, an unknown method, a wrong type or an impossible value is an
error at load time, naming the file, the key and (where the TOML text shows it) the line. A typo
in a profile must never silently turn a purge into something weaker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from agent.errors import ProfileError
from agent.methods import registry
from agent.methods.base import Level, Method
from agent.policy.catalogue import Catalogue
from agent.tomlfile import parse_toml
from agent.tomlschema import Document, Field, Table, check, suggestion, validate
from agent.vocabulary import LEVELS, MEDIA, VERIFY_MODES

__all__ = ["MEDIA", "VERIFY_MODES", "Profile", "Step", "available_profiles", "load_profile", "load_profile_file",
           "parse_profile"]

SCHEMA = 1
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


STEP = Table({"method": Field(str, required=True)}, extra=Field(str))  # options: checked against the method
SCHEMA_TABLE = Table({
    "include": Field(str),
    "schema": Field(int, required=True, minimum=SCHEMA, maximum=SCHEMA, expect=str(SCHEMA)),
    "summary": Field(str),
    "minimum_level": Field(str, choices=LEVELS),
    "legacy": Field(bool),
    "match": Field(dict, table=Table({"media": Field(list, items=Field(str, choices=MEDIA, noun="media"))})),
    "steps": Field(list, items=Field(dict, table=STEP)),
    "verify": Field(dict, table=Table({"mode": Field(str, choices=VERIFY_MODES)})),
})
"""The shape of a profile file; the rules between keys (methods and their options) are in parse_profile."""

MAX_INCLUDE_DEPTH = 4
"""A profile may include one that includes another, ... at most this deep (a site override of a site base
of a shipped profile is 2)."""


def parse_profile(text: str, name: str, source: str, folder: Path | None = None) -> Profile:
    """Validate TOML text as a profile named ``name``.

    ``folder``: where the file lives, for ``include = "base.toml"`` (None: a shipped profile, which
    may include only shipped profiles)."""
    if not _NAME.match(name):
        raise ProfileError(f"{source}: profile name {name!r} must be lower-case letters, digits, . _ -")
    document, data = _read(text, source, folder, ())
    validate(document, data, SCHEMA_TABLE)

    media = data.get("match", {}).get("media", list(MEDIA))
    if not media:
        raise document.error("[match].media: must name at least one media type", ("match", "media"))

    raw_steps = data.get("steps")
    if not raw_steps:
        raise document.error("needs at least one [[steps]] table with a method")
    steps: list[Step] = []
    for index, raw in enumerate(raw_steps):
        label = f"[[steps]] #{index + 1}"
        method = raw["method"]
        at = ("steps", index, "method")
        if method not in registry.METHODS:
            known = ", ".join(sorted(registry.METHODS))
            raise document.error(f"{label}: unknown method {method!r}{suggestion(method, registry.METHODS)} "
                                 f"(known: {known})", at)
        allowed_options = registry.option_names(method)
        options = {key: value for key, value in raw.items() if key != "method"}
        for key in options:
            if key not in allowed_options:
                hint = f" (allowed: {', '.join(sorted(allowed_options))})" if allowed_options else " (it takes none)"
                raise document.error(f"{label}: unknown option {key!r} for {method}{suggestion(key, allowed_options)}"
                                     f"{hint}", ("steps", index, key))
        try:
            registry.build(method, options)
        except Exception as exc:  # an option the method rejects, e.g. a pattern that is not hex
            message = getattr(exc, "message", str(exc))
            raise document.error(f"{label}: {message}", at) from exc
        steps.append(Step(method, tuple(sorted(options.items()))))

    return Profile(
        name=name,
        summary=data.get("summary", ""),
        minimum_level=Level(data.get("minimum_level", "clear")),
        media=tuple(media),
        steps=tuple(steps),
        verify_mode=data.get("verify", {}).get("mode", "sampling"),
        legacy=data.get("legacy", False),
        source=source,
    )


def _read(text: str, source: str, folder: Path | None, chain: tuple[str, ...]) -> tuple[Document, dict[str, Any]]:
    """The document and data of one profile file with its ``include`` (if any) resolved and merged."""
    data = parse_toml(text, source, ProfileError)
    document = Document.of(source, text, ProfileError)
    if "include" not in data:
        return document, data
    check(document, data["include"], SCHEMA_TABLE.fields["include"], ("include",))
    chain = (*chain, source)
    if len(chain) > MAX_INCLUDE_DEPTH:
        raise document.error(f"include: includes nested more than {MAX_INCLUDE_DEPTH} deep "
                             f"({' -> '.join(chain)})", ("include",))
    base_text, base_source, base_folder = _included(document, data.pop("include"), source, folder)
    if base_source in chain:
        raise document.error(f"include: include cycle: {' -> '.join((*chain, base_source))}", ("include",))
    base_document, base_data = _read(base_text, base_source, base_folder, chain)
    return _merge(base_document, base_data, document, data)


def _included(document: Document, reference: str, source: str, folder: Path | None) -> tuple[str, str, Path | None]:
    """``(text, source, folder)`` of the file an ``include`` names.

    A bare file name only ("base.toml"): a path could walk out of the profile directory, and the
    profile directory is the boundary of what an operator reviewed (the directory is root's; what
    it links to need not be). It is looked up next to the including file; a site file may also
    name a shipped profile (that is the point: a site override need not copy the profile it
    changes), including the shipped profile of its own name."""
    at = ("include",)
    stem = reference[:-5] if reference.endswith(".toml") else ""
    if not _NAME.fullmatch(stem) or "/" in reference or "\\" in reference:
        raise document.error(f"include: must name a .toml file in the same folder, like \"nist-purge.toml\" "
                             f"(no directories), got {reference!r}", at)
    if folder is not None:
        candidate = folder / reference
        own = Path(source)
        if candidate.exists() and not (own.exists() and candidate.resolve() == own.resolve()):
            if candidate.resolve().parent != folder.resolve():
                raise document.error(f"include: {reference!r} links outside {folder}; refusing it", at)
            return PROFILES.read_file(candidate), str(candidate), folder
    shipped = resources.files("wipe_profiles").joinpath(reference)
    if not shipped.is_file():
        where = f"{folder} or the shipped profiles" if folder is not None else "the shipped profiles"
        raise document.error(f"include: no profile file {reference!r} in {where} (see 'wipe-agent profiles list')",
                             at)
    return shipped.read_text(encoding="utf-8"), f"wipe_profiles/{reference}", None


def _merge(base: Document, base_data: dict[str, Any], over: Document,
           over_data: dict[str, Any]) -> tuple[Document, dict[str, Any]]:
    """tuned-style: the including file's keys override the base's; tables merge key by key, anything
    else (arrays included: [[steps]] is replaced whole, never spliced) replaces. Each key keeps the
    location of the file it came from."""
    origins = dict(base.origins)

    def merge(into: dict[str, Any], top: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
        merged = dict(into)
        for key, value in top.items():
            here = (*path, key)
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = merge(merged[key], value, here)
            else:
                for known in [p for p in origins if p[:len(here)] == here]:
                    del origins[known]
                merged[key] = value
        return merged

    data = merge(base_data, over_data, ())
    origins.update(over.origins)
    return Document(over.source, ProfileError, origins), data


PROFILES = Catalogue("profile", "wipe_profiles", None, "WIPE_AGENT_PROFILE_DIR", SYSTEM_PROFILE_DIR, ProfileError)


def load_profile_file(path: Path) -> Profile:
    """Load and validate one profile file (its name is the file's stem; it may include files beside it)."""
    return parse_profile(PROFILES.read_file(path), path.stem, str(path), path.parent)


def available_profiles() -> dict[str, str]:
    """Profile name → source; files in /etc/wipe-agent/profiles override shipped ones."""
    return PROFILES.available()


def load_profile(name: str) -> Profile:
    """Load a profile by name (override directory first, then the shipped ones)."""
    text, source = PROFILES.read(name)
    override = PROFILES.override_directory() / f"{name}.toml"
    return parse_profile(text, name, source, override.parent if source == str(override) else None)
