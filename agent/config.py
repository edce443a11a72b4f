"""Station configuration: ``/etc/wipe-agent/station.toml`` → a validated, frozen :class:`StationConfig`.

Validated as strictly as profiles: an unknown key, a wrong type or an impossible value is an error
that names the file and the key, because a typo in a bay table must never make the daemon wipe a
drive the operator did not mean (or silently skip one it should). Every key but ``station_id`` has
a default::

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

from agent.errors import AgentError, ConfigError
from agent.tomlfile import exact_type, parse_toml, read_bounded_text
from agent.tomlschema import Document, suggestion
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
_TOP_KEYS = {"station_id", "organisation", "state_dir", "api_socket", "api_group", "max_parallel_jobs",
             "default_profiles", "bays", "timestamping", "audit", "certificate", "web"}
_CERTIFICATE_KEYS = {"operator_title", "directory"}
DEFAULT_OPERATOR_TITLE = "Sanitisation operator"
_TIMESTAMPING_KEYS = {"url", "timeout"}
_ORGANISATION_KEYS = {"name", "location", "phone", "classification_before", "classification_after",
                      "data_backed_up", "destination", "destinations"}
MAX_ORGANISATION_TEXT = 200
_BAY_KEYS = {"name", "match", "auto_start", "profile"}
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


def _type_name(value: Any) -> str:
    return "boolean" if isinstance(value, bool) else type(value).__name__


def _expect(doc: Document, label: str, value: Any, kind: type, at: KeyPath = ()) -> None:
    if not exact_type(value, kind):
        raise doc.error(f"{label}: expected {kind.__name__}, got {_type_name(value)}", at)


def _unknown(doc: Document, prefix: str, key: str, allowed: Any, at: KeyPath) -> AgentError:
    return doc.error(f"{prefix}unknown key {key!r}{suggestion(key, allowed)} (allowed: {', '.join(sorted(allowed))})",
                     at)


def _path(doc: Document, label: str, value: Any, at: KeyPath | None = None) -> Path:
    at = (label,) if at is None else at
    _expect(doc, label, value, str, at)
    if not value or not os.path.isabs(value):
        raise doc.error(f"{label}: must be an absolute path, got {value!r}", at)
    return Path(value)


def parse_config(text: str, source: str = "<string>", check_profiles: bool = True) -> StationConfig:
    """Validate TOML text as a station configuration."""
    data = parse_toml(text, source, ConfigError)
    doc = Document.of(source, text, ConfigError)
    for key in data:
        if key not in _TOP_KEYS:
            raise _unknown(doc, "", key, _TOP_KEYS, (key,))
    if "station_id" not in data:
        raise doc.error("station_id is required")
    station_id = data["station_id"]
    _expect(doc, "station_id", station_id, str, ("station_id",))
    if not _NAME.match(station_id):
        raise doc.error(f"station_id {station_id!r} must be letters, digits, . _ - (≤64)", ("station_id",))
    organisation = _organisation(doc, data.get("organisation"))
    state_dir = _path(doc, "state_dir", data.get("state_dir", DEFAULT_STATE_DIR))
    api_socket = _path(doc, "api_socket", data.get("api_socket", DEFAULT_API_SOCKET))
    if len(os.fsencode(str(api_socket))) > 107:
        raise doc.error("api_socket: path longer than a Unix socket allows (107 bytes)", ("api_socket",))
    api_group = data.get("api_group", DEFAULT_API_GROUP)
    _expect(doc, "api_group", api_group, str, ("api_group",))
    parallel = data.get("max_parallel_jobs", 8)
    _expect(doc, "max_parallel_jobs", parallel, int, ("max_parallel_jobs",))
    if not 1 <= parallel <= MAX_PARALLEL_LIMIT:
        raise doc.error(f"max_parallel_jobs must be 1..{MAX_PARALLEL_LIMIT}, got {parallel}", ("max_parallel_jobs",))

    raw_defaults = data.get("default_profiles", {})
    _expect(doc, "[default_profiles]", raw_defaults, dict, ("default_profiles",))
    defaults = dict(DEFAULT_PROFILES)
    for media, name in raw_defaults.items():
        if media not in MEDIA:
            raise doc.error(f"[default_profiles]: unknown media {media!r} (known: {', '.join(MEDIA)})",
                            ("default_profiles", media))
        _expect(doc, f"[default_profiles].{media}", name, str, ("default_profiles", media))
        defaults[media] = name

    raw_bays = data.get("bays", [])
    _expect(doc, "[[bays]]", raw_bays, list, ("bays",))
    bays: list[Bay] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_bays, start=1):
        label = f"[[bays]] #{index}"
        _expect(doc, label, raw, dict, ("bays", index - 1))
        for key in raw:
            if key not in _BAY_KEYS:
                raise _unknown(doc, f"{label}: ", key, _BAY_KEYS, ("bays", index - 1, key))
        name = raw.get("name")
        if name is None:
            raise doc.error(f"{label}: name is required", ("bays", index - 1))
        _expect(doc, f"{label}.name", name, str, ("bays", index - 1, "name"))
        if not _NAME.match(name):
            raise doc.error(f"{label}.name {name!r} must be letters, digits, . _ - (≤64)", ("bays", index - 1, "name"))
        if name in seen:
            raise doc.error(f"{label}: duplicate bay name {name!r}", ("bays", index - 1, "name"))
        seen.add(name)
        label = f"bay {name!r}"
        match = raw.get("match")
        if match is None:
            raise doc.error(f"{label}: match is required (udev properties that identify the slot)", ("bays", index - 1))
        _expect(doc, f"{label}.match", match, dict, ("bays", index - 1, "match"))
        if not match:
            raise doc.error(f"{label}.match: must name at least one udev property", ("bays", index - 1, "match"))
        for key, value in match.items():
            _expect(doc, f"{label}.match.{key}", value, str, ("bays", index - 1, "match", key))
        auto_start = raw.get("auto_start", False)
        _expect(doc, f"{label}.auto_start", auto_start, bool, ("bays", index - 1, "auto_start"))
        profile = raw.get("profile")
        if profile is not None:
            _expect(doc, f"{label}.profile", profile, str, ("bays", index - 1, "profile"))
        bays.append(Bay(name, tuple(sorted(match.items())), auto_start, profile))

    config = StationConfig(
        station_id=station_id,
        organisation=organisation,
        state_dir=state_dir,
        api_socket=api_socket,
        api_group=api_group,
        max_parallel_jobs=parallel,
        default_profiles=defaults,
        bays=tuple(bays),
        source=source,
        **_timestamping(doc, data.get("timestamping", {})),
        **_audit(doc, data.get("audit", {})),
        **_certificate(doc, data.get("certificate", {})),
        **_web(doc, data.get("web", {})),
    )
    if check_profiles:
        _check_profiles(config)
    return config


def _audit(doc: Document, raw: Any) -> dict[str, Any]:
    """The [audit] table: how often the station signs a checkpoint of its audit chain (1-100000 entries,
    0.5 minutes to a day)."""
    _expect(doc, "[audit]", raw, dict, ("audit",))
    for key in raw:
        if key not in ("checkpoint_every", "checkpoint_minutes"):
            raise _unknown(doc, "[audit]: ", key, ("checkpoint_every", "checkpoint_minutes"), ("audit", key))
    every = raw.get("checkpoint_every", 100)
    if not exact_type(every, int) or not 1 <= every <= 100_000:
        raise doc.error(f"[audit].checkpoint_every must be a whole number from 1 to 100000, got {every!r}",
                        ("audit", "checkpoint_every"))
    minutes = raw.get("checkpoint_minutes", 15.0)
    if isinstance(minutes, bool) or not isinstance(minutes, int | float) or not 0.5 <= minutes <= 1440:
        raise doc.error(f"[audit].checkpoint_minutes must be 0.5 to 1440, got {minutes!r}",
                        ("audit", "checkpoint_minutes"))
    return {"audit_checkpoint_every": every, "audit_checkpoint_minutes": float(minutes)}


def _web(doc: Document, raw: Any) -> dict[str, Any]:
    """The [web] table: the login name the web console runs as (letters, digits, . _ -)."""
    _expect(doc, "[web]", raw, dict, ("web",))
    for key in raw:
        if key != "console_user":
            raise _unknown(doc, "[web]: ", key, ("console_user",), ("web", key))
    user = raw.get("console_user")
    if user is not None:
        _expect(doc, "[web].console_user", user, str, ("web", "console_user"))
        if not re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", user):
            raise doc.error(f"[web].console_user {user!r} is not a login name", ("web", "console_user"))
    return {"web_console_user": user}


def _certificate(doc: Document, raw: Any) -> dict[str, Any]:
    """The [certificate] table: the default operator title (printed) and the documents' directory."""
    _expect(doc, "[certificate]", raw, dict, ("certificate",))
    for key in raw:
        if key not in _CERTIFICATE_KEYS:
            raise _unknown(doc, "[certificate]: ", key, _CERTIFICATE_KEYS, ("certificate", key))
    title = _organisation_text(doc, "[certificate].operator_title",
                               raw.get("operator_title", DEFAULT_OPERATOR_TITLE), required=True,
                               at=("certificate", "operator_title"))
    directory = raw.get("directory")
    return {"certificate_operator_title": title,
            "certificate_dir": None if directory is None else _path(doc, "[certificate].directory", directory,
                                                                    ("certificate", "directory"))}


