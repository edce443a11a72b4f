"""SMART health: the smartctl -j parser on recorded outputs and constructed edge cases, and the gate."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.reuse.health import HealthReading, health_failures, not_applicable, parse_smartctl
from agent.reuse.schemes import load_scheme
from tests.unit.reuse.kit import SMART_DATA


def _reading(name: str) -> HealthReading:
    return parse_smartctl(json.loads((SMART_DATA / name).read_text()), name)


def test_healthy_nvme_recorded_sample_passes_both_schemes() -> None:
    reading = _reading("nvme-intel-660p-pass.json")
    assert (reading.status, reading.protocol, reading.serial) == ("ok", "NVMe", "BTNH93710FS91P0B")
    assert (reading.critical_warning, reading.percentage_used, reading.media_errors) == (0, 0, 0)
    assert reading.smart_passed is True
    for scheme in ("schools", "gla-reuse"):
        assert health_failures(reading, load_scheme(scheme).health) == []


def test_media_errors_fail_although_smart_says_passed() -> None:
    reading = _reading("nvme-samsung-970-media-errors.json")
    assert reading.smart_passed is True and reading.media_errors == 7
    assert health_failures(reading, load_scheme("schools").health) == ["NVMe media errors 7 > 0"]


def test_failing_ata_recorded_sample() -> None:
    reading = _reading("ata-hitachi-hds721050-failing.json")
    assert (reading.protocol, reading.reallocated_sectors, reading.pending_sectors, reading.offline_uncorrectable) \
        == ("ATA", 1975, 8, 0)
    failures = health_failures(reading, load_scheme("gla-reuse").health)
    assert failures == ["SMART overall self-assessment FAILED", "reallocated sectors 1975 > 10",
                        "pending sectors 8 > 0"]


@pytest.mark.parametrize(
    ("name", "schools", "gla"),
    [
        ("constructed-ata-ssd-healthy.json", [], []),
        ("constructed-ata-hdd-few-reallocated.json", ["reallocated sectors 3 > 0"], []),
        ("constructed-nvme-worn.json", ["NVMe percentage used 85 > 80"], []),
    ],
)
def test_limits_differ_between_schemes(name: str, schools: list[str], gla: list[str]) -> None:
    reading = _reading(name)
    assert health_failures(reading, load_scheme("schools").health) == schools
    assert health_failures(reading, load_scheme("gla-reuse").health) == gla


def test_nvme_critical_warning_is_named() -> None:
    reading = _reading("constructed-nvme-critical-warning.json")
    failures = health_failures(reading, load_scheme("gla-reuse").health)
    assert failures == ["SMART overall self-assessment FAILED",
                        "NVMe critical warning 0x04 (NVM subsystem reliability degraded)"]


def test_a_device_smartctl_could_not_open_gives_no_reading() -> None:
    reading = _reading("constructed-open-failed.json")
    assert reading.status == "unavailable" and "exit status 2" in reading.note
    assert "Unable to detect device type" in reading.note
    assert health_failures(reading, load_scheme("schools").health) == []


@pytest.mark.parametrize("data", [None, [], "text", {"smartctl": {"exit_status": "x"}}, {"device": 5}])
def test_odd_input_never_raises(data: object) -> None:
    assert parse_smartctl(data, "test").status == "unavailable"


def test_virtual_media_are_not_applicable_and_round_trip() -> None:
    reading = not_applicable("Loop", "loop:/x.img", "virtual")
    assert reading.status == "not_applicable" and health_failures(reading, load_scheme("schools").health) == []
    assert HealthReading.from_json(reading.to_json()) == reading


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["smartctl", "exit_status", "device", "protocol", "smart_status", "passed",
                         "nvme_smart_health_information_log", "critical_warning", "percentage_used", "media_errors",
                         "ata_smart_attributes", "table", "id", "raw", "value", "messages", "string", "x"]),
        inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(_json)
def test_the_parser_never_raises_on_any_json(data: object) -> None:
    reading = parse_smartctl(data, "fuzz")
    assert reading.status in {"ok", "unavailable"}
    health_failures(reading, load_scheme("schools").health)
