"""Benchmark certificate issuing (render + sign + write) and verification.

Targets (issue 4): render + sign <= 0.5 s median per certificate, verify <= 0.1 s median.
Run: ``.venv/bin/python bench/bench_certs.py [--count N]``. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from certs import pki
from certs.issue import issue_certificate
from certs.render import render_pdf
from certs.samples import sample_record
from certs.verify import load_trust_bundle, verify_file, verify_with_bundle

ISSUE_TARGET = 0.5
VERIFY_TARGET = 0.1


def _median_ms(samples: list[float]) -> str:
    return f"median {statistics.median(samples) * 1000:7.1f} ms   p90 {_p90(samples) * 1000:7.1f} ms"


def _p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


def main() -> int:
    """Run the benchmark and print a table; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=30, help="certificates per measurement (default 30)")
    count = parser.parse_args().count
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        pki.init_ca("Benchmark Org", root / "ca")
        pki.issue_station(root / "ca", "station-01", root / "state")
        bundle_path = pki.make_bundle(root / "ca", root / "bundle.pem")
        signer = pki.load_station_signer(root / "state")

        # The first certificate pays one-off costs (font parsing, imports); report it separately.
        record = sample_record(demo=False)
        start = time.perf_counter()
        issue_certificate(record, signer, root / "warm.pdf")
        first_issue = time.perf_counter() - start
        start = time.perf_counter()
        verify_file(root / "warm.pdf", bundle_path)
        first_verify = time.perf_counter() - start

        render_times, issue_times, verify_times, verify_bundle_times = [], [], [], []
        paths = []
        for index in range(count):
            record = sample_record(demo=False, certificate_id=f"bench-{index:04d}")
            start = time.perf_counter()
            render_pdf(record)
            render_times.append(time.perf_counter() - start)
            path = root / f"certificate-{index:04d}.pdf"
            start = time.perf_counter()
            issue_certificate(record, signer, path)
            issue_times.append(time.perf_counter() - start)
            paths.append(path)
        bundle = load_trust_bundle(bundle_path)
        for path in paths:
            start = time.perf_counter()
            report = verify_file(path, bundle_path)
            verify_times.append(time.perf_counter() - start)
            assert report.valid, report.reason
            start = time.perf_counter()
            verify_with_bundle(path, bundle)
            verify_bundle_times.append(time.perf_counter() - start)
        size = statistics.median(path.stat().st_size for path in paths)

    print(f"certificates: {count}, median size {size / 1024:.0f} KiB, python {sys.version.split()[0]}")
    print(f"first issue (cold)            {first_issue * 1000:7.1f} ms")
    print(f"first verify (cold)           {first_verify * 1000:7.1f} ms")
    print(f"render only                   {_median_ms(render_times)}")
    print(f"render + sign + write         {_median_ms(issue_times)}   target <= {ISSUE_TARGET * 1000:.0f} ms")
    verify_target = f"target <= {VERIFY_TARGET * 1000:.0f} ms"
    print(f"verify (incl. bundle load)    {_median_ms(verify_times)}   {verify_target}")
    print(f"verify (bundle preloaded)     {_median_ms(verify_bundle_times)}")
    ok = statistics.median(issue_times) <= ISSUE_TARGET and statistics.median(verify_times) <= VERIFY_TARGET
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
