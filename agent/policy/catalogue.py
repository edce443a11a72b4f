"""TOML data files shipped with the package and overridable by the site (profiles, schemes).

A file in the override directory (``/etc/wipe-agent/<kind>/``, or the directory an environment
variable names, for tests) replaces the shipped file of the same name. Parsing and validation
stay with each kind; this only finds, lists and reads the files, with one-line errors.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from agent.errors import AgentError
from agent.tomlfile import read_bounded_text

_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True)
class Catalogue:
    """Where one kind of data file lives."""

    kind: str  # "profile", "scheme": used in messages
    package: str  # package holding the shipped files
    subdirectory: str | None  # folder inside the package, if any
    environment: str  # variable naming an override directory (tests, site layouts)
    system_directory: Path  # the default override directory
    error: type[AgentError]

    def override_directory(self) -> Path:
        """The directory whose files override the shipped ones."""
        return Path(os.environ.get(self.environment, str(self.system_directory)))

    def _shipped(self) -> Traversable:
        root = resources.files(self.package)
        return root.joinpath(self.subdirectory) if self.subdirectory else root

    def _shipped_label(self, name: str) -> str:
        parts = [*self.package.split("."), *([self.subdirectory] if self.subdirectory else []), f"{name}.toml"]
        return "/".join(parts)

    def available(self) -> dict[str, str]:
        """Name → source, sorted; overrides win."""
        found: dict[str, str] = {}
        for entry in self._shipped().iterdir():
            if entry.name.endswith(".toml"):
                found[entry.name[:-5]] = f"shipped:{entry.name}"
        override = self.override_directory()
        if override.is_dir():
            for path in sorted(override.glob("*.toml")):
                found[path.stem] = str(path)
        return dict(sorted(found.items()))

    def read_file(self, path: Path) -> str:
        """The text of one file, or a one-line error."""
        return read_bounded_text(path, self.error, f"{self.kind} file")

    def read(self, name: str) -> tuple[str, str]:
        """``(text, source)`` of the named file: the override first, then the shipped one."""
        if not _NAME.fullmatch(name):
            # names arrive from the API and the CLI: never let one walk out of the directory
            raise self.error(f"{self.kind} name {name!r} must be lower-case letters, digits, . _ - (at most 64)")
        override = self.override_directory() / f"{name}.toml"
        if override.is_file():
            return self.read_file(override), str(override)
        shipped = self._shipped().joinpath(f"{name}.toml")
        if not shipped.is_file():
            raise self.error(f"no {self.kind} named {name!r} (see 'wipe-agent {self.kind}s list')")
        return shipped.read_text(encoding="utf-8"), self._shipped_label(name)
