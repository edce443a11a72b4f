"""One strict validator for every TOML file the agent reads: a small declarative schema, and errors
that say ``FILE:LINE: key.path: message`` with a "did you mean" for a mistyped key.

Profiles, reuse schemes and ``station.toml`` each declare their shape here (which keys, their
types, which are required, the allowed values and bounds, nested tables and arrays of tables) and
keep only their cross-field rules (flash needs Purge, clear modes within modes, ...); those rules
report through the same :class:`Document`, so every message from every file reads the same way.

The line of a key comes from :func:`key_lines`, one scanner of the TOML text shared by all: it
knows ``[table]`` and ``[[array]]`` headers (nested too), dotted keys, quoted keys, inline tables
and arrays spread over lines, and skips strings and comments. The text has already been parsed by
tomllib (:func:`agent.tomlfile.parse_toml`, which also bounds size and nesting), so the scanner can
be simple; where it cannot place a key it gives the line of the nearest enclosing table, never a
wrong file and never an exception.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.errors import AgentError
from agent.tomlfile import exact_type

Path_ = tuple[str | int, ...]
"""A key path in a parsed document: ``("steps", 0, "method")``, ``("organisation", "destinations")``."""

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class _Scanner:
    """Key path → line, for a TOML text that tomllib accepted. Never raises on odd input."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[Path_, int] = {}
        self.arrays: dict[Path_, int] = {}  # array-of-tables path → index of its last element

    # -- characters ----------------------------------------------------------------------------
    def _peek(self, offset: int = 0) -> str:
        at = self.pos + offset
        return self.text[at] if at < len(self.text) else ""

    def _advance(self, count: int = 1) -> None:
        for _ in range(count):
            if self.pos < len(self.text):
                if self.text[self.pos] == "\n":
                    self.line += 1
                self.pos += 1

    def _skip_blank(self, newlines: bool) -> None:
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in " \t\r" or (newlines and char == "\n"):
                self._advance()
            elif char == "#":
                while self.pos < len(self.text) and self.text[self.pos] != "\n":
                    self._advance()
            else:
                return

    def _string(self) -> str:
        """Consume a string of any of the four kinds; return its raw content (escapes left as they are)."""
        quote = self._peek()
        if self.text.startswith(quote * 3, self.pos):
            self._advance(3)
            end = self.text.find(quote * 3, self.pos)
            while quote == '"' and end > 0 and self.text[end - 1] == "\\" and self.text[end - 2] != "\\":
                end = self.text.find(quote * 3, end + 1)
            end = len(self.text) if end < 0 else end
            content = self.text[self.pos:end]
            self._advance(end - self.pos + 3)
            while self._peek() == quote:  # """a"""" : up to two quotes belong to the content
                self._advance()
            return content
        self._advance()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in (quote, "\n"):
            self._advance(2 if quote == '"' and self.text[self.pos] == "\\" else 1)
        content = self.text[start:self.pos]
        self._advance()
        return content

    def _key(self) -> list[str]:
        parts: list[str] = []
        while self.pos < len(self.text):
            self._skip_blank(newlines=False)
            char = self._peek()
            if char in ('"', "'"):
                parts.append(self._string())
            else:
                start = self.pos
                while self._peek() in _BARE and self._peek():
                    self._advance()
                if self.pos == start:
                    return parts
                parts.append(self.text[start:self.pos])
            self._skip_blank(newlines=False)
            if self._peek() != ".":
                return parts
            self._advance()
        return parts

    # -- structure -----------------------------------------------------------------------------
    def _resolve(self, keys: list[str]) -> Path_:
        """A header's key path with the current index of every array of tables it passes through."""
        path: Path_ = ()
        for key in keys:
            path = (*path, key)
            if path in self.arrays:
                path = (*path, self.arrays[path])
        return path

    def _record(self, path: Path_, line: int) -> None:
        self.lines.setdefault(path, line)

    def _value(self, path: Path_) -> None:
        self._skip_blank(newlines=False)
        char = self._peek()
        if char in ('"', "'"):
            self._string()
        elif char == "[":
            self._advance()
            index = 0
            while self.pos < len(self.text):
                self._skip_blank(newlines=True)
                if self._peek() == "]":
                    self._advance()
                    return
                before = self.pos
                self._record((*path, index), self.line)
                self._value((*path, index))
                self._skip_blank(newlines=True)
                if self._peek() == ",":
                    self._advance()
                    index += 1
                elif self.pos == before:
                    self._advance()  # cannot happen in valid TOML; never loop forever
        elif char == "{":
            self._advance()
            while self.pos < len(self.text):
                self._skip_blank(newlines=True)
                if self._peek() == "}":
                    self._advance()
                    return
                before = self.pos
                self._pair(path)
                self._skip_blank(newlines=True)
                if self._peek() == ",":
                    self._advance()
                elif self.pos == before:
                    self._advance()
        else:
            while self._peek() and self._peek() not in ",]}\n#":
                self._advance()

    def _pair(self, table: Path_) -> None:
        line = self.line
        keys = self._key()
        path = table
        for key in keys:
            path = (*path, key)
            self._record(path, line)
        self._skip_blank(newlines=False)
        if self._peek() == "=":
            self._advance()
            self._value(path)
        elif not keys:
            self._advance()

    def scan(self) -> dict[Path_, int]:
        table: Path_ = ()
        while self.pos < len(self.text):
            self._skip_blank(newlines=True)
            if not self._peek():
                break
            line = self.line
            if self._peek() == "[":
                double = self._peek(1) == "["
                self._advance(2 if double else 1)
                keys = self._key()
                self._advance(2 if double else 1)
                if double and keys:
                    array = (*self._resolve(keys[:-1]), keys[-1])
                    self.arrays[array] = self.arrays.get(array, -1) + 1
                    self._record(array, line)
                    table = (*array, self.arrays[array])
                else:
                    table = self._resolve(keys)
                for end in range(1, len(table) + 1):  # [a.b] also places an implicit [a]
                    self._record(table[:end], line)
            else:
                before = self.pos
                self._pair(table)
                if self.pos == before:
                    self._advance()
        return self.lines


