"""Station configuration: ``/etc/wipe-agent/station.toml`` → a validated, frozen :class:`StationConfig`.

Validated as strictly as profiles, through the same declared schema (:data:`SCHEMA_TABLE`, checked by
:mod:`agent.tomlschema`): an unknown key (with the one probably meant), a wrong type, a value out of
range or not among the allowed ones is an error ``FILE:LINE: key: message``, because a typo in a bay
table must never make the daemon wipe a drive the operator did not mean (or silently skip one it
should). Every key but ``station_id`` has a default::

    station_id = "station-01"
    state_dir = "/var/lib/wipe-agent"
    api_socket = "/run/wipe-agent/api.sock"
    api_group = "wipe-operators"
    max_parallel_jobs = 8
    [default_profiles]            # by media type, used by `start BAY` and bays without a profile
    ssd = "nist-purge"
    [[bays]]
    name = "bay-3"
    match = { ID_PATH = "pci-0000:00:17.0-ata-3" }   # udev properties; all must match (fnmatch globs)
    auto_start = true
    profile = "nist-purge"
    [timestamping]                # the organisation's RFC 3161 TSA ('wipe-agent tsa serve')
    url = "http://tsa.example.internal:8318/"
    timeout = 10                  # seconds; an unreachable TSA means signing without, flagged
    [organisation]                # printed on every certificate; name, location and phone are required
    name = "Northshire Constabulary"
    location = "Digital Forensics Unit, 1 Bridge St, Northshire"
    phone = "+44 1234 567890"
    classification_before = "OFFICIAL-SENSITIVE"
    classification_after = "Not classified: media sanitised"
    data_backed_up = "unknown"    # yes | no | unknown
    destination = "External reuse: scheme decided by the eligibility rules after validation"
    [organisation.destinations]   # wording by route or reuse scheme name (else `destination`)
    destroy = "Destruction by the organisation's contractor"
    [certificate]                 # how the station's documents are issued
    operator_title = "Sanitisation operator"   # for jobs from before operator sign-ins
    directory = "/var/lib/wipe-agent/certificates"   # default: certificates/ in state_dir
    [web]                         # the web console ('wipe-agent web serve'), a process of its own
    console_user = "wipe-web"     # the one login whose calls may name a signed-in web account (default: none)

There is no built-in organisation: a station without ``[organisation] name`` records its jobs but
issues no certificate. For older files a top-level ``organisation = "NAME"`` string is still read
as ``[organisation] name`` (and nothing else); giving both is an error.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError
from agent.tomlfile import parse_toml, read_bounded_text
from agent.tomlschema import Document, Field, Table, check, label, validate
from agent.tomlschema import Path_ as KeyPath
from agent.vocabulary import BACKED_UP, MEDIA

DEFAULT_CONFIG_PATH = Path("/etc/wipe-agent/station.toml")
DEFAULT_STATE_DIR = "/var/lib/wipe-agent"
DEFAULT_API_SOCKET = "/run/wipe-agent/api.sock"
DEFAULT_API_GROUP = "wipe-operators"
DEFAULT_PROFILES: dict[str, str] = {
    "ssd": "nist-purge",
    "hdd": "nist-purge",
    "virtual": "nist-clear-overwrite",
    "usb": "nist-clear-overwrite",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
DEFAULT_OPERATOR_TITLE = "Sanitisation operator"
MAX_ORGANISATION_TEXT = 200
MAX_PARALLEL_LIMIT = 64


@dataclass(frozen=True)
class Bay:
    """A physical slot of the station: which udev properties identify a drive in it, and what to do."""

    name: str
    match: tuple[tuple[str, str], ...]
    auto_start: bool = False
    profile: str | None = None

    def matches(self, properties: Mapping[str, str]) -> bool:
        """True when every match key is present and equal (values may be fnmatch globs)."""
        for key, pattern in self.match:
            value = properties.get(key)
            if value is None:
                return False
            if value != pattern and not (_is_glob(pattern) and fnmatch.fnmatchcase(value, pattern)):
                return False
        return True

    def to_json(self) -> dict[str, Any]:
        """JSON form (status output)."""
        return {"name": self.name, "match": dict(self.match), "auto_start": self.auto_start, "profile": self.profile}


@dataclass(frozen=True)
class Organisation:
    """The ``[organisation]`` table: who issues the certificates, and the wording they print by default."""

    name: str
    location: str = ""
    phone: str = ""
    classification_before: str = "OFFICIAL-SENSITIVE"
    classification_after: str = "Not classified: media sanitised, no data recoverable by the stated method"
    data_backed_up: str = "unknown"
    destination: str = "External reuse: scheme decided by the eligibility rules after validation"
    destinations: Mapping[str, str] = field(default_factory=dict)
    """Destination wording by route ("reuse", "destroy", ...) or reuse scheme name."""

    def to_json(self) -> dict[str, Any]:
        """JSON form (status output, the worker request)."""
        return {"name": self.name, "location": self.location, "phone": self.phone,
                "classification_before": self.classification_before,
                "classification_after": self.classification_after, "data_backed_up": self.data_backed_up,
                "destination": self.destination, "destinations": dict(self.destinations)}


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


@dataclass(frozen=True)
class StationConfig:
    """The validated station configuration."""

    station_id: str
    organisation: Organisation | None = None
    """[organisation]; None: no organisation configured, so no certificate is issued."""
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    api_socket: Path = Path(DEFAULT_API_SOCKET)
    api_group: str = DEFAULT_API_GROUP
    max_parallel_jobs: int = 8
    default_profiles: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PROFILES))
    bays: tuple[Bay, ...] = ()
    source: str = "<defaults>"
    tsa_url: str | None = None
    """[timestamping] url: the organisation's TSA (None: documents are signed without timestamps)."""
    tsa_timeout: float = 10.0
    audit_checkpoint_every: int = 100
    """[audit] checkpoint_every: the station signs its audit head at least every this many entries."""
    audit_checkpoint_minutes: float = 15.0
    """[audit] checkpoint_minutes: … and once an unsigned entry is this many minutes old."""
    certificate_operator_title: str = DEFAULT_OPERATOR_TITLE
    """[certificate] operator_title: the title printed for a job recorded before operator sign-ins."""
    certificate_dir: Path | None = None
    """[certificate] directory: where documents are written (None: ``certificates`` in state_dir)."""
    web_console_user: str | None = None
    """[web] console_user: the login the web console runs as; only its calls may act for a web account."""

    def bay(self, name: str) -> Bay:
        """The bay called ``name``."""
        for bay in self.bays:
            if bay.name == name:
                return bay
        known = ", ".join(bay.name for bay in self.bays) or "none configured"
        raise ConfigError(f"no bay {name!r} in {self.source} (bays: {known})")

    def bay_for(self, properties: Mapping[str, str]) -> Bay | None:
        """The first bay whose match applies to a drive's properties (None: outside every bay)."""
        for bay in self.bays:
            if bay.matches(properties):
                return bay
        return None

    def profile_for(self, bay: Bay | None, media: str, explicit: str | None = None) -> str:
        """Which profile a job uses: explicit > the bay's > the default for the media type."""
        if explicit:
            return explicit
        if bay is not None and bay.profile:
            return bay.profile
        try:
            return self.default_profiles[media]
        except KeyError:
            raise ConfigError(f"no default profile for media {media!r} in {self.source}") from None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "station_id": self.station_id,
            "organisation": None if self.organisation is None else self.organisation.to_json(),
            "state_dir": str(self.state_dir),
            "api_socket": str(self.api_socket),
            "api_group": self.api_group,
            "max_parallel_jobs": self.max_parallel_jobs,
            "default_profiles": dict(self.default_profiles),
            "bays": [bay.to_json() for bay in self.bays],
            "source": self.source,
            "timestamping": {"url": self.tsa_url, "timeout": self.tsa_timeout},
            "audit": {"checkpoint_every": self.audit_checkpoint_every,
                      "checkpoint_minutes": self.audit_checkpoint_minutes},
            "certificate": {"operator_title": self.certificate_operator_title,
                            "directory": None if self.certificate_dir is None else str(self.certificate_dir)},
            "web": {"console_user": self.web_console_user},
        }


