"""Starting job workers: through the fork server (fast, shared pages) or as fresh interpreters.

Both give the station a :class:`WorkerHandle`: a pid to signal, the worker's stdout to read JSON
lines from, and ``wait()`` for its exit status.
"""

from __future__ import annotations

import errno
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any, Protocol

from agent.daemon.forkserver import CONTROL_FD_ENV

START_TIMEOUT = 10.0  # for the fork server's answer to one launch
# for the server's own start (imports, preload) before its first answer: seconds on a slow or busy
# machine, and no sign of a hang (a launch timed out against it lost the job of a drive in its bay)
STARTUP_TIMEOUT = 60.0


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


class ProcessSignaller:
    """Signals one process through a pidfd, so a signal can never reach a stranger that reused its pid.

    A pid alone is unsafe once the process has been reaped (by us, or by the fork server): the
    kernel may hand the number to a new process. A pidfd opened while the process was known to
    be ours keeps naming that process; after it exits a signal fails with ``ProcessLookupError``.
    ``close()`` and ``send()`` share a lock, so a closed descriptor number (which the kernel may
    reuse for another worker's pidfd) is never signalled. Without pidfd support (kernel < 5.3)
    ``fallback`` decides whether the pid may still be signalled.
    """

    def __init__(self, pid: int, fallback: Callable[[], bool] = lambda: True, pidfd: int | None = None,
                 open_pidfd: bool = True) -> None:
        self.pid = pid
        self._fallback = fallback
        self._lock = threading.Lock()
        self._fd: int | None = pidfd
        self._gone = False
        if pidfd is None and open_pidfd:
            try:
                self._fd = os.pidfd_open(pid)
            except ProcessLookupError:
                self._gone = True  # already exited and reaped
            except AttributeError:
                self._fd = None  # no pidfd in this Python: fall back to the pid
            except OSError as exc:
                if exc.errno != errno.ENOSYS:
                    raise  # EMFILE and the like: the launch fails rather than signal unsafely
                self._fd = None  # kernel < 5.3

    def send(self, number: int) -> None:
        """Signal the process; ``ProcessLookupError`` once it is gone."""
        with self._lock:
            if self._gone:
                raise ProcessLookupError(self.pid)
            if self._fd is not None:
                signal.pidfd_send_signal(self._fd, number)
            elif self._fallback():
                os.kill(self.pid, number)
            else:
                raise ProcessLookupError(self.pid)

    def close(self) -> None:
        """The process was reaped: release the pidfd; later signals fail."""
        with self._lock:
            self._gone = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


class _Spawned:
    """A worker started with ``Popen``: our own child, signalled through a pidfd.

    (The fallback without pidfds reads ``returncode``, which ``Popen.wait`` sets just after the
    reap: a signal sent in that instant could reach a reused pid. Only kernels before 5.3.)
    """

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self._process = process
        self.pid = process.pid
        self.stdout: IO[bytes] | None = process.stdout
        self._signaller = ProcessSignaller(process.pid, lambda: process.returncode is None)

    def send_signal(self, number: int) -> None:
        """Signal the worker (never a process that reused its pid)."""
        self._signaller.send(number)

    def wait(self) -> int:
        """Reap the worker; its exit status."""
        try:
            return self._process.wait()
        finally:
            self._signaller.close()


class SubprocessLauncher:
    """A fresh interpreter per job (used when the fork server is unavailable, and by unit tests)."""

    def __init__(self, command: list[str] | None = None) -> None:
        self.command = command or [sys.executable, "-m", "agent.daemon.worker"]

    def launch(self, request: dict[str, Any]) -> WorkerHandle:
        """``Popen`` the worker and hand it the request on stdin."""
        process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        assert process.stdin is not None
        handle = _Spawned(process)  # the pidfd is opened before anyone can reap the child
        try:
            process.stdin.write(json.dumps({**request, "parent_pid": os.getpid()}).encode() + b"\n")
            process.stdin.close()
        except BrokenPipeError:
            pass
        return handle

    def close(self) -> None:
        """Nothing to stop."""


class _Forked:
    """A worker forked by the server: signalled through a pidfd, reaped by the server."""

    def __init__(self, pid: int, signaller: ProcessSignaller, stdout: IO[bytes], server: ForkServerLauncher) -> None:
        self.pid = pid
        self.stdout: IO[bytes] | None = stdout
        self._signaller = signaller
        self._server = server

    def send_signal(self, number: int) -> None:
        """Signal the worker (never a process that reused its pid)."""
        self._signaller.send(number)

    def wait(self) -> int:
        """The exit status the server reported."""
        try:
            return self._server.wait_exit(self.pid)
        finally:
            self._signaller.close()


class _Pending:
    """A launch waiting for the server's answer to its ticket."""

    def __init__(self) -> None:
        self.answered = threading.Event()
        self.pid = -1
        self.signaller: ProcessSignaller | None = None


