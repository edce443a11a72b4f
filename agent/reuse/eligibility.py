"""Eligibility: may this host device go to a reuse scheme, and if not, exactly why not.

A device is eligible for a scheme only when **every** drive it held (the latest job per drive, a drive
being identified as in the registry by its (model, serial); a drive without a serial never qualifies)
is sanitised at the level the scheme requires for its media type, with an accepted and
passed verification, a valid certificate, a SMART reading within the scheme's limits, and (where
the scheme requires it) a validation by an accountable person; and the people's attestations the
scheme lists are recorded for the device; and no verification of the drive recorded after that job
finished (a ``verify-media`` compliance spot check, or another job's) failed.

The route: ``reuse:<scheme>`` for the most preferred scheme (lowest rank) that accepts it;
``destroy`` when a drive cannot be reused under any scheme that accepts its media (failed health,
a failed sanitisation routed to destruction) or a destruction is recorded; ``hold`` otherwise
(something is still to be done: an attestation, a validation, a health reading, a re-run at Purge).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from agent.reuse.health import HealthReading, health_failures, not_applicable
from agent.reuse.schemes import Scheme
from agent.reuse.store import ReuseStore
from agent.store.registry import JobRow, has_serial
from certs.errors import CertificateError as CertsError
from certs.files import MAX_DOCUMENT_BYTES, NotReadable, read_regular_file
from certs.pki import TrustBundle
from certs.validation import ValidationStatement, person_key
from certs.verify import DocumentKind, read_embedded_record, read_embedded_statement, verify_with_bundle

_LEVEL_ORDER = {"clear": 1, "purge": 2}


@dataclass(frozen=True)
class Reason:
    """Why a device is not eligible: a stable code, the drive it concerns (if any), and words."""

    code: str
    message: str
    drive: str | None = None
    severity: str = "hold"
    """"hold" (something to do), "mismatch" (the scheme does not take this), "destroy" (cannot be reused)."""

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"code": self.code, "message": self.message, "drive": self.drive, "severity": self.severity}


@dataclass(frozen=True)
class CertificateStatus:
    """What the station found about a job's certificate."""

    ok: bool
    problem: str
    certificate_id: str | None = None
    record_sha256: str | None = None
    demo: bool = False
    check: str = "none"
    """"signature" (full verification against the trust bundle) or "journal" (record hash vs registry)."""


@dataclass
class SchemeResult:
    """One scheme's verdict on a device."""

    scheme: str
    eligible: bool
    reasons: list[Reason] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"scheme": self.scheme, "eligible": self.eligible, "reasons": [r.to_json() for r in self.reasons]}


@dataclass
class Decision:
    """The eligibility decision for one device, with its inputs."""

    asset: str
    route: str
    route_reasons: list[str]
    schemes: list[SchemeResult]
    inputs: dict[str, Any]

    def eligible_for(self, scheme: str) -> bool:
        """True when the named scheme accepts the device."""
        return any(result.eligible for result in self.schemes if result.scheme == scheme)

    def result(self, scheme: str) -> SchemeResult | None:
        """The named scheme's verdict."""
        return next((result for result in self.schemes if result.scheme == scheme), None)

    def to_json(self) -> dict[str, Any]:
        """JSON form (also what is recorded)."""
        return {"asset": self.asset, "route": self.route, "route_reasons": self.route_reasons,
                "schemes": [result.to_json() for result in self.schemes], "inputs": self.inputs}


def certificate_status(store: ReuseStore, job: JobRow, bundle: TrustBundle | None) -> CertificateStatus:
    """Check the job's certificate: present, the one the registry journaled, and (with a bundle) valid."""
    if not job.certificate_path:
        return CertificateStatus(False, "no certificate issued")
    issued = [event["data"] for event in store.registry.events(job.id) if event["event"] == "certificate-issued"]
    if not issued:
        return CertificateStatus(False, "the registry holds no certificate-issued entry for this job")
    journal = issued[-1]
    path = Path(job.certificate_path)
    if not path.is_file():
        return CertificateStatus(False, f"certificate file {path} is missing")
    if bundle is not None:
        report = verify_with_bundle(path, bundle)
        if not report.valid:
            return CertificateStatus(False, f"certificate {path.name} is invalid: {report.reason}")
        if report.kind != "certificate":
            return CertificateStatus(False, f"{path.name} is a {report.kind}, not a certificate")
        certificate_id, digest, demo, check = report.certificate_id, report.record_sha256, report.demo, "signature"
    else:
        try:
            record = read_embedded_record(path)
        except CertsError as error:
            return CertificateStatus(False, f"certificate unreadable: {error.message}")
        if record.outcome != "sanitised":
            return CertificateStatus(False, f"{path.name} is a failure report, not a certificate")
        certificate_id, digest, demo, check = record.certificate_id, record.sha256(), record.demo, "journal"
    if certificate_id != journal.get("certificate_id") or digest != journal.get("record_sha256"):
        return CertificateStatus(False, f"{path.name} is not the certificate the registry recorded for job {job.id}")
    return CertificateStatus(True, "", certificate_id, digest, demo, check)


