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
from agent.methods.base import Method, MethodKind, Reach, Technique
from agent.methods.firmware import SanitizeOptions
from agent.methods.overwrite import HOST_OVERWRITE, OverwriteOptions, OverwritePattern, OverwriteRandom, OverwriteZero


@dataclass(frozen=True)
class NoOptions:
    """Methods without options."""


@dataclass(frozen=True)
class MethodSpec:
    """How to build a method from a profile step."""

    name: str
    options: type[Any]
    factory: Callable[[Any], Method]
    method: type[Any]
    """The method's class: what it declares about itself (``kind``) is read there, without building it."""
    reach: Reach
    """The row of the class's declared level rules this method is (technique, level by media)."""

    @property
    def kind(self) -> MethodKind:
        """Firmware or host, as the method class declares it."""
        kind: MethodKind = self.method.kind
        return kind


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
    "overwrite.zero": MethodSpec("overwrite.zero", NoOptions, lambda _o: OverwriteZero(OverwriteOptions()),
                                 OverwriteZero, HOST_OVERWRITE),
    "overwrite.pattern": MethodSpec("overwrite.pattern", OverwriteOptions, OverwritePattern, OverwritePattern,
                                    HOST_OVERWRITE),
    "overwrite.random": MethodSpec("overwrite.random", NoOptions, lambda _o: OverwriteRandom(OverwriteOptions()),
                                   OverwriteRandom, HOST_OVERWRITE),
    **{
        f"{interface}.sanitize.{action}": MethodSpec(f"{interface}.sanitize.{action}", SanitizeOptions,
                                                     module.factory(action), cls, cls.REACH[action])
        for interface, module, cls in (("ata", ata_sanitize, ata_sanitize.AtaSanitize),
                                       ("nvme", nvme_sanitize, nvme_sanitize.NvmeSanitize),
                                       ("scsi", scsi_sanitize, scsi_sanitize.ScsiSanitize))
        for action in ("crypto", "block", "overwrite")
    },
    **{
        f"ata.security_erase.{mode}": MethodSpec(f"ata.security_erase.{mode}", NoOptions,
                                                 ata_security_erase.factory(enhanced=mode == "enhanced"),
                                                 ata_security_erase.AtaSecurityErase,
                                                 ata_security_erase.AtaSecurityErase.REACH[mode])
        for mode in ("normal", "enhanced")
    },
    **{
        f"nvme.format.{action}": MethodSpec(f"nvme.format.{action}", NoOptions,
                                            nvme_format.factory(crypto=action == "crypto"), nvme_format.NvmeFormat,
                                            nvme_format.NvmeFormat.REACH[action])
        for action in ("user_erase", "crypto")
    },
}


def method_kind(name: str) -> MethodKind | None:
    """What a method declares it is (``MethodKind``); None for a name this station does not know."""
    spec = METHODS.get(name)
    return None if spec is None else spec.kind


def technique_of(name: str) -> Technique:
    """The technique a method declares (printed on certificates); ``other`` for a name this station does
    not know (the ``-`` of a profile that did not take the media, a method of another version)."""
    spec = METHODS.get(name)
    return Technique.OTHER if spec is None else spec.reach.technique


def runs_in_firmware(name: str | None) -> bool:
    """Whether a job's recorded method may still be running in the drive (a firmware method).

    A name this station does not know counts as firmware: such a job is never called interrupted
    behind the back of a sanitize that may still be running."""
    return bool(name) and method_kind(str(name)) is not MethodKind.HOST


assert set(FIRMWARE_METHODS) == {name for name in METHODS if method_kind(name) is MethodKind.FIRMWARE}


def option_names(name: str) -> set[str]:
    """Option keys a method accepts in a profile step."""
    return {field.name for field in fields(METHODS[name].options)}


def build(name: str, options: Mapping[str, Any]) -> Method:
    """Instantiate a method from its name and (already validated) options."""
    spec = METHODS.get(name)
    if spec is None:
        raise ProfileError(f"unknown method {name!r}")
    return spec.factory(spec.options(**options))