def _absolute(value: str) -> str | None:
    if not value or not os.path.isabs(value):
        return f"must be an absolute path, got {value!r}"
    return None


def _socket_path(value: str) -> str | None:
    if len(os.fsencode(value)) > 107:
        return "path longer than a Unix socket allows (107 bytes)"
    return _absolute(value)


def _name(value: str) -> str | None:
    return None if _NAME.match(value) else f"must be letters, digits, . _ - (≤64), got {value!r}"


def _url(value: str) -> str | None:
    if not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
        return f"must be an http:// or https:// URL, got {value!r}"
    return None


def _login(value: str) -> str | None:
    return None if re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", value) else f"{value!r} is not a login name"


def _non_empty(value: dict[str, Any]) -> str | None:
    return None if value else "must name at least one udev property"


def _printed_text(value: str) -> str | None:
    """Why a string printed on signed certificates is refused: empty, control/format characters, not NFC,
    too long, a placeholder, or text the renderer cannot print and read back."""
    from certs.record import text_problem

    if not value.strip():
        return "must not be empty"
    problem = text_problem(value)
    if problem:
        return f"{problem} (it is printed on signed certificates)"
    if len(value) > MAX_ORGANISATION_TEXT:
        return f"longer than {MAX_ORGANISATION_TEXT} characters"
    problem = placeholder_problem(value)
    if problem:
        return problem
    problem = printable_problem(value)
    if problem:
        return f"{problem} (it is printed on signed certificates)"
    return None