def _check_statement(path: Path, bundle: TrustBundle | None) -> ValidationStatement:
    """The statement in the PDF: fully verified with a bundle, else read from its bytes (the recorded hash is
    then what vouches for it, as the journal does for certificates). Raises CertsError."""
    if bundle is None:
        return read_embedded_statement(path)
    report = verify_with_bundle(path, bundle, expect=DocumentKind.VALIDATION)
    if not report.valid or report.document is None:
        raise CertsError(f"{path.name} is invalid ({report.code}: {report.reason})")
    return ValidationStatement.from_json(json.dumps(report.document).encode("utf-8"))


def _signed_statement(store: ReuseStore, path: Path, bundle: TrustBundle | None) -> ValidationStatement:
    """:func:`_check_statement`, once per file content and trust bundle for the store (its cache)."""
    try:  # never a FIFO or device put in the file's place, never more than a document may be
        content = hashlib.sha256(read_regular_file(path, MAX_DOCUMENT_BYTES)).hexdigest()
    except NotReadable as error:
        raise CertsError(str(error)) from None
    trust = "journal" if bundle is None else hashlib.sha256(
        bundle.ca_certificate.public_bytes(Encoding.DER) + bundle.crl.public_bytes(Encoding.DER)).hexdigest()
    key = (content, trust)
    if key not in store.checked_statements:
        try:
            store.checked_statements[key] = _check_statement(path, bundle)
        except CertsError as error:
            store.checked_statements[key] = error
    found = store.checked_statements[key]
    if isinstance(found, CertsError):
        raise found
    assert isinstance(found, ValidationStatement)
    return found


def _statement_problem(statement: ValidationStatement, row: dict[str, str], sha256: str, job: JobRow,
                       chained: dict[str, Any] | None) -> str | None:
    """Why the signed statement, its registry row and its audit entry do not agree (None when they do)."""
    if statement.document_id != row["statement_id"] or statement.sha256() != sha256:
        return "the PDF holds another statement than the one recorded"
    signed = {"decision": statement.decision, "by": statement.by, "role": statement.role,
              "signer_kind": statement.signer_kind, "reason": statement.reason, "at": statement.created_at}
    differing = sorted(key for key, value in signed.items() if row.get(key) != value)
    if differing:
        return f"the registry row's {', '.join(differing)} differ from the signed statement's"
    if not any(item.job_id == job.id and item.certificate_id == row["certificate_id"]
               and item.record_sha256 == row["record_sha256"] for item in statement.certificates):
        return f"the signed statement does not cover certificate {row['certificate_id']} of job {job.id}"
    if chained is None:
        return "the audit chain holds no entry for it"
    if chained.get("statement_sha256") != sha256 or chained.get("decision") != statement.decision:
        return "the audit chain recorded another statement under its id"
    return None


def signed_validations(store: ReuseStore, job: JobRow, bundle: TrustBundle | None) -> list[dict[str, str]]:
    """The job's validations with every signed one checked against its statement's bytes (M16).

    Each signed entry's decision, person, role and signer kind are those of the statement PDF the
    station signed (verified with ``bundle``, else its SHA-256 compared with the one recorded), not
    of the registry row; a row, file or audit entry that disagrees, a missing file, or a statement
    the chain records for the job without a row, gives the entry a ``problem`` (which blocks).
    """
    entries = store.validations(job.id)
    files = store.statement_files(job.id)
    chained = store.chained_statements(job.id)
    result: list[dict[str, str]] = []
    for entry in entries:
        if not entry["statement_id"]:
            result.append(entry)
            continue
        label = f"validation statement {entry['statement_id']}"
        pdf, sha256 = files[entry["statement_id"]]
        try:
            statement = _signed_statement(store, Path(pdf), bundle)
        except CertsError as error:
            result.append({**entry, "problem": f"{label} cannot be checked: {error.message}"})
            continue
        problem = _statement_problem(statement, entry, sha256, job, chained.get(entry["statement_id"]))
        result.append({**entry, **({"problem": f"{label}: {problem}"} if problem else {})})
    for statement_id, data in chained.items():
        if statement_id not in files:
            link = next(item for item in data.get("jobs", []) if item.get("job_id") == job.id)
            result.append({"statement_id": statement_id, "decision": str(data.get("decision")),
                           "by": str(data.get("by")), "role": str(data.get("role")), "at": str(data.get("at")),
                           "signer_kind": str(data.get("signer_kind")), "reason": str(data.get("reason")),
                           "certificate_id": str(link.get("certificate_id")),
                           "record_sha256": str(link.get("record_sha256")),
                           "problem": f"validation statement {statement_id} is in the audit chain but its "
                                      "registry row is gone"})
    return result


