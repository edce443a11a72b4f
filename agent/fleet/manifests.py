"""Fleet manifests: eligible assets of every station allocated to one reuse partner, signed by the fleet's key.

``create`` takes the assets whose programme state (:mod:`agent.fleet.programme`) is ``eligible`` for the scheme
— every drive's latest job sanitised, the latest decision routing the asset to that scheme, and no station
manifest or fleet manifest (not voided) listing it — and, for each drive, the certificate of sanitisation the
fleet holds for that job. Nothing is taken on trust from the database: every certificate's PDF is verified
again, from its bytes, against the fleet's trust bundle (current CRL), and must certify that drive (serial),
from that station and job, in that host (asset tag and serial of the register). A named asset that fails any
of this refuses the whole manifest, every reason listed; ``--all-eligible`` leaves such assets out and says why.

Never an asset twice. The claim is one transaction: the assets' rows are locked (``FOR UPDATE``) and must still
be eligible for the scheme then — a concurrent ``create`` that claimed one first has made it ``allocated`` —
and each claim is a row of ``fleet_manifest_assets``, whose partial unique index on the asset tag (not voided)
refuses a second claim whatever the code above it does. The states are recomputed in that transaction, so the
claimed assets read ``allocated`` from the moment it commits.

The claim is recorded before anything is signed (no signed fleet manifest the database never heard of). The
creator holds a session advisory lock on the manifest while it signs, writes and reads back the folder; a
manifest still ``issuing`` whose lock nobody holds was left by a process that died, and the next ``create``
voids it, freeing its assets. A manifest the fleet's own verifier refuses is voided the same way and its files
removed. ``void`` releases an issued manifest's assets (e.g. the partner cancelled); the record stays.
``handover`` records the partner's receipt (once per manifest): its assets are ``handed_over`` and the manifest
can no longer be voided (both lock the manifest's row, so neither wins half-way).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import TOOL_NAME, __version__
from agent.fleet.database import FleetDatabase
from agent.fleet.errors import FleetInputError
from agent.fleet.programme import recompute
from agent.fleet.verifypool import DocumentVerifier, digest

ISSUING_LOCK_CLASS = 0x77666D  # pg_advisory_lock(class, manifest id) while a manifest is issued: "wfm"
ISSUING_SUFFIX = ".issuing"
MAX_PARTNER = 128


@dataclass
class _Drive:
    station_id: str
    job_id: str
    state: str
    serial: str | None
    model: str | None
    method: str | None
    finished_at: datetime | None
    certificate_id: str | None
    pdf: bytes | None


@dataclass
class _Asset:
    asset: str
    make: str
    model: str
    serial: str
    state: str
    scheme: str | None
    drives: list[_Drive] = field(default_factory=list)


_DRIVES = """
WITH wanted(asset) AS (SELECT DISTINCT upper(value) FROM unnest(%(assets)s::text[]) AS value),
linked AS (
    SELECT w.asset, j.* FROM fleet_jobs j JOIN wanted w ON upper(j.asset_tag) = w.asset
    UNION
    SELECT w.asset, j.* FROM wanted w
    JOIN fleet_asset_facts h ON h.kind = 'host-drive' AND upper(h.asset_tag) = w.asset
    JOIN fleet_jobs j ON j.serial = h.ref AND j.station_id = h.station_id),
latest AS (
    SELECT DISTINCT ON (asset, coalesce(serial, job_id)) asset, station_id, job_id, state, serial, model, method,
           finished_at, certificate_id
    FROM linked ORDER BY asset, coalesce(serial, job_id), created_at DESC, updated_seq DESC)
SELECT l.asset, l.station_id, l.job_id, l.state, l.serial, l.model, l.method, l.finished_at, l.certificate_id, d.pdf
FROM latest l
LEFT JOIN fleet_documents d ON d.station_id = l.station_id AND d.document_id = l.certificate_id
     AND d.kind = 'certificate'
