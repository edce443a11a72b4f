"""``wipe-agent fleet``: the refresh programme across stations, on PostgreSQL (the fleet host).

The database is a libpq connection string or URI, from ``--database`` or ``$WIPE_AGENT_FLEET_DATABASE``
(``host=/run/postgresql dbname=wipe_fleet`` for a local server over its socket).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.cli.output import OneOf, handle_errors, json_option, print_json, printable

if TYPE_CHECKING:
    from agent.fleet.outbox import Outbox
    from agent.store.registry import Registry

database_option = click.option(
    "--database", envvar="WIPE_AGENT_FLEET_DATABASE", default="", show_envvar=True, metavar="DSN",
    help="The fleet's PostgreSQL database (libpq string or postgresql:// URI).")


@click.group("fleet")
def fleet() -> None:
    """The refresh programme across stations: asset register, programme state, ingest service (PostgreSQL)."""


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


@fleet.command("summary")
@database_option
@json_option
@handle_errors
def programme_summary(database: str, as_json: bool) -> None:
    """The programme at a glance: assets by state and scheme, jobs by station, share done.

    e.g. wipe-agent fleet summary --json
    """
    from agent.fleet.assets import AssetState
    from agent.fleet.database import FleetDatabase
    from agent.fleet.programme import summary

    with FleetDatabase(database) as db:
        totals = summary(db.db)
        db.db.commit()
    if as_json:
        print_json(totals)
        return
    click.echo(f"{totals['total']} assets, {totals['done']} done ({totals['percent_done']}%)")
    for state in AssetState:
        click.echo(f"  {state:12} {totals['states'].get(str(state), 0):>7}")
    for scheme, count in sorted(totals["schemes"].items()):
        click.echo(f"  scheme {printable(scheme)}: {count}")
    for station, count in sorted(totals["jobs_by_station"].items()):
        click.echo(f"  station {printable(station)}: {count} jobs")


@fleet.command("sample")
@click.option("--percent", type=float, default=20.0, show_default=True,
              help="Share of the sanitised drives on site to draw (at least this, rounded up per station and method).")
@click.option("--seed", required=True, help="One line of text given by compliance; every draw is recorded.")
@database_option
@json_option
@handle_errors
def sample(percent: float, seed: str, database: str, as_json: bool) -> None:
    """Draw the fleet-wide secondary-verification sample, stratified by station and method, and assign it.

    e.g. wipe-agent fleet sample --percent 20 --seed 2026-q4
    """
    from agent.fleet.database import FleetDatabase
    from agent.fleet.sampling import draw

    with FleetDatabase(database) as db, db.transaction() as tx:
        drawn = draw(tx, percent, seed)
    if as_json:
        print_json(drawn)
        return
    if drawn["earlier_draws"]:
        click.echo(f"note: {drawn['earlier_draws']} earlier draw(s) over exactly this population are recorded; "
                   "this draw is recorded too", err=True)
    click.echo(f"sample {drawn['draw']}: {drawn['drawn']} of {drawn['population']} sanitised drives on site "
               f"({percent:g} %, seed {printable(seed)!r}, nonce {drawn['nonce']})")
    for stratum in drawn["strata"].values():
        click.echo(f"  {printable(stratum['station'])} {printable(stratum['method'])}: "
                   f"{stratum['drawn']}/{stratum['population']}")
    for item in drawn["sample"]:
        click.echo(f"  {printable(item['verify'])}  (asset {printable(item['asset_tag'] or '-')})")
    click.echo(f"algorithm: {drawn['algorithm']}")


@fleet.command("sample-status")
@click.option("--draw", "draw_id", type=int, default=None, help="A sample's number [default: the latest].")
@database_option
@json_option
@handle_errors
def sample_status_command(draw_id: int | None, database: str, as_json: bool) -> None:
    """Results of a sample as stations report them back: passed, failed, pending, per station.

    e.g. wipe-agent fleet sample-status --json
    """
    from agent.fleet.database import FleetDatabase
    from agent.fleet.sampling import sample_status

    with FleetDatabase(database) as db:
        status = sample_status(db.db, draw_id)
        db.db.commit()
    if as_json:
        print_json(status)
        return
    totals = status["totals"]
    click.echo(f"sample {status['draw']} (seed {printable(status['seed'])!r}, {status['at']}): {totals['passed']} "
               f"passed, {totals['failed']} failed, {totals['pending']} pending")
    for station, counts in sorted(status["stations"].items()):
        click.echo(f"  {printable(station)}: {counts['passed']} passed, {counts['failed']} failed, "
                   f"{counts['pending']} pending")


@fleet.command("exceptions")
@click.option("--late-hours", type=float, default=24.0, show_default=True,
              help="A station's chain is late when its newest checkpoint is older than this.")
@database_option
@json_option
@handle_errors
def exceptions_command(late_hours: float, database: str, as_json: bool) -> None:
    """What compliance must look at: held, interrupted, certificates missing, chains refused or late, overdue.

    e.g. wipe-agent fleet exceptions --json
    """
    from agent.fleet.compliance import exceptions
    from agent.fleet.database import FleetDatabase

    with FleetDatabase(database) as db:
        found = exceptions(db.db, late_hours=late_hours)
    if as_json:
        print_json(found)
        return
    click.echo(f"held assets: {found['held']['count']}; interrupted drives: {found['interrupted']['count']}; "
               f"certificates missing: {found['certificate_missing']['count']}; overdue assets: "
               f"{found['overdue']['count']}; allocated twice: {found['allocated_twice']['count']}")
    for item in found["allocated_twice"]["items"]:
        click.echo(f"  {printable(item['asset_tag'])} is in {printable(', '.join(item['manifests']))}")
    for item in found["chain"]["refused"]:
        click.echo(f"  refused from {printable(item['station_id'])}: {item['count']} x {printable(item['code'])} "
                   f"(latest: {printable(item['reason'])})")
    for item in found["chain"]["late_checkpoints"]:
        click.echo(f"  {printable(item['station_id'])}: {item['entries_after_checkpoint']} audit entries not yet "
                   f"covered by a checkpoint (last {printable(item['last_checkpoint_at'] or 'never')})")


@fleet.command("report")
@click.option("--from", "start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First day (UTC), YYYY-MM-DD.")
@click.option("--to", "end", required=True, type=click.DateTime(["%Y-%m-%d"]),
              help="Day after the last (UTC, exclusive), YYYY-MM-DD.")
@click.option("--format", "form", type=OneOf(["json", "csv", "pdf"]), default="json", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file (required for pdf) instead of standard output.")
@database_option
@handle_errors
def report(start: datetime, end: datetime, form: str, out: Path | None, database: str) -> None:
    """The programme over a period: per day and station, outcomes by method, media and model, failure reasons,
    routes, receipt-to-sanitisation times — JSON, CSV, or a PDF with charts for managers.

    e.g. wipe-agent fleet report --from 2026-11-01 --to 2026-12-01 --format pdf --out november.pdf
    """
    import json

    from agent.fleet.database import FleetDatabase
    from agent.fleet.errors import FleetInputError
    from agent.fleet.report import build, to_csv, to_pdf

    if form == "pdf" and out is None:
        raise FleetInputError("--format pdf needs --out FILE")
    with FleetDatabase(database) as db:
        data = build(db.db, start.date(), end.date())
        db.db.commit()
    if form == "pdf":
        assert out is not None
        to_pdf(data, out)
        click.echo(f"wrote {printable(out)}")
        return
    text = json.dumps(data, indent=2, sort_keys=True) + "\n" if form == "json" else to_csv(data)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"wrote {printable(out)}")


@fleet.group("manifest")
def manifest() -> None:
    """Fleet manifests: eligible assets of every station allocated to a partner, signed by the fleet's key."""