def _timestamping(doc: Document, raw: Any) -> dict[str, Any]:
    """The [timestamping] table: an http(s) URL and a timeout of 0.5 to 120 seconds."""
    _expect(doc, "[timestamping]", raw, dict, ("timestamping",))
    for key in raw:
        if key not in _TIMESTAMPING_KEYS:
            raise _unknown(doc, "[timestamping]: ", key, _TIMESTAMPING_KEYS, ("timestamping", key))
    url = raw.get("url")
    if url is not None:
        _expect(doc, "[timestamping].url", url, str, ("timestamping", "url"))
        if not re.match(r"^https?://[^\s/]+(/\S*)?$", url):
            raise doc.error(f"[timestamping].url must be an http:// or https:// URL, got {url!r}",
                            ("timestamping", "url"))
    timeout = raw.get("timeout", 10.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0.5 <= timeout <= 120:
        raise doc.error(f"[timestamping].timeout must be 0.5 to 120 seconds, got {timeout!r}",
                        ("timestamping", "timeout"))
    return {"tsa_url": url, "tsa_timeout": float(timeout)}


def _organisation_text(doc: Document, label: str, value: Any, required: bool = False, at: KeyPath = ()) -> str:
    """A string printed on signed certificates: no control/format characters, NFC, bounded, one line."""
    from certs.record import text_problem

    _expect(doc, label, value, str, at)
    if required and not value.strip():
        raise doc.error(f"{label}: must not be empty", at)
    problem = text_problem(value)
    if problem:
        raise doc.error(f"{label}: {problem} (it is printed on signed certificates)", at)
    if len(value) > MAX_ORGANISATION_TEXT:
        raise doc.error(f"{label}: longer than {MAX_ORGANISATION_TEXT} characters", at)
    problem = placeholder_problem(value) if value else None
    if problem:
        raise doc.error(f"{label}: {problem}", at)
    problem = printable_problem(value)
    if problem:
        raise doc.error(f"{label}: {problem} (it is printed on signed certificates)", at)
    return str(value)


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


def _organisation(doc: Document, raw: Any) -> Organisation | None:
    """[organisation] (or the legacy top-level ``organisation = "NAME"`` string, read as the name only)."""
    if raw is None:
        return None
    if isinstance(raw, str):
        return Organisation(name=_organisation_text(doc, "organisation", raw, required=True, at=("organisation",)))
    _expect(doc, "[organisation]", raw, dict, ("organisation",))
    for key in raw:
        if key not in _ORGANISATION_KEYS:
            raise _unknown(doc, "[organisation]: ", key, _ORGANISATION_KEYS, ("organisation", key))
    if "name" not in raw:
        raise doc.error("[organisation].name is required (it is printed on every certificate)", ("organisation",))
    values: dict[str, Any] = {}
    for key in sorted(_ORGANISATION_KEYS - {"destinations", "data_backed_up"}):
        if key in raw:
            values[key] = _organisation_text(doc, f"[organisation].{key}", raw[key], required=True,
                                             at=("organisation", key))
    backed_up = raw.get("data_backed_up", "unknown")
    _expect(doc, "[organisation].data_backed_up", backed_up, str, ("organisation", "data_backed_up"))
    if backed_up not in BACKED_UP:
        raise doc.error(f"[organisation].data_backed_up must be one of {', '.join(BACKED_UP)}, "
                        f"got {backed_up!r}", ("organisation", "data_backed_up"))
    destinations = raw.get("destinations", {})
    _expect(doc, "[organisation.destinations]", destinations, dict, ("organisation", "destinations"))
    for key, wording in destinations.items():
        at = ("organisation", "destinations", key)
        _organisation_text(doc, "[organisation.destinations] key", key, required=True, at=at)
        _organisation_text(doc, f"[organisation.destinations].{key}", wording, required=True, at=at)
    for key in ("location", "phone"):
        if key not in raw:  # else every certificate prints "Location —": the placeholder issue 11 is about
            raise doc.error(f"[organisation].{key} is required (it is printed on every certificate, "
                            "so whoever holds one can reach the issuer)", ("organisation",))
    return Organisation(**values, data_backed_up=backed_up, destinations=dict(destinations))


def _check_profiles(config: StationConfig) -> None:
    """Every profile the configuration names must load (a typo here would only surface mid-intake)."""
    from agent.errors import ProfileError
    from agent.policy.profiles import load_profile

    names = {(f"[default_profiles].{media}", name) for media, name in config.default_profiles.items()}
    names |= {(f"bay {bay.name!r}.profile", bay.profile) for bay in config.bays if bay.profile}
    for label, name in sorted(names):
        try:
            load_profile(name)
        except ProfileError as exc:
            raise ConfigError(f"{config.source}: {label}: {exc.message}") from exc


def default_config_path() -> Path:
    """``$WIPE_AGENT_CONFIG`` or ``/etc/wipe-agent/station.toml``."""
    return Path(os.environ.get("WIPE_AGENT_CONFIG", str(DEFAULT_CONFIG_PATH)))


def load_config(path: str | os.PathLike[str] | None = None, check_profiles: bool = True) -> StationConfig:
    """Load and validate the station configuration file."""
    config_path = Path(path) if path is not None else default_config_path()
    text = read_bounded_text(config_path, ConfigError, "station configuration file")
    return parse_config(text, str(config_path), check_profiles=check_profiles)
