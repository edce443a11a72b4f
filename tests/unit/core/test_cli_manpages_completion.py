"""Man pages generated from the help, and shell completion of profiles, bays and devices (through click's
real completion protocol, in a subprocess, as bash would call it)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import pytest

from agent.cli.main import COMMANDS, cli, load_entry
from tests.conftest import LoopDevice

REPO = Path(__file__).resolve().parents[3]


def test_make_man_writes_a_page_per_command_naming_its_options(tmp_path: Path) -> None:
    result = subprocess.run(["bash", str(REPO / "scripts" / "make-man.sh"), str(tmp_path / "man")],
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr
    root = (tmp_path / "man" / "wipe-agent.1").read_text()
    for entry in COMMANDS:
        page = (tmp_path / "man" / f"wipe-agent-{entry.name}.1").read_text()
        assert page.startswith(f'.TH "WIPE-AGENT-{entry.name.upper()}" "1"')
        assert entry.example in page and f"\\fB{entry.name}\\fR" in root
        command = load_entry(entry)
        commands = [command]
        if isinstance(command, click.Group):
            commands += list(command.commands.values())
        for each in commands:
            for parameter in each.params:
                if isinstance(parameter, click.Option) and not parameter.hidden:
                    assert any(f"\\fB{option}" in page or f", {option}" in page for option in parameter.opts), \
                        f"{entry.name}: {each.name} {parameter.opts}"
    assert "--state-dir" in root and "--config" in root


def test_man_pages_render_without_warnings(tmp_path: Path) -> None:
    if shutil.which("man") is None:
        pytest.skip("man is not installed")
    from agent.cli.manpages import write_pages

    for page in write_pages(tmp_path):
        result = subprocess.run(["man", "--warnings", "-l", str(page)], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "MANWIDTH": "80", "MANPAGER": "cat", "PAGER": "cat"})
        assert result.returncode == 0 and result.stderr == "", (page.name, result.stderr)
        assert page.stem.upper() in result.stdout


def _complete(words: str, env: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """What bash completion is offered for the last word of ``words`` (click's bash_complete protocol)."""
    script = Path(sys.executable).with_name("wipe-agent")  # completion is keyed to the program's name
    if not script.exists():
        pytest.skip("no console script in this environment")
    parts = words.split(" ")
    result = subprocess.run([str(script)], capture_output=True, text=True, timeout=60, env={
        **os.environ, **(env or {}), "_WIPE_AGENT_COMPLETE": "bash_complete", "COMP_WORDS": words,
        "COMP_CWORD": str(len(parts) - 1)})
    assert result.returncode == 0 and result.stderr == "", result.stderr
    return [tuple(line.split(",", 1)) for line in result.stdout.splitlines() if line]  # type: ignore[misc]


def test_profile_names_complete_on_wipe_and_start() -> None:
    from agent.policy.profiles import available_profiles

    shipped = sorted(available_profiles())
    assert ("plain", "nist-purge") in _complete("wipe-agent wipe /dev/null --profile ")
    assert sorted(value for _, value in _complete("wipe-agent wipe /dev/null --profile ")) == shipped
    assert [value for _, value in _complete("wipe-agent start bay-1 --profile nist-p")] == ["nist-purge"]
    assert [value for _, value in _complete("wipe-agent profiles show clear")] == ["clear-random"]


def test_bay_names_complete_from_station_toml(tmp_path: Path) -> None:
    config = tmp_path / "station.toml"
    config.write_text('station_id = "s1"\n[[bays]]\nname = "bay-3"\nmatch = { ID_PATH = "a" }\n'
                      '[[bays]]\nname = "bay-4"\nmatch = { ID_PATH = "b" }\n[[bays]]\nname = "front"\n'
                      'match = { ID_PATH = "c" }\n')
    env = {"WIPE_AGENT_CONFIG": str(config)}
    assert [value for _, value in _complete("wipe-agent start bay", env)] == ["bay-3", "bay-4"]
    assert [value for _, value in _complete("wipe-agent cancel --bay f", env)] == ["front"]
    assert [value for _, value in _complete("wipe-agent intake ASSET-1 --bay ", env)] == ["bay-3", "bay-4", "front"]
    # a station.toml that does not parse offers nothing, and says nothing into the shell
    config.write_text("station_id = [\n")
    assert _complete("wipe-agent start ", env) == []


@pytest.mark.root
def test_an_attached_loop_device_completes_on_device_arguments(loop_factory: Callable[..., LoopDevice]) -> None:
    loop = loop_factory(1 << 20)
    for command in ("wipe", "verify-media", "inspect", "health"):
        offered = {value for _, value in _complete(f"wipe-agent {command} /dev/loop")}
        assert loop.path in offered, command
    from agent.cli.completion import complete_device

    items = complete_device(click.Context(cli), click.Argument(["device"]), loop.path)
    # other loops may share the prefix (/dev/loop1, /dev/loop12): this one is offered once, with its file
    assert [item.help for item in items if item.value == loop.path] == [f"loop: {loop.backing}"]