def key_lines(text: str) -> dict[Path_, int]:
    """Line number (1-based) of every key, table header and array element in ``text``."""
    try:
        return _Scanner(text).scan()
    except (IndexError, ValueError):  # defensive: a location is a nicety, never a new failure
        return {}


def label(path: Path_) -> str:
    """How a key path is written in messages: ``minimum_level``, ``[verify].mode``,
    ``[organisation.destinations].destroy``, ``[[steps]] #2.pattern``, ``[[bays]] #1.match.X``."""
    if not path:
        return ""
    for at, part in enumerate(path):
        if isinstance(part, int):
            head = ".".join(str(p) for p in path[:at])
            rest = ".".join(str(p) for p in path[at + 1:])
            return f"[[{head}]] #{part + 1}" + (f".{rest}" if rest else "")
    if len(path) == 1:
        return str(path[0])
    return f"[{'.'.join(str(p) for p in path[:-1])}].{path[-1]}"


def table_label(path: Path_) -> str:
    """A table's own name in messages: ``[verify]``, ``[[steps]] #1``."""
    text = label(path)
    return text if text.startswith("[[") else f"[{'.'.join(str(p) for p in path)}]"


@dataclass
class Document:
    """One parsed TOML file: where its keys are, and errors located in it.

    ``origins`` maps a key path to ``(source, line)``; a document built from an ``include`` holds
    the origins of both files, so an error in an inherited key names the file it came from."""

    source: str
    error_type: type[AgentError]
    origins: dict[Path_, tuple[str, int]] = field(default_factory=dict)
    names: dict[Path_, str] = field(default_factory=dict)
    """How a table already checked is called in later messages (``bay 'b'`` for ``[[bays]] #2``), set
    by :func:`validate` from a table's ``named_by`` key."""

    @classmethod
    def of(cls, source: str, text: str, error_type: type[AgentError]) -> Document:
        """The document of ``text`` read from ``source``."""
        return cls(source, error_type, {path: (source, line) for path, line in key_lines(text).items()})

    def where(self, path: Path_) -> str:
        """``FILE:LINE`` of ``path`` (or of its nearest enclosing key), else ``FILE``."""
        for end in range(len(path), 0, -1):
            found = self.origins.get(path[:end])
            if found:
                return f"{found[0]}:{found[1]}"
        return self.source

    def error(self, message: str, path: Path_ = ()) -> AgentError:
        """The located one-line error: ``FILE:LINE: message``."""
        return self.error_type(f"{self.where(path)}: {message}")

    def label(self, path: Path_) -> str:
        """:func:`label`, with a named table's name in place of its position (``bay 'b'.match.X``)."""
        for end in range(len(path), 0, -1):
            name = self.names.get(path[:end])
            if name is not None:
                return ".".join([name, *(str(part) for part in path[end:])])
        return label(path)

    def table_label(self, path: Path_) -> str:
        """:func:`table_label`, with a named table's name in place of its position."""
        if any(path[:end] in self.names for end in range(1, len(path) + 1)):
            return self.label(path)
        return table_label(path)