def effective_validation(signed: list[dict[str, str]]) -> dict[str, str] | None:
    """The statement that decides, among signed statements over one certificate (oldest first).

    The latest officer-signed statement (an officer may reconsider, another officer may overrule), unless
    a station-signed *rejection* came after it; with no officer statement, the latest station-signed one.
    So a station-on-instruction acceptance never supersedes an officer's signed statement (H2): only a
    statement signed with a validator certificate can lift an officer's rejection.
    """
    officers = [entry for entry in signed if entry["signer_kind"] == "officer"]
    if not officers:
        return signed[-1] if signed else None
    latest = officers[-1]
    later_rejections = [entry for entry in signed[signed.index(latest) + 1:] if entry["decision"] == "reject"]
    return later_rejections[-1] if later_rejections else latest


def performed_by(job: JobRow) -> str | None:
    """The person who performed the job, compared by :func:`certs.validation.person_key`; None when the job
    names nobody (no operator signed in), which no validator name can match."""
    return person_key(job.operator) if job.operator_named and job.operator.strip() else None


def _health_of(store: ReuseStore, job: JobRow) -> tuple[int | None, HealthReading]:
    found = store.latest_health(job.drive.model, job.drive.serial)
    if found is not None:
        return found
    if job.drive.media == "virtual":
        return None, not_applicable(job.drive.model, job.drive.serial, job.drive.media)
    return None, HealthReading("unavailable", "unknown", job.drive.model, job.drive.serial, "no reading recorded",
                               note="no SMART reading recorded: run 'wipe-agent health DEVICE'")


NO_SERIAL = "drive has no serial number: it cannot be tied to its certificate"


def _failed_check(job: JobRow, later: dict[str, Any] | None) -> str | None:
    """Why a failed verification recorded after the job finished blocks the drive (None when none did)."""
    if job.state != "sanitised" or later is None or later["passed"]:
        return None
    what = "compliance spot check" if later["job_id"] is None else f"verification of job {later['job_id']}"
    return (f"{job.drive.model} S/N {job.drive.serial}: {what} ({later['mode']}) at {later['at']} FAILED after job "
            f"{job.id} finished: unexpected data on the drive")


