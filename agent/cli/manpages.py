"""Man pages generated from the command line's own help: ``python -m agent.cli.manpages [DIR]`` (default man/).

One page for the root (``wipe-agent.1``: the commands by section, each with its example) and one per
command (``wipe-agent-wipe.1``; a group's page has each subcommand's usage and options). Nothing is
written by hand, so a page cannot disagree with ``--help``: scripts/make-man.sh regenerates them.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import click

from agent import TOOL_NAME, __version__
from agent.cli.main import COMMANDS, SECTIONS, CommandEntry, cli, load_entry


def _roff(text: str) -> str:
    """Text safe in a roff body: backslashes doubled, a leading '.' or ''' not taken for a request."""
    lines = []
    for line in text.replace("\\", "\\e").splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def _prose(text: str) -> str:
    """A docstring as roff paragraphs: its own line breaks dropped (man fills), blank lines kept as breaks."""
    return "\n.PP\n".join(_roff(" ".join(paragraph.split())) for paragraph in text.split("\n\n") if paragraph.strip())


def _options(ctx: click.Context, command: click.Command) -> list[str]:
    """``.TP`` entries for each option and argument, from click's own help records."""
    out: list[str] = []
    for parameter in command.get_params(ctx):
        record = parameter.get_help_record(ctx)
        if record is None:
            if isinstance(parameter, click.Argument):
                record = (parameter.make_metavar(ctx), "")
            else:
                continue
        name, help_text = record
        out += [".TP", f"\\fB{_roff(name)}\\fR", _roff(help_text) if help_text else ""]
    return out


def _usage(ctx: click.Context, command: click.Command) -> str:
    return " ".join(command.collect_usage_pieces(ctx))


def _header(name: str, summary: str) -> list[str]:
    return [f'.TH "{name.upper()}" "1" "{date.today():%Y-%m-%d}" "{TOOL_NAME} {__version__}" "{TOOL_NAME} manual"',
            ".SH NAME", f"{name} \\- {_roff(summary)}"]


def command_page(entry: CommandEntry) -> str:
    """The page of one top-level command."""
    command = load_entry(entry)
    root = click.Context(cli, info_name=TOOL_NAME, **cli.context_settings)
    ctx = click.Context(command, info_name=entry.name, parent=root)
    lines = _header(f"{TOOL_NAME}-{entry.name}", entry.short_help)
    lines += [".SH SYNOPSIS", f"\\fB{TOOL_NAME} {entry.name}\\fR {_roff(_usage(ctx, command))}",
              ".SH DESCRIPTION", _prose(command.help or entry.short_help), ".SH OPTIONS", *_options(ctx, command)]
    if isinstance(command, click.Group):
        lines.append(".SH COMMANDS")
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = click.Context(sub, info_name=name, parent=ctx)
            lines += [".SS", f"\\fB{TOOL_NAME} {entry.name} {name}\\fR {_roff(_usage(sub_ctx, sub))}",
                      _prose(sub.help or ""), *_options(sub_ctx, sub)]
    lines += [".SH EXAMPLE", ".nf", _roff(entry.example), ".fi", ".SH SEE ALSO", f"\\fB{TOOL_NAME}\\fR(1)"]
    return "\n".join(lines) + "\n"


def root_page() -> str:
    """``wipe-agent.1``: the global options and every command under its section."""
    ctx = click.Context(cli, info_name=TOOL_NAME, **cli.context_settings)
    lines = _header(TOOL_NAME, cli.help or TOOL_NAME)
    lines += [".SH SYNOPSIS", f"\\fB{TOOL_NAME}\\fR {_roff(_usage(ctx, cli))}", ".SH OPTIONS", *_options(ctx, cli)]
    for section, title in SECTIONS:
        lines.append(f'.SH "{title.upper()}"')
        for entry in COMMANDS:
            if entry.section == section:
                lines += [".TP", f"\\fB{entry.name}\\fR", _roff(entry.short_help), ".br",
                          f"e.g. \\fB{_roff(entry.example)}\\fR"]
    lines += [".SH SEE ALSO", ", ".join(f"\\fB{TOOL_NAME}-{entry.name}\\fR(1)" for entry in COMMANDS)]
    return "\n".join(lines) + "\n"


def write_pages(directory: Path) -> list[Path]:
    """Write every page into ``directory``; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    pages = {TOOL_NAME: root_page(), **{f"{TOOL_NAME}-{entry.name}": command_page(entry) for entry in COMMANDS}}
    written = []
    for name, text in pages.items():
        path = directory / f"{name}.1"
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(arguments: list[str]) -> int:
    directory = Path(arguments[0]) if arguments else Path("man")
    written = write_pages(directory)
    print(f"wrote {len(written)} man pages to {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