_PRINTED = Field(str, problem=_printed_text)
_ISSUER = "(it is printed on every certificate, so whoever holds one can reach the issuer)"
ORGANISATION_TABLE = Table({
    "name": Field(str, required=True, required_why="(it is printed on every certificate)", problem=_printed_text),
    "classification_before": _PRINTED,
    "classification_after": _PRINTED,
    "data_backed_up": Field(str, choices=BACKED_UP),
    "destination": _PRINTED,
    "destinations": Field(dict, table=Table(extra=_PRINTED, key_problem=_printed_text)),
    "location": _PRINTED,
    "phone": _PRINTED,
})
"""``[organisation]``: every value is printed on signed certificates (see :class:`Organisation`). Location
and phone are required too, but said after anything wrong in the keys given (see :func:`parse_config`)."""

BAY_TABLE = Table({
    "name": Field(str, required=True, problem=_name),
    "match": Field(dict, required=True, required_why="(udev properties that identify the slot)",
                   problem=_non_empty, table=Table(extra=Field(str))),
    "auto_start": Field(bool),
    "profile": Field(str),
}, named_by=("name", "bay"))
"""One ``[[bays]]`` entry; its name must also be unique (checked after the schema pass)."""

SCHEMA_TABLE = Table({
    "station_id": Field(str, required=True, problem=_name),
    "organisation": Field(dict, table=ORGANISATION_TABLE),  # or the legacy name string, read before
    "state_dir": Field(str, problem=_absolute),
    "api_socket": Field(str, problem=_socket_path),
    "api_group": Field(str),
    "max_parallel_jobs": Field(int, minimum=1, maximum=MAX_PARALLEL_LIMIT),
    "default_profiles": Field(dict, table=Table({media: Field(str) for media in MEDIA}, noun="media")),
    "bays": Field(list, items=Field(dict, table=BAY_TABLE)),
    "timestamping": Field(dict, table=Table({
        "url": Field(str, problem=_url),
        "timeout": Field((int, float), minimum=0.5, maximum=120, expect="0.5 to 120 seconds"),
    })),
    "audit": Field(dict, table=Table({
        "checkpoint_every": Field(int, minimum=1, maximum=100_000, expect="a whole number from 1 to 100000"),
        "checkpoint_minutes": Field((int, float), minimum=0.5, maximum=1440, expect="0.5 to 1440"),
    })),
    "certificate": Field(dict, table=Table({
        "operator_title": _PRINTED,
        "directory": Field(str, problem=_absolute),
    })),
    "web": Field(dict, table=Table({"console_user": Field(str, problem=_login)})),
})
"""The shape of ``station.toml``: keys, types, bounds, enumerations and the rules on single values. What
relates entries (bay names unique, the profiles named exist) is checked after it, located the same way."""

_LEGACY_ORGANISATION = Field(str, problem=_printed_text)


