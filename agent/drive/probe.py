"""Live capability probe of a device node: NOT IMPLEMENTED YET.

Reading IDENTIFY / Identify / VPD data from a real device needs the pass-through transport
(ATA PASS-THROUGH (16) over SG_IO, the NVMe admin ioctl) from issue 3, which does not exist
yet.  Until it does, :func:`probe_device` refuses honestly instead of guessing from sysfs.
"""

from __future__ import annotations

from typing import Any

from agent.errors import NotSupported


def probe_device(path: str) -> dict[str, Any]:
    """Return the capability JSON of the device at ``path`` (not implemented yet).

    Raises :class:`agent.errors.NotSupported` always, until the pass-through transport lands.
    """
    raise NotSupported(f"{path}: live inspect needs the pass-through transport (issue 3)")
