"""Signed destruction reports: the drives of a device that cannot be reused, destroyed and witnessed.

The record (a JSON object) names the host device, each drive (model, serial, media, the job that
tried to sanitise it), why the device could not be reused, the method (shred, crush, degauss), the
witness and an external reference (e.g. the destruction contractor's certificate number). It is
embedded in a signed PDF like a certificate (:mod:`certs.documents`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from reportlab.lib.units import mm

from certs.documents import canonical_json, render_document, sign_document
from certs.errors import RecordError
from certs.issue import _write_atomic
from certs.pki import StationSigner
from certs.record import check_document_strings

METHODS = ("shred", "crush", "degauss")
SCHEMA = 1
_REQUIRED = ("schema", "kind", "document_id", "station_id", "created_at", "demo", "asset", "drives", "method",
             "witness", "operator", "reasons", "summary")


def _check(record: Mapping[str, Any]) -> None:
    check_document_strings(dict(record), "destruction record")
    missing = [key for key in _REQUIRED if key not in record]
    if missing:
        raise RecordError(f"destruction record: missing {', '.join(missing)}")
    if record["kind"] != "destruction_report":
        raise RecordError("destruction record: kind must be 'destruction_report'")
    if record["method"] not in METHODS:
        raise RecordError(f"destruction record: method must be one of {', '.join(METHODS)}")
    if not str(record["witness"]).strip():
        raise RecordError("destruction record: a witness is required")
    if not record["drives"]:
        raise RecordError("destruction record: lists no drive")


def render_destruction(record: Mapping[str, Any], fonts_dir: Path | None = None) -> bytes:
    """The human-readable destruction report (unsigned PDF bytes)."""
    host = record.get("host") or {}
    created = datetime.fromisoformat(record["created_at"])
    fields: list[tuple[str, object]] = [
        ("Report", record["document_id"]),
        ("Host device", f"{record['asset']} {host.get('make', '')} {host.get('model', '')} "
                        f"S/N {host.get('serial', '')}".strip()),
        ("Method", record["method"]), ("Witness", record["witness"]), ("Operator", record["operator"]),
        ("External reference", record.get("reference") or "-"), ("Station", record["station_id"]),
        ("Recorded", f"{created:%Y-%m-%d %H:%M} UTC"),
        ("Why not reused", "; ".join(record["reasons"]) or "-"),
    ]
    if record.get("note"):
        fields.append(("Note", record["note"]))
    rows: list[list[object]] = [[drive["model"], drive["serial"], drive["media"], drive.get("job_id") or "-",
                                 drive.get("state") or "-"] for drive in record["drives"]]
    return render_document(
        title="Destruction report (NIST SP 800-88: Destroy)", subtitle=str(record["summary"]), fields=fields,
        header=["Drive model", "Serial", "Media", "Job", "Sanitisation state"], rows=rows,
        widths=[60 * mm, 95 * mm, 25 * mm, 45 * mm, 48 * mm], demo=bool(record["demo"]),
        footer=f"Destruction report {record['document_id']} · station {record['station_id']}", fonts_dir=fonts_dir)


def issue_destruction_report(record: dict[str, Any], signer: StationSigner, out_path: Path, *,
                             fonts_dir: Path | None = None, timestamper: Any = None,
                             tsa_url: str | None = None) -> str:
    """Sign the destruction record and write the PDF atomically; return the record's SHA-256."""
    _check(record)
    if record["station_id"] != signer.station_id:
        raise RecordError(f"record names station {record['station_id']!r}, the key is {signer.station_id!r}")
    payload = canonical_json(record)
    digest = hashlib.sha256(payload).hexdigest()
    pdf = sign_document(render_destruction(record, fonts_dir), kind="destruction_report",
                        document_id=record["document_id"], payload=payload, sha256=digest,
                        issued_at=record["created_at"], signer=signer, reason="Destruction report",
                        timestamper=timestamper, tsa_url=tsa_url)
    _write_atomic(out_path, pdf)
    return digest