ORDER BY l.asset, l.serial, l.job_id
"""


def _assets(db: Any, scheme: str, tags: list[str] | None) -> list[_Asset]:
    """The named assets (any state; order as named), or every asset eligible for ``scheme``, with their drives."""
    if tags is None:
        rows = db.execute("SELECT asset_tag, make, model, serial, state, scheme FROM fleet_assets "
                          "WHERE state = 'eligible' AND scheme = %s ORDER BY asset_tag", (scheme,)).fetchall()
    else:
        rows = db.execute("SELECT asset_tag, make, model, serial, state, scheme FROM fleet_assets "
                          "WHERE upper(asset_tag) = ANY(%s)", ([tag.upper() for tag in tags],)).fetchall()
    found = {str(row[0]).upper(): _Asset(str(row[0]), str(row[1]), str(row[2]), str(row[3]), str(row[4]),
                                         row[5] if row[5] is None else str(row[5])) for row in rows}
    for row in db.execute(_DRIVES, {"assets": list(found)}).fetchall():
        found[str(row[0])].drives.append(_Drive(str(row[1]), str(row[2]), str(row[3]), row[4], row[5], row[6], row[7],
                                                row[8], bytes(row[9]) if row[9] is not None else None))
    if tags is None:
        return list(found.values())
    return [found[tag.upper()] for tag in tags if tag.upper() in found]


def _allocation(db: Any, asset: str) -> str:
    """Where an allocated asset is listed: a fleet manifest, or a station's manifest."""
    row = db.execute("SELECT m.document_id FROM fleet_manifest_assets a JOIN fleet_manifests m ON m.id = a.manifest_id "
                     "WHERE upper(a.asset_tag) = upper(%s) AND NOT a.voided", (asset,)).fetchone()
    if row is not None:
        return f"fleet manifest {row[0]}"
    row = db.execute("SELECT ref, station_id FROM fleet_asset_facts WHERE kind = 'manifest' AND NOT voided "
                     "AND upper(asset_tag) = upper(%s) ORDER BY at LIMIT 1", (asset,)).fetchone()
    return f"manifest {row[0]} of station {row[1]}" if row is not None else "a manifest"


def _state_problem(db: Any, asset: _Asset, scheme: str) -> str:
    if asset.state == "eligible" and asset.scheme == scheme:
        return ""
    if asset.state == "eligible":
        return f"{asset.asset}: eligible for {asset.scheme}, not {scheme}"
    if asset.state == "allocated":
        return f"{asset.asset}: already allocated in {_allocation(db, asset.asset)}"
    return f"{asset.asset}: its programme state is {asset.state}, not eligible for {scheme}"


def _check_drive(asset: _Asset, drive: _Drive, reports: dict[str, Any],
                 demo: bool) -> tuple[str, dict[str, Any] | None]:
    """The certificate of ``drive`` as verified from its bytes (``reports``, by their SHA-256); ("", entry) or
    (why not, None)."""
    from certs.fleet_manifest import certificate_file_name
    from certs.manifest import host_problem
    from certs.verify import DocumentKind

    where = f"{asset.asset}: drive {drive.serial or '?'} (job {drive.job_id} of {drive.station_id})"
    if drive.state != "sanitised":
        return f"{where} is {drive.state}", None
    if not drive.certificate_id:
        return f"{where} has no certificate of sanitisation", None
    if drive.pdf is None:
        return f"{where}: the fleet holds no certificate {drive.certificate_id} (not forwarded yet?)", None
    report = reports[digest(drive.pdf)]
    if isinstance(report, str):  # the verifier itself failed on these bytes
        return f"{where}: certificate {drive.certificate_id} cannot be verified ({report})", None
    record = report.record
    if not report.valid or record is None:
        return f"{where}: certificate {drive.certificate_id} is not valid now ({report.code}: {report.reason})", None
    if report.kind is not DocumentKind.CERTIFICATE:
        return f"{where}: {drive.certificate_id} is a {report.kind}, not a certificate of sanitisation", None
    problem = ""
    if record.station_id != drive.station_id or record.job_id != drive.job_id:
        problem = f"certifies job {record.job_id} of {record.station_id}"
    elif drive.serial is not None and record.media.serial != drive.serial:
        problem = f"certifies drive {record.media.serial}"
    elif record.demo and not demo:
        problem = "is a demonstration certificate"
    else:
        problem = host_problem(record, {"asset": asset.asset, "serial": asset.serial}, "it")
    if problem:
        return f"{where}: certificate {drive.certificate_id} {problem}", None
    return "", {
        "serial": record.media.serial, "model": record.media.model, "station_id": drive.station_id,
        "job_id": drive.job_id, "certificate_id": record.certificate_id, "record_sha256": report.record_sha256,
        "certificate_file": certificate_file_name(drive.station_id, record.certificate_id),
        "level": record.level or "", "method": drive.method or "", "sanitised_at": record.evidence.timings.finished_at,
    }


