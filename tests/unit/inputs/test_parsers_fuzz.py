"""Property tests: every parser of outside input returns or raises our error type, nothing else.

A parser that lets a KeyError, a RecursionError or a UnicodeDecodeError escape turns bad input into
a traceback in front of an operator (or a 500 from the API). Each test feeds arbitrary and
mutated input and accepts exactly two outcomes: a value, or an ``AgentError`` (the API reader's
``JsonInputError``) with a one-line message.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.cli.inspect_command import PARSERS, parse_dump
from agent.config import parse_config
from agent.errors import AgentError, ConfigError, ProfileError
from agent.jsontext import MAX_JSON_DEPTH, JsonInputError, json_depth, parse_json
from agent.policy.profiles import parse_profile
from agent.reuse.errors import SchemeError
from agent.reuse.health import parse_smartctl
from agent.reuse.schemes import parse_scheme
from agent.tomlfile import MAX_TOML_DEPTH, parse_toml
from agent.transport.sense import decode_sense
from agent.verify.expectation import expectation_from_json, expectation_from_spec

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SHIPPED_PROFILES = [entry.read_text(encoding="utf-8") for entry in resources.files("wipe_profiles").iterdir()
                    if entry.name.endswith(".toml")]
SHIPPED_SCHEMES = [entry.read_text(encoding="utf-8")
                   for entry in resources.files("agent.reuse").joinpath("schemes").iterdir()
                   if entry.name.endswith(".toml")]
STATION = """station_id = "station-1"
organisation = "Example"
state_dir = "/var/lib/wipe-agent"
max_parallel_jobs = 4
[default_profiles]
ssd = "nist-purge"
[[bays]]
name = "bay-1"
auto_start = true
[bays.match]
ID_PATH = "pci-0000:00:1f.2-ata-1"
"""


def _one_line(error: AgentError) -> None:
    assert error.message and "\n" not in error.message.strip(), error.message
    assert "Traceback" not in error.message


@st.composite
def mutated(draw: st.DrawFn, texts: list[str]) -> str:
    """A real file with a slice replaced by arbitrary text: mostly-valid input reaches deep code."""
    text = draw(st.sampled_from(texts))
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 40)))
    return text[:start] + draw(st.text(max_size=40)) + text[end:]


@st.composite
def deep_toml(draw: st.DrawFn) -> str:
    """``key = [[[…]]]`` or ``{a = {a = …}}`` nested from shallow to far past any stack."""
    depth = draw(st.sampled_from([1, 5, MAX_TOML_DEPTH - 1, MAX_TOML_DEPTH + 1, 200, 5000]))
    key = draw(st.sampled_from(["schema", "summary", "steps", "station_id", "levels", "x"]))
    if draw(st.booleans()):
        return f"{key} = " + "[" * depth + "1" + "]" * depth + "\n"
    return f"{key} = " + "{a = " * depth + "1" + "}" * depth + "\n"


TOML_INPUTS = st.one_of(st.text(max_size=300), mutated(SHIPPED_PROFILES), mutated(SHIPPED_SCHEMES),
                        mutated([STATION]), deep_toml())


@FUZZ
@given(TOML_INPUTS)
def test_profile_parser_returns_or_raises_profile_error(text: str) -> None:
    try:
        parse_profile(text, "fuzzed", "fuzzed.toml")
    except ProfileError as error:
        _one_line(error)


@FUZZ
@given(TOML_INPUTS)
def test_station_config_parser_returns_or_raises_config_error(text: str) -> None:
    try:
        parse_config(text, "station.toml", check_profiles=False)
    except ConfigError as error:
        _one_line(error)


@FUZZ
@given(TOML_INPUTS)
def test_scheme_parser_returns_or_raises_scheme_error(text: str) -> None:
    try:
        parse_scheme(text, "fuzzed", "fuzzed.toml")
    except SchemeError as error:
        _one_line(error)


@FUZZ
@given(deep_toml())
def test_toml_depth_is_bounded_exactly(text: str) -> None:
    depth = text.count("[") + text.count("{")
    if depth + 1 > MAX_TOML_DEPTH:  # the top-level table is one level
        with pytest.raises(ConfigError, match="nested more than"):
            parse_toml(text, "deep.toml", ConfigError)
    else:
        assert parse_toml(text, "deep.toml", ConfigError)


@FUZZ
@given(st.sampled_from(["schema", "max_parallel_jobs", "rank"]), st.sampled_from(["true", "false", '"1"', "1.0"]))
def test_no_integer_field_takes_a_boolean_or_other_type(key: str, value: str) -> None:
    """``schema = true`` was accepted (``True == 1``): every integer field checks its exact type."""
    if key == "schema":
        text = SHIPPED_PROFILES[0].replace("schema = 1", f"schema = {value}", 1)
        with pytest.raises(ProfileError, match="schema must be 1"):
            parse_profile(text, "p", "p.toml")
    elif key == "max_parallel_jobs":
        with pytest.raises(ConfigError, match="max_parallel_jobs: expected int"):
            parse_config(STATION.replace("max_parallel_jobs = 4", f"max_parallel_jobs = {value}"), "s.toml",
                         check_profiles=False)
    else:
        with pytest.raises(SchemeError, match="rank: expected int"):
            parse_scheme(f"rank = {value}\n" + SHIPPED_SCHEMES[0].replace("\nrank =", "\n#rank ="), "s", "s.toml")


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=30,
)


def _real_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_real_depth(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_real_depth(item) for item in value), default=0)
    return 0


@FUZZ
@given(JSON_VALUES)
def test_json_depth_scanner_agrees_with_the_parsed_structure(value: Any) -> None:
    text = json.dumps(value)
    assert json_depth(text, limit=10_000) == _real_depth(value)
    assert parse_json(text.encode(), limit=10_000) == json.loads(text)


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n),
                 st.integers(1, 100_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
                 JSON_VALUES.map(lambda value: json.dumps(value).encode())))
def test_json_reader_returns_or_raises_json_input_error(raw: bytes) -> None:
    try:
        parse_json(raw)
    except JsonInputError as error:
        assert error.reason in ("not_utf8", "too_deep", "not_json")
        assert error.reason != "too_deep" or json_depth(raw.decode(), 10**6) > MAX_JSON_DEPTH


@FUZZ
@given(JSON_VALUES)
def test_smartctl_parser_never_raises(value: Any) -> None:
    reading = parse_smartctl(value, "fuzzed")
    assert reading.status in ("ok", "unavailable", "not_applicable")


SMART_SAMPLES = [json.loads(path.read_text()) for path in sorted(Path("tests/data/smart").glob("*.json"))]


@FUZZ
@given(st.sampled_from(SMART_SAMPLES) if SMART_SAMPLES else st.just({}), st.text(max_size=12), JSON_VALUES)
def test_smartctl_parser_survives_any_field_replaced(sample: dict[str, Any], key: str, value: Any) -> None:
    data = dict(sample)
    target = key if key in data or not data else sorted(data)[len(key) % len(data)]
    data[target] = value
    parse_smartctl(data, "fuzzed")


IDENTIFY_SAMPLES = {path.name: path.read_bytes() for path in sorted(Path("tests/data/identify").glob("*"))
                    if path.is_file()}


@st.composite
def dump_bytes(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, or a real dump with bytes flipped, cut or extended."""
    if not IDENTIFY_SAMPLES or draw(st.booleans()):
        return draw(st.binary(max_size=5000))
    data = bytearray(draw(st.sampled_from(sorted(IDENTIFY_SAMPLES.values()))))
    for _ in range(draw(st.integers(0, 8))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    cut = draw(st.integers(0, len(data)))
    return bytes(data[:cut]) if draw(st.booleans()) else bytes(data) + draw(st.binary(max_size=64))


@FUZZ
@given(st.sampled_from(sorted(PARSERS)), dump_bytes(), st.booleans())
def test_drive_identify_parsers_return_or_raise_our_error(kind: str, data: bytes, ignore_checksum: bool) -> None:
    """ATA IDENTIFY, NVMe Identify controller/namespace, SCSI INQUIRY/READ CAPACITY(16)/VPD B1h/RSOC."""
    try:
        report = parse_dump(data, kind, ignore_checksum=ignore_checksum)
    except AgentError as error:
        _one_line(error)
    else:
        json.dumps(report)  # what `inspect --json` prints must serialise


@FUZZ
@given(st.binary(max_size=300), st.booleans())
def test_sense_decoder_returns_or_raises_our_error(buffer: bytes, ata: bool) -> None:
    for candidate in (buffer, bytes([0x70]) + buffer, bytes([0x72]) + buffer, bytes([0xF1]) + buffer):
        try:
            sense = decode_sense(candidate, ata_pass_through=ata)
        except AgentError as error:
            _one_line(error)
        else:
            if sense is not None:
                sense.describe() if hasattr(sense, "describe") else str(sense)


@FUZZ
@given(st.one_of(st.text(max_size=80), st.text(max_size=80).map(lambda text: "pattern:" + text)))
def test_expectation_spec_parser(text: str) -> None:
    try:
        expectation_from_spec(text)
    except AgentError as error:
        _one_line(error)


@FUZZ
@given(st.dictionaries(st.sampled_from(["kind", "pattern", "key", "nonce"]),
                       st.one_of(st.sampled_from(["zero", "pattern", "random", "00", "zz", "0" * 64, "0" * 32]),
                                 JSON_VALUES), max_size=4))
def test_expectation_record_decoder(data: dict[str, Any]) -> None:
    """The expectation a job recorded, as read back from the registry for a later verification."""
    try:
        expectation_from_json(data)
    except AgentError as error:
        _one_line(error)


UDEV_KEYS = ["ID_MODEL", "ID_MODEL_ENC", "ID_SERIAL", "ID_SERIAL_SHORT", "ID_BUS", "ID_TYPE", "ID_USB_DRIVER",
             "ID_VENDOR", "ID_VENDOR_ENC", "ID_REVISION", "ID_PATH", "ID_WWN", "DEVLINKS", "ID_ATA", "ID_NVME"]


@FUZZ
@given(st.dictionaries(st.sampled_from(UDEV_KEYS), st.one_of(
    st.text(max_size=40), st.text(alphabet="\\x0123456789abcdefABCDEFg ", max_size=40)), max_size=10),
    st.text(min_size=1, max_size=12), st.integers(0, 1 << 62), st.booleans(),
    st.one_of(st.none(), st.text(max_size=30)))
def test_udev_identity_parser_returns_or_raises_our_error(properties: dict[str, str], name: str, size: int,
                                                         rotational: bool, model: str | None) -> None:
    """udev properties carry what a drive's firmware (or a USB bridge) says: ``\\xNN`` escapes included."""
    from agent.discovery.identity import SysfsFacts, identity_from

    facts = SysfsFacts(name=name, size_bytes=size, logical_sector=512, physical_sector=4096, rotational=rotational,
                       removable=False, read_only=False, model=model, serial=model)
    try:
        identity = identity_from(f"/dev/{name}", properties, facts)
    except AgentError as error:
        _one_line(error)
    else:
        json.dumps(identity.to_json())
        assert isinstance(identity.model, str) and isinstance(identity.serial, str)
