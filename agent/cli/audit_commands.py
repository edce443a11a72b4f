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
import stat
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
from agent.reuse.service import TRUST_BUNDLE_NAME
from agent.store.registry import Registry
from certs.audit_chain import AuditFileError, ChainReport, render, run_audit_verify
from certs.errors import TrustBundleError
from certs.verify import load_trust_bundle

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


def _out_problem(path: Path, force: bool) -> str | None:
    """Why ``--out`` may not be written: an existing path unless ``force``, and never a symlink, a device
    node, a FIFO or a directory (an atomic replace would swap the node itself for a JSON file)."""
    try:
        status = path.lstat()
    except FileNotFoundError:
        parent = path.parent if str(path.parent) else Path(".")
        return None if parent.is_dir() else f"{parent} is not a directory"
    except OSError as error:
        return f"cannot be inspected ({error.strerror})"
    if not stat.S_ISREG(status.st_mode):
        return "exists and is not a regular file (a symlink, device, FIFO or directory): not replaced"
    return None if force else "exists: not overwritten (give --force to replace it)"


def _write_atomic(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` to a temporary file beside ``path`` and publish it: with ``force`` by replacing the regular
    file there, else by a hard link, which fails rather than overwrite a file that appeared meanwhile."""
    problem = _out_problem(path, force)
    if problem:
        raise ConfigError(f"--out {path}: {problem}")
    directory = path.parent if str(path.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as error:
        raise ConfigError(f"--out {path}: cannot write in {directory} ({error.strerror})") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o640)
        if force:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)
            except FileExistsError:
                raise ConfigError(f"--out {path}: exists: not overwritten (give --force to replace it)") from None
    finally:
        Path(temporary).unlink(missing_ok=True)


def _anchored_end(registry: Registry, last: int) -> tuple[int, bool]:
    """Sign the head now when the station key is there (so the export's newest entries are anchored), and end
    the export at the first checkpoint at or after ``last``: an export whose last entry no checkpoint covers
    is refused by every verifier. Returns (the end seq, whether a checkpoint covers it)."""
    registry.audit.checkpoint(at=registry.clock())
    covering = [item.seq for item in registry.audit.checkpoints(from_seq=last)]
    return (min(covering), True) if covering else (last, False)


@audit.command("export")
@click.option("--from", "from_", default=None, metavar="SEQ|DATE", help="First entry [default: 1].")
@click.option("--to", "to", default=None, metavar="SEQ|DATE",
              help="Last entry [default: the newest; extended to the next checkpoint so that it is signed].")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="The JSON file to write (new).")
@click.option("--force", is_flag=True, help="Replace --out if it is an existing regular file.")
@json_option
@click.pass_context
@handle_errors
def audit_export(ctx: click.Context, from_: str | None, to: str | None, out: str, force: bool,
                 as_json: bool) -> None:
    """Write entries SEQ…SEQ (or by date), the checkpoints that sign them and the station certificate chain to
    one self-contained JSON file, for `audit verify --file` (or `python -m certs audit-verify`) elsewhere.

    With the station key installed the current head is signed first, and the export runs to the first
    checkpoint at or after --to, so that its last entry is anchored by a station signature."""
    root = state_dir(ctx)
    problem = _out_problem(Path(out), force)
    if problem:  # before anything is signed
        raise ConfigError(f"--out {out}: {problem}")
    registry = Registry(root).open()
    try:
        first, last = _bound(from_, registry, last=False), _bound(to, registry, last=True)
        if first < 1:
            raise ConfigError("--from must be 1 or more")
        if last < first:
            raise ConfigError(f"no entries in the range (from seq {first} to seq {last}): an empty export proves "
                              "nothing, nothing written")
        station_id, certificates = _certificates(registry, root)
        end, anchored = _anchored_end(registry, last)
        document = registry.audit.export(first, end, station_id, certificates)
    finally:
        registry.close()
    _write_atomic(Path(out), json.dumps(document, indent=1, ensure_ascii=False) + "\n", force=force)
    summary = {"file": out, "entries": len(document["entries"]), "from_seq": first, "to_seq": end,
               "checkpoints": len(document["checkpoints"]), "station_id": station_id, "anchored": anchored}
    if as_json:
        print_json(summary)
    else:
        extended = f" (extended from seq {last} to the checkpoint that signs it)" if end != last else ""
        click.echo(f"{out}: {summary['entries']} entries (seq {first}-{end}){extended}, {summary['checkpoints']} "
                   f"checkpoint(s) of station {station_id}")
        if not anchored:
            click.echo(f"warning: no checkpoint covers seq {end} (no station key to sign one now): verifiers will "
                       "refuse the unanchored entries", err=True)


@audit.command("verify")
@click.option("--file", "file", default=None, type=click.Path(dir_okay=False),
              help="Check an export file instead of this station's registry (no registry needed).")
@click.option("--trust", "trust", default=None,
              help="Trust bundle the checkpoints are checked against [local default: STATE_DIR/trust-bundle.pem].")
@click.option("--station", "station", default=None, metavar="ID",
              help="With --file: the station the export must be of.")
@click.option("--anchor", "anchor", default=None, type=click.Path(dir_okay=False), metavar="MANIFEST.pdf",
              help="With --file: a signed manifest whose audit checkpoint the export must contain, head and all.")
@json_option
@click.pass_context
@handle_errors
def audit_verify(ctx: click.Context, file: str | None, trust: str | None, station: str | None,
                 anchor: str | None, as_json: bool) -> None:
    """Check the chain and its signed checkpoints: exit 0 intact, 1 broken, 2 bad input.

    Without --file: this station's registry; each checkpoint's certificate is checked against the
    trust bundle (--trust, else STATE_DIR/trust-bundle.pem), else it must be the installed station
    certificate. With --file and --trust: an export, as a partner checks it (station profile,
    validity and revocation of each checkpoint's certificate; every entry must be signed by one).
    """
    if file is not None:
        try:
            code = run_audit_verify(file, trust, as_json=as_json, echo=click.echo, station_id=station,
                                    anchor=anchor)
        except (AuditFileError, TrustBundleError) as error:
            raise ConfigError(f"{file}: {error}") from None
        raise SystemExit(code)
    if station is not None or anchor is not None:
        raise ConfigError("--station and --anchor are for --file (checking an export)")
    root = state_dir(ctx)
    bundle_path = Path(trust) if trust else root / TRUST_BUNDLE_NAME
    try:
        bundle = load_trust_bundle(bundle_path) if trust or bundle_path.is_file() else None
    except TrustBundleError as error:
        raise ConfigError(f"trust bundle: {error}") from None
    signer = station_signer(root)
    registry = Registry(root).open()
    try:
        report = registry.audit.verify(bundle=bundle, station=signer)
    finally:
        registry.close()
    if as_json:
        print_json(report.to_json())
    else:
        shown = ChainReport(report.valid, report.entries, 1 if report.entries else None, report.entries or None,
                            report.head, report.checkpoints, report.anchored_to, report.problems, report.warnings)
        for line in render(shown, "audit log"):
            click.echo(line)
    raise SystemExit(EXIT_OK if report.valid else EXIT_FAILED)
