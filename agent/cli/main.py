"""The ``wipe-agent`` command line (click). Thin: parse, call services, render (``--json`` everywhere).

This module is the root group and one table of every command: its name, help section, short help,
an example and where it lives ("module:attribute"). A command's module is imported only when that
command runs or shows its help, so ``wipe-agent --version`` or ``status`` do not pay for the PDF,
signing and job stacks (the CLI took 8x a bare ``import click`` to start when all of it loaded up
front). Add a command with one ``CommandEntry`` row below; ``cli.add_command`` still works, eagerly.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import click

from agent import TOOL_NAME, __version__
from agent.cli.output import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, fail, refuse_usage


@dataclass(frozen=True)
class CommandEntry:
    """One row of the command table: enough to list a command in ``--help`` without importing it."""

    name: str
    section: str
    target: str
    """``module:attribute`` of the click command."""
    short_help: str
    """Exactly the command's own short help (a test keeps them equal)."""
    example: str


SECTIONS: tuple[tuple[str, str], ...] = (
    ("operator", "Operator: drives, bays and jobs on this station"),
    ("partner", "Partner: check what a station issued, decide reuse"),
    ("compliance", "Compliance: spot checks, records and the audit trail"),
    ("admin", "Admin: the daemon, PKI, timestamping, profiles and schemes"),
)

_STATION = "agent.cli.station_commands"
_JOBS = "agent.cli.job_commands"
_REUSE = "agent.cli.reuse_commands"

