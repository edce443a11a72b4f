"""CLI start time against a bare ``python -c 'import click'`` from the same venv (issue 13's bar: each of
``--version``, ``status``, ``verify --help`` at most 2.5x). Not a test: timings depend on the machine.

    .venv/bin/python bench/cli_start.py [--runs 20] [--venv .venv] [--checkout DIR]

``--checkout DIR`` runs ``python -m agent.cli.main`` in DIR instead of the installed script: another
checkout's code from the same venv (e.g. main before a change, beside this branch).

The runs are interleaved (baseline, each command, baseline, ...) so that load from other processes hits
all of them alike; the minimum and the median of each are reported, and the ratios of both.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time
from pathlib import Path

COMMANDS = (("--version",), ("status",), ("verify", "--help"))


def _once(argv: list[str], cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, cwd=cwd)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--venv", type=Path, default=Path(".venv"))
    parser.add_argument("--checkout", type=Path, default=None)
    options = parser.parse_args()
    python = str((options.venv / "bin" / "python").absolute())
    command = [python, "-m", "agent.cli.main"] if options.checkout else [str(options.venv / "bin" / "wipe-agent")]
    cases = {"import click": [python, "-c", "import click"],
             **{" ".join(arguments): [*command, *arguments] for arguments in COMMANDS}}
    for argv in cases.values():
        _once(argv, options.checkout)  # bytecode caches warm
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(options.runs):
        for name, argv in cases.items():
            times[name].append(_once(argv, options.checkout))
    base_min, base_median = min(times["import click"]), statistics.median(times["import click"])
    for name, samples in times.items():
        low, middle = min(samples), statistics.median(samples)
        print(f"{name:<14} min {low * 1000:6.1f} ms ({low / base_min:4.2f}x)   "
              f"median {middle * 1000:6.1f} ms ({middle / base_median:4.2f}x)")


if __name__ == "__main__":
    main()