def _entry(asset: _Asset, scheme: str, reports: dict[str, Any], demo: bool,
           db: Any) -> tuple[list[str], dict[str, Any] | None, dict[str, bytes]]:
    """The manifest's device for ``asset``, or every reason it cannot be listed."""
    problem = _state_problem(db, asset, scheme)
    if problem:
        return [problem], None, {}
    if not asset.drives:
        return [f"{asset.asset}: no drive of it is known to the fleet"], None, {}
    problems, drives, files = [], [], {}
    for drive in asset.drives:
        why, entry = _check_drive(asset, drive, reports, demo)
        if entry is None:
            problems.append(why)
            continue
        drives.append(entry)
        assert drive.pdf is not None
        files[entry["certificate_file"]] = drive.pdf
    if problems:
        return problems, None, {}
    return [], {"asset": asset.asset, "make": asset.make, "model": asset.model, "serial": asset.serial,
                "drives": drives}, files


def reconcile(fleet: FleetDatabase) -> list[str]:
    """Void every manifest left ``issuing`` by a process that is gone (nobody holds its advisory lock)."""
    voided = []
    rows = fleet.db.execute("SELECT id, document_id FROM fleet_manifests WHERE status = 'issuing' "
                            "ORDER BY id").fetchall()
    fleet.db.commit()
    for manifest_id, document_id in rows:
        taken = fleet.db.execute("SELECT pg_try_advisory_lock(%s, %s)", (ISSUING_LOCK_CLASS, manifest_id)).fetchone()
        fleet.db.commit()
        if not taken or not taken[0]:
            continue  # another creator is issuing it now
        try:
            if _void(fleet, int(manifest_id), "left unfinished by a fleet manifest create that stopped", ("issuing",)):
                voided.append(str(document_id))
        finally:
            _unlock(fleet, int(manifest_id))
    return voided


def _unlock(fleet: FleetDatabase, manifest_id: int) -> None:
    fleet.db.execute("SELECT pg_advisory_unlock(%s, %s)", (ISSUING_LOCK_CLASS, manifest_id))
    fleet.db.commit()


def _void(fleet: FleetDatabase, manifest_id: int, reason: str, states: tuple[str, ...]) -> bool:
    with fleet.transaction() as db:
        # the manifest's row locked first (as handover() locks it), then its hand-over read in a statement of its
        # own: a hand-over committed meanwhile is seen, so a handed-over manifest is never voided
        locked = db.execute("SELECT document_id FROM fleet_manifests WHERE id = %s FOR UPDATE",
                            (manifest_id,)).fetchone()
        handed = _handover_of(db, manifest_id)
        if handed is not None:
            name = locked[0] if locked else manifest_id
            raise FleetInputError(f"fleet manifest {name} was handed over on {handed['at'][:10]} to "
                                  f"{handed['received_by']}: it can no longer be voided")
        row = db.execute("UPDATE fleet_manifests SET status = 'voided', reason = %s, voided_at = now() "
                         "WHERE id = %s AND status = ANY(%s) RETURNING id",
                         (reason, manifest_id, list(states))).fetchone()
        if row is None:
            return False
        assets = [str(item[0]) for item in db.execute(
            "UPDATE fleet_manifest_assets SET voided = true WHERE manifest_id = %s RETURNING asset_tag",
            (manifest_id,)).fetchall()]
        recompute(db, assets)
    return True


def _current_signer(signer: Any, bundle: Any) -> Any:
    """The signer with the newer of its installed CRL and the bundle's (the one its documents embed)."""
    from cryptography import x509

    def number(crl: Any) -> int:
        try:
            return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
        except x509.ExtensionNotFound:
            return 0

    authority = signer.chain[-1] if signer.chain else None
    if authority is None or bundle.crl.issuer != authority.subject:
        return signer
    if signer.crl is None or number(bundle.crl) > number(signer.crl):
        return dataclasses.replace(signer, crl=bundle.crl)
    return signer


