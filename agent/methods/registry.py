"""The one explicit table of sanitisation methods (not discovered by file name).

Host overwrites (``overwrite.*``) and the firmware methods (ATA/SCSI/NVMe sanitize, ATA security
erase, NVMe format), each with the options class a profile step may set. A method that cannot
run on a drive refuses in its own ``check()``, so a purge profile refuses the drive instead of
falling back to something weaker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from agent.errors import ProfileError
from agent.methods import ata_sanitize, ata_security_erase, nvme_format, nvme_sanitize, scsi_sanitize
from agent.methods.base import Method
from agent.methods.firmware import SanitizeOptions
from agent.methods.overwrite import OverwriteOptions, OverwritePattern, OverwriteRandom, OverwriteZero


@dataclass(frozen=True)
class NoOptions:
    """Methods without options."""


@dataclass(frozen=True)
class MethodSpec:
    """How to build a method from a profile step."""

    name: str
    options: type[Any]
    factory: Callable[[Any], Method]


FIRMWARE_METHODS = (
    "ata.sanitize.crypto",
    "ata.sanitize.block",
    "ata.sanitize.overwrite",
    "ata.security_erase.normal",
    "ata.security_erase.enhanced",
    "nvme.sanitize.crypto",
    "nvme.sanitize.block",
    "nvme.sanitize.overwrite",
    "nvme.format.user_erase",
    "nvme.format.crypto",
    "scsi.sanitize.crypto",
    "scsi.sanitize.block",
    "scsi.sanitize.overwrite",
)

METHODS: dict[str, MethodSpec] = {
    "overwrite.zero": MethodSpec("overwrite.zero", NoOptions, lambda _o: OverwriteZero(OverwriteOptions())),
    "overwrite.pattern": MethodSpec("overwrite.pattern", OverwriteOptions, OverwritePattern),
    "overwrite.random": MethodSpec("overwrite.random", NoOptions, lambda _o: OverwriteRandom(OverwriteOptions())),
    **{
        f"{interface}.sanitize.{action}": MethodSpec(f"{interface}.sanitize.{action}", SanitizeOptions,
                                                     module.factory(action))
        for interface, module in (("ata", ata_sanitize), ("nvme", nvme_sanitize), ("scsi", scsi_sanitize))
        for action in ("crypto", "block", "overwrite")
    },
    "ata.security_erase.normal": MethodSpec("ata.security_erase.normal", NoOptions,
                                            ata_security_erase.factory(enhanced=False)),
    "ata.security_erase.enhanced": MethodSpec("ata.security_erase.enhanced", NoOptions,
                                              ata_security_erase.factory(enhanced=True)),
    "nvme.format.user_erase": MethodSpec("nvme.format.user_erase", NoOptions, nvme_format.factory(crypto=False)),
    "nvme.format.crypto": MethodSpec("nvme.format.crypto", NoOptions, nvme_format.factory(crypto=True)),
}
assert set(FIRMWARE_METHODS) <= set(METHODS)


def option_names(name: str) -> set[str]:
    """Option keys a method accepts in a profile step."""
    return {field.name for field in fields(METHODS[name].options)}


def build(name: str, options: Mapping[str, Any]) -> Method:
    """Instantiate a method from its name and (already validated) options."""
    spec = METHODS.get(name)
    if spec is None:
        raise ProfileError(f"unknown method {name!r}")
    return spec.factory(spec.options(**options))
