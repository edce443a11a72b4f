"""Reuse operations for the CLI and the demo: decide, attest, validate, destroy, ship (manifest).

Each checks its input first and changes nothing when it refuses; each write is journaled in the
audit log by :class:`~agent.reuse.store.ReuseStore`.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import TOOL_NAME, __version__
from agent.reuse.eligibility import Decision, evaluate, performed_by, signed_validations
from agent.reuse.errors import ReuseInputError, ReuseRefused
from agent.reuse.health import HealthReading
from agent.reuse.schemes import Scheme, load_all_schemes, load_scheme
from agent.reuse.store import ISSUING_SUFFIX, ReuseStore, new_document_id
from agent.store.registry import JobRow, has_serial
from certs.destruction import METHODS, issue_destruction_report
from certs.documents import canonical_json
from certs.errors import CertificateError as CertsError
from certs.errors import RecordError
from certs.files import STATE_DIRECTORY_MODE, make_private_directory
from certs.manifest import SCHEMA as MANIFEST_SCHEMA
from certs.manifest import ManifestFiles, host_problem, issue_manifest
from certs.pki import StationSigner, TrustBundle
from certs.record import asset_key
from certs.validation import (
    STATEMENT_SCHEMA_VERSION,
    ValidatedCertificate,
    ValidationStatement,
    issue_statement,
    person_key,
    summary_of,
)
from certs.verify import DocumentKind, load_trust_bundle, read_back, read_embedded_record, verify_with_bundle

TRUST_BUNDLE_NAME = "trust-bundle.pem"


def station_trust(state_dir: Path, explicit: str | None = None) -> TrustBundle | None:
    """The trust bundle to check certificates with: ``--trust``, else STATE_DIR/trust-bundle.pem, else None
    (certificates are then checked against the registry journal only)."""
    path = Path(explicit) if explicit else state_dir / TRUST_BUNDLE_NAME
    if not explicit and not path.is_file():
        return None
    try:
        return load_trust_bundle(path)
    except CertsError as error:
        raise ReuseInputError(f"trust bundle: {error.message}") from error


def _same(a: str, b: str) -> bool:
    """Model/serial equality as the tools spell them (udev writes '_' where smartctl writes ' ')."""
    def norm(text: str) -> str:
        return " ".join(text.replace("_", " ").split()).casefold()
    return norm(a) == norm(b)


def file_health(store: ReuseStore, reading: HealthReading, *, serial: str | None = None,
                model: str | None = None) -> tuple[int, str, str]:
    """Record a SMART reading for the drive (model, serial) it is filed for; return (reading id, model, serial).

    Refused, nothing recorded, when the reading itself names another serial or model than that drive (its model
    being ``model``, else the registry's for that serial, else the reading's)."""
    given_serial = (serial or "").strip()
    given_model = (model or "").strip()
    if given_serial and reading.serial and not _same(reading.serial, given_serial):
        raise ReuseRefused(f"the reading is of drive S/N {reading.serial}, not S/N {given_serial}: nothing recorded")
    drive_serial = given_serial or reading.serial.strip()
    if not has_serial(drive_serial):
        raise ReuseInputError("the reading names no drive serial: give --serial")
    known = store.registry_models(drive_serial)
    if given_model:
        drive_model = next((m for m in known if _same(m, given_model)), given_model)
    elif len(known) == 1:
        drive_model = known[0]
    elif reading.model and any(_same(m, reading.model) for m in known):
        drive_model = next(m for m in known if _same(m, reading.model))
    elif known:
        raise ReuseInputError(f"drives of models {', '.join(known)} have S/N {drive_serial}: give --model")
    else:
        drive_model = reading.model.strip()
    if reading.model and not _same(reading.model, drive_model):
        raise ReuseRefused(f"the reading is of a {reading.model}, not the {drive_model} S/N {drive_serial} it would "
                           "be filed for: nothing recorded")
    if not drive_model:
        raise ReuseInputError("the reading names no drive model: give --model")
    return store.record_health(reading, drive_serial, drive_model), drive_model, drive_serial


def known_attestations(schemes: list[Scheme]) -> list[str]:
    """Every attestation item any scheme asks for."""
    return sorted({item for scheme in schemes for item in scheme.attestations})


def _known_asset(store: ReuseStore, asset: str) -> None:
    if asset not in store.assets():
        raise ReuseInputError(f"unknown asset {asset!r}: no host registered, and no job names it for a drive "
                              "not registered to another host")


def decide(store: ReuseStore, asset: str, *, schemes: list[Scheme] | None = None, bundle: TrustBundle | None = None,
           record: bool = True) -> Decision:
    """Evaluate every scheme for the device and (by default) record the decision with its inputs."""
    _known_asset(store, asset)
    decision = evaluate(store, asset, schemes if schemes is not None else load_all_schemes(), bundle)
    if record:
        store.record_decision(asset, decision.route, decision.to_json())
    return decision


def attest(store: ReuseStore, asset: str, item: str, by: str) -> dict[str, Any]:
    """Record a person's attestation for a device; the item must be one a scheme asks for."""
    _known_asset(store, asset)
    items = known_attestations(load_all_schemes())
    if item not in items:
        raise ReuseInputError(f"unknown attestation item {item!r} (schemes ask for: {', '.join(items)})")
    if not by.strip():
        raise ReuseInputError("--by must name the person attesting")
    return store.attest(asset, item, by.strip())


