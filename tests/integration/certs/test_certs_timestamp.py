"""RFC 3161 signature timestamps, issued through a real HTTP round trip to a local TSA.

The TSA is pyHanko's test time stamper behind http.server, certified by the trusted or a foreign CA.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko_certvalidator.registry import SimpleCertificateStore

from certs import pki
from certs.verify import verify_file
from tests.unit.certs.certs_test_kit import EssV2TimeStamper, PkiWorld, record_for, run_tool


def _tsa_certificate(ca_dir: Path) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A time-stamping certificate issued by the CA in ``ca_dir``."""
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), password=None)
    ca_certificate = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # pyHanko's test TSA is RSA-only
    now = pki.utc_now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test TSA")]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return certificate, key


@pytest.fixture(params=["trusted", "foreign"])
def tsa(world: PkiWorld, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(kind, URL) of a local HTTP TSA certified by the trusted CA or by a foreign one."""
    ca_dir = world.ca_dir if request.param == "trusted" else world.root / "other-ca"
    certificate, key = _tsa_certificate(ca_dir)
    der = serialization.Encoding.DER
    ca = asn1_x509.Certificate.load(
        x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes()).public_bytes(der))
    stamper = EssV2TimeStamper(
        tsa_cert=asn1_x509.Certificate.load(certificate.public_bytes(der)),
        tsa_key=asn1_keys.PrivateKeyInfo.load(key.private_bytes(
            der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
        certs_to_embed=SimpleCertificateStore.from_certs([ca]),
    )

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            request = tsp.TimeStampReq.load(self.rfile.read(int(self.headers["Content-Length"])))
            body = stamper.request_tsa_response(request).dump()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *arguments: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield request.param, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_certificate_with_tsa_timestamp(world: PkiWorld, tsa: tuple[str, str], tmp_path: Path) -> None:
    from certs.issue import _sign_once, issue_certificate_details
    from certs.ltv import http_timestamper
    from certs.render import render_pdf

    kind, url = tsa
    issued = issue_certificate_details(record_for(world.station), world.station, tmp_path / "stamped.pdf",
                                       tsa_url=url)
    path = issued.path
    pdfsig = run_tool("pdfsig", path).stdout
    assert "Signature is Valid" in pdfsig
    report = verify_file(path, world.bundle)
    if kind == "trusted":
        assert report.valid, report.reason
        assert report.timestamped and report.signed_at is not None
        assert abs((report.signed_at - pki.utc_now()).total_seconds()) < 120
    else:
        # Since issue 10 the station itself refuses a timestamp from a TSA its CA did not certify:
        # it signs without one and says why (before, it issued a document partners would reject).
        assert not issued.timestamped and any("not certified by the station's CA" in item for item in issued.problems)
        assert report.valid and not report.timestamped, report.reason
        # The verifier still rejects such a timestamp when a file carries one.
        record = record_for(world.station)
        forged = tmp_path / "foreign-stamped.pdf"
        forged.write_bytes(_sign_once(render_pdf(record), record, world.station, http_timestamper(url)))
        assert (verify_file(forged, world.bundle).valid, verify_file(forged, world.bundle).code) == (
            False, "untrusted_timestamp")


def test_unreachable_tsa_signs_anyway_and_says_so(world: PkiWorld, tmp_path: Path) -> None:
    # Issue 10 changed this: a station that cannot reach its TSA still issues the certificate
    # (B-B plus DSS), flagged for 'certificates extend'; it used to refuse.
    from certs.issue import issue_certificate_details
    from certs.ltv import LtvLevel

    issued = issue_certificate_details(record_for(world.station), world.station, tmp_path / "x.pdf",
                                       tsa_url="http://127.0.0.1:9/")
    assert (issued.level, issued.timestamped, issued.needs_extension) == (LtvLevel.B_B, False, True)
    assert any("unreachable" in problem for problem in issued.problems), issued.problems
    report = verify_file(issued.path, world.bundle)
    assert report.valid and not report.timestamped, report.reason
