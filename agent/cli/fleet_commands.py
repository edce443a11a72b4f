"""``wipe-agent fleet``: the refresh programme across stations, on PostgreSQL (the fleet host).

The database is a libpq connection string or URI, from ``--database`` or ``$WIPE_AGENT_FLEET_DATABASE``
(``host=/run/postgresql dbname=wipe_fleet`` for a local server over its socket).
"""

from __future__ import annotations

from pathlib import Path

import click

from agent.cli.output import handle_errors, json_option, print_json, printable

database_option = click.option(
    "--database", envvar="WIPE_AGENT_FLEET_DATABASE", default="", show_envvar=True, metavar="DSN",
    help="The fleet's PostgreSQL database (libpq string or postgresql:// URI).")


@click.group("fleet")
def fleet() -> None:
    """The refresh programme across stations: asset register and programme state (PostgreSQL)."""


@fleet.group("assets")
def assets() -> None:
    """The force's asset register: import it, look an asset up, count assets by state."""


@assets.command("import")
@click.argument("register", type=click.Path(dir_okay=False, path_type=Path))
@database_option
@json_option
@handle_errors
def import_command(register: Path, database: str, as_json: bool) -> None:
    """Import the asset register REGISTER (CSV: asset_tag, make, model, serial, type, department, due_date).

    Every row is checked first; one bad row refuses the whole file (each problem named by line) and
    nothing is imported. Re-importing updates register fields and never an asset's programme state.

    e.g. wipe-agent fleet assets import register-2026-12.csv --database 'host=/run/postgresql dbname=wipe_fleet'
    """
    from agent.fleet.assets import import_register
    from agent.fleet.database import FleetDatabase

    with FleetDatabase(database) as db:
        result = import_register(db, register)
    if as_json:
        print_json(result.to_json())
        return
    click.echo(f"imported {printable(register)}: {result.rows} assets ({result.added} new, {result.updated} updated, "
               f"{result.unchanged} unchanged); sha256 {result.sha256}")


@assets.command("show")
@click.argument("key")
@database_option
@json_option
@handle_errors
def show(key: str, database: str, as_json: bool) -> None:
    """One asset by asset tag or drive serial, with its programme state.

    e.g. wipe-agent fleet assets show LAPTOP-0042
    """
    from agent.fleet.assets import find_asset
    from agent.fleet.database import FleetDatabase
    from agent.fleet.errors import FleetInputError

    with FleetDatabase(database) as db:
        asset = find_asset(db, key)
    if asset is None:
        raise FleetInputError(f"no asset with tag or serial {printable(key)!r} in the register "
                              "(import it with 'wipe-agent fleet assets import')")
    if as_json:
        print_json(asset.to_json())
        return
    for name, value in asset.to_json().items():
        click.echo(f"{name:12} {printable(value)}")


@assets.command("summary")
@database_option
@json_option
@handle_errors
def summary(database: str, as_json: bool) -> None:
    """How many assets are in each programme state, and the total.

    e.g. wipe-agent fleet assets summary --json
    """
    from agent.fleet.assets import counts_by_state
    from agent.fleet.database import FleetDatabase

    with FleetDatabase(database) as db:
        counts = counts_by_state(db)
    if as_json:
        print_json({"states": counts, "total": sum(counts.values())})
        return
    for state, count in counts.items():
        click.echo(f"{state:12} {count:>7}")
    click.echo(f"{'total':12} {sum(counts.values()):>7}")
