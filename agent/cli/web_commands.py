"""``wipe-agent web``: the web console (the station's bay wall; the fleet's programme views) and its accounts."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from agent.cli.output import EXIT_FAILED, handle_errors, json_option, print_json, printable

DEFAULT_ACCOUNTS = Path("/etc/wipe-agent/web-accounts.json")
accounts_option = click.option(
    "--accounts", "accounts_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_ACCOUNTS,
    envvar="WIPE_AGENT_WEB_ACCOUNTS", show_envvar=True, show_default=True,
    help="The console's accounts file (JSON, 0600, scrypt hashes only).")


@click.group("web")
def web() -> None:
    """The web console: the station's bay wall; the fleet's dashboard, compliance, partner, auditor views."""


@web.group("account")
def account() -> None:
    """Local accounts of the console (operator, compliance, partner, auditor, admin)."""


@account.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["operator", "compliance", "partner", "auditor", "admin"]),
              help="What the person may see and do.")
@click.option("--title", required=True, help="Their job title, as the audit chain records it.")
@click.option("--partner", default=None, help="For a partner account: the partner name its manifests carry.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@click.option("--replace", is_flag=True, help="Change an existing account (and sign it out everywhere).")
@accounts_option
@handle_errors
def account_add(name: str, role: str, title: str, partner: str | None, password_stdin: bool, replace: bool,
                accounts_path: Path) -> None:
    """Add the account NAME (the password is asked for, or read with --password-stdin; never an argument).

    e.g. wipe-agent web account add asmith --role compliance --title 'Compliance officer'
    """
    from agent.web.accounts import Accounts, Role

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    added = Accounts(accounts_path).add(name, Role(role), title, password, partner, replace=replace)
    click.echo(f"account {added.name} ({added.role.value}{', ' + added.partner if added.partner else ''}) "
               f"saved in {accounts_path}")


@account.command("list")
@accounts_option
@json_option
@handle_errors
def account_list(accounts_path: Path, as_json: bool) -> None:
    """The accounts (never their hashes).

    e.g. wipe-agent web account list
    """
    from agent.web.accounts import Accounts

    accounts = Accounts(accounts_path).all()
    rows = [{"name": a.name, "role": a.role.value, "title": a.title, "partner": a.partner} for a in accounts]
    if as_json:
        print_json({"accounts": rows})
        return
    for row in rows:
        click.echo(f"{row['name']:<20} {row['role']:<11} {row['title']}"
                   + (f"  [partner {row['partner']}]" if row["partner"] else ""))
    if not rows:
        click.echo(f"no accounts in {accounts_path}")


@account.command("remove")
@click.argument("name")
@accounts_option
@handle_errors
def account_remove(name: str, accounts_path: Path) -> None:
    """Remove the account NAME (its sessions end at their next request).

    e.g. wipe-agent web account remove asmith
    """
    from agent.web.accounts import Accounts

    Accounts(accounts_path).remove(name)
    click.echo(f"account {name} removed from {accounts_path}")


@web.command("serve")
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT to listen on.")
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Serve HTTPS with this certificate chain (PEM); cookies are then Secure.")
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The private key of --tls-cert (PEM).")
@click.option("--fleet", "fleet_database", default=None, metavar="DSN", envvar="WIPE_AGENT_FLEET_DATABASE",
              help="Serve the fleet's console from this PostgreSQL database instead of a station's bay wall.")
@click.option("--trust", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The organisation's trust bundle (the fleet console's certificate upload verifies against it).")
@click.option("--kiosk", is_flag=True,
              help="Station: show the bay wall without sign-in (read-only; every action still needs sign-in).")
@click.option("--insecure-http", is_flag=True,
              help="Allow plain HTTP on an address other machines reach (a read-only kiosk wall on the station's "
                   "LAN); sign-in and actions are then taken only from this machine.")
@accounts_option
@click.pass_context
@handle_errors
def serve(ctx: click.Context, listen: str, tls_cert: Path | None, tls_key: Path | None, fleet_database: str | None,
          trust: Path | None, kiosk: bool, insecure_http: bool, accounts_path: Path) -> None:
    """Serve the console until SIGTERM/SIGINT.

    Without TLS the console listens on loopback only, unless --insecure-http.

    e.g. wipe-agent web serve --listen 0.0.0.0:8443 --tls-cert web.pem --tls-key web.key --kiosk
    """
    from agent.web.serve import serve_console

    serve_console(ctx, listen=listen, tls_cert=tls_cert, tls_key=tls_key, fleet_database=fleet_database,
                  trust=trust, kiosk=kiosk, accounts_path=accounts_path, insecure_http=insecure_http)


@web.group("audit")
def audit() -> None:
    """The fleet console's audit chain (every sign-in and action), in the fleet database."""


database_option = click.option(
    "--fleet", "fleet_database", envvar="WIPE_AGENT_FLEET_DATABASE", default="", show_envvar=True, metavar="DSN",
    help="The fleet's PostgreSQL database (libpq string or postgresql:// URI).")


@audit.command("verify")
@click.option("--expect", "anchor_text", default=None, metavar="SEQ:HASH",
              help="A head printed by an earlier verify and kept outside the database: entry SEQ must still have "
                   "HASH (finds a rewrite of the whole chain, which the walk alone cannot).")
@database_option
@json_option
@handle_errors
def audit_verify(anchor_text: str | None, fleet_database: str, as_json: bool) -> None:
    """Check the console's chain: every link and hash, and the head (exit 1 when broken).

    e.g. wipe-agent web audit verify --fleet 'host=/run/postgresql dbname=wipe_fleet' --expect 1200:3f…
    """
    from agent.fleet.database import FleetDatabase
    from agent.web.audit import parse_anchor, verify

    try:
        anchor = parse_anchor(anchor_text) if anchor_text is not None else None
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--expect") from None
    with FleetDatabase(fleet_database) as database:
        report = verify(database, anchor=anchor)
    if as_json:
        print_json(report.to_json())
    else:
        state = "valid" if report.valid else "BROKEN"
        click.echo(f"console audit chain: {state}, {report.entries} entries, head {report.head}")
        for problem in report.problems:
            click.echo(f"  {printable(problem)}")
        if report.anchored_to is not None:
            click.echo(f"  entry {report.anchored_to} matches the anchor")
        if report.valid and report.entries:
            click.echo(f"  anchor {report.entries}:{report.head} (keep it outside the database; "
                       f"give it as --expect next time)")
    if not report.valid:
        sys.exit(EXIT_FAILED)


@audit.command("show")
@click.option("--last", type=click.IntRange(min=1), default=50, show_default=True, help="The newest so many entries.")
@database_option
@json_option
@handle_errors
def audit_show(last: int, fleet_database: str, as_json: bool) -> None:
    """The newest entries of the console's chain.

    e.g. wipe-agent web audit show --last 20 --fleet 'dbname=wipe_fleet'
    """
    from agent.fleet.database import FleetDatabase
    from agent.web.audit import entries

    with FleetDatabase(fleet_database) as database:
        shown = entries(database, last=last)
    if as_json:
        print_json({"entries": [entry.to_json() for entry in shown]})
        return
    for entry in shown:
        details = " ".join(f"{key}={value}" for key, value in sorted(entry.data.items()))
        click.echo(printable(f"{entry.seq:>6} {entry.at} {entry.kind:<20} {entry.subject:<16} {details}"))
    if not shown:
        click.echo("no entries")
