"""``wipe-agent certificates extend DIR``: bring issued documents to PAdES B-LTA and keep them there.

Run it on the station (it reads ``pki/chain.pem`` and ``pki/crl.pem`` from the state directory)
or anywhere with ``--trust BUNDLE`` (the CA certificate and CRL come from the bundle). It adds the
DSS and document timestamp that documents signed while the TSA was unreachable lack, and an
archive timestamp to documents whose newest timestamp's TSA certificate expires within
``--renew-days``. Each file is first verified with the partners' verifier (against ``--trust``, or
the station's own chain and CRL): an invalid one is refused untouched, so a forgery never receives
the organisation's timestamp. The extended bytes are verified again in memory and written
atomically only when they pass (a token from a TSA the bundle does not trust never reaches the
file); a file that needs nothing is not touched. A ``*.pdf`` that is not a regular file (FIFO,
device) or is over 64 MiB is named as skipped. Exit 0 when every file is B-LTA afterwards, 1 when
any was refused, skipped or failed, 2 on bad input.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import click
from cryptography import x509

from agent.cli.context import certificate_settings, state_dir
from certs import pki
from certs.errors import CertificateError
from certs.files import MAX_DOCUMENT_BYTES, NotReadable, read_regular_file
from certs.issue import write_atomic
from certs.ltv import DEFAULT_RENEW_DAYS, ExtendOutcome, ExtendRefused, extend_pdf, http_timestamper
from certs.verify import READ_BACK_TOLERATED, load_trust_bundle, verify_data

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _bad_input(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(EXIT_BAD_INPUT)


@click.group("certificates")
def certificates() -> None:
    """Issued certificates, failure reports, manifests and destruction reports."""


@certificates.command("extend")
@click.argument("paths", nargs=-1)
@click.option("--tsa-url", help="The organisation's TSA [default: [timestamping] url of station.toml].")
@click.option("--renew-days", type=int, default=DEFAULT_RENEW_DAYS, show_default=True,
              help="Add an archive timestamp when the newest timestamp's TSA certificate expires within this.")
@click.option("--trust", help="Verify with, and take the CA certificate and CRL from, this trust bundle "
                              "[default: the station's own chain and CRL].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.pass_context
def extend(ctx: click.Context, paths: tuple[str, ...], tsa_url: str | None, renew_days: int, trust: str | None,
           as_json: bool) -> None:
    """Add DSS + document timestamps (B-LTA) to the PDFs in PATHS (files or folders), renewing ageing ones."""
    if not paths:
        _bad_input("give at least one PDF file or folder")
    if not 1 <= renew_days <= 36525:
        _bad_input(f"--renew-days must be 1 to 36525, got {renew_days}")
    url = tsa_url or certificate_settings(ctx).tsa_url
    if not url:
        _bad_input("no TSA: give --tsa-url or set [timestamping] url in station.toml")
    if not url.startswith(("http://", "https://")):
        _bad_input(f"--tsa-url must be an http:// or https:// URL, got {url!r}")
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            # Every *.pdf entry, regular or not: a FIFO or device is named (skipped), never silently left out.
            files += sorted(path.rglob("*.pdf"))
        elif path.exists():
            files.append(path)
        else:
            _bad_input(f"no such file or folder: {name}")
    if not files:
        _bad_input("no PDF files found in the given folder(s)")
    try:
        if trust is not None:
            bundle = load_trust_bundle(Path(trust))
            chain: tuple[x509.Certificate, ...] = (bundle.ca_certificate, *bundle.tsa_certificates)
            crl: x509.CertificateRevocationList | None = bundle.crl
        else:
            station = state_dir(ctx)
            chain = pki.load_certificates(station / pki.STATION_DIR / pki.STATION_CHAIN, "certificate chain")
            crl = pki.load_station_crl(station)
            authority = next((item for item in chain if item.subject == item.issuer), None)
            if authority is None or crl is None:
                _bad_input("the station holds no CA certificate or CRL to verify the files with: give --trust BUNDLE")
            # The station's own chain stands in for the partners' bundle (say so: the check is as
            # strong as the station's CRL is current).
            bundle = pki.TrustBundle(authority, crl, tuple(item for item in chain if pki.is_tsa_certificate(item)))
    except CertificateError as error:
        _bad_input(error.message)
    if not as_json:
        click.echo(f"verifying each file against {'the trust bundle ' + str(trust) if trust else 'the station chain'} "
                   "before and after extending it")
    timestamper = http_timestamper(url, certificate_settings(ctx).tsa_timeout)
    now = pki.utc_now()
    results = []
    failed = 0
    for path in files:
        try:
            try:
                original = read_regular_file(path, MAX_DOCUMENT_BYTES)
            except NotReadable as error:
                failed += 1
                entry = {"path": str(path), "outcome": "skipped", "code": "unreadable", "detail": str(error)}
                results.append(entry)
                if not as_json:
                    click.echo(f"{'SKIPPED':10} {path}: {entry['detail']}")
                continue
            # The partners' verifier first: a forged or broken file must never receive the
            # organisation's document timestamp (it would then carry the TSA's word for a forgery).
            before = verify_data(path, original, bundle, now=now)
            if not before.valid and before.code not in READ_BACK_TOLERATED:
                raise ExtendRefused(f"not extended: the verifier refuses it ({before.code}: {before.reason}); "
                                    "it cannot be extended")
            result = extend_pdf(original, timestamper=timestamper, chain=chain, crl=crl, now=now,
                                renew_days=renew_days)
            if result.data is not None:
                # Read back in memory before the atomic replace: a token from a TSA the bundle does
                # not trust, or anything else the verifier refuses, never reaches the file.
                after = verify_data(path, result.data, bundle, now=now)
                if not after.valid:
                    raise ExtendRefused(f"not extended: the extended file would fail verification "
                                        f"({after.code}: {after.reason}); the file is unchanged")
                write_atomic(path, result.data)
            entry = {"path": str(path), "outcome": result.outcome.value, "detail": result.detail}
        except CertificateError as error:
            failed += 1
            entry = {"path": str(path), "outcome": "refused", "code": error.code, "detail": error.message}
        except OSError as error:
            failed += 1
            entry = {"path": str(path), "outcome": "failed", "code": "io_error", "detail": str(error.strerror)}
        except Exception as error:  # the TSA went away mid-run and the like: report, go on
            failed += 1
            entry = {"path": str(path), "outcome": "failed", "code": "extend_failed",
                     "detail": str(error).splitlines()[0][:200] if str(error) else type(error).__name__}
        results.append(entry)
        if not as_json:
            click.echo(f"{entry['outcome'].upper():10} {path}: {entry['detail']}")
    counts = {outcome.value: sum(1 for item in results if item["outcome"] == outcome.value)
              for outcome in ExtendOutcome}
    if as_json:
        click.echo(json.dumps({"results": results, "counts": counts, "failed": failed}, indent=2))
    elif len(results) > 1:
        click.echo(f"{counts['extended']} extended, {counts['renewed']} renewed, {counts['unchanged']} unchanged, "
                   f"{failed} refused or failed")
    raise SystemExit(EXIT_FAILED if failed else 0)
