"""Bay wall latency: a bay's state changes in the daemon → the tile changes in a real browser.

A station service behind the real API server (its Unix socket, peer credentials) flips bay-1 between
``present`` and ``sanitised``; the console polls it as in production (every 0.25 s, one poll for all
browsers) and streams tile fragments; headless Chromium records, with a MutationObserver on the wall,
the moment the tile shows the new state. Latency = that moment - the moment of the change (one clock:
the same machine). Bar (issue 15): median ≤ 1 s.

    .venv/bin/python bench/bench_web_wall.py --changes 40 --bays 12
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agent.web.accounts import Accounts
from agent.web.station import POLL_SECONDS, station_console
from tests.integration.web.station_kit import FakeStation, bay, serve_fake, station_config
from tests.web_kit import ConsoleServer, chromium

OBSERVER = """
window.__seen = [];
new MutationObserver(function () {
  var tile = document.getElementById('tile-bay-1');
  var state = tile && tile.getAttribute('data-state');
  var last = window.__seen.length ? window.__seen[window.__seen.length - 1].state : null;
  if (state !== last) { window.__seen.push({state: state, at: Date.now()}); }
}).observe(document.getElementById('wall'), {childList: true, subtree: true, attributes: true});
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=40, help="state changes to time (at least 20)")
    parser.add_argument("--bays", type=int, default=12)
    arguments = parser.parse_args()
    if arguments.changes < 20 or not 1 <= arguments.bays <= 24:
        parser.error("--changes ≥ 20 and --bays 1..24")
    fake = FakeStation([bay(f"bay-{index}", "running" if index % 3 == 0 else "present", progress=0.5)
                        for index in range(1, arguments.bays + 1)])
    api, socket_path = serve_fake(fake)
    console = station_console(station_config(socket_path, arguments.bays),
                              accounts=Accounts(Path(tempfile.mkdtemp()) / "accounts.json"), kiosk=True,
                              secure=False)
    server = ConsoleServer(console.application()).start()
    latencies: list[float] = []
    with chromium() as driver:
        try:
            driver.get(server.base + "/")
            deadline = time.monotonic() + 10
            while driver.execute_script("return document.getElementById('wall').getAttribute('data-version')") is None:
                if time.monotonic() > deadline:
                    raise SystemExit("bench: the wall never went live")
                time.sleep(0.05)
            driver.execute_script(OBSERVER)
            state = "present"
            for _ in range(arguments.changes):
                time.sleep(random.uniform(0.05, 0.4))  # changes land anywhere in the poll cycle
                state = "sanitised" if state == "present" else "present"
                changed_at = time.time() * 1000
                fake.set(0, bay("bay-1", state))
                limit = time.monotonic() + 10
                while True:
                    seen = driver.execute_script("return window.__seen.length ? window.__seen[window.__seen.length-1]"
                                                 " : null")
                    if seen and seen["state"] == state:
                        latencies.append((float(seen["at"]) - changed_at) / 1000)
                        break
                    if time.monotonic() > limit:
                        raise SystemExit(f"bench: the tile never showed {state}")
                    time.sleep(0.01)
            assert driver.execute_script("return performance.getEntriesByType('navigation').length") == 1
        finally:
            server.stop()
            api.close()
    ordered = sorted(latencies)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    median = statistics.median(ordered)
    print(f"bay wall: {len(ordered)} state changes, {arguments.bays} bays, poll every {POLL_SECONDS} s")
    print(f"  change → tile updated in the browser: median {median * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
          f"min {ordered[0] * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms")
    print(f"  daemon status polls: {fake.calls} (one feed for every browser)")
    verdict = "PASS" if median <= 1.0 else "FAIL"
    print(f"  bar: median ≤ 1000 ms: {verdict}")
    return 0 if median <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
