"""Starting job workers: through the fork server (fast, shared pages) or as fresh interpreters.

Both give the station a :class:`WorkerHandle`: a pid to signal, the worker's stdout to read JSON
lines from, and ``wait()`` for its exit status.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
from typing import IO, Any, Protocol

from agent.daemon.forkserver import CONTROL_FD_ENV

START_TIMEOUT = 10.0


class WorkerHandle(Protocol):
    """A running job worker."""

    pid: int
    stdout: IO[bytes] | None

    def send_signal(self, number: int) -> None:
        """Signal the worker."""
        ...

    def wait(self) -> int:
        """Block until it exits; its exit status."""
        ...


class Launcher(Protocol):
    """Starts workers."""

    def launch(self, request: dict[str, Any]) -> WorkerHandle:
        """Start a worker for ``request``."""
        ...

    def close(self) -> None:
        """Stop the launcher (running workers are the station's to stop first)."""
        ...


class SubprocessLauncher:
    """A fresh interpreter per job (used when the fork server is unavailable, and by unit tests)."""

    def __init__(self, command: list[str] | None = None) -> None:
        self.command = command or [sys.executable, "-m", "agent.daemon.worker"]

    def launch(self, request: dict[str, Any]) -> WorkerHandle:
        """``Popen`` the worker and hand it the request on stdin."""
        process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        assert process.stdin is not None
        try:
            process.stdin.write(json.dumps({**request, "parent_pid": os.getpid()}).encode() + b"\n")
            process.stdin.close()
        except BrokenPipeError:
            pass
        return process

    def close(self) -> None:
        """Nothing to stop."""


class _Forked:
    """A worker forked by the server: signalled by pid, reaped by the server."""

    def __init__(self, pid: int, stdout: IO[bytes], server: ForkServerLauncher) -> None:
        self.pid = pid
        self.stdout: IO[bytes] | None = stdout
        self._server = server

    def send_signal(self, number: int) -> None:
        """Signal the worker unless it has already been reaped (its pid could be reused)."""
        if not self._server.exited(self.pid):
            os.kill(self.pid, number)

    def wait(self) -> int:
        """The exit status the server reported."""
        return self._server.wait_exit(self.pid)


class ForkServerLauncher:
    """Talks to ``agent.daemon.forkserver`` over a SOCK_SEQPACKET socket pair."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            environment = {**os.environ, CONTROL_FD_ENV: str(theirs.fileno()),
                           "WIPE_AGENT_PARENT_PID": str(os.getpid())}
            self.process = subprocess.Popen([sys.executable, "-m", "agent.daemon.forkserver"],
                                            pass_fds=[theirs.fileno()], env=environment, stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self._socket = ours
        self._lock = threading.Lock()  # one launch at a time: replies come back in order
        self._started: queue.Queue[int] = queue.Queue()
        self._exits: dict[int, int] = {}
        self._exit_changed = threading.Condition()
        self._closed = False
        self._reader = threading.Thread(target=self._read, name="forkserver", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                message = self._socket.recv(65536)
            except OSError:
                message = b""
            if not message:
                with self._exit_changed:
                    self._closed = True
                    self._exit_changed.notify_all()
                self._started.put(-1)
                return
            data = json.loads(message)
            if "pid" in data:
                self._started.put(int(data["pid"]))
            elif "exit" in data:
                with self._exit_changed:
                    self._exits[int(data["exit"])] = int(data["code"])
                    self._exit_changed.notify_all()

    def launch(self, request: dict[str, Any]) -> WorkerHandle:
        """Ask the server to fork a worker; its stdout comes back through a pipe we create."""
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            with self._lock:
                socket.send_fds(self._socket, [json.dumps(request).encode()], [write_end])
                os.close(write_end)
                write_end = -1
                try:
                    pid = self._started.get(timeout=START_TIMEOUT)
                except queue.Empty:
                    raise OSError("fork server did not answer") from None
            if pid < 0:
                raise OSError("fork server is gone")
        except BaseException:
            if write_end >= 0:
                os.close(write_end)
            os.close(read_end)
            raise
        return _Forked(pid, os.fdopen(read_end, "rb"), self)

    def exited(self, pid: int) -> bool:
        """True once the server has reaped ``pid``."""
        with self._exit_changed:
            return pid in self._exits

    def wait_exit(self, pid: int) -> int:
        """Block until the server reports ``pid``'s exit (or is gone: then -9)."""
        with self._exit_changed:
            while pid not in self._exits:
                if self._closed:
                    return -9
                self._exit_changed.wait(1.0)
            return self._exits.pop(pid)

    @property
    def alive(self) -> bool:
        """False when the server has died (the station falls back to fresh interpreters)."""
        return self.process.poll() is None and not self._closed

    def close(self) -> None:
        """Close the socket: the server exits; reap it."""
        try:
            self._socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._socket.close()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._reader.join(2)
