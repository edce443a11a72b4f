"""``wipe-agent tsa``: run the organisation's RFC 3161 timestamping authority."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from certs.errors import CertificateError


@click.group("tsa")
def tsa() -> None:
    """The organisation's RFC 3161 timestamping authority (on the CA or fleet host)."""


@tsa.command("serve")
@click.option("--tsa", "tsa_dir", required=True,
              help="TSA directory from 'pki issue-tsa' (tsa.key 0600, tsa.crt, chain.pem).")
@click.option("--listen", default="127.0.0.1:8318", show_default=True, help="HOST:PORT to listen on.")
def serve(tsa_dir: str, listen: str) -> None:
    """Serve timestamp tokens over HTTP (POST application/timestamp-query) until SIGTERM/SIGINT."""
    from agent.tsa.server import make_server, parse_listen

    try:
        host, port = parse_listen(listen)
    except ValueError as error:
        click.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None
    directory = Path(tsa_dir)
    if not tsa_dir.strip() or not directory.is_dir():  # a blank --tsa is not the current directory
        click.echo(f"error: no such TSA directory: {tsa_dir!r}", err=True)
        raise SystemExit(2)
    try:
        server = make_server(directory, host, port)
    except CertificateError as error:
        click.echo(f"error: {error.message}", err=True)
        raise SystemExit(2) from None
    except OSError as error:
        click.echo(f"error: cannot listen on {listen}: {error.strerror}", err=True)
        raise SystemExit(1) from None
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
    subject = server.service.authority.certificate.subject.rfc4514_string()

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() blocks until serve_forever returns, so call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"tsa: serving {subject} on http://{bound_host}:{bound_port}/", err=True)
    sys.stderr.flush()
    try:
        server.serve_forever()
    finally:
        server.server_close()
    click.echo("tsa: stopped", err=True)