def _certificate_files(store: ReuseStore, items: list[str]) -> list[Path]:
    """``--certificates DIR`` (every PDF in it) or certificate files, certificate ids or job ids."""
    if len(items) == 1 and Path(items[0]).is_dir():
        files = sorted(path for path in Path(items[0]).iterdir() if path.suffix == ".pdf" and path.is_file())
        if not files:
            raise ReuseInputError(f"{items[0]} holds no certificate (*.pdf)")
        return files
    files = []
    for item in items:
        if Path(item).is_file():
            files.append(Path(item))
            continue
        job_id = store.job_for_certificate(item) or item
        try:
            job = store.registry.job(job_id)
        except Exception as error:
            raise ReuseInputError(f"{item!r} is neither a certificate file, a certificate id nor a job id: "
                                  f"{getattr(error, 'message', error)}") from error
        if not job.certificate_path:
            raise ReuseRefused(f"job {job.id} is {job.state} without a certificate: only certified jobs can be "
                               "validated")
        files.append(Path(job.certificate_path))
    if len({path.resolve() for path in files}) != len(files):
        raise ReuseInputError("a certificate is named twice")
    return files


def _own_trust(signer: StationSigner) -> TrustBundle:
    """The station's own CA and CRL as a trust bundle (when no partner bundle is installed)."""
    authority = next((item for item in signer.chain if item.subject == item.issuer), None)
    if authority is None or signer.crl is None:
        raise ReuseRefused("cannot check the certificates: no trust bundle, and the station holds no CA certificate "
                           "or CRL (give --trust FILE)")
    return TrustBundle(authority, signer.crl)


def _independence_refusals(store: ReuseStore, job: JobRow, record_sha256: str, by: str, decision: str,
                           officer: StationSigner | None, trust: TrustBundle) -> list[str]:
    """Why ``by`` may not sign this decision over the job's certificate: separation of duties (NIST SP 800-88
    Rev. 2: not the person who sanitised, compared by :func:`certs.validation.person_key` with the job's
    operator), and a station-signed acceptance never superseding an officer-signed statement."""
    refusals = []
    if performed_by(job) == person_key(by):
        refusals.append(f"job {job.id}: {by} performed this job and cannot validate it (validation is by "
                        "someone other than the operator)")
    if officer is None and decision == "accept":
        statements = signed_validations(store, job, trust)
        decided = [v for v in statements if v.get("signer_kind") == "officer"
                   and v.get("record_sha256") == record_sha256]
        if decided:
            refusals.append(f"job {job.id}: {decided[-1]['by']} signed statement {decided[-1]['statement_id']} "
                            f"({decided[-1]['decision']}) with a validator certificate: only a validator certificate "
                            "can supersede it, not the station on instruction")
    return refusals


