"""Expectations for media after a firmware purge, where "what should be there" is not one byte string.

They implement the :class:`agent.verify.expectation.Expectation` protocol (``kind``, ``fill``,
``matches``, ``describe``) so the ordinary sampling / full read-back runs over them. Each one says
in ``describe()`` — which lands in the verification record and on the certificate — what a pass
does and does not prove. None of them is the proof of the purge on its own: that is the canary
comparison (:mod:`agent.methods.canary`), which every firmware method performs first.

* :class:`ErasedState` — block erase / NVMe Format user-data erase: the specs leave the content
  vendor-defined; flash reads back its erased state (all 00h or all FFh). Anything else fails.
* :class:`DeallocatedZero` — the controller deallocated every LBA after the sanitize and DLFEAT
  says deallocated blocks read as zeros. "Reads as zero" here is a property of the FTL mapping,
  not of the media, so the description says so explicitly.
* :class:`Indeterminate` — crypto erase, enhanced security erase: the content is whatever the
  media returns under a new key / a vendor pattern. Read-back can only show that the samples are
  readable and hold no canary; it records what it saw (zero / ones / other) for the reviewer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.methods.canary import CanarySet
from agent.verify import fastcompare
from agent.verify.expectation import Pattern, Zero

_BLOCK = 512


def _tally(stats: dict[str, int], data: memoryview) -> None:
    raw = data.tobytes()
    for start in range(0, len(raw), 4096):
        block = raw[start : start + 4096]
        if not block.strip(b"\0"):
            key = "zero"
        elif not block.strip(b"\xff"):
            key = "ones"
        else:
            key = "other"
        stats[key] = stats.get(key, 0) + 1


@dataclass
class ErasedState:
    """Every byte reads 00h or FFh (the erased state of flash, or deallocated blocks)."""

    reason: str
    kind: str = "erased"
    canaries: CanarySet | None = None
    stats: dict[str, int] = field(default_factory=dict)

    def fill(self, offset: int, buffer: memoryview) -> None:
        """Never written by the host: the device produced this state."""
        raise NotImplementedError("a firmware erase state cannot be written by the host")

    def matches(self, offset: int, data: memoryview) -> bool:
        """True when the extent is all 00h / FFh and holds no canary."""
        if not data.readonly and fastcompare.is_zero(data):
            self.stats["zero_extents"] = self.stats.get("zero_extents", 0) + 1
            return True
        raw = data.tobytes()
        ok = raw.count(0) + raw.count(0xFF) == len(raw)
        key = "erased_extents" if ok else "unexpected_extents"
        self.stats[key] = self.stats.get(key, 0) + 1
        return ok

    def describe(self) -> dict[str, Any]:
        """What a pass means."""
        return {"kind": "erased", "accepts": "every byte 00h or FFh", "reason": self.reason,
                "proof": "canary comparison (method details); read-back shows the erased state everywhere sampled",
                "observed": dict(self.stats)}


@dataclass
class DeallocatedZero:
    """Zeros because the controller deallocated every LBA — recorded as such, never as proof alone."""

    reason: str
    kind: str = "zero-deallocated"
    _zero: Zero = field(default_factory=Zero)

    def fill(self, offset: int, buffer: memoryview) -> None:
        """Zeros."""
        self._zero.fill(offset, buffer)

    def matches(self, offset: int, data: memoryview) -> bool:
        """Exactly zero."""
        return self._zero.matches(offset, data)

    def first_difference(self, offset: int, data: memoryview) -> int:
        """Index of the first non-zero byte (-1 if none)."""
        return self._zero.first_difference(offset, data)

    def describe(self) -> dict[str, Any]:
        """What a pass means — and what it does not."""
        return {"kind": "zero-deallocated", "accepts": "all zeros", "reason": self.reason,
                "caution": "deallocated blocks read as zeros whatever the media holds: reading zeros is not proof "
                           "of erasure on its own",
                "proof": "canary comparison and the sanitize status (method details)"}


@dataclass
class Indeterminate:
    """Content is undefined after the method; read-back checks readability and that no canary survived."""

    reason: str
    canaries: CanarySet
    kind: str = "indeterminate"
    stats: dict[str, int] = field(default_factory=dict)

    def fill(self, offset: int, buffer: memoryview) -> None:
        """Undefined content cannot be generated."""
        raise NotImplementedError("indeterminate content cannot be generated")

    def matches(self, offset: int, data: memoryview) -> bool:
        """False only when a canary is still intact inside the extent."""
        _tally(self.stats, data)
        survivor = self.canaries.survivor_at(offset, data)
        if survivor is not None:
            self.stats["canaries_found"] = self.stats.get("canaries_found", 0) + 1
            return False
        return True

    def describe(self) -> dict[str, Any]:
        """What a pass means — and what it does not."""
        return {"kind": "indeterminate", "reason": self.reason,
                "accepts": "any readable content that is not a pre-purge canary",
                "caution": "content after this method is undefined by the standard; sampling shows the medium is "
                           "readable and holds no canary, it cannot show that every other block changed",
                "proof": "canary comparison (method details)", "observed_4k_blocks": dict(self.stats)}


@dataclass
class FirmwareResult:
    """A deterministic result the spec defines (zeros after normal SECURITY ERASE, an overwrite pattern),
    wrapped so the record says why it is expected and that it is not the proof on its own."""

    inner: Zero | Pattern
    reason: str

    @property
    def kind(self) -> str:
        """The wrapped expectation's kind (zero / pattern)."""
        return self.inner.kind

    def fill(self, offset: int, buffer: memoryview) -> None:
        """The expected bytes."""
        self.inner.fill(offset, buffer)

    def matches(self, offset: int, data: memoryview) -> bool:
        """Exact comparison."""
        return self.inner.matches(offset, data)

    def first_difference(self, offset: int, data: memoryview) -> int:
        """Index of the first unexpected byte (-1 if none)."""
        return self.inner.first_difference(offset, data)

    def describe(self) -> dict[str, Any]:
        """The wrapped description plus why and what proves the erase."""
        return {**self.inner.describe(), "written_by": "device firmware", "reason": self.reason,
                "proof": "canary comparison (method details) together with this read-back"}
