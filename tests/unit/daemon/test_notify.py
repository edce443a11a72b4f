"""sd_notify datagrams and journald native-protocol encoding."""

from __future__ import annotations

import logging
import socket
import struct
from pathlib import Path

import pytest

from agent.daemon.notify import JournalHandler, KeyValueFormatter, Notifier, _journal_field


def test_notify_sends_datagrams_and_reads_watchdog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(path)
        monkeypatch.setenv("NOTIFY_SOCKET", path)
        monkeypatch.setenv("WATCHDOG_USEC", "4000000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        notifier = Notifier.from_environment()
        try:
            assert notifier.watchdog_seconds == 4.0
            assert notifier.notify(READY=1, STATUS="2 jobs running")
            assert receiver.recv(4096) == b"READY=1\nSTATUS=2 jobs running"
        finally:
            notifier.close()
    import os

    assert "NOTIFY_SOCKET" not in os.environ  # job workers must never notify in the daemon's name


def test_notify_is_a_no_op_outside_systemd() -> None:
    notifier = Notifier()
    assert notifier.notify(READY=1) is False and notifier.watchdog_seconds is None


def test_watchdog_for_another_pid_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", "1")
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert Notifier.from_environment().watchdog_seconds is None


def test_journal_fields_binary_safe() -> None:
    assert _journal_field("MESSAGE", "hello") == b"MESSAGE=hello\n"
    assert _journal_field("MESSAGE", "a\nb") == b"MESSAGE\n" + struct.pack("<Q", 3) + b"a\nb\n"


def test_journal_handler_sends_structured_fields(tmp_path: Path) -> None:
    path = str(tmp_path / "journal.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(path)
        handler = JournalHandler(path)
        try:
            record = logging.LogRecord("wipe-agent", logging.WARNING, __file__, 1, "drive removed", None, None)
            record.fields = {"job_id": "abc", "bay": "bay-1"}
            handler.emit(record)
            data = receiver.recv(65536)
        finally:
            handler.close()
    assert b"MESSAGE=drive removed\n" in data and b"PRIORITY=4\n" in data
    assert b"JOB_ID=abc\n" in data and b"BAY=bay-1\n" in data and b"SYSLOG_IDENTIFIER=wipe-agent\n" in data


def test_key_value_formatter() -> None:
    record = logging.LogRecord("wipe-agent", logging.INFO, __file__, 1, "job finished", None, None)
    record.fields = {"job_id": "x1", "outcome": "sanitised"}
    assert KeyValueFormatter().format(record) == "info job finished job_id=x1 outcome=sanitised"
