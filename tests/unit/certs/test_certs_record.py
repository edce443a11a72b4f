"""The record model: canonical JSON identity, strict parsing, cross-field rules."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certs.errors import RecordError
from certs.record import (
    Media,
    SanitisationRecord,
    Timings,
    Verification,
    new_certificate_id,
)
from certs.samples import sample_record


def test_canonical_json_is_sorted_compact_utf8_and_hashes_to_sha256() -> None:
    record = sample_record(notes="Übergabe an Schule \u2013 ok")
    data = record.to_canonical_json()
    parsed = json.loads(data.decode("utf-8"))
    assert data == json.dumps(parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert "Übergabe an Schule \u2013 ok".encode() in data  # UTF-8, not \u escapes
    assert list(parsed) == sorted(parsed)
    assert record.sha256() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("failed", [False, True])
def test_round_trip_is_exact(failed: bool) -> None:
    record = sample_record(failed=failed)
    again = SanitisationRecord.from_json(record.to_canonical_json())
    assert again == record
    assert again.to_canonical_json() == record.to_canonical_json()


def test_record_holds_every_app_g_field() -> None:
    keys = set(json.loads(sample_record().to_canonical_json()))
    assert {
        "certificate_id", "job_id", "station_id", "tool", "profile", "method_chain", "level", "media",
        "verification", "evidence", "operator", "validator", "classification_before",
        "classification_after", "destination", "data_backed_up", "backup_location", "outcome",
        "failure_reason", "route", "demo", "issued_at", "notes",
    } <= keys
    evidence = json.loads(sample_record().to_canonical_json())["evidence"]
    assert {"capabilities", "hidden_area", "canary", "timings"} <= set(evidence)


def test_int_for_float_is_normalised_so_the_hash_cannot_drift() -> None:
    base = sample_record()
    as_int = dataclasses.replace(base, evidence=dataclasses.replace(
        base.evidence, timings=dataclasses.replace(base.evidence.timings, duration_seconds=250)))
    assert isinstance(as_int.evidence.timings.duration_seconds, float)
    assert as_int.sha256() == base.sha256()


def test_lists_become_tuples() -> None:
    record = sample_record(method_chain=list(sample_record().method_chain))
    assert isinstance(record.method_chain, tuple)


def _mutate(path: list[str], value: object) -> bytes:
    document = json.loads(sample_record().to_canonical_json())
    target = document
    for key in path[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(document).encode()


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["surprise"], 1, "unknown key(s) surprise"),
        (["media", "colour"], "red", "record.media: unknown key(s) colour"),
        (["job_id"], _DELETE, "missing key(s) job_id"),
        (["media", "serial"], _DELETE, "record.media: missing key(s) serial"),
        (["media", "capacity_bytes"], True, "capacity_bytes: expected an integer, got bool"),
        (["media", "capacity_bytes"], "512", "capacity_bytes: expected an integer, got str"),
        (["demo"], 1, "demo: expected true or false"),
        (["level"], "Ultra", "level: expected one of"),
        (["method_chain"], {}, "method_chain: expected a list"),
        (["evidence", "capabilities", "nvme.ndi"], 0, "evidence.capabilities['nvme.ndi']: expected a string"),
        (["verification", "coverage"], 1.5, "coverage: must be a fraction"),
        (["issued_at"], "2026-11-25T09:04:12", "has no time zone"),
        (["station_id"], "station 01/../x", "not a valid identifier"),
        (["schema"], 3, "unsupported record schema 3"),
        (["schema"], True, "schema: expected an integer, got bool"),
        (["failure_reason"], "it broke", "failure_reason: must be null"),
    ],
)
def test_strict_parse_rejects(path: list[str], value: object, message: str) -> None:
    with pytest.raises(RecordError) as raised:
        SanitisationRecord.from_json(_mutate(path, value))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"a":1,"a":2}', "duplicate key 'a'"),
        (b'{"coverage": NaN}', "NaN is not allowed"),
        (b"\xff\xfe", "not UTF-8"),
        (b"{", "not valid JSON"),
        (b"[]", "expected an object"),
    ],
)
def test_malformed_json_is_rejected(data: bytes, message: str) -> None:
    with pytest.raises(RecordError) as raised:
        SanitisationRecord.from_json(data)
    assert message in str(raised.value)


def test_construction_validates_too() -> None:
    with pytest.raises(RecordError, match="serial: must not be empty"):
        Media(vendor="x", model="y", serial=" ", media_type="ssd", interface="nvme", capacity_bytes=1)
    with pytest.raises(RecordError, match="coverage: must be a finite number"):
        Verification(mode="full", result="passed", coverage=float("nan"))
    with pytest.raises(RecordError, match="started_at"):
        Timings(started_at="yesterday", finished_at="2026-01-01T00:00:00Z", duration_seconds=1.0)


def test_rules_between_fields() -> None:
    with pytest.raises(RecordError, match="cannot be routed to reuse"):
        sample_record(failed=True, route="reuse")
    with pytest.raises(RecordError, match="must say why"):
        sample_record(failed=True, failure_reason=" ")
    with pytest.raises(RecordError, match="verification that passed"):
        sample_record(verification=Verification(mode="sampling", result="failed"))
    with pytest.raises(RecordError, match="'Clear' or 'Purge'"):
        sample_record(level="Destroy")
    with pytest.raises(RecordError, match="at least one applied step"):
        sample_record(method_chain=sample_record().method_chain[1:])
    as_clear = dataclasses.replace(sample_record().method_chain[0], level="Clear")
    with pytest.raises(RecordError, match="no applied step achieved Purge"):
        sample_record(method_chain=(as_clear,))
    sample_record(method_chain=(as_clear,), level="Clear")
    with pytest.raises(RecordError, match="must be 'not_run'"):
        Verification(mode="none", result="passed")


def test_certificate_ids_are_fresh_and_valid() -> None:
    first, second = new_certificate_id(), new_certificate_id()
    assert first != second
    sample_record(certificate_id=first)


# Printable text only: control, format and separator characters (and non-NFC text) are refused
# by the record (test_record_text_and_inputs.py); surrogates cannot be encoded at all.
_PRINTABLE = st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Zl", "Zp"))
_text = st.text(_PRINTABLE, min_size=1, max_size=40).map(lambda text: unicodedata.normalize("NFC", text)).filter(
    str.strip)


@settings(max_examples=60, deadline=None)
@given(notes=st.text(_PRINTABLE, max_size=80).map(lambda text: unicodedata.normalize("NFC", text)),
       vendor=_text, serial=_text,
       capacity=st.integers(min_value=0, max_value=2**64), coverage=st.floats(min_value=0, max_value=1))
def test_any_valid_record_round_trips_to_identical_bytes(
    notes: str, vendor: str, serial: str, capacity: int, coverage: float
) -> None:
    base = sample_record()
    record = dataclasses.replace(
        base, notes=notes,
        media=dataclasses.replace(base.media, vendor=vendor, serial=serial, capacity_bytes=capacity),
        verification=dataclasses.replace(base.verification, coverage=coverage),
    )
    data = record.to_canonical_json()
    again = SanitisationRecord.from_json(data)
    assert again == record
    assert again.to_canonical_json() == data


def test_schema_2_carries_host_and_health_and_round_trips() -> None:
    record = sample_record()
    assert record.schema == 2 and record.host is not None and record.health is not None
    again = SanitisationRecord.from_json(record.to_canonical_json())
    assert again == record and again.sha256() == record.sha256()


def test_schema_1_record_keeps_its_bytes_and_refuses_schema_2_keys() -> None:
    old = sample_record(schema=1, host=None, health=None)
    data = json.loads(old.to_canonical_json())
    assert "host" not in data and "health" not in data
    assert SanitisationRecord.from_json(old.to_canonical_json()).to_canonical_json() == old.to_canonical_json()
    for key in ("host", "health"):
        with pytest.raises(RecordError, match=f"unknown key\\(s\\) {key} \\(not part of a schema 1 record\\)"):
            SanitisationRecord.from_json(json.dumps({**data, key: None}).encode())
    with pytest.raises(RecordError, match="host: is not part of a schema 1 record"):
        sample_record(schema=1, health=None)


@pytest.mark.parametrize(("path", "value", "message"), [
    (["host"], _DELETE, "missing key(s) host"),
    (["health"], _DELETE, "missing key(s) health"),
    (["host", "serial"], 7, "record.host.serial: expected a string"),
    (["host", "make"], "Dell\u202e", "U+202E"),
    (["health", "status"], "great", "status: expected one of"),
    (["health", "read_at"], "yesterday", "not an ISO 8601 timestamp"),
    (["health", "media_errors"], -1, "media_errors: must not be negative"),
    (["health", "smart_passed"], "yes", "smart_passed: expected true or false"),
    (["health", "colour"], "red", "record.health: unknown key(s) colour"),
])
def test_schema_2_fields_are_strict(path: list[str], value: object, message: str) -> None:
    test_strict_parse_rejects(path, value, message)
