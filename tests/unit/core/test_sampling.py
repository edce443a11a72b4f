"""Properties of the NIST §4.7 sampling plan (hypothesis over device sizes and sector sizes)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.verify.sampling import MIN_SUBSECTIONS, PlanNotPossible, plan_sampling

sizes = st.integers(min_value=2_000 * 20, max_value=2**34)  # sectors: 40 000 … 16 G
sectors = st.sampled_from([512, 4096])


@settings(max_examples=60, deadline=None)
@given(sectors_count=sizes, sector=sectors, seed=st.text(min_size=1, max_size=32))
def test_plan_follows_the_rule(sectors_count: int, sector: int, seed: str) -> None:
    size = sectors_count * sector
    plan = plan_sampling(size, sector, seed)
    extents = plan.extents
    assert plan.subsections >= MIN_SUBSECTIONS
    assert len(extents) == 2 * plan.subsections
    # first and last addressable locations always read
    assert extents[0].offset == 0
    assert extents[-1].offset + extents[-1].length == size
    # subsections: equal up to one sector, contiguous, covering the medium
    base, remainder = divmod(sectors_count, plan.subsections)
    start = 0
    for index in range(plan.subsections):
        length = (base + (1 if index < remainder else 0)) * sector
        first, second = extents[2 * index], extents[2 * index + 1]
        for sample in (first, second):
            assert sample.offset % sector == 0 and sample.length % sector == 0
            assert start <= sample.offset and sample.offset + sample.length <= start + length
            assert sample.length >= 0.05 * length  # each sample ≥ 5 % of its subsection
        assert first.offset + first.length <= second.offset  # non-overlapping
        start += length
    assert start == size
    assert plan.coverage >= 0.10


def test_seed_reproduces_and_new_seed_differs() -> None:
    size = 4 << 30
    assert plan_sampling(size, 512, "a").extents == plan_sampling(size, 512, "a").extents
    assert plan_sampling(size, 512, "a").extents != plan_sampling(size, 512, "b").extents


def test_locations_are_spread_within_subsections() -> None:
    plan = plan_sampling(8 << 30, 4096, "spread")
    sub = (8 << 30) // plan.subsections
    positions = [(e.offset % sub) / sub for e in plan.extents[2:-2]]
    # pseudorandom placement: not all at the same relative position
    assert max(positions) - min(positions) > 0.5


def test_tiny_media_cannot_be_sampled() -> None:
    with pytest.raises(PlanNotPossible):
        plan_sampling(1000 * 512, 512, "x")


def test_rule_parameters_cannot_be_weakened() -> None:
    with pytest.raises(ValueError, match="at least 1000"):
        plan_sampling(1 << 30, 512, "x", subsections=999)
    with pytest.raises(ValueError, match="whole number of sectors"):
        plan_sampling((1 << 30) + 1, 512, "x")
