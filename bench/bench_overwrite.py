#!/usr/bin/env python3
"""Overwrite and read-back engines against fio, dd and nwipe, side by side in one run (root).

A loop device over a file in /dev/shm makes the software, not the medium, the bottleneck.
Every tool runs on the same device, alternating, best of ``--repeat`` runs each; ratios are
wipe-agent's throughput over fio's best. Not a test: numbers go into the issue notes.

    sudo .venv/bin/python bench/bench_overwrite.py [--size-mib 2048] [--repeat 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.discovery.identity import SysfsFacts, identity_from
from agent.methods.base import MethodContext, Target
from agent.methods.overwrite import overwrite
from agent.transport.block import BlockDevice
from agent.verify.expectation import AesCtrStream, Expectation, Zero
from agent.verify.readback import verify


def best_of(repeat: int, run: Callable[[], float]) -> float:
    """Shortest wall time of ``repeat`` runs."""
    return min(run() for _ in range(repeat))


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def fio(device: str, size: int, rw: str, bs: str, engine: str, iodepth: int) -> float:
    """fio's own bandwidth figure (bytes/s) for one sequential pass."""
    out = subprocess.run(
        ["fio", "--name=b", f"--filename={device}", f"--rw={rw}", f"--bs={bs}", "--direct=1",
         f"--ioengine={engine}", f"--iodepth={iodepth}", f"--size={size}", "--output-format=json",
         "--end_fsync=1" if rw == "write" else "--end_fsync=0"],
        check=True, capture_output=True, text=True,
    ).stdout
    job = json.loads(out)["jobs"][0]
    side = job["write" if rw == "write" else "read"]
    return float(side["bw_bytes"])


def agent_write(device: str, expectation: Expectation) -> float:
    with BlockDevice(device, writable=True, exclusive=True) as handle:
        facts = SysfsFacts(name="bench", size_bytes=handle.size, logical_sector=512, physical_sector=512,
                           rotational=False, removable=False, read_only=False)
        context = MethodContext(
            target=Target(identity_from(device, {}, facts)), device=handle,
            progress=lambda *a: None, cancelled=lambda: False, journal=lambda *a: None,
        )
        _, seconds = overwrite(context, expectation)
        return seconds


def agent_verify(device: str, expectation: Expectation, mode: str) -> float:
    with BlockDevice(device, writable=False, exclusive=False) as handle:
        started = time.perf_counter()
        result = verify(handle, expectation, mode)
        elapsed = time.perf_counter() - started
        if not result.passed:
            raise SystemExit(f"bench: {mode} verification unexpectedly failed")
        return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nwipe", action="store_true", help="also time nwipe (slow: ~45 s per 2 GiB)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench: needs root (loop devices)", file=sys.stderr)
        return 2
    size = args.size_mib << 20
    work = Path(tempfile.mkdtemp(prefix="wipe-agent-bench-", dir="/dev/shm"))
    backing = work / "bench.img"
    with open(backing, "wb") as handle:  # every page allocated, as on a real drive
        block = os.urandom(1 << 20)
        for _ in range(args.size_mib):
            handle.write(block)
    device = subprocess.run(["losetup", "--find", "--show", "--direct-io=on", str(backing)],
                            check=True, capture_output=True, text=True).stdout.strip()
    results: dict[str, Any] = {"size_bytes": size, "device": device, "cpus": os.cpu_count()}
    try:
        fio_write: dict[str, float] = {}
        fio_read: dict[str, float] = {}
        for engine, depth in (("psync", 1), ("libaio", 4), ("libaio", 16)):
            for bs in ("1M", "4M", "8M"):
                key = f"{engine}/qd{depth}/{bs}"
                fio_write[key] = max(fio(device, size, "write", bs, engine, depth) for _ in range(args.repeat))
                fio_read[key] = max(fio(device, size, "read", bs, engine, depth) for _ in range(args.repeat))
        best_write_key = max(fio_write, key=lambda k: fio_write[k])
        best_read_key = max(fio_read, key=lambda k: fio_read[k])
        results["fio_write_best"] = {"config": best_write_key, "bytes_per_second": fio_write[best_write_key]}
        results["fio_read_best"] = {"config": best_read_key, "bytes_per_second": fio_read[best_read_key]}
        dd_seconds = best_of(args.repeat, lambda: timed(
            ["dd", "if=/dev/zero", f"of={device}", "bs=8M", f"count={args.size_mib // 8}", "oflag=direct",
             "conv=fsync"]))
        results["dd_zero_bytes_per_second"] = size / dd_seconds
        zero_seconds = best_of(args.repeat, lambda: agent_write(device, Zero()))
        full_seconds = best_of(args.repeat, lambda: agent_verify(device, Zero(), "full"))
        sampling_seconds = best_of(args.repeat, lambda: agent_verify(device, Zero(), "sampling"))
        random_seconds = best_of(args.repeat, lambda: agent_write(device, AesCtrStream.generate()))
        results["agent"] = {
            "zero_bytes_per_second": size / zero_seconds,
            "random_bytes_per_second": size / random_seconds,
            "full_verify_bytes_per_second": size / full_seconds,
            "full_verify_seconds": full_seconds,
            "sampling_verify_seconds": sampling_seconds,
        }
        fw, fr = fio_write[best_write_key], fio_read[best_read_key]
        results["ratios"] = {
            "zero_vs_fio_write": size / zero_seconds / fw,
            "random_vs_fio_write": size / random_seconds / fw,
            "full_verify_vs_fio_read": size / full_seconds / fr,
            "sampling_over_full_time": sampling_seconds / full_seconds,
            "zero_vs_dd": dd_seconds / zero_seconds,
        }
        if args.nwipe and shutil.which("nwipe"):
            # nwipe 0.34: zero method, one round, no verification, no blanking, non-interactive
            nwipe_seconds = timed(["nwipe", "--autonuke", "--nogui", "--method=zero", "--rounds=1",
                                   "--verify=off", "--noblank", "--nowait", device])
            results["nwipe_zero_seconds"] = nwipe_seconds
            results["ratios"]["zero_vs_nwipe"] = nwipe_seconds / zero_seconds
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        gb = 1e9
        print(f"device {device}: {size / 2**30:.1f} GiB loop over /dev/shm, {results['cpus']} CPUs")
        print(f"fio write best {results['fio_write_best']['config']}: "
              f"{results['fio_write_best']['bytes_per_second'] / gb:.2f} GB/s")
        print(f"fio read best  {results['fio_read_best']['config']}: "
              f"{results['fio_read_best']['bytes_per_second'] / gb:.2f} GB/s")
        print(f"dd zero bs=8M direct: {results['dd_zero_bytes_per_second'] / gb:.2f} GB/s")
        agent = results["agent"]
        print(f"wipe-agent zero   {agent['zero_bytes_per_second'] / gb:.2f} GB/s")
        print(f"wipe-agent random {agent['random_bytes_per_second'] / gb:.2f} GB/s")
        print(f"wipe-agent full verify {agent['full_verify_bytes_per_second'] / gb:.2f} GB/s "
              f"({agent['full_verify_seconds']:.3f} s); sampling {agent['sampling_verify_seconds']:.3f} s")
        if "nwipe_zero_seconds" in results:
            print(f"nwipe zero: {results['nwipe_zero_seconds']:.1f} s")
        for name, value in results["ratios"].items():
            print(f"  {name:<26} {value:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
