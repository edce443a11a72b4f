"""Slow clients against the console's own runner (as `web serve` builds it): a connection that sends nothing, or
trickles a request's headers, is closed after the idle deadline; one being answered (a live stream) is not."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.web import serve
from tests.web_kit import station_console_for


class Served:
    def __init__(self, app: web.Application) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner = serve.runner_for(app)
        self.port = 0
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture
def served(tmp_path: Path, accounts_path: Path, station_daemon: Any,
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setattr(serve, "IDLE_SECONDS", 1.0)
    server = Served(station_console_for(tmp_path, accounts_path, kiosk=True).application())
    yield server
    server.stop()


def _closed_within(sock: socket.socket, seconds: float, trickle: bytes = b"") -> bool:
    """Whether the server closes ``sock`` within ``seconds`` (sending ``trickle`` every 0.2 s meanwhile)."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if trickle:
                sock.sendall(trickle)
            if sock.recv(4096) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def test_silent_and_trickling_connections_are_closed(served: Served) -> None:
    silent = socket.create_connection(("127.0.0.1", served.port))
    trickling = socket.create_connection(("127.0.0.1", served.port))
    trickling.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    try:
        assert _closed_within(silent, 10)
        assert _closed_within(trickling, 10, trickle=b"X-Slow: a\r\n")
    finally:
        silent.close()
        trickling.close()


def test_a_live_stream_outlives_the_idle_deadline(served: Served) -> None:
    stream = socket.create_connection(("127.0.0.1", served.port))
    try:
        stream.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        stream.settimeout(5)
        assert stream.recv(4096).startswith(b"HTTP/1.1 200")
        assert not _closed_within(stream, 3)  # three idle deadlines: a request under way is not idle
    finally:
        stream.close()