def _scheme_reasons(scheme: Scheme, job: JobRow, certificate: CertificateStatus, reading: HealthReading,
                    validations: list[dict[str, str]], later: dict[str, Any] | None = None) -> list[Reason]:
    drive = job.drive
    label = f"{drive.model} S/N {drive.serial}"
    reasons: list[Reason] = []
    if not has_serial(drive.serial):
        reasons.append(Reason("no_serial", f"{label}: {NO_SERIAL}", label, "hold"))
    failed_check = _failed_check(job, later)
    if failed_check:
        reasons.append(Reason("spot_check_failed", failed_check, label, "destroy"))
    rule = scheme.level_for(drive.media)
    if rule == "refuse":
        return [*reasons, Reason("media_refused", f"{label}: {drive.media} media are not accepted by "
                                                  f"{scheme.name}", label, "mismatch")]
    if job.state != "sanitised":
        severity = "destroy" if job.route == "destroy" else "hold"
        why = f" ({job.reason})" if job.reason else ""
        return [*reasons, Reason("not_sanitised", f"{label}: latest job {job.id} is {job.state}{why}", label,
                                 severity)]
    achieved = (job.level or "").lower()
    if _LEVEL_ORDER.get(achieved, 0) < _LEVEL_ORDER[rule]:
        reasons.append(Reason("level_too_low", f"{label}: sanitised at {achieved or 'no level'}, {scheme.name} "
                                               f"requires {rule.capitalize()} for {drive.media}", label, "mismatch"))
    verification = job.verification or {}
    mode = str(verification.get("mode", "none"))
    if not verification or not verification.get("passed"):
        reasons.append(Reason("verification_failed", f"{label}: no passed verification", label, "hold"))
    elif mode not in scheme.verification_modes:
        reasons.append(Reason("verification_mode", f"{label}: {mode} verification is not accepted by {scheme.name} "
                                                   f"(accepts {', '.join(scheme.verification_modes)})", label,
                              "mismatch"))
    elif achieved == "clear" and rule == "clear" and mode not in scheme.clear_verification_modes:
        reasons.append(Reason("clear_needs_verification",
                              f"{label}: Clear is accepted only with {' or '.join(scheme.clear_verification_modes)} "
                              f"verification, this job had {mode}", label, "mismatch"))
    if not certificate.ok:
        reasons.append(Reason("certificate", f"{label}: {certificate.problem}", label, "hold"))
    elif certificate.demo and not scheme.demo:
        reasons.append(Reason("demo_certificate", f"{label}: a DEMONSTRATION certificate is not accepted by "
                                                  f"{scheme.name}", label, "mismatch"))
    elif scheme.demo and not certificate.demo:
        reasons.append(Reason("not_demo", f"{label}: demo scheme {scheme.name} takes demonstration media only",
                              label, "mismatch"))
    failures = health_failures(reading, scheme.health)
    if failures:
        reasons.append(Reason("health_failed", f"{label}: health fails {scheme.name}: {'; '.join(failures)}", label,
                              "destroy"))
    elif reading.status == "unavailable" and scheme.health.required:
        reasons.append(Reason("health_missing", f"{label}: no SMART reading ({reading.note})", label, "hold"))
    elif reading.status == "not_applicable" and drive.media != "virtual" and scheme.health.required:
        reasons.append(Reason("health_missing", f"{label}: SMART recorded as not applicable on {drive.media} media",
                              label, "hold"))
    if scheme.validation_required:
        reasons += _validation_reasons(scheme, job, certificate, validations, label)
    return reasons


def _validation_reasons(scheme: Scheme, job: JobRow, certificate: CertificateStatus,
                        validations: list[dict[str, str]], label: str) -> list[Reason]:
    """A scheme requiring validation needs a *signed* statement over this very certificate (its record hash),
    the latest of which accepts it, by one of the scheme's roles; unsigned legacy rows never count."""
    if not certificate.ok:
        return []  # the certificate's own reason stands; no statement can cover a certificate that is not valid
    broken = [v for v in validations if v.get("problem")]
    if broken:
        return [Reason("validation_tampered", f"{label}: {v['problem']}", label) for v in broken]
    signed = [v for v in validations if v.get("statement_id") and v.get("record_sha256") == certificate.record_sha256]
    if not signed:
        unsigned = any(v.get("signer_kind") == "unsigned" for v in validations)
        note = " (an unsigned validation was recorded before signed statements: validate again)" if unsigned else ""
        return [Reason("validation_missing", f"{label}: job {job.id} awaits a signed validation statement "
                                             f"(wipe-agent validate --certificates ID --decision accept){note}", label)]
    latest = effective_validation(signed)
    assert latest is not None
    if latest["decision"] != "accept":
        return [Reason("validation_rejected", f"{label}: certificate {latest['certificate_id']} was rejected by "
                                              f"{latest['by']} ({latest['role']}) in validation statement "
                                              f"{latest['statement_id']}: {latest['reason']}", label, "hold")]
    operator = performed_by(job)
    if operator is not None and person_key(latest["by"]) == operator:
        return [Reason("validator_not_independent", f"{label}: validated by {latest['by']}, who performed job "
                                                    f"{job.id}: validation must be by someone else", label)]
    if scheme.validator_roles and latest["role"] not in scheme.validator_roles:
        return [Reason("validator_role", f"{label}: validated by role {latest['role']}, {scheme.name} needs one "
                                         f"of {', '.join(scheme.validator_roles)}", label)]
    return []


