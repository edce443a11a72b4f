"""``audit export`` and ``audit verify`` (local registry, or ``--file`` on any machine), on the ``audit`` group.

The group lives in :mod:`agent.cli.reuse_commands` (other commands, e.g. ``audit sample``, attach
to it too); importing this module attaches these two. The offline check is
:func:`certs.audit_chain.run_audit_verify`, which ``python -m certs audit-verify`` runs as well,
so a partner without the station agent gets the same verdict.
"""

from __future__ import annotations

import base64
import json
import os
import re
import tempfile
from datetime import UTC, datetime, time
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.cli.context import state_dir
from agent.cli.output import EXIT_FAILED, EXIT_OK, handle_errors, json_option, print_json
from agent.cli.reuse_commands import audit
from agent.errors import ConfigError
from agent.jobs.certify import station_signer
from agent.store.registry import Registry
from certs.audit_chain import AuditFileError, ChainReport, render, run_audit_verify
from certs.errors import TrustBundleError

_SEQ = re.compile(r"[0-9]{1,18}")


def _bound(text: str | None, registry: Registry, *, last: bool) -> int:
    """A --from/--to value: a sequence number, or an ISO date/time (UTC unless it says otherwise)."""
    if text is None:
        return 1 if not last else int(registry.db.execute("SELECT coalesce(max(seq), 0) FROM audit_log")
                                       .fetchone()[0])
    if _SEQ.fullmatch(text):
        return int(text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{'--to' if last else '--from'} {text[:40]!r} is neither a sequence number nor an ISO "
                          "date or time (e.g. 2026-12-02 or 2026-12-02T13:00)") from None
    if len(text) == 10 and last:  # a date: the whole day
        moment = datetime.combine(moment.date(), time.max)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    found = registry.audit.seq_at(moment, last=last)
    # nothing in range: an empty export whose range says so (from > to)
    return found if found else (0 if last else int(registry.db.execute(
        "SELECT coalesce(max(seq), 0) + 1 FROM audit_log").fetchone()[0]))


def _certificates(registry: Registry, root: Path) -> tuple[str, list[str]]:
    """The station id and its certificate chain (PEM, station first), from the installed key, else from the
    newest checkpoint (a station whose key was since removed can still export what it signed)."""
    signer = station_signer(root)
    if signer is not None:
        pem = serialization.Encoding.PEM
        return signer.station_id, [item.public_bytes(pem).decode("ascii")
                                   for item in (signer.certificate, *signer.chain)]
    latest = registry.audit.latest_checkpoint()
    if latest is None:
        raise ConfigError("this station has no signing key and no signed checkpoint: there is nothing to anchor "
                          "an export; run 'wipe-agent pki issue-station' first")
    der = base64.b64decode(latest.certificate)
    return latest.station_id, [x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)
                               .decode("ascii")]


def _write_atomic(path: Path, text: str) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o640)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@audit.command("export")
@click.option("--from", "from_", default=None, metavar="SEQ|DATE", help="First entry [default: 1].")
@click.option("--to", "to", default=None, metavar="SEQ|DATE", help="Last entry [default: the newest].")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="The JSON file to write.")
@json_option
@click.pass_context
@handle_errors
def audit_export(ctx: click.Context, from_: str | None, to: str | None, out: str, as_json: bool) -> None:
    """Write entries SEQ…SEQ (or by date), the checkpoints that sign them and the station certificate chain to
    one self-contained JSON file, for `audit verify --file` (or `python -m certs audit-verify`) elsewhere."""
    root = state_dir(ctx)
    registry = Registry(root).open()
    try:
        first, last = _bound(from_, registry, last=False), _bound(to, registry, last=True)
        if first < 1:
            raise ConfigError("--from must be 1 or more")
        station_id, certificates = _certificates(registry, root)
        document = registry.audit.export(first, last, station_id, certificates)
    finally:
        registry.close()
    _write_atomic(Path(out), json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    summary = {"file": out, "entries": len(document["entries"]), "from_seq": first, "to_seq": last,
               "checkpoints": len(document["checkpoints"]), "station_id": station_id}
    if as_json:
        print_json(summary)
    else:
        click.echo(f"{out}: {summary['entries']} entries (seq {first}-{last}), {summary['checkpoints']} "
                   f"checkpoint(s) of station {station_id}")


@audit.command("verify")
@click.option("--file", "file", default=None, type=click.Path(dir_okay=False),
              help="Check an export file instead of this station's registry (no registry needed).")
@click.option("--trust", "trust", default=None, help="Trust bundle the export's checkpoints are checked against.")
@json_option
@click.pass_context
@handle_errors
def audit_verify(ctx: click.Context, file: str | None, trust: str | None, as_json: bool) -> None:
    """Check the chain and its signed checkpoints: exit 0 intact, 1 broken, 2 bad input.

    Without --file: this station's registry (each checkpoint's signature with the certificate stored
    beside it, and its head against the entry it names). With --file and --trust: an export, as a
    partner checks it (station profile, validity and revocation of each checkpoint's certificate).
    """
    if file is not None:
        try:
            code = run_audit_verify(file, trust, as_json=as_json, echo=click.echo)
        except (AuditFileError, TrustBundleError) as error:
            raise ConfigError(f"{file}: {error}") from None
        raise SystemExit(code)
    registry = Registry(state_dir(ctx)).open()
    try:
        report = registry.audit.verify()
    finally:
        registry.close()
    if as_json:
        print_json(report.to_json())
    else:
        shown = ChainReport(report.valid, report.entries, 1 if report.entries else None, report.entries or None,
                            report.head, report.checkpoints, report.anchored_to, report.problems)
        for line in render(shown, "audit log"):
            click.echo(line)
    raise SystemExit(EXIT_OK if report.valid else EXIT_FAILED)


