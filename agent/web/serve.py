"""Build a host's console (station bay wall or fleet views) and serve it until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import ssl
import sys
from pathlib import Path

import click
from aiohttp import web

from agent.errors import ConfigError
from agent.web.accounts import Accounts
from agent.web.server import LOOPBACK_NAMES, Console


class WebConfigError(ConfigError):
    """The console cannot start as configured (listen address, TLS files, accounts, database)."""

    code = "bad_web_config"


def tls_context(cert: Path | None, key: Path | None) -> ssl.SSLContext | None:
    """A TLS 1.2+ server context, or None for plain HTTP (loopback or behind a TLS proxy)."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise WebConfigError("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(f"cannot load the TLS certificate {cert} and key {key}: {exc}") from None
    return context


def loopback(host: str) -> bool:
    """Whether ``host`` (a listen address) is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name (or 0.0.0.0 / ::): other machines may reach it


def check_transport(host: str, *, tls: bool, insecure_http: bool) -> None:
    """Plain HTTP only on loopback unless ``insecure_http`` says so on purpose (a kiosk wall on the station's
    LAN: its read-only pages are readable by anyone there; sign-in stays with loopback clients, see server.py)."""
    if tls or loopback(host) or insecure_http:
        return
    raise WebConfigError(f"plain HTTP on {host} would send passwords and sessions across the network in clear: "
                         "give --tls-cert and --tls-key, or --insecure-http for a read-only wall (sign-in is then "
                         "taken only from this machine)")


def build_console(ctx: click.Context, *, fleet_database: str | None, trust: Path | None, kiosk: bool,
                  accounts_path: Path, secure: bool) -> Console:
    """The station's console (from --config) or the fleet's (from --fleet DSN)."""
    accounts = Accounts(accounts_path)
    if fleet_database is not None:
        from agent.web.audit import FleetConsoleAudit
        from agent.web.fleet import fleet_console

        if kiosk:
            raise WebConfigError("--kiosk is the station's bay wall; the fleet console always needs sign-in")
        return fleet_console(fleet_database, accounts=accounts, trust=trust, secure=secure,
                             audit=FleetConsoleAudit(fleet_database))
    from agent.cli.context import station_config
    from agent.web.station import station_console

    config = station_config(ctx)
    if config is None:
        raise WebConfigError("no station configuration: pass --config station.toml (or serve --fleet DSN)")
    return station_console(config, accounts=accounts, kiosk=kiosk, secure=secure)


def serve_console(ctx: click.Context, *, listen: str, tls_cert: Path | None, tls_key: Path | None,
                  fleet_database: str | None, trust: Path | None, kiosk: bool, accounts_path: Path,
                  insecure_http: bool = False) -> None:
    """Run the console's aiohttp server on ``listen`` until a signal."""
    from agent.tsa.server import parse_listen

    try:
        host, port = parse_listen(listen)
    except ValueError as error:
        raise WebConfigError(str(error)) from None
    context = tls_context(tls_cert, tls_key)
    check_transport(host, tls=context is not None, insecure_http=insecure_http)
    console = build_console(ctx, fleet_database=fleet_database, trust=trust, kiosk=kiosk,
                            accounts_path=accounts_path, secure=context is not None)
    if loopback(host):
        console.host_names = LOOPBACK_NAMES
    if not console.accounts.all():
        click.echo(f"web: warning: no accounts in {accounts_path}: nobody can sign in "
                   "(wipe-agent web account add NAME --role ROLE --title TITLE)", err=True)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    asyncio.run(_run(console.application(), host, port, context))


IDLE_SECONDS = 15.0
"""A connection that has not sent a whole request's headers this long after it opened, or after its last answer,
is closed (aiohttp's default is an hour: a client trickling a header a minute, or opening sockets and sending
nothing, held each connection and its descriptor until the console could accept no more). A live stream, or a
page being answered, is a request under way and is not cut."""


def runner_for(app: web.Application) -> web.AppRunner:
    """The console's runner: header limits well under aiohttp's defaults (a console request has a cookie and a
    short URL), and idle or half-sent connections closed after ``IDLE_SECONDS``."""
    return web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0,
                         max_line_size=4096, max_field_size=8190, max_headers=64, keepalive_timeout=IDLE_SECONDS)


async def _run(app: web.Application, host: str, port: int, context: ssl.SSLContext | None) -> None:
    runner = runner_for(app)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise WebConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sockets = getattr(site._server, "sockets", None) or []
    bound = sockets[0].getsockname() if sockets else (host, port)
    scheme = "https" if context else "http"
    click.echo(f"web: console on {scheme}://{bound[0]}:{bound[1]}/", err=True)
    sys.stderr.flush()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
