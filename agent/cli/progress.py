"""Progress bars on a TTY (rich): bytes done, rate, ETA, per phase."""

from __future__ import annotations

from types import TracebackType

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)


class JobProgressBar:
    """One bar per (job, phase)."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            transient=False,
        )
        self.tasks: dict[tuple[str, str], TaskID] = {}

    def update(self, job_id: str, phase: str, done: int, total: int) -> None:
        """Progress callback for the job runner."""
        key = (job_id, phase)
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(f"{job_id[:8]} {phase}", total=total)
        self.progress.update(self.tasks[key], completed=done, total=total)

    def __enter__(self) -> JobProgressBar:
        self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()