COMMANDS: tuple[CommandEntry, ...] = (
    # operator
    CommandEntry("operator", "operator", "agent.cli.operator_commands:operator",
                 "Operators sign in at the station: jobs and certificates name the person, not the login.",
                 'wipe-agent operator sign-in "PC Alex Morgan" --title "Digital forensics technician" --all-bays'),
    CommandEntry("status", "operator", f"{_STATION}:status",
                 "Every bay: the drive in it now, its state, phase, progress, reasons; safe to pull or not.",
                 "wipe-agent status --json"),
    CommandEntry("watch", "operator", f"{_STATION}:watch",
                 "Live view of all bays (fits 80x24), refreshed in place; rides out a daemon restart.",
                 "wipe-agent watch --interval 2"),
    CommandEntry("start", "operator", f"{_STATION}:start",
                 "Start a job on the drive in BAY (the caller is recorded as the operator).",
                 "wipe-agent start bay-3 --profile nist-purge"),
    CommandEntry("cancel", "operator", f"{_STATION}:cancel",
                 "Cancel a queued or running job (by JOB_ID or --bay); a started one ends interrupted, never "
                 "certified.",
                 "wipe-agent cancel --bay bay-3"),
    CommandEntry("intake", "operator", f"{_STATION}:intake",
                 "Link the next drive inserted into BAY to the host device it came from.",
                 "wipe-agent intake LAPTOP-0042 --bay bay-3"),
    CommandEntry("drives", "operator", f"{_JOBS}:drives",
                 "List whole-disk drives, with whether the guard protects each and why.",
                 "wipe-agent drives"),
    CommandEntry("wipe", "operator", f"{_JOBS}:wipe",
                 "Sanitise DEVICE in the foreground with a profile, then verify it.",
                 "wipe-agent wipe /dev/sdb --profile nist-purge"),
    CommandEntry("jobs", "operator", f"{_JOBS}:jobs",
                 "Recent jobs, newest first (filtered by any of --since --until --asset --serial --state --operator).",
                 "wipe-agent jobs --since 2026-01-01 --state sanitised --csv"),
    CommandEntry("job", "operator", f"{_JOBS}:job", "One job in detail.", "wipe-agent job JOB_ID --events"),
    CommandEntry("inspect", "operator", "agent.cli.inspect_command:inspect",
                 "Show identity and wipe-relevant capabilities of DEVICE, or of a saved --dump FILE.",
                 "wipe-agent inspect /dev/nvme0n1"),
    CommandEntry("health", "operator", f"{_REUSE}:health",
                 "Read DEVICE's SMART health with smartctl (smartmontools) and record it; virtual media: not "
                 "applicable.",
                 "wipe-agent health /dev/sdb"),
    # partner
    CommandEntry("verify", "partner", "agent.cli.verify_command:verify",
                 "Verify certificates of sanitisation, failure reports, batch manifests and destruction reports.",
                 "wipe-agent verify certs/ --trust bundle.pem"),
    CommandEntry("eligibility", "partner", f"{_REUSE}:eligibility",
                 "For each scheme: is device ASSET eligible, or exactly why not; and its route.",
                 "wipe-agent eligibility LAPTOP-0042"),
    CommandEntry("manifest", "partner", f"{_REUSE}:manifest", "Signed batch manifests for reuse partners.",
                 "wipe-agent manifest create --scheme schools LAPTOP-0042"),
    # compliance
    CommandEntry("verify-media", "compliance", f"{_JOBS}:verify_media",
                 "Re-verify a sanitised drive (compliance spot check).",
                 "wipe-agent verify-media /dev/sdb --mode full"),
    CommandEntry("attest", "compliance", f"{_REUSE}:attest",
                 "Record that a person checked something software cannot (BIOS password, MDM removal, labels).",
                 "wipe-agent attest LAPTOP-0042 --item mdm-removed --by 'A. Smith'"),
    CommandEntry("validate", "compliance", f"{_REUSE}:validate",
                 "Sign a validation statement (NIST SP 800-88 Rev. 2) accepting or rejecting certificates.",
                 "wipe-agent validate --certificates DIR --decision accept --by 'A. Smith' --role security-officer "
                 "--station-on-instruction"),
    CommandEntry("destroy-record", "compliance", f"{_REUSE}:destroy_record",
                 "Record the destruction of ASSET's drives, with a signed destruction report.",
                 "wipe-agent destroy-record LAPTOP-0042 --method shred --witness 'B. Jones'"),
    CommandEntry("certificates", "compliance", "agent.cli.extend_command:certificates",
                 "Issued certificates, failure reports, manifests and destruction reports.",
                 "wipe-agent certificates extend CERT.pdf"),
    CommandEntry("audit", "compliance", "agent.cli.compliance_commands:audit",  # + audit sample
                 "The hash-chained audit log of decisions, attestations, validations, destructions and manifests.",
                 "wipe-agent audit sample --percent 5 --seed 2026-q1"),
    CommandEntry("host", "compliance", f"{_REUSE}:host",
                 "Host devices (laptops, desktops, tablets) and the drives they held.",
                 "wipe-agent host list"),
    # admin
    CommandEntry("run", "admin", f"{_STATION}:run",
                 "Run the station daemon (systemd Type=notify): hot-plug, bays, parallel jobs, the operator API.",
                 "wipe-agent run --config /etc/wipe-agent/station.toml"),
    CommandEntry("pki", "admin", "agent.cli.certificate_commands:pki",
                 "Organisation CA, station signing certificates, revocation and the partners' trust bundle.",
                 "wipe-agent pki init-ca --org 'Example Council'"),
    CommandEntry("tsa", "admin", "agent.cli.tsa_commands:tsa",
                 "The organisation's RFC 3161 timestamping authority (on the CA or fleet host).",
                 "wipe-agent tsa serve --tsa /var/lib/wipe-tsa"),
    CommandEntry("profiles", "admin", f"{_JOBS}:profiles", "Wipe profiles: list, show, check.",
                 "wipe-agent profiles show nist-purge"),
    CommandEntry("schemes", "admin", f"{_REUSE}:schemes",
                 "Reuse schemes (TOML data; /etc/wipe-agent/schemes overrides the shipped ones).",
                 "wipe-agent schemes list"),
    CommandEntry("fleet", "admin", "agent.cli.fleet_commands:fleet",
                 "The refresh programme across stations: asset register, programme state, ingest service (PostgreSQL).",
                 "wipe-agent fleet assets import register.csv --database 'dbname=wipe_fleet'"),
    CommandEntry("web", "admin", "agent.cli.web_commands:web",
                 "The web console: the station's bay wall; the fleet's dashboard, compliance, partner, auditor views.",
                 "wipe-agent web serve --kiosk --listen 0.0.0.0:8080"),
    CommandEntry("demo", "admin", f"{_JOBS}:demo",
                 "Sanitise four throw-away loop drives end to end, certify and prove the data is gone (root only).",
                 "wipe-agent demo --discard"),
)


