"""``wipe-agent fleet serve``: the fleet's ingest service over mutually authenticated TLS.

Stations connect with their TLS client certificate (``pki issue-tls-client``: EKU clientAuth, OU
``wipe-agent station tls``, CN = station id) issued by the organisation CA; the service presents its
server certificate (``pki issue-tls-server``). OpenSSL checks the chain and the CRL during the handshake;
then this module decides *from the certificate's bytes*, with its own code, who is connecting: issued by
the CA's key (signature checked here), within its validity, not on the CRL (re-read when the file
changes), the TLS-client profile and nothing else (a station's signing certificate is refused), a valid
station id as its common name. Only that station id is passed to :class:`~agent.fleet.ingest.Ingestor`: a
station can only ever write its own records.

Routes (JSON in and out, one request per connection)::

    POST /v1/ingest        a batch of outbox records → the ingest result (accepted, resent, refused, next_seq)
    GET  /v1/ingest/next   {"station_id": …, "next_seq": …}: where this station's stream resumes
    GET  /v1/api/…         the read API (:mod:`agent.fleet.api`): bearer token, no client certificate

A client certificate is optional at the TLS layer (OpenSSL still refuses a bad one) and required, as a
station's, for the ingest routes; the read API takes a token and refuses a station certificate.

The service keeps no state of its own: several instances may serve one database (PostgreSQL serialises a
station's batches on its row lock). High availability is PostgreSQL's (streaming replication, backups);
run instances behind a TCP load balancer that passes TLS through.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agent.errors import AgentError
from agent.fleet.database import FleetDatabase
from agent.fleet.errors import FleetConfigError, FleetInputError, FleetUnavailable
from agent.fleet.ingest import Ingestor
from agent.fleet.verifypool import DocumentVerifier
from certs import pki
from certs.record import is_identifier

MAX_BODY_BYTES = 64 << 20
"""A batch of 5,000 records with certificates is well under this; more is refused (413)."""
CONNECTION_TIMEOUT_SECONDS = 30.0
HEADER_DEADLINE_SECONDS = 30.0
"""The TLS handshake, request line and headers must all arrive within this, however slowly they trickle in
(the socket timeout alone is per read: a client sending a byte every few seconds would hold its connection
slot forever, and 64 of them the whole service)."""
MAX_CONNECTIONS = 64
POOL_SIZE = 8

_LOG = logging.getLogger(__name__)


class ClientRefused(Exception):
    """The TLS peer is not a station the fleet accepts (the reason is logged, the connection closed)."""


@dataclass(frozen=True)
class TlsFiles:
    """The fleet's TLS directory (``pki issue-tls-server``): key, certificate, the CA, the CRL."""

    directory: Path

    @property
    def key(self) -> Path:
        return self.directory / pki.TLS_SERVER_KEY

    @property
    def certificate(self) -> Path:
        return self.directory / pki.TLS_SERVER_CERT

    @property
    def ca(self) -> Path:
        return self.directory / pki.TLS_CA

    @property
    def crl(self) -> Path:
        return self.directory / pki.TLS_CRL


