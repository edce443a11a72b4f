"""Benchmark the partners' verifier on B-LTA certificates: every check included.

Per certificate: byte-exact structure, our CMS and timestamp checks, signer and TSA profiles,
revocation, pyHanko's second opinion, the record and the page text. The certificates are signed by
a station through the organisation's TSA (in-process, the same token code as ``tsa serve``).
Target (issue 10): verify <= 0.1 s median per certificate. ``--directory N`` also times
``verify DIR`` of N certificates through the CLI (one process, as a partner runs it).

Run: ``.venv/bin/python bench/bench_verify.py [--count 30] [--directory 200]``. Not a test: timings
depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from certs import pki
from certs.issue import issue_certificate
from certs.samples import sample_record
from certs.tsa import TimestampAuthority, issue_token, parse_request
from certs.verify import load_trust_bundle, verify_with_bundle

VERIFY_TARGET = 0.1


class _InProcessTsa:
    """A pyHanko TimeStamper backed by certs.tsa.issue_token (no HTTP: the bench times verification)."""

    def __init__(self, authority: TimestampAuthority) -> None:
        from pyhanko.sign.timestamps import TimeStamper

        class Stamper(TimeStamper):  # type: ignore[misc]
            serial = 0

            async def async_request_tsa_response(self, request: Any) -> Any:
                from asn1crypto import tsp

                Stamper.serial += 1
                token = issue_token(authority, parse_request(request.dump()), serial=Stamper.serial,
                                    now=datetime.now(UTC))
                return tsp.TimeStampResp.load(token.response)

        self.stamper = Stamper()


def main() -> int:
    """Run the benchmark and print the figures; exit 1 if the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=30, help="certificates to time one by one (default 30)")
    parser.add_argument("--directory", type=int, default=0, help="also time 'verify DIR' of this many")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        pki.init_ca("Benchmark Org", root / "ca")
        pki.issue_station(root / "ca", "station-01", root / "state")
        pki.issue_tsa(root / "ca", root / "tsa")
        bundle_path = pki.make_bundle(root / "ca", root / "bundle.pem")
        signer = pki.load_station_signer(root / "state")
        authority = _load_authority(root / "tsa")
        stamper = _InProcessTsa(authority).stamper
        total = max(arguments.count, arguments.directory)
        issue_times: list[float] = []
        paths = []
        for index in range(total):
            record = sample_record(station_id="station-01", demo=False, certificate_id=f"bench-{index:04d}")
            path = root / "out" / f"certificate-{index:04d}.pdf"
            start = time.perf_counter()
            issue_certificate(record, signer, path, timestamper=stamper)
            issue_times.append(time.perf_counter() - start)
            paths.append(path)
        bundle = load_trust_bundle(bundle_path)
        start = time.perf_counter()
        first = verify_with_bundle(paths[0], bundle)
        cold = time.perf_counter() - start
        assert first.valid and first.timestamped, first.reason
        verify_times, cpu_times = [], []
        for path in paths[1:arguments.count + 1] or paths:
            start, cpu = time.perf_counter(), time.process_time()
            report = verify_with_bundle(path, bundle)
            verify_times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - cpu)
            assert report.valid, report.reason
        print(f"python {sys.version.split()[0]}; {len(verify_times)} B-LTA certificates, "
              f"median size {statistics.median(p.stat().st_size for p in paths) / 1024:.0f} KiB")
        print(f"issue (render + sign + timestamp + DSS + doc timestamp): median "
              f"{statistics.median(issue_times) * 1000:.1f} ms")
        print(f"verify, first (cold imports): {cold * 1000:.1f} ms")
        median = statistics.median(verify_times)
        print(f"verify, every check:          median {median * 1000:.1f} ms, "
              f"max {max(verify_times) * 1000:.1f} ms (target {VERIFY_TARGET * 1000:.0f} ms)")
        # CPU time is what the verifier costs; wall time also counts other processes on a busy machine.
        print(f"verify, CPU time:             median {statistics.median(cpu_times) * 1000:.1f} ms")
        if arguments.directory:
            start = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "certs", "verify", str(root / "out"), "--trust",
                                     str(bundle_path)], capture_output=True, text=True, check=False)
            elapsed = time.perf_counter() - start
            last = result.stdout.strip().splitlines()[-1]
            print(f"verify DIR of {arguments.directory} (one CLI process): {elapsed:.1f} s ({last})")
            if result.returncode != 0:
                print(result.stdout[-2000:], result.stderr[-2000:])
                return 1
    return 0 if median <= VERIFY_TARGET else 1


def _load_authority(directory: Path) -> TimestampAuthority:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = serialization.load_pem_private_key((directory / pki.TSA_KEY).read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    certificate = x509.load_pem_x509_certificate((directory / pki.TSA_CERT).read_bytes())
    chain = tuple(x509.load_pem_x509_certificates((directory / pki.TSA_CHAIN).read_bytes()))
    return TimestampAuthority(certificate, chain, key)


if __name__ == "__main__":
    sys.exit(main())