def create(fleet: FleetDatabase, scheme_name: str, partner: str, *, assets: list[str] | None, out_dir: Path,
           signer: Any, bundle: Any, tsa_url: str | None = None, workers: int | None = None) -> dict[str, Any]:
    """Allocate and sign a fleet manifest (see the module docstring); returns what was written. ``workers``:
    processes verifying the certificates (:class:`agent.fleet.verifypool.DocumentVerifier`; default the CPUs)."""
    from agent.reuse.schemes import load_scheme
    from certs.errors import CertificateError
    from certs.fleet_manifest import discard, issue
    from certs.verify import DocumentKind, read_back

    started = datetime.now(UTC)
    partner = partner.strip()
    if not partner or len(partner) > MAX_PARTNER or not partner.isprintable():
        raise FleetInputError(f"--partner must be printable text of 1 to {MAX_PARTNER} characters")
    from certs.record import asset_key, text_problem
    from certs.render import print_problem

    problem = text_problem(partner) or print_problem(partner)
    if problem:  # refused now, not by the read-back of a manifest already claimed
        raise FleetInputError(f"--partner {partner!r} {problem}")
    if assets is not None:
        if not assets:
            raise FleetInputError("give --asset TAG (repeatable) or --all-eligible")
        seen: set[str] = set()
        for tag in assets:
            if asset_key(tag) in seen:  # case, white space and full-width forms are one label
                raise FleetInputError(f"asset {tag} is named twice")
            seen.add(asset_key(tag))
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FleetInputError(f"--out {out_dir} must be a new or empty directory")
    scheme = load_scheme(scheme_name)
    signer = _current_signer(signer, bundle)
    freed = reconcile(fleet)
    found = _assets(fleet.db, scheme.name, assets)
    refusals: list[str] = []
    if assets is not None:
        known = {item.asset.upper() for item in found}
        refusals += [f"{tag}: not in the asset register" for tag in assets if tag.upper() not in known]
    fleet.db.commit()
    verifier = DocumentVerifier(bundle, workers)
    try:  # every certificate verified again, now, from the bytes the fleet holds (in parallel, as ingest does)
        reports = verifier.verify_many([(f"{drive.certificate_id}.pdf", drive.pdf) for asset in found
                                        for drive in asset.drives if drive.pdf is not None], None)
    finally:
        verifier.close()
    devices: list[dict[str, Any]] = []
    files: dict[str, bytes] = {}
    skipped: list[str] = []
    for asset in found:
        problems, device, certificates = _entry(asset, scheme.name, reports, scheme.demo, fleet.db)
        if device is None:
            (refusals if assets is not None else skipped).extend(problems)
            continue
        devices.append(device)
        files.update(certificates)
    fleet.db.commit()
    if refusals:
        raise FleetInputError(f"not every asset can be listed for {scheme.name}; nothing was written", tuple(refusals))
    document_id = f"FM-{started:%Y%m%d}-{uuid.uuid4().hex[:10]}"
    claimed = _claim(fleet, scheme, partner, signer.station_id, document_id, devices, explicit=assets is not None,
                     skipped=skipped)
    manifest_id, manifest = claimed
    try:
        try:
            written = issue(manifest, signer, out_dir, files, tsa_url=tsa_url, pdf_suffix=ISSUING_SUFFIX)
        except CertificateError as error:
            _void(fleet, manifest_id, f"not signed: {error.message}", ("issuing",))
            raise FleetInputError(f"fleet manifest not signed: {error.message}") from error
        try:
            read_back(written.pdf, signer, DocumentKind.FLEET_MANIFEST)
        except CertificateError as error:
            discard(written)
            _void(fleet, manifest_id, f"refused by the fleet's own verification: {error.message}", ("issuing",))
            raise FleetInputError(f"fleet manifest not issued: {error.message}") from error
        final = out_dir / f"fleet-manifest-{document_id}.pdf"
        os.replace(written.pdf, final)
        pdf = final.read_bytes()
        with fleet.transaction() as db:
            db.execute("UPDATE fleet_manifests SET status = 'issued', pdf = %s, pdf_sha256 = %s, out_dir = %s "
                       "WHERE id = %s", (pdf, hashlib.sha256(pdf).hexdigest(), str(out_dir.resolve()), manifest_id))
    except BaseException as error:
        if not isinstance(error, FleetInputError):  # (those voided it already)
            try:
                _void(fleet, manifest_id, f"not issued: {type(error).__name__}: {error}"[:500], ("issuing",))
            except Exception:  # the database is gone too: the next create's reconcile voids it
                pass
        raise
    finally:
        _unlock(fleet, manifest_id)
    return {"manifest_id": document_id, "scheme": scheme.name, "partner": partner, "fleet": signer.station_id,
            "pdf": str(final), "json": str(written.json), "csv": str(written.csv),
            "certificates": str(written.certificates), "manifest_sha256": written.sha256,
            "assets": [device["asset"] for device in manifest["devices"]],
            "stations": sorted({drive["station_id"] for device in manifest["devices"] for drive in device["drives"]}),
            "skipped": skipped, "voided_unfinished": freed,
            "seconds": round((datetime.now(UTC) - started).total_seconds(), 2)}


