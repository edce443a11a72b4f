"""The sanitisation record: every field NIST SP 800-88 Rev. 1 App. G asks for, plus the evidence.

The record is a tree of frozen dataclasses holding only JSON-able values (str, int, float, bool,
None, tuples and ``dict[str, str]``). Its identity is its canonical JSON (keys sorted, no
whitespace, UTF-8, no NaN/Infinity) and the SHA-256 of those bytes: that hash is printed on the
certificate, carried in its QR code and checked by :mod:`certs.verify` against the JSON embedded
in the signed PDF.

Values are validated when a record is constructed, not only when it is parsed, so the agent cannot
build a record the verifier would later refuse. :meth:`SanitisationRecord.from_json` is strict: an
unknown key, a missing key, a duplicate key or a wrong type is a :class:`~certs.errors.RecordError`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal

from certs.errors import RecordError

SCHEMA_VERSION = 2
"""Version of the record layout this code writes; bumped on any incompatible change.

Version 2 adds ``host`` (the computer the drive came out of, from intake) and ``health`` (the
SMART summary read before the wipe). Version 1 records (issued before) still parse and verify:
they hold neither key, and their canonical JSON omits both, so their hash is unchanged."""
READABLE_SCHEMAS = (1, 2)
_SCHEMA_2_KEYS = ("host", "health")
HealthStatus = Literal["ok", "not_applicable", "unavailable"]

Level = Literal["Clear", "Purge", "Destroy"]
Outcome = Literal["sanitised", "failed"]
Route = Literal["reuse", "recycle", "destroy", "manufacturer", "other"]
BackedUp = Literal["yes", "no", "unknown"]
StepOutcome = Literal["applied", "skipped", "failed"]
VerificationMode = Literal["full", "sampling", "none"]
VerificationResult = Literal["passed", "failed", "not_run"]
CanaryResult = Literal["passed", "failed", "not_applicable"]

# Identifiers end up in file names, X.509 common names and QR payloads: keep them boring.
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")


def is_identifier(value: str) -> bool:
    """Whether ``value`` is acceptable as a certificate, job or station id."""
    return _IDENTIFIER.fullmatch(value) is not None


_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
"""Unicode categories refused in every string of a signed document: control characters (NUL, ESC,
CR, LF, TAB, DEL, C1), format characters (bidi overrides such as U+202E, zero-width spaces, U+FEFF)
and line/paragraph separators. Each makes what a person reads differ from what is signed (a
reversed asset tag, a fake second line) or rewrites a partner's terminal when printed."""


def text_problem(value: str) -> str | None:
    """Why ``value`` may not appear in a signed document, or None when it may.

    Refused: characters of the categories in :data:`_REFUSED_CATEGORIES` (named by code point) and
    text that is not in Unicode NFC (two spellings of one visible string must not be two records).
    """
    for character in value:
        if unicodedata.category(character) in _REFUSED_CATEGORIES:
            return f"contains the control or format character U+{ord(character):04X}"
    if not unicodedata.is_normalized("NFC", value):
        return "is not in Unicode normal form NFC"
    return None


def asset_key(tag: str) -> str:
    """The one identity of an asset tag, wherever two tags are compared (a manifest listing an asset twice, a
    station's register, the fleet's): compatibility forms folded (NFKC: a full-width P, U+FF30, is P),
    case folded, and white space (any kind) collapsed to one space and trimmed. Two tags with one key are one
    label on one device, however they were typed."""
    return " ".join(unicodedata.normalize("NFKC", tag).casefold().split())


def asset_tag_problem(tag: str) -> str | None:
    """Why ``tag`` is not an asset tag as it should be recorded, else None: besides :func:`text_problem`, white
    space at either end, white space other than single spaces, or compatibility characters (a full-width letter,
    a no-break space) -- each a second spelling of a tag another entry already has (:func:`asset_key`)."""
    problem = text_problem(tag)
    if problem:
        return problem
    if not tag.strip():
        return "is empty"
    if tag != tag.strip():
        return "has white space at its start or end"
    if " ".join(tag.split()) != tag:
        return "has white space other than single spaces"
    if unicodedata.normalize("NFKC", tag) != tag:
        return "has compatibility characters (full-width letters, ligatures, no-break spaces); type it plainly"
    return None


