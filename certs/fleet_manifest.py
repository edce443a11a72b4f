"""Fleet manifests: the assets of every station allocated to one reuse partner, signed by the fleet.

A station's batch manifest (:mod:`certs.manifest`) lists what one station hands over, signed with that
station's key. A fleet manifest lists what the fleet service allocates from *every* station's work, so no
station key can sign it: it is signed by the fleet's own certificate (``pki issue-fleet``: extended key usage
:data:`certs.oids.FLEET_SIGNING_EKU`, unit ``wipe-agent fleet signing``), which signs nothing else — the
verifier refuses a fleet key on a certificate of sanitisation or a station document, and a station key on a
fleet manifest.

A fleet manifest folder holds ``fleet-manifest-<id>.pdf`` (signed PAdES, long-term as station manifests),
``fleet-manifest-<id>.json`` (byte-identical to the signed copy), ``fleet-manifest-<id>.csv`` (one row per
device) and ``certificates/`` with every certificate of sanitisation it lists. The JSON lists each device
(asset tag, make, model, host serial from the force's register) and its drives (serial, model, the station that
sanitised it, that certificate's id and record SHA-256, level, method, time, file name), the scheme, the partner,
the fleet, when. No asset, certificate or certificate file appears twice (:func:`check_shape`, which the
verifier applies too). A partner checks it like a station manifest: ``wipe-agent verify
fleet-manifest-<id>.pdf --trust BUNDLE``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from certs.csvcell import table_csv
from certs.documents import canonical_json, render_document, sign_document
from certs.errors import RecordError
from certs.issue import write_atomic
from certs.manifest import CertificateCheck, _check_copy
from certs.manifest import check_certificates as _check_listed
from certs.pki import StationSigner, TrustBundle
from certs.record import asset_key, check_document_strings, is_identifier

KIND = "fleet_manifest"
SCHEMA = 1
"""The fleet manifest schema this code issues (and the only one the verifier knows)."""
SCHEMAS = (1,)
TITLE = "Fleet manifest for a reuse partner"
_REQUIRED = ("schema", "kind", "document_id", "fleet", "created_at", "demo", "scheme", "partner", "devices",
             "summary")
_DRIVE_KEYS = ("serial", "station_id", "certificate_id", "record_sha256", "certificate_file")
_SEPARATOR = "; "
_DASH = "\u2014"

COLUMNS: tuple[tuple[str, str], ...] = (
    ("no", "No."), ("asset", "Asset"), ("make_model", "Make / model"), ("host_serial", "Host serial"),
    ("drive_serials", "Drive serial(s)"), ("stations", "Station(s)"), ("certificate_ids", "Certificate id(s)"),
    ("record_sha256", "Record SHA-256"),
)
"""The table, one row per device: (key, heading). The CSV has every column with the full record hashes; the
PDF prints their first 16 hex digits."""
PDF_WIDTHS_MM = {"no": 8, "asset": 27, "make_model": 40, "host_serial": 26, "drive_serials": 34, "stations": 28,
                 "certificate_ids": 58, "record_sha256": 52}
"""273 mm: landscape A4 inside the margins."""
_FILE_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
NOTE = ("Check: wipe-agent verify fleet-manifest.pdf --trust BUNDLE (the fleet's signature, and every certificate in "
        "the certificates/ folder beside it present, valid and matching its hash).")
"""The note printed below the table."""
DEMO_BANNER = "DEMONSTRATION \u2014 not a record of real media"
DEMO_WATERMARK = "DEMONSTRATION"
"""What :func:`certs.documents.render_document` prints on a demonstration document (the banner once, the
watermark on every page)."""


@dataclass(frozen=True)
class FleetManifestFiles:
    """Where a fleet manifest was written."""

    pdf: Path
    json: Path
    csv: Path
    certificates: Path
    sha256: str


def certificate_file_name(station_id: str, certificate_id: str) -> str:
    """The file a listed certificate is written as in ``certificates/``: station and id, safe on every OS."""
    return _FILE_UNSAFE.sub("_", f"{station_id}--{certificate_id}") + ".pdf"


def check_shape(manifest: Mapping[str, Any]) -> None:
    """Refuse (:class:`RecordError`) a fleet manifest that lacks a field, lists nothing, or lists an asset,
    a certificate or a certificate file twice."""
    check_document_strings(dict(manifest), "fleet manifest")
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise RecordError(f"fleet manifest: missing {', '.join(missing)}")
    if manifest["kind"] != KIND or manifest["schema"] not in SCHEMAS or type(manifest["schema"]) is not int:
        raise RecordError(f"fleet manifest: kind must be {KIND!r} and schema one of {list(SCHEMAS)}")
    if type(manifest["fleet"]) is not str or not is_identifier(manifest["fleet"]):
        raise RecordError("fleet manifest: the fleet's name is not an identifier")
    if type(manifest["demo"]) is not bool or type(manifest["summary"]) is not str:
        raise RecordError("fleet manifest: demo must be true or false and the summary text")
    try:
        created = datetime.fromisoformat(manifest["created_at"]) if type(manifest["created_at"]) is str else None
    except ValueError:
        created = None
    if created is None or created.tzinfo is None:
        raise RecordError("fleet manifest: created_at is not an ISO 8601 time with a time zone")
    scheme = manifest["scheme"]
    if not isinstance(scheme, Mapping) or not all(type(scheme.get(key)) is str for key in ("name", "destination")):
        raise RecordError("fleet manifest: the scheme must name itself and its destination")
    if type(manifest["partner"]) is not str or not manifest["partner"].strip():
        raise RecordError("fleet manifest: no partner")
    devices = manifest["devices"]
    if type(devices) is not list or not devices:
        raise RecordError("fleet manifest: lists no device")
    assets: set[str] = set()
    certificates: set[tuple[str, str]] = set()
    files: set[str] = set()
    for device in devices:
        if not isinstance(device, Mapping) or type(device.get("asset")) is not str or not device["asset"]:
            raise RecordError("fleet manifest: a device has no asset tag")
        asset = device["asset"]
        if asset_key(asset) in assets:  # case, white space and full-width forms are the same label
            raise RecordError(f"fleet manifest: asset {asset} is listed twice")
        assets.add(asset_key(asset))
        drives = device.get("drives")
        if type(drives) is not list or not drives:
            raise RecordError(f"fleet manifest: device {asset} lists no drive")
        for drive in drives:
            if not isinstance(drive, Mapping):
                raise RecordError(f"fleet manifest: a drive of {asset} is not an object")
            for key in _DRIVE_KEYS:
                if type(drive.get(key)) is not str or not drive[key]:
                    raise RecordError(f"fleet manifest: a drive of {asset} has no {key}")
                if _SEPARATOR in drive[key]:
                    raise RecordError(f"fleet manifest: a drive of {asset} has {_SEPARATOR!r} in its {key}")
            name = drive["certificate_file"]
            if Path(name).name != name or _FILE_UNSAFE.sub("_", name) != name:
                raise RecordError(f"fleet manifest: certificate file {name!r} must be a plain, portable name")
            listed = (drive["station_id"], drive["certificate_id"])
            if listed in certificates:
                raise RecordError(f"fleet manifest: certificate {drive['certificate_id']} of {drive['station_id']} "
                                  "is listed twice")
            if name in files:
                raise RecordError(f"fleet manifest: certificate file {name} is listed twice")
            certificates.add(listed)
            files.add(name)


def _date(timestamp: object) -> str:
    if not timestamp:
        return _DASH
    try:
        return f"{datetime.fromisoformat(str(timestamp)):%Y-%m-%d}"
    except ValueError:
        return str(timestamp)


def rows(manifest: Mapping[str, Any], *, full_hashes: bool = True) -> list[dict[str, str]]:
    """One row per device, numbered from 1: what the CSV holds (``full_hashes``) or the PDF prints."""
    result = []
    for number, device in enumerate(manifest["devices"], start=1):
        drives = device["drives"]

        def joined(key: str, drives: list[Mapping[str, Any]] = drives) -> str:
            return _SEPARATOR.join(str(drive.get(key) or _DASH) for drive in drives)

        make_model = " ".join(str(part) for part in (device.get("make"), device.get("model")) if part) or _DASH
        hashes = [str(drive["record_sha256"]) for drive in drives]
        result.append({
            "no": str(number), "asset": str(device["asset"]), "make_model": make_model,
            "host_serial": str(device.get("serial") or _DASH), "drive_serials": joined("serial"),
            "stations": joined("station_id"), "certificate_ids": joined("certificate_id"),
            "record_sha256": _SEPARATOR.join(hashes if full_hashes else [f"{digest[:16]}\u2026" for digest in hashes]),
        })
    return result


def render_csv(manifest: Mapping[str, Any]) -> bytes:
    """The rows as CSV (RFC 4180, UTF-8, a heading row), cells a spreadsheet would run as formulas neutralised."""
    return table_csv(COLUMNS, rows(manifest))


def fields(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The labelled fields above the table, in printed order (rendered, and checked by the verifier)."""
    scheme = manifest["scheme"]
    created = datetime.fromisoformat(manifest["created_at"])
    stations = sorted({drive["station_id"] for device in manifest["devices"] for drive in device["drives"]})
    return [
        ("Fleet manifest", str(manifest["document_id"])), ("Scheme", f"{scheme['name']}: {scheme.get('summary', '')}"),
        ("Destination", str(scheme["destination"])), ("Partner", str(manifest["partner"])),
        ("Signed by fleet", str(manifest["fleet"])), ("Stations", ", ".join(stations)),
        ("Created", f"{created:%Y-%m-%d %H:%M} UTC"), ("Summary", str(manifest["summary"])),
        ("Contents", "every drive has its signed certificate of sanitisation in certificates/; the same rows are "
                     f"in fleet-manifest-{manifest['document_id']}.csv"),
    ]


