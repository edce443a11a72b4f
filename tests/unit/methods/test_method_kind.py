"""Firmware or host is declared on the method class, not guessed from its name."""

from __future__ import annotations

import pytest

from agent.methods.base import MethodKind
from agent.methods.firmware import FirmwareMethod
from agent.methods.registry import FIRMWARE_METHODS, METHODS, build, method_kind, runs_in_firmware


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_declares_its_kind_and_it_matches_its_class(name: str) -> None:
    method = build(name, {"pattern": "a5"} if name == "overwrite.pattern" else {})
    assert isinstance(method, METHODS[name].method)
    assert method.kind in (MethodKind.FIRMWARE, MethodKind.HOST)
    assert (method.kind is MethodKind.FIRMWARE) == isinstance(method, FirmwareMethod) == (name in FIRMWARE_METHODS)
    assert method_kind(name) is method.kind
    assert runs_in_firmware(name) is (method.kind is MethodKind.FIRMWARE)


def test_the_old_name_rule_agrees_for_every_known_method() -> None:
    # the rule the kind replaced ("not overwrite.*" is firmware): no recorded job changes meaning
    for name in METHODS:
        assert runs_in_firmware(name) is (not name.startswith("overwrite."))


@pytest.mark.parametrize(("name", "firmware"), [(None, False), ("", False), ("vendor.secret_erase", True)])
def test_unknown_or_missing_methods(name: str | None, firmware: bool) -> None:
    # unknown: it may still be running in the drive, so it is never taken for a finished host overwrite
    assert runs_in_firmware(name) is firmware
    if name:
        assert method_kind(name) is None


def test_the_password_recovery_hook_is_the_security_erase_methods_only() -> None:
    # the resume hook is chosen by the method's class, where the name prefix chose it before
    from agent.methods.ata_security_erase import AtaSecurityErase

    for name, spec in METHODS.items():
        assert issubclass(spec.method, AtaSecurityErase) is name.startswith("ata.security_erase.")
