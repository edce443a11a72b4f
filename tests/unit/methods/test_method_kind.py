"""Firmware or host is declared on the method class, not guessed from its name."""

from __future__ import annotations

import pytest

from agent.methods.base import Method, MethodKind
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


# NIST SP 800-88 Rev. 1 Table A as this station applies it (STANDARDS.md, agent.methods.firmware's docstring):
# the level each method reaches on magnetic media and on flash. The declarations must say exactly this.
NIST_TABLE = {
    "overwrite.zero": ("clear", "clear"), "overwrite.pattern": ("clear", "clear"),
    "overwrite.random": ("clear", "clear"),
    **{f"{interface}.sanitize.crypto": ("clear", "clear") for interface in ("ata", "nvme", "scsi")},
    **{f"{interface}.sanitize.block": ("clear", "purge") for interface in ("ata", "nvme", "scsi")},
    "ata.sanitize.overwrite": ("purge", "clear"), "scsi.sanitize.overwrite": ("purge", "clear"),
    "nvme.sanitize.overwrite": ("purge", "purge"),
    "ata.security_erase.normal": ("clear", "clear"), "ata.security_erase.enhanced": ("purge", "clear"),
    "nvme.format.user_erase": ("purge", "purge"), "nvme.format.crypto": ("clear", "clear"),
}


def _built(name: str) -> Method:
    return build(name, {"pattern": "a5"} if name == "overwrite.pattern" else {})


def test_every_method_declares_the_level_it_reaches_on_each_media() -> None:
    from agent.vocabulary import MEDIA

    assert set(NIST_TABLE) == set(METHODS)
    for name, (magnetic, flash) in NIST_TABLE.items():
        reach = METHODS[name].reach
        assert _built(name).reach is reach  # the registry reads the row the method uses
        assert reach.on("hdd").level.value == magnetic, name
        assert [reach.on(media).level.value for media in MEDIA if media != "hdd"] == [flash] * 3, name
        assert all(reach.on(media).reason for media in MEDIA)


def test_the_declared_technique_is_what_the_certificate_printed_from_the_name() -> None:
    # the rule the declaration replaced: no certificate of a known method changes its technique
    from agent.methods.registry import technique_of

    def by_name(method: str) -> str:
        if method.startswith("overwrite.") or method.endswith(".overwrite"):
            return "overwrite"
        if method.endswith(".crypto"):
            return "crypto erase"
        if method.endswith(".block") or method.endswith("user_erase"):
            return "block erase"
        return "other"

    for name in METHODS:
        assert technique_of(name).value == by_name(name), name
    assert technique_of("-") == technique_of("vendor.secret_erase") == "other"


def test_a_reach_must_declare_every_media() -> None:
    from agent.methods.base import Applicability, Level, Reach, Technique

    with pytest.raises(ValueError, match="no level declared for media usb, virtual"):
        Reach(Technique.OVERWRITE, {"hdd": Applicability(Level.CLEAR, "x"), "ssd": Applicability(Level.CLEAR, "y")})
    assert Level.PURGE.at_least(Level.CLEAR) and not Level.CLEAR.at_least(Level.PURGE)
    assert Level.DESTROY.at_least(Level.PURGE) and Level.CLEAR.at_least(Level.CLEAR)
