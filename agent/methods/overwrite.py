"""Host overwrite (Clear): one pass of zeros, a pattern or an AES-256-CTR stream over every LBA.

NIST SP 800-88 Rev. 1 Table A-5..A-8: a single overwrite pass is Clear for HDDs and for flash
(flash keeps spare blocks the host cannot address, so overwrite is never Purge there). Multi-pass
patterns add time, not assurance.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from agent.errors import JobInterrupted, NotSupported
from agent.methods.base import Applicability, Level, MethodContext, MethodOutcome, Target
from agent.transport.pipeline import DEFAULT_CHUNK, WritePipeline
from agent.verify.expectation import AesCtrStream, Expectation, Pattern, Zero

# Conservative rate for estimates when nothing better is known (a SATA HDD's outer tracks).
ESTIMATE_BYTES_PER_SECOND = 150e6


def _chunk_for(expectation: Expectation, alignment: int) -> int:
    """Largest chunk ≤ DEFAULT_CHUNK whose length keeps a repeating pattern's phase fixed."""
    period = len(expectation.pattern) if isinstance(expectation, Pattern) else 1
    unit = alignment * period // math.gcd(alignment, period)
    return max(unit, DEFAULT_CHUNK // unit * unit)


def overwrite(context: MethodContext, expectation: Expectation) -> tuple[int, float]:
    """Write ``expectation`` over the whole device and flush; return (bytes, seconds)."""
    device = context.device
    size = device.size
    chunk = _chunk_for(expectation, device.alignment)
    # zeros and patterns are the same in every chunk: fill each pool buffer once
    constant = not isinstance(expectation, AesCtrStream)
    filled: set[int] = set()
    started = time.monotonic()
    pipeline = WritePipeline(device, chunk=chunk)
    last_report = 0.0
    try:
        offset = 0
        while offset < size:
            length = min(chunk, size - offset)
            index, buffer = pipeline.buffer()
            if not constant or index not in filled:
                expectation.fill(offset, buffer[:chunk] if constant else buffer[:length])
                filled.add(index)
            pipeline.submit(index, offset, length)
            offset += length
            now = time.monotonic()
            if now - last_report >= 0.2:
                last_report = now
                if context.cancelled():
                    raise JobInterrupted("cancelled during overwrite")
                context.progress("overwrite", offset, size)
        pipeline.drain()
    finally:
        pipeline.close()
    device.flush()
    context.progress("overwrite", size, size)
    return size, time.monotonic() - started


@dataclass(frozen=True)
class OverwriteOptions:
    """Options shared by the overwrite methods."""

    pattern: str | None = None  # hex, overwrite.pattern only


class _Overwrite:
    name = ""
    summary = ""

    def __init__(self, options: OverwriteOptions) -> None:
        self.options = options

    def check(self, target: Target) -> Applicability:
        identity = target.identity
        if identity.read_only:
            raise NotSupported(f"{self.name}: device is read-only")
        if identity.size_bytes <= 0:
            raise NotSupported(f"{self.name}: no medium")
        media = identity.media
        if media == "hdd":
            reason = "host overwrite of every user-addressable LBA: Clear for HDDs (NIST 800-88 Table A-8)"
        elif media == "virtual":
            reason = "host overwrite of every LBA of virtual media: Clear"
        else:
            reason = f"host overwrite on {media} flash: Clear only — spare blocks are unreachable from the host"
        return Applicability(Level.CLEAR, reason)

    def estimate(self, target: Target) -> float:
        return target.identity.size_bytes / ESTIMATE_BYTES_PER_SECOND

    def expectation(self) -> Expectation:
        raise NotImplementedError

    def run(self, context: MethodContext) -> MethodOutcome:
        expectation = self.expectation()
        context.journal("overwrite-start", {"method": self.name, "expectation": expectation.describe()})
        written, seconds = overwrite(context, expectation)
        return MethodOutcome(
            method=self.name,
            level=self.check(context.target).level,
            expectation=expectation,
            bytes_written=written,
            seconds=seconds,
            details={"passes": 1, "expectation": expectation.describe(), "o_direct": context.device.direct},
        )


class OverwriteZero(_Overwrite):
    """One pass of zeros."""

    name = "overwrite.zero"
    summary = "one pass of zeros over every LBA"

    def expectation(self) -> Expectation:
        return Zero()


class OverwritePattern(_Overwrite):
    """One pass of a repeating hex pattern."""

    name = "overwrite.pattern"
    summary = "one pass of a repeating byte pattern over every LBA"

    def __init__(self, options: OverwriteOptions) -> None:
        super().__init__(options)
        if not options.pattern:
            raise NotSupported("overwrite.pattern needs a 'pattern' option (hex bytes)")
        self._pattern = Pattern.from_hex(options.pattern)

    def expectation(self) -> Expectation:
        return self._pattern


class OverwriteRandom(_Overwrite):
    """One pass of an AES-256-CTR keystream (fresh key per job; recorded for verification)."""

    name = "overwrite.random"
    summary = "one pass of AES-256-CTR pseudorandom data over every LBA"

    def expectation(self) -> Expectation:
        return AesCtrStream.generate()
