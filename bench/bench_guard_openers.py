#!/usr/bin/env python3
"""Cost of the guard's scan for processes holding a disk open (every task's fd table, optionally the maps).

Starts ``--extra`` idle processes (half ``sleep``, half Python with pipes, sockets and files open
and four threads each, so the per-task scan has threads to read) so the station has a realistic
few hundred, then times the scan alone, with memory maps, a whole ``Guard.assess`` of a loop device,
and ``Guard.acquire`` (assess, O_EXCL open, assess again with the maps: what a job pays once) (root).
Best and median of ``--repeat`` runs. Not a test.

    sudo .venv/bin/python bench/bench_guard_openers.py [--extra 300] [--repeat 20] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.discovery.guard import Authorisation, Guard
from agent.discovery.openers import scan_openers

IDLE_PYTHON = ("import os, socket, threading, time\n"
               "pipes = [os.pipe() for _ in range(10)]\n"
               "for _ in range(3): threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()\n"
               "sockets = [socket.socket() for _ in range(5)]\n"
               "files = [open('/etc/hostname') for _ in range(5)]\n"
               "time.sleep(3600)\n")


def timings(repeat: int, run: Callable[[], object]) -> dict[str, float]:
    """Best and median wall time in milliseconds."""
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1000)
    return {"best_ms": round(min(samples), 2), "median_ms": round(statistics.median(samples), 2)}


def census() -> tuple[int, int, int]:
    """Processes, threads and open descriptors visible in /proc."""
    processes = threads = descriptors = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            processes += 1
            try:
                threads += len(os.listdir(f"/proc/{entry.name}/task"))
                descriptors += len(os.listdir(f"/proc/{entry.name}/fd"))
            except OSError:
                pass
    return processes, threads, descriptors


def acquire_once(loop: str) -> None:
    """One job's guard: assess, exclusive open, assess again with memory maps."""
    Guard().acquire(loop, Authorisation(loop, "bench")).close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extra", type=int, default=300, help="idle processes to start first")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    children = [subprocess.Popen(["sleep", "3600"]) for _ in range(args.extra // 2)]
    children += [subprocess.Popen([sys.executable, "-c", IDLE_PYTHON]) for _ in range(args.extra - args.extra // 2)]
    loop = None
    backing = tempfile.NamedTemporaryFile(dir="/dev/shm", suffix=".img")
    try:
        time.sleep(1.0)  # let the Python children import and open their descriptors
        processes, threads, descriptors = census()
        backing.truncate(16 << 20)
        backing.flush()
        loop = subprocess.run(["losetup", "--find", "--show", backing.name], check=True, capture_output=True,
                              text=True).stdout.strip()
        targets = {os.stat(loop).st_rdev: os.path.basename(loop)}
        result = {
            "processes": processes,
            "threads": threads,
            "descriptors": descriptors,
            "scan_descriptors": timings(args.repeat, lambda: scan_openers(targets)),
            "scan_with_maps": timings(args.repeat, lambda: scan_openers(targets, mappings=True)),
            "assess": timings(args.repeat, lambda: Guard().assess(loop)),
            "assess_with_maps": timings(args.repeat, lambda: Guard().assess(loop, mappings=True)),
            "acquire": timings(args.repeat, lambda: acquire_once(loop)),
        }
    finally:
        if loop:
            subprocess.run(["losetup", "-d", loop], check=False)
        backing.close()
        for child in children:
            child.kill()
        for child in children:
            child.wait()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:18} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
