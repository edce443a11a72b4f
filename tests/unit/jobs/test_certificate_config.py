"""[certificate] in station.toml: every CertificateSettings value comes from the configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import DEFAULT_OPERATOR_TITLE, parse_config
from agent.errors import ConfigError
from agent.jobs.settings import CertificateSettings, settings_from_config

BASE = 'station_id = "s1"\n[organisation]\nname = "Org"\nlocation = "Here"\nphone = "1"\n'


def test_without_the_table_the_settings_are_todays() -> None:
    settings = settings_from_config(parse_config(BASE, "station.toml"))
    assert settings.operator_title == DEFAULT_OPERATOR_TITLE == CertificateSettings().operator_title
    assert settings.directory is None
    assert settings.directory_for(Path("/var/lib/wipe-agent")) == Path("/var/lib/wipe-agent/certificates")


def test_the_table_reaches_the_settings_and_the_worker_request() -> None:
    config = parse_config(BASE + '[certificate]\noperator_title = "Forensic technician"\n'
                                 'directory = "/srv/documents"\n', "station.toml")
    settings = settings_from_config(config)
    assert settings.operator_title == "Forensic technician"
    assert settings.directory_for(Path("/var/lib/wipe-agent")) == Path("/srv/documents")
    assert CertificateSettings.from_json(settings.to_json()) == settings
    assert config.to_json()["certificate"] == {"operator_title": "Forensic technician", "directory": "/srv/documents"}


@pytest.mark.parametrize(("table", "message"), [
    ('[certificate]\ntitle = "x"\n', "unknown key 'title'"),
    ('[certificate]\noperator_title = ""\n', "must not be empty"),
    ('[certificate]\noperator_title = "bad\\u202etitle"\n', "operator_title"),
    ('[certificate]\noperator_title = 3\n', "expected str"),
    ('[certificate]\ndirectory = "relative/dir"\n', "must be an absolute path"),
    ('certificate = "x"\n', "expected table"),
])
def test_a_bad_certificate_table_is_one_clear_error(table: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        parse_config(BASE.replace('[organisation]', table + '[organisation]', 1), "station.toml")
    assert "\n" not in raised.value.message