def _claim(fleet: FleetDatabase, scheme: Any, partner: str, fleet_name: str, document_id: str,
           devices: list[dict[str, Any]], *, explicit: bool, skipped: list[str]) -> tuple[int, dict[str, Any]]:
    """Lock, re-check and claim the assets; record the manifest (``issuing``) and take its advisory lock."""
    import psycopg

    from certs.documents import canonical_json

    with fleet.transaction() as db:
        tags = [device["asset"] for device in devices]
        still = {str(row[0]).upper() for row in db.execute(
            "SELECT asset_tag FROM fleet_assets WHERE upper(asset_tag) = ANY(%s) AND state = 'eligible' "
            "AND scheme = %s ORDER BY upper(asset_tag) FOR UPDATE", ([tag.upper() for tag in tags], scheme.name))}
        lost = [tag for tag in tags if tag.upper() not in still]
        problems = [f"{tag}: no longer eligible for {scheme.name} (allocated meanwhile in "
                    f"{_allocation(db, tag)})" for tag in lost]
        if problems and explicit:
            raise FleetInputError(f"not every asset can be listed for {scheme.name}; nothing was written",
                                  tuple(problems))
        skipped.extend(problems)
        devices = [device for device in devices if device["asset"].upper() in still]
        if not devices:
            raise FleetInputError(f"no asset is eligible for {scheme.name} and free to allocate", tuple(skipped))
        created = datetime.now(UTC).isoformat(timespec="seconds")
        stations = sorted({drive["station_id"] for device in devices for drive in device["drives"]})
        manifest: dict[str, Any] = {
            "schema": 1, "kind": "fleet_manifest", "document_id": document_id, "fleet": fleet_name,
            "created_at": created, "demo": scheme.demo,
            "scheme": {"name": scheme.name, "summary": scheme.summary, "destination": scheme.destination},
            "partner": partner, "devices": devices, "tool": f"{TOOL_NAME} {__version__}",
            "summary": f"{len(devices)} device(s) from {len(stations)} station(s) for {scheme.name}: {partner}",
        }
        payload = canonical_json(manifest)
        row = db.execute("INSERT INTO fleet_manifests (document_id, scheme, partner, fleet, created_at, sha256, body) "
                         "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                         (document_id, scheme.name, partner, fleet_name, created, hashlib.sha256(payload).hexdigest(),
                          payload.decode())).fetchone()
        assert row is not None  # INSERT ... RETURNING
        manifest_id = int(row[0])
        for device in devices:
            try:
                with db.transaction():  # a savepoint: the unique index's refusal is named, not a database error
                    db.execute("INSERT INTO fleet_manifest_assets (manifest_id, asset_tag) VALUES (%s, %s)",
                               (manifest_id, device["asset"]))
            except psycopg.errors.UniqueViolation:
                raise FleetInputError(f"{device['asset']}: already allocated in {_allocation(db, device['asset'])}; "
                                      "nothing was written") from None
        recompute(db, [device["asset"] for device in devices])
        db.execute("SELECT pg_advisory_lock(%s, %s)", (ISSUING_LOCK_CLASS, manifest_id))
    return manifest_id, manifest


def _handover_of(db: Any, manifest_id: int) -> dict[str, str] | None:
    row = db.execute("SELECT at, received_by, reference FROM fleet_manifest_handovers WHERE manifest_id = %s",
                     (manifest_id,)).fetchone()
    if row is None:
        return None
    return {"at": row[0].isoformat(), "received_by": str(row[1]), "reference": str(row[2])}


def _text(value: str, option: str, *, required: bool) -> str:
    value = value.strip()
    if not value and not required:
        return ""
    if not value or len(value) > MAX_PARTNER or not value.isprintable():
        raise FleetInputError(f"{option} must be printable text of 1 to {MAX_PARTNER} characters")
    return value