@manifest.command("create")
@click.option("--scheme", required=True, help="The scheme the assets go to (an asset must be eligible for it).")
@click.option("--partner", required=True, help="The reuse partner receiving them (printed and signed).")
@click.option("--asset", "assets", multiple=True, metavar="TAG",
              help="An asset to list (repeat); every one must be listable, or nothing is written.")
@click.option("--all-eligible", is_flag=True, help="Every asset eligible for the scheme and not yet allocated; "
                                                   "the ones that cannot be listed are left out, each with the reason.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A new or empty directory for the PDF, JSON, CSV and certificates/.")
@click.option("--signer", "signer_dir", envvar="WIPE_AGENT_FLEET_SIGNER", required=True, show_envvar=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="The fleet's signing directory from 'pki issue-fleet' (fleet.key 0600, fleet.crt, chain, CRL).")
@click.option("--trust", "trust", envvar="WIPE_AGENT_FLEET_TRUST", required=True, show_envvar=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="The organisation's trust bundle: every listed certificate is verified against it again.")
@click.option("--tsa-url", envvar="WIPE_AGENT_FLEET_TSA_URL", default=None, show_envvar=True,
              help="The organisation's RFC 3161 TSA, for a long-term signature [default: none, B-B plus DSS].")
@database_option
@json_option
@handle_errors
def manifest_create(scheme: str, partner: str, assets: tuple[str, ...], all_eligible: bool, out_dir: Path,
                    signer_dir: Path, trust: Path, tsa_url: str | None, database: str, as_json: bool) -> None:
    """Sign a fleet manifest of eligible assets from every station, never listing an asset twice.

    e.g. wipe-agent fleet manifest create --scheme schools --partner 'Hillside Primary' --all-eligible --out hillside/
    """
    from agent.fleet.database import FleetDatabase
    from agent.fleet.errors import FleetConfigError, FleetInputError
    from agent.fleet.manifests import create
    from certs.errors import CertificateError
    from certs.pki import load_fleet_signer
    from certs.verify import load_trust_bundle

    if bool(assets) == all_eligible:
        raise FleetInputError("give --asset TAG (repeatable) or --all-eligible, not both and not neither")
    try:
        bundle = load_trust_bundle(trust)
        signer = load_fleet_signer(signer_dir)
    except CertificateError as error:
        raise FleetConfigError(error.message) from None
    with FleetDatabase(database) as db:
        created = create(db, scheme, partner, assets=list(assets) if assets else None, out_dir=out_dir,
                         signer=signer, bundle=bundle, tsa_url=tsa_url)
    if as_json:
        print_json(created)
        return
    click.echo(f"fleet manifest {created['manifest_id']} for {printable(created['scheme'])}, partner "
               f"{printable(created['partner'])}: {len(created['assets'])} asset(s) from "
               f"{len(created['stations'])} station(s), signed by fleet {printable(created['fleet'])} "
               f"in {created['seconds']} s")
    click.echo(f"  {printable(created['pdf'])}\n  {printable(created['json'])}\n  {printable(created['csv'])}\n"
               f"  {printable(created['certificates'])}/")
    for reason in created["skipped"]:
        click.echo(f"  left out: {printable(reason)}")
    for document_id in created["voided_unfinished"]:
        click.echo(f"  voided {printable(document_id)}, left unfinished by an earlier create", err=True)


