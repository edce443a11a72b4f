"""The I/O pipeline never loses an error."""

from __future__ import annotations

import time

import pytest

from agent.errors import MediaError
from agent.transport.pipeline import WritePipeline


def test_write_pipeline_drain_never_loses_a_write_error() -> None:
    """A write that fails must surface from drain(), even before the done-callback recorded it."""
    class FailingDevice:
        path = "/dev/fake"

        def write_at(self, buffer: memoryview, offset: int) -> None:
            time.sleep(0.01)
            raise MediaError("write failed", offset)

    pipeline = WritePipeline(FailingDevice(), chunk=4096, depth=2)  # type: ignore[arg-type]
    # the callback that would record the error runs late, as under a busy scheduler
    original = pipeline._done

    def late(future: object) -> None:
        time.sleep(0.05)
        original(future)  # type: ignore[arg-type]

    pipeline._done = late  # type: ignore[method-assign]
    index, _ = pipeline.buffer()
    pipeline.submit(index, 0, 4096)
    with pytest.raises(MediaError):
        pipeline.drain()
    pipeline.close()
