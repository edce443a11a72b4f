"""Station configuration: defaults, strict validation, bay matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import Bay, load_config, parse_config
from agent.errors import ConfigError

FULL = """
station_id = "station-01"
organisation = "Example Constabulary"
state_dir = "/var/lib/wipe-agent"
api_socket = "/run/wipe-agent/api.sock"
max_parallel_jobs = 8
[default_profiles]
ssd = "nist-purge"
hdd = "nist-purge"
virtual = "nist-clear-overwrite"
usb = "clear-random"
[[bays]]
name = "bay-3"
match = { ID_PATH = "pci-0000:00:17.0-ata-3" }
auto_start = true
profile = "nist-purge"
[[bays]]
name = "usb-dock"
match = { ID_BUS = "usb", ID_PATH = "pci-0000:00:14.0-usb-0:2*" }
"""


def test_full_example_parses() -> None:
    config = parse_config(FULL, "station.toml")
    assert config.station_id == "station-01" and config.max_parallel_jobs == 8
    assert [bay.name for bay in config.bays] == ["bay-3", "usb-dock"]
    assert config.bay("bay-3").auto_start and config.bay("bay-3").profile == "nist-purge"
    assert config.default_profiles["usb"] == "clear-random"
    assert config.to_json()["bays"][0]["match"] == {"ID_PATH": "pci-0000:00:17.0-ata-3"}


def test_only_station_id_is_required() -> None:
    config = parse_config('station_id = "s1"')
    assert str(config.state_dir) == "/var/lib/wipe-agent" and str(config.api_socket) == "/run/wipe-agent/api.sock"
    assert config.default_profiles["ssd"] == "nist-purge" and config.bays == ()
    with pytest.raises(ConfigError, match="station_id is required"):
        parse_config("organisation = 'x'")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('station_id = "s"\nbogus = 1', "unknown key 'bogus'"),
        ('station_id = "s"\nmax_parallel_jobs = "8"', "max_parallel_jobs: expected int, got str"),
        ('station_id = "s"\nmax_parallel_jobs = true', "expected int, got boolean"),
        ('station_id = "s"\nmax_parallel_jobs = 0', "max_parallel_jobs must be 1..64"),
        ('station_id = "s"\nstate_dir = "relative"', "must be an absolute path"),
        ('station_id = "s"\n[default_profiles]\nfloppy = "x"', "unknown media 'floppy'"),
        ('station_id = "s"\n[default_profiles]\nssd = "no-such-profile"', "no-such-profile"),
        ('station_id = "s"\n[[bays]]\nname = "a"', "match is required"),
        ('station_id = "s"\n[[bays]]\nname = "a"\nmatch = {}', "at least one udev property"),
        ('station_id = "s"\n[[bays]]\nname = "a"\nmatch = { X = 1 }', "match.X: expected str"),
        ('station_id = "s"\n[[bays]]\nname = "a"\nmatch = { X = "1" }\nauto_start = "yes"', "expected bool"),
        ('station_id = "s"\n[[bays]]\nname = "a"\nmatch = { X = "1" }\ncolour = "red"', "unknown key 'colour'"),
        ('station_id = "s"\n[[bays]]\nname = "a"\nmatch = { X = "1" }\n[[bays]]\nname = "a"\nmatch = { X = "2" }',
         "duplicate bay name 'a'"),
        ('station_id = "bad id!"', "station_id"),
        ("station_id = ", "not valid TOML"),
        ('station_id = "s"\napi_socket = "/' + "x" * 120 + '"', "longer than a Unix socket"),
    ],
)
def test_strict_validation(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "station.toml")


def test_bay_matching_all_properties_and_globs() -> None:
    config = parse_config(FULL)
    assert config.bay_for({"ID_PATH": "pci-0000:00:17.0-ata-3", "DEVNAME": "/dev/sda"}) == config.bay("bay-3")
    assert config.bay_for({"ID_PATH": "pci-0000:00:17.0-ata-4"}) is None
    dock = config.bay_for({"ID_BUS": "usb", "ID_PATH": "pci-0000:00:14.0-usb-0:2:1.0-scsi-0:0:0:0"})
    assert dock is not None and dock.name == "usb-dock"
    assert config.bay_for({"ID_PATH": "pci-0000:00:14.0-usb-0:2:1.0-scsi-0:0:0:0"}) is None  # ID_BUS missing
    assert Bay("b", (("A", "x"),)).matches({"A": "x"}) and not Bay("b", (("A", "x*"),)).matches({"A": "y"})


def test_profile_choice() -> None:
    config = parse_config(FULL)
    assert config.profile_for(config.bay("bay-3"), "virtual") == "nist-purge"
    assert config.profile_for(config.bay("usb-dock"), "usb") == "clear-random"
    assert config.profile_for(None, "ssd", explicit="nist-clear-overwrite") == "nist-clear-overwrite"
    with pytest.raises(ConfigError, match="no bay 'nope'"):
        config.bay("nope")


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such station configuration file"):
        load_config(tmp_path / "missing.toml")
    path = tmp_path / "station.toml"
    path.write_text('station_id = "s"\n')
    assert load_config(path).source == str(path)


def test_timestamping_section_sets_the_tsa_and_is_validated() -> None:
    config = parse_config('station_id = "s"\n[timestamping]\nurl = "http://127.0.0.1:8318/"\ntimeout = 3\n',
                          check_profiles=False)
    assert (config.tsa_url, config.tsa_timeout) == ("http://127.0.0.1:8318/", 3.0)
    assert config.to_json()["timestamping"] == {"url": "http://127.0.0.1:8318/", "timeout": 3.0}
    default = parse_config('station_id = "s"\n', check_profiles=False)
    assert (default.tsa_url, default.tsa_timeout) == (None, 10.0)
    for body, message in [('url = "ftp://tsa/"', "http:// or https:// URL"), ('url = 5', "url"),
                          ('timeout = 0', "0.5 to 120 seconds"), ('timeout = true', "0.5 to 120 seconds"),
                          ('port = 1', "unknown key 'port'")]:
        with pytest.raises(ConfigError, match=message):
            parse_config(f'station_id = "s"\n[timestamping]\n{body}\n', check_profiles=False)


def test_errors_name_the_line_and_suggest_the_key_meant() -> None:
    with pytest.raises(ConfigError, match=r"^station.toml:2: unknown key 'max_paralel_jobs'; did you mean "
                                          r"'max_parallel_jobs'\?"):
        parse_config('station_id = "s"\nmax_paralel_jobs = 4\n', "station.toml", check_profiles=False)
    text = 'station_id = "s"\n[[bays]]\nname = "a"\nmatch = { X = "1" }\n[[bays]]\nname = "b"\nmatch = { X = 2 }\n'
    with pytest.raises(ConfigError, match=r"^station.toml:7: bay 'b'.match.X: expected str, got int"):
        parse_config(text, "station.toml", check_profiles=False)
    with pytest.raises(ConfigError, match=r"^station.toml:3: \[timestamping\].timeout must be 0.5 to 120"):
        parse_config('station_id = "s"\n[timestamping]\ntimeout = 0\n', "station.toml", check_profiles=False)
    with pytest.raises(ConfigError, match=r"^station.toml:3: \[certificate\].directory: must be an absolute path"):
        parse_config('station_id = "s"\n[certificate]\ndirectory = "rel"\n', "station.toml", check_profiles=False)
    with pytest.raises(ConfigError, match=r"^station.toml:3: \[certificate\]: unknown key 'operator_titel'; "
                                          r"did you mean 'operator_title'\?"):
        parse_config('station_id = "s"\n[certificate]\noperator_titel = "x"\n', "station.toml", check_profiles=False)


def test_the_web_console_user_is_a_login_name_or_absent() -> None:
    from agent.config import parse_config
    from agent.errors import ConfigError

    assert parse_config('station_id = "s"\n').web_console_user is None  # no console: no call acts for an account
    assert parse_config('station_id = "s"\n[web]\nconsole_user = "wipe-web"\n').web_console_user == "wipe-web"
    for bad, said in (('console_user = "Root; rm"', "not a login name"), ('console_user = 0', "expected str"),
                      ('user = "wipe-web"', "unknown key 'user'")):
        try:
            parse_config(f'station_id = "s"\n[web]\n{bad}\n')
        except ConfigError as error:
            assert said in error.message and "station.toml" not in said
        else:
            raise AssertionError(f"{bad} was accepted")


@pytest.mark.parametrize(("body", "line", "message"), [
    ('[default_profiles]\nsdd = "nist-purge"\n', 3,
     "[default_profiles]: unknown media 'sdd'; did you mean 'ssd'? (allowed: hdd, ssd, usb, virtual)"),
    ('[default_profiles]\nssd = "nist-purg"\n', 3, "[default_profiles].ssd: no profile named 'nist-purg'"),
    ('[[bays]]\nname = "a b"\nmatch = { X = "1" }\n', 3, "[[bays]] #1.name: must be letters, digits"),
    ('[[bays]]\nname = "a"\nmatch = { X = "1" }\nprofle = "x"\n', 5,
     "[[bays]] #1: unknown key 'profle'; did you mean 'profile'?"),
    ('[[bays]]\nname = "a"\nmatch = { X = "1" }\n\nprofile = "nist-purg"\n', 6, "bay 'a'.profile: no profile named"),
    ('[[bays]]\nname = "a"\nmatch = { X = { Y = "1" } }\n', 4, "bay 'a'.match.X: expected str, got table"),
    ('[[bays]]\nname = "a"\nmatch = { X = "1" }\n[[bays]]\nname = "a"\nmatch = { X = "2" }\n', 6,
     "[[bays]] #2: duplicate bay name 'a'"),
    ('[audit]\ncheckpoint_every = 1.5\n', 3, "[audit].checkpoint_every must be a whole number from 1 to 100000"),
    ('\n\napi_socket = "run/api.sock"\n', 4, "api_socket: must be an absolute path, got 'run/api.sock'"),
    ('[organisation]\nname = "N"\ndata_backed_up = "yse"\n', 4,
     "[organisation].data_backed_up must be one of yes, no, unknown, got 'yse'; did you mean 'yes'?"),
    ('[timestamping]\nurl = "http://tsa"\ntimout = 3\n', 4, "[timestamping]: unknown key 'timout'; did you mean"),
])
def test_every_error_is_located_at_the_key_and_one_line(body: str, line: int, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config('station_id = "s"\n' + body, "station.toml")
    assert raised.value.message.startswith(f"station.toml:{line}: {message}"), raised.value.message
    assert "\n" not in raised.value.message


def test_the_declared_schema_is_the_shape_of_the_configuration() -> None:
    """A key added to StationConfig.to_json but not to the schema (or the reverse) could not be set, or
    would be refused: the declaration and the dataclass are kept as one."""
    from agent.config import SCHEMA_TABLE

    assert set(SCHEMA_TABLE.fields) == set(parse_config(FULL).to_json()) - {"source"}
    for table in ("timestamping", "audit", "certificate", "web"):
        nested = SCHEMA_TABLE.fields[table].table
        assert nested is not None and set(nested.fields) == set(parse_config(FULL).to_json()[table])