def validate(store: ReuseStore, certificates: list[str], *, decision: str, by: str, role: str, reason: str,
             station: StationSigner, officer: StationSigner | None, bundle: TrustBundle | None, out_dir: Path,
             tsa_url: str | None = None) -> dict[str, Any]:
    """Sign a validation statement (NIST SP 800-88 Rev. 2) accepting or rejecting ``certificates``.

    Signed by ``officer`` (a validator certificate, see ``pki issue-person``) or, when None, by the
    ``station`` on the officer's recorded instruction. Every certificate is verified first, from its
    bytes (signature, kind, record hash), and must be one this registry issued for a sanitised job: a
    forged or foreign certificate is refused by name and nothing is signed or recorded.
    """
    if decision not in ("accept", "reject"):
        raise ReuseInputError("--decision must be accept or reject")
    by, role, reason = by.strip(), role.strip(), reason.strip()
    if not by or not role:
        raise ReuseInputError("--by and --role must name the validating person and their role")
    if decision == "reject" and not reason:
        raise ReuseInputError("a rejection needs --reason: the operator must learn what to redo")
    if officer is not None and officer.station_id != by:
        raise ReuseInputError(f"--by {by!r} is not the person the --cert names ({officer.station_id!r})")
    if person_key(by) == person_key(station.station_id):
        raise ReuseInputError(f"--by {by!r} is the station's name: validation is by an accountable person")
    if officer is None and person_key(by) in store.officers():
        # station-on-instruction is for sites without personal keys; a holder signs for herself (H2)
        raise ReuseRefused(f"{by} holds a validator certificate (statements at this station are signed with it): "
                           "a statement in their name must be signed with their --key and --cert, not by the "
                           "station on instruction; nothing was signed")
    if not certificates:
        raise ReuseInputError("give --certificates DIR, or certificate files, certificate ids or job ids")
    trust = bundle or _own_trust(station)
    covered: list[tuple[JobRow, str, str, str]] = []
    refusals: list[str] = []
    demo: set[bool] = set()
    for path in _certificate_files(store, certificates):
        report = verify_with_bundle(path, trust, expect=DocumentKind.CERTIFICATE)
        if not report.valid or report.record is None or report.certificate_id is None or not report.record_sha256:
            refusals.append(f"{path.name}: refused ({report.code}: {report.reason})")
            continue
        job_id = store.job_for_certificate(report.certificate_id)
        job = store.registry.job(job_id) if job_id else None
        issued = [event["data"] for event in store.registry.events(job_id) if event["event"] == "certificate-issued"] \
            if job_id else []
        if job is None or not issued or issued[-1].get("record_sha256") != report.record_sha256:
            refusals.append(f"{path.name}: certificate {report.certificate_id} is not one this station's registry "
                            "issued (or its record hash differs from the one recorded)")
            continue
        if job.state != "sanitised":
            refusals.append(f"{path.name}: job {job.id} is {job.state}, not sanitised")
            continue
        refusals += _independence_refusals(store, job, report.record_sha256, by, decision, officer, trust)
        media = report.record.media
        covered.append((job, report.certificate_id, report.record_sha256, f"{media.model} S/N {media.serial}"))
        demo.add(report.demo)
    if refusals:
        raise ReuseRefused("not validated: a listed certificate was refused; nothing was signed", tuple(refusals))
    if len(demo) > 1:
        raise ReuseRefused("demonstration and real certificates cannot share one validation statement")
    signer_kind = "officer" if officer is not None else "station-on-instruction"
    try:
        statement = ValidationStatement(
            schema_version=STATEMENT_SCHEMA_VERSION, kind="validation", document_id=new_document_id("VS"),
            station_id=station.station_id, created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            decision=decision, by=by, role=role, reason=reason, signer_kind=signer_kind,  # type: ignore[arg-type]
            demo=demo == {True},
            certificates=tuple(ValidatedCertificate(certificate_id=cid, record_sha256=digest, job_id=job.id,
                                                    drive=drive) for job, cid, digest, drive in covered),
            summary=summary_of(decision, len(covered), by, role))
    except RecordError as error:
        raise ReuseInputError(f"validation statement: {error.message}") from error
    signer = officer or station
    path = out_dir / f"validation-{statement.document_id}.pdf"
    try:
        signed = issue_statement(statement, signer, path, tsa_url=tsa_url)
        read_back(path, signer, DocumentKind.VALIDATION)
    except CertsError as error:
        raise ReuseRefused(f"validation statement not issued: {error.message}") from error
    try:
        entry = store.record_statement(statement.to_dict(), str(path), statement.sha256(),
                                       [(job.id, cid, digest) for job, cid, digest, _ in covered])
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return {**entry, "level": signed.level.value, "problems": list(signed.problems)}


