"""Shared CLI plumbing: --json output, one-line errors, exit codes.

Exit codes: 0 success; 1 a job or verification failed (or was interrupted); 2 bad input or refused.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from agent.errors import AgentError, ConfigError
from certs.csvcell import neutralise_formula
from certs.units import decimal_size

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_REFUSED = 2

F = TypeVar("F", bound=Callable[..., Any])


def printable(value: object) -> str:
    """``value`` as text that a terminal shows and never obeys.

    Drive identity (a USB bridge reports whatever vendor, model and serial its firmware likes; a
    loop's serial is its backing path), file names and recorded reasons can hold ESC sequences,
    CR or bidi overrides that would repaint the ``Proceed?`` prompt or another line. Every text
    surface shows them escaped (``\\x1b``, ``\\u202e``); JSON output and the registry keep the raw
    value (JSON escapes it)."""
    text = str(value)
    if text.isprintable():
        return text
    shown: list[str] = []
    for character in text:
        code = ord(character)
        if character.isprintable():  # letters of every script and the space; not controls, formats, separators
            shown.append(character)
        else:
            shown.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(shown)


def print_json(data: Any) -> None:
    """Machine output: one JSON document on stdout."""
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def fail(error: AgentError, as_json: bool, exit_code: int | None = None) -> NoReturn:
    """Report ``error`` as one line (or a JSON error object) and exit."""
    if as_json:
        print_json({"error": error.to_json()})
    else:
        click.echo(f"wipe-agent: error: {printable(error.message)}", err=True)
    sys.exit(error.exit_code if exit_code is None else exit_code)


def handle_errors(function: F) -> F:
    """Turn AgentError (and OS-level surprises) into a clean one-line error and exit code."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = bool(kwargs.get("as_json", False))
        try:
            return function(*args, **kwargs)
        except AgentError as error:
            fail(error, as_json)
        except BrokenPipeError:
            # the reader went away (``wipe-agent jobs | head``): nothing to say, and nobody to say it to;
            # stdout goes to /dev/null so the interpreter's final flush does not complain either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_FAILED)
        except PermissionError as error:
            from agent.store.registry import RUN_AS_ROOT

            fail(AgentError(f"permission denied: {error.filename or error}; {RUN_AS_ROOT}"), as_json, EXIT_REFUSED)
        except sqlite3.Error as error:
            # the registry was sound when opened (Registry.open checks it) and failed under us:
            # a full state filesystem, or damage found in a page the open check did not read
            from agent.store.registry import sqlite_reason

            fail(AgentError(f"registry: {sqlite_reason(error)}; what was not recorded is lost (an unfinished job "
                            "shows as interrupted, route hold, once the registry can be written again)"),
                 as_json, EXIT_FAILED)
        except OSError as error:
            where = f"{error.filename}: " if error.filename else ""
            fail(AgentError(f"{where}{error.strerror or error}"), as_json, EXIT_FAILED)
        return None

    return wrapper  # type: ignore[return-value]


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")


class OneOf(click.Choice):  # type: ignore[type-arg]  # generic from click 8.2; pyproject allows 8.1
    """``click.Choice`` whose refusal reads as the hand-written ones did: ``--mode must be one of sampling,
    full, not 'quick'`` (the choices also complete in the shell). Exact, case-sensitive matches only."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value in self.choices:
            return value
        self.fail(f"must be one of {', '.join(map(str, self.choices))}, not {value!r}", param, ctx)


def refuse_usage(error: click.UsageError, arguments: list[str]) -> NoReturn:
    """Report a mistake click found on the command line (a required option missing, a value not among
    its choices, an unknown option) as every other refusal is (:func:`fail`): a :class:`ConfigError`
    ("command-line input is invalid") in one line naming the command's help, or with ``--json`` among
    ``arguments`` the error object on stdout; exit 2. The root group calls it for every command, so
    ``required=True`` and :class:`OneOf` keep the --json contract."""
    fail(ConfigError(usage_message(error)), asks_for_json(arguments), EXIT_REFUSED)


def usage_message(error: click.UsageError) -> str:
    """One line for a click usage error, with the command's help as the next step."""
    param = getattr(error, "param", None)
    hint = (param.opts[0] if param.opts else param.human_readable_name) if param is not None else ""
    if isinstance(error, click.MissingParameter) and param is not None:
        choices = getattr(param.type, "choices", None)
        text = f"{hint} {'|'.join(map(str, choices))} is required" if choices else f"{hint} is required"
    elif isinstance(error, click.BadParameter) and param is not None and isinstance(param.type, OneOf):
        text = f"{hint} {error.message}"
    else:
        text = error.format_message()
    where = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
    return f"{text}{where}"


def asks_for_json(arguments: list[str]) -> bool:
    """Whether a command line asks for ``--json`` (before any ``--`` that ends the options)."""
    options = arguments[:arguments.index("--")] if "--" in arguments else arguments
    return "--json" in options


def human_size(size: float) -> str:
    """Decimal sizes ("16.8 MB", "500.1 GB"): the one convention of the certificate, CLI and watch."""
    return decimal_size(size)


def csv_cell(value: object) -> str:
    """One CSV cell a spreadsheet shows as text: a leading formula character gets a ``'`` in front
    (:func:`certs.csvcell.neutralise_formula`, the manifest CSV's rule too), and control characters are
    made visible (``printable``) so a cell cannot break a row."""
    return neutralise_formula("" if value is None else printable(str(value)))


def write_csv(header: list[str], rows: list[list[object]]) -> None:
    """Write a CSV table to standard output, every cell through :func:`csv_cell`."""
    import csv

    writer = csv.writer(sys.stdout, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([csv_cell(cell) for cell in row])
