"""``wipe-agent tsa serve``: the organisation's RFC 3161 timestamping authority over HTTP.

RFC 3161 section 3.4 transport: ``POST`` with ``Content-Type: application/timestamp-query``, the
answer ``application/timestamp-reply``. Anything else is refused with a plain HTTP status (405 for
another method, 415 for another content type, 411/413 for a missing or oversized body, 400 for a
body that is not a DER TimeStampReq); a well-formed request the TSA will not grant (weak hash,
foreign policy, extensions) gets a TimeStampResp with status *rejection*, as the RFC asks.

The TSA directory (from ``pki issue-tsa``) holds ``tsa.key`` (must be 0600: the server refuses to
start otherwise), ``tsa.crt`` (must carry the timeStamping EKU, critical), ``chain.pem``, and the
server's own state: ``serial`` (the last token serial, persisted *before* a token is sent so a
crash can never reuse one) and ``tokens.jsonl`` (append-only, one JSON line per token: serial, time,
hash algorithm, message imprint, nonce, client address).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs import pki
from certs.tsa import (
    MAX_REQUEST_BYTES,
    IssuedToken,
    MalformedRequest,
    TimestampAuthority,
    TsaError,
    issue_token,
    parse_request,
)

SERIAL_FILE = "serial"
TOKEN_LOG = "tokens.jsonl"
QUERY_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
CONNECTION_TIMEOUT_SECONDS = 10.0
"""A client that sends nothing for this long is disconnected (no slow-loris hold on a thread)."""

_LOG = logging.getLogger(__name__)


def load_authority(tsa_dir: Path, *, now: datetime | None = None) -> TimestampAuthority:
    """Load and check the TSA key and certificate; raise :class:`TsaError` with the reason.

    Refuses a key file readable by anyone but its owner, a certificate without the timeStamping
    EKU (critical), a key that does not belong to the certificate, and an expired certificate.
    """
    key_path, certificate_path = tsa_dir / pki.TSA_KEY, tsa_dir / pki.TSA_CERT
    try:
        mode = key_path.stat().st_mode
    except FileNotFoundError:
        raise TsaError(f"no TSA key {key_path}: create one with 'wipe-agent pki issue-tsa'") from None
    if mode & 0o077:
        raise TsaError(f"{key_path} is readable by other users (mode {mode & 0o777:o}); chmod 600 it")
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
        chain_path = tsa_dir / pki.TSA_CHAIN
        chain = tuple(x509.load_pem_x509_certificates(chain_path.read_bytes())) if chain_path.exists() else ()
    except OSError as error:
        raise TsaError(f"cannot read the TSA files in {tsa_dir}: {error.strerror}") from None
    except (ValueError, TypeError):
        raise TsaError(f"the TSA key or certificate in {tsa_dir} is not valid PEM") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TsaError(f"{key_path} is not an EC key")
    authority = TimestampAuthority(certificate, chain, key)
    moment = now or pki.utc_now()
    if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
        raise TsaError(
            f"the TSA certificate is not valid now (valid {certificate.not_valid_before_utc:%Y-%m-%d} to "
            f"{certificate.not_valid_after_utc:%Y-%m-%d})"
        )
    return authority


class SerialCounter:
    """The persisted, strictly increasing token serial (one file, flock'd so two servers on one
    TSA directory cannot hand out the same number)."""

    def __init__(self, path: Path) -> None:
        """Open (or create) the counter file at ``path``."""
        self._path = path
        self._lock = threading.Lock()

    def next(self) -> int:
        """Reserve and durably record the next serial."""
        with self._lock:
            descriptor = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                text = os.read(descriptor, 64).decode("ascii", "replace").strip()
                try:
                    current = int(text) if text else 0
                except ValueError:
                    raise TsaError(f"{self._path} is damaged; refusing to guess the next serial") from None
                serial = current + 1
                os.lseek(descriptor, 0, os.SEEK_SET)
                os.ftruncate(descriptor, 0)
                os.write(descriptor, f"{serial}\n".encode())
                os.fsync(descriptor)
                return serial
            finally:
                os.close(descriptor)


class TokenLog:
    """Append-only JSON-lines log of every token issued."""

    def __init__(self, path: Path) -> None:
        """Log to ``path`` (created 0640 if missing)."""
        self._path = path
        self._lock = threading.Lock()

    def record(self, token: IssuedToken, client: str) -> None:
        """Append one line for ``token`` and fsync it before the token is sent."""
        line = json.dumps({
            "serial": token.serial,
            "time": token.gen_time.isoformat(),
            "hash_algorithm": token.hash_algorithm,
            "message_imprint": token.digest.hex(),
            "nonce": None if token.nonce is None else str(token.nonce),
            "client": client,
        }, sort_keys=True)
        with self._lock:
            descriptor = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(descriptor, line.encode() + b"\n")
                os.fsync(descriptor)
            finally:
                os.close(descriptor)


@dataclass
class TsaService:
    """What every request handler shares: the authority, the counter, the log and the clock."""

    authority: TimestampAuthority
    serials: SerialCounter
    log: TokenLog
    clock: Callable[[], datetime] = pki.utc_now

    def answer(self, body: bytes, client: str) -> tuple[int, str, bytes]:
        """HTTP status, content type and body for one request body."""
        try:
            request = parse_request(body)
        except MalformedRequest as error:
            return 400, "text/plain; charset=utf-8", f"bad request: {error}\n".encode()
        # A serial is spent on a rejection too: simpler than a second pass, and gaps are harmless
        # (RFC 3161 asks only that serials be unique).
        outcome = issue_token(self.authority, request, serial=self.serials.next(), now=self.clock())
        if isinstance(outcome, IssuedToken):
            self.log.record(outcome, client)
        return 200, REPLY_TYPE, outcome.response


class _Handler(BaseHTTPRequestHandler):
    server: _TsaHttpServer
    timeout = CONNECTION_TIMEOUT_SECONDS
    server_version = "wipe-agent-tsa"
    sys_version = ""

    def _send(self, status: int, content_type: str, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _refuse(self, status: int, message: str, extra: dict[str, str] | None = None) -> None:
        self._send(status, "text/plain; charset=utf-8", f"{message}\n".encode(), extra)

    def do_POST(self) -> None:
        """One timestamp request."""
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != QUERY_TYPE:
            self._refuse(415, f"content type must be {QUERY_TYPE}")
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            self._refuse(411, "Content-Length is required")
            return
        try:
            length = int(length_text)
        except ValueError:
            self._refuse(400, "Content-Length is not a number")
            return
        if length < 0 or length > MAX_REQUEST_BYTES:
            self._refuse(413, f"a timestamp request is at most {MAX_REQUEST_BYTES} bytes")
            return
        body = self._read_body(length)
        if body is None:
            self._refuse(408, "request body not received in time")
            return
        if len(body) != length:
            self._refuse(400, "request body shorter than Content-Length")
            return
        try:
            status, reply_type, reply = self.server.service.answer(body, self.client_address[0])
        except TsaError as error:
            _LOG.error("tsa: %s", error.message)
            self._refuse(500, "the TSA cannot issue tokens now")
            return
        except Exception:  # one bad request must never take the connection down without an answer
            _LOG.exception("tsa: internal error")
            self._refuse(500, "internal error")
            return
        self._send(status, reply_type, reply)

    def _read_body(self, length: int) -> bytes | None:
        """Read the body within one overall deadline (the socket timeout alone restarts per byte,
        so a client trickling bytes could hold a thread for hours). None when the deadline passes."""
        deadline = time.monotonic() + CONNECTION_TIMEOUT_SECONDS
        chunks: list[bytes] = []
        received = 0
        while received < length:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.connection.settimeout(remaining)
            try:
                chunk = self.rfile.read1(length - received)
            except TimeoutError:
                return None
            if not chunk:
                break
            chunks.append(chunk)
            received += len(chunk)
        return b"".join(chunks)

    def _not_allowed(self) -> None:
        self._refuse(405, "only POST application/timestamp-query is served", {"Allow": "POST"})

    do_GET = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _not_allowed

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (bad request line, oversized headers) as one plain line."""
        self._refuse(code, message or "bad request")

    def log_message(self, format: str, *args: Any) -> None:
        """Access lines to the logger (journald under systemd), not raw stderr."""
        _LOG.info("%s %s", self.client_address[0], format % args)


