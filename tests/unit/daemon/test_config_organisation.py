"""[organisation] in station.toml: what certificates print, validated strictly, never a built-in name."""

from __future__ import annotations

import json
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
     "station.toml: [organisation.destinations]: expected dict, got str"),
    ('[organisation]\nname = "N"\n[organisation.destinations]\nreuse = ""\n',
     "station.toml: [organisation.destinations].reuse: must not be empty"),
    (f'[organisation]\nname = "{"N" * 201}"\n', "station.toml: [organisation].name: longer than 200 characters"),
])
def test_bad_organisation_is_refused_naming_file_and_key(body: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config('station_id = "s1"\n' + body, "station.toml")
    assert message in raised.value.message and "\n" not in raised.value.message


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
    assert message.startswith(f"/etc/wipe-agent/station.toml: [organisation].{key}: ") and named in message


def test_hostile_destination_key_or_wording_is_refused() -> None:
    for table in ('"gla\\u202eschools" = "GLA"', 'gla = "GLA\\u0007"'):
        with pytest.raises(ConfigError, match=r"station\.toml: \[organisation\.destinations\].*U\+"):
            parse_config(f'station_id = "s1"\n[organisation]\nname = "N"\n[organisation.destinations]\n{table}\n',
                         "station.toml")