def evaluate(store: ReuseStore, asset: str, schemes: list[Scheme], bundle: TrustBundle | None) -> Decision:
    """Decide for one device (pure over the store's contents; nothing is recorded)."""
    host = store.host(asset)
    jobs = store.held_drives(asset)
    attestations = store.attestations(asset)
    shipped = store.shipped_in(asset)
    destroyed = store.destruction(asset)
    drive_inputs: list[dict[str, Any]] = []
    per_drive: list[tuple[JobRow, CertificateStatus, HealthReading, list[dict[str, str]]]] = []
    later_checks: dict[str, dict[str, Any] | None] = {}
    for job in jobs:
        certificate = certificate_status(store, job, bundle)
        reading_id, reading = _health_of(store, job)
        validations = signed_validations(store, job, bundle)
        # a drive without a serial shares the registry's drive row with others: its checks are not its own
        later = later_checks[job.id] = store.verification_after(job) if has_serial(job.drive.serial) else None
        per_drive.append((job, certificate, reading, validations))
        drive_inputs.append({
            "serial": job.drive.serial, "model": job.drive.model, "media": job.drive.media, "job_id": job.id,
            "state": job.state, "level": job.level, "route": job.route,
            "verification": {"mode": (job.verification or {}).get("mode"),
                             "passed": (job.verification or {}).get("passed")},
            "certificate": {"ok": certificate.ok, "id": certificate.certificate_id,
                            "record_sha256": certificate.record_sha256, "check": certificate.check,
                            "problem": certificate.problem, "demo": certificate.demo},
            "health": {"reading_id": reading_id, **reading.to_json()},
            "validations": validations,
            "validation": effective_validation([v for v in validations if v.get("statement_id")
                                                and v.get("record_sha256") == certificate.record_sha256]),
            "later_verification": later,
        })
    results: list[SchemeResult] = []
    for scheme in schemes:
        reasons: list[Reason] = []
        if not jobs:
            reasons.append(Reason("no_drives", f"no drive of {asset} has been through the station"))
        for job, certificate, reading, validations in per_drive:
            reasons += _scheme_reasons(scheme, job, certificate, reading, validations, later_checks[job.id])
        for item in scheme.attestations:
            if item not in attestations:
                reasons.append(Reason("attestation_missing", f"attestation {item!r} not recorded "
                                                             f"(wipe-agent attest {asset} --item {item} --by NAME)"))
        if destroyed:
            reasons.append(Reason("destroyed", f"destruction recorded ({destroyed['document_id']})",
                                  severity="destroy"))
        if shipped:
            reasons.append(Reason("already_shipped", f"already in manifest {shipped}", severity="mismatch"))
        results.append(SchemeResult(scheme.name, not reasons, reasons))

    route, route_reasons = _route(per_drive, schemes, results, shipped, destroyed, later_checks)
    inputs = {"host": host.to_json(), "drives": drive_inputs, "attestations": attestations,
              "schemes": [{"name": s.name, "source": s.source, "rank": s.rank} for s in schemes],
              "certificate_check": "signature" if bundle is not None else "journal",
              "shipped_in": shipped, "destruction": destroyed["document_id"] if destroyed else None}
    return Decision(asset, route, route_reasons, results, inputs)


def _route(per_drive: list[tuple[JobRow, CertificateStatus, HealthReading, list[dict[str, str]]]],
           schemes: list[Scheme], results: list[SchemeResult], shipped: str | None,
           destroyed: dict[str, Any] | None,
           later_checks: dict[str, dict[str, Any] | None]) -> tuple[str, list[str]]:
    if destroyed:
        return "destroyed", [f"destruction recorded ({destroyed['document_id']})"]
    if shipped:
        return "shipped", [f"in manifest {shipped}"]
    for result in results:  # schemes are sorted by preference
        if result.eligible:
            return f"reuse:{result.scheme}", [f"eligible for {result.scheme}"]
    destroy: list[str] = []
    for job, _certificate, reading, _validations in per_drive:
        label = f"{job.drive.model} S/N {job.drive.serial}"
        failed_check = _failed_check(job, later_checks.get(job.id))
        if failed_check:
            destroy.append(failed_check)
            continue
        if job.state != "sanitised" and job.route == "destroy":
            destroy.append(f"{label}: sanitisation {job.state} and routed to destruction ({job.reason or 'no reason'})")
            continue
        accepting = [scheme for scheme in schemes if scheme.level_for(job.drive.media) != "refuse"]
        failing = [health_failures(reading, scheme.health) for scheme in accepting]
        if accepting and all(failing):
            destroy.append(f"{label}: health fails every scheme that takes {job.drive.media} media: "
                           f"{'; '.join(failing[0])}")
    if destroy:
        return "destroy", destroy
    # what is left to do for the most preferred scheme that could take the device once it is done
    reachable = [result for result in results if all(reason.severity != "mismatch" for reason in result.reasons)]
    if reachable:
        return "hold", [f"{reachable[0].scheme}: {reason.message}" for reason in reachable[0].reasons]
    return "hold", ["no scheme can take the device as it is"] + [
        f"{result.scheme}: {reason.message}" for result in results for reason in result.reasons
        if not (reason.code == "media_refused" and any(s.demo and s.name == result.scheme for s in schemes))]
