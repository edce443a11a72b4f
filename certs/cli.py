"""The ``verify`` command, shared by ``wipe-agent verify`` and the partners' ``python -m certs verify``.

It imports nothing from the station agent and nothing Linux-specific: a partner on Windows or
macOS installs only what verification needs (see README, "For partners") and runs::

    python -m certs verify FILE_OR_FOLDER... --trust BUNDLE [--expect KIND] [--certificates DIR | --no-certificates]
                           [--json]

A valid batch manifest is complete only with its certificates: the ``certificates/`` folder beside
it is checked by default (``--certificates DIR`` names another, ``--no-certificates`` skips it).
When they were not checked the verdict line says so, ``INVALID (manifest only: certificates were NOT
checked — why)`` (``VALID (...)`` with ``--no-certificates``), and ``--json`` carries
``certificates_checked: false``, the reason, and ``accepted`` (the file's verdict, exit status included).

Exit status: 0 when every file is a valid document of the expected kind (default: any kind but a
failure report, named in the verdict; manifest when ``--certificates`` is given) and every manifest's
certificates checked out (a manifest without its folder is exit 1 unless ``--no-certificates``
asked for it alone), 1 when any is not, 2 on bad input (no
file given, a missing file or folder, an unusable trust bundle). Every problem is one line, never
a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from certs.errors import TrustBundleError

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_BAD_INPUT = 2

Echo = Callable[[str], None]
"""Where output lines go (stdout)."""


class BadInput(Exception):
    """Bad command-line input: one line, exit 2."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@contextmanager