def destroy(store: ReuseStore, asset: str, *, method: str, witness: str, reference: str | None, operator: str,
            signer: StationSigner, demo: bool = False, note: str | None = None,
            tsa_url: str | None = None) -> dict[str, Any]:
    """Record the destruction of a device's drives with a signed destruction report (``note`` is printed on it)."""
    _known_asset(store, asset)
    if method not in METHODS:
        raise ReuseInputError(f"--method must be one of {', '.join(METHODS)}")
    if not witness.strip():
        raise ReuseInputError("--witness must name the person who witnessed the destruction")
    shipped = store.shipped_in(asset)
    if shipped:
        raise ReuseRefused(f"asset {asset} is in manifest {shipped}: it has left for reuse")
    if store.destruction(asset):
        raise ReuseRefused(f"asset {asset}: destruction already recorded")
    host = store.host(asset)
    jobs = store.held_drives(asset)
    if not jobs:
        raise ReuseRefused(f"asset {asset}: no drive recorded, nothing to destroy")
    decision = store.latest_decision(asset)
    reasons = list(decision.get("route_reasons", [])) if decision and decision.get("route") == "destroy" else []
    if not reasons:
        reasons = [f"destruction decided by the operator (latest route: {decision['route'] if decision else 'none'})"]
    now = datetime.now(UTC).isoformat(timespec="seconds")
    document_id = new_document_id("DR")
    record: dict[str, Any] = {
        "schema": 1, "kind": "destruction_report", "document_id": document_id, "station_id": signer.station_id,
        "created_at": now, "demo": demo, "asset": asset, "host": host.to_json(),
        "drives": [{"model": job.drive.model, "serial": job.drive.serial, "media": job.drive.media,
                    "job_id": job.id, "state": job.state} for job in jobs],
        "method": method, "witness": witness.strip(), "reference": reference, "operator": operator,
        "reasons": reasons, "note": note, "tool": f"{TOOL_NAME} {__version__}",
        "summary": f"{asset}: {len(jobs)} drive(s) destroyed by {method}, witnessed by {witness.strip()}",
    }
    directory = store.registry.state_dir / "destruction"
    make_private_directory(directory, STATE_DIRECTORY_MODE)
    path = directory / f"destruction-{document_id}.pdf"
    try:
        digest = issue_destruction_report(record, signer, path, tsa_url=tsa_url)
        read_back(path, signer, DocumentKind.DESTRUCTION)
    except CertsError as error:
        raise ReuseRefused(f"destruction report not signed: {error.message}") from error
    try:
        store.record_destruction(record, str(path), digest)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return {**record, "report_path": str(path), "report_sha256": digest}


def device_validation(drives: list[dict[str, Any]]) -> dict[str, str] | None:
    """The manifest's per-device ``validation``: the latest of the drives' deciding statements (each drive's
    :func:`~agent.reuse.eligibility.effective_validation` over its current certificate, from the decision's
    inputs), or None when none was signed.

    A device whose drives were validated in different statements shows the latest; the per-drive
    ``validations`` list keeps every one.
    """
    latest: dict[str, str] | None = None
    for drive in drives:
        entry = drive.get("validation")
        if entry and (latest is None or entry["at"] >= latest["at"]):
            latest = entry
    if latest is None:
        return None
    return {key: latest[key] for key in ("decision", "by", "role", "at", "statement_id", "signer_kind")}

