"""``wipe-agent operator sign-in | sign-out | list``: the people jobs are attributed to (see agent.operators).

As root these write the registry directly, recording the caller's uid: ``SUDO_UID`` through sudo,
else the real uid. Anyone else (a member of the API group) signs in and out through the station
daemon's socket, which records the uid the kernel reports for the connection (SO_PEERCRED).
"""

from __future__ import annotations

import os

import click

from agent.api.client import ApiClient
from agent.cli.context import state_dir, station_config
from agent.cli.output import handle_errors, json_option, print_json, printable
from agent.operators import (
    DEFAULT_SHIFT_HOURS,
    MAX_SHIFT_HOURS,
    MIN_SHIFT_HOURS,
    OperatorError,
    Operators,
    invoking_uid,
    user_name,
)
from agent.store.registry import Registry


def _operators(ctx: click.Context) -> tuple[Registry, Operators]:
    registry = Registry(state_dir(ctx)).open()
    return registry, Operators(registry)


def _through_daemon() -> bool:
    """Not root: the registry is root's (0600), so the sign-in goes through the daemon's socket, which
    signs in the caller's own uid as the kernel reports it (SO_PEERCRED), never a uid the client names."""
    return os.geteuid() != 0


def _daemon(ctx: click.Context) -> ApiClient:
    from agent.cli.station_commands import _client

    return _client((ctx.find_root().obj or {}).get("config"))


def _check_bays(ctx: click.Context, bays: tuple[str, ...]) -> None:
    """Bay names the station configuration (when there is one) does not know are refused, not recorded."""
    config = station_config(ctx)
    if config is None or not bays:
        return
    known = [bay.name for bay in config.bays]
    unknown = [bay for bay in bays if bay not in known]
    if unknown:
        raise OperatorError(f"no bay {', '.join(map(repr, unknown))} in the station configuration "
                            f"(bays: {', '.join(known) or 'none'})")


@click.group("operator")
def operator() -> None:
    """Operators sign in at the station: jobs and certificates name the person, not the login."""


@operator.command("sign-in")
@click.argument("name")
@click.option("--title", required=True, help="Job title printed on certificates (e.g. 'Digital forensics officer').")
@click.option("--bay", "bays", multiple=True, help="A bay whose auto-start jobs are yours (repeatable).")
@click.option("--all-bays", is_flag=True, help="Every bay's auto-start jobs are yours.")
@click.option("--shift-hours", type=click.FloatRange(min=MIN_SHIFT_HOURS, max=MAX_SHIFT_HOURS),
              default=DEFAULT_SHIFT_HOURS, show_default=True, help="The sign-in ends by itself after this long.")
@json_option
@click.pass_context
@handle_errors
def sign_in(ctx: click.Context, name: str, title: str, bays: tuple[str, ...], all_bays: bool, shift_hours: float,
            as_json: bool) -> None:
    """Sign NAME in for the calling user (SUDO_UID through sudo), for jobs it starts and the bays given."""
    if bays and all_bays:
        raise OperatorError("give --bay BAY or --all-bays, not both")
    _check_bays(ctx, bays)
    if _through_daemon():
        data = _daemon(ctx).post("/v1/operators/sign-in", {
            "name": name, "title": title, "bays": "all" if all_bays else list(bays), "shift_hours": shift_hours})
    else:
        registry, operators = _operators(ctx)
        try:
            data = operators.sign_in(name, title, invoking_uid(), bays=None if all_bays else bays,
                                     shift_hours=shift_hours).to_json()
        finally:
            registry.close()
    if as_json:
        print_json(data)
        return
    bays_of = data["bays"]
    covered = "all bays" if bays_of == "all" else ("bays " + ", ".join(bays_of) if bays_of else "no bays")
    click.echo(printable(f"{data['name']} ({data['title']}) signed in as uid {data['uid']} ({data['user']}), "
                         f"{covered}, until {data['expires_at']}"))


@operator.command("sign-out")
@click.argument("name", required=False)
@json_option
@click.pass_context
@handle_errors
def sign_out(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Sign NAME out (default: whoever is signed in for the calling user)."""
    if _through_daemon():
        if name is not None:
            raise OperatorError("through the station daemon you sign out yourself only: run it without NAME "
                                "(root signs others out)")
        ended = _daemon(ctx).post("/v1/operators/sign-out", {})["signed_out"]
    else:
        registry, operators = _operators(ctx)
        uid = invoking_uid()
        try:
            ended = [entry.to_json() for entry in operators.sign_out(uid=uid, name=name, by_uid=uid)]
        finally:
            registry.close()
    if as_json:
        print_json({"signed_out": ended})
        return
    for entry in ended:
        click.echo(printable(f"{entry['name']} signed out (uid {entry['uid']}, {entry['user']})"))


@operator.command("list")
@json_option
@click.pass_context
@handle_errors
def list_operators(ctx: click.Context, as_json: bool) -> None:
    """Everyone signed in now, newest first."""
    registry, operators = _operators(ctx)
    try:
        active = operators.active()
    finally:
        registry.close()
    if as_json:
        print_json({"operators": [entry.to_json() for entry in active]})
        return
    if not active:
        click.echo(f"nobody signed in (jobs started now by uid {invoking_uid()} ({user_name(invoking_uid())}) "
                   "would name no operator)")
        return
    for entry in active:
        covered = "all" if entry.bays is None else (",".join(entry.bays) or "-")
        click.echo(printable(f"{entry.name:<24} {entry.title:<28} uid {entry.uid:<6} {entry.user:<12} "
                             f"bays {covered:<16} until {entry.expires_at}"))