MAX_CONNECTIONS = 32
"""Connections served at once; more are closed at once (tokens take milliseconds, so only a flood
reaches this, and it must not exhaust the host's threads)."""


class _TsaHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops SYNs under a burst of stations (each retried only
    # after a second); the slots below bound the work, not the queue.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: TsaService) -> None:
        self.service = service
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)


    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve in a thread if a slot is free; otherwise close the connection straight away."""
        if not self._slots.acquire(blocking=False):
            _LOG.warning("tsa: %s refused: %d connections already open", client_address[0], MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Release the connection's slot when its thread ends."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def make_server(tsa_dir: Path, host: str, port: int, *, clock: Callable[[], datetime] = pki.utc_now) -> _TsaHttpServer:
    """Check the TSA directory and bind the server (not yet serving). Raises :class:`TsaError`."""
    authority = load_authority(tsa_dir, now=clock())
    service = TsaService(authority, SerialCounter(tsa_dir / SERIAL_FILE), TokenLog(tsa_dir / TOKEN_LOG), clock)
    return _TsaHttpServer((host, port), service)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (IPv6 as ``[::1]:8318``) → (host, port); raise ValueError with the reason."""
    host, separator, port_text = text.rpartition(":")
    if not separator or not host:
        raise ValueError(f"--listen must be HOST:PORT, got {text!r}")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--listen port must be a number, got {port_text!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"--listen port must be 0 to 65535, got {port}")
    return host, port


class BackgroundTsa:
    """A TSA served from a thread of this process on an ephemeral loopback port (the demo's)."""

    def __init__(self, tsa_dir: Path) -> None:
        """Check ``tsa_dir`` and start serving; raises :class:`TsaError` like ``tsa serve``."""
        self._server = make_server(tsa_dir, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{int(self._server.server_address[1])}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="tsa", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