def _anchor(store: ReuseStore) -> dict[str, Any] | None:
    """The latest signed checkpoint of the station's audit chain, after signing the current head."""
    store.audit.checkpoint()
    latest = store.audit.latest_checkpoint()
    return latest.to_json() if latest is not None else None


def _person_text(value: str | None, option: str, *, required: bool) -> str | None:
    """A name or reference as the audit chain keeps it: printable, one line, at most 120 characters."""
    text = (value or "").strip()
    if not text:
        if required:
            raise ReuseInputError(f"{option} is required")
        return None
    if len(text) > 120 or not text.isprintable():
        raise ReuseInputError(f"{option} must be one printable line of at most 120 characters")
    return text


def handover_manifest(store: ReuseStore, manifest_id: str, *, received_by: str, partner: str,
                      reference: str | None, operator: str) -> dict[str, Any]:
    """Record the partner's receipt of a published manifest's devices; the fleet then shows them handed over."""
    return store.record_handover(
        manifest_id.strip(), received_by=str(_person_text(received_by, "--received-by", required=True)),
        partner=str(_person_text(partner, "--partner", required=True)),
        reference=_person_text(reference, "--reference", required=False), recorded_by=operator)


def create_manifest(store: ReuseStore, scheme_name: str, *, assets: list[str] | None, all_eligible: bool,
                    out_dir: Path, signer: StationSigner, bundle: TrustBundle | None,
                    tsa_url: str | None = None) -> dict[str, Any]:
    """Sign a batch manifest for a partner; refuses (listing every reason) unless every asset is eligible."""
    scheme = load_scheme(scheme_name)
    if bundle is None and not scheme.demo:
        raise ReuseRefused(f"a manifest for {scheme.name} needs a trust bundle to check certificate signatures and "
                           f"revocation: give --trust FILE or install STATE_DIR/{TRUST_BUNDLE_NAME}")
    schemes = load_all_schemes()
    if (assets is None) == (not all_eligible):
        raise ReuseInputError("give --assets TAG... or --all-eligible (not both)")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ReuseInputError(f"--out {out_dir} must be a new or empty directory")
    store.reconcile_manifests()  # a manifest left half-issued by a kill frees its assets first
    candidates = assets if assets is not None else [a for a in store.assets() if not store.shipped_in(a)]
    if not candidates:
        raise ReuseRefused("no assets to put in a manifest")
    if len({asset_key(asset) for asset in candidates}) != len(candidates):  # case, white space, full width
        raise ReuseInputError("an asset is named twice")
    refusals: list[str] = []
    chosen: list[tuple[str, Decision]] = []
    for asset in candidates:
        _known_asset(store, asset)
        decision = decide(store, asset, schemes=schemes, bundle=bundle)
        result = decision.result(scheme.name)
        if result is None or not result.eligible:
            if assets is not None:
                refusals += [f"{asset}: {reason.message}" for reason in (result.reasons if result else [])]
            continue
        chosen.append((asset, decision))
    if refusals:
        raise ReuseRefused(f"not every asset is eligible for {scheme.name}; nothing was written", tuple(refusals))
    if not chosen:
        raise ReuseRefused(f"no asset is eligible for {scheme.name}")
    devices: list[dict[str, Any]] = []
    files: dict[str, Path] = {}
    for asset, decision in chosen:
        drives = []
        for drive in decision.inputs["drives"]:
            if store.job_shipped_in(drive["job_id"]):
                raise ReuseRefused(f"{asset}: drive {drive['serial']} (job {drive['job_id']}) is already in manifest "
                                   f"{store.job_shipped_in(drive['job_id'])}")
            job = store.registry.job(drive["job_id"])
            assert job.certificate_path is not None  # eligible implies a valid certificate
            certificate_id = drive["certificate"]["id"]
            files[certificate_id] = Path(job.certificate_path)
            try:
                mismatch = host_problem(read_embedded_record(Path(job.certificate_path)),
                                        {**decision.inputs["host"], "asset": asset}, f"certificate {certificate_id}")
            except RecordError as error:
                mismatch = error.message
            if mismatch:
                # e.g. a drive registered to this host but wiped under another asset tag (M13)
                raise ReuseRefused(f"{asset}: drive {drive['serial']}: {mismatch}")
            drives.append({"model": drive["model"], "serial": drive["serial"], "media": drive["media"],
                           "job_id": drive["job_id"], "level": (drive["level"] or "").capitalize(),
                           "verification": drive["verification"]["mode"], "method": job.method or "",
                           "sanitised_at": job.finished_at or "", "certificate_id": certificate_id,
                           "record_sha256": drive["certificate"]["record_sha256"],
                           "certificate_file": Path(job.certificate_path).name,
                           "validations": drive["validations"]})
        host = decision.inputs["host"]
        devices.append({"asset": asset, "kind": host["kind"], "make": host["make"], "model": host["model"],
                        "serial": host["serial"], "drives": drives,
                        "attestations": decision.inputs["attestations"],
                        "validation": device_validation(decision.inputs["drives"])})
    document_id = new_document_id("MF")
    manifest: dict[str, Any] = {
        "schema": MANIFEST_SCHEMA, "kind": "manifest", "document_id": document_id, "station_id": signer.station_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "demo": scheme.demo,
        "scheme": {"name": scheme.name, "summary": scheme.summary, "destination": scheme.destination,
                   "rules": {k: v for k, v in scheme.to_json().items() if k not in ("source", "name")}},
        "devices": devices, "tool": f"{TOOL_NAME} {__version__}",
        "summary": f"{len(devices)} device(s) for {scheme.name}: {scheme.destination}",
    }
    # the partner's anchor: the station's signed audit head, signed now so it covers everything up to here
    # (certs.audit_chain.verify_checkpoint checks it against the trust bundle); absent without a station key
    anchor = _anchor(store)
    if anchor is not None:
        manifest["audit_checkpoint"] = anchor
    make_private_directory(out_dir, STATE_DIRECTORY_MODE)
    final = out_dir / f"manifest-{document_id}.pdf"
    # Recorded (registry row and chain entry with the JSON's SHA-256) before anything is signed, so no
    # signed manifest can exist that the registry and the chain never heard of; a kill from here until
    # the rename leaves a row without its PDF, voided by reconcile_manifests on the next start.
    store.record_manifest(manifest, str(final), str(final.with_suffix(".json")),
                          hashlib.sha256(canonical_json(manifest)).hexdigest())

    def discard(written: ManifestFiles | None, reason: str) -> None:
        if written is not None:
            for path in [*written.certificates.iterdir(), written.pdf, written.json, written.csv]:
                path.unlink(missing_ok=True)
            os.rmdir(written.certificates)
        store.void_manifest(document_id, reason)

    try:
        written = issue_manifest(manifest, signer, out_dir, files, tsa_url=tsa_url, pdf_suffix=ISSUING_SUFFIX)
    except CertsError as error:
        discard(None, f"not signed: {error.message}")
        raise ReuseRefused(f"manifest not signed: {error.message}") from error
    try:
        read_back(written.pdf, signer, DocumentKind.MANIFEST)
    except CertsError as error:
        # nothing of a manifest the station's own verifier refuses is left to hand over
        discard(written, f"refused by the station's own verification: {error.message}")
        raise ReuseRefused(f"manifest not issued: {error.message}") from error
    os.replace(written.pdf, final)
    written = ManifestFiles(final, written.json, written.csv, written.certificates, written.sha256)
    return {"manifest_id": document_id, "scheme": scheme.name, "pdf": str(written.pdf), "json": str(written.json),
            "csv": str(written.csv),
            "certificates": str(written.certificates), "manifest_sha256": written.sha256,
            "assets": [device["asset"] for device in devices]}