def load_entry(entry: CommandEntry) -> click.Command:
    """Import the module of one table row and return its command."""
    module_name, attribute = entry.target.split(":")
    command = getattr(importlib.import_module(module_name), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{entry.target} is not a click command")
    return command


def _shorten(text: str, limit: int) -> str:
    """``text`` cut at a word to fit ``limit`` columns, with "..." when cut (as click does its own)."""
    if len(text) <= limit:
        return text
    words, kept = text.split(), ""
    for word in words:
        candidate = f"{kept} {word}" if kept else word
        if len(candidate) + 3 > limit:
            break
        kept = candidate
    return f"{kept}..."


class LazyGroup(click.Group):
    """A group that lists the table's commands from the table alone and imports one only to run it
    (or show its help). Commands added with ``add_command`` work as with any group (eagerly)."""

    def __init__(self, *args: object, entries: Sequence[CommandEntry] = (), **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.entries = {entry.name: entry for entry in entries}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.entries, *sorted(set(self.commands) - set(self.entries))]

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["wipe_agent.arguments"] = list(args)  # for a usage error's --json, after click consumed them
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            refuse_usage(error, args)

    def invoke(self, ctx: click.Context) -> object:
        """Run the command; a usage error in any command below is refused like any other bad input."""
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            refuse_usage(error, ctx.meta.get("wipe_agent.arguments", []))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.entries:
            self.commands[cmd_name] = load_entry(self.entries[cmd_name])
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands under their headings, each with its short help and an example, from the table."""
        width = max(len(name) for name in self.list_commands(ctx))
        limit = formatter.width - 6 - width
        for section, title in SECTIONS:
            rows: list[tuple[str, str]] = []
            for entry in self.entries.values():
                if entry.section == section:
                    rows.append((entry.name, _shorten(entry.short_help, limit)))
                    rows.append(("", f"e.g. {entry.example}"))
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows, col_max=width)
        others = [(name, self.commands[name].get_short_help_str(limit))
                  for name in sorted(set(self.commands) - set(self.entries)) if not self.commands[name].hidden]
        if others:
            with formatter.section("Other commands"):
                formatter.write_dl(others, col_max=width)


@click.group(cls=LazyGroup, entries=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="'wipe-agent COMMAND --help' for one command's options; man pages: man/wipe-agent-COMMAND.1.")
@click.version_option(__version__, prog_name=TOOL_NAME)
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Registry and keys (default: the station config's, else $WIPE_AGENT_STATE_DIR, "
                   "else /var/lib/wipe-agent).")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="Station configuration: its state directory and API socket (default $WIPE_AGENT_CONFIG).")
@click.pass_context
def cli(ctx: click.Context, state_dir: str | None, config: str | None) -> None:
    """wipe-agent: NIST SP 800-88 sanitisation with verification and signed evidence."""
    ctx.ensure_object(dict)
    ctx.obj["state_dir"] = state_dir
    ctx.obj["config"] = config
    if config is not None:
        from agent.config import load_config
        from agent.errors import AgentError

        # the station commands (run, status, start, …) read the same file through this variable
        os.environ["WIPE_AGENT_CONFIG"] = config
        # read once here, for every command: one that does not use it (drives, pki) must not let an
        # operator believe an unreadable site configuration applied
        try:
            load_config(config, check_profiles=False)
        except AgentError as error:
            fail(error, False)


def _log_unexpected(exc: Exception) -> str:
    """Send the traceback of an unforeseen error to the system log; say where it went.

    The system log, not a file: a root process writing a fixed path in /tmp would follow a link
    another user planted there."""
    import logging
    import logging.handlers

    if not os.path.exists("/dev/log"):
        return "no system log on this machine: run again with PYTHONDEVMODE=1 for details"
    try:
        handler = logging.handlers.SysLogHandler(address="/dev/log")
        handler.ident = "wipe-agent: "
        logger = logging.getLogger("wipe-agent.cli.unexpected")
        logger.propagate = False
        logger.addHandler(handler)
        logger.error("unexpected error", exc_info=exc)
        handler.close()
    except OSError:
        return "the system log is unavailable"
    return "details in the system log: journalctl -t wipe-agent"


def main() -> None:
    """Console-script entry point.

    The last resort only: every known bad input has its own one-line error where it is detected.
    Something unforeseen still ends as one line (and the details in the log), never a traceback
    in front of an operator."""
    for position, argument in enumerate(sys.argv[1:], start=1):
        try:
            argument.encode("utf-8")
        except UnicodeEncodeError:
            # the bytes would reach SQLite, HTTP headers and certificates as lone surrogates: refuse once, here
            printable = argument.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            click.echo(f"wipe-agent: error: argument {position} ({printable!r}) is not valid UTF-8; "
                       "wipe-agent takes UTF-8 arguments only", err=True)
            sys.exit(EXIT_REFUSED)
    try:
        code = cli.main(obj={}, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("wipe-agent: aborted", err=True)
        sys.exit(EXIT_FAILED)
    except click.ClickException as exc:
        # a usage error in one line, naming the command's help, instead of click's three
        usage_context: click.Context | None = getattr(exc, "ctx", None)
        where = f" (see '{usage_context.command_path} --help')" if usage_context is not None else ""
        click.echo(f"wipe-agent: error: {exc.format_message()}{where}", err=True)
        sys.exit(EXIT_REFUSED)
    except Exception as exc:  # click's own exits (SystemExit) and Ctrl-C pass through untouched
        click.echo(f"wipe-agent: internal error: {type(exc).__name__}: {str(exc)[:200]} "
                   f"({_log_unexpected(exc)})", err=True)
        sys.exit(EXIT_FAILED)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