def check_document_strings(value: object, path: str) -> None:
    """Apply :func:`text_problem` to every string (keys too) in a parsed JSON document; RecordError names the path."""
    if isinstance(value, str):
        problem = text_problem(value)
        if problem:
            _fail(path, problem)
    elif isinstance(value, dict):
        for key, element in value.items():
            check_document_strings(key, f"{path} key")
            check_document_strings(element, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, element in enumerate(value):
            check_document_strings(element, f"{path}[{index}]")


def new_certificate_id() -> str:
    """A fresh random certificate id (a UUID4 in its canonical text form)."""
    return str(uuid.uuid4())


class _Strict:
    """Mixin: validate (and normalise) every field against its type hint after construction."""

    _hints_cache: ClassVar[dict[type, dict[str, Any]]] = {}

    def __post_init__(self) -> None:
        cls = type(self)
        hints = _Strict._hints_cache.get(cls)
        if hints is None:
            hints = typing.get_type_hints(cls)
            _Strict._hints_cache[cls] = hints
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            old = getattr(self, item.name)
            new = _convert(hints[item.name], old, item.name)
            if new is not old:
                # Frozen dataclass: normalising a list into a tuple or an int into a float is the
                # one mutation allowed, and it happens before anyone can see the object.
                object.__setattr__(self, item.name, new)
        self._check_rules()

    def _check_rules(self) -> None:
        """Cross-field rules; subclasses override."""


def _fail(path: str, message: str) -> typing.NoReturn:
    raise RecordError(f"{path}: {message}")


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _convert(hint: Any, value: object, path: str) -> Any:
    """Check ``value`` against ``hint``; return it, normalised (list→tuple, int→float, dict→dataclass)."""
    origin = typing.get_origin(hint)
    if origin is Literal:
        allowed = typing.get_args(hint)
        if not isinstance(value, str) or value not in allowed:
            _fail(path, f"expected one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if origin is types.UnionType or origin is typing.Union:
        arguments = typing.get_args(hint)
        if value is None:
            if type(None) in arguments:
                return None
            _fail(path, "must not be null")
        (inner,) = [argument for argument in arguments if argument is not type(None)]
        return _convert(inner, value, path)
    if origin is tuple:
        (inner, _ellipsis) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            _fail(path, f"expected a list, got {_type_name(value)}")
        return tuple(_convert(inner, element, f"{path}[{index}]") for index, element in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            _fail(path, f"expected an object, got {_type_name(value)}")
        for key, element in value.items():
            _convert(str, key, f"{path} key")
            _convert(str, element, f"{path}[{key!r}]")
        return value
    if hint is str:
        if not isinstance(value, str):
            _fail(path, f"expected a string, got {_type_name(value)}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            _fail(path, "is not valid Unicode text (lone surrogate)")
        problem = text_problem(value)
        if problem:
            _fail(path, problem)
        return value
    if hint is bool:
        if not isinstance(value, bool):
            _fail(path, f"expected true or false, got {_type_name(value)}")
        return value
    if hint is int:
        # bool is a subclass of int in Python; in a record it is a different thing.
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(path, f"expected an integer, got {_type_name(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(path, f"expected a number, got {_type_name(value)}")
        if not math.isfinite(value):
            _fail(path, "must be a finite number")
        # Always a float, so the canonical JSON of 5 and 5.0 cannot differ.
        return value if isinstance(value, float) else float(value)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            _fail(path, f"expected an object ({hint.__name__}), got {_type_name(value)}")
        names = [item.name for item in dataclasses.fields(hint)]
        unknown = sorted(set(value) - set(names))
        missing = [name for name in names if name not in value]
        if unknown:
            _fail(path, f"unknown key(s) {', '.join(unknown)}")
        if missing:
            _fail(path, f"missing key(s) {', '.join(missing)}")
        try:
            return hint(**value)
        except RecordError as error:
            raise RecordError(f"{path}.{error.message}") from None
    raise TypeError(f"record field type {hint!r} is not supported")  # a bug in this module


def _require_identifier(path: str, value: str) -> None:
    if not is_identifier(value):
        _fail(path, f"{value!r} is not a valid identifier (letters, digits, . _ : -; at most 64)")


def _require_text(path: str, value: str) -> None:
    if not value.strip():
        _fail(path, "must not be empty")


def _require_timestamp(path: str, value: str) -> None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        _fail(path, f"{value!r} is not an ISO 8601 timestamp")
    if moment.tzinfo is None or moment.utcoffset() is None:
        _fail(path, f"{value!r} has no time zone (use UTC, e.g. 2026-01-31T09:00:00Z)")


@dataclass(frozen=True, kw_only=True)
class Person(_Strict):
    """A person named on the record: the operator, or the validator (App. G validation block)."""

    name: str
    title: str = ""
    organisation: str = ""
    location: str = ""
    phone: str = ""

    def _check_rules(self) -> None:
        _require_text("name", self.name)


@dataclass(frozen=True, kw_only=True)
class Tool(_Strict):
    """The sanitisation tool and its exact version (App. G: "tool used, with version")."""

    name: str
    version: str

    def _check_rules(self) -> None:
        _require_text("name", self.name)
        _require_text("version", self.version)


@dataclass(frozen=True, kw_only=True)
class Media(_Strict):
    """The storage device that was sanitised."""

    vendor: str
    model: str
    serial: str
    media_type: str
    """E.g. "hdd", "ssd", "usb", "sd", "emmc"."""
    interface: str
    """E.g. "ata", "nvme", "scsi", "usb"."""
    capacity_bytes: int
    firmware: str = ""
    asset_tag: str | None = None
    """The media property number."""
    host_device: str | None = None
    """App. G "source": the property number of the host computer the device came out of."""

    def _check_rules(self) -> None:
        _require_text("model", self.model)
        _require_text("serial", self.serial)
        if self.capacity_bytes < 0:
            _fail("capacity_bytes", "must not be negative")


@dataclass(frozen=True, kw_only=True)
class Host(_Strict):
    """The host computer the drive came out of, as recorded at intake (schema 2)."""

    asset_tag: str | None
    make: str = ""
    model: str = ""
    serial: str = ""


@dataclass(frozen=True, kw_only=True)
class Health(_Strict):
    """The SMART summary read before the wipe (schema 2); counters the drive did not report are null."""

    status: HealthStatus
    read_at: str
    source: str
    """Where the reading came from, e.g. "smartctl 7.4 -j -a /dev/sda"."""
    smart_passed: bool | None = None
    reallocated_sectors: int | None = None
    pending_sectors: int | None = None
    offline_uncorrectable: int | None = None
    critical_warning: int | None = None
    percentage_used: int | None = None
    media_errors: int | None = None
    note: str = ""

    def _check_rules(self) -> None:
        _require_timestamp("read_at", self.read_at)
        _require_text("source", self.source)
        for name in ("reallocated_sectors", "pending_sectors", "offline_uncorrectable", "critical_warning",
                     "percentage_used", "media_errors"):
            value = getattr(self, name)
            if value is not None and value < 0:
                _fail(name, "must not be negative")


@dataclass(frozen=True, kw_only=True)
class MethodStep(_Strict):
    """One step of the profile's method chain, with the policy's reason for taking or skipping it."""

    method: str
    """The method's registered name, e.g. "nvme.sanitize.crypto"."""
    technique: str
    """App. G "method used": overwrite, block erase, crypto erase, degauss or other."""
    level: Level | None
    """The level this step can claim when applied (None for a skipped step)."""
    outcome: StepOutcome
    reason: str
    details: str = ""

    def _check_rules(self) -> None:
        _require_text("method", self.method)
        _require_text("reason", self.reason)


@dataclass(frozen=True, kw_only=True)
class Verification(_Strict):
    """Read-back verification (NIST SP 800-88 Rev. 1 §4.7)."""

    mode: VerificationMode
    result: VerificationResult
    seed: str | None = None
    """Seed of the pseudorandom sample locations, so the run can be reproduced."""
    subsections: int = 0
    samples: int = 0
    coverage: float = 0.0
    """Fraction (0..1) of the addressable space that was read back."""
    bytes_read: int = 0
    details: str = ""

    def _check_rules(self) -> None:
        if self.mode == "none" and self.result != "not_run":
            _fail("result", "must be 'not_run' when no verification was made (mode 'none')")
        if not 0.0 <= self.coverage <= 1.0:
            _fail("coverage", f"must be a fraction between 0 and 1, got {self.coverage}")
        for name in ("subsections", "samples", "bytes_read"):
            if getattr(self, name) < 0:
                _fail(name, "must not be negative")


@dataclass(frozen=True, kw_only=True)
class HiddenArea(_Strict):
    """Hidden-area handling (HPA/DCO/AMAC): the maximum LBA before and after restoring it."""

    max_lba_before: int | None
    max_lba_after: int | None
    native_max_lba: int | None = None
    actions: tuple[str, ...] = ()
    """What was done, e.g. ("HPA removed", "DCO restored")."""


@dataclass(frozen=True, kw_only=True)
class Canary(_Strict):
    """Canary blocks written before a firmware or crypto erase and looked for afterwards."""

    result: CanaryResult
    blocks_written: int = 0
    blocks_found_after: int = 0
    details: str = ""


@dataclass(frozen=True, kw_only=True)
class Timings(_Strict):
    """When the job ran and how fast."""

    started_at: str
    finished_at: str
    duration_seconds: float
    bytes_processed: int = 0
    throughput_bytes_per_second: float = 0.0

    def _check_rules(self) -> None:
        _require_timestamp("started_at", self.started_at)
        _require_timestamp("finished_at", self.finished_at)
        if self.duration_seconds < 0:
            _fail("duration_seconds", "must not be negative")


@dataclass(frozen=True, kw_only=True)
class Evidence(_Strict):
    """What the station observed, beyond the App. G summary fields."""

    capabilities: dict[str, str]
    """Snapshot of the drive's capabilities as the policy saw them (e.g. "sanitize.crypto": "yes")."""
    hidden_area: HiddenArea
    canary: Canary | None
    timings: Timings
    observations: dict[str, str] = field(default_factory=dict)
    """Other facts a reviewer needs, e.g. NVMe NDI/NODMMAS or "reads as zero after deallocation"."""


@dataclass(frozen=True, kw_only=True)
class SanitisationRecord(_Strict):
    """The whole record behind one certificate of sanitisation (or one failure report).

    ``outcome`` decides what is issued: "sanitised" yields a certificate, "failed" a failure
    report naming ``failure_reason`` and the ``route`` the device must take instead.
    """

    schema: int = SCHEMA_VERSION
    certificate_id: str
    job_id: str
    station_id: str
    issued_at: str
    """ISO 8601 with a time zone (UTC)."""
    demo: bool
    """True for demonstration certificates: rendered with an unmissable watermark."""
    outcome: Outcome
    failure_reason: str | None
    route: Route
    destination: str
    """App. G destination in words, e.g. "GLA reuse scheme, Hillside Primary School"."""
    tool: Tool
    profile: str
    operator: Person
    validator: Person | None
    """The accountable person who validates the evidence, when known at issue time."""
    media: Media
    classification_before: str
    classification_after: str
    data_backed_up: BackedUp
    backup_location: str | None
    level: Level | None
    """Level achieved; None on a failure report."""
    method_chain: tuple[MethodStep, ...]
    verification: Verification
    evidence: Evidence
    notes: str = ""
    host: Host | None = None
    """Schema 2: the host computer (None when the drive was wiped on its own, or in a schema 1 record)."""
    health: Health | None = None
    """Schema 2: the SMART summary read before the wipe (None when none was read)."""

    def _check_rules(self) -> None:
        if self.schema not in READABLE_SCHEMAS:
            _fail("schema", f"unsupported record schema {self.schema} "
                            f"(this version reads {', '.join(map(str, READABLE_SCHEMAS))})")
        if self.schema == 1:
            for name in _SCHEMA_2_KEYS:
                if getattr(self, name) is not None:
                    _fail(name, "is not part of a schema 1 record")
        _require_identifier("certificate_id", self.certificate_id)
        _require_identifier("job_id", self.job_id)
        _require_identifier("station_id", self.station_id)
        _require_timestamp("issued_at", self.issued_at)
        _require_text("profile", self.profile)
        _require_text("destination", self.destination)
        _require_text("classification_before", self.classification_before)
        _require_text("classification_after", self.classification_after)
        if self.outcome == "sanitised":
            if self.failure_reason is not None:
                _fail("failure_reason", "must be null when the outcome is 'sanitised'")
            # This tool clears or purges; destruction is recorded by whoever destroys the device.
            if self.level not in ("Clear", "Purge"):
                _fail("level", "a sanitised device must be at level 'Clear' or 'Purge'")
            if self.verification.result != "passed":
                _fail("verification.result", "a certificate needs verification that passed")
            applied = [step.level for step in self.method_chain if step.outcome == "applied"]
            if not applied:
                _fail("method_chain", "a certificate needs at least one applied step")
            # The certificate may not claim more than some applied step achieved (e.g. Purge when
            # every applied step was a Clear).
            if self.level == "Purge" and "Purge" not in applied:
                _fail("level", "'Purge' is claimed but no applied step achieved Purge")
        else:
            if self.failure_reason is None or not self.failure_reason.strip():
                _fail("failure_reason", "a failed job must say why it failed")
            if self.level is not None:
                _fail("level", "must be null when the outcome is 'failed'")
            # A device whose sanitisation failed must never be routed to reuse.
            if self.route == "reuse":
                _fail("route", "a failed job cannot be routed to reuse")

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-able Python objects (a schema 1 record without the schema 2 keys)."""
        data = dataclasses.asdict(self)
        if self.schema == 1:
            for name in _SCHEMA_2_KEYS:
                del data[name]
        return data

    def to_canonical_json(self) -> bytes:
        """Canonical JSON (keys sorted, no insignificant whitespace, UTF-8, no NaN): the record's identity."""
        text = json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
        return text.encode("utf-8")

    def sha256(self) -> str:
        """SHA-256 of :meth:`to_canonical_json`, lower-case hex."""
        return hashlib.sha256(self.to_canonical_json()).hexdigest()

    @classmethod
    def from_json(cls, data: bytes) -> SanitisationRecord:
        """Parse a record strictly: invalid UTF-8 or JSON, duplicate, unknown or missing keys and
        wrong types all raise :class:`RecordError`. Non-canonical but valid input is accepted;
        callers that need identity compare ``to_canonical_json()`` with the input bytes.
        """
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RecordError(f"record: not UTF-8 ({error.reason} at byte {error.start})") from None
        try:
            parsed = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
        except json.JSONDecodeError as error:
            raise RecordError(f"record: not valid JSON ({error.msg} at line {error.lineno})") from None
        if isinstance(parsed, dict) and type(parsed.get("schema")) is int and parsed["schema"] == 1:
            # a schema 1 record has no host/health keys: present ones are an error, absent ones are null
            extra = [name for name in _SCHEMA_2_KEYS if name in parsed]
            if extra:
                raise RecordError(f"record: unknown key(s) {', '.join(extra)} (not part of a schema 1 record)")
            parsed = {**parsed, **dict.fromkeys(_SCHEMA_2_KEYS)}
        result = _convert(cls, parsed, "record")
        assert isinstance(result, cls)
        return result


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise RecordError(f"record: duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> typing.NoReturn:
    raise RecordError(f"record: {name} is not allowed")
