"""The command table in agent/cli/main.py: lazy imports, grouped help, and a table that matches its commands.

Start-up time is measured in the note, never here: these tests check *what* is imported, by
``sys.modules`` in a fresh interpreter, which is what the time follows from."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import click
import pytest

from agent.cli.main import COMMANDS, SECTIONS, cli, load_entry

HEAVY = ("reportlab", "pyhanko", "pyhanko_certvalidator", "cryptography", "asn1crypto", "pypdf",
         "agent.daemon.station", "certs.verify", "certs.pki", "rich", "pyudev")

# Every top-level command before the table existed: none may disappear or be renamed.
EXISTING = ("drives", "wipe", "jobs", "job", "verify-media", "profiles", "demo", "run", "status", "watch", "start",
            "cancel", "intake", "inspect", "pki", "tsa", "certificates", "verify", "eligibility", "attest", "validate",
            "destroy-record", "manifest", "health", "host", "schemes", "audit")

_PROBE = """
import json, sys
sys.argv = ["wipe-agent", *json.loads(sys.argv[1])]
from agent.cli.main import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_after(*arguments: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``wipe-agent ARGUMENTS`` through main()."""
    result = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(arguments)], capture_output=True, text=True,
                            timeout=60)
    last = result.stderr.strip().splitlines()[-1]
    return set(json.loads(last))


def _heavy_in(modules: set[str]) -> list[str]:
    return sorted(name for name in modules for heavy in HEAVY if name == heavy or name.startswith(heavy + "."))


@pytest.mark.parametrize("arguments", [("--version",), ("--help",), ("status", "--help"), ("verify", "--help")])
def test_start_up_imports_no_heavy_module(arguments: tuple[str, ...]) -> None:
    modules = _modules_after(*arguments)
    assert "click" in modules and "agent.cli.main" in modules  # the probe really ran the CLI
    assert _heavy_in(modules) == []


def test_root_help_imports_no_command_module() -> None:
    modules = _modules_after("--help")
    loaded = {entry.target.split(":")[0] for entry in COMMANDS} & modules
    assert loaded == set()


def test_a_command_s_help_imports_only_its_module() -> None:
    modules = _modules_after("jobs", "--help")
    assert "agent.cli.job_commands" in modules
    assert "agent.cli.reuse_commands" not in modules and "agent.cli.certificate_commands" not in modules


def test_every_existing_command_is_in_the_table_once() -> None:
    names = [entry.name for entry in COMMANDS]
    assert len(names) == len(set(names))
    assert set(EXISTING) <= set(names)
    assert set(cli.list_commands(click.Context(cli))) >= set(EXISTING)


@pytest.mark.parametrize("entry", COMMANDS, ids=lambda entry: entry.name)
def test_table_row_matches_its_command(entry: object) -> None:
    """The short help in the table is the command's own, its section is a heading, its example is real."""
    from agent.cli.main import CommandEntry

    assert isinstance(entry, CommandEntry)
    command = load_entry(entry)
    assert command.name == entry.name
    assert command.get_short_help_str(limit=1000) == entry.short_help
    assert entry.section in dict(SECTIONS)
    words = shlex.split(entry.example)
    assert words[:2] == ["wipe-agent", entry.name]
    current: click.Command = command
    for word in words[2:]:
        if isinstance(current, click.Group) and word in current.commands:
            current = current.commands[word]
        elif word.startswith("-"):
            options = {option for parameter in current.params for option in parameter.opts}
            assert word in options, f"{entry.example}: {current.name} has no {word}"


def test_root_help_is_grouped_with_examples() -> None:
    result = subprocess.run([sys.executable, "-W", "error", "-m", "agent.cli.main", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    headings = [index for index, line in enumerate(lines) for _, title in SECTIONS if line == f"{title}:"]
    assert len(headings) == len(SECTIONS) and headings == sorted(headings)
    for entry in COMMANDS:
        heading = next(title for section, title in SECTIONS if section == entry.section)
        start = lines.index(f"{heading}:")
        block = lines[start:next((i for i in headings if i > start), len(lines))]
        assert any(line.split()[:1] == [entry.name] for line in block), entry.name
        assert f"e.g. {entry.example.split()[0]} {entry.name}" in "\n".join(block), entry.name


def test_an_eagerly_added_command_still_works() -> None:
    """A helper's ``cli.add_command`` (before its row is in the table) is listed and runs."""
    from click.testing import CliRunner

    from agent.cli.main import LazyGroup

    group = LazyGroup("root", entries=COMMANDS[:1])

    @click.command("extra")
    def extra() -> None:
        """An extra command."""
        click.echo("ran extra")

    group.add_command(extra)
    assert group.list_commands(click.Context(group)) == [COMMANDS[0].name, "extra"]
    assert CliRunner().invoke(group, ["extra"]).output == "ran extra\n"
    assert "Other commands" in CliRunner().invoke(group, ["--help"]).output


def test_verify_help_names_every_expect_word() -> None:
    from agent.cli.verify_command import EXPECT_WORDS
    from certs.verify import EXPECT_CHOICES

    assert EXPECT_WORDS == tuple(EXPECT_CHOICES)