def handover(fleet: FleetDatabase, document_id: str, received_by: str, reference: str = "") -> dict[str, Any]:
    """Record the partner's receipt of an issued fleet manifest (once; it can no longer be voided after): its
    assets become ``handed_over`` in the programme, in the same transaction."""
    received_by = _text(received_by, "--received-by", required=True)
    reference = _text(reference, "--reference", required=False)
    with fleet.transaction() as db:
        row = db.execute("SELECT id, status FROM fleet_manifests WHERE document_id = %s FOR UPDATE",
                         (document_id,)).fetchone()
        if row is None:
            raise FleetInputError(f"no fleet manifest {document_id!r} ('wipe-agent fleet manifest list' lists them)")
        manifest_id, status = int(row[0]), str(row[1])
        if status != "issued":
            raise FleetInputError(f"fleet manifest {document_id} is {status}, not issued: it cannot be handed over")
        handed = _handover_of(db, manifest_id)
        if handed is not None:
            raise FleetInputError(f"fleet manifest {document_id} was handed over already, on {handed['at'][:10]} "
                                  f"to {handed['received_by']}")
        db.execute("INSERT INTO fleet_manifest_handovers (manifest_id, received_by, reference) VALUES (%s, %s, %s)",
                   (manifest_id, received_by, reference))
        assets = [str(item[0]) for item in db.execute(
            "SELECT asset_tag FROM fleet_manifest_assets WHERE manifest_id = %s AND NOT voided", (manifest_id,))]
        recompute(db, assets)
    return show(fleet, document_id)


def list_manifests(fleet: FleetDatabase) -> list[dict[str, Any]]:
    """Every fleet manifest, newest first: id, scheme, partner, fleet, status, when, how many assets."""
    rows = fleet.db.execute(
        "SELECT m.document_id, m.scheme, m.partner, m.fleet, m.status, m.created_at, m.reason, count(a.asset_tag), "
        "min(h.at) FROM fleet_manifests m LEFT JOIN fleet_manifest_assets a ON a.manifest_id = m.id "
        "LEFT JOIN fleet_manifest_handovers h ON h.manifest_id = m.id "
        "GROUP BY m.id ORDER BY m.id DESC").fetchall()
    fleet.db.commit()
    return [{"manifest_id": str(row[0]), "scheme": str(row[1]), "partner": str(row[2]), "fleet": str(row[3]),
             "status": str(row[4]), "created_at": row[5].isoformat(), "reason": str(row[6]), "assets": int(row[7]),
             "handed_over_at": row[8].isoformat() if row[8] is not None else None}
            for row in rows]


def show(fleet: FleetDatabase, document_id: str) -> dict[str, Any]:
    """One fleet manifest: its record, its assets and the signed JSON."""
    import json

    row = fleet.db.execute("SELECT id, document_id, scheme, partner, fleet, status, created_at, reason, sha256, body, "
                           "out_dir, pdf IS NOT NULL FROM fleet_manifests WHERE document_id = %s",
                           (document_id,)).fetchone()
    if row is None:
        fleet.db.commit()
        raise FleetInputError(f"no fleet manifest {document_id!r} ('wipe-agent fleet manifest list' lists them)")
    assets = [str(item[0]) for item in fleet.db.execute(
        "SELECT asset_tag FROM fleet_manifest_assets WHERE manifest_id = %s ORDER BY asset_tag", (row[0],))]
    handed = _handover_of(fleet.db, int(row[0]))
    fleet.db.commit()
    return {"manifest_id": str(row[1]), "scheme": str(row[2]), "partner": str(row[3]), "fleet": str(row[4]),
            "status": str(row[5]), "created_at": row[6].isoformat(), "reason": str(row[7]),
            "manifest_sha256": row[8], "out_dir": str(row[10]), "signed_pdf_held": bool(row[11]), "assets": assets,
            "handed_over": handed,
            "document": json.loads(row[9]) if row[9] else None}


def signed_pdf(fleet: FleetDatabase, document_id: str) -> bytes:
    """The signed PDF the fleet keeps of an issued manifest."""
    row = fleet.db.execute("SELECT pdf FROM fleet_manifests WHERE document_id = %s", (document_id,)).fetchone()
    fleet.db.commit()
    if row is None or row[0] is None:
        raise FleetInputError(f"the fleet holds no signed PDF of {document_id!r}")
    return bytes(row[0])


def void(fleet: FleetDatabase, document_id: str, reason: str) -> dict[str, Any]:
    """Release an issued manifest's assets (it stays recorded, voided, with the reason)."""
    if not reason.strip():
        raise FleetInputError("--reason is required: why the manifest no longer stands")
    row = fleet.db.execute("SELECT id, status FROM fleet_manifests WHERE document_id = %s", (document_id,)).fetchone()
    fleet.db.commit()
    if row is None:
        raise FleetInputError(f"no fleet manifest {document_id!r}")
    if row[1] != "issued":
        raise FleetInputError(f"fleet manifest {document_id} is {row[1]}, not issued: nothing to void")
    if not _void(fleet, int(row[0]), reason.strip(), ("issued",)):
        raise FleetInputError(f"fleet manifest {document_id} changed meanwhile; look again")
    return show(fleet, document_id)
