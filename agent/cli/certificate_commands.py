"""Command-line front end of the certs package: ``pki`` (CA and station certificates) and ``verify``.

Thin on purpose: parse options, call :mod:`certs`, print. Every failure is one line on stderr (or
``{"error": {"code": ..., "message": ...}}`` on stdout with ``--json``) and a non-zero exit:
``verify`` exits 0 when every file is valid, 1 when any is invalid, 2 on bad input (missing file
or unusable trust bundle); ``pki`` commands exit 1 when the operation fails and 2 on bad input.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click

from certs import pki as pki_library
from certs.errors import CertificateError, TrustBundleError
from certs.manifest import CertificateCheck, check_certificates, check_json_copy
from certs.verify import expand_paths, load_trust_bundle, verify_with_bundle

DEFAULT_STATE_DIR = "/var/lib/wipe-agent"
STATE_DIR_ENVIRONMENT = "WIPE_AGENT_STATE_DIR"

EXIT_INVALID = 1
EXIT_BAD_INPUT = 2


def _fail(code: str, message: str, as_json: bool, exit_code: int) -> NoReturn:
    if as_json:
        click.echo(json.dumps({"error": {"code": code, "message": message}}))
    else:
        click.echo(f"error: {message}", err=True)
    raise SystemExit(exit_code)


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


@contextmanager
def _quiet_pdf_libraries() -> Iterator[None]:
    """Silence pyHanko's own log lines while verifying: a damaged file makes it log repair notes
    on stderr, but our verdict already gives the reason, in one line."""
    loggers = [logging.getLogger(name) for name in ("pyhanko", "pyhanko_certvalidator")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.group("pki")
def pki() -> None:
    """Organisation CA, station signing certificates, revocation and the partners' trust bundle."""


@pki.command("init-ca")
@click.option("--org", help="Organisation name, as it should appear on certificates.")
@click.option("--out", "out_dir", help="Directory to create the CA in (must not hold a CA already).")
@_json_option
def init_ca(org: str | None, out_dir: str | None, as_json: bool) -> None:
    """Create the organisation CA: key (0600), self-signed certificate and an empty CRL."""
    org = _required(org, "--org", as_json)
    directory = Path(_required(out_dir, "--out", as_json))
    try:
        certificate = pki_library.init_ca(org, directory)
    except CertificateError as error:
        _fail(error.code, error.message, as_json, EXIT_INVALID)
    except OSError as error:  # a path that is a file, a device, or not writable: bad input, one line
        _fail("bad_input", _os_message(error), as_json, EXIT_BAD_INPUT)
    _emit(as_json, {"organisation": org, "ca_dir": str(directory), "ca_certificate": str(certificate)},
          f"created CA for {org} in {directory}; keep {directory / pki_library.CA_KEY} offline and private")


@pki.command("issue-station")
@click.option("--ca", "ca_dir", help="CA directory (from init-ca).")
@click.option("--station-id", help="Station identifier (letters, digits, . _ : -).")
@click.option(
    "--state-dir", help=f"Station state directory [default: ${STATE_DIR_ENVIRONMENT} or {DEFAULT_STATE_DIR}]."
)
@_json_option
def issue_station(ca_dir: str | None, station_id: str | None, state_dir: str | None, as_json: bool) -> None:
    """Issue a station signing key and certificate; install them in STATE_DIR/pki."""
    directory = Path(_required(ca_dir, "--ca", as_json))
    station = _required(station_id, "--station-id", as_json)
    state = Path(state_dir or os.environ.get(STATE_DIR_ENVIRONMENT) or DEFAULT_STATE_DIR)
    try:
        issued = pki_library.issue_station_details(directory, station, state)
    except CertificateError as error:
        _fail(error.code, error.message, as_json, EXIT_INVALID)
    except OSError as error:  # a path that is a file, a device, or not writable: bad input, one line
        _fail("bad_input", _os_message(error), as_json, EXIT_BAD_INPUT)
    serial = pki_library.format_serial(issued.serial)
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
@_json_option
def revoke(ca_dir: str | None, serial: str | None, station_id: str | None, as_json: bool) -> None:
    """Revoke a station certificate and reissue the CRL (then hand partners a new bundle)."""
    directory = Path(_required(ca_dir, "--ca", as_json))
    if (serial is None) == (station_id is None):
        _fail("bad_input", "give exactly one of --serial or --station-id", as_json, EXIT_BAD_INPUT)
    try:
        revoked = pki_library.revoke(directory, serial=serial, station_id=station_id)
    except CertificateError as error:
        _fail(error.code, error.message, as_json, EXIT_INVALID)
    except OSError as error:  # a path that is a file, a device, or not writable: bad input, one line
        _fail("bad_input", _os_message(error), as_json, EXIT_BAD_INPUT)
    serials = [pki_library.format_serial(item) for item in revoked]
    _emit(as_json, {"revoked": serials, "crl": str(directory / pki_library.CA_CRL)},
          f"revoked {', '.join(serials)}; run 'pki bundle' and send partners the new bundle")


