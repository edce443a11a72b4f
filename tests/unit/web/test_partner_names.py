"""Which partner a manifest belongs to is decided by one comparison: ASCII letters without regard to case, and
nothing else folded — no Unicode case folding or compatibility form may make two partners one."""

from __future__ import annotations

import pytest

from agent.web.fleet_partner import _same_partner


@pytest.mark.parametrize(("first", "second"), [
    ("City Schools Trust", "city schools trust"), ("schools", "SCHOOLS"), ("Straße Ltd", "Straße Ltd")])
def test_the_same_partner(first: str, second: str) -> None:
    assert _same_partner(first, second) and _same_partner(second, first)


@pytest.mark.parametrize(("first", "second"), [
    ("Straße Ltd", "Strasse Ltd"),      # casefold() made these one
    ("\u212aent Reuse", "Kent Reuse"),  # the Kelvin sign lowers to k
    ("\uff33\uff23\uff28\uff2f\uff2f\uff2c\uff33", "schools"),  # full width
    ("\u0410cme", "Acme"),               # Cyrillic A
    ("schools ", "schools"),
])
def test_different_partners(first: str, second: str) -> None:
    assert not _same_partner(first, second) and not _same_partner(second, first)
