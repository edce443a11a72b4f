"""Scheme files: the shipped rules, and strict validation of every key like wipe profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.reuse.errors import SchemeError
from agent.reuse.schemes import available_schemes, load_all_schemes, load_scheme, parse_scheme

VALID = """schema = 1
summary = "test"
destination = "Somewhere"
attestations = ["mdm-removed"]

[levels]
ssd = "purge"
hdd = "clear"

[verification]
modes = ["full", "sampling"]
clear_modes = ["full"]

[health]
max_reallocated_sectors = 5

[validation]
required = false
"""


def test_shipped_schemes_and_their_rules() -> None:
    assert set(available_schemes()) >= {"gla-reuse", "schools", "demo-schools"}
    order = [scheme.name for scheme in load_all_schemes()]
    assert order.index("schools") < order.index("gla-reuse") < order.index("demo-schools")
    schools, gla, demo = load_scheme("schools"), load_scheme("gla-reuse"), load_scheme("demo-schools")
    assert dict(schools.levels) == {"ssd": "purge", "hdd": "purge", "usb": "refuse", "virtual": "refuse"}
    assert dict(gla.levels) == {"ssd": "purge", "hdd": "clear", "usb": "refuse", "virtual": "refuse"}
    assert gla.clear_verification_modes == ("full",) and schools.clear_verification_modes == ()
    assert schools.health.max_reallocated_sectors == 0 and gla.health.max_reallocated_sectors == 10
    assert schools.health.max_percentage_used == 80 and gla.health.max_percentage_used == 90
    assert schools.validation_required and gla.validation_required
    assert schools.validator_roles and not gla.validator_roles
    for scheme in (schools, gla):
        assert not scheme.demo and scheme.level_for("virtual") == "refuse"
        assert set(scheme.attestations) == {"firmware-password-cleared", "mdm-removed", "asset-labels-removed"}
    assert demo.demo and dict(demo.levels) == {"ssd": "refuse", "hdd": "refuse", "usb": "refuse", "virtual": "clear"}
    assert "DEMONSTRATION" in demo.destination


def test_a_valid_file_parses_with_defaults() -> None:
    scheme = parse_scheme(VALID, "test", "test.toml")
    assert scheme.level_for("usb") == "refuse" and scheme.level_for("nonsense") == "refuse"
    assert scheme.health.required and scheme.health.max_percentage_used == 100
    assert not scheme.validation_required and scheme.rank == 100


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("schema = 1", "schema = 2"), "schema must be 1"),
        (('summary = "test"', 'summary = "test"\ncolour = "red"'), "unknown key 'colour'"),
        (('ssd = "purge"', 'ssd = "clear"'), "flash media need Purge"),
        (('hdd = "clear"', 'hdd = "clear"\nusb = "clear"'), "flash media need Purge"),
        (('hdd = "clear"', 'hdd = "clear"\nvirtual = "clear"'), "only to a scheme with demo = true"),
        (('summary = "test"', 'summary = "test"\ndemo = true'), "a demo scheme accepts virtual media only"),
        (('hdd = "clear"', 'hdd = "maybe"'), "must be one of purge, clear, refuse"),
        (('hdd = "clear"', 'hdd = "clear"\nfloppy = "purge"'), "unknown key 'floppy'"),
        (('clear_modes = ["full"]', 'clear_modes = ["quick"]'), "unknown value 'quick'"),
        (('modes = ["full", "sampling"]', 'modes = ["sampling"]'), "clear_modes must be a subset"),
        (('clear_modes = ["full"]', "clear_modes = []"), "Clear is accepted, so name the verification"),
        (("max_reallocated_sectors = 5", "max_reallocated_sectors = -1"), "out of range"),
        (("max_reallocated_sectors = 5", 'max_reallocated_sectors = "5"'), "expected int, got str"),
        (("max_reallocated_sectors = 5", "max_reallocated_sectors = true"), "expected int, got bool"),
        (("max_reallocated_sectors = 5", "max_relocated_sectors = 5"), "unknown key 'max_relocated_sectors'"),
        (("required = false", "required = 1"), "expected bool, got int"),
        (('attestations = ["mdm-removed"]', 'attestations = ["MDM removed"]'), "must be lower-case"),
        (('destination = "Somewhere"', 'destination = ""'), "destination is required"),
        (('ssd = "purge"\nhdd = "clear"', 'ssd = "refuse"'), "accepts no media type at all"),
        (("schema = 1", "schema = 1\n[levels"), "not valid TOML"),
    ],
)
def test_every_mistake_is_an_error_naming_file_and_key(change: tuple[str, str], message: str) -> None:
    text = VALID.replace(*change, 1)
    assert text != VALID
    with pytest.raises(SchemeError) as raised:
        parse_scheme(text, "test", "test.toml")
    assert message in raised.value.message and raised.value.message.startswith("test.toml")


def test_error_names_the_line() -> None:
    with pytest.raises(SchemeError, match=r"^test.toml:7: \[levels\].ssd: flash media need Purge"):
        parse_scheme(VALID.replace('ssd = "purge"', 'ssd = "clear"'), "test", "test.toml")


def test_override_directory_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    override = tmp_path / "schemes"
    override.mkdir()
    (override / "schools.toml").write_text(VALID)
    monkeypatch.setenv("WIPE_AGENT_SCHEME_DIR", str(override))
    assert available_schemes()["schools"] == str(override / "schools.toml")
    assert load_scheme("schools").summary == "test"
    with pytest.raises(SchemeError, match="no scheme named 'nope'"):
        load_scheme("nope")