class StationAuthenticator:
    """Decides from a peer certificate's DER which station it is, or refuses it (our code, not OpenSSL's)."""

    def __init__(self, ca_path: Path, crl_path: Path, clock: Any = None) -> None:
        self.ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
        self.crl_path = crl_path
        self.clock = clock or (lambda: datetime.now(UTC))
        self._crl: x509.CertificateRevocationList | None = None
        self._crl_key: tuple[int, int] | None = None
        self._lock = threading.Lock()

    def _current_crl(self) -> x509.CertificateRevocationList:
        try:
            return self._read_crl()
        except (OSError, ValueError) as error:  # fail closed, in one line (not a traceback per connection)
            raise ClientRefused(f"{self.crl_path}: the CA's CRL cannot be read ({error}); refusing every "
                                "station") from None

    def _read_crl(self) -> x509.CertificateRevocationList:
        status = os.stat(self.crl_path)
        key = (status.st_mtime_ns, status.st_size)
        with self._lock:
            if self._crl is None or key != self._crl_key:
                crl = x509.load_pem_x509_crl(self.crl_path.read_bytes())
                public = self.ca.public_key()
                if not isinstance(public, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(public):
                    raise ClientRefused(f"{self.crl_path}: the CRL is not signed by the CA; refusing every station")
                self._crl, self._crl_key = crl, key
            return self._crl

    def station_of(self, der: bytes | None) -> str:
        """The station id of the peer certificate ``der``; :class:`ClientRefused` with the reason otherwise."""
        if not der:
            raise ClientRefused("no client certificate")
        try:
            certificate = x509.load_der_x509_certificate(der)
        except ValueError as exc:
            raise ClientRefused(f"unreadable client certificate ({exc})") from None
        if certificate.issuer != self.ca.subject:
            raise ClientRefused("client certificate not issued by the organisation CA")
        public = self.ca.public_key()
        algorithm = certificate.signature_hash_algorithm
        if not isinstance(public, ec.EllipticCurvePublicKey) or algorithm is None:
            raise ClientRefused("the CA key or the certificate's signature algorithm is not EC/SHA-2")
        try:
            public.verify(certificate.signature, certificate.tbs_certificate_bytes, ec.ECDSA(algorithm))
        except InvalidSignature:
            raise ClientRefused("client certificate's signature does not verify with the CA key") from None
        now = self.clock()
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise ClientRefused("client certificate is outside its validity period")
        crl = self._current_crl()
        if crl.next_update_utc is not None and crl.next_update_utc < now:
            raise ClientRefused("the CA's CRL is past its next update: install a current one (pki crl)")
        if crl.get_revoked_certificate_by_serial_number(certificate.serial_number) is not None:
            raise ClientRefused(f"client certificate {pki.format_serial(certificate.serial_number)} is revoked")
        try:
            usages = list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound as missing:
            raise ClientRefused(f"client certificate lacks {missing.oid.dotted_string}") from None
        if usages != [ExtendedKeyUsageOID.CLIENT_AUTH] or constraints.ca:
            raise ClientRefused("not a station TLS client certificate (EKU must be clientAuth only, CA=false)")
        units = [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
        names = [str(a.value) for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if units != [pki.TLS_CLIENT_OU] or len(names) != 1 or not is_identifier(names[0]):
            raise ClientRefused("not a station TLS client certificate (unit or station id)")
        return names[0]


class FleetService:
    """The request logic, apart from HTTP: a small pool of database connections and the ingestor."""

    def __init__(self, dsn: str, bundle: Any, *, accept_demo: bool = False) -> None:
        self.dsn = dsn
        self.bundle = bundle
        self.accept_demo = accept_demo
        self._pool: queue.LifoQueue[FleetDatabase] = queue.LifoQueue(POOL_SIZE)
        self.verifier = DocumentVerifier(bundle)  # one process pool for every request's documents

    def _database(self) -> FleetDatabase:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return FleetDatabase(self.dsn).open()

    def _release(self, database: FleetDatabase, healthy: bool) -> None:
        if healthy:
            try:
                self._pool.put_nowait(database)
                return
            except queue.Full:
                pass
        database.close()

    def close(self) -> None:
        """Close the pooled connections and the verifier's workers (the server is closing)."""
        self.verifier.close()
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    def call_api(self, target: str, authorisation: str | None) -> tuple[int, str, Any]:
        """One GET of the read API (:mod:`agent.fleet.api`), authorised by its bearer token."""
        from agent.fleet.api import ApiRefused, answer, authorise

        database = self._database()
        healthy = False
        try:
            try:
                authorise(database.db, authorisation)
                status, content_type, payload = answer(database.db, target)
            except ApiRefused as refused:
                database.db.rollback()
                status, content_type, payload = refused.status, "application/json", _error(refused.code,
                                                                                           refused.message)
            except FleetInputError as error:
                database.db.rollback()
                status, content_type, payload = 400, "application/json", {"error": error.to_json()}
            healthy = True
            return status, content_type, payload
        finally:
            self._release(database, healthy)

    def call(self, station: str, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        database = self._database()
        healthy = False
        try:
            if method == "POST" and path == "/v1/ingest":
                result = Ingestor(database, self.bundle, accept_demo=self.accept_demo,
                                  verifier=self.verifier).ingest(station, body).to_json()
            elif method == "GET" and path == "/v1/ingest/next":
                row = database.db.execute("SELECT next_seq FROM fleet_stations WHERE station_id = %s",
                                          (station,)).fetchone()
                database.db.commit()
                result = {"station_id": station, "next_seq": int(row[0]) if row else 1}
            else:
                return 404, _error("not_found", f"no {method} {path}")
            healthy = True
            return 200, result
        except FleetInputError as error:
            healthy = True
            return 400, {"error": error.to_json()}
        finally:
            self._release(database, healthy)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class _Handler(BaseHTTPRequestHandler):
    server: FleetHttpServer
    timeout = CONNECTION_TIMEOUT_SECONDS
    server_version = "wipe-agent-fleet"
    sys_version = ""
    station: str = ""
    refusal: str | None = None

    def setup(self) -> None:
        super().setup()
        if not self.connection.getpeercert(binary_form=True):
            return  # no client certificate: only the token-authorised read API is open to it
        try:
            self.station = self.server.authenticate(self.connection)
        except ClientRefused as refused:  # answered with 403 once the request is read (see _serve)
            _LOG.warning("fleet: %s refused: %s", self.client_address[0], refused)
            self.refusal = str(refused)

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        self.server.headers_read()  # the request's head is in: the body has a deadline of its own
        return parsed

    def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
        body = payload if isinstance(payload, bytes) else (json.dumps(payload, sort_keys=True) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _body(self) -> Any:
        if (self.headers.get("Content-Type") or "").split(";")[0].strip().lower() != "application/json":
            raise _HttpError(415, "unsupported_media_type", "content type must be application/json")
        length_text = self.headers.get("Content-Length")
        if length_text is None or not length_text.isdigit():
            raise _HttpError(411, "length_required", "Content-Length is required")
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            raise _HttpError(413, "payload_too_large", f"a request is at most {MAX_BODY_BYTES} bytes")
        deadline = time.monotonic() + CONNECTION_TIMEOUT_SECONDS
        chunks, received = [], 0
        while received < length:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _HttpError(408, "timeout", "request body not received in time")
            self.connection.settimeout(remaining)
            chunk = self.rfile.read1(length - received)
            if not chunk:
                raise _HttpError(400, "bad_request", "request body shorter than Content-Length")
            chunks.append(chunk)
            received += len(chunk)
        try:
            return json.loads(b"".join(chunks), parse_constant=_no_constant)
        except (ValueError, RecursionError):
            raise _HttpError(400, "bad_json", "the request body is not JSON") from None

    def _serve(self, method: str) -> None:
        if self.refusal is not None:
            self._send(403, _error("forbidden", f"not a station of this fleet: {self.refusal}"))
            return
        if self.path.startswith("/v1/api/"):
            self._serve_api(method)
            return
        if not self.station:
            self._send(401, _error("unauthorised", "a station TLS client certificate is required"))
            return
        try:
            body = self._body() if method == "POST" else None
            status, payload = self.server.service.call(self.station, method, self.path, body)
        except _HttpError as error:
            status, payload = error.status, _error(error.code, error.message)
        except AgentError as error:  # the database went away: the station retries later
            _LOG.error("fleet: %s: %s", self.station, error.message)
            status, payload = 503, {"error": FleetUnavailable(error.message).to_json()}
        except Exception:  # one bad request must never take the service down without an answer
            _LOG.exception("fleet: internal error serving %s", self.station)
            status, payload = 500, _error("internal", "internal error")
        self._send(status, payload)

    def _serve_api(self, method: str) -> None:
        if self.station:
            self._send(403, _error("forbidden", "a station certificate opens the ingest, not the read API"))
            return
        if method != "GET":
            self._send(405, _error("method_not_allowed", "the read API is GET only"))
            return
        try:
            status, content_type, payload = self.server.service.call_api(self.path,
                                                                          self.headers.get("Authorization"))
        except AgentError as error:
            _LOG.error("fleet: api: %s", error.message)
            status, content_type, payload = 503, "application/json", {"error": FleetUnavailable(
                error.message).to_json()}
        except Exception:
            _LOG.exception("fleet: internal error serving the API")
            status, content_type, payload = 500, "application/json", _error("internal", "internal error")
        self._send(status, payload, content_type)

    def do_POST(self) -> None:
        self._serve("POST")

    def do_GET(self) -> None:
        self._serve("GET")

    def _not_allowed(self) -> None:
        self._send(405, _error("method_not_allowed", "only GET and POST are served"))

    do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _not_allowed

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        self._send(code, _error("bad_request", message or "bad request"))

    def log_message(self, format: str, *args: Any) -> None:
        _LOG.info("%s %s %s", self.client_address[0], self.station, format % args)


class _HttpError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class FleetHttpServer(ThreadingHTTPServer):
    """Accepts in one thread; the TLS handshake and the request run in the connection's own thread."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: FleetService, context: ssl.SSLContext,
                 authenticator: StationAuthenticator) -> None:
        self.service = service
        self.context = context
        self.authenticator = authenticator
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._deadlines = threading.local()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def server_close(self) -> None:
        super().server_close()
        self.service.close()

    def authenticate(self, connection: Any) -> str:
        return self.authenticator.station_of(connection.getpeercert(binary_form=True))

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            _LOG.warning("fleet: %s refused: %d connections open", client_address[0], MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def headers_read(self) -> None:
        """This connection's request head arrived: its deadline no longer applies."""
        timer = getattr(self._deadlines, "timer", None)
        if timer is not None:
            timer.cancel()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # the deadline shuts the connection through a duplicate of its descriptor: the TLS wrapper takes the
        # socket over (detaching it) before the handshake, and its own state stays the reading thread's
        handle = socket.socket(request.family, request.type, request.proto, os.dup(request.fileno()))

        def too_slow() -> None:
            _LOG.warning("fleet: %s: no request within %.0f s: closed", client_address[0], HEADER_DEADLINE_SECONDS)
            try:
                handle.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        timer = threading.Timer(HEADER_DEADLINE_SECONDS, too_slow)
        timer.daemon = True
        self._deadlines.timer = timer
        timer.start()
        try:
            request.settimeout(CONNECTION_TIMEOUT_SECONDS)
            try:
                secured = self.context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as error:
                _LOG.warning("fleet: %s: TLS handshake refused: %s", client_address[0], error)
                self.shutdown_request(request)
                return
            try:
                self.finish_request(secured, client_address)
            except Exception:
                self.handle_error(secured, client_address)
            finally:
                self.shutdown_request(secured)
        finally:
            timer.cancel()
            self._deadlines.timer = None
            handle.close()
            self._slots.release()


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """TLS 1.2+ server context: our certificate, client certificates required from the CA, CRL checked."""
    for path in (files.key, files.certificate, files.ca, files.crl):
        if not path.is_file():
            raise FleetConfigError(f"{path}: missing (make the fleet's TLS directory with 'wipe-agent pki "
                                   "issue-tls-server')")
    if files.key.stat().st_mode & 0o077:
        raise FleetConfigError(f"{files.key} is readable by other users; chmod 600 it (and consider it exposed)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(files.certificate, files.key)
        context.load_verify_locations(cafile=str(files.ca))
        context.load_verify_locations(cafile=str(files.crl))
    except (ssl.SSLError, OSError) as error:
        raise FleetConfigError(f"{files.directory}: cannot load the TLS files: {error}") from None
    # a station must present its client certificate for the ingest (checked per request); the read API's
    # clients (the asset-management system) present a bearer token instead
    context.verify_mode = ssl.CERT_OPTIONAL
    context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    return context


def make_server(dsn: str, tls_dir: Path, bundle: Any, host: str, port: int, *,
                accept_demo: bool = False) -> FleetHttpServer:
    """Check the TLS files and the database, bind (not yet serving). ``accept_demo``: the demo fleet takes
    demonstration certificates (``wipe-agent demo --fleet``); a real one never does."""
    files = TlsFiles(tls_dir)
    context = server_context(files)
    FleetDatabase(dsn).open().close()  # the schema is migrated (and the database reachable) before serving
    return FleetHttpServer((host, port), FleetService(dsn, bundle, accept_demo=accept_demo), context,
                           StationAuthenticator(files.ca, files.crl))
