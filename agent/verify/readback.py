"""Read-back verification: full or NIST-sampled, against an expectation, at device speed."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.transport.block import BlockDevice
from agent.transport.pipeline import Extent, ReadPipeline
from agent.verify.expectation import Expectation
from agent.verify.sampling import PlanNotPossible, new_seed, plan_sampling

MAX_REPORTED_MISMATCHES = 16

Progress = Callable[[int, int], None]
Cancelled = Callable[[], bool]
# told about every piece read back that does not match (its offset and bytes, valid only during the call)
Mismatch = Callable[[int, memoryview], None]


@dataclass(frozen=True)
class VerificationResult:
    """What verification did and found; goes into the registry and onto the certificate."""

    mode: str  # "full" | "sampling"
    passed: bool
    expectation: dict[str, Any]
    bytes_checked: int
    size_bytes: int
    coverage: float
    seed: str | None = None
    subsections: int | None = None
    samples: int | None = None
    mismatched_extents: int = 0
    first_mismatches: tuple[int, ...] = field(default_factory=tuple)
    seconds: float = 0.0
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        data = asdict(self)
        data["first_mismatches"] = list(self.first_mismatches)
        return data


class VerifyCancelled(Exception):
    """Raised inside verification when the job is cancelled."""


def _check(
    device: BlockDevice,
    expectation: Expectation,
    extents: list[Extent],
    progress: Progress | None,
    cancelled: Cancelled | None,
    on_mismatch: Mismatch | None = None,
) -> tuple[int, int, list[int]]:
    total = sum(extent.length for extent in extents)
    checked = 0
    mismatched = 0
    first: list[int] = []
    pipeline = ReadPipeline(device)
    last_report = 0.0
    try:
        for piece, data in pipeline.read(extents):
            if not expectation.matches(piece.offset, data):
                mismatched += 1
                if on_mismatch is not None:
                    on_mismatch(piece.offset, data)
                if len(first) < MAX_REPORTED_MISMATCHES:
                    locate = getattr(expectation, "first_difference", None)
                    index = locate(piece.offset, data) if locate else 0
                    first.append(piece.offset + max(index, 0))
            checked += piece.length
            now = time.monotonic()
            if now - last_report >= 0.2:
                last_report = now
                if cancelled is not None and cancelled():
                    raise VerifyCancelled()
                if progress is not None:
                    progress(checked, total)
    finally:
        pipeline.close()
    if progress is not None:
        progress(checked, total)
    return checked, mismatched, first


def verify(
    device: BlockDevice,
    expectation: Expectation,
    mode: str,
    *,
    seed: str | None = None,
    progress: Progress | None = None,
    cancelled: Cancelled | None = None,
    on_mismatch: Mismatch | None = None,
) -> VerificationResult:
    """Verify the device holds ``expectation``: ``mode`` is ``full`` or ``sampling``.

    ``on_mismatch`` sees each mismatching piece while its buffer is valid (a secondary verification
    maps them to sector extents)."""
    started = time.monotonic()
    size = device.size
    note = None
    if not device.direct:
        device.drop_page_cache()  # without O_DIRECT, read the medium, not what the page cache remembers
    if mode == "sampling":
        seed = seed or new_seed()
        try:
            plan = plan_sampling(size, device.geometry.logical_sector, seed)
        except PlanNotPossible as exc:
            mode, note = "full", f"medium too small for sampling ({exc}); read back in full"
        else:
            checked, mismatched, first = _check(device, expectation, list(plan.extents), progress, cancelled,
                                             on_mismatch)
            return VerificationResult(
                mode="sampling",
                passed=mismatched == 0,
                expectation=expectation.describe(),
                bytes_checked=checked,
                size_bytes=size,
                coverage=checked / size,
                seed=seed,
                subsections=plan.subsections,
                samples=len(plan.extents),
                mismatched_extents=mismatched,
                first_mismatches=tuple(first),
                seconds=time.monotonic() - started,
            )
    if mode != "full":
        raise ValueError(f"unknown verification mode {mode!r}")
    checked, mismatched, first = _check(device, expectation, [Extent(0, size)], progress, cancelled, on_mismatch)
    return VerificationResult(
        mode="full",
        passed=mismatched == 0 and checked == size,
        expectation=expectation.describe(),
        bytes_checked=checked,
        size_bytes=size,
        coverage=checked / size if size else 0.0,
        mismatched_extents=mismatched,
        first_mismatches=tuple(first),
        seconds=time.monotonic() - started,
        note=note,
    )