@manifest.command("list")
@database_option
@json_option
@handle_errors
def manifest_list(database: str, as_json: bool) -> None:
    """Every fleet manifest, newest first: status, scheme, partner, assets.

    e.g. wipe-agent fleet manifest list
    """
    from agent.fleet.database import FleetDatabase
    from agent.fleet.manifests import list_manifests

    with FleetDatabase(database) as db:
        manifests = list_manifests(db)
    if as_json:
        print_json(manifests)
        return
    for item in manifests:
        click.echo(f"{printable(item['manifest_id'])}  {item['status']:8} {printable(item['scheme'])}  "
                   f"{printable(item['partner'])}  {item['assets']} asset(s)  {item['created_at']}"
                   + (f"  ({printable(item['reason'])})" if item["reason"] else "")
                   + (f"  handed over {item['handed_over_at'][:10]}" if item["handed_over_at"] else ""))


@manifest.command("show")
@click.argument("manifest_id")
@click.option("--pdf", "pdf_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the signed PDF the fleet keeps to this file.")
@database_option
@json_option
@handle_errors
def manifest_show(manifest_id: str, pdf_out: Path | None, database: str, as_json: bool) -> None:
    """One fleet manifest: status, partner, assets (and its signed PDF with --pdf).

    e.g. wipe-agent fleet manifest show FM-20261203-0a1b2c3d4e
    """
    from agent.fleet.database import FleetDatabase
    from agent.fleet.manifests import show, signed_pdf

    with FleetDatabase(database) as db:
        shown = show(db, manifest_id)
        if pdf_out is not None:
            pdf_out.write_bytes(signed_pdf(db, manifest_id))
    if as_json:
        print_json(shown)
        return
    for name in ("manifest_id", "status", "scheme", "partner", "fleet", "created_at", "reason", "manifest_sha256",
                 "out_dir"):
        click.echo(f"{name:16} {printable(shown[name] or '-')}")
    click.echo(f"{'assets':16} {printable(', '.join(shown['assets']))}")
    if shown["handed_over"]:
        handed = shown["handed_over"]
        click.echo(f"{'handed over':16} {handed['at']} to {printable(handed['received_by'])}"
                   + (f", reference {printable(handed['reference'])}" if handed["reference"] else ""))
    if pdf_out is not None:
        click.echo(f"wrote {printable(pdf_out)}")


