"""A station's client of the fleet service: mutual TLS with the station's TLS client certificate.

The station's ``state_dir/pki`` holds ``tls-client.key`` (0600), ``tls-client.crt`` and ``ca.crt`` from
``wipe-agent pki issue-tls-client``; the fleet's server certificate must be issued by that CA for the
host name in the URL. Every failure is :class:`~agent.fleet.errors.FleetUnavailable` in one line: the
station's outbox keeps what was not acknowledged and tries again later.
"""

from __future__ import annotations

import http.client
import json
import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agent.fleet.errors import FleetConfigError, FleetUnavailable
from certs import pki

TIMEOUT_SECONDS = 60.0


class FleetClient:
    """``url``: ``https://fleet.example:8443``; ``pki_dir``: the station's ``state_dir/pki``."""

    def __init__(self, url: str, pki_dir: Path) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise FleetConfigError(f"fleet URL must be https://HOST[:PORT], not {url!r}")
        self.host, self.port = parts.hostname, parts.port or 8443
        key, certificate, ca = pki_dir / pki.TLS_CLIENT_KEY, pki_dir / pki.TLS_CLIENT_CERT, pki_dir / pki.TLS_CA
        for path in (key, certificate, ca):
            if not path.is_file():
                raise FleetConfigError(f"{path}: missing (run 'wipe-agent pki issue-tls-client' for this station)")
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(certificate, key)
        except (ssl.SSLError, OSError) as error:
            raise FleetConfigError(f"{pki_dir}: cannot load the station's TLS key: {error}") from None
        self.context = context

    def _call(self, method: str, path: str, payload: Any = None) -> dict[str, Any]:
        body = None if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        connection = http.client.HTTPSConnection(self.host, self.port, timeout=TIMEOUT_SECONDS, context=self.context)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise FleetUnavailable(f"fleet {self.host}:{self.port}: {error}") from None
        finally:
            connection.close()
        try:
            answer = json.loads(data)
        except ValueError:
            raise FleetUnavailable(f"fleet {self.host}:{self.port} answered {response.status} without JSON") from None
        if response.status != 200:
            problem = answer.get("error", {}) if isinstance(answer, dict) else {}
            raise FleetUnavailable(f"fleet refused ({response.status} {problem.get('code')}): "
                                   f"{problem.get('message')}")
        if not isinstance(answer, dict):
            raise FleetUnavailable(f"fleet {self.host}:{self.port} answered with something other than an object")
        return answer

    def push(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Send one batch; the ingest result (accepted, resent, refused, next_seq)."""
        return self._call("POST", "/v1/ingest", batch)

    def next_seq(self) -> int:
        """Where this station's stream resumes on the fleet."""
        answer = self._call("GET", "/v1/ingest/next")
        value = answer.get("next_seq")
        if type(value) is not int or value < 1:
            raise FleetUnavailable("fleet answered without a next_seq")
        return value
