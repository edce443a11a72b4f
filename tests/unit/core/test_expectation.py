"""Expectations regenerate exactly what the overwrite wrote, at any aligned offset."""

from __future__ import annotations

import mmap

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.errors import ConfigError
from agent.verify.expectation import (
    AesCtrStream,
    Pattern,
    Zero,
    expectation_from_json,
    expectation_from_spec,
)


def _buffer(size: int) -> memoryview:
    return memoryview(mmap.mmap(-1, size))


@settings(max_examples=30, deadline=None)
@given(offset_blocks=st.integers(0, 10_000), length_blocks=st.integers(1, 64))
def test_aes_ctr_is_seekable(offset_blocks: int, length_blocks: int) -> None:
    stream = AesCtrStream(bytes(range(32)), bytes(16))
    offset, length = offset_blocks * 16, length_blocks * 16
    # reference: one continuous keystream from offset 0 (the textbook definition)
    reference = Cipher(algorithms.AES(stream.key), modes.CTR(stream.nonce)).encryptor()
    whole = reference.update(bytes(offset + length))
    buffer = _buffer(length)
    stream.fill(offset, buffer)
    assert buffer.tobytes() == whole[offset:]
    assert stream.matches(offset, buffer)


def test_aes_counter_wraps_modulo_2_128() -> None:
    stream = AesCtrStream(bytes(32), b"\xff" * 16)
    buffer = _buffer(32)
    stream.fill(0, buffer)
    assert stream.matches(0, buffer)


def test_pattern_phase_across_offsets() -> None:
    pattern = Pattern.from_hex("0x55AA01")
    buffer = _buffer(10)
    pattern.fill(4, buffer)
    assert buffer.tobytes() == (b"\x55\xaa\x01" * 5)[1:11]
    assert pattern.matches(4, buffer)
    assert not pattern.matches(5, buffer)


def test_zero_first_difference() -> None:
    buffer = bytearray(8192)
    buffer[5000] = 1
    assert not Zero().matches(0, memoryview(buffer))
    assert Zero().first_difference(0, memoryview(buffer)) == 5000


def test_specs_and_round_trip() -> None:
    assert expectation_from_spec("zero") == Zero()
    assert expectation_from_spec("pattern:00ff") == Pattern(b"\x00\xff")
    stream = AesCtrStream.generate()
    assert expectation_from_json(stream.describe()) == stream
    for bad in ("ones", "pattern:xyz", "pattern:"):
        with pytest.raises(ConfigError):
            expectation_from_spec(bad)

