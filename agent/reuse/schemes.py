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
from agent.tomlfile import parse_toml
from agent.tomlschema import Document, Field, Table, label, validate
from agent.vocabulary import FLASH_MEDIA, LEVEL_RULES, MEDIA, VERIFY_MODES

__all__ = ["FLASH_MEDIA", "LEVEL_RULES", "MEDIA", "VERIFY_MODES", "HealthLimits", "Scheme", "available_schemes",
           "load_all_schemes", "load_scheme", "load_scheme_file", "parse_scheme"]

SCHEMA = 1
SYSTEM_SCHEME_DIR = Path("/etc/wipe-agent/schemes")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

_HEALTH_LIMITS = ("max_reallocated_sectors", "max_pending_sectors", "max_offline_uncorrectable",
                  "max_percentage_used", "max_media_errors")


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


_NAMES = Field(list, items=Field(str), unique=True)  # attestation and role names: checked against _NAME below
_MODES = Field(list, items=Field(str, choices=VERIFY_MODES), unique=True)
SCHEMA_TABLE = Table({
    "schema": Field(int, required=True, minimum=SCHEMA, maximum=SCHEMA, expect=str(SCHEMA)),
    "summary": Field(str),
    "destination": Field(str),
    "rank": Field(int),
    "demo": Field(bool),
    "attestations": _NAMES,
    "levels": Field(dict, table=Table({media: Field(str, choices=LEVEL_RULES) for media in MEDIA})),
    "verification": Field(dict, table=Table({"modes": _MODES, "clear_modes": _MODES})),
    "health": Field(dict, table=Table({"required": Field(bool), "allow_nvme_critical_warning": Field(bool),
                                       **{limit: Field(int) for limit in _HEALTH_LIMITS}})),
    "validation": Field(dict, table=Table({"required": Field(bool), "roles": _NAMES})),
})
"""The shape of a scheme file; the safety rules between keys are in parse_scheme."""


def _names(document: Document, values: list[str], path: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        if not _NAME.match(value):
            raise document.error(f"{label(path)}: {value!r} must be lower-case letters, digits, . _ -", path)
    return tuple(values)


def parse_scheme(text: str, name: str, source: str) -> Scheme:
    """Validate TOML text as the scheme ``name``; raise SchemeError naming file, key and line."""
    data = parse_toml(text, source, SchemeError)
    if not _NAME.match(name):
        raise SchemeError(f"{source}: scheme name {name!r} must be lower-case letters, digits, . _ -")
    document = Document.of(source, text, SchemeError)
    validate(document, data, SCHEMA_TABLE)
    summary = data.get("summary", "")
    destination = data.get("destination", "")
    if not destination.strip():
        raise document.error("destination is required: the text printed on the manifest", ("destination",))
    rank = data.get("rank", 100)
    demo = data.get("demo", False)
    attestations = _names(document, data.get("attestations", []), ("attestations",))

    levels_table = data.get("levels", {})
    levels: list[tuple[str, str]] = []
    for media in MEDIA:
        rule = levels_table.get(media, "refuse")
        at = ("levels", media)
        if media in FLASH_MEDIA and rule == "clear":
            raise document.error(f"[levels].{media}: flash media need Purge; Clear cannot reach spare blocks "
                                 "(NIST SP 800-88 Rev. 1 App. A, flash memory devices)", at)
        if media == "virtual" and rule != "refuse" and not demo:
            raise document.error("[levels].virtual: virtual media are acceptable only to a scheme with demo = true", at)
        if demo and media != "virtual" and rule != "refuse":
            raise document.error(f"[levels].{media}: a demo scheme accepts virtual media only", at)
        levels.append((media, rule))
    if all(rule == "refuse" for _, rule in levels):
        raise document.error("[levels]: the scheme accepts no media type at all", ("levels",))

    verification = data.get("verification", {})
    # the default order is the file format's, not the vocabulary's: it is what `schemes show` prints
    modes = tuple(verification.get("modes", ["full", "sampling"]))
    if not modes:
        raise document.error("[verification].modes: must accept at least one mode", ("verification", "modes"))
    clear_modes = tuple(verification.get("clear_modes", ["full"]))
    if any(mode not in modes for mode in clear_modes):
        raise document.error("[verification].clear_modes must be a subset of modes", ("verification", "clear_modes"))
    if any(rule == "clear" for _, rule in levels) and not clear_modes:
        raise document.error("[verification].clear_modes: Clear is accepted, so name the verification it needs",
                             ("verification", "clear_modes"))

    health_table = data.get("health", {})
    limits: dict[str, int] = {}
    for key in _HEALTH_LIMITS:
        value = health_table.get(key, 0)
        if value < 0 or (key == "max_percentage_used" and value > 255):
            raise document.error(f"[health].{key}: out of range ({value})", ("health", key))
        limits[key] = value
    if "max_percentage_used" not in health_table:
        limits["max_percentage_used"] = 100
    health = HealthLimits(
        required=health_table.get("required", True),
        allow_nvme_critical_warning=health_table.get("allow_nvme_critical_warning", False),
        **limits,
    )
    validation = data.get("validation", {})
    return Scheme(
        name=name, summary=summary, destination=destination, rank=rank, demo=demo, attestations=attestations,
        levels=tuple(levels), verification_modes=modes, clear_verification_modes=clear_modes, health=health,
        validation_required=validation.get("required", True),
        validator_roles=_names(document, validation.get("roles", []), ("validation", "roles")),
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
