"""NIST SP 800-88 Rev. 1 §4.7 representative sampling, as a pure plan of byte extents.

The rule (see ../shared/design/STANDARDS.md): divide the addressable space into at least 1000
equal subsections; in each, read at least two non-overlapping pseudorandom locations; always
include the first and last addressable locations; every sample here covers at least 5 % of its
subsection, so each subsection is at least 10 % covered and so is the medium; new locations on
every run, with the seed recorded so a run can be reproduced.

"Equal" is exact up to one sector: when the sector count does not divide by the subsection count,
the first ``remainder`` subsections are one sector longer.
"""

from __future__ import annotations

import math
import random
import secrets
from dataclasses import dataclass

from agent.transport.pipeline import Extent

MIN_SUBSECTIONS = 1000
SAMPLES_PER_SUBSECTION = 2
SAMPLE_FRACTION = 0.05  # of its subsection, per sample


@dataclass(frozen=True)
class SamplingPlan:
    """The extents to read and the parameters that produced them."""

    seed: str
    subsections: int
    sector_size: int
    extents: tuple[Extent, ...]
    size_bytes: int

    @property
    def bytes_planned(self) -> int:
        """Total bytes the plan reads."""
        return sum(extent.length for extent in self.extents)

    @property
    def coverage(self) -> float:
        """Fraction of the medium the plan reads."""
        return self.bytes_planned / self.size_bytes if self.size_bytes else 0.0


class PlanNotPossible(ValueError):
    """The medium is too small to sample by the rule; the caller falls back to full read-back."""


def new_seed() -> str:
    """A fresh 128-bit seed (hex), recorded with the result."""
    return secrets.token_hex(16)


def plan_sampling(
    size_bytes: int,
    sector_size: int,
    seed: str,
    subsections: int = MIN_SUBSECTIONS,
    sample_fraction: float = SAMPLE_FRACTION,
) -> SamplingPlan:
    """Build the sampling plan for a device; raises :class:`PlanNotPossible` on tiny media."""
    if subsections < MIN_SUBSECTIONS:
        raise ValueError(f"NIST sampling needs at least {MIN_SUBSECTIONS} subsections")
    if sector_size <= 0 or size_bytes % sector_size:
        raise ValueError("size must be a whole number of sectors")
    total = size_bytes // sector_size
    base, remainder = divmod(total, subsections)
    largest = base + (1 if remainder else 0)
    if base == 0 or SAMPLES_PER_SUBSECTION * math.ceil(largest * sample_fraction) > base:
        raise PlanNotPossible(f"{total} sectors cannot hold {subsections} sampled subsections")
    rng = random.Random(seed)
    extents: list[Extent] = []
    start = 0
    for index in range(subsections):
        length = base + (1 if index < remainder else 0)
        sample = math.ceil(length * sample_fraction)  # per subsection: ≥ 5 % of *this* one
        # two non-overlapping placements chosen uniformly: draw two points in the space left after
        # removing one sample length, sort, and shift the second one by the sample length
        slack = length - SAMPLES_PER_SUBSECTION * sample
        first, second = sorted((rng.randint(0, slack), rng.randint(0, slack)))
        second += sample
        if index == 0:
            first = 0  # the first addressable location is always read
            second = max(second, sample)
        if index == subsections - 1:
            second = length - sample  # and so is the last
            first = min(first, second - sample)
        for position in (first, second):
            extents.append(Extent((start + position) * sector_size, sample * sector_size))
        start += length
    return SamplingPlan(seed, subsections, sector_size, tuple(extents), size_bytes)
