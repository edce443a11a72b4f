"""The one size convention of wipe-agent: decimal units (kB, MB, GB, TB), as drive vendors label capacity.

Used by the certificate, the command line and ``watch``, so a 500 GB drive reads "500.1 GB" everywhere
(never "465.8 GiB" in one place and "500.1 GB" in another); where the exact figure matters (a
certificate's capacity) it is printed beside in bytes.
"""

from __future__ import annotations

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def decimal_size(count: float) -> str:
    """``count`` bytes in decimal units: "512 B", "16.8 MB", "500.1 GB"."""
    value = float(count)
    for unit in _UNITS:
        if abs(value) < 1000 or unit == _UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def size_with_bytes(count: int) -> str:
    """Decimal size with the exact byte count in brackets: "500.1 GB (500,107,862,016 bytes)"."""
    return f"{decimal_size(count)} ({count:,} bytes)"
