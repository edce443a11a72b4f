"""The API's request reader against hostile clients: bounded bodies, bounded time, bounded connections.

Real Unix sockets and the real server; only the station behind it is the fake of test_api.py.
"""

from __future__ import annotations

import json
import socket
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.api.client import ApiClient
from agent.api.server import MAX_BODY, ApiServer
from tests.unit.daemon.test_api import FakeStation

TIMEOUT = 0.5  # the server's whole-request deadline in these tests (its default is 10 s)


class Served:
    """One server on a private socket, and what it reported as errors."""

    def __init__(self, max_connections: int = 32) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="wa-inputs-api-", dir="/tmp"))
        self.socket_path = self.directory / "api.sock"
        self.station = FakeStation()
        self.errors: list[BaseException] = []
        self.server = ApiServer(self.socket_path, self.station, "wipe-operators-test-nonexistent",
                                on_error=self.errors.append, request_timeout=TIMEOUT,
                                max_connections=max_connections)

    def connect(self) -> socket.socket:
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.settimeout(10)
        connection.connect(str(self.socket_path))
        return connection

    def exchange(self, payload: bytes) -> tuple[int, dict[str, object]]:
        """Send a whole request, read the whole answer: (status, JSON body)."""
        with self.connect() as connection:
            connection.sendall(payload)
            connection.shutdown(socket.SHUT_WR)
            return _answer(connection)

    def close(self) -> None:
        self.server.close()
        self.directory.rmdir()


def _answer(connection: socket.socket) -> tuple[int, dict[str, object]]:
    data = b""
    while chunk := connection.recv(65536):
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def _post(body: bytes, path: str = "/v1/intake", content_length: int | None = None) -> bytes:
    length = len(body) if content_length is None else content_length
    return (f"POST {path} HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
            .encode() + body)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    server = Served()
    try:
        yield server
    finally:
        server.close()


def _code(answer: tuple[int, dict[str, object]]) -> tuple[int, object]:
    status, body = answer
    error = body.get("error")
    return status, error.get("code") if isinstance(error, dict) else None


def test_deeply_nested_json_is_400_not_500(served: Served) -> None:
    for body in (b"[" * 32_000 + b"]" * 32_000, b'{"bay":' * 5_000 + b"1" + b"}" * 5_000, b"[" * 9 + b"]" * 9):
        assert _code(served.exchange(_post(body))) == (400, "json_too_deep")
    assert served.errors == []  # nothing reached the handler-bug path


def test_oversized_body_is_413_before_it_is_read(served: Served) -> None:
    assert _code(served.exchange(_post(b"{}", content_length=MAX_BODY + 1))) == (413, "payload_too_large")


@pytest.mark.parametrize(("body", "code"), [
    (b'{"bay": "\xff\xfe"}', "not_utf8"),
    (b"\xef\xbb\xbf{}", "bad_json"),  # a BOM: not JSON text
    (b"[1, 2]", "bad_json"), (b'"text"', "bad_json"), (b"null", "bad_json"), (b"1e999999", "bad_json"),
    (b"{\"bay\": 1", "bad_json"), (b"NaN", "bad_json"),
])
def test_body_that_is_not_a_json_object_is_400(served: Served, body: bytes, code: str) -> None:
    assert _code(served.exchange(_post(body))) == (400, code)
    assert served.errors == []


@pytest.mark.parametrize(("value", "code"), [
    ("\\ud800", "not_utf8"),  # a lone surrogate: valid JSON, not UTF-8 text (was a 500 from SQLite)
    ("A\\u0000B", "bad_request"), ("\\u001b[2J", "bad_request"), ("\\u202etxt.exe", "bad_request"),
    ("\\u0085", "bad_request"),
])
def test_strings_that_are_not_printable_text_are_400(served: Served, value: str, code: str) -> None:
    body = ('{"bay": "bay-1", "asset_tag": "' + value + '"}').encode()
    calls = len(served.station.calls)
    assert _code(served.exchange(_post(body))) == (400, code)
    assert served.errors == [] and len(served.station.calls) == calls  # refused before the handler