@manifest.command("void")
@click.argument("manifest_id")
@click.option("--reason", required=True, help="Why it no longer stands (recorded).")
@database_option
@json_option
@handle_errors
def manifest_void(manifest_id: str, reason: str, database: str, as_json: bool) -> None:
    """Void an issued fleet manifest: its assets are eligible again; the manifest stays recorded, voided.

    e.g. wipe-agent fleet manifest void FM-20261203-0a1b2c3d4e --reason 'partner cancelled'
    """
    from agent.fleet.database import FleetDatabase
    from agent.fleet.manifests import void

    with FleetDatabase(database) as db:
        shown = void(db, manifest_id, reason)
    if as_json:
        print_json(shown)
        return
    click.echo(f"voided fleet manifest {printable(shown['manifest_id'])}: {len(shown['assets'])} asset(s) released")


@manifest.command("handover")
@click.argument("manifest_id")
@click.option("--received-by", "received_by", required=True, help="Who received the devices for the partner.")
@click.option("--reference", default="", help="The partner's reference (delivery note, order) [default: none].")
@database_option
@json_option
@handle_errors
def manifest_handover(manifest_id: str, received_by: str, reference: str, database: str, as_json: bool) -> None:
    """Record the partner's receipt of an issued fleet manifest: its assets are handed over (once; it can no
    longer be voided after).

    e.g. wipe-agent fleet manifest handover FM-20261203-0a1b2c3d4e --received-by 'J. Smith' --reference DN-42
    """
    from agent.fleet.database import FleetDatabase
    from agent.fleet.manifests import handover

    with FleetDatabase(database) as db:
        shown = handover(db, manifest_id, received_by, reference)
    if as_json:
        print_json(shown)
        return
    click.echo(f"fleet manifest {printable(shown['manifest_id'])} handed over to "
               f"{printable(shown['handed_over']['received_by'])}: {len(shown['assets'])} asset(s) handed over")


@fleet.group("token")
def token() -> None:
    """Read-only API tokens for the asset-management system: create (shown once), list, revoke."""


