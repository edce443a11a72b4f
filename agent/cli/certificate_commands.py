"""Command-line front end of the certs package: ``pki`` (CA and station certificates) and ``verify``.

Thin on purpose: parse options, call :mod:`certs`, print. Every failure is one line on stderr (or
``{"error": {"code": ..., "message": ...}}`` on stdout with ``--json``) and a non-zero exit:
``verify`` exits 0 when every file is valid, 1 when any is invalid, 2 on bad input (missing file
or unusable trust bundle); ``pki`` commands exit 1 when the operation fails and 2 on bad input.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from agent.cli.output import OneOf
from agent.cli.verify_command import EXIT_BAD_INPUT, EXIT_INVALID, _fail, _json_option, verify
from agent.errors import AgentError
from agent.store.registry import REGISTRY_FILE, Registry
from certs import pki as pki_library
from certs.errors import CertificateError

__all__ = ["EXIT_BAD_INPUT", "EXIT_INVALID", "pki", "verify"]  # verify: its home is verify_command (light)

DEFAULT_STATE_DIR = "/var/lib/wipe-agent"
STATE_DIR_ENVIRONMENT = "WIPE_AGENT_STATE_DIR"


def _os_message(error: OSError) -> str:
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or error}"


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(data, indent=2) if as_json else text)


def _required(value: str | None, option: str, as_json: bool) -> str:
    # Checked by hand rather than with required=True so the message stays one line and obeys --json.
    if value is None or not value.strip():
        _fail("bad_input", f"{option} is required", as_json, EXIT_BAD_INPUT)
    return value


_Command = TypeVar("_Command", bound=Callable[..., Any])


def _days_option(name: str, default: int, what: str) -> Callable[[_Command], _Command]:
    return click.option(name, type=int, default=default, show_default=True, help=f"{what}, in days.")


def _check_days(as_json: bool, **options: int) -> None:
    """Lifetimes are 1 to 36525 days; anything else is bad input (exit 2), before the CA is touched."""
    for name, days in options.items():
        if not 1 <= days <= 36525:
            _fail("bad_input", f"--{name.replace('_', '-')} must be 1 to 36525 days, got {days}", as_json,
                  EXIT_BAD_INPUT)


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _state_dir(value: str | None) -> Path:
    return Path(value or os.environ.get(STATE_DIR_ENVIRONMENT) or DEFAULT_STATE_DIR)


def _record_key_change(kind: str, subject: str, data: dict[str, Any], state_dir: str | None = None, *,
                       create: bool = False) -> None:
    """Chain a key change in the station registry of ``state_dir`` (default: $WIPE_AGENT_STATE_DIR or
    /var/lib/wipe-agent), when a registry lives there (a CA machine without a station gets none created);
    ``create``: the state directory is a station's by definition (``issue-station`` installed a key in it), so
    its registry is created and the key's issue is its chain's first entry.

    The files changed first (the CA's own lock and atomic writes): a failure to record is said on
    stderr, in one line, and does not undo the key change."""
    state = _state_dir(state_dir)
    if not create and not (state / REGISTRY_FILE).is_file():
        return
    try:
        registry = Registry(state).open()
        try:
            with registry.transaction() as tx:
                registry.record(tx, kind, subject, data)
        finally:
            registry.close()
    except (AgentError, sqlite3.Error) as error:
        click.echo(f"warning: the key change was not recorded in the audit chain of {state}: {error}", err=True)


@click.group("pki")
def pki() -> None:
    """Organisation CA, station signing certificates, revocation and the partners' trust bundle."""


@pki.command("init-ca")
@click.option("--org", help="Organisation name, as it should appear on certificates.")
@click.option("--out", "out_dir", help="Directory to create the CA in (must not hold a CA already).")
@_days_option("--valid-days", pki_library.DEFAULT_CA_DAYS, "CA certificate lifetime")
@_days_option("--crl-days", pki_library.DEFAULT_CRL_DAYS, "CRL next-update interval")
@_json_option
def init_ca(org: str | None, out_dir: str | None, valid_days: int, crl_days: int, as_json: bool) -> None:
    """Create the organisation CA: key (0600), self-signed certificate and an empty CRL."""
    org = _required(org, "--org", as_json)
    directory = Path(_required(out_dir, "--out", as_json))
    _check_days(as_json, valid_days=valid_days, crl_days=crl_days)
    try:
        certificate = pki_library.init_ca(org, directory, valid_days=valid_days, crl_days=crl_days)
    except CertificateError as error:
        _fail(error.code, error.message, as_json, EXIT_INVALID)
    except OSError as error:  # a path that is a file, a device, or not writable: bad input, one line
        _fail("bad_input", _os_message(error), as_json, EXIT_BAD_INPUT)
    _record_key_change("key-ca-created", org, {"organisation": org, "ca_dir": str(directory.resolve()),
                                               "certificate_sha256": _sha256(certificate)})
    _emit(as_json, {"organisation": org, "ca_dir": str(directory), "ca_certificate": str(certificate)},
          f"created CA for {org} in {directory}; keep {directory / pki_library.CA_KEY} offline and private")


@pki.command("issue-station")
@click.option("--ca", "ca_dir", help="CA directory (from init-ca).")
@click.option("--station-id", help="Station identifier (letters, digits, . _ : -).")
@click.option(
    "--state-dir", help=f"Station state directory [default: ${STATE_DIR_ENVIRONMENT} or {DEFAULT_STATE_DIR}]."
)
@_days_option("--valid-days", pki_library.DEFAULT_STATION_DAYS, "Station certificate lifetime")
@_json_option
def issue_station(
    ca_dir: str | None, station_id: str | None, state_dir: str | None, valid_days: int, as_json: bool
) -> None:
    """Issue a station signing key and certificate; install them (and the current CRL) in STATE_DIR/pki."""
    directory = Path(_required(ca_dir, "--ca", as_json))
    station = _required(station_id, "--station-id", as_json)
    state = _state_dir(state_dir)
    _check_days(as_json, valid_days=valid_days)
    try:
        issued = pki_library.issue_station_details(directory, station, state, valid_days=valid_days)
    except CertificateError as error:
        _fail(error.code, error.message, as_json, EXIT_INVALID)
    except OSError as error:  # a path that is a file, a device, or not writable: bad input, one line
        _fail("bad_input", _os_message(error), as_json, EXIT_BAD_INPUT)
    serial = pki_library.format_serial(issued.serial)
    _record_key_change("key-station-issued", issued.station_id, {
        "serial": serial, "station_id": issued.station_id, "not_before": issued.not_before.isoformat(),
        "not_after": issued.not_after.isoformat(), "certificate_sha256": _sha256(issued.certificate_path)},
        state_dir, create=True)
    _emit(
        as_json,
        {
            "serial": serial,
            "station_id": issued.station_id,
            "not_before": issued.not_before.isoformat(),
            "not_after": issued.not_after.isoformat(),
            "certificate": str(issued.certificate_path),
        },
        f"issued station certificate {serial} for {station}, valid until {issued.not_after:%Y-%m-%d}; "
        f"installed in {issued.certificate_path.parent}",
    )


@pki.command("revoke")
@click.option("--ca", "ca_dir", help="CA directory (from init-ca).")
@click.option("--serial", help="Serial (hex) of the certificate to revoke.")
@click.option("--station-id", help="Revoke every unrevoked certificate of this station.")
@click.option("--reason", type=OneOf(pki_library.REVOCATION_REASONS),
              help="Why (written as the CRLReason). A lost or stolen station key is key-compromise.")
@click.option("--compromised-since", help="With --reason key-compromise (required then): the time (ISO 8601 with "
                                          "zone) since when the key may have been in other hands; documents "
                                          "proven signed after it fail, even timestamped ones.")
@_days_option("--crl-days", pki_library.DEFAULT_CRL_DAYS, "CRL next-update interval")
@_json_option
def revoke(ca_dir: str | None, serial: str | None, station_id: str | None, reason: str | None,
           compromised_since: str | None, crl_days: int, as_json: bool) -> None:
    """Revoke a station certificate and reissue the CRL (then hand partners a new bundle)."""
    directory = Path(_required(ca_dir, "--ca", as_json))
    if (serial is None) == (station_id is None):
        _fail("bad_input", "give exactly one of --serial or --station-id", as_json, EXIT_BAD_INPUT)
    since = None
    if compromised_since is not None:
        try:
            since = datetime.fromisoformat(compromised_since.replace("Z", "+00:00"))
        except ValueError:
            _fail("bad_input", f"--compromised-since {compromised_since!r} is not an ISO 8601 time", as_json,
                  EXIT_BAD_INPUT)
        if since.tzinfo is None:
            _fail("bad_input", "--compromised-since needs a time zone (e.g. 2026-12-01T00:00:00Z)", as_json,
                  EXIT_BAD_INPUT)
    if (reason == "key-compromise") != (since is not None):
        _fail("bad_input", "--reason key-compromise and --compromised-since go together", as_json, EXIT_BAD_INPUT)
    _check_days(as_json, crl_days=crl_days)
    try:
        revoked = pki_library.revoke(directory, serial=serial, station_id=station_id, crl_days=crl_days,
                                     reason=reason, compromised_since=since)
    except CertificateError as error:
        _fail(error.code, error.message, as_json, EXIT_INVALID)
    except OSError as error:  # a path that is a file, a device, or not writable: bad input, one line
        _fail("bad_input", _os_message(error), as_json, EXIT_BAD_INPUT)
    serials = [pki_library.format_serial(item) for item in revoked]
    _record_key_change("key-revoked", station_id or serial or "", {
        "serials": serials, "station_id": station_id, "reason": reason,
        "compromised_since": since.isoformat() if since else None})
    _emit(as_json, {"revoked": serials, "crl": str(directory / pki_library.CA_CRL)},
          f"revoked {', '.join(serials)}; run 'pki bundle' and send partners the new bundle")


@pki.command("bundle")
@click.option("--ca", "ca_dir", help="CA directory (from init-ca).")
@click.option("--out", "out_file", help="Bundle file to write (CA certificate + current CRL + TSA certificates).")
@_days_option("--crl-days", pki_library.DEFAULT_CRL_DAYS, "CRL next-update interval")
@_json_option
def bundle(ca_dir: str | None, out_file: str | None, crl_days: int, as_json: bool) -> None:
    """Write the trust bundle partners verify against: the CA certificate, a fresh CRL and the TSA
    certificate(s). Stations take their CRL from it too ('pki install-crl')."""
    directory = Path(_required(ca_dir, "--ca", as_json))
    target = Path(_required(out_file, "--out", as_json))
    _check_days(as_json, crl_days=crl_days)
    try:
        pki_library.make_bundle(directory, target, crl_days=crl_days)
    except CertificateError as error:
        _fail(error.code, error.message, as_json, EXIT_INVALID)
    except OSError as error:  # a path that is a file, a device, or not writable: bad input, one line
        _fail("bad_input", _os_message(error), as_json, EXIT_BAD_INPUT)
    _emit(as_json, {"bundle": str(target)}, f"wrote trust bundle {target}")


@pki.command("issue-tsa")
@click.option("--ca", "ca_dir", help="CA directory (from init-ca).")
@click.option("--out", "out_dir", help="Directory for the TSA key (0600), certificate and chain.")
@click.option("--name", help="TSA common name [default: '<organisation> timestamping authority'].")
@_days_option("--valid-days", pki_library.DEFAULT_TSA_DAYS, "TSA certificate lifetime (capped by the CA's)")
@_json_option
def issue_tsa(ca_dir: str | None, out_dir: str | None, name: str | None, valid_days: int, as_json: bool) -> None:
    """Issue the organisation's RFC 3161 timestamping certificate (EKU timeStamping, critical)."""
    directory = Path(_required(ca_dir, "--ca", as_json))
    target = Path(_required(out_dir, "--out", as_json))
    _check_days(as_json, valid_days=valid_days)
    try:
        issued = pki_library.issue_tsa(directory, target, name=name, valid_days=valid_days)
    except CertificateError as error:
        _fail(error.code, error.message, as_json, EXIT_INVALID)
    serial = pki_library.format_serial(issued.serial)
    _record_key_change("key-tsa-issued", issued.name, {
        "serial": serial, "name": issued.name, "not_after": issued.not_after.isoformat(),
        "certificate_sha256": _sha256(issued.certificate_path)})
    _emit(
        as_json,
        {"serial": serial, "name": issued.name, "not_before": issued.not_before.isoformat(),
         "not_after": issued.not_after.isoformat(), "certificate": str(issued.certificate_path),
         "key": str(issued.key_path)},
        f"issued TSA certificate {serial} ({issued.name}), valid until {issued.not_after:%Y-%m-%d}; "
        f"run 'wipe-agent tsa serve --tsa {target}' and 'pki bundle' so partners receive it",
    )


@pki.command("issue-tls-client")
@click.option("--ca", "ca_dir", help="CA directory (from init-ca).")
@click.option("--station-id", help="Station identifier (the one of its signing certificate).")
@click.option(
    "--state-dir", help=f"Station state directory [default: ${STATE_DIR_ENVIRONMENT} or {DEFAULT_STATE_DIR}]."
)
@_days_option("--valid-days", pki_library.DEFAULT_TLS_DAYS, "TLS client certificate lifetime")
@_json_option
def issue_tls_client(ca_dir: str | None, station_id: str | None, state_dir: str | None, valid_days: int,
                     as_json: bool) -> None:
    """Issue a station's TLS client key and certificate for the fleet (EKU clientAuth only) into STATE_DIR/pki."""
    directory = Path(_required(ca_dir, "--ca", as_json))
    station = _required(station_id, "--station-id", as_json)
    state = _state_dir(state_dir)
    _check_days(as_json, valid_days=valid_days)
    try:
        issued = pki_library.issue_tls_client(directory, station, state, valid_days=valid_days)
    except CertificateError as error:
        _fail(error.code, error.message, as_json, EXIT_INVALID)
    except OSError as error:
        _fail("bad_input", _os_message(error), as_json, EXIT_BAD_INPUT)
    serial = pki_library.format_serial(issued.serial)
    _record_key_change("key-tls-client-issued", issued.name, {
        "serial": serial, "station_id": issued.name, "not_after": issued.not_after.isoformat(),
        "certificate_sha256": _sha256(issued.certificate_path)}, state_dir)
    _emit(as_json, {"serial": serial, "station_id": issued.name, "not_before": issued.not_before.isoformat(),
                    "not_after": issued.not_after.isoformat(), "certificate": str(issued.certificate_path),
                    "key": str(issued.key_path)},
          f"issued TLS client certificate {serial} for {station}, valid until {issued.not_after:%Y-%m-%d}; "
          f"installed in {issued.certificate_path.parent}")


@pki.command("issue-tls-server")
@click.option("--ca", "ca_dir", help="CA directory (from init-ca).")
@click.option("--out", "out_dir", help="Directory for the fleet's TLS key (0600), certificate, CA and CRL.")
@click.option("--name", "names", multiple=True,
              help="A DNS name or IP address stations connect to (repeat for several; the first is the CN).")
@_days_option("--valid-days", pki_library.DEFAULT_TLS_DAYS, "TLS server certificate lifetime")
@_json_option
def issue_tls_server(ca_dir: str | None, out_dir: str | None, names: tuple[str, ...], valid_days: int,
                     as_json: bool) -> None:
    """Issue the fleet service's TLS server key and certificate (EKU serverAuth only) for its --name(s)."""
    directory = Path(_required(ca_dir, "--ca", as_json))
    target = Path(_required(out_dir, "--out", as_json))
    _check_days(as_json, valid_days=valid_days)
    try:
        issued = pki_library.issue_tls_server(directory, target, list(names), valid_days=valid_days)
    except CertificateError as error:
        _fail(error.code, error.message, as_json, EXIT_INVALID)
    except OSError as error:
        _fail("bad_input", _os_message(error), as_json, EXIT_BAD_INPUT)
    serial = pki_library.format_serial(issued.serial)
    _emit(as_json, {"serial": serial, "names": list(names), "not_before": issued.not_before.isoformat(),
                    "not_after": issued.not_after.isoformat(), "certificate": str(issued.certificate_path),
                    "key": str(issued.key_path)},
          f"issued fleet TLS certificate {serial} for {', '.join(names)}, valid until "
          f"{issued.not_after:%Y-%m-%d}; run 'wipe-agent fleet serve --tls {target}'")


@pki.command("issue-person")
@click.argument("name", required=False)
@click.option("--role", type=OneOf(sorted(pki_library.PERSON_ROLES)), help="What the person may sign.")
@click.option("--ca", "ca_dir", help="CA directory (from init-ca).")
@click.option("--out", "out_dir", help="Directory for the person's key and certificate (both 0600) and chain.")
@_days_option("--valid-days", pki_library.DEFAULT_PERSON_DAYS, "person certificate lifetime (capped by the CA's)")
@_json_option
def issue_person(name: str | None, role: str | None, ca_dir: str | None, out_dir: str | None, valid_days: int,
                 as_json: bool) -> None:
    """Issue a person's signing certificate (validator: signs validation statements, never certificates)."""
    person = _required(name, "NAME", as_json)
    chosen = _required(role, "--role", as_json)
    directory = Path(_required(ca_dir, "--ca", as_json))
    target = Path(_required(out_dir, "--out", as_json))
    _check_days(as_json, valid_days=valid_days)
    try:
        issued = pki_library.issue_person(directory, person, chosen, target, valid_days=valid_days)
    except CertificateError as error:
        _fail(error.code, error.message, as_json, EXIT_INVALID)
    except OSError as error:
        _fail("bad_input", _os_message(error), as_json, EXIT_BAD_INPUT)
    serial = pki_library.format_serial(issued.serial)
    _record_key_change("key-person-issued", issued.name, {
        "serial": serial, "name": issued.name, "role": issued.role, "not_after": issued.not_after.isoformat(),
        "certificate_sha256": _sha256(issued.certificate_path)})
    _emit(
        as_json,
        {"serial": serial, "name": issued.name, "role": issued.role, "not_before": issued.not_before.isoformat(),
         "not_after": issued.not_after.isoformat(), "certificate": str(issued.certificate_path),
         "key": str(issued.key_path)},
        f"issued {issued.role} certificate {serial} ({issued.name}), valid until {issued.not_after:%Y-%m-%d}: "
        f"sign with 'wipe-agent validate --key {issued.key_path} --cert {issued.certificate_path} ...'",
    )


@pki.command("issue-fleet")
@click.option("--name", help="The fleet's name (letters, digits, . _ : -): partners read 'signed by fleet NAME'.")
@click.option("--ca", "ca_dir", help="CA directory (from init-ca).")
@click.option("--out", "out_dir", help="Directory for the fleet's signing key (0600), certificate, chain and CRL.")
@_days_option("--valid-days", pki_library.DEFAULT_FLEET_DAYS, "fleet signing certificate lifetime (capped by the CA's)")
@_json_option
def issue_fleet(name: str | None, ca_dir: str | None, out_dir: str | None, valid_days: int, as_json: bool) -> None:
    """Issue the fleet's signing certificate: it signs fleet manifests, never certificates or station documents."""
    fleet_name = _required(name, "--name", as_json)
    directory = Path(_required(ca_dir, "--ca", as_json))
    target = Path(_required(out_dir, "--out", as_json))
    _check_days(as_json, valid_days=valid_days)
    try:
        issued = pki_library.issue_fleet(directory, fleet_name, target, valid_days=valid_days)
    except CertificateError as error:
        _fail(error.code, error.message, as_json, EXIT_INVALID)
    except OSError as error:
        _fail("bad_input", _os_message(error), as_json, EXIT_BAD_INPUT)
    serial = pki_library.format_serial(issued.serial)
    _emit(as_json, {"serial": serial, "name": issued.name, "not_before": issued.not_before.isoformat(),
                    "not_after": issued.not_after.isoformat(), "certificate": str(issued.certificate_path),
                    "key": str(issued.key_path)},
          f"issued fleet signing certificate {serial} ({issued.name}), valid until {issued.not_after:%Y-%m-%d}; "
          f"run 'wipe-agent fleet manifest create --signer {target} ...'")


@pki.command("install-crl")
@click.option("--from", "source", help="A trust bundle or crl.pem from the CA.")
@click.option(
    "--state-dir", help=f"Station state directory [default: ${STATE_DIR_ENVIRONMENT} or {DEFAULT_STATE_DIR}]."
)
@_json_option
def install_crl(source: str | None, state_dir: str | None, as_json: bool) -> None:
    """Install a current CRL beside the station key: it is embedded in every document the station signs."""
    path = Path(_required(source, "--from", as_json))
    if not path.is_file():
        _fail("bad_input", f"no such file: {path}", as_json, EXIT_BAD_INPUT)
    try:
        crl = pki_library.install_station_crl(_state_dir(state_dir), path.read_bytes())
    except CertificateError as error:
        _fail(error.code, error.message, as_json, EXIT_INVALID)
    next_update = crl.next_update_utc
    _record_key_change("crl-installed", str(path), {
        "source": str(path.resolve()), "sha256": _sha256(path), "last_update": crl.last_update_utc.isoformat(),
        "next_update": next_update.isoformat() if next_update else None,
        "revoked": [pki_library.format_serial(entry.serial_number) for entry in crl]}, state_dir)
    _emit(as_json, {"next_update": next_update.isoformat() if next_update else None},
          f"installed CRL, next update {next_update:%Y-%m-%d}" if next_update else "installed CRL")
