"""Bounded reads of regular files (what the verifier and the bundle loader accept as input), and
private directories made whatever the umask (:func:`make_private_directory`).

A partner may point ``verify`` at anything: a FIFO (a plain ``read`` would wait forever), a
character device such as ``/dev/zero`` (endless), a huge file. Only a regular file no larger than
the stated limit is read. The file is opened without blocking (a FIFO's open would otherwise wait
for a writer) and judged by ``fstat`` of the opened descriptor, so a name swapped between a check
and the read cannot slip a FIFO in. Portable: nothing here is Linux-specific.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
"""The largest document ``verify`` reads (a station certificate is well under 1 MiB)."""
MAX_BUNDLE_BYTES = 4 * 1024 * 1024
"""The largest trust bundle read (a CA certificate, a CRL and a few TSA certificates)."""

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder"))


class NotReadable(Exception):
    """The path is not a readable regular file within the limit; the message says why, in one line."""


def describe_kind(mode: int) -> str:
    """What kind of file ``mode`` (from ``stat``) describes, in words."""
    return next((words for test, words in _KINDS if test(mode)), "not a regular file")


def read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of the regular file at ``path``; NotReadable if it is something else or larger than ``limit``."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        raise NotReadable(f"cannot read {path}: {error.strerror or error}") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise NotReadable(f"{path} is {describe_kind(status.st_mode)}, not a regular file")
        if status.st_size > limit:
            raise NotReadable(f"{path} is {status.st_size} bytes, larger than the {limit // (1024 * 1024)} MiB "
                              "accepted")
        chunks: list[bytes] = []
        remaining = limit + 1  # one byte more than allowed tells a file that grew while read
        while remaining > 0:
            chunk = os.read(descriptor, min(remaining, 1024 * 1024))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as error:
        raise NotReadable(f"cannot read {path}: {error.strerror or error}") from None
    finally:
        os.close(descriptor)
    data = b"".join(chunks)
    if len(data) > limit:
        raise NotReadable(f"{path} grew beyond the {limit // (1024 * 1024)} MiB accepted while it was read")
    return data


# The station's state directory and what it holds below it (certificates/, destruction/): the owner
# writes, the group (wipe-operators, for the daemon's socket) may enter; nobody else.
STATE_DIRECTORY_MODE = 0o750


def make_private_directory(path: Path, mode: int = 0o700) -> Path:
    """Create ``path`` and each missing parent with ``mode`` whatever the umask; leave existing ones alone.

    ``mkdir(parents=True, mode=...)`` gives the mode to the last component only and masks it with the
    umask: under ``umask 000`` a station's new state directory and its parents came out 0777, so any
    local user could rename the registry, ``pki/`` or ``certificates/`` away and put their own in place.
    Directories that already exist (``/tmp``, ``/var/lib``) are never changed: only what this call makes."""
    path = Path(path)
    missing: list[Path] = []
    current = path
    while not os.path.lexists(current) and current != current.parent:
        missing.append(current)
        current = current.parent
    if not missing and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a directory")
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=mode)
        except FileExistsError:  # made meanwhile by another process: theirs to set
            if not directory.is_dir():
                raise
            continue
        os.chmod(directory, mode, follow_symlinks=False)  # mkdir's mode is masked by the umask; chmod's is not
    return path
