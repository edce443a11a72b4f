"""Fork server: one pre-imported interpreter that forks a process per job in milliseconds.

Why: a fresh ``python -m agent.daemon.worker`` costs ~0.4 s of CPU to import (cryptography,
pyudev, psutil, sqlite3…). Eight drives plugged at once on a two-core station then spend over a
second just starting, which is most of a small drive's wipe time. The fork server imports
everything once; each job is a ``fork()`` of it (single-threaded, so forking is safe) and shares
its pages copy-on-write, so starting is fast and 24 jobs cost far less memory.

Isolation is unchanged: every job is still its own process. The daemon signals job processes
directly by pid. Protocol over a ``SOCK_SEQPACKET`` socket (message boundaries, fd passing):

- daemon → server: a JSON job request with the write end of the job's stdout pipe (``SCM_RIGHTS``);
- server → daemon: ``{"ready": PID}`` once imported and preloaded (a launch's answer is due only
  from then on); ``{"pid": N, "ticket": T}`` with a pidfd of the child (opened before the server
  could reap it) once forked; ``{"exit": N, "code": C}`` when reaped.

The server dies with the daemon (``PR_SET_PDEATHSIG``), and its jobs die with it the same way.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys

from agent.daemon import worker
from agent.discovery import udev
from agent.errors import AgentError

CONTROL_FD_ENV = "WIPE_AGENT_FORKSERVER_FD"


def preload() -> None:
    """Import and initialise, once, what every job would otherwise pay for after its fork.

    Measured per job before this: ~0.10 s of CPU importing the certificate stack (reportlab,
    pyHanko) when signing, and a ``ldconfig -p`` subprocess per udev context. Eight jobs on a
    two-core station paid that while the other seven were writing.
    """
    import importlib

    for name in ("agent.jobs.certify", "certs.render", "certs.documents", "pyhanko.pdf_utils.incremental_writer",
                 "pyhanko.sign.signers", "pyhanko.sign.fields", "pyhanko.sign.timestamps",
                 "pyhanko_certvalidator.registry", "reportlab.platypus"):
        try:
            importlib.import_module(name)
        except ImportError:  # a job that needs it reports the error itself
            pass
    try:
        udev.identify("/")  # loads libudev and creates this process's shared context ("/" is no block device)
    except AgentError:
        pass


def _child(control: socket.socket, request: dict[str, object], stdout_fd: int) -> None:
    """In the forked child: become the job's worker process."""
    code = 70
    try:
        control.close()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.dup2(stdout_fd, 1)
        os.close(stdout_fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        worker.die_with_parent(int(request.get("server_pid") or 0))  # type: ignore[call-overload]
        code = worker.run_request(request)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os._exit(code)


def _answer(control: socket.socket, message: dict[str, object], fds: list[int] | None = None) -> bool:
    """Send to the daemon (with descriptors); False once it has gone (its jobs die with it: PR_SET_PDEATHSIG)."""
    try:
        socket.send_fds(control, [json.dumps(message).encode()], fds or [])
    except OSError:
        return False
    return True


def _pidfd(pid: int) -> list[int]:
    """A pidfd for a child not reaped yet (only this process reaps it): it can never name another process."""
    try:
        return [os.pidfd_open(pid)]
    except (AttributeError, OSError):
        return []  # no pidfd support: the daemon falls back to the pid


def serve(control: socket.socket) -> None:
    """Fork a worker per request until the daemon closes the socket."""
    while True:
        readable, _, _ = select.select([control], [], [], 0.1)
        if readable:
            try:
                message, fds, _flags, _address = socket.recv_fds(control, 1 << 20, 4)
            except OSError:
                return
            if not message:
                return  # the daemon went away
            request = json.loads(message)
            if not fds:
                continue
            request["server_pid"] = os.getpid()
            pid = os.fork()
            if pid == 0:
                _child(control, request, fds[0])
            for fd in fds:
                os.close(fd)
            pidfds = _pidfd(pid)
            sent = _answer(control, {"pid": pid, "ticket": request.get("ticket")}, pidfds)
            for fd in pidfds:
                os.close(fd)  # the daemon has its own copy now
            if not sent:
                return
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if not _answer(control, {"exit": pid, "code": os.waitstatus_to_exitcode(status)}):
                return


def main() -> int:
    """Entry point: ``python -m agent.daemon.forkserver`` with the control socket's fd in the environment."""
    control = socket.socket(fileno=int(os.environ.pop(CONTROL_FD_ENV)))
    worker.die_with_parent(int(os.environ.pop("WIPE_AGENT_PARENT_PID", "0")))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of a foreground daemon is the daemon's to handle
    preload()
    try:
        control.send(json.dumps({"ready": os.getpid()}).encode())
        serve(control)
    finally:
        control.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
