"""Canaries: the evidence that a firmware purge really changed the medium.

NIST SP 800-88 Rev. 1 §4.7 asks, for cryptographic erase and firmware purges, to read pseudorandom
locations before and after and compare. A stronger form is used here: before the destructive
command, N blocks of fresh random bytes are *written* at pseudorandom 4 KiB-aligned locations
through the job's exclusive O_DIRECT descriptor, flushed, read back (so they are on the medium,
not in a cache), and their locations and SHA-256 digests are committed to the job journal. After
the purge every location is read again: a block still equal to its canary proves the device did
not erase it — whatever its status said (emulators and some firmware report success for work
they never did).

The canaries are recorded before the destructive command, so a job resumed after a power loss
(``JobRunner.resume``) proves them from the journal alone; their bytes are never stored.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
from dataclasses import dataclass
from typing import Any

from agent.errors import VerificationFailed
from agent.transport.block import BlockDevice, aligned_buffer

CANARY_BLOCK = 4096
DEFAULT_COUNT = 64


@dataclass(frozen=True)
class CanarySet:
    """Where the canaries are and what they held (digests only)."""

    seed: str
    block: int
    offsets: tuple[int, ...]
    digests: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON form (the ``canaries-planted`` journal event)."""
        return {"seed": self.seed, "block": self.block, "offsets": list(self.offsets), "sha256": list(self.digests)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CanarySet:
        """Inverse of :meth:`to_json`."""
        return cls(str(data["seed"]), int(data["block"]), tuple(int(o) for o in data["offsets"]),
                   tuple(str(d) for d in data["sha256"]))

    def survivor_at(self, offset: int, data: bytes | memoryview) -> int | None:
        """If ``data`` (read at ``offset``) contains an intact canary, that canary's offset."""
        end = offset + len(data)
        for canary_offset, digest in zip(self.offsets, self.digests, strict=True):
            if offset <= canary_offset and canary_offset + self.block <= end:
                start = canary_offset - offset
                if hashlib.sha256(data[start : start + self.block]).hexdigest() == digest:
                    return canary_offset
        return None


def _classify(block: bytes) -> str:
    if not block.strip(b"\0"):
        return "zero"
    if not block.strip(b"\xff"):
        return "ones"
    if block.count(block[:1]) == len(block):
        return "uniform"
    return "other"


def plant(device: BlockDevice, count: int = DEFAULT_COUNT, seed: str | None = None) -> CanarySet:
    """Write ``count`` random 4 KiB canaries at distinct pseudorandom locations, flush and read them back."""
    seed = seed or secrets.token_hex(16)
    slots = device.size // CANARY_BLOCK
    if slots <= 0:
        raise VerificationFailed(f"{device.path}: too small for canary blocks")
    count = min(count, slots)
    offsets = tuple(sorted(slot * CANARY_BLOCK for slot in random.Random(seed).sample(range(slots), count)))
    buffer = aligned_buffer(CANARY_BLOCK)
    digests: list[str] = []
    try:
        view = memoryview(buffer)
        for offset in offsets:
            content = os.urandom(CANARY_BLOCK)
            view[:] = content
            device.write_at(view, offset)
            digests.append(hashlib.sha256(content).hexdigest())
        device.flush()
        for offset, digest in zip(offsets, digests, strict=True):
            device.read_into(view, offset)
            if hashlib.sha256(view).hexdigest() != digest:
                raise VerificationFailed(f"{device.path}: canary at byte {offset} did not read back as written "
                                         "before the purge: the device does not store what it is given")
        del view
    finally:
        buffer.close()
    return CanarySet(seed, CANARY_BLOCK, offsets, tuple(digests))


@dataclass(frozen=True)
class CanaryReport:
    """What the canary locations held after the purge."""

    checked: int
    survivors: tuple[int, ...]
    read_as: dict[str, int]

    @property
    def passed(self) -> bool:
        """True when no canary survived."""
        return self.checked > 0 and not self.survivors

    def to_json(self) -> dict[str, Any]:
        """JSON form (goes into outcome.details and the journal)."""
        return {"checked": self.checked, "survivors": list(self.survivors), "read_as": self.read_as,
                "passed": self.passed}


def prove_absent(device: BlockDevice, canaries: CanarySet) -> CanaryReport:
    """Read every canary location; raise VerificationFailed if any canary is still there."""
    buffer = aligned_buffer(canaries.block)
    survivors: list[int] = []
    read_as: dict[str, int] = {}
    try:
        view = memoryview(buffer)
        for offset, digest in zip(canaries.offsets, canaries.digests, strict=True):
            device.read_into(view, offset)
            data = bytes(view)
            if hashlib.sha256(data).hexdigest() == digest:
                survivors.append(offset)
                kind = "canary"
            else:
                kind = _classify(data)
            read_as[kind] = read_as.get(kind, 0) + 1
        del view
    finally:
        buffer.close()
    return CanaryReport(len(canaries.offsets), tuple(survivors), read_as)