@pki.command("bundle")
@click.option("--ca", "ca_dir", help="CA directory (from init-ca).")
@click.option("--out", "out_file", help="Bundle file to write (CA certificate + current CRL).")
@_json_option
def bundle(ca_dir: str | None, out_file: str | None, as_json: bool) -> None:
    """Write the trust bundle partners verify against: the CA certificate and a fresh CRL."""
    directory = Path(_required(ca_dir, "--ca", as_json))
    target = Path(_required(out_file, "--out", as_json))
    try:
        pki_library.make_bundle(directory, target)
    except CertificateError as error:
        _fail(error.code, error.message, as_json, EXIT_INVALID)
    except OSError as error:  # a path that is a file, a device, or not writable: bad input, one line
        _fail("bad_input", _os_message(error), as_json, EXIT_BAD_INPUT)
    _emit(as_json, {"bundle": str(target)}, f"wrote trust bundle {target}")


@click.command("verify")
@click.argument("files", nargs=-1)
@click.option("--trust", "trust", help="Trust bundle (CA certificate + CRL) from the issuing organisation.")
@click.option("--certificates", "certificates_dir",
              help="For a batch manifest: the folder of certificates it lists (each must be present, valid and "
                   "match its hash).")
@_json_option
def verify(files: tuple[str, ...], trust: str | None, certificates_dir: str | None, as_json: bool) -> None:
    """Verify certificates of sanitisation, batch manifests and destruction reports against a trust bundle.

    FILE may be a folder of PDFs. For a manifest, --certificates DIR also checks every certificate it lists.
    """
    if not files:
        _fail("bad_input", "give at least one certificate FILE or folder", as_json, EXIT_BAD_INPUT)
    bundle_path = Path(_required(trust, "--trust", as_json))
    missing = [name for name in files if not Path(name).exists()]
    if missing:
        _fail("bad_input", f"no such file or folder: {missing[0]}", as_json, EXIT_BAD_INPUT)
    if certificates_dir is not None and not Path(certificates_dir).is_dir():
        _fail("bad_input", f"--certificates: no such folder: {certificates_dir}", as_json, EXIT_BAD_INPUT)
    try:
        trust_bundle = load_trust_bundle(bundle_path)
    except TrustBundleError as error:
        _fail(error.code, error.message, as_json, EXIT_BAD_INPUT)
    paths = expand_paths(Path(name) for name in files)
    if not paths:
        _fail("bad_input", "no PDF files found in the given folder(s)", as_json, EXIT_BAD_INPUT)
    with _quiet_pdf_libraries():
        reports = [verify_with_bundle(path, trust_bundle) for path in paths]
        manifests = [report for report in reports if report.valid and report.kind == "manifest"]
        if certificates_dir is not None and not manifests:
            _fail("bad_input", "--certificates applies to a valid batch manifest; none was given", as_json,
                  EXIT_BAD_INPUT)
        listed: dict[Path, list[CertificateCheck]] = {}
        for report in manifests:
            checks = []
            copy_problem = check_json_copy(report.path, report.document or {})
            if copy_problem:
                checks.append(CertificateCheck("-", "-", report.path.with_suffix(".json").name, False, copy_problem))
            if certificates_dir is not None:
                checks += check_certificates(report.document or {}, Path(certificates_dir), trust_bundle)
            if checks or certificates_dir is not None:
                listed[report.path] = checks
    verdicts = [report.valid and all(check.ok for check in listed.get(report.path, [])) for report in reports]
    all_valid = all(verdicts)
    if as_json:
        results = []
        for report in reports:
            result = report.to_json()
            if report.path in listed:
                result["certificates"] = [check.to_json() for check in listed[report.path]]
                result["complete"] = all(check.ok for check in listed[report.path])
            results.append(result)
        click.echo(json.dumps({"valid": all_valid, "results": results}, indent=2))
    else:
        for report, verdict in zip(reports, verdicts, strict=True):
            if report.valid:
                # A valid failure report proves a failure: say so before anyone reads "VALID" as "clean".
                kind = {"failure_report": " [failure report]", "manifest": " [batch manifest]",
                        "destruction_report": " [destruction report]"}.get(report.kind or "", "")
                label = "VALID   " if verdict else "INVALID "
                click.echo(f"{label} {report.path}{kind}: {report.summary}")
                if report.kind == "manifest" and certificates_dir is None:
                    click.echo("         listed certificates not checked: give --certificates DIR")
                for check in listed.get(report.path, []):
                    click.echo(f"         {'ok     ' if check.ok else 'PROBLEM'} {check.asset} {check.certificate_id}"
                               f"{': ' + check.problem if check.problem else ''}")
            else:
                click.echo(f"INVALID  {report.path}: {report.reason}")
        if len(reports) > 1:
            valid_count = sum(verdicts)
            click.echo(f"{valid_count} of {len(reports)} valid")
    raise SystemExit(0 if all_valid else EXIT_INVALID)