def footer(manifest: Mapping[str, Any]) -> str:
    """The footer every page prints."""
    return (f"Fleet manifest {manifest['document_id']} \u00b7 fleet {manifest['fleet']} \u00b7 partner "
            f"{manifest['partner']}")


def render(manifest: Mapping[str, Any], fonts_dir: Path | None = None) -> bytes:
    """The human-readable fleet manifest (unsigned PDF bytes)."""
    keys = [key for key, _heading in COLUMNS]
    from reportlab.lib.units import mm

    return render_document(
        title=TITLE, subtitle=str(manifest["summary"]), fields=list(fields(manifest)),
        header=[heading for _key, heading in COLUMNS],
        rows=[[row[key] for key in keys] for row in rows(manifest, full_hashes=False)],
        widths=[PDF_WIDTHS_MM[key] * mm for key in keys], demo=bool(manifest["demo"]), footer=footer(manifest),
        notes=[NOTE],
        fonts_dir=fonts_dir)


def issue(manifest: dict[str, Any], signer: StationSigner, out_dir: Path, certificates: Mapping[str, bytes], *,
          fonts_dir: Path | None = None, timestamper: Any = None, tsa_url: str | None = None,
          pdf_suffix: str = "") -> FleetManifestFiles:
    """Sign ``manifest`` with the fleet's key and write the folder: PDF, JSON, CSV and ``certificates/`` (the PDF
    bytes of each listed certificate, by certificate file name).

    ``pdf_suffix`` writes the PDF under a temporary name the caller renames once it has read it back."""
    check_shape(manifest)
    if manifest["fleet"] != signer.station_id:
        raise RecordError(f"fleet manifest names fleet {manifest['fleet']!r}, the key is {signer.station_id!r}")
    payload = canonical_json(manifest)
    digest = hashlib.sha256(payload).hexdigest()
    pdf = sign_document(render(manifest, fonts_dir), kind=KIND, document_id=manifest["document_id"], payload=payload,
                        sha256=digest, issued_at=manifest["created_at"], signer=signer, reason=TITLE,
                        timestamper=timestamper, tsa_url=tsa_url, location=f"wipe-agent fleet {signer.station_id}")
    absent = [drive["certificate_file"] for device in manifest["devices"] for drive in device["drives"]
              if drive["certificate_file"] not in certificates]
    if absent:
        raise RecordError(f"fleet manifest: no bytes given for certificate file {absent[0]}")
    folder = out_dir / "certificates"
    folder.mkdir(parents=True, exist_ok=True)
    for device in manifest["devices"]:
        for drive in device["drives"]:
            write_atomic(folder / drive["certificate_file"], certificates[drive["certificate_file"]])
    base = f"fleet-manifest-{manifest['document_id']}"
    write_atomic(out_dir / f"{base}.json", payload)
    write_atomic(out_dir / f"{base}.csv", render_csv(manifest))
    write_atomic(out_dir / f"{base}.pdf{pdf_suffix}", pdf)
    return FleetManifestFiles(out_dir / f"{base}.pdf{pdf_suffix}", out_dir / f"{base}.json", out_dir / f"{base}.csv",
                              folder, digest)


