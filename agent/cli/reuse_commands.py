"""Reuse commands: ``eligibility``, ``attest``, ``validate``, ``destroy-record``, ``manifest create``,
``health``, ``host``, ``schemes`` and ``audit verify``.

Thin: parse, call :mod:`agent.reuse.service`, render (``--json`` everywhere). Exit codes follow
:mod:`agent.cli.output`: 0 done, 1 a check failed (audit chain broken), 2 bad input or refused —
and then nothing was changed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from agent.cli.completion import complete_device
from agent.cli.context import certificate_settings, resolve_device, state_dir
from agent.cli.output import OneOf, handle_errors, json_option, print_json, printable
from agent.jobs.certify import station_signer
from agent.jsontext import JsonInputError, parse_json
from agent.reuse import service
from agent.reuse.errors import ReuseInputError, ReuseRefused
from agent.reuse.health import not_applicable, parse_smartctl, run_smartctl
from agent.reuse.schemes import available_schemes, load_scheme, load_scheme_file
from agent.reuse.store import ReuseStore
from agent.store.registry import Registry
from agent.tomlfile import read_bounded_bytes
from agent.vocabulary import HOST_KINDS
from certs.destruction import METHODS as DESTRUCTION_METHODS
from certs.errors import CertificateError as CertsError
from certs.pki import StationSigner, load_person_signer


def _state_dir(ctx: click.Context) -> Path:
    return state_dir(ctx)


def _store(ctx: click.Context) -> ReuseStore:
    return ReuseStore(Registry(_state_dir(ctx)).open())


def _signer(ctx: click.Context) -> StationSigner:
    signer = station_signer(_state_dir(ctx))
    if signer is None:
        raise ReuseRefused("this station has no signing key: run 'wipe-agent pki issue-station' first")
    return signer


def _operator(explicit: str | None) -> str:
    return explicit or os.environ.get("SUDO_USER") or os.environ.get("USER") or "operator"


def _need(value: str | None, option: str) -> str:
    if value is None or not value.strip():
        raise ReuseInputError(f"{option} is required")
    return value.strip()


_trust_option = click.option("--trust", "trust", default=None,
                             help="Trust bundle for checking certificates [default: STATE_DIR/trust-bundle.pem if "
                                  "present, else the registry's journaled record hashes only; 'manifest create' "
                                  "for a non-demo scheme then refuses].")


# eligibility ------------------------------------------------------------------------------------
@click.command("eligibility")
@click.argument("asset")
@_trust_option
@json_option
@click.pass_context
@handle_errors
def eligibility(ctx: click.Context, asset: str, trust: str | None, as_json: bool) -> None:
    """For each scheme: is device ASSET eligible, or exactly why not; and its route. The decision is recorded."""
    store = _store(ctx)
    decision = service.decide(store, asset, bundle=service.station_trust(_state_dir(ctx), trust))
    if as_json:
        print_json(decision.to_json())
        return
    host = decision.inputs["host"]
    click.echo(f"{asset}: {host['kind']} {host['make']} {host['model']} S/N {host['serial'] or '-'}".rstrip())
    for drive in decision.inputs["drives"]:
        certificate = drive["certificate"]
        click.echo(f"  drive {drive['model']} S/N {drive['serial']} ({drive['media']}): job {drive['job_id']} "
                   f"{drive['state']} {drive['level'] or '-'}, certificate "
                   f"{certificate['id'] if certificate['ok'] else 'NOT OK'}, health {drive['health']['status']}")
    for result in decision.schemes:
        click.echo(f"  {result.scheme:<14} {'ELIGIBLE' if result.eligible else 'not eligible'}")
        for reason in result.reasons:
            click.echo(f"      - [{reason.code}] {reason.message}")
    check = decision.inputs["certificate_check"]
    click.echo("certificates checked: " + ("signatures and revocation against the trust bundle" if check == "signature"
                                           else "record hashes against the registry journal only (no trust bundle: "
                                                "signatures and revocation NOT checked)"))
    click.echo(f"route: {decision.route}")
    for line in decision.route_reasons[:5]:
        click.echo(f"  {line}")


# people -----------------------------------------------------------------------------------------
@click.command("attest")
@click.argument("asset")
@click.option("--item", help="What was checked, e.g. firmware-password-cleared, mdm-removed, asset-labels-removed.")
@click.option("--by", "by", help="The person attesting.")
@json_option
@click.pass_context
@handle_errors
def attest(ctx: click.Context, asset: str, item: str | None, by: str | None, as_json: bool) -> None:
    """Record that a person checked something software cannot (BIOS password, MDM removal, labels)."""
    entry = service.attest(_store(ctx), asset, _need(item, "--item"), _need(by, "--by"))
    if as_json:
        print_json(entry)
    else:
        click.echo(f"{asset}: {entry['item']} attested by {entry['by']} at {entry['at']}")


@click.command("validate", short_help="Sign a validation statement (NIST SP 800-88 Rev. 2) accepting or "
               "rejecting certificates.")
@click.argument("items", nargs=-1)
@click.option("--certificates", "certificates", multiple=True,
              help="A folder of certificates, or a certificate file, certificate id or job id (repeatable; "
                   "ITEMS after the options count too).")
@click.option("--decision", type=OneOf(["accept", "reject"]), required=True, help="The officer's decision.")
@click.option("--by", "by", help="The accountable person reviewing the evidence (the --cert's name when signing); "
                                 "never the operator of a listed job.")
@click.option("--role", help="Their role, e.g. information-security-officer.")
@click.option("--reason", default="", help="Why (required to reject).")
@click.option("--key", "key", default=None, help="The officer's key (from 'pki issue-person --role validator').")
@click.option("--cert", "cert", default=None, help="The officer's certificate.")
@click.option("--station-on-instruction", is_flag=True,
              help="The station signs on the officer's recorded instruction (no personal key at this site). "
                   "Refused for a --by who has signed here with a validator certificate, and for an acceptance "
                   "over a certificate an officer has decided.")
@click.option("--out", "out_dir", default=None, help="Folder for the statement PDF [default: STATE_DIR/validations].")
@_trust_option
@json_option
@click.pass_context
@handle_errors
def validate(ctx: click.Context, items: tuple[str, ...], certificates: tuple[str, ...], decision: str,
             by: str | None, role: str | None, reason: str, key: str | None, cert: str | None,
             station_on_instruction: bool, out_dir: str | None, trust: str | None, as_json: bool) -> None:
    """Sign a validation statement (NIST SP 800-88 Rev. 2) accepting or rejecting a set of certificates.

    Each certificate is verified first; the statement (PDF with the embedded JSON: each certificate id
    and record hash, decision, person, role, time) is signed by the officer's own certificate, or by the
    station on instruction, and says which.
    """
    if station_on_instruction == bool(key or cert):
        raise ReuseInputError("sign with the officer's --key KEY --cert CERT, or give --station-on-instruction "
                              "(exactly one)")
    station = _signer(ctx)
    officer = None
    if key or cert:
        try:
            officer = load_person_signer(Path(_need(key, "--key")), Path(_need(cert, "--cert")), station)
        except CertsError as error:
            raise ReuseInputError(f"officer's key: {error.message}") from error
    folder = Path(out_dir) if out_dir else _state_dir(ctx) / "validations"
    entry = service.validate(_store(ctx), [*certificates, *items], decision=decision, by=_need(by, "--by"),
                             role=_need(role, "--role"), reason=reason, station=station, officer=officer,
                             bundle=service.station_trust(_state_dir(ctx), trust), out_dir=folder,
                             tsa_url=certificate_settings(ctx).tsa_url)
    if as_json:
        print_json(entry)
        return
    verdict = "accepted" if entry["decision"] == "accept" else "rejected"
    click.echo(f"validation statement {entry['statement_id']}: {len(entry['jobs'])} certificate(s) {verdict} by "
               f"{printable(entry['by'])} ({printable(entry['role'])}), signed by {entry['signer_kind']} "
               f"({entry['level']})")
    for job in entry["jobs"]:
        click.echo(f"  job {job['job_id']}: certificate {job['certificate_id']}")
    click.echo(f"  {entry['pdf']}")
    for problem in entry["problems"]:
        click.echo(f"  note: {problem}")


@click.command("destroy-record")
@click.argument("asset")
@click.option("--method", type=OneOf(DESTRUCTION_METHODS), required=True, help="How the drives were destroyed.")
@click.option("--witness", help="The person who witnessed the destruction.")
@click.option("--reference", default=None, help="External reference, e.g. the contractor's certificate number.")
@click.option("--operator", default=None, help="Who records it [default: the invoking user].")
@json_option
@click.pass_context
@handle_errors
def destroy_record(ctx: click.Context, asset: str, method: str, witness: str | None, reference: str | None,
                   operator: str | None, as_json: bool) -> None:
    """Record the destruction of ASSET's drives, with a signed destruction report."""
    witness_name = _need(witness, "--witness")
    store = _store(ctx)
    record = service.destroy(store, asset, method=method, witness=witness_name, reference=reference,
                             operator=_operator(operator), signer=_signer(ctx),
                             tsa_url=certificate_settings(ctx).tsa_url)
    if as_json:
        print_json(record)
    else:
        click.echo(f"{asset}: destruction recorded ({record['document_id']}); signed report {record['report_path']}")


