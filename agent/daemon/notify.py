"""systemd integration without libsystemd: ``sd_notify`` datagrams and native journald logging.

sd_notify protocol (sd_notify(3)): newline-separated ``KEY=VALUE`` assignments in one datagram to
the ``AF_UNIX`` socket named by ``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace).
The watchdog interval comes from ``$WATCHDOG_USEC`` (only when ``$WATCHDOG_PID`` is unset or ours);
the daemon pings at half of it.

Journal native protocol (systemd.journal-fields(7), "Native Protocol"): one datagram to
``/run/systemd/journal/socket`` of ``FIELD=value`` lines; a value holding a newline is sent as the
field name, a newline, its length as 64-bit little-endian, the bytes, and a newline. We log there
only when stderr *is* the journal (``$JOURNAL_STREAM`` names stderr's device:inode), otherwise to
stderr as ``level message key=value``.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys
from typing import Any

JOURNAL_SOCKET = "/run/systemd/journal/socket"
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class Notifier:
    """Sends sd_notify messages; does nothing when not started by systemd with ``Type=notify``."""

    def __init__(self, address: str | None = None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_seconds = watchdog_usec / 1e6 if watchdog_usec else None
        self._socket: socket.socket | None = None
        if address:
            self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environment(cls) -> Notifier:
        """Read ``$NOTIFY_SOCKET`` / ``$WATCHDOG_USEC``; unset them so job workers never notify."""
        address = os.environ.pop("NOTIFY_SOCKET", None)
        watchdog_pid = os.environ.pop("WATCHDOG_PID", None)
        watchdog = os.environ.pop("WATCHDOG_USEC", None)
        usec: int | None = None
        if watchdog and (watchdog_pid is None or watchdog_pid == str(os.getpid())):
            try:
                usec = int(watchdog)
            except ValueError:
                usec = None
        return cls(address, usec)

    def notify(self, **fields: str | int) -> bool:
        """Send ``READY=1`` style fields (``notify(READY=1, STATUS="…")``); False when not under systemd."""
        if self._socket is None or self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            self._socket.sendto(message, target)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Close the datagram socket."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _journal_field(key: str, value: str) -> bytes:
    data = value.encode("utf-8", "replace")
    if b"\n" in data:
        return key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return key.encode() + b"=" + data + b"\n"


class JournalHandler(logging.Handler):
    """Structured records to journald: MESSAGE, PRIORITY and upper-cased ``extra={"fields": …}``."""

    def __init__(self, path: str = JOURNAL_SOCKET, identifier: str = "wipe-agent") -> None:
        super().__init__()
        self.path = path
        self.identifier = identifier
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def emit(self, record: logging.LogRecord) -> None:
        """Send one record as one datagram."""
        try:
            parts = [
                _journal_field("MESSAGE", self.format(record)),
                _journal_field("PRIORITY", str(_PRIORITY.get(record.levelno, 6))),
                _journal_field("SYSLOG_IDENTIFIER", self.identifier),
                _journal_field("CODE_FUNC", str(record.funcName)),
            ]
            for key, value in getattr(record, "fields", {}).items():
                parts.append(_journal_field(key.upper(), str(value)))
            self._socket.sendto(b"".join(parts), self.path)
        except OSError:
            self.handleError(record)

    def close(self) -> None:
        """Close the socket."""
        self._socket.close()
        super().close()


class KeyValueFormatter(logging.Formatter):
    """``LEVEL message key=value …`` for stderr."""

    def format(self, record: logging.LogRecord) -> str:
        """One line per record."""
        fields: dict[str, Any] = getattr(record, "fields", {})
        extra = "".join(f" {key}={value}" for key, value in fields.items())
        return f"{record.levelname.lower()} {record.getMessage()}{extra}"


def stderr_is_journal() -> bool:
    """True when systemd connected stderr to the journal (``$JOURNAL_STREAM`` = stderr's dev:ino)."""
    stream = os.environ.get("JOURNAL_STREAM")
    if not stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}" and os.path.exists(JOURNAL_SOCKET)


def setup_logging(level: int = logging.INFO) -> logging.Logger:
    """The daemon's logger: journald when under systemd, stderr otherwise."""
    logger = logging.getLogger("wipe-agent")
    logger.setLevel(level)
    logger.propagate = False
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if stderr_is_journal():
        journal = JournalHandler()
        journal.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(journal)
    else:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(KeyValueFormatter())
        logger.addHandler(stream)
    return logger
