"""Profiles: shipped ones load; every kind of mistake is an error naming file, key and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import ProfileError
from agent.methods.base import Level
from agent.policy.profiles import available_profiles, load_profile, load_profile_file, parse_profile
from tests.conftest import run_cli

GOOD = """\
schema = 1
summary = "test"
minimum_level = "clear"

[match]
media = ["hdd", "virtual"]

[[steps]]
method = "overwrite.pattern"
pattern = "55aa"

[verify]
mode = "full"
"""


def test_shipped_profiles_all_load() -> None:
    names = set(available_profiles())
    assert {"nist-clear-overwrite", "nist-clear-overwrite-full", "clear-random", "nist-purge"} <= names
    for name in names:
        assert load_profile(name).name == name


def test_shipped_profile_contents() -> None:
    clear = load_profile("nist-clear-overwrite")
    assert [s.method for s in clear.steps] == ["overwrite.zero"] and clear.verify_mode == "sampling"
    assert load_profile("nist-clear-overwrite-full").verify_mode == "full"
    assert [s.method for s in load_profile("clear-random").steps] == ["overwrite.random"]
    purge = load_profile("nist-purge")
    assert purge.minimum_level is Level.PURGE
    assert all(not step.method.startswith("overwrite.") for step in purge.steps)


def test_good_profile_parses() -> None:
    profile = parse_profile(GOOD, "good", "good.toml")
    assert profile.steps[0].method == "overwrite.pattern"
    assert dict(profile.steps[0].options) == {"pattern": "55aa"}
    assert profile.media == ("hdd", "virtual")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace('summary = "test"', 'summary = "test"\ncolour = "blue"'), r"good.toml:3: unknown key 'colour'"),
        (GOOD.replace('"overwrite.pattern"', '"overwrite.zeros"'), r"good.toml:9: \[\[steps\]\] #1: unknown method"),
        (GOOD.replace('pattern = "55aa"', 'pattern = "zz"'), r"good.toml:9: .*not hex"),
        (GOOD.replace('pattern = "55aa"', "pattern = 85"), r"good.toml:10: .*pattern: expected str, got int"),
        (GOOD.replace('pattern = "55aa"', 'passes = "3"'), r"good.toml:10: .*unknown option 'passes'"),
        (GOOD.replace('mode = "full"', 'mode = "quick"'), r"good.toml:13: \[verify\].mode must be one of"),
        (GOOD.replace('["hdd", "virtual"]', '["floppy"]'), r"good.toml:6: .*unknown media 'floppy'"),
        (GOOD.replace('["hdd", "virtual"]', "[]"), r"must name at least one media"),
        (GOOD.replace("schema = 1", "schema = 2"), r"good.toml:1: schema must be 1"),
        (GOOD.replace('minimum_level = "clear"', 'minimum_level = "destroy"'), r"good.toml:3: minimum_level must be"),
        (GOOD.replace('minimum_level = "clear"', "minimum_level = true"), r"minimum_level: expected str, got bool"),
        (GOOD.replace('[[steps]]\nmethod = "overwrite.pattern"\npattern = "55aa"\n', ""), r"at least one \[\[steps"),
        ("schema = 1\n[[steps]\n", r"good.toml: not valid TOML"),
        (GOOD.replace("[verify]", "[verify]\nseed = 4"), r"good.toml:13: \[verify\]: unknown key 'seed'"),
    ],
)
def test_profile_errors_name_file_key_and_line(text: str, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        parse_profile(text, "good", "good.toml")


def test_bad_profile_name() -> None:
    with pytest.raises(ProfileError, match="profile name"):
        parse_profile(GOOD, "Bad Name", "x.toml")


def test_profile_override_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "site-clear.toml").write_text(GOOD)
    monkeypatch.setenv("WIPE_AGENT_PROFILE_DIR", str(tmp_path))
    assert "site-clear" in available_profiles()
    assert load_profile("site-clear").source == str(tmp_path / "site-clear.toml")


def test_missing_profile() -> None:
    with pytest.raises(ProfileError, match="no profile named 'nope'"):
        load_profile("nope")


def test_cli_profiles_check_bad_file_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('"overwrite.pattern"', '"overwrite.gutmann"'))
    result = run_cli("profiles", "check", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "bad.toml:9" in lines[0] and "unknown method 'overwrite.gutmann'" in lines[0]
    good = tmp_path / "good.toml"
    good.write_text(GOOD)
    assert run_cli("profiles", "check", str(good)).returncode == 0
    assert load_profile_file(good).name == "good"


def test_cli_profiles_list_and_show_json() -> None:
    import json

    listed = json.loads(run_cli("profiles", "list", "--json", check=True).stdout)
    assert "nist-purge" in {row["name"] for row in listed["profiles"]}
    shown = json.loads(run_cli("profiles", "show", "nist-purge", "--json", check=True).stdout)
    assert shown["minimum_level"] == "purge"
    missing = run_cli("profiles", "show", "nope", "--json")
    assert missing.returncode == 2 and json.loads(missing.stdout)["error"]["code"] == "bad_profile"


def test_profile_name_cannot_walk_out_of_the_directory(tmp_path: Path) -> None:
    (tmp_path / "x.toml").write_text(GOOD)
    with pytest.raises(ProfileError, match="must be lower-case"):
        load_profile(f"../../../../..{tmp_path}/x")