# manifests --------------------------------------------------------------------------------------
@click.group("manifest")
def manifest() -> None:
    """Signed batch manifests for reuse partners."""


@manifest.command("create")
@click.argument("more_assets", nargs=-1, metavar="[TAG]...")
@click.option("--scheme", help="The scheme the batch goes to.")
@click.option("--assets", "assets", multiple=True, help="Asset tags (repeat, comma-separate, or list after it).")
@click.option("--all-eligible", is_flag=True, help="Every asset eligible for the scheme and not yet shipped.")
@click.option("--out", "out_dir", help="A new or empty directory for the manifest and its certificates.")
@_trust_option
@json_option
@click.pass_context
@handle_errors
def manifest_create(ctx: click.Context, more_assets: tuple[str, ...], scheme: str | None, assets: tuple[str, ...],
                    all_eligible: bool, out_dir: str | None, trust: str | None, as_json: bool) -> None:
    """Sign a manifest (PDF + JSON + certificates) of eligible devices; ineligible assets are refused with reasons."""
    scheme_name = _need(scheme, "--scheme")
    target = Path(_need(out_dir, "--out"))
    if more_assets and not assets:
        raise ReuseInputError(f"unexpected argument {more_assets[0]!r} (asset tags follow --assets)")
    tags = [tag.strip() for value in (*assets, *more_assets) for tag in value.split(",") if tag.strip()]
    if assets and all_eligible:
        raise ReuseInputError("give --assets TAG... or --all-eligible, not both")
    if not assets and not all_eligible:
        raise ReuseInputError("give --assets TAG... or --all-eligible")
    store = _store(ctx)
    signer = _signer(ctx)
    created = service.create_manifest(store, scheme_name, assets=tags if assets else None, all_eligible=all_eligible,
                                      out_dir=target, signer=signer,
                                      bundle=service.station_trust(_state_dir(ctx), trust),
                                      tsa_url=certificate_settings(ctx).tsa_url)
    if as_json:
        print_json(created)
    else:
        click.echo(f"manifest {created['manifest_id']} for {created['scheme']}: {', '.join(created['assets'])}")
        click.echo(f"  {created['pdf']}\n  {created['json']}\n  {created['csv']}\n  {created['certificates']}/")


