"""``wipe-agent inspect``: show what a drive can do, live or from a saved raw dump.

``inspect --dump FILE --kind KIND`` parses a binary dump (raw 512-byte IDENTIFY DEVICE
data, ``nvme id-ctrl -b`` / ``nvme id-ns -b`` output, SCSI parameter data) with
the pure parsers of :mod:`agent.drive`; support staff can run it on a file a site sends in.
``inspect DEVICE`` asks :func:`agent.drive.probe.probe_device`, which sends only read-only
identify commands through the pass-through transport.  Errors exit 2 with one line (or a JSON error
object with ``--json``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, Protocol

import click

from agent.cli.completion import complete_device
from agent.cli.output import OneOf
from agent.drive import probe
from agent.drive.ata import parse_ata_identify
from agent.drive.errors import IdentifyParseError
from agent.drive.nvme import parse_nvme_id_ctrl, parse_nvme_id_ns
from agent.drive.scsi import (
    parse_block_device_characteristics_vpd,
    parse_inquiry,
    parse_read_capacity16,
    parse_report_supported_opcodes_sanitize,
)
from agent.errors import AgentError, ConfigError
from agent.tomlfile import read_bounded_bytes

# Anything bigger than this is not an identify dump; refuse before reading it all.
MAX_DUMP_BYTES = 64 * 1024


class Reportable(Protocol):
    """What every parser returns: a frozen dataclass with ``to_json``."""

    def to_json(self) -> dict[str, Any]:
        """The JSON object printed by ``inspect --json``."""
        ...


PARSERS: dict[str, Callable[[bytes], Reportable]] = {
    "ata-identify": parse_ata_identify,
    "nvme-id-ctrl": parse_nvme_id_ctrl,
    "nvme-id-ns": parse_nvme_id_ns,
    "scsi-inquiry": parse_inquiry,
    "scsi-read-capacity16": parse_read_capacity16,
    "scsi-vpd-b1": parse_block_device_characteristics_vpd,
    "scsi-rsoc": parse_report_supported_opcodes_sanitize,
}


def parse_dump(data: bytes, kind: str, *, ignore_checksum: bool = False) -> dict[str, Any]:
    """Parse ``data`` as ``kind`` and return its JSON object (raises IdentifyParseError).

    ``ignore_checksum`` skips the ATA word-255 check, for IDENTIFY data a SCSI/ATA translation
    layer rewrote without fixing the checksum; the JSON then says ``checksum_verified: false``.
    """
    parser = PARSERS.get(kind)
    if parser is None:
        raise ConfigError(f"unknown dump kind {kind!r}; choose one of {', '.join(PARSERS)}")
    if kind == "ata-identify" and ignore_checksum:
        return parse_ata_identify(data, verify_checksum=False).to_json()
    return parser(data).to_json()


def _yes_no(value: object) -> str:
    return "yes" if value else "no"


def _minutes(minutes: object, is_minimum: object) -> str:
    if minutes is None:
        return "not reported"
    return f"{'more than ' if is_minimum else ''}{minutes} min"


def _rotation(rate: object) -> str:
    if rate is None:
        return "not reported"
    if rate == 1:
        return "solid state (non-rotating)"
    return f"{rate} rpm"


def _gigabytes(size: object) -> str:
    return f"{size} bytes ({int(str(size)) / 1e9:.1f} GB)"


def render_text(report: dict[str, Any]) -> str:
    """A readable multi-line summary of one parsed dump."""
    kind = report.get("kind")
    lines: list[str] = []

    def add(label: str, value: object) -> None:
        lines.append(f"  {label:<22} {value}")

    if kind == "ata-identify":
        security, sanitize = report["security"], report["sanitize"]
        lines.append("ATA device (IDENTIFY DEVICE)")
        add("model", report["model"])
        add("serial", report["serial"])
        add("firmware", report["firmware"])
        add("capacity", _gigabytes(report["capacity_bytes"]))
        add("max LBA", report["max_lba"])
        add(
            "sector size",
            f"{report['logical_sector_size']} logical / {report['physical_sector_size']} physical",
        )
        add("media", _rotation(report["rotation_rate"]))
        add("TRIM", _yes_no(report["trim_supported"]))
        states = [name for name in ("enabled", "locked", "frozen", "count_expired") if security[name]]
        add(
            "security",
            "not supported"
            if not security["supported"]
            else f"supported; state: {', '.join(states) or 'not enabled, not frozen'}",
        )
        add("  erase time", _minutes(security["erase_minutes"], security["erase_minutes_is_minimum"]))
        add(
            "  enhanced erase",
            "not supported"
            if not security["enhanced_erase_supported"]
            else _minutes(security["enhanced_erase_minutes"], security["enhanced_erase_minutes_is_minimum"]),
        )
        actions = [name for name in ("crypto", "block", "overwrite") if sanitize[name]]
        add(
            "sanitize",
            f"supported: {', '.join(actions) or 'no actions'}" if sanitize["supported"] else "not supported",
        )
        add(
            "HPA / DCO / AMAC",
            " / ".join(_yes_no(report[key]) for key in ("hpa_supported", "dco_supported", "amac_supported")),
        )
        add("encrypts all data", _yes_no(report["encrypts_all_user_data"]))
        add("checksum verified", _yes_no(report["checksum_verified"]))
    elif kind == "nvme-id-ctrl":
        oacs, sanicap, fna = report["oacs"], report["sanicap"], report["fna"]
        lines.append("NVMe controller (Identify Controller)")
        add("model", report["model"])
        add("serial", report["serial"])
        add("firmware", report["firmware"])
        add("vendor id", f"{report['vendor_id']:#06x}")
        add("NVMe version", report["version"])
        add("namespaces (NN)", report["namespace_count"])
        add("format NVM", _yes_no(oacs["format"]))
        add("security send/recv", _yes_no(oacs["security"]))
        add("namespace mgmt", _yes_no(oacs["ns_management"]))
        actions = [name for name in ("crypto", "block", "overwrite") if sanicap[name]]
        add("sanitize", ", ".join(actions) or "not supported")
        add("  NDI / NODMMAS", f"{_yes_no(sanicap['ndi'])} / {sanicap['nodmmas_meaning']}")
        add("format all namespaces", _yes_no(fna["format_all_namespaces"]))
        add("erase all namespaces", _yes_no(fna["erase_all_namespaces"]))
        add("crypto erase (format)", _yes_no(fna["crypto_erase_supported"]))
        namespace = report.get("namespace")
        if isinstance(namespace, dict):
            if "error" in namespace:
                add(f"namespace {namespace['nsid']}", namespace["error"])
            else:
                add(
                    f"namespace {namespace['nsid']}",
                    f"{namespace['size_blocks']} blocks x {namespace['block_size']} B = "
                    f"{_gigabytes(namespace['size_bytes'])}",
                )
    elif kind == "nvme-id-ns":
        lines.append("NVMe namespace (Identify Namespace)")
        add(
            "size",
            f"{report['size_blocks']} blocks x {report['block_size']} B = {_gigabytes(report['size_bytes'])}",
        )
        add("capacity / in use", f"{report['capacity_blocks']} / {report['utilization_blocks']} blocks")
        add("current LBA format", report["current_format_index"])
        for lba_format in report["lba_formats"]:
            add(
                f"  LBAF{lba_format['index']}",
                f"{lba_format['data_size']} B data, {lba_format['metadata_size']} B metadata, "
                f"RP {lba_format['relative_performance']}",
            )
    elif kind == "scsi":
        sanitize = report["sanitize"]
        lines.append("SCSI device (INQUIRY, READ CAPACITY (16), VPD B1h, REPORT SUPPORTED OPERATION CODES)")
        add("vendor", report["vendor"])
        add("model", report["model"])
        add("firmware", report["firmware"])
        add("capacity", _gigabytes(report["capacity"]["capacity_bytes"]))
        add("max LBA", report["max_lba"])
        add("media", _rotation(report["rotation_rate"]))
        if sanitize.get("supported") is None:
            add("sanitize", f"unknown ({sanitize.get('error')})")
        else:
            actions = [name for name in ("crypto", "block", "overwrite") if sanitize[name]]
            add("sanitize", ", ".join(actions) or "not supported")
    else:
        lines.append(f"{kind}")
        for key, value in report.items():
            if key != "kind":
                add(key, value)
    if "device" in report:
        lines.insert(
            1, f"  {'device':<22} {report['device']}{' (behind USB bridge)' if report.get('usb') else ''}"
        )
    return "\n".join(lines)


def _fail(error: AgentError, as_json: bool) -> NoReturn:
    if as_json:
        click.echo(json.dumps({"error": error.to_json()}, indent=2))
    else:
        click.echo(f"error: {error.message}", err=True)
    raise SystemExit(error.exit_code)


def _read_dump(path: Path) -> bytes:
    # a regular file only (a FIFO or /dev/zero would hang or never end), and bounded
    return read_bounded_bytes(path, IdentifyParseError, "identify dump", MAX_DUMP_BYTES)


@click.command("inspect")
@click.argument("device", required=False, shell_complete=complete_device)
@click.option(
    "--dump",
    "dump_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Parse a saved raw dump instead of asking a device.",
)
@click.option("--kind", type=OneOf(list(PARSERS)), help="What the --dump file holds.")
@click.option(
    "--ignore-checksum",
    is_flag=True,
    help="ata-identify only: accept a bad word-255 checksum (data rewritten by a SAS HBA).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a summary.")
def inspect(
    device: str | None, dump_file: Path | None, kind: str | None, ignore_checksum: bool, as_json: bool
) -> None:
    """Show identity and wipe-relevant capabilities of DEVICE, or of a saved --dump FILE."""
    try:
        if dump_file is not None:
            if device is not None:
                raise ConfigError("give either DEVICE or --dump FILE, not both")
            if kind is None:
                raise ConfigError("--dump needs --kind (" + "|".join(PARSERS) + ")")
            report = parse_dump(_read_dump(dump_file), kind, ignore_checksum=ignore_checksum)
        else:
            if device is None:
                raise ConfigError("give a DEVICE, or --dump FILE --kind KIND")
            if kind is not None:
                raise ConfigError("--kind only applies to --dump")
            from agent.cli.context import resolve_device

            report = probe.probe_device(resolve_device(device))
    except AgentError as error:
        _fail(error, as_json)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(render_text(report))