def test_non_ascii_text_is_fine(served: Served) -> None:
    body = '{"bay": "bay-1", "asset_tag": "Ærø-Ünïcode-資産"}'.encode()
    assert served.exchange(_post(body))[0] == 200


def test_body_shorter_than_its_content_length_is_400(served: Served) -> None:
    assert _code(served.exchange(_post(b"{}", content_length=100))) == (400, "bad_request")


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600), st.sampled_from(["/v1/intake", "/v1/bays/bay-1/start", "/v1/jobs/x/cancel"]))
def test_any_body_gets_a_4xx_or_200_never_500(served: Served, body: bytes, path: str) -> None:
    status, answer = served.exchange(_post(body, path))
    assert status in (200, 400, 404, 409, 413, 415), (status, answer)
    assert served.errors == []


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400))
def test_any_request_bytes_get_an_answer_never_500(served: Served, raw: bytes) -> None:
    """Garbage request lines and headers: http.server's own errors come back as JSON 4xx too."""
    with served.connect() as connection:
        connection.sendall(raw)
        connection.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := connection.recv(65536):
            data += chunk
    if data:  # an empty request line is closed without an answer, as http.server does
        status = int(data.split(b" ", 2)[1])
        assert 200 <= status < 500, data[:200]
    assert served.errors == []


def test_a_slow_client_is_cut_off_and_others_are_served(served: Served) -> None:
    """Headers trickled a byte at a time (slowloris): the whole-request deadline closes it."""
    import select

    with served.connect() as slow:
        slow.sendall(b"GET /v1/health HTTP/1.0\r\nX-Slow: ")
        # meanwhile another client is answered
        assert served.exchange(b"GET /v1/health HTTP/1.0\r\n\r\n")[0] == 200
        received = b""
        closed = False
        for _ in range(10_000):  # a byte per round (each round waits TIMEOUT/5) until the server hangs up
            try:
                slow.sendall(b"a")
                readable, _, _ = select.select([slow], [], [], TIMEOUT / 5)
                chunk = slow.recv(65536) if readable else None
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if chunk == b"":
                closed = True
                break
            received += chunk or b""
        assert closed, "the server kept a trickling client past its request deadline"
        assert b" 200 " not in received  # cut off, never served
    assert served.exchange(b"GET /v1/health HTTP/1.0\r\n\r\n")[0] == 200
    assert served.errors == []


def test_a_client_that_never_finishes_its_body_is_closed(served: Served) -> None:
    """The body never completes: the server hangs up (with a 400 if it can still send one)."""
    with served.connect() as silent:
        silent.settimeout(30)
        silent.sendall(b"POST /v1/intake HTTP/1.0\r\nContent-Length: 10\r\n\r\n{")
        data = b""
        while chunk := silent.recv(65536):  # ends only when the server closes the connection
            data += chunk
        assert data == b"" or data.startswith(b"HTTP/1.0 400"), data[:200]
    assert served.errors == []


def test_connections_past_the_cap_get_503_and_the_cap_frees_again() -> None:
    served = Served(max_connections=3)
    try:
        with ExitStack() as stack:
            held = [stack.enter_context(served.connect()) for _ in range(3)]
            for connection in held:  # each holds a slot: request started, never finished
                connection.sendall(b"GET /v1/health HTTP/1.0\r\n")
            # the held connections are accepted in order; the fourth finds no slot
            with served.connect() as refused:  # answered at once, before it sends a byte
                assert _code(_answer(refused)) == (503, "busy")
            for connection in held:
                connection.sendall(b"\r\n")
                assert _answer(connection)[0] == 200
        assert ApiClient(served.socket_path, timeout=5).get("/v1/health")["ok"] is True
    finally:
        served.close()