def suggestion(word: str, choices: Any) -> str:
    """``"; did you mean 'X'?"`` for the closest of ``choices``, or ``""``."""
    close = difflib.get_close_matches(word, [str(choice) for choice in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


_NAMES = {str: "str", int: "int", float: "float", bool: "bool", list: "array", dict: "table"}


def type_name(value: Any) -> str:
    """The TOML-ish name of a parsed value's type, for "got X" (a boolean is never called an int)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, list | dict):
        return _NAMES[type(value)]
    return type(value).__name__


@dataclass(frozen=True)
class Field:
    """One key: its type (one or several), whether it is required, allowed values, bounds, and
    for arrays and tables the shape of their items."""

    kind: type | tuple[type, ...]
    required: bool = False
    required_why: str = ""
    """Appended to "X is required", e.g. "(it is printed on every certificate)"."""
    choices: tuple[str, ...] | None = None
    noun: str = "value"
    """Names an item in "unknown media 'floppy'" (arrays of choices)."""
    minimum: float | None = None
    maximum: float | None = None
    expect: str = ""
    """If given, any type or range failure says "X must be <expect>, got V" (e.g. "0.5 to 120 seconds")."""
    items: Field | None = None
    table: Table | None = None
    unique: bool = False
    problem: Callable[[Any], str | None] | None = None
    """A rule the type and bounds cannot say (an absolute path, text a certificate can print): given a
    value of the right type, why it is refused (said after the key's name), else None."""


@dataclass(frozen=True)
class Table:
    """A table's keys; ``extra`` types any key not named (free-form tables such as udev matches)."""

    fields: Mapping[str, Field] = field(default_factory=dict)
    extra: Field | None = None
    noun: str = "key"
    """Names a key in "unknown media 'floppy'" (a table keyed by a vocabulary)."""
    key_problem: Callable[[str], str | None] | None = None
    """For a free-form table: why a key not named in ``fields`` is refused, else None."""
    named_by: tuple[str, str] | None = None
    """``(key, noun)``: once ``key`` is checked, later messages call the table ``noun 'value'``."""


def _expected(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(_NAMES.get(k, k.__name__) for k in kinds)


def validate(document: Document, data: Mapping[str, Any], schema: Table, path: Path_ = ()) -> None:
    """Check ``data`` against ``schema``; raise the document's error type at the first problem.

    Checks are in file order for unknown keys, then in schema order, so the first mistake a
    reader would meet is the one reported. Recursion follows the schema, not the data, so its
    depth is bounded by the schema whatever the file holds."""
    where = document.table_label(path) if path else ""
    prefix = f"{where}: " if where else ""
    for key in data:
        if key not in schema.fields and schema.extra is None:
            allowed = ", ".join(sorted(schema.fields))
            raise document.error(f"{prefix}unknown {schema.noun} {key!r}{suggestion(key, schema.fields)} "
                                 f"(allowed: {allowed})", (*path, key))
    for key, spec in schema.fields.items():
        if key in data:
            check(document, data[key], spec, (*path, key))
            if schema.named_by is not None and key == schema.named_by[0]:
                document.names[path] = f"{schema.named_by[1]} {data[key]!r}"
        elif spec.required:
            why = f" {spec.required_why}" if spec.required_why else ""
            raise document.error(f"{document.label((*path, key))} is required{why}", (*path, key))
    if schema.extra is not None:
        for key, value in data.items():
            if key not in schema.fields:
                problem = schema.key_problem(key) if schema.key_problem is not None else None
                if problem:
                    raise document.error(f"{where or 'table'} key: {problem}", (*path, key))
                check(document, value, schema.extra, (*path, key))


def check(document: Document, value: Any, spec: Field, path: Path_) -> None:
    """Check one value (and, for arrays and tables, what it holds) against its field."""
    name = document.table_label(path) if spec.table is not None else document.label(path)
    if not exact_type(value, spec.kind):
        if spec.expect:
            raise document.error(f"{name} must be {spec.expect}, got {value!r}", path)
        raise document.error(f"{name}: expected {_expected(spec.kind)}, got {type_name(value)}", path)
    if spec.choices is not None and isinstance(value, str) and value not in spec.choices:
        raise document.error(f"{name} must be one of {', '.join(spec.choices)}, got {value!r}"
                             f"{suggestion(value, spec.choices)}", path)
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = spec.minimum, spec.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            bounds = spec.expect or f"{_number(low)}..{_number(high)}"
            raise document.error(f"{name} must be {bounds}, got {value!r}", path)
    problem = spec.problem(value) if spec.problem is not None else None
    if problem:
        raise document.error(f"{name}: {problem}", path)
    if isinstance(value, list):
        if spec.items is not None:
            for index, item in enumerate(value):
                _item(document, item, spec.items, name, (*path, index))
        if spec.unique and len({repr(item) for item in value}) != len(value):
            raise document.error(f"{name}: duplicate entries", path)
    if isinstance(value, dict) and spec.table is not None:
        validate(document, value, spec.table, path)


def _item(document: Document, item: Any, spec: Field, name: str, path: Path_) -> None:
    if spec.table is not None:
        check(document, item, spec, path)
        return
    if not exact_type(item, spec.kind):
        plural = "strings" if spec.kind is str else f"{_expected(spec.kind)} values"
        raise document.error(f"{name}: expected a list of {plural}, got {type_name(item)}", path)
    if spec.choices is not None and item not in spec.choices:
        raise document.error(f"{name}: unknown {spec.noun} {item!r}{suggestion(item, spec.choices)} "
                             f"(known: {', '.join(spec.choices)})", path)


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)
