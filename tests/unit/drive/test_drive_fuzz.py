"""Property tests: on any input the parsers return a result or raise IdentifyParseError only."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.drive import (
    IdentifyParseError,
    parse_ata_identify,
    parse_block_device_characteristics_vpd,
    parse_inquiry,
    parse_nvme_id_ctrl,
    parse_nvme_id_ns,
    parse_read_capacity16,
    parse_report_supported_opcodes_sanitize,
)
from tests.unit.drive.drive_builders import (
    ata_identify,
    nvme_id_ctrl,
    nvme_id_ns,
    recorded,
    rsoc_all_commands,
    scsi_inquiry,
)

PARSERS: list[tuple[str, Callable[[bytes], Any], int]] = [
    ("ata", parse_ata_identify, 512),
    ("nvme-ctrl", parse_nvme_id_ctrl, 4096),
    ("nvme-ns", parse_nvme_id_ns, 4096),
    ("inquiry", parse_inquiry, 96),
    ("rc16", parse_read_capacity16, 32),
    ("vpd-b1", parse_block_device_characteristics_vpd, 64),
    ("rsoc", parse_report_supported_opcodes_sanitize, 256),
]
SEEDS: dict[str, bytes] = {
    "ata": recorded("ata-samsung-ssd-870-evo.bin"),
    "nvme-ctrl": nvme_id_ctrl(),
    "nvme-ns": nvme_id_ns(),
    "inquiry": scsi_inquiry(),
    "rc16": bytes(8) + (512).to_bytes(4, "big") + bytes(20),
    "vpd-b1": bytes((0, 0xB1, 0, 0x3C, 0, 1, 0, 2)) + bytes(56),
    "rsoc": rsoc_all_commands(),
}


def _check(parser: Callable[[bytes], Any], data: bytes) -> None:
    try:
        result = parser(data)
    except IdentifyParseError as error:
        assert error.message and "\n" not in error.message
        return
    json.dumps(result.to_json())  # a parsed result always renders


@pytest.mark.parametrize(("name", "parser", "size"), PARSERS, ids=[name for name, _, _ in PARSERS])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_arbitrary_bytes(name: str, parser: Callable[[bytes], Any], size: int, data: st.DataObject) -> None:
    del name
    blob = data.draw(st.one_of(st.binary(max_size=size + 16), st.binary(min_size=size, max_size=size)))
    _check(parser, blob)


@pytest.mark.parametrize(("name", "parser", "size"), PARSERS, ids=[name for name, _, _ in PARSERS])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_mutated_valid_input(
    name: str, parser: Callable[[bytes], Any], size: int, data: st.DataObject
) -> None:
    seed = bytearray(SEEDS[name])
    del size
    for _ in range(data.draw(st.integers(min_value=1, max_value=8))):
        offset = data.draw(st.integers(min_value=0, max_value=len(seed) - 1))
        seed[offset] = data.draw(st.integers(min_value=0, max_value=255))
    _check(parser, bytes(seed))


@settings(max_examples=200, deadline=None)
@given(words=st.dictionaries(st.integers(min_value=47, max_value=254), st.integers(0, 0xFFFF), max_size=40))
def test_ata_with_valid_checksum_and_random_words(words: dict[int, int]) -> None:
    # Random feature words behind a correct checksum reach every decoding branch.
    _check(parse_ata_identify, ata_identify(patch=words))