@token.command("create")
@click.argument("name")
@database_option
@json_option
@handle_errors
def token_create(name: str, database: str, as_json: bool) -> None:
    """Create API token NAME with the read scope; the secret is printed once and only its hash is kept.

    e.g. wipe-agent fleet token create asset-system
    """
    from agent.fleet.api import new_token
    from agent.fleet.database import FleetDatabase

    with FleetDatabase(database) as db, db.transaction() as tx:
        secret = new_token(tx, name)
    if as_json:
        print_json({"name": name, "token": secret, "scopes": ["read"]})
        return
    click.echo(secret)
    click.echo(f"token {printable(name)} (scope read): shown once; give it to the system as 'Authorization: Bearer'",
               err=True)


@token.command("revoke")
@click.argument("name")
@database_option
@handle_errors
def token_revoke(name: str, database: str) -> None:
    """Revoke API token NAME at once.

    e.g. wipe-agent fleet token revoke asset-system
    """
    from agent.fleet.api import revoke_token
    from agent.fleet.database import FleetDatabase

    with FleetDatabase(database) as db, db.transaction() as tx:
        revoke_token(tx, name)
    click.echo(f"revoked token {printable(name)}")


@token.command("list")
@database_option
@json_option
@handle_errors
def token_list(database: str, as_json: bool) -> None:
    """Every API token: name, scopes, created, revoked, last used (never the secret).

    e.g. wipe-agent fleet token list
    """
    from agent.fleet.api import list_tokens
    from agent.fleet.database import FleetDatabase

    with FleetDatabase(database) as db, db.transaction() as tx:
        tokens = list_tokens(tx)
    if as_json:
        print_json(tokens)
        return
    for item in tokens:
        state = f"revoked {item['revoked_at']}" if item["revoked_at"] else f"last used {item['last_used'] or 'never'}"
        click.echo(f"{printable(item['name'])}  {','.join(item['scopes'])}  created {item['created_at']}  {state}")


@fleet.command("serve")
@database_option
@click.option("--tls", "tls_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The fleet's TLS directory from 'pki issue-tls-server' (key 0600, certificate, CA, CRL).")
@click.option("--trust", "trust", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The organisation's trust bundle ('pki bundle'): documents stations forward are verified "
                   "against it.")
@click.option("--listen", default="0.0.0.0:8443", show_default=True, help="HOST:PORT to listen on.")
@handle_errors
def serve(database: str, tls_dir: Path, trust: Path, listen: str) -> None:
    """Serve stations' pushes over mutual TLS until SIGTERM/SIGINT (several instances may share one database).

    e.g. wipe-agent fleet serve --database 'dbname=wipe_fleet' --tls /etc/wipe-fleet/tls --trust bundle.pem
    """
    import logging
    import signal
    import sys
    import threading
    from types import FrameType

    from agent.fleet.errors import FleetConfigError
    from agent.fleet.service import make_server
    from agent.tsa.server import parse_listen
    from certs.errors import CertificateError
    from certs.verify import load_trust_bundle

    try:
        host, port = parse_listen(listen)
    except ValueError as error:
        raise FleetConfigError(str(error)) from None
    try:
        bundle = load_trust_bundle(trust)
    except CertificateError as error:
        raise FleetConfigError(f"{trust}: {error.message}") from None
    try:
        server = make_server(database, tls_dir, bundle, host, port)
    except OSError as error:
        raise FleetConfigError(f"cannot listen on {listen}: {error.strerror or error}") from None
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    click.echo(f"fleet: serving stations on https://{bound_host}:{bound_port}/", err=True)
    sys.stderr.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
    click.echo("fleet: stopped", err=True)


