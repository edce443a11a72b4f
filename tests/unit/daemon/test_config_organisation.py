"""[organisation] in station.toml: what certificates print, validated strictly, never a built-in name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agent.config import Organisation, StationConfig, parse_config
from agent.errors import ConfigError
from agent.jobs.certify import CertificateSettings, no_organisation, settings_from_config

ORGANISATION = """station_id = "s1"
[organisation]
name = "Northshire Constabulary"
location = "Digital Forensics Unit, 1 Bridge St, Northshire"
phone = "+44 1234 567890"
classification_before = "OFFICIAL-SENSITIVE"
classification_after = "Not classified"
data_backed_up = "yes"
destination = "Held for a reuse scheme"
[organisation.destinations]
destroy = "Destruction by Shredco Ltd"
gla-schools = "GLA schools reuse scheme"
"""


def test_organisation_section_reaches_the_certificate_settings() -> None:
    config = parse_config(ORGANISATION, "station.toml")
    assert config.organisation == Organisation(
        name="Northshire Constabulary", location="Digital Forensics Unit, 1 Bridge St, Northshire",
        phone="+44 1234 567890", classification_before="OFFICIAL-SENSITIVE", classification_after="Not classified",
        data_backed_up="yes", destination="Held for a reuse scheme",
        destinations={"destroy": "Destruction by Shredco Ltd", "gla-schools": "GLA schools reuse scheme"})
    settings = settings_from_config(config)
    assert (settings.organisation, settings.location, settings.phone, settings.data_backed_up) == (
        "Northshire Constabulary", "Digital Forensics Unit, 1 Bridge St, Northshire", "+44 1234 567890", "yes")
    assert settings.destination_for("gla-schools") == "GLA schools reuse scheme"
    assert settings.destination_for("reuse") == settings.destination_for(None) == "Held for a reuse scheme"
    # the daemon hands the settings to its worker as JSON: nothing is lost on the way
    assert CertificateSettings.from_json(json.loads(json.dumps(settings.to_json()))) == settings
    assert config.to_json()["organisation"]["name"] == "Northshire Constabulary"


def test_no_organisation_means_no_name_at_all() -> None:
    config = parse_config('station_id = "s1"', "/etc/wipe-agent/station.toml")
    assert config.organisation is None
    settings = settings_from_config(config)
    assert settings.organisation == "" and settings.source == "/etc/wipe-agent/station.toml"
    assert no_organisation(settings) == ("no organisation configured in /etc/wipe-agent/station.toml "
                                         "[organisation]; no certificate issued")
    assert settings_from_config(None).organisation == CertificateSettings().organisation == ""
    assert StationConfig(station_id="s1").organisation is None


def test_legacy_top_level_string_is_the_name_only() -> None:
    config = parse_config('station_id = "s1"\norganisation = "Northshire Constabulary"\n')
    assert config.organisation == Organisation(name="Northshire Constabulary")


@pytest.mark.parametrize(("body", "message"), [
    ('[organisation]\nlocation = "x"\n', "station.toml: [organisation].name is required"),
    ('[organisation]\nname = ""\n', "station.toml: [organisation].name: must not be empty"),
    ('[organisation]\nname = "   "\n', "station.toml: [organisation].name: must not be empty"),
    ('organisation = ""\n', "station.toml: organisation: must not be empty"),
    ('[organisation]\nname = "N"\ncolour = "red"\n', "station.toml: [organisation]: unknown key 'colour'"),
    ('[organisation]\nname = 7\n', "station.toml: [organisation].name: expected str, got int"),
    ('[organisation]\nname = "N"\ndata_backed_up = "maybe"\n',
     "station.toml: [organisation].data_backed_up must be one of yes, no, unknown"),
    ('[organisation]\nname = "N"\nphone = 441234\n', "station.toml: [organisation].phone: expected str, got int"),
    ('[organisation]\nname = "N"\ndestinations = "x"\n',
     "station.toml: [organisation.destinations]: expected table, got str"),
    ('[organisation]\nname = "N"\n[organisation.destinations]\nreuse = ""\n',
     "station.toml: [organisation.destinations].reuse: must not be empty"),
    (f'[organisation]\nname = "{"N" * 201}"\n', "station.toml: [organisation].name: longer than 200 characters"),
])
def test_bad_organisation_is_refused_naming_file_and_key(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config('station_id = "s1"\n' + body, "station.toml")
    # the file, then (where the key's line is known) the line, then the message
    file, text = message.split(": ", 1)
    assert re.match(rf"{re.escape(file)}(:\d+)?: {re.escape(text)}", raised.value.message)
    assert "\n" not in raised.value.message


@pytest.mark.parametrize("key", ["name", "location", "phone", "classification_before", "classification_after",
                                 "destination"])
@pytest.mark.parametrize(("hostile", "named"), [
    ("\\u202e", "U+202E"),    # right-to-left override: the page would read reversed
    ("\\u200b", "U+200B"),    # zero-width space
    ("\\u001b[2J", "U+001B"),  # ESC: rewrites a terminal
    ("\\t", "U+0009"),
    ("\\u2028", "U+2028"),    # line separator: a fake second line
    ("e\\u0301", "NFC"),      # decomposed: two spellings of one visible string
])
def test_hostile_organisation_text_is_refused_with_file_and_key(tmp_path: Path, key: str, hostile: str,
                                                                 named: str) -> None:
    name = "" if key == "name" else 'name = "Northshire"\n'
    text = f'station_id = "s1"\n[organisation]\n{name}{key} = "Northshire{hostile}Constabulary"\n'
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "/etc/wipe-agent/station.toml")
    message = raised.value.message
    line = 3 if key == "name" else 4  # the key's own line
    assert message.startswith(f"/etc/wipe-agent/station.toml:{line}: [organisation].{key}: ") and named in message


def test_hostile_destination_key_or_wording_is_refused() -> None:
    for table in ('"gla\\u202eschools" = "GLA"', 'gla = "GLA\\u0007"'):
        with pytest.raises(ConfigError, match=r"station\.toml:\d+: \[organisation\.destinations\].*U\+"):
            parse_config(f'station_id = "s1"\n[organisation]\nname = "N"\n[organisation.destinations]\n{table}\n',
                         "station.toml")


_FULL = 'name = "Northshire Constabulary"\nlocation = "Unit 4, Bridge St"\nphone = "+44 1632 960000"\n'


@pytest.mark.parametrize("key", ["name", "location", "phone", "classification_before", "destination"])
@pytest.mark.parametrize(("text", "named"), [
    ("משטרת צפון", "right-to-left character U+05DE"),  # Hebrew: read back reversed
    ("شارع 12 الرياض", "right-to-left character U+0634"),  # Arabic
    ("北方警察", "U+5317 CJK UNIFIED IDEOGRAPH-5317, which the certificate font"),
    ("🚓 Northshire", "U+1F693 POLICE CAR, which the certificate font"),
    ("\uff2e\uff4f\uff52\uff54\uff48",  # full-width Latin
     "U+FF2E FULLWIDTH LATIN CAPITAL LETTER N, which"),
    ("q\u0303", "combining mark U+0303"),  # NFC has no precomposed q-tilde
])
def test_text_the_certificate_cannot_print_is_refused_when_loaded(key: str, text: str, named: str) -> None:
    """H6: these passed the configuration, the drive was wiped, then the read-back refused the certificate."""
    lines = [line for line in _FULL.splitlines() if not line.startswith(f"{key} =")]
    body = "\n".join([*lines, f'{key} = "{text}"']) + "\n"
    with pytest.raises(ConfigError) as raised:
        parse_config('station_id = "s1"\n[organisation]\n' + body, "/etc/wipe-agent/station.toml")
    message = raised.value.message
    line = 3 + len(lines)  # the key's own line: the last of the body
    assert message.startswith(f"/etc/wipe-agent/station.toml:{line}: [organisation].{key}: ") and named in message


@pytest.mark.parametrize("text", ["Ελληνική Αστυνομία", "Полиция", "Heddlu Gogledd Cymru ŵŷ", "Office\u00a01",
                                  "ﬁeld unit", "Café Zürich"])
def test_scripts_the_certificate_prints_are_accepted(text: str) -> None:
    config = parse_config(f'station_id = "s1"\n[organisation]\n{_FULL}destination = "{text}"\n', "station.toml")
    assert config.organisation is not None and config.organisation.destination == text


@pytest.mark.parametrize("key", ["location", "phone"])
@pytest.mark.parametrize(("value", "named"), [
    ("", "must not be empty"), ("   ", "must not be empty"), ("—", "'—' is a placeholder"),
    ("-", "'-' is a placeholder"), ("n/a ", "leading, trailing or repeated spaces"),
    ("Unit 4        Phone +44 999 FAKE", "repeated spaces"),
])
def test_placeholder_location_or_phone_is_refused(key: str, value: str, named: str) -> None:
    """M11: "Location —" on a configured station's certificate; runs of spaces mimicking the next label."""
    lines = [line for line in _FULL.splitlines() if not line.startswith(f"{key} =")]
    body = "\n".join([*lines, f'{key} = "{value}"']) + "\n"
    with pytest.raises(ConfigError) as raised:
        parse_config('station_id = "s1"\n[organisation]\n' + body, "station.toml")
    message = raised.value.message
    assert message.startswith(f"station.toml:{3 + len(lines)}: [organisation].{key}: ") and named in message


@pytest.mark.parametrize("key", ["location", "phone"])
def test_location_and_phone_are_required(key: str) -> None:
    body = "\n".join(line for line in _FULL.splitlines() if not line.startswith(f"{key} =")) + "\n"
    with pytest.raises(ConfigError, match=rf"station\.toml:\d+: \[organisation\]\.{key} is required"):
        parse_config('station_id = "s1"\n[organisation]\n' + body, "station.toml")