@manifest.command("handover")
@click.argument("manifest_id")
@click.option("--received-by", required=True, help="The partner's person who received the devices.")
@click.option("--partner", required=True, help="The partner organisation (as on its agreement).")
@click.option("--reference", default=None, help="The partner's receipt or collection reference.")
@click.option("--by", "operator", default=None, help="Who records it [default: the login].")
@json_option
@click.pass_context
@handle_errors
def manifest_handover(ctx: click.Context, manifest_id: str, received_by: str, partner: str, reference: str | None,
                      operator: str | None, as_json: bool) -> None:
    """Record that the partner received the devices of MANIFEST_ID (once; the manifest can no longer be voided).

    e.g. wipe-agent manifest handover M-20261203-0001 --received-by 'C. Patel' --partner 'City Schools Trust'
    """
    done = service.handover_manifest(_store(ctx), manifest_id, received_by=received_by, partner=partner,
                                     reference=reference, operator=_operator(operator))
    if as_json:
        print_json(done)
    else:
        click.echo(f"manifest {done['manifest_id']} handed over to {printable(done['received_by'])} "
                   f"({printable(done['partner'])}): {len(done['assets'])} device(s)")


# health -----------------------------------------------------------------------------------------
@click.command("health")
@click.argument("device", shell_complete=complete_device)
@click.option("--from-json", "from_json", default=None, help="Record a saved 'smartctl -j -a' output instead.")
@click.option("--serial", default=None, help="Drive serial to file the reading under [default: smartctl's].")
@click.option("--model", default=None, help="Drive model to file the reading under [default: the registry's drive "
                                            "with that serial, else smartctl's].")
