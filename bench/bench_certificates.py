"""Benchmark long-term signing (issue 10): render + sign + signature timestamp + DSS + document
timestamp per certificate, against a real ``wipe-agent tsa serve`` on loopback; verification per
certificate; and ``wipe-agent verify DIR`` of a folder of certificates (wall time, subprocess).

Targets: issue (B-LTA) <= 0.5 s median per certificate; verify <= 0.1 s median per certificate.
Run: ``.venv/bin/python bench/bench_certificates.py [--count 30] [--folder 200]``. Not a test:
timings depend on the machine; figures go in the report, never in tests.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from certs import pki  # noqa: E402
from certs.issue import issue_certificate_details  # noqa: E402
from certs.ltv import LtvLevel  # noqa: E402
from certs.render import render_pdf  # noqa: E402
from certs.samples import sample_record  # noqa: E402
from certs.verify import load_trust_bundle, verify_with_bundle  # noqa: E402
from tests.integration.certs.tsa_kit import running_tsa  # noqa: E402

ISSUE_TARGET = 0.5
VERIFY_TARGET = 0.1


def _stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"median {statistics.median(samples) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms"


def main() -> int:
    """Run the benchmark and print a table; exit 1 if a target is missed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=30, help="certificates timed one by one (default 30)")
    parser.add_argument("--folder", type=int, default=200, help="certificates in the 'verify DIR' run (default 200)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        pki.init_ca("Benchmark Org", root / "ca")
        pki.issue_station(root / "ca", "station-01", root / "state")
        pki.issue_tsa(root / "ca", root / "tsa")
        bundle_path = pki.make_bundle(root / "ca", root / "bundle.pem")
        signer = pki.load_station_signer(root / "state")
        with running_tsa(root / "tsa") as tsa:
            warm = issue_certificate_details(sample_record(demo=False), signer, root / "warm.pdf", tsa_url=tsa.url)
            assert warm.level is LtvLevel.B_LTA, warm.problems
            render_times, issue_times = [], []
            folder = root / "certificates"
            for index in range(max(arguments.count, 1)):
                record = sample_record(demo=False, certificate_id=f"bench-{index:04d}")
                start = time.perf_counter()
                render_pdf(record)
                render_times.append(time.perf_counter() - start)
                start = time.perf_counter()
                issued = issue_certificate_details(record, signer, folder / f"certificate-{index:04d}.pdf",
                                                   tsa_url=tsa.url)
                issue_times.append(time.perf_counter() - start)
                assert issued.level is LtvLevel.B_LTA, issued.problems
        paths = sorted(folder.glob("*.pdf"))
        bundle = load_trust_bundle(bundle_path)
        verify_times = []
        for path in paths:
            start = time.perf_counter()
            report = verify_with_bundle(path, bundle)
            verify_times.append(time.perf_counter() - start)
            assert report.valid, report.reason
        # Fill the folder to --folder certificates with copies (verification cost does not depend
        # on the content, and issuing 200 would time the TSA again).
        for index in range(len(paths), arguments.folder):
            shutil.copyfile(paths[index % len(paths)], folder / f"copy-{index:04d}.pdf")
        total = len(list(folder.glob("*.pdf")))
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "agent.cli.main", "verify", str(folder), "--trust",
                                 str(bundle_path)], capture_output=True, text=True, check=False, cwd=REPOSITORY)
        folder_seconds = time.perf_counter() - start
        size = statistics.median(path.stat().st_size for path in paths)

    print(f"certificates: {len(paths)} timed, median size {size / 1024:.0f} KiB, python {sys.version.split()[0]}")
    print(f"render only                                {_stats(render_times)}")
    issue_target, verify_target = f"target <= {ISSUE_TARGET * 1000:.0f} ms", f"target <= {VERIFY_TARGET * 1000:.0f} ms"
    print(f"render + sign + TS + DSS + doc TS (B-LTA)  {_stats(issue_times)}   {issue_target}")
    print(f"verify (bundle preloaded)                  {_stats(verify_times)}   {verify_target}")
    print(f"wipe-agent verify DIR ({total} certificates)   {folder_seconds:7.1f} s wall "
          f"(exit {result.returncode}; {result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ''})")
    ok = (statistics.median(issue_times) <= ISSUE_TARGET and statistics.median(verify_times) <= VERIFY_TARGET
          and result.returncode == 0)
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