def parse_config(text: str, source: str = "<string>", check_profiles: bool = True) -> StationConfig:
    """Validate TOML text as a station configuration."""
    data = parse_toml(text, source, ConfigError)
    doc = Document.of(source, text, ConfigError)
    legacy = data.get("organisation")
    if isinstance(legacy, str):  # the older ``organisation = "NAME"``: the name only, checked as such below
        data = {key: value for key, value in data.items() if key != "organisation"}
    validate(doc, data, SCHEMA_TABLE)
    if isinstance(legacy, str):
        check(doc, legacy, _LEGACY_ORGANISATION, ("organisation",))
    for key in ("location", "phone"):
        if "organisation" in data and key not in data["organisation"]:
            # else every certificate prints "Location —": the placeholder issue 11 is about
            raise doc.error(f"[organisation].{key} is required {_ISSUER}", ("organisation",))
    seen: set[str] = set()
    for index, raw in enumerate(data.get("bays", [])):
        if raw["name"] in seen:
            raise doc.error(f"{label(('bays', index))}: duplicate bay name {raw['name']!r}", ("bays", index, "name"))
        seen.add(raw["name"])
    organisation = (Organisation(name=legacy) if isinstance(legacy, str)
                    else _organisation(data["organisation"]) if "organisation" in data else None)
    timestamping = data.get("timestamping", {})
    audit = data.get("audit", {})
    certificate = data.get("certificate", {})
    directory = certificate.get("directory")
    config = StationConfig(
        station_id=data["station_id"],
        organisation=organisation,
        state_dir=Path(data.get("state_dir", DEFAULT_STATE_DIR)),
        api_socket=Path(data.get("api_socket", DEFAULT_API_SOCKET)),
        api_group=data.get("api_group", DEFAULT_API_GROUP),
        max_parallel_jobs=data.get("max_parallel_jobs", 8),
        default_profiles={**DEFAULT_PROFILES, **data.get("default_profiles", {})},
        bays=tuple(Bay(raw["name"], tuple(sorted(raw["match"].items())), raw.get("auto_start", False),
                       raw.get("profile")) for raw in data.get("bays", [])),
        source=source,
        tsa_url=timestamping.get("url"),
        tsa_timeout=float(timestamping.get("timeout", 10.0)),
        audit_checkpoint_every=audit.get("checkpoint_every", 100),
        audit_checkpoint_minutes=float(audit.get("checkpoint_minutes", 15.0)),
        certificate_operator_title=certificate.get("operator_title", DEFAULT_OPERATOR_TITLE),
        certificate_dir=None if directory is None else Path(directory),
        web_console_user=data.get("web", {}).get("console_user"),
    )
    if check_profiles:
        _check_profiles(config, doc)
    return config


_PLACEHOLDER = re.compile(r"[\W_]*")


def placeholder_problem(value: str) -> str | None:
    """A value given but saying nothing ("", "   ", "—", "n/a" is left to people), or one that could
    pose as a second field: runs of spaces let "Unit 4        Phone +44 …" print like a Phone row."""
    if not value.strip():
        return "is blank (leave the key out or give the real value)"
    if _PLACEHOLDER.fullmatch(value.strip()):
        return f"{value.strip()!r} is a placeholder, not a value (give the real value)"
    if "  " in value or value != value.strip():
        return "has leading, trailing or repeated spaces (they can make a value pose as another printed field)"
    return None


def certificate_text_problem(value: str) -> str | None:
    """Why a value for a certificate field (an asset tag, a host's make/model/serial) can never be
    signed or printed as given, else None: asked at input, before any drive is touched."""
    from certs.record import text_problem

    problem = text_problem(value) or printable_problem(value)
    if not problem and len(value) > MAX_ORGANISATION_TEXT:
        problem = f"longer than {MAX_ORGANISATION_TEXT} characters"
    return problem


def printable_problem(value: str) -> str | None:
    """What the certificate renderer cannot print and read back (see certs.render.print_problem); a
    station without the fonts is not judged here (its certificates fail with FontsMissing, said plainly)."""
    from certs.errors import FontsMissing
    from certs.render import print_problem

    try:
        return print_problem(value)
    except FontsMissing:
        return None


def _organisation(raw: Mapping[str, Any]) -> Organisation:
    """The validated [organisation] table as the dataclass (absent keys keep their defaults)."""
    values = {key: raw[key] for key in ORGANISATION_TABLE.fields if key in raw and key != "destinations"}
    return Organisation(**values, destinations=dict(raw.get("destinations", {})))


def _check_profiles(config: StationConfig, doc: Document) -> None:
    """Every profile the configuration names must load (a typo here would only surface mid-intake);
    the error names the line of the key that names it."""
    from agent.errors import ProfileError
    from agent.policy.profiles import load_profile

    named: list[tuple[str, str, KeyPath]] = [
        (f"[default_profiles].{media}", name, ("default_profiles", media))
        for media, name in config.default_profiles.items()]
    named += [(f"bay {bay.name!r}.profile", bay.profile, ("bays", index, "profile"))
              for index, bay in enumerate(config.bays) if bay.profile]
    for key, name, at in sorted(named):
        try:
            load_profile(name)
        except ProfileError as exc:
            raise doc.error(f"{key}: {exc.message}", at) from exc


def default_config_path() -> Path:
    """``$WIPE_AGENT_CONFIG`` or ``/etc/wipe-agent/station.toml``."""
    return Path(os.environ.get("WIPE_AGENT_CONFIG", str(DEFAULT_CONFIG_PATH)))


def load_config(path: str | os.PathLike[str] | None = None, check_profiles: bool = True) -> StationConfig:
    """Load and validate the station configuration file."""
    config_path = Path(path) if path is not None else default_config_path()
    text = read_bounded_text(config_path, ConfigError, "station configuration file")
    return parse_config(text, str(config_path), check_profiles=check_profiles)