def discard(files: FleetManifestFiles) -> None:
    """Remove what :func:`issue` wrote (a manifest its own read-back refused is never handed over)."""
    for path in (files.pdf, files.json, files.csv):
        path.unlink(missing_ok=True)
    shutil.rmtree(files.certificates, ignore_errors=True)


def check_json_copy(pdf_path: Path, manifest: Mapping[str, Any]) -> str:
    """The JSON beside a fleet manifest PDF must be the signed one byte for byte; "" when it is (or is absent)."""
    return _check_copy(pdf_path, ".json", lambda: canonical_json(manifest))


def check_csv_copy(pdf_path: Path, manifest: Mapping[str, Any]) -> str:
    """The CSV beside a fleet manifest PDF must hold exactly the signed rows; "" when it does (or is absent)."""
    return _check_copy(pdf_path, ".csv", lambda: render_csv(manifest))


def check_certificates(manifest: Mapping[str, Any], certificates_dir: Path, bundle: TrustBundle, *,
                       now: datetime | None = None) -> list[CertificateCheck]:
    """As for a station manifest (:func:`certs.manifest.check_certificates`: every listed certificate present,
    valid, the one listed by id and hash, of the listed host; nothing else in the folder), and each one made by
    the station the fleet manifest names, for the drive serial it names."""
    from certs.verify import read_embedded_record

    checks = _check_listed(manifest, certificates_dir, bundle, now=now)
    drives = {str(drive.get("certificate_file")): drive for device in manifest.get("devices", [])
              for drive in device.get("drives", [])}
    result = []
    for check in checks:
        drive = drives.get(check.file)
        if check.ok and drive is not None:
            problem = ""
            try:
                record = read_embedded_record(certificates_dir / check.file)
            except RecordError as error:
                problem = f"{check.file}: {error.message}"
            else:
                if hashlib.sha256(record.to_canonical_json()).hexdigest() != drive.get("record_sha256"):
                    problem = f"{check.file} changed while it was checked"  # read twice: bind this read to the hash
                elif record.station_id != drive.get("station_id"):
                    problem = (f"{check.file} was issued by station {record.station_id}, the fleet manifest says "
                               f"{drive.get('station_id')}")
                elif record.media.serial != drive.get("serial"):
                    problem = (f"{check.file} certifies drive {record.media.serial}, the fleet manifest lists "
                               f"{drive.get('serial')}")
            if problem:
                check = CertificateCheck(check.asset, check.certificate_id, check.file, False, problem)
        result.append(check)
    return result
