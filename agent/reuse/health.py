"""Drive health from SMART: a pure parser of ``smartctl -j`` output and the scheme's health gate.

ATA: attributes 5 Reallocated_Sector_Ct, 197 Current_Pending_Sector and 198 Offline_Uncorrectable
(raw values) and the overall self-assessment. NVMe: the SMART / Health Information log (page 02h):
critical_warning (a bit field; any bit set is a warning), percentage_used (vendor estimate of life
used, may exceed 100) and media_errors (unrecovered data-integrity errors). Loop and other virtual
media have no SMART: their reading is ``not_applicable`` and the scheme decides whether such media
are acceptable at all.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import Any

from agent.jsontext import JsonInputError, parse_json
from agent.reuse.errors import ReuseInputError
from agent.reuse.schemes import HealthLimits

_ATA_REALLOCATED = 5
_ATA_PENDING = 197
_ATA_OFFLINE_UNCORRECTABLE = 198
_NVME_WARNING_BITS = {0: "available spare below threshold", 1: "temperature outside limits",
                      2: "NVM subsystem reliability degraded", 3: "media placed in read-only mode",
                      4: "volatile memory backup failed", 5: "persistent memory region read-only"}


@dataclass(frozen=True)
class HealthReading:
    """What one SMART reading says; ``status`` is ``ok`` (parsed), ``not_applicable`` or ``unavailable``."""

    status: str
    protocol: str
    model: str
    serial: str
    source: str
    """Where the reading came from, e.g. "smartctl 7.4 -j -a /dev/sda" or "recorded sample ..."."""
    smart_passed: bool | None = None
    reallocated_sectors: int | None = None
    pending_sectors: int | None = None
    offline_uncorrectable: int | None = None
    critical_warning: int | None = None
    percentage_used: int | None = None
    media_errors: int | None = None
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON form (stored with the reading)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HealthReading:
        """Inverse of :meth:`to_json`."""
        return cls(**{key: data[key] for key in cls.__dataclass_fields__ if key in data})


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _ata_raw(table: list[Any], attribute_id: int) -> int | None:
    for entry in table:
        if isinstance(entry, dict) and entry.get("id") == attribute_id:
            raw = entry.get("raw")
            if isinstance(raw, dict):
                # some vendors pack extra bytes into the 48-bit raw field; the count is the low 32 bits
                value = _int(raw.get("value"))
                return value & 0xFFFFFFFF if value is not None else None
    return None


def parse_smartctl(data: Any, source: str) -> HealthReading:
    """Parse ``smartctl -j`` output (already decoded JSON). Pure; never raises on odd input."""
    if not isinstance(data, dict):
        return HealthReading("unavailable", "unknown", "", "", source, note="not a smartctl JSON object")
    device = data.get("device") if isinstance(data.get("device"), dict) else {}
    protocol = str(device.get("protocol") or "unknown") if isinstance(device, dict) else "unknown"
    model = str(data.get("model_name") or "")
    serial = str(data.get("serial_number") or "")
    smartctl = data.get("smartctl") if isinstance(data.get("smartctl"), dict) else {}
    exit_status = _int(smartctl.get("exit_status")) if isinstance(smartctl, dict) else None
    status_block = data.get("smart_status")
    passed = status_block.get("passed") if isinstance(status_block, dict) else None
    smart_passed = passed if isinstance(passed, bool) else None
    # smartctl exit status bits 0-1: command line or device open failed; no data then
    if exit_status is not None and exit_status & 0b11:
        messages = smartctl.get("messages") if isinstance(smartctl, dict) else None
        text = "; ".join(str(m.get("string")) for m in messages if isinstance(m, dict)) if isinstance(messages, list) \
            else ""
        return HealthReading("unavailable", protocol, model, serial, source,
                             note=f"smartctl could not read the device (exit status {exit_status}) {text}".strip())
    nvme_log = data.get("nvme_smart_health_information_log")
    if isinstance(nvme_log, dict):
        return HealthReading("ok", "NVMe", model, serial, source, smart_passed=smart_passed,
                             critical_warning=_int(nvme_log.get("critical_warning")),
                             percentage_used=_int(nvme_log.get("percentage_used")),
                             media_errors=_int(nvme_log.get("media_errors")))
    attributes = data.get("ata_smart_attributes")
    if isinstance(attributes, dict) and isinstance(attributes.get("table"), list):
        table = attributes["table"]
        return HealthReading("ok", "ATA", model, serial, source, smart_passed=smart_passed,
                             reallocated_sectors=_ata_raw(table, _ATA_REALLOCATED),
                             pending_sectors=_ata_raw(table, _ATA_PENDING),
                             offline_uncorrectable=_ata_raw(table, _ATA_OFFLINE_UNCORRECTABLE))
    if smart_passed is not None:
        # SCSI/SAS and others: only the overall verdict (and grown defects, not parsed yet)
        grown = _int(data.get("scsi_grown_defect_list"))
        return HealthReading("ok", protocol, model, serial, source, smart_passed=smart_passed,
                             reallocated_sectors=grown)
    return HealthReading("unavailable", protocol, model, serial, source, note="no SMART data in the output")


def not_applicable(model: str, serial: str, media: str) -> HealthReading:
    """The reading of media without SMART (loop devices, virtual disks)."""
    return HealthReading("not_applicable", "none", model, serial, f"{media} media: no SMART",
                         note="virtual media have no SMART; only a scheme accepting virtual media accepts this")


def health_failures(reading: HealthReading, limits: HealthLimits) -> list[str]:
    """Why ``reading`` fails ``limits`` (empty when it passes or when SMART does not apply)."""
    if reading.status != "ok":
        return []
    reasons: list[str] = []
    if reading.smart_passed is False:
        reasons.append("SMART overall self-assessment FAILED")
    checks = (
        ("reallocated sectors", reading.reallocated_sectors, limits.max_reallocated_sectors),
        ("pending sectors", reading.pending_sectors, limits.max_pending_sectors),
        ("offline uncorrectable sectors", reading.offline_uncorrectable, limits.max_offline_uncorrectable),
        ("NVMe percentage used", reading.percentage_used, limits.max_percentage_used),
        ("NVMe media errors", reading.media_errors, limits.max_media_errors),
    )
    for label, value, limit in checks:
        if value is not None and value > limit:
            reasons.append(f"{label} {value} > {limit}")
    if reading.critical_warning and not limits.allow_nvme_critical_warning:
        bits = [text for bit, text in _NVME_WARNING_BITS.items() if reading.critical_warning & (1 << bit)]
        reasons.append(f"NVMe critical warning 0x{reading.critical_warning:02x} ({', '.join(bits) or 'reserved bit'})")
    return reasons


def run_smartctl(device: str, timeout: float = 60.0) -> tuple[Any, str]:
    """Run ``smartctl -j -a DEVICE``; return (decoded JSON, source text). Needs smartmontools."""
    program = shutil.which("smartctl")
    if program is None:
        raise ReuseInputError("smartctl not found: install smartmontools (apt install smartmontools)")
    try:
        # smartctl's exit status is a bit mask (not an error by itself); the JSON says what happened
        result = subprocess.run([program, "-j", "-a", device], capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ReuseInputError(f"smartctl {device}: {exc}") from exc
    try:
        # bytes, not text=True: a drive's model string is not promised to be UTF-8
        data = parse_json(result.stdout.decode("utf-8", "replace"))
    except JsonInputError as exc:
        raise ReuseInputError(f"smartctl {device}: output is not usable JSON ({exc.reason}, exit status "
                              f"{result.returncode})") from None
    version = data.get("smartctl", {}).get("version") if isinstance(data, dict) else None
    version_text = ".".join(str(part) for part in version) if isinstance(version, list) else "?"
    return data, f"smartctl {version_text} -j -a {device}"
