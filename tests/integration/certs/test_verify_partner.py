"""A partner's view: documents timestamped by the organisation's real TSA, checked by the minimal install.

The TSA is a real ``wipe-agent tsa serve`` on loopback (EC key, the certificate ``pki issue-tsa``
makes); the station signs B-LTA over HTTP. The partner install test builds a fresh venv holding
only ``requirements-verify.txt`` (from the package index, as a partner would) and a copy of the
``certs/`` folder, and runs ``python -m certs verify`` there: no station code, nothing Linux-specific.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from certs import pki
from certs.issue import issue_certificate_details
from certs.ltv import LtvLevel
from certs.samples import sample_record
from certs.verify import DocumentKind, TimestampSource, load_trust_bundle, verify_with_bundle
from tests.integration.certs.tsa_kit import RunningTsa, running_tsa

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the TSA server is POSIX-only")

REPOSITORY = Path(__file__).resolve().parents[3]
YEAR = timedelta(days=365)


@pytest.fixture(scope="module")
def organisation(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA with a station and a TSA; the bundle carries the TSA certificate."""
    root = tmp_path_factory.mktemp("partner-org")
    pki.init_ca("Example Police", root / "ca")
    pki.issue_station(root / "ca", "station-01", root / "station")
    pki.issue_tsa(root / "ca", root / "tsa")
    pki.make_bundle(root / "ca", root / "bundle.pem")
    return root


@pytest.fixture(scope="module")
def server(organisation: Path) -> Iterator[RunningTsa]:
    with running_tsa(organisation / "tsa") as running:
        yield running


@pytest.fixture(scope="module")
def certificate(organisation: Path, server: RunningTsa) -> Path:
    """A certificate the station signed B-LTA through the TSA over HTTP."""
    signer = pki.load_station_signer(organisation / "station")
    issued = issue_certificate_details(sample_record(station_id="station-01", demo=False), signer,
                                       organisation / "certificate.pdf", tsa_url=server.url)
    assert issued.level is LtvLevel.B_LTA, issued.problems
    return issued.path


@pytest.fixture(scope="module")
def forged(certificate: Path) -> Path:
    """The certificate with one byte flipped inside a stream of the signed revision."""
    data = bytearray(certificate.read_bytes())
    data[data.index(b"stream") + 20] ^= 0x01
    path = certificate.with_name("forged.pdf")
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("years", [0, 3, 7])
def test_real_tsa_certificate_verifies_for_years(organisation: Path, certificate: Path, forged: Path,
                                                 years: int) -> None:
    bundle = load_trust_bundle(organisation / "bundle.pem")
    assert bundle.tsa_certificates, "the bundle carries the organisation's TSA certificate"
    now = pki.utc_now() + years * YEAR
    report = verify_with_bundle(certificate, bundle, now=now, expect=DocumentKind.CERTIFICATE)
    assert (report.valid, report.code) == (True, "valid"), report.reason
    assert report.timestamp_source is TimestampSource.SIGNATURE_TIMESTAMP
    assert ("since expired" in report.status) == (years > 0)
    report = verify_with_bundle(forged, bundle, now=now)
    assert (report.valid, report.code) == (False, "modified"), report.reason


def _partner_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only what verification needs, and a copy of certs/ beside it."""
    root = tmp_path_factory.mktemp("partner")
    venv.EnvBuilder(with_pip=True, clear=True).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r",
         str(REPOSITORY / "requirements-verify.txt")], capture_output=True, text=True, timeout=300, check=False)
    assert install.returncode == 0, install.stdout + install.stderr
    shutil.copytree(REPOSITORY / "certs", root / "app" / "certs", ignore=shutil.ignore_patterns("__pycache__"))
    return python


@pytest.mark.partner
def test_partner_install_verifies_genuine_and_rejects_forged(
    organisation: Path, certificate: Path, forged: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    python = _partner_python(tmp_path_factory)
    app = python.parents[2] / "app"
    environment = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}

    def run(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(python), *arguments], capture_output=True, text=True, timeout=120, check=False,
                              cwd=app, env=environment)

    alone = run("-c", "import importlib.util as u; print(u.find_spec('agent'), u.find_spec('pyudev'),"
                      " u.find_spec('psutil'), u.find_spec('click'))")
    assert alone.stdout.split() == ["None"] * 4, "the partner venv holds no station code or its dependencies"
    result = run("-m", "certs", "verify", str(certificate), "--trust", str(organisation / "bundle.pem"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith(f"VALID    {certificate}: ") and "valid when signed" in result.stdout
    result = run("-m", "certs", "verify", str(forged), "--trust", str(organisation / "bundle.pem"), "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    (item,) = json.loads(result.stdout)["results"]
    assert (item["valid"], item["code"]) == (False, "modified")
    result = run("-m", "certs", "verify", "missing.pdf", "--trust", str(organisation / "bundle.pem"))
    assert (result.returncode, result.stdout, result.stderr) == (2, "", "error: no such file or folder: missing.pdf\n")
    modules = run("-c", "import sys, certs.verify, certs.cli; "
                        "print(sorted(name for name in sys.modules if name.split('.')[0] in {'agent', 'pyudev'}))")
    assert modules.stdout.strip() == "[]", modules.stdout + modules.stderr


def test_python_m_certs_in_this_checkout(organisation: Path, certificate: Path) -> None:
    """The same entry point without a fresh venv (quick, always runs)."""
    result = subprocess.run([sys.executable, "-m", "certs", "verify", str(certificate), "--trust",
                             str(organisation / "bundle.pem"), "--expect", "certificate"],
                            capture_output=True, text=True, timeout=120, check=False, cwd=REPOSITORY)
    assert result.returncode == 0, result.stdout + result.stderr
    result = subprocess.run([sys.executable, "-m", "certs", "verify", str(certificate), "--trust",
                             str(organisation / "bundle.pem"), "--expect", "manifest"],
                            capture_output=True, text=True, timeout=120, check=False, cwd=REPOSITORY)
    assert result.returncode == 1 and "[wrong_kind]" in result.stdout, result.stdout + result.stderr
    for arguments in (["verify", "--bogus"], []):
        result = subprocess.run([sys.executable, "-m", "certs", *arguments], capture_output=True, text=True,
                                timeout=120, check=False, cwd=REPOSITORY)
        assert result.returncode == 2 and result.stdout == "", result.stdout + result.stderr
        (line,) = result.stderr.splitlines()
        assert line.startswith("error: ") and line.endswith("(see 'python -m certs --help')"), line
