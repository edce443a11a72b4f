"""``wipe-agent verify``: on its own so that ``verify --help`` (and the table in main.py) loads neither
:mod:`certs.pki` nor :mod:`certs.verify` (cryptography, pyHanko, reportlab): they load when it runs.

Every failure is one line on stderr (or ``{"error": {"code": ..., "message": ...}}`` on stdout with
``--json``) and a non-zero exit: 0 when every file is valid, 1 when any is invalid, 2 on bad input.
"""

from __future__ import annotations

import json
from typing import NoReturn

import click

EXIT_INVALID = 1
EXIT_BAD_INPUT = 2

EXPECT_WORDS: tuple[str, ...] = ("certificate", "manifest", "destruction", "failure-report", "validation",
                                 "fleet-manifest")
"""``certs.verify.EXPECT_CHOICES``'s words, for the help text without importing it (a test keeps them equal)."""


def _fail(code: str, message: str, as_json: bool, exit_code: int) -> NoReturn:
    if as_json:
        click.echo(json.dumps({"error": {"code": code, "message": message}}))
    else:
        click.echo(f"error: {message}", err=True)
    raise SystemExit(exit_code)


_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.command("verify")
@click.argument("files", nargs=-1)
@click.option("--trust", "trust", help="Trust bundle (CA certificate, CRL, TSA certificates) from the issuing "
                                       "organisation.")
# Checked by run_verify rather than click.Choice, so a bad value is one line that obeys --json.
@click.option("--expect", default=None, help=f"The kind every file must be: {' | '.join(EXPECT_WORDS)} "
                                             "[default: any kind but a failure report, named in the verdict; "
                                             "manifest with --certificates].")
@click.option("--certificates", "certificates_dir",
              help="For a batch manifest: the folder of certificates it lists (each must be present, valid and "
                   "match its hash) [default: certificates/ beside the manifest].")
@click.option("--no-certificates", "no_certificates", is_flag=True,
              help="Check a manifest alone; the verdict then says its certificates were NOT checked.")
@_json_option
def verify(files: tuple[str, ...], trust: str | None, expect: str | None, certificates_dir: str | None,
           no_certificates: bool, as_json: bool) -> None:
    """Verify certificates of sanitisation, failure reports, batch manifests and destruction reports.

    FILE may be a folder of PDFs. Exit 0 only when every file is a valid document of the expected kind.
    For a manifest, every certificate it lists is checked in the certificates/ folder beside it (or
    --certificates DIR); without the folder the manifest is not accepted (exit 1) unless
    --no-certificates asks for the manifest alone, and says so. Partners without the
    station software run the same check with 'python -m certs verify'.
    """
    from certs.cli import BadInput, run_verify

    try:
        status = run_verify(files, trust, expect=expect, certificates_dir=certificates_dir,
                            no_certificates=no_certificates, as_json=as_json, echo=click.echo)
    except BadInput as error:
        _fail(error.code, error.message, as_json, EXIT_BAD_INPUT)
    raise SystemExit(status)