class ForkServerLauncher:
    """Talks to ``agent.daemon.forkserver`` over a SOCK_SEQPACKET socket pair.

    Every request carries a ticket and the server echoes it with the pid, so an answer is matched
    to its request even when an earlier launch gave up waiting (its late answer must not become
    the next job's pid). A worker whose launch was abandoned is started but unsupervised: it is
    told to stop (SIGTERM: it records ``interrupted`` if it got as far as creating its job).
    """

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
        self._send_lock = threading.Lock()
        self._tickets = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._exits: dict[int, int] = {}
        self._exit_changed = threading.Condition()
        self._closed = False
        self._ready = threading.Event()  # the server said it has started (or is gone)
        self._spawned = time.monotonic()
        self.abandoned: set[int] = set()  # workers whose launch timed out (stopped on arrival), until reaped
        self.stopped_on_arrival: list[int] = []  # every such worker (for the log and tests)
        self._reader = threading.Thread(target=self._read, name="forkserver", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        try:
            while self._read_one():
                pass
        except Exception:  # a garbled answer or a failure here must not leave launches waiting forever
            pass
        finally:
            self._ready.set()
            with self._exit_changed:
                self._closed = True
                pending = list(self._pending.values())
                self._pending.clear()
                self._exit_changed.notify_all()
            for waiting in pending:
                waiting.answered.set()  # pid stays -1: the server is gone

    def _read_one(self) -> bool:
        try:
            message, fds, _flags, _address = socket.recv_fds(self._socket, 65536, 1)
        except OSError:
            return False
        if not message:
            return False
        data = json.loads(message)
        if "ready" in data:
            self._ready.set()
        if "pid" in data:
            self._started(int(data["pid"]), data.get("ticket"), fds[0] if fds else None)
        else:
            for fd in fds:
                os.close(fd)
        if "exit" in data:
            pid = int(data["exit"])
            with self._exit_changed:
                if pid in self.abandoned:
                    self.abandoned.discard(pid)  # nobody waits for it; the number may be reused from now on
                else:
                    self._exits[pid] = int(data["code"])
                self._exit_changed.notify_all()
        return True

    def _started(self, pid: int, ticket: object, pidfd: int | None) -> None:
        # The server opened the pidfd right after fork(), before it could reap the child, so it names
        # our worker even if the worker has died since (no pidfd support there: fall back to the pid
        # while the server has not reported its exit).
        signaller = ProcessSignaller(pid, lambda: not self.exited(pid), pidfd=pidfd, open_pidfd=False)
        with self._exit_changed:  # decided under the lock launch() also uses to give up
            waiting = self._pending.pop(ticket, None) if isinstance(ticket, int) else None
            if waiting is not None:
                waiting.pid, waiting.signaller = pid, signaller
                waiting.answered.set()
                return
            self.abandoned.add(pid)
            self.stopped_on_arrival.append(pid)
        try:
            signaller.send(signal.SIGTERM)  # a worker nobody supervises must not run a job
        except OSError:
            pass
        signaller.close()

    def launch(self, request: dict[str, Any]) -> WorkerHandle:
        """Ask the server to fork a worker; its stdout comes back through a pipe we create."""
        if not self._ready.wait(max(0.0, self._spawned + STARTUP_TIMEOUT - time.monotonic())):
            raise OSError("fork server did not finish starting")
        ticket = next(self._tickets)
        waiting = _Pending()
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            with self._exit_changed:
                if self._closed:
                    raise OSError("fork server is gone")
                self._pending[ticket] = waiting
            with self._send_lock:
                socket.send_fds(self._socket, [json.dumps({**request, "ticket": ticket}).encode()], [write_end])
            os.close(write_end)
            write_end = -1
            waiting.answered.wait(START_TIMEOUT)
            with self._exit_changed:
                if self._pending.pop(ticket, None) is not None:  # still unanswered: its worker is stopped on arrival
                    raise OSError("fork server did not answer")
            if waiting.pid < 0 or waiting.signaller is None:
                raise OSError("fork server is gone")
        except BaseException:
            with self._exit_changed:
                self._pending.pop(ticket, None)
            if write_end >= 0:
                os.close(write_end)
            os.close(read_end)
            raise
        return _Forked(waiting.pid, waiting.signaller, os.fdopen(read_end, "rb"), self)

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
    def ready(self) -> bool:
        """True once the server has started (or is gone, or has had STARTUP_TIMEOUT to start): from
        then on a launch waits at most START_TIMEOUT. The station keeps jobs queued until then rather
        than block its loop (and its watchdog pings) on the server's imports."""
        return self._ready.is_set() or time.monotonic() - self._spawned > STARTUP_TIMEOUT

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
