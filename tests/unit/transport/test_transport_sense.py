"""Sense decoding (SPC-5, SAT-4) against documented and constructed buffers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.transport.sense import (
    AtaRegisters,
    SenseKey,
    decode_sense,
    encode_ata_status_descriptor,
    encode_descriptor_sense,
    encode_fixed_sense,
)


def test_fixed_format_illegal_request_invalid_opcode() -> None:
    # What a USB bridge returns for an unknown CDB: fixed format, ILLEGAL REQUEST, 20h/00h.
    raw = bytes.fromhex("700005000000000a000000002000000000 00".replace(" ", ""))
    sense = decode_sense(raw)
    assert sense is not None
    assert not sense.descriptor_format and not sense.deferred
    assert sense.sense_key is SenseKey.ILLEGAL_REQUEST
    assert sense.asc_ascq == (0x20, 0x00)
    assert sense.progress is None and sense.ata is None
    assert sense.describe() == "ILLEGAL_REQUEST 20h/00h"


def test_fixed_format_progress_while_sanitizing() -> None:
    # NOT READY, LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS, SKSV=1, progress 8000h = 50 %.
    raw = bytes.fromhex("70000200000000 0a 00000000 04 1b 00 80 8000".replace(" ", ""))
    sense = decode_sense(raw)
    assert sense is not None
    assert sense.sense_key is SenseKey.NOT_READY and sense.asc_ascq == (0x04, 0x1B)
    assert sense.progress == 0x8000 and sense.progress_fraction == 0.5
    assert "50%" in sense.describe()


def test_fixed_format_progress_ignored_for_other_sense_keys() -> None:
    raw = encode_fixed_sense(SenseKey.MEDIUM_ERROR, 0x31, 0x03, progress=0x1234)
    sense = decode_sense(raw)
    assert sense is not None and sense.progress is None and sense.sense_key_specific is not None


def test_fixed_format_information_and_deferred() -> None:
    raw = bytearray(encode_fixed_sense(SenseKey.MEDIUM_ERROR, 0x11, 0x00, information=0x1000))
    raw[0] = 0xF1  # VALID + deferred error
    sense = decode_sense(bytes(raw))
    assert sense is not None and sense.deferred and sense.information == 0x1000


def test_descriptor_format_with_ata_status_return_identify_success() -> None:
    # libata answer to IDENTIFY via ATA PASS-THROUGH(16) with CK_COND=1: RECOVERED ERROR, 00h/1Dh,
    # ATA Status Return descriptor: count 1, device 40h, status 50h.
    raw = bytes.fromhex("7201001d0000000e090c000000010000000000004050")
    sense = decode_sense(raw)
    assert sense is not None and sense.descriptor_format
    assert sense.sense_key is SenseKey.RECOVERED_ERROR and sense.asc_ascq == (0x00, 0x1D)
    assert sense.ata == AtaRegisters(error=0, status=0x50, count=1, lba=0, device=0x40, extend=False)
    assert not sense.ata.failed


def test_descriptor_ata_status_return_48bit_lba_byte_order() -> None:
    # SAT-4: bytes 6..11 interleave LBA 31:24, 7:0, 39:32, 15:8, 47:40, 23:16.
    descriptor = bytes([0x09, 0x0C, 0x01, 0x04, 0x12, 0x34, 0x44, 0x11, 0x55, 0x22, 0x66, 0x33, 0x40, 0x51])
    sense = decode_sense(bytes([0x72, 0x0B, 0, 0, 0, 0, 0, len(descriptor)]) + descriptor)
    assert sense is not None and sense.ata is not None
    assert sense.ata.lba == 0x665544332211
    assert sense.ata.count == 0x1234
    assert sense.ata.extend and sense.ata.aborted and sense.ata.failed
    assert encode_ata_status_descriptor(sense.ata) == descriptor


def test_descriptor_sense_key_specific_progress_and_progress_descriptor() -> None:
    sense = decode_sense(encode_descriptor_sense(SenseKey.NOT_READY, 0x04, 0x1B, progress=0x4000))
    assert sense is not None and sense.progress == 0x4000
    # Progress indication descriptor 0Ah (SPC-5)
    progress_descriptor = bytes([0x0A, 0x06, 0x02, 0x04, 0x1B, 0x00, 0xC0, 0x00])
    sense = decode_sense(bytes([0x72, 0x00, 0x00, 0x16, 0, 0, 0, 8]) + progress_descriptor)
    assert sense is not None and sense.progress == 0xC000


def test_descriptor_information_and_command_specific() -> None:
    information = bytes([0x00, 0x0A, 0x80, 0]) + (0x123456789).to_bytes(8, "big")
    specific = bytes([0x01, 0x0A, 0, 0]) + (7).to_bytes(8, "big")
    body = information + specific
    sense = decode_sense(bytes([0x72, 0x03, 0x11, 0x00, 0, 0, 0, len(body)]) + body)
    assert sense is not None
    assert sense.information == 0x123456789 and sense.command_specific == 7


def test_fixed_format_ata_pass_through_results() -> None:
    # SAT-4: INFORMATION = ERROR, STATUS, DEVICE, COUNT(7:0); byte 8 EXTEND; 9..11 LBA(23:0)
    raw = bytes.fromhex("f00100045140050a80563412001d00000000")
    sense = decode_sense(raw, ata_pass_through=True)
    assert sense is not None and sense.ata is not None
    assert sense.ata == AtaRegisters(error=0x04, status=0x51, count=0x05, lba=0x123456, device=0x40, extend=True)
    assert decode_sense(raw).ata is None  # type: ignore[union-attr]


def test_empty_and_unknown_sense() -> None:
    assert decode_sense(b"") is None
    assert decode_sense(bytes(18)) is None
    assert decode_sense(b"\x7f\x00\x00") is None


def test_truncated_descriptor_is_ignored() -> None:
    raw = bytes([0x72, 0x01, 0x00, 0x1D, 0, 0, 0, 14, 0x09, 0x0C, 0x00])
    sense = decode_sense(raw)
    assert sense is not None and sense.ata is None


@given(st.binary(max_size=96))
def test_decoding_never_crashes(raw: bytes) -> None:
    decode_sense(raw)
    decode_sense(raw, ata_pass_through=True)


@given(
    st.integers(0, 0xFF),
    st.integers(0, 0xFF),
    st.integers(0, 0xFFFF),
    st.integers(0, (1 << 48) - 1),
    st.integers(0, 0xFF),
    st.booleans(),
)
def test_ata_descriptor_round_trip(error: int, status: int, count: int, lba: int, device: int, extend: bool) -> None:
    registers = AtaRegisters(error=error, status=status, count=count, lba=lba, device=device, extend=extend)
    sense = decode_sense(encode_descriptor_sense(SenseKey.RECOVERED_ERROR, 0, 0x1D, ata=registers))
    assert sense is not None and sense.ata == registers


def test_fixed_format_flags_partial_registers() -> None:
    # COUNT UPPER NONZERO set: COUNT(15:8) was non-zero but fixed format cannot carry it.
    raw = bytes.fromhex("f00100005040010ac0ffff00001d00000000")
    sense = decode_sense(raw, ata_pass_through=True)
    assert sense is not None and sense.ata is not None
    assert sense.ata.partial and sense.ata.count == 0x01 and sense.ata.lba == 0xFFFF
