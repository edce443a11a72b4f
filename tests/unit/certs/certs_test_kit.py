"""Shared test kit for the certs tests: one PKI world per session, certificate issuing, poppler helpers.

Loaded by both tests/unit/certs/conftest.py and tests/integration/certs/conftest.py under the
module name ``certs_test_kit`` (these test folders are not packages, so it is loaded by path).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from pyhanko.sign.timestamps import DummyTimeStamper

from certs import pki
from certs.issue import issue_certificate
from certs.pki import StationSigner
from certs.record import SanitisationRecord
from certs.samples import sample_record


@dataclass(frozen=True)
class PkiWorld:
    """Everything the tests need: a trusted CA with good, revoked and expired stations, and an impostor."""

    root: Path
    ca_dir: Path
    bundle: Path
    station: StationSigner
    station_state: Path
    revoked: StationSigner
    expired: StationSigner
    expired_clock: Callable[[], datetime]
    other_ca_station: StationSigner
    """station-01 of a different CA."""
    impostor_station: StationSigner
    """station-01 of a CA with the same name as the trusted one but another key."""

    def issue(
        self, record: SanitisationRecord, signer: StationSigner | None = None, *, name: str = "cert.pdf",
        directory: Path | None = None,
    ) -> Path:
        """Issue ``record`` with ``signer`` (default: the good station) into a file; return its path."""
        signer = signer or self.station
        clock = self.expired_clock if signer is self.expired else pki.utc_now
        return issue_certificate(record, signer, (directory or self.root / "out") / name, clock=clock)


def build_world(root: Path) -> PkiWorld:
    """Create the CAs and stations (EC P-256, so this takes milliseconds)."""
    now = pki.utc_now()
    ca_dir = root / "ca"
    pki.init_ca("Example Police", ca_dir)
    good_state = root / "station-01"
    pki.issue_station(ca_dir, "station-01", good_state)
    pki.issue_station(ca_dir, "station-02", root / "station-02")
    long_ago = now - timedelta(days=3 * 365)
    pki.issue_station(ca_dir, "station-03", root / "station-03", clock=lambda: long_ago, valid_days=365)
    pki.revoke(ca_dir, station_id="station-02")
    bundle = pki.make_bundle(ca_dir, root / "bundle.pem")

    other_dir = root / "other-ca"
    pki.init_ca("Someone Else", other_dir)
    pki.issue_station(other_dir, "station-01", root / "other-station")
    impostor_dir = root / "impostor-ca"
    pki.init_ca("Example Police", impostor_dir)
    pki.issue_station(impostor_dir, "station-01", root / "impostor-station")

    return PkiWorld(
        root=root,
        ca_dir=ca_dir,
        bundle=bundle,
        station=pki.load_station_signer(good_state),
        station_state=good_state,
        revoked=pki.load_station_signer(root / "station-02"),
        expired=pki.load_station_signer(root / "station-03"),
        expired_clock=lambda: long_ago + timedelta(days=30),
        other_ca_station=pki.load_station_signer(root / "other-station"),
        impostor_station=pki.load_station_signer(root / "impostor-station"),
    )


def record_for(signer: StationSigner, **overrides: object) -> SanitisationRecord:
    """The sample record, issued by ``signer``'s station."""
    return sample_record(station_id=signer.station_id, **overrides)  # type: ignore[arg-type]


def require_tool(name: str) -> str:
    """Path of a poppler tool, or skip the test with a reason (CI installs poppler-utils)."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} not installed (apt-get install poppler-utils)")
    return path


def run_tool(*arguments: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a poppler tool and return its result (text), never raising on a non-zero exit."""
    executable = require_tool(str(arguments[0]))
    return subprocess.run([executable, *map(str, arguments[1:])], capture_output=True, text=True, timeout=60,
                          check=False)


def pdf_text(path: Path, page: int | None = None) -> str:
    """Text of the PDF (or of one page) as poppler's pdftotext extracts it."""
    pages = ["-f", str(page), "-l", str(page)] if page else []
    result = run_tool("pdftotext", "-layout", *pages, path, "-")
    assert result.returncode == 0, result.stderr
    return result.stdout


def utc(year: int, month: int, day: int) -> datetime:
    """A UTC datetime at midnight."""
    return datetime(year, month, day, tzinfo=UTC)


class EssV2TimeStamper(DummyTimeStamper):  # type: ignore[misc]
    """pyHanko's in-process test TSA, binding its certificate with ESS signingCertificateV2 (SHA-256).

    pyHanko's own test stamper writes the older signingCertificate (SHA-1, RFC 2634), which the
    verifier refuses as ``weak_algorithm``; the organisation's TSA (:mod:`certs.tsa`) and current
    ones (RFC 5816) write V2. Only the signed attributes differ from pyHanko's stamper.
    """

    def _sign_tst_info(self, tst_info_data: bytes, md_algorithm: str, dt: datetime) -> tuple[bytes, Any]:
        from asn1crypto import cms, core
        from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
        from pyhanko.sign.general import as_signing_certificate_v2, get_pyca_cryptography_hash

        digest = hashes.Hash(get_pyca_cryptography_hash(md_algorithm))
        digest.update(tst_info_data)
        signed_attributes = cms.CMSAttributes([
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
            cms.CMSAttribute({"type": "signing_time", "values": [cms.Time({"utc_time": core.UTCTime(dt)})]}),
            cms.CMSAttribute({"type": "signing_certificate_v2",
                              "values": [as_signing_certificate_v2(self.tsa_cert)]}),
            cms.CMSAttribute({"type": "message_digest", "values": [digest.finalize()]}),
        ])
        key = serialization.load_der_private_key(self.tsa_key.dump(), password=None)
        assert isinstance(key, RSAPrivateKey), "the test stamper signs with RSA"
        signature = key.sign(signed_attributes.dump(), PKCS1v15(), get_pyca_cryptography_hash(md_algorithm))
        return signature, signed_attributes