def _station_outbox(ctx: click.Context) -> tuple[Registry, Outbox]:
    """The station's registry and outbox (station id: the station's TLS client certificate's common name)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from agent.cli.context import state_dir
    from agent.fleet.errors import FleetConfigError
    from agent.fleet.outbox import Outbox
    from agent.store.registry import Registry
    from certs import pki

    directory = state_dir(ctx)
    certificate = directory / "pki" / pki.TLS_CLIENT_CERT
    try:
        names = x509.load_pem_x509_certificate(certificate.read_bytes()).subject.get_attributes_for_oid(
            NameOID.COMMON_NAME)
    except (OSError, ValueError) as error:
        raise FleetConfigError(f"{certificate}: {getattr(error, 'strerror', None) or error} (run 'wipe-agent pki "
                               "issue-tls-client' for this station)") from None
    if not names:
        raise FleetConfigError(f"{certificate}: no station id (common name)")
    registry = Registry(directory).open()
    return registry, Outbox(registry, str(names[0].value))


url_option = click.option("--url", envvar="WIPE_AGENT_FLEET_URL", required=True, show_envvar=True,
                          help="The fleet service, https://HOST[:PORT].")


@fleet.command("push")
@url_option
@click.option("--every", type=click.FloatRange(1, 86400), default=None, metavar="SECONDS",
              help="Keep forwarding every SECONDS until SIGTERM (the forwarder service), backing off while the "
                   "fleet is unreachable.")
@json_option
@click.pass_context
@handle_errors
def push(ctx: click.Context, url: str, every: float | None, as_json: bool) -> None:
    """Forward this station's records to the fleet now: everything not yet acknowledged, in order.

    Safe to repeat and to interrupt: the fleet takes each record once, and a push resumes where the last
    one stopped. With --every it is the station's forwarder (wipe-agent-forward.service), a process of its
    own because the drive daemon has no network.

    e.g. wipe-agent fleet push --url https://fleet.example:8443
    """
    from agent.fleet.client import FleetClient

    registry, outbox = _station_outbox(ctx)
    if every is not None:
        registry.close()
        _forward_forever(registry.state_dir, url, outbox.station_id, every)
        return
    try:
        client = FleetClient(url, registry.state_dir / "pki")
        result = outbox.push(client)
        status = outbox.status()
    finally:
        registry.close()
    if as_json:
        print_json({"push": result.to_json(), "status": status.to_json()})
        return
    click.echo(f"pushed {result.sent} records to {printable(url)}: {result.accepted} accepted, {result.resent} "
               f"already there, {result.refused} refused; backlog {status.backlog}")
    if result.refused:
        click.echo("refused records: 'wipe-agent fleet status --refusals' lists them with the fleet's reasons")


def _forward_forever(state_dir: Path, url: str, station_id: str, every: float) -> None:
    import logging
    import signal
    import sys
    import threading
    from types import FrameType

    from agent.fleet.client import FleetClient
    from agent.fleet.forwarder import run_forever

    FleetClient(url, state_dir / "pki")  # a bad URL or missing TLS files: one line now, not every round
    stop = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    click.echo(f"fleet: forwarding {printable(station_id)} to {printable(url)} every {every:g} s", err=True)
    run_forever(state_dir, url, station_id, every, stop)
    click.echo("fleet: forwarder stopped", err=True)


@fleet.command("status")
@click.option("--refusals", is_flag=True, help="List every record the fleet refused, with its reason.")
@json_option
@click.pass_context
@handle_errors
def status(ctx: click.Context, refusals: bool, as_json: bool) -> None:
    """This station's backlog to the fleet: records kept, acknowledged, waiting, refused.

    e.g. wipe-agent fleet status --json
    """
    registry, outbox = _station_outbox(ctx)
    try:
        outbox.fill()
        current = outbox.status()
        refused = outbox.refusals() if refusals else []
    finally:
        registry.close()
    if as_json:
        print_json({**current.to_json(), **({"refusals": refused} if refusals else {})})
        return
    click.echo(f"station {printable(current.station_id)}: {current.records} records, {current.acknowledged} "
               f"acknowledged by the fleet, backlog {current.backlog}, {current.refused} refused")
    if current.oldest_unacknowledged:
        click.echo(f"oldest waiting since {current.oldest_unacknowledged}")
    for item in refused:
        click.echo(f"  record {item['seq']} ({printable(item['kind'])} {printable(item['key'])}): "
                   f"{printable(item['code'])}: {printable(item['reason'])}")
