"""What the medium should hold after a method: the overwrite writes it, verification regenerates it.

An expectation produces the exact bytes for any aligned offset, so full and sampled read-back can
check any location without storing what was written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from agent.errors import ConfigError
from agent.verify import fastcompare

_ZERO_BLOCK = bytes(8 << 20)


class Expectation(Protocol):
    """Expected content of the whole device."""

    @property
    def kind(self) -> str:
        """zero, pattern or random."""

    def fill(self, offset: int, buffer: memoryview) -> None:
        """Write the expected bytes of ``[offset, offset + len(buffer))`` into ``buffer``."""

    def matches(self, offset: int, data: memoryview) -> bool:
        """True if ``data`` read at ``offset`` is exactly what is expected."""

    def describe(self) -> dict[str, Any]:
        """JSON description, enough to regenerate the expectation later."""


def _first_difference(data: bytes, expected: bytes) -> int:
    low, high = 0, len(data)
    # bisect on equal prefixes: memcmp speed, no per-byte Python loop on large buffers
    while high - low > 4096:
        middle = (low + high) // 2
        if data[low:middle] != expected[low:middle]:
            high = middle
        else:
            low = middle
    for index in range(low, high):
        if data[index] != expected[index]:
            return index
    return -1


@dataclass(frozen=True)
class Zero:
    """All bytes zero (overwrite.zero, most firmware erases)."""

    kind: str = "zero"

    def fill(self, offset: int, buffer: memoryview) -> None:
        """Zero the buffer."""
        length = len(buffer)
        done = 0
        while done < length:
            step = min(length - done, len(_ZERO_BLOCK))
            buffer[done : done + step] = _ZERO_BLOCK[:step]
            done += step

    def matches(self, offset: int, data: memoryview) -> bool:
        """Compare against zeros at memcmp speed, without copying the data."""
        if data.readonly:
            return data.tobytes().count(0) == len(data)
        return fastcompare.is_zero(data)

    def first_difference(self, offset: int, data: memoryview) -> int:
        """Index of the first unexpected byte in ``data`` (-1 if none)."""
        raw = data.tobytes()
        stripped = raw.lstrip(b"\0")
        return -1 if not stripped else len(raw) - len(stripped)

    def describe(self) -> dict[str, Any]:
        """JSON description."""
        return {"kind": "zero"}


class _Generated:
    """Comparison for expectations that can generate their expected bytes for any range."""

    def _expected(self, offset: int, length: int) -> bytes:
        raise NotImplementedError

    def matches(self, offset: int, data: memoryview) -> bool:
        """Generate the expected bytes for this range and compare them with ``data``."""
        expected = self._expected(offset, len(data))
        return data.tobytes() == expected if data.readonly else fastcompare.equal(data, expected)

    def first_difference(self, offset: int, data: memoryview) -> int:
        """Index of the first unexpected byte (-1 if none)."""
        return _first_difference(data.tobytes(), self._expected(offset, len(data)))


@dataclass(frozen=True)
class Pattern(_Generated):
    """A repeating byte pattern anchored at offset 0 of the device."""

    pattern: bytes
    kind: str = "pattern"

    def __post_init__(self) -> None:
        if not 1 <= len(self.pattern) <= 4096:
            raise ConfigError("pattern must be 1 to 4096 bytes")

    @classmethod
    def from_hex(cls, text: str) -> Pattern:
        """Parse ``"55AA"``-style hex (spaces and a 0x prefix allowed)."""
        cleaned = text.replace(" ", "").removeprefix("0x").removeprefix("0X")
        try:
            raw = bytes.fromhex(cleaned)
        except ValueError as exc:
            raise ConfigError(f"pattern {text!r} is not hex bytes") from exc
        return cls(raw)

    def _expected(self, offset: int, length: int) -> bytes:
        period = len(self.pattern)
        phase = offset % period
        repeats = (phase + length) // period + 1
        return (self.pattern * repeats)[phase : phase + length]

    def fill(self, offset: int, buffer: memoryview) -> None:
        """Write the pattern with the right phase."""
        buffer[:] = self._expected(offset, len(buffer))


    def describe(self) -> dict[str, Any]:
        """JSON description."""
        return {"kind": "pattern", "pattern": self.pattern.hex()}


@dataclass(frozen=True)
class AesCtrStream(_Generated):
    """AES-256-CTR keystream over the whole device; any 16-byte-aligned offset is addressable.

    The counter block for byte ``offset`` is ``nonce + offset // 16`` (mod 2^128), so a verifier
    holding the key and nonce regenerates any sample without replaying the stream from the start.
    """

    key: bytes
    nonce: bytes
    kind: str = "random"

    def __post_init__(self) -> None:
        if len(self.key) != 32 or len(self.nonce) != 16:
            raise ConfigError("AES-256-CTR needs a 32-byte key and a 16-byte nonce")

    @classmethod
    def generate(cls) -> AesCtrStream:
        """A fresh key and nonce from the OS CSPRNG."""
        return cls(os.urandom(32), os.urandom(16))

    def _counter(self, offset: int) -> bytes:
        if offset % 16:
            raise ValueError("keystream offsets must be 16-byte aligned")
        value = (int.from_bytes(self.nonce, "big") + offset // 16) % (1 << 128)
        return value.to_bytes(16, "big")

    def encryptor_at(self, offset: int) -> Any:
        """A CTR encryptor positioned at ``offset``; feed it zeros to get keystream."""
        return Cipher(algorithms.AES(self.key), modes.CTR(self._counter(offset))).encryptor()

    def _expected(self, offset: int, length: int) -> bytes:
        encryptor = self.encryptor_at(offset)
        if length <= len(_ZERO_BLOCK):
            return bytes(encryptor.update(memoryview(_ZERO_BLOCK)[:length]))
        return bytes(encryptor.update(bytes(length)))

    def fill(self, offset: int, buffer: memoryview) -> None:
        """Keystream straight into the buffer (no intermediate copy)."""
        encryptor = self.encryptor_at(offset)
        length = len(buffer)
        done = 0
        while done < length:
            step = min(length - done, len(_ZERO_BLOCK))
            encryptor.update_into(memoryview(_ZERO_BLOCK)[:step], buffer[done : done + step])
            done += step


    def describe(self) -> dict[str, Any]:
        """Key and nonce are recorded on purpose: they only regenerate the overwrite data."""
        return {"kind": "random", "cipher": "AES-256-CTR", "key": self.key.hex(), "nonce": self.nonce.hex()}


def expectation_from_spec(text: str) -> Zero | Pattern:
    """Parse the CLI's ``zero`` or ``pattern:HEX``."""
    if text == "zero":
        return Zero()
    if text.startswith("pattern:"):
        return Pattern.from_hex(text.split(":", 1)[1])
    raise ConfigError(f"expectation {text!r}: use 'zero' or 'pattern:HEX'")


def expectation_from_json(data: dict[str, Any]) -> Zero | Pattern | AesCtrStream:
    """Inverse of ``describe()``; a damaged record is a ConfigError, never a KeyError or ValueError."""
    kind = data.get("kind")
    try:
        if kind == "zero":
            return Zero()
        if kind == "pattern":
            return Pattern(bytes.fromhex(str(data["pattern"])))
        if kind == "random":
            return AesCtrStream(bytes.fromhex(str(data["key"])), bytes.fromhex(str(data["nonce"])))
    except KeyError as exc:
        raise ConfigError(f"recorded {kind} expectation lacks {exc.args[0]!r}") from None
    except ValueError as exc:  # not hex, or a key/nonce of the wrong length
        raise ConfigError(f"recorded {kind} expectation is damaged: {exc}") from None
    raise ConfigError(f"unknown expectation kind {kind!r}")
