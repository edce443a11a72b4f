"""Signed batch manifests: the list of devices handed to a reuse partner, with their certificates.

A manifest folder holds ``manifest-<id>.pdf`` (signed, PAdES, the station's key), the same JSON as
``manifest-<id>.json`` (byte-identical to the copy embedded in the PDF) and ``certificates/`` with
every certificate it lists. The JSON lists each device (asset tag, make, model, serial), its drives
and, per drive, the certificate id, the record SHA-256 and the certificate's file name. A partner
checks it with ``wipe-agent verify MANIFEST.pdf --trust BUNDLE --certificates DIR``:
:func:`check_certificates` proves every listed certificate is present, valid and the one listed.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from reportlab.lib.units import mm

from certs.documents import canonical_json, render_document, sign_document
from certs.errors import RecordError
from certs.files import MAX_DOCUMENT_BYTES, NotReadable, read_regular_file
from certs.issue import _write_atomic
from certs.pki import StationSigner, TrustBundle
from certs.record import check_document_strings
from certs.verify import verify_with_bundle

SCHEMA = 1
_REQUIRED = ("schema", "kind", "document_id", "station_id", "created_at", "demo", "scheme", "devices", "summary")


@dataclass(frozen=True)
class ManifestFiles:
    """Where a manifest was written."""

    pdf: Path
    json: Path
    certificates: Path
    sha256: str


@dataclass(frozen=True)
class CertificateCheck:
    """One listed certificate checked against the folder: ``ok`` or the problem."""

    asset: str
    certificate_id: str
    file: str
    ok: bool
    problem: str

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return dict(self.__dict__)


def _check_shape(manifest: Mapping[str, Any]) -> None:
    check_document_strings(dict(manifest), "manifest")
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise RecordError(f"manifest: missing {', '.join(missing)}")
    if manifest["kind"] != "manifest" or manifest["schema"] != SCHEMA:
        raise RecordError("manifest: kind must be 'manifest' and schema 1")
    if not manifest["devices"]:
        raise RecordError("manifest: lists no device")
    for device in manifest["devices"]:
        if not device.get("drives"):
            raise RecordError(f"manifest: device {device.get('asset')} lists no drive")
        for drive in device["drives"]:
            for key in ("certificate_id", "record_sha256", "certificate_file"):
                if not drive.get(key):
                    raise RecordError(f"manifest: a drive of {device.get('asset')} has no {key}")
            if Path(drive["certificate_file"]).name != drive["certificate_file"]:
                raise RecordError(f"manifest: certificate file {drive['certificate_file']!r} must be a plain name")


def render_manifest(manifest: Mapping[str, Any], fonts_dir: Path | None = None) -> bytes:
    """The human-readable manifest (unsigned PDF bytes)."""
    scheme = manifest["scheme"]
    rows: list[list[object]] = []
    drives = 0
    for device in manifest["devices"]:
        for index, drive in enumerate(device["drives"]):
            drives += 1
            make_model = f"{device.get('make', '')} {device.get('model', '')}".strip()
            host = f"{device['asset']} {make_model} S/N {device.get('serial') or '-'}"
            rows.append([host if index == 0 else "", f"{drive['model']} S/N {drive['serial']} ({drive['media']})",
                         f"{drive['level']} · {drive['verification']}", drive["certificate_id"],
                         drive["record_sha256"]])
    created = datetime.fromisoformat(manifest["created_at"])
    fields: list[tuple[str, object]] = [
        ("Manifest", manifest["document_id"]), ("Scheme", f"{scheme['name']}: {scheme.get('summary', '')}"),
        ("Destination", scheme["destination"]), ("Station", manifest["station_id"]),
        ("Created", f"{created:%Y-%m-%d %H:%M} UTC"),
        ("Contents", f"{len(manifest['devices'])} device(s), {drives} drive(s); every drive has its signed "
                     "certificate of sanitisation in certificates/"),
    ]
    return render_document(
        title="Batch manifest for a reuse partner", subtitle=str(manifest["summary"]), fields=fields,
        header=["Device (asset, make, model, serial)", "Drive", "Level · verification", "Certificate id",
                "Record SHA-256"], rows=rows, widths=[55 * mm, 72 * mm, 32 * mm, 46 * mm, 68 * mm],
        demo=bool(manifest["demo"]), footer=f"Batch manifest {manifest['document_id']} · station "
                                            f"{manifest['station_id']}",
        notes=["Check: wipe-agent verify manifest.pdf --trust BUNDLE --certificates certificates/ "
               "(signature, every certificate present, valid and matching its hash)."], fonts_dir=fonts_dir)


def issue_manifest(manifest: dict[str, Any], signer: StationSigner, out_dir: Path,
                   certificate_files: Mapping[str, Path], *, fonts_dir: Path | None = None,
                   timestamper: Any = None, tsa_url: str | None = None) -> ManifestFiles:
    """Sign ``manifest`` and write the folder: PDF, JSON and the listed certificates (by certificate id)."""
    _check_shape(manifest)
    if manifest["station_id"] != signer.station_id:
        raise RecordError(f"manifest names station {manifest['station_id']!r}, the key is {signer.station_id!r}")
    payload = canonical_json(manifest)
    digest = hashlib.sha256(payload).hexdigest()
    pdf = sign_document(render_manifest(manifest, fonts_dir), kind="manifest", document_id=manifest["document_id"],
                        payload=payload, sha256=digest, issued_at=manifest["created_at"], signer=signer,
                        reason="Batch manifest for a reuse partner", timestamper=timestamper,
                        tsa_url=tsa_url)
    certificates = out_dir / "certificates"
    certificates.mkdir(parents=True, exist_ok=True)
    for device in manifest["devices"]:
        for drive in device["drives"]:
            source = certificate_files[drive["certificate_id"]]
            shutil.copyfile(source, certificates / drive["certificate_file"])
    base = f"manifest-{manifest['document_id']}"
    _write_atomic(out_dir / f"{base}.json", payload)
    _write_atomic(out_dir / f"{base}.pdf", pdf)
    return ManifestFiles(out_dir / f"{base}.pdf", out_dir / f"{base}.json", certificates, digest)


def check_certificates(manifest: Mapping[str, Any], certificates_dir: Path, bundle: TrustBundle, *,
                       now: datetime | None = None) -> list[CertificateCheck]:
    """Every certificate the manifest lists must be in the folder, valid, and the one listed (id and hash)."""
    checks: list[CertificateCheck] = []
    for device in manifest.get("devices", []):
        for drive in device.get("drives", []):
            name = str(drive.get("certificate_file", ""))
            certificate_id = str(drive.get("certificate_id", ""))
            path = certificates_dir / name
            problem = ""
            if not name or Path(name).name != name:
                problem = f"bad certificate file name {name!r}"
            elif not path.is_file():
                problem = f"certificate {certificate_id} missing: no {name} in {certificates_dir}"
            else:
                report = verify_with_bundle(path, bundle, now=now)
                if not report.valid:
                    problem = f"certificate {name} is invalid: {report.reason}"
                elif report.kind != "certificate":
                    problem = f"{name} is a {report.kind}, not a certificate of sanitisation"
                elif report.certificate_id != certificate_id:
                    problem = f"{name} is certificate {report.certificate_id}, the manifest lists {certificate_id}"
                elif report.record_sha256 != drive.get("record_sha256"):
                    problem = f"{name}: record hash {report.record_sha256} differs from the manifest's"
            checks.append(CertificateCheck(str(device.get("asset")), certificate_id, name, not problem, problem))
    return checks


def check_json_copy(pdf_path: Path, manifest: Mapping[str, Any]) -> str:
    """The JSON copy beside a manifest PDF must be byte-identical to the signed one; "" when it is (or is absent)."""
    copy = pdf_path.with_suffix(".json")
    if not copy.exists():
        return ""
    try:
        data = read_regular_file(copy, MAX_DOCUMENT_BYTES)
    except NotReadable as error:
        return f"{copy.name}: {error}"
    if data != canonical_json(manifest):
        return f"{copy.name} differs from the manifest signed in {pdf_path.name}: trust the PDF, not the copy"
    return ""
