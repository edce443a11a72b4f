"""The emulated drives are test doubles: they must never ship to a station.

The file list is computed by setuptools itself from pyproject.toml (the same ``packages.find``
result a wheel build uses), so a widened ``include`` or an emulator moved back under ``agent/``
fails here rather than on a station.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest
from setuptools.config.pyprojecttoml import apply_configuration
from setuptools.discovery import PEP420PackageFinder
from setuptools.dist import Distribution

import wipe_agent_testing.emulated

ROOT = Path(__file__).resolve().parents[3]
TESTING = "wipe_agent_testing"


def _packages() -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # setuptools' notes about pyproject features are not the subject
        distribution = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    return list(distribution.packages or [])


def _installed_files(packages: list[str]) -> set[str]:
    """Repository-relative .py files a wheel holds: each package's own directory, not its subpackages'."""
    files: set[str] = set()
    for package in packages:
        directory = ROOT.joinpath(*package.split("."))
        files.update(str(path.relative_to(ROOT)) for path in directory.glob("*.py"))
    return files


def test_the_emulator_lives_in_the_testing_package() -> None:
    assert Path(wipe_agent_testing.emulated.__file__).resolve() == ROOT / TESTING / "emulated.py"
    assert not (ROOT / "agent" / "transport" / "emulated.py").exists()


def test_setuptools_leaves_the_testing_package_out_of_the_wheel() -> None:
    packages = _packages()
    assert "agent.transport" in packages  # the find result is real, not empty
    assert [name for name in packages if name.split(".")[0] == TESTING] == []
    files = _installed_files(packages)
    assert "agent/transport/commands.py" in files
    assert "agent/transport/emulated.py" not in files
    assert not any(name.startswith(TESTING + "/") for name in files)


def test_the_check_would_see_a_widened_include() -> None:
    """The finder does see the testing package when asked to: the check above can fail."""
    found = PEP420PackageFinder.find(str(ROOT), include=["agent*", TESTING + "*"])
    assert TESTING in found


@pytest.mark.parametrize("top", ["agent", "certs"])
def test_no_installed_module_imports_the_testing_package(top: str) -> None:
    offenders = []
    for path in sorted((ROOT / top).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module is not None:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {name}" for name in names if name.split(".")[0] == TESTING]
    assert offenders == []
