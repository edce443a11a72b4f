"""The one TOML reader of wipe-agent, bounded in file size and nesting depth, with one-line errors;
and the bounded file reader that every file input uses.

Every TOML file the agent reads (wipe profiles, site override profiles, ``station.toml``, reuse
schemes) comes through here, so a hostile or broken file is refused the same way everywhere:
never a RecursionError from a thousand nested arrays, never a read that blocks on a FIFO or runs
forever on ``/dev/zero``. Each refusal names the file and raises the caller's error type.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from agent.errors import AgentError

# the largest shipped file is a few KiB; a site file past this is a mistake, not a profile
MAX_TOML_BYTES = 256 * 1024
# the deepest legitimate structure is [[bays]] → match → value (3); 16 leaves room and stops abuse
MAX_TOML_DEPTH = 16


def read_bounded_bytes(path: Path, error: type[AgentError], what: str = "file",
                       limit: int = MAX_TOML_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit``, or ``error`` in one line.

    Opened non-blocking so a FIFO cannot hang the reader, and refused unless it is a regular file
    (a directory, a FIFO, a device such as ``/dev/zero`` that would never end)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}") from None
    except PermissionError:
        raise error(f"{path}: permission denied (run as root, or make the {what} readable)") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise error(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    chunks: list[bytes] = []
    try:
        status = os.fstat(descriptor)
        if stat.S_ISDIR(status.st_mode):
            raise error(f"{path}: is a directory, not a {what}")
        if not stat.S_ISREG(status.st_mode):
            raise error(f"{path}: not a regular file")
        total = 0
        while total <= limit:
            chunk = os.read(descriptor, min(65536, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise error(f"{path}: larger than {limit} bytes; refusing to read it as a {what}")
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    finally:
        os.close(descriptor)
    return b"".join(chunks)


def read_bounded_text(path: Path, error: type[AgentError], what: str = "file",
                      limit: int = MAX_TOML_BYTES) -> str:
    """:func:`read_bounded_bytes` decoded as UTF-8 (undecodable text is ``error`` too)."""
    try:
        return read_bounded_bytes(path, error, what, limit).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start})") from None


def exact_type(value: Any, kind: type | tuple[type, ...]) -> bool:
    """Whether ``value`` is exactly of ``kind`` (one type or several), not of a subclass.

    ``isinstance(True, int)`` holds in Python; TOML keeps booleans and integers apart and so does
    every reader of ours: ``schema = true`` or ``max_parallel_jobs = true`` is a type error."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return type(value) in kinds


def _depth(value: Any) -> int:
    """Nesting depth of parsed TOML (a scalar is 0), iteratively so that it cannot recurse itself."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict):
            children: list[Any] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level + 1)
        if deepest > MAX_TOML_DEPTH:
            return deepest
        pending.extend((child, level + 1) for child in children)
    return deepest


def parse_toml(text: str, source: str, error: type[AgentError]) -> dict[str, Any]:
    """Parse TOML ``text`` from ``source`` with size and depth bounds; ``error`` on any problem."""
    if len(text) > MAX_TOML_BYTES:
        raise error(f"{source}: larger than {MAX_TOML_BYTES} bytes; refusing to parse it")
    if "\x00" in text:
        raise error(f"{source}: not valid TOML: contains a NUL character")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively: a deep file exhausts the stack
        raise error(f"{source}: nested more than {MAX_TOML_DEPTH} levels deep; refusing it") from None
    if _depth(data) > MAX_TOML_DEPTH:
        raise error(f"{source}: nested more than {MAX_TOML_DEPTH} levels deep; refusing it")
    return data


def load_toml_file(path: Path, error: type[AgentError], what: str = "file") -> tuple[str, dict[str, Any]]:
    """``(text, data)`` of a TOML file, read and parsed within the bounds."""
    text = read_bounded_text(path, error, what)
    return text, parse_toml(text, str(path), error)
