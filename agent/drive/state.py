"""The sanitize state machine of a drive as last read, in one shape for ATA, NVMe and SCSI."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SanitizeState:
    """The drive's sanitize state machine as last read: ``idle``, ``in_progress``, ``failed``.

    ``frozen`` is ATA SANITIZE FROZEN (SD1); ``progress`` is 0.0..1.0 while in progress;
    ``last_success`` says whether the most recent sanitize completed without error (None: unknown).
    """

    state: str = "idle"
    progress: float | None = None
    frozen: bool = False
    last_success: bool | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"state": self.state, "progress": self.progress, "frozen": self.frozen,
                "last_success": self.last_success, "detail": self.detail}
