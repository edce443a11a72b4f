"""Small byte-level helpers shared by the pure parsers (no I/O)."""

from __future__ import annotations

from agent.drive.errors import IdentifyParseError

# Characters allowed in spec "ASCII strings": the ATA string convention of ACS-4 and the NVMe
# Base 2.0 ASCII string definition (20h-7Eh).  NUL padding is accepted because real firmware pads with 00h.
_PRINTABLE = frozenset(range(0x20, 0x7F)) | {0x00}


def require_length(data: bytes, expected: int, what: str) -> None:
    """Raise unless ``data`` is exactly ``expected`` bytes long."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise IdentifyParseError(f"{what}: expected bytes, got {type(data).__name__}")
    if len(data) != expected:
        raise IdentifyParseError(f"{what}: expected exactly {expected} bytes, got {len(data)}")


def require_minimum(data: bytes, minimum: int, what: str) -> None:
    """Raise unless ``data`` holds at least ``minimum`` bytes."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise IdentifyParseError(f"{what}: expected bytes, got {type(data).__name__}")
    if len(data) < minimum:
        raise IdentifyParseError(f"{what}: expected at least {minimum} bytes, got {len(data)}")


def le(data: bytes, offset: int, size: int) -> int:
    """Unsigned little-endian integer of ``size`` bytes at ``offset``."""
    return int.from_bytes(data[offset : offset + size], "little")


def be(data: bytes, offset: int, size: int) -> int:
    """Unsigned big-endian integer of ``size`` bytes at ``offset`` (SCSI byte order)."""
    return int.from_bytes(data[offset : offset + size], "big")


def ascii_field(raw: bytes, field: str, what: str) -> str:
    """Decode a space/NUL padded ASCII field, rejecting any byte outside 20h-7Eh (and 00h)."""
    bad = next((byte for byte in raw if byte not in _PRINTABLE), None)
    if bad is not None:
        raise IdentifyParseError(
            f"{what}: {field} holds byte {bad:#04x}, not ASCII text: this is not {what} data"
        )
    return raw.decode("ascii").replace("\x00", " ").strip()


def bit(value: int, position: int) -> bool:
    """True when bit ``position`` of ``value`` is set."""
    return bool((value >> position) & 1)