@json_option
@click.pass_context
@handle_errors
def health(ctx: click.Context, device: str, from_json: str | None, serial: str | None, model: str | None,
           as_json: bool) -> None:
    """Read DEVICE's SMART health with smartctl (smartmontools) and record it; virtual media: not applicable.

    Refused (nothing recorded) when the reading names another serial or model than the drive it is filed for."""
    if from_json:
        # bounded: a saved smartctl output is a few KiB; /dev/zero here once ate the machine's memory
        raw = read_bounded_bytes(Path(from_json), ReuseInputError, "smartctl JSON file (--from-json)", 4 << 20)
        try:
            data: Any = parse_json(raw)
        except JsonInputError as exc:
            raise ReuseInputError(f"--from-json {from_json}: {exc.message}") from None
        reading = parse_smartctl(data, f"saved smartctl output {from_json} for {device}")
    elif os.path.basename(device := resolve_device(device)).startswith(("loop", "ram", "zram")):
        from agent.discovery import udev  # only here: reading a file needs no udev

        identity = udev.identify(device)
        reading = not_applicable(identity.model, identity.serial, identity.media)
    else:
        data, source = run_smartctl(device)
        reading = parse_smartctl(data, source)
    reading_id, drive_model, drive_serial = service.file_health(_store(ctx), reading, serial=serial, model=model)
    if as_json:
        print_json({"reading_id": reading_id, "drive_serial": drive_serial, "drive_model": drive_model,
                    **reading.to_json()})
    else:
        details = {key: value for key, value in reading.to_json().items()
                   if value is not None and key not in ("status", "protocol", "model", "serial", "source", "note")}
        click.echo(printable(f"{device} ({drive_model} S/N {drive_serial}): health {reading.status} "
                             f"{reading.protocol} {' '.join(f'{k}={v}' for k, v in details.items())} "
                             f"{reading.note}".rstrip()))


# hosts ------------------------------------------------------------------------------------------
@click.group("host")
def host() -> None:
    """Host devices (laptops, desktops, tablets) and the drives they held."""


@host.command("add")
@click.argument("asset")
@click.option("--kind", type=OneOf(HOST_KINDS), default="laptop", show_default=True, help="What the host is.")
@click.option("--make", default="", help="Manufacturer.")
@click.option("--model", default="", help="Model.")
@click.option("--serial", default="", help="The host's serial number.")
@click.option("--drive", "drives", multiple=True, help="Serial of a drive it held (repeat).")
@json_option
@click.pass_context
@handle_errors
def host_add(ctx: click.Context, asset: str, kind: str, make: str, model: str, serial: str, drives: tuple[str, ...],
             as_json: bool) -> None:
    """Register host device ASSET (intake does this for drives it links; use this for the rest)."""
    from agent.config import certificate_text_problem

    # what the host's drives' certificates will print is checked now, not after those drives are wiped (M15)
    for option, value in (("ASSET", asset), ("--make", make), ("--model", model), ("--serial", serial)):
        problem = certificate_text_problem(value) if value else None
        if problem:
            raise ReuseInputError(f"{option}: {problem} (it is printed on the certificate)")
    record = _store(ctx).register_host(asset, kind=kind, make=make, model=model, serial=serial, drive_serials=drives)
    if as_json:
        print_json(record.to_json())
    else:
        click.echo(f"registered {asset}: {kind} {make} {model} S/N {serial or '-'}; drives {', '.join(drives) or '-'}")


