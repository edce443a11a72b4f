"""Command-line basics that need no root: clear refusals and exit codes."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from agent.cli.main import cli


def test_demo_without_root_is_a_clear_refusal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    result = CliRunner().invoke(cli, ["demo", "--json"], obj={})
    assert result.exit_code == 2
    assert json.loads(result.output)["error"]["code"] == "needs_root"
    human = CliRunner().invoke(cli, ["demo"], obj={})
    assert human.exit_code == 2 and "needs root" in human.output


def test_unknown_device_is_one_line_exit_2(tmp_path: object) -> None:
    result = CliRunner().invoke(cli, ["verify-media", "/dev/does-not-exist", "--json"], obj={})
    assert result.exit_code == 2
    assert json.loads(result.output)["error"]["code"] == "drive_not_found"


def test_bad_expectation_is_exit_2() -> None:
    result = CliRunner().invoke(cli, ["verify-media", "/dev/null", "--expect", "ones"], obj={})
    assert result.exit_code == 2 and "expectation 'ones'" in result.output


def test_demo_refuses_a_state_dir_that_holds_a_station(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    state = Path(str(tmp_path)) / "state"
    (state / "pki").mkdir(parents=True)
    monkeypatch.setattr("os.geteuid", lambda: 0)
    result = CliRunner().invoke(cli, ["--state-dir", str(state), "demo", "--json"], obj={})
    assert result.exit_code == 2 and json.loads(result.output)["error"]["code"] == "bad_config"
    assert sorted(path.name for path in state.iterdir()) == ["pki"]
