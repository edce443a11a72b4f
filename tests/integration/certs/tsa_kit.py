"""Run a real ``wipe-agent tsa serve`` subprocess on a loopback port, for the TSA and LTV tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_SERVING = re.compile(r"serving .* on (http://127\.0\.0\.1:\d+/)")
STARTUP_LINES = 50


@dataclass(frozen=True)
class RunningTsa:
    """A started TSA: its URL and its directory (serial counter, token log)."""

    url: str
    directory: Path


def tsa_command(tsa_dir: Path, listen: str = "127.0.0.1:0") -> list[str]:
    """The command line that starts the TSA server from this checkout's interpreter."""
    return [sys.executable, "-m", "agent.cli.main", "tsa", "serve", "--tsa", str(tsa_dir), "--listen", listen]


@contextmanager
def running_tsa(tsa_dir: Path) -> Iterator[RunningTsa]:
    """Start ``tsa serve`` on an ephemeral loopback port; stop it (SIGTERM) afterwards."""
    process = subprocess.Popen(tsa_command(tsa_dir), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert process.stderr is not None
    url = None
    seen = []
    for _ in range(STARTUP_LINES):
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        match = _SERVING.search(line)
        if match:
            url = match.group(1)
            break
    if url is None:
        process.kill()
        process.wait(timeout=30)
        raise AssertionError(f"tsa serve did not start: {''.join(seen)}")
    try:
        yield RunningTsa(url, tsa_dir)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        process.stderr.close()


def post(url: str, body: bytes, content_type: str = "application/timestamp-query",
         method: str = "POST") -> tuple[int, str, bytes]:
    """One HTTP request; (status, content type, body), never raising on an HTTP error status."""
    request = urllib.request.Request(url, data=body if method == "POST" else None, method=method,
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()