@host.command("list")
@json_option
@click.pass_context
@handle_errors
def host_list(ctx: click.Context, as_json: bool) -> None:
    """Every known host device with its latest route."""
    store = _store(ctx)
    rows = []
    for asset in store.assets():
        decision = store.latest_decision(asset)
        shipped = store.shipped_in(asset)
        route = "shipped" if shipped else "destroyed" if store.destruction(asset) else \
            decision["route"] if decision else None
        rows.append({"asset": asset, "route": route, "shipped_in": shipped})
    if as_json:
        print_json({"hosts": rows})
    else:
        for row in rows:
            click.echo(f"{row['asset']:<20} {row['route'] or 'not decided'}"
                       f"{'  (manifest ' + row['shipped_in'] + ')' if row['shipped_in'] else ''}")


# schemes ----------------------------------------------------------------------------------------
@click.group("schemes")
def schemes() -> None:
    """Reuse schemes (TOML data; /etc/wipe-agent/schemes overrides the shipped ones)."""


@schemes.command("list")
@json_option
@handle_errors
def schemes_list(as_json: bool) -> None:
    """List the schemes and where each comes from."""
    found = [load_scheme(name) for name in available_schemes()]
    if as_json:
        print_json({"schemes": [scheme.to_json() for scheme in found]})
    else:
        for scheme in sorted(found, key=lambda item: (item.rank, item.name)):
            click.echo(f"{scheme.name:<14} rank {scheme.rank:<4} {scheme.summary}")


@schemes.command("show")
@click.argument("name")
@json_option
@handle_errors
def schemes_show(name: str, as_json: bool) -> None:
    """Show one scheme's rules."""
    scheme = load_scheme(name)
    if as_json:
        print_json(scheme.to_json())
        return
    click.echo(f"{scheme.name}: {scheme.summary}\n  destination: {scheme.destination}\n  source: {scheme.source}")
    click.echo("  levels: " + ", ".join(f"{media}={rule}" for media, rule in scheme.levels))
    click.echo(f"  verification: {', '.join(scheme.verification_modes)}; with Clear: "
               f"{', '.join(scheme.clear_verification_modes) or 'Clear not accepted'}")
    click.echo("  health: " + ", ".join(f"{k}={v}" for k, v in scheme.health.to_json().items()))
    click.echo(f"  attestations: {', '.join(scheme.attestations) or '-'}")
    click.echo(f"  validation: {'required' if scheme.validation_required else 'not required'}"
               f"{' by ' + ', '.join(scheme.validator_roles) if scheme.validator_roles else ''}")


@schemes.command("check")
@click.argument("file")
@json_option
@handle_errors
def schemes_check(file: str, as_json: bool) -> None:
    """Validate a scheme FILE; say exactly what is wrong and where."""
    scheme = load_scheme_file(Path(file))
    if as_json:
        print_json({"valid": True, "scheme": scheme.to_json()})
    else:
        click.echo(f"{file}: valid scheme {scheme.name}")


# audit ------------------------------------------------------------------------------------------
@click.group("audit")
def audit() -> None:
    """The hash-chained audit log of decisions, attestations, validations, destructions and manifests."""


# ``audit verify`` and ``audit export``: agent.cli.audit_commands (attached to this group when imported)


REUSE_COMMANDS: tuple[click.Command, ...] = (eligibility, attest, validate, destroy_record, manifest, health, host,
                                             schemes, audit)
"""Every reuse command, for ``cli.add_command`` in :mod:`agent.cli.main`."""

# attaches ``audit export`` / ``audit verify`` to the group above (imported last: that module imports ``audit``)
from agent.cli import audit_commands  # noqa: E402, F401
