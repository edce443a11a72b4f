"""Host overwrite (Clear): one pass of zeros, a pattern or an AES-256-CTR stream over every LBA.

NIST SP 800-88 Rev. 1 Table A-5..A-8: a single overwrite pass is Clear for HDDs and for flash
(flash keeps spare blocks the host cannot address, so overwrite is never Purge there). Multi-pass
patterns add time, not assurance.

Hidden areas. Clear by overwrite covers "all user-addressable storage locations", but the host can
only write what the kernel's block device exposes. On an ATA drive a Host Protected Area, a Device
Configuration Overlay or a reduced Accessible Max Address hides the last LBAs from the kernel, and
they keep whatever they held. So before the first write, on a drive the probe can talk to (ATA
through SAT pass-through):

1. the native and DCO maxima are read without changing anything
   (:func:`agent.methods.hidden_areas.detect_hidden_areas`);
2. anything hidden is restored the way the firmware methods do it
   (:func:`agent.methods.hidden_areas.restore_hidden_areas`, non-volatile);
3. the kernel is made to re-read the capacity (:func:`agent.transport.capacity.rescan_capacity`)
   whenever the block device's size differs from what the drive now reports, and the size is
   read back and compared — a rescan is never assumed to have worked.

If any step fails — a maximum cannot be read (DCO FREEZE LOCK makes even DEVICE CONFIGURATION
IDENTIFY abort), the drive refuses the restore (SET MAX frozen or locked, DCO frozen), the path
refuses the commands, or the kernel keeps the old size — the job is refused **before anything is
written**, with route ``hold`` and an operator instruction (:class:`~agent.methods.base.Blocked`).
Refusing rather than overwriting what is visible and recording less: a certificate of Clear "of
the drive" that leaves sectors unwritten is exactly the gap an auditor looks for, and these states
are transient — a power cycle clears freeze locks, a re-plug makes the kernel read the size again —
so the drive comes back for a whole-drive Clear instead of getting a partial one. The restore
itself changes no user data.

Drives the probe cannot talk to (loop devices, virtual disks, USB bridges that refuse pass-through)
are overwritten as before; the method details then say that hidden areas could not be checked.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from agent.errors import AgentError, JobInterrupted, NotSupported
from agent.methods.base import (
    Applicability,
    Blocked,
    Level,
    MethodContext,
    MethodEvidence,
    MethodKind,
    MethodOutcome,
    Reach,
    Target,
    Technique,
)
from agent.methods.capabilities import PASSTHROUGH_INSTRUCTION, Capabilities
from agent.methods.hidden_areas import HiddenAreaReport, detect_hidden_areas, restore_hidden_areas
from agent.transport.capacity import rescan_capacity
from agent.transport.commands import Transport
from agent.transport.pipeline import DEFAULT_CHUNK, WritePipeline
from agent.verify.expectation import AesCtrStream, Expectation, Pattern, Zero
from agent.vocabulary import FLASH_MEDIA

# Conservative rate for estimates when nothing better is known (a SATA HDD's outer tracks).
ESTIMATE_BYTES_PER_SECOND = 150e6


def _chunk_for(expectation: Expectation, alignment: int) -> int:
    """Largest chunk ≤ DEFAULT_CHUNK whose length keeps a repeating pattern's phase fixed."""
    period = len(expectation.pattern) if isinstance(expectation, Pattern) else 1
    unit = alignment * period // math.gcd(alignment, period)
    return max(unit, DEFAULT_CHUNK // unit * unit)


def overwrite(context: MethodContext, expectation: Expectation) -> tuple[int, float]:
    """Write ``expectation`` over the whole device and flush; return (bytes, seconds)."""
    device = context.device
    size = device.size
    chunk = _chunk_for(expectation, device.alignment)
    # zeros and patterns are the same in every chunk: fill each pool buffer once
    constant = not isinstance(expectation, AesCtrStream)
    filled: set[int] = set()
    started = time.monotonic()
    pipeline = WritePipeline(device, chunk=chunk)
    last_report = 0.0
    try:
        offset = 0
        while offset < size:
            length = min(chunk, size - offset)
            index, buffer = pipeline.buffer()
            if not constant or index not in filled:
                expectation.fill(offset, buffer[:chunk] if constant else buffer[:length])
                filled.add(index)
            pipeline.submit(index, offset, length)
            offset += length
            now = time.monotonic()
            if now - last_report >= 0.2:
                last_report = now
                if context.cancelled():
                    raise JobInterrupted("cancelled during overwrite")
                context.progress("overwrite", offset, size)
        pipeline.drain()
    finally:
        pipeline.close()
    device.flush()
    context.progress("overwrite", size, size)
    return size, time.monotonic() - started


POWER_CYCLE_INSTRUCTION = (
    "power-cycle the drive after the station has booted — hot-plug it into a direct-attach SATA bay (or re-plug "
    "its power and data), not through a BIOS boot that freezes it again — and run the job again; if the drive "
    "stays frozen or locked, take a firmware profile whose SANITIZE reaches hidden areas by itself (nist-purge) or "
    "route the drive to destruction"
)
REPLUG_INSTRUCTION = (
    "re-plug the drive (hot-unplug and reconnect it) so the kernel identifies it afresh with its restored capacity, "
    "then run the job again — the restore is kept by the drive, so the next job finds nothing hidden and overwrites "
    "the whole medium"
)


def _hidden_area_scope(target: Target) -> tuple[Capabilities | None, str]:
    """The ATA capabilities to check hidden areas with, or None and why they cannot be checked."""
    capabilities, identity = target.capabilities, target.identity
    if target.transport is None:
        return None, (f"no command pass-through to this {identity.transport} device (a loop device, a virtual disk "
                      "or a drive the station cannot send ATA commands to)")
    if not isinstance(capabilities, Capabilities):
        return None, "the drive's capabilities could not be read through its transport (see capabilities-error)"
    if capabilities.blocked is not None:
        via = "a USB bridge" if capabilities.usb else "the adapter between host and drive"
        return None, f"{via} refused ATA pass-through ({capabilities.blocked})"
    if capabilities.interface != "ata" or capabilities.ata is None:
        return None, (f"this is an {capabilities.interface.upper()} drive: HPA, DCO and Accessible Max Address are "
                      "ATA feature sets, so no ATA hidden area was looked for")
    if capabilities.ata.max_lba is None:
        return None, "IDENTIFY DEVICE reports no user-addressable sector count"
    return capabilities, ""


def _unchecked(device_size: int, why: str) -> dict[str, Any]:
    return {"checked": False, "reason": (f"hidden areas (HPA/DCO/AMAC) not checked: {why}; the overwrite covers the "
                                         f"{device_size} bytes the kernel exposes, which may be fewer than the "
                                         "medium holds"),
            "max_lba_before": None, "max_lba_after": None, "native_max_lba": None, "actions": []}


def _refuse_unreadable(name: str, report: HiddenAreaReport) -> None:
    errors = "; ".join(report.errors)
    if report.passthrough_blocked:
        raise Blocked("passthrough-blocked", f"{name}: the path to the drive refused the commands that read its native "
                      f"maximum ({errors}), so a hidden area (HPA/DCO/AMAC) cannot be ruled out and an overwrite "
                      "would not be provably whole-drive Clear", PASSTHROUGH_INSTRUCTION)
    if report.refused == "dco-identify":
        raise Blocked("dco-frozen", f"{name}: the drive has the Device Configuration Overlay feature set and refused "
                      f"DEVICE CONFIGURATION IDENTIFY ({errors}) — DEVICE CONFIGURATION FREEZE LOCK, usually sent by "
                      "the BIOS at boot, makes it refuse every DCO command until it loses power — so whether a DCO "
                      f"hides sectors beyond LBA {report.max_lba_before} cannot be established and an overwrite would "
                      "not be provably whole-drive Clear; nothing was written", POWER_CYCLE_INSTRUCTION)
    raise Blocked("hidden-area-unchecked", f"{name}: the drive refused the command that reads its native maximum "
                  f"({errors}), so a hidden area (HPA/AMAC) cannot be ruled out; nothing was written",
                  POWER_CYCLE_INSTRUCTION)


def _refuse_unrestored(name: str, report: HiddenAreaReport) -> None:
    wanted = max(value for value in (report.native_max_lba, report.dco_max_lba, report.max_lba_before)
                 if value is not None)
    hidden = f"LBAs {(report.max_lba_after or report.max_lba_before or 0) + 1}..{wanted}"
    errors = "; ".join(report.errors) or "the drive still reports the reduced maximum after the restore"
    if report.passthrough_blocked:
        raise Blocked("passthrough-blocked", f"{name}: {hidden} are hidden and the path to the drive refused the "
                      f"restore ({errors}); nothing was written", PASSTHROUGH_INSTRUCTION)
    if report.refused in ("dco-identify", "dco-restore"):
        raise Blocked("dco-frozen", f"{name}: a Device Configuration Overlay hides {hidden} and the drive refused "
                      f"to restore it ({errors}: DEVICE CONFIGURATION FREEZE LOCK, usually sent by the BIOS); an "
                      "overwrite would leave them unwritten; nothing was written", POWER_CYCLE_INSTRUCTION)
    raise Blocked("hidden-area-locked", f"{name}: a Host Protected Area / reduced Accessible Max Address hides "
                  f"{hidden} and the drive refused to restore it ({errors}: SET MAX frozen or password-locked, "
                  "usually by the BIOS); an overwrite would leave them unwritten; nothing was written",
                  POWER_CYCLE_INSTRUCTION)


def prepare_hidden_areas(name: str, context: MethodContext) -> dict[str, Any]:
    """Detect and restore hidden areas and make the block device expose the whole native capacity.

    Returns the record for the method details (max LBA before/after, kernel size before/after);
    raises :class:`Blocked` (route hold) before anything is written when that cannot be achieved.
    """
    device = context.device
    capabilities, why = _hidden_area_scope(context.target)
    if capabilities is None or capabilities.ata is None:
        return _unchecked(device.size, why)  # in the method details (the job record), as before no extra event
    transport: Transport | None = context.target.transport
    assert transport is not None  # _hidden_area_scope answered None without one
    report = detect_hidden_areas(transport, capabilities)
    context.journal("hidden-areas-detected", report.to_json())
    if report.errors:
        _refuse_unreadable(name, report)
    if report.hidden:
        report = restore_hidden_areas(transport, capabilities)
        context.journal("hidden-areas", report.to_json())
        if not report.complete:
            _refuse_unrestored(name, report)
    assert report.max_lba_after is not None  # complete, or nothing hidden and read from IDENTIFY
    sector = capabilities.ata.logical_sector_size
    expected = (report.max_lba_after + 1) * sector
    kernel_before, rescan = device.size, None
    if kernel_before != expected:
        try:
            rescan = rescan_capacity(device, transport)
        except AgentError as exc:
            rescan = f"failed: {exc.message}"
        context.journal("kernel-capacity", {"expected_bytes": expected, "before_bytes": kernel_before,
                                            "after_bytes": device.size, "rescan": rescan})
        if device.size != expected:
            raise Blocked("kernel-capacity-stale", f"{name}: the drive reports max LBA {report.max_lba_after} "
                          f"({expected} bytes) but the kernel's block device exposes {device.size} bytes even after "
                          f"a rescan ({rescan}); an overwrite would miss the difference; nothing was written",
                          REPLUG_INSTRUCTION)
    return {**report.to_json(), "checked": True, "kernel_bytes_before": kernel_before,
            "kernel_bytes_after": device.size, "kernel_rescan": rescan, "logical_sector_size": sector}


@dataclass(frozen=True)
class OverwriteOptions:
    """Options shared by the overwrite methods."""

    pattern: str | None = None  # hex, overwrite.pattern only


def _on_flash(media: str) -> Applicability:
    return Applicability(Level.CLEAR, f"host overwrite on {media} flash: Clear only — spare blocks are unreachable "
                                      "from the host")


HOST_OVERWRITE = Reach(Technique.OVERWRITE, {
    "hdd": Applicability(Level.CLEAR, "host overwrite of every user-addressable LBA: Clear for HDDs "
                                      "(NIST 800-88 Table A-8)"),
    "virtual": Applicability(Level.CLEAR, "host overwrite of every LBA of virtual media: Clear"),
    **{media: _on_flash(media) for media in FLASH_MEDIA},
})
"""Every host overwrite: Clear on every media (check() adds what it found of the hidden areas)."""


class _Overwrite:
    name = ""
    summary = ""
    kind = MethodKind.HOST
    reach = HOST_OVERWRITE

    def __init__(self, options: OverwriteOptions) -> None:
        self.options = options

    def check(self, target: Target) -> Applicability:
        identity = target.identity
        if identity.read_only:
            raise NotSupported(f"{self.name}: device is read-only")
        if identity.size_bytes <= 0:
            raise NotSupported(f"{self.name}: no medium")
        declared = self.reach.on(identity.media)
        reason = declared.reason
        capabilities, why = _hidden_area_scope(target)
        if capabilities is None:
            reason += f"; hidden areas (HPA/DCO/AMAC) not checked: {why}"
        else:
            reason += ("; ATA hidden areas (HPA/DCO/AMAC) are restored and the kernel made to expose the native "
                       "capacity before writing, else the job is refused")
        return Applicability(declared.level, reason)

    def estimate(self, target: Target) -> float:
        return target.identity.size_bytes / ESTIMATE_BYTES_PER_SECOND

    def expectation(self) -> Expectation:
        raise NotImplementedError

    def run(self, context: MethodContext) -> MethodOutcome:
        expectation = self.expectation()
        hidden = prepare_hidden_areas(self.name, context)  # raises Blocked before any write
        context.journal("overwrite-start", {"method": self.name, "expectation": expectation.describe(),
                                            "bytes": context.device.size})
        written, seconds = overwrite(context, expectation)
        return MethodOutcome(
            method=self.name,
            level=self.check(context.target).level,
            expectation=expectation,
            bytes_written=written,
            seconds=seconds,
            evidence=MethodEvidence(hidden_areas=hidden, observations={
                "passes": 1, "expectation": expectation.describe(), "o_direct": context.device.direct}),
        )


class OverwriteZero(_Overwrite):
    """One pass of zeros."""

    name = "overwrite.zero"
    summary = "one pass of zeros over every LBA"

    def expectation(self) -> Expectation:
        return Zero()


class OverwritePattern(_Overwrite):
    """One pass of a repeating hex pattern."""

    name = "overwrite.pattern"
    summary = "one pass of a repeating byte pattern over every LBA"

    def __init__(self, options: OverwriteOptions) -> None:
        super().__init__(options)
        if not options.pattern:
            raise NotSupported("overwrite.pattern needs a 'pattern' option (hex bytes)")
        self._pattern = Pattern.from_hex(options.pattern)

    def expectation(self) -> Expectation:
        return self._pattern


class OverwriteRandom(_Overwrite):
    """One pass of an AES-256-CTR keystream (fresh key per job; recorded for verification)."""

    name = "overwrite.random"
    summary = "one pass of AES-256-CTR pseudorandom data over every LBA"

    def expectation(self) -> Expectation:
        return AesCtrStream.generate()