def _quiet_pdf_libraries() -> Iterator[None]:
    """Silence pyHanko's and pypdf's own log lines while verifying: a damaged file makes them log
    repair notes on stderr, but our verdict already gives the reason, in one line."""
    loggers = [logging.getLogger(name) for name in ("pyhanko", "pyhanko_certvalidator", "pypdf")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _exists_or_unreadable(name: str) -> bool:
    """True when the path exists or cannot be examined (permission): the latter is reported per file
    as ``unreadable``; only a path that certainly does not exist is bad input."""
    try:
        os.stat(name)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return True


def run_verify(files: Sequence[str], trust: str | None, *, expect: str | None = None,
               certificates_dir: str | None = None, no_certificates: bool = False, as_json: bool = False,
               echo: Echo = print) -> int:
    """Verify ``files`` against the bundle ``trust``; print a verdict per file; return the exit status.

    Raises :class:`BadInput` for bad input (the caller prints it and exits 2).
    """
    from certs import fleet_manifest
    from certs.manifest import CertificateCheck, check_certificates, check_csv_copy, check_json_copy
    from certs.verify import (
        DEFAULT_KINDS,
        EXPECT_CHOICES,
        MANIFEST_KINDS,
        DocumentKind,
        expand_paths,
        load_trust_bundle,
        verify_with_bundle,
    )

    if not files:
        raise BadInput("bad_input", "give at least one certificate FILE or folder")
    if trust is None or not trust.strip():
        raise BadInput("bad_input", "--trust is required")
    if expect is not None and expect not in EXPECT_CHOICES:
        raise BadInput("bad_input", f"--expect must be one of {', '.join(EXPECT_CHOICES)}, not {expect!r}")
    missing = [name for name in files if not _exists_or_unreadable(name)]
    if missing:
        raise BadInput("bad_input", f"no such file or folder: {missing[0]}")
    if certificates_dir is not None and no_certificates:
        raise BadInput("bad_input", "give --certificates DIR or --no-certificates, not both")
    if certificates_dir is not None and not Path(certificates_dir).is_dir():
        raise BadInput("bad_input", f"--certificates: no such folder: {certificates_dir}")
    # A manifest check names its certificates folder: then a manifest is what is being verified.
    # Without either, any kind but a failure report is accepted and the verdict names it.
    wanted: DocumentKind | tuple[DocumentKind, ...] = EXPECT_CHOICES[expect] if expect else (
        MANIFEST_KINDS if certificates_dir is not None else DEFAULT_KINDS)
    try:
        bundle = load_trust_bundle(Path(trust))
    except TrustBundleError as error:
        raise BadInput(error.code, error.message) from None
    paths = expand_paths(Path(name) for name in files)
    if not paths:
        raise BadInput("bad_input", "no PDF files found in the given folder(s)")
    with _quiet_pdf_libraries():
        reports = [verify_with_bundle(path, bundle, expect=wanted) for path in paths]
        manifests = [report for report in reports if report.valid and report.kind in MANIFEST_KINDS]
        listed: dict[Path, list[CertificateCheck]] = {}
        folders: dict[Path, Path | None] = {}
        not_checked: dict[Path, str] = {}
        for report in manifests:
            checks = []
            fleet = report.kind is DocumentKind.FLEET_MANIFEST
            copies = ((".json", fleet_manifest.check_json_copy), (".csv", fleet_manifest.check_csv_copy)) if fleet \
                else ((".json", check_json_copy), (".csv", check_csv_copy))
            for suffix, check_copy in copies:
                copy_problem = check_copy(report.path, report.document or {})
                if copy_problem:
                    checks.append(CertificateCheck("-", "-", report.path.with_suffix(suffix).name, False,
                                                   copy_problem))
            folder, why_not = _certificates_folder(report.path, certificates_dir, no_certificates)
            folders[report.path] = folder
            if folder is not None:
                checks += (fleet_manifest.check_certificates if fleet else check_certificates)(
                    report.document or {}, folder, bundle)
            else:
                not_checked[report.path] = why_not
            if checks or folder is not None:
                listed[report.path] = checks
    # A manifest whose certificates were not checked is incomplete evidence unless the caller asked
    # for the manifest alone (--no-certificates): exit 0 must mean the whole delivery checked out.
    verdicts = [report.valid and all(check.ok for check in listed.get(report.path, []))
                and (no_certificates or report.path not in not_checked) for report in reports]
    all_valid = all(verdicts)
    if as_json:
        results = []
        for report in reports:
            result: dict[str, Any] = report.to_json()
            if report.path in listed:
                result["certificates"] = [check.to_json() for check in listed[report.path]]
                result["complete"] = all(check.ok for check in listed[report.path])
            if report.path in folders:
                folder = folders[report.path]
                result["certificates_checked"] = folder is not None
                result["certificates_dir"] = str(folder) if folder is not None else None
                result["certificates_not_checked"] = not_checked.get(report.path)
            results.append(result)
        expected = wanted.value if isinstance(wanted, DocumentKind) else (
            DocumentKind.MANIFEST.value if wanted == MANIFEST_KINDS else "any")
        for result, verdict in zip(results, verdicts, strict=True):
            result["accepted"] = verdict  # "valid": the document; "accepted": it and, for a manifest, its certificates
        echo(json.dumps({"valid": all_valid, "expect": expected, "results": results}, indent=2))
    else:
        for report, verdict in zip(reports, verdicts, strict=True):
            if report.valid:
                # A valid failure report proves a failure: say so before anyone reads "VALID" as "clean".
                # (a certificate of sanitisation, the usual case, is untagged: its summary says what was done)
                kind = {DocumentKind.FAILURE_REPORT: " [failure report]", DocumentKind.MANIFEST: " [batch manifest]",
                        DocumentKind.DESTRUCTION: " [destruction report]",
                        DocumentKind.VALIDATION: " [validation statement]",
                        DocumentKind.FLEET_MANIFEST: " [fleet manifest]"}.get(report.kind, "") if report.kind else ""
                label = "VALID   " if verdict else "INVALID "
                if report.path in not_checked:
                    why = not_checked[report.path] + ("" if verdict else "; --no-certificates checks it alone")
                    label = f"{label.strip()} (manifest only: certificates were NOT checked \u2014 {why})"
                echo(f"{label} {report.path}{kind}: {report.summary}")
                echo(f"         {report.status}")
                for warning in report.warnings:
                    echo(f"         warning: {warning}")
                folder = folders.get(report.path)
                if folder is not None:
                    checked = [check for check in listed.get(report.path, []) if check.certificate_id != "-"]
                    echo(f"         certificates checked in {folder}: {sum(check.ok for check in checked)} of "
                         f"{len(checked)} listed present, valid and matching")
                for check in listed.get(report.path, []):
                    echo(f"         {'ok     ' if check.ok else 'PROBLEM'} {check.asset} {check.certificate_id}"
                         f"{': ' + check.problem if check.problem else ''}")
            else:
                echo(f"INVALID  {report.path}: [{report.code}] {report.reason}")
        if len(reports) > 1:
            echo(f"{sum(verdicts)} of {len(reports)} valid")
    return EXIT_VALID if all_valid else EXIT_INVALID


def _certificates_folder(manifest: Path, given: str | None, skip: bool) -> tuple[Path | None, str]:
    """The folder a manifest's certificates are checked in, or None and why they are not checked."""
    if given is not None:
        return Path(given), ""
    if skip:
        return None, "--no-certificates given"
    sibling = manifest.parent / "certificates"
    if sibling.is_dir():
        return sibling, ""
    return None, "no certificates/ folder beside it"


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (the house rule for bad input), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see '{self.prog} --help')\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m certs verify ...``: the partners' verifier (no station code needed)."""
    parser = _OneLineParser(prog="python -m certs", description="Verify wipe-agent signed documents.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_OneLineParser)
    verify = commands.add_parser("verify", help="verify certificates, reports and manifests against a trust bundle")
    verify.add_argument("files", nargs="*", metavar="FILE", help="PDF files or folders of PDFs")
    verify.add_argument("--trust", help="trust bundle (CA certificate, CRL, TSA certificates) from the issuer")
    verify.add_argument("--expect", help="certificate | manifest | destruction | failure-report | validation | "
                                          "fleet-manifest")
    verify.add_argument("--certificates", dest="certificates_dir",
                        help="a manifest's folder of certificates [default: certificates/ beside the manifest]")
    verify.add_argument("--no-certificates", dest="no_certificates", action="store_true",
                        help="check a manifest alone (the verdict then says its certificates were NOT checked)")
    verify.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of text")
    audit = commands.add_parser("audit-verify", help="check a station's audit export (entries and signed checkpoints)")
    audit.add_argument("--file", required=True, help="the export written by 'wipe-agent audit export'")
    audit.add_argument("--trust", required=True, help="trust bundle from the issuer")
    audit.add_argument("--station", dest="station_id", help="the station the export must be of")
    audit.add_argument("--anchor", help="a signed manifest whose audit checkpoint the export must contain")
    audit.add_argument("--json", dest="as_json", action="store_true", help="print JSON instead of text")
    try:
        arguments = parser.parse_args(argv)
    except SystemExit as exit_request:
        # argparse already printed its one-line usage error; keep our exit status for bad input.
        return EXIT_BAD_INPUT if exit_request.code else EXIT_VALID
    if arguments.command == "audit-verify":
        from certs.audit_chain import AuditFileError, run_audit_verify

        try:
            return run_audit_verify(arguments.file, arguments.trust, as_json=arguments.as_json,
                                    station_id=arguments.station_id, anchor=arguments.anchor)
        except (AuditFileError, TrustBundleError) as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
    try:
        return run_verify(arguments.files, arguments.trust, expect=arguments.expect,
                          certificates_dir=arguments.certificates_dir, no_certificates=arguments.no_certificates,
                          as_json=arguments.as_json)
    except BadInput as error:
        if arguments.as_json:
            print(json.dumps({"error": {"code": error.code, "message": error.message}}))
        else:
            print(f"error: {error.message}", file=sys.stderr)
        return EXIT_BAD_INPUT
