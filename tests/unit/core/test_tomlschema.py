"""The one TOML validator: key lines from the text, located errors, suggestions, and profile includes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.errors import ProfileError
from agent.policy.profiles import load_profile, load_profile_file, parse_profile
from agent.tomlschema import key_lines

BASE = """\
schema = 1
summary = "base"
minimum_level = "clear"

[match]
media = ["hdd", "virtual"]

[[steps]]
method = "overwrite.zero"

[verify]
mode = "sampling"
"""


def test_key_lines_know_headers_arrays_dotted_inline_and_strings() -> None:
    text = ('a = 1 # x\ns = """\nfake = 1\n"""\nx.y = 2\n[t.u]\nk = { P = "1", "Q" = "2" }\n'
            '[[arr]]\nn = 1\n[[arr]]\nn = [\n  1,\n  2,\n]\n[arr.sub]\nz = 3\n')
    lines = key_lines(text)
    assert lines[("a",)] == 1 and ("fake",) not in lines and lines[("x", "y")] == 5
    assert lines[("t",)] == 6 and lines[("t", "u", "k", "Q")] == 7
    assert lines[("arr", 0, "n")] == 9 and lines[("arr", 1, "n")] == 11 and lines[("arr", 1, "n", 1)] == 13
    assert lines[("arr", 1, "sub", "z")] == 16


def test_unknown_key_suggests_the_close_one() -> None:
    with pytest.raises(ProfileError, match=r"^p.toml:12: \[verify\]: unknown key 'mdoe'; did you mean 'mode'\?"):
        parse_profile(BASE.replace('mode = "sampling"', 'mdoe = "sampling"'), "p", "p.toml")
    with pytest.raises(ProfileError, match=r"p.toml:9: .*method 'overwrite.zeros'; did you mean 'overwrite.zero'"):
        parse_profile(BASE.replace('"overwrite.zero"', '"overwrite.zeros"'), "p", "p.toml")


def test_include_takes_the_base_and_overrides_key_by_key(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "site.toml").write_text('include = "base.toml"\nsummary = "site"\n[verify]\nmode = "full"\n')
    site = load_profile_file(tmp_path / "site.toml")
    assert (site.summary, site.verify_mode, site.media) == ("site", "full", ("hdd", "virtual"))
    assert [step.method for step in site.steps] == ["overwrite.zero"]
    # arrays are replaced whole, never spliced
    (tmp_path / "random.toml").write_text('include = "base.toml"\n[[steps]]\nmethod = "overwrite.random"\n')
    assert [step.method for step in load_profile_file(tmp_path / "random.toml").steps] == ["overwrite.random"]


def test_an_error_in_an_inherited_key_names_the_base_file(tmp_path: Path) -> None:
    (tmp_path / "base.toml").write_text(BASE.replace('mode = "sampling"', 'mode = "quick"'))
    (tmp_path / "site.toml").write_text('include = "base.toml"\nsummary = "site"\n')
    with pytest.raises(ProfileError, match=r"base.toml:12: \[verify\].mode must be one of"):
        load_profile_file(tmp_path / "site.toml")


def test_a_site_override_builds_on_the_shipped_profile_of_its_own_name(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "nist-purge.toml").write_text('include = "nist-purge.toml"\nsummary = "site purge"\n')
    monkeypatch.setenv("WIPE_AGENT_PROFILE_DIR", str(tmp_path))
    profile = load_profile("nist-purge")
    assert profile.summary == "site purge" and profile.minimum_level.value == "purge" and len(profile.steps) > 5


@pytest.mark.parametrize(
    ("files", "message"),
    [
        # itself: only a shipped file of that name could be meant, and there is none
        ({"a.toml": 'include = "a.toml"\n'}, r"no profile file 'a.toml'"),
        ({"a.toml": 'include = "b.toml"\n', "b.toml": 'include = "a.toml"\n'},
         r"b.toml:1: include: include cycle: .*a.toml -> .*b.toml -> .*a.toml$"),
        ({"a.toml": 'include = "missing.toml"\n'}, r"a.toml:1: include: no profile file 'missing.toml'"),
        ({"a.toml": 'include = 5\n'}, r"a.toml:1: include: expected str, got int"),
        ({"a.toml": 'include = "../outside.toml"\n'}, r"a.toml:1: include: must name a .toml file in the same folder"),
        ({"a.toml": 'include = "/etc/passwd"\n'}, r"must name a .toml file in the same folder"),
        ({"a.toml": 'include = "b.toml"\n', "b.toml": 'include = "c.toml"\n', "c.toml": 'include = "d.toml"\n',
          "d.toml": 'include = "e.toml"\n', "e.toml": 'include = "f.toml"\n', "f.toml": BASE},
         r"includes nested more than 4 deep"),
    ],
)
def test_include_mistakes_are_one_line_errors(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ProfileError, match=message) as raised:
        load_profile_file(tmp_path / "a.toml")
    assert "\n" not in raised.value.message


def test_include_cannot_follow_a_link_out_of_the_profile_directory(tmp_path: Path) -> None:
    # the profile directory is what was reviewed; a link in it must not pull in a file from elsewhere
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "base.toml").write_text(BASE)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    os.symlink(outside / "base.toml", profiles / "base.toml")
    (profiles / "site.toml").write_text('include = "base.toml"\n')
    with pytest.raises(ProfileError, match=r"site.toml:1: include: 'base.toml' links outside"):
        load_profile_file(profiles / "site.toml")


def test_a_shipped_profile_may_include_only_shipped_ones() -> None:
    with pytest.raises(ProfileError, match=r"no profile file 'site-base.toml' in the shipped profiles"):
        parse_profile('include = "site-base.toml"\n', "x", "wipe_profiles/x.toml")


def test_four_includes_deep_is_allowed(tmp_path: Path) -> None:
    for name, target in [("a", "b"), ("b", "c"), ("c", "d"), ("d", "e")]:
        (tmp_path / f"{name}.toml").write_text(f'include = "{target}.toml"\n')
    (tmp_path / "e.toml").write_text(BASE)
    assert load_profile_file(tmp_path / "a.toml").summary == "base"


def _paths(value: object, path: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    found: list[tuple[str | int, ...]] = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*path, index))
    return found


def test_every_key_of_every_shipped_file_has_its_line() -> None:
    """The scanner against tomllib: each path tomllib parsed is placed on a line whose text names its key."""
    import tomllib
    from importlib import resources

    files = [entry for package in ("wipe_profiles", "agent.reuse") for entry in resources.files(package).iterdir()
             if entry.name.endswith(".toml")]
    files += [entry for entry in resources.files("agent.reuse").joinpath("schemes").iterdir()
              if entry.name.endswith(".toml")]
    assert len(files) >= 5
    for entry in files:
        text = entry.read_text(encoding="utf-8")
        lines = key_lines(text)
        for path in _paths(tomllib.loads(text)):
            assert path in lines, (entry.name, path)
            key = path[-1]
            if isinstance(key, str):
                assert key in text.splitlines()[lines[path] - 1], (entry.name, path, lines[path])


def test_cli_profiles_check_reports_an_include_mistake_in_one_line(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    (tmp_path / "site.toml").write_text('summary = "site"\ninclude = "../base.toml"\n')
    result = run_cli("profiles", "check", str(tmp_path / "site.toml"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert lines[0].startswith("wipe-agent: error: ") and "site.toml:2: include: must name a .toml file" in lines[0]
    (tmp_path / "site.toml").write_text('include = "clear-random.toml"\nsummary = "site"\n')
    assert run_cli("profiles", "check", str(tmp_path / "site.toml")).returncode == 0


def _refusal(text: str, schema: object) -> str:
    import tomllib

    from agent.errors import ConfigError
    from agent.tomlschema import Document, Table, validate

    assert isinstance(schema, Table)
    with pytest.raises(ConfigError) as raised:
        validate(Document.of("f.toml", text, ConfigError), tomllib.loads(text), schema)
    return raised.value.message


def test_value_rules_named_tables_vocabulary_keys_and_free_keys() -> None:
    """What station.toml declares through the schema: a rule on one value, a table called by its name in
    later messages, a table keyed by a vocabulary, and a rule on the keys of a free-form table."""
    from agent.tomlschema import Field, Table

    def even(value: int) -> str | None:
        return None if value % 2 == 0 else f"must be even, got {value}"

    def lower(key: str) -> str | None:
        return None if key.islower() else "must be lower case"

    item = Table({"name": Field(str, required=True), "size": Field(int, problem=even),
                  "tags": Field(dict, table=Table(extra=Field(str), key_problem=lower))}, named_by=("name", "slot"))
    schema = Table({"slots": Field(list, items=Field(dict, table=item)),
                    "by_media": Field(dict, table=Table({"ssd": Field(str), "hdd": Field(str)}, noun="media"))})
    assert _refusal('[[slots]]\nname = "a"\nsize = 3\n', schema) == "f.toml:3: slot 'a'.size: must be even, got 3"
    assert _refusal('[[slots]]\nname = "a"\n[[slots]]\nname = "b"\n[slots.tags]\nX = "1"\n', schema) == (
        "f.toml:6: slot 'b'.tags key: must be lower case")
    assert _refusal('[[slots]]\nname = "a"\n[slots.tags]\nx = 1\n', schema) == (
        "f.toml:4: slot 'a'.tags.x: expected str, got int")
    # before the name is known the position names the table
    assert _refusal('[[slots]]\nsize = 2\n', schema) == "f.toml:1: [[slots]] #1.name is required"
    assert _refusal('[by_media]\nsdd = "x"\n', schema) == (
        "f.toml:2: [by_media]: unknown media 'sdd'; did you mean 'ssd'? (allowed: hdd, ssd)")
