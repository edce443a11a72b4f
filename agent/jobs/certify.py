"""From a finished job to a signed certificate of sanitisation (or a signed failure report).

The job in the registry is the single source: this module only translates it into the ``certs``
record (NIST SP 800-88 App. G fields plus evidence), asks ``certs`` to render and sign it, and
links the PDF to the job. Jobs that were refused (nothing touched) or interrupted (an attempt that
did not finish) never get a certificate — only ``sanitised`` and ``failed`` jobs are certified.
The station facts it prints come from :mod:`agent.jobs.settings` (re-exported here).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent import TOOL_NAME, __version__
from agent.errors import CertificateError
from agent.jobs.settings import CertificateSettings as CertificateSettings
from agent.jobs.settings import no_organisation as no_organisation
from agent.jobs.settings import settings_from_config as settings_from_config
from agent.methods.base import MethodEvidence
from agent.methods.registry import technique_of
from agent.operators import unnamed_text
from agent.store.registry import JobRow, Registry
from certs.errors import CertificateError as CertsError
from certs.errors import NoSignerConfigured, RecordError
from certs.files import STATE_DIRECTORY_MODE, make_private_directory
from certs.issue import issue_certificate_details
from certs.pki import StationSigner, load_station_signer
from certs.record import (
    Canary,
    Evidence,
    Health,
    HiddenArea,
    Host,
    Media,
    MethodStep,
    Person,
    Route,
    SanitisationRecord,
    StepOutcome,
    Timings,
    Tool,
    Verification,
    new_certificate_id,
)
from certs.verify import DocumentKind, read_back

CERTIFIABLE = ("sanitised", "failed")
_LOG = logging.getLogger(__name__)
def _level(value: str | None) -> Any:
    return {"clear": "Clear", "purge": "Purge", "destroy": "Destroy"}.get(value or "")


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), inner, out)
    elif isinstance(value, (list, tuple)):
        out[prefix] = json.dumps(value, sort_keys=True, default=str)
    elif value is not None:
        out[prefix] = str(value)


def _timestamp(value: str | None, fallback: str) -> str:
    return value or fallback


def _hidden_area(hidden: dict[str, Any]) -> HiddenArea:
    """The hidden-area evidence; a host overwrite that could not check says so instead of "none needed"."""
    actions = tuple(str(action) for action in hidden.get("actions", ()))
    if hidden.get("checked") is False:
        actions = (str(hidden.get("reason") or "hidden areas (HPA/DCO/AMAC) not checked"), *actions)
    elif hidden.get("kernel_rescan"):
        actions = (*actions, f"kernel capacity {hidden.get('kernel_bytes_before')} -> "
                             f"{hidden.get('kernel_bytes_after')} bytes ({hidden['kernel_rescan']})")
    # a DCO sets the native maximum: the factory maximum DCO IDENTIFY reported is the drive's real one
    native = max((value for value in (hidden.get("native_max_lba"), hidden.get("dco_max_lba")) if value is not None),
                 default=None)
    return HiddenArea(max_lba_before=hidden.get("max_lba_before"), max_lba_after=hidden.get("max_lba_after"),
                      native_max_lba=native, actions=actions)


def _operator(job: JobRow, settings: CertificateSettings) -> Person:
    """The person who performed the job: the one signed in for it, with their own title (agent.operators).

    A job nobody was signed in for names no person: the name field says so and which uid started it
    how ("no operator signed in — started by uid 0 (root) via the station daemon"), never a login
    name as if it were someone's. A job from before sign-ins existed keeps its recorded name and the
    station's default title."""
    common = {"organisation": settings.organisation, "location": settings.location, "phone": settings.phone}
    if job.operator_via is None:
        return Person(name=job.operator, title=settings.operator_title, **common)
    if not job.operator_named:
        return Person(name=unnamed_text(job.operator_uid, job.operator_via), title="", **common)
    return Person(name=job.operator, title=job.operator_title or "", **common)


def build_record(job: JobRow, station_id: str, settings: CertificateSettings, now: datetime,
                 registry: Registry | None = None) -> SanitisationRecord:
    """The certs record for a finished job (with ``registry``: the SMART summary read before it)."""
    if job.state not in CERTIFIABLE:
        raise CertificateError(f"job {job.id} is {job.state}: only sanitised and failed jobs are certified")
    issued_at = now.astimezone(UTC).isoformat(timespec="seconds")
    # the method's evidence, as it stored it (agent.methods.base.MethodEvidence)
    evidence = MethodEvidence.from_json(job.method_details or {})
    taken_level = None
    steps: list[MethodStep] = []
    for decision in job.decisions:
        applied = bool(decision.get("taken"))
        outcome: StepOutcome = "applied" if applied else "skipped"
        if applied and job.state == "failed" and job.error_code not in ("verification_failed",):
            outcome = "failed"
        level = _level(decision.get("level")) if applied else None
        if applied:
            taken_level = level
        steps.append(MethodStep(method=str(decision["method"]), technique=technique_of(str(decision["method"])).value,
                                level=level, outcome=outcome, reason=str(decision["reason"])))
    verification_data = job.verification or {}
    if verification_data:
        verification = Verification(
            mode=verification_data["mode"],
            result="passed" if verification_data["passed"] else "failed",
            seed=verification_data.get("seed"),
            subsections=verification_data.get("subsections") or 0,
            samples=verification_data.get("samples") or 0,
            coverage=float(verification_data["coverage"]),
            bytes_read=int(verification_data["bytes_checked"]),
            details=verification_data.get("note") or "",
        )
    else:
        verification = Verification(mode="none", result="not_run", details="the job ended before verification")
    hidden = dict(evidence.hidden_areas or {})
    canary_data = evidence.canaries
    canary = None
    if canary_data is not None:
        survivors = canary_data.get("survivors") or []
        read_as = canary_data.get("read_as") or {}
        seen = ", ".join(f"{kind} x{count}" for kind, count in sorted(read_as.items()))
        canary = Canary(result="passed" if canary_data.get("passed") else "failed",
                        blocks_written=int(canary_data.get("checked", 0)),
                        blocks_found_after=len(survivors),
                        details=(f"{canary_data.get('block', 4096)}-byte blocks at pseudorandom locations "
                                 f"(seed {canary_data.get('seed')}), written before the command; after it they "
                                 f"read as: {seen}"))
    capabilities: dict[str, str] = {}
    _flatten("", dict(evidence.capabilities or {}), capabilities)
    observations: dict[str, str] = {}
    _flatten("", dict(evidence.observations), observations)
    started = _timestamp(job.started_at, job.created_at)
    finished = _timestamp(job.finished_at, issued_at)
    duration = (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    drive = job.drive
    health = _health_before(registry, job) if registry is not None else None
    host_computer = _host(job, registry)
    sanitised = job.state == "sanitised"
    route: Route = "reuse" if sanitised else ("destroy" if job.route == "destroy" else "other")
    return SanitisationRecord(
        certificate_id=new_certificate_id(),
        job_id=job.id,
        station_id=station_id,
        issued_at=issued_at,
        demo=settings.demo,
        outcome="sanitised" if sanitised else "failed",
        failure_reason=None if sanitised else (station_text(job.reason) or "failed"),
        route=route,
        destination=settings.destination_for(job.route) if sanitised else (
            "Destruction" if route == "destroy" else "Held at the station for a retry or a decision"),
        tool=Tool(name=TOOL_NAME, version=__version__),
        profile=job.profile,
        operator=_operator(job, settings),
        validator=None,
        media=Media(vendor=drive.vendor or "", model=drive.model, serial=drive.serial, media_type=drive.media,
                    interface=drive.transport, capacity_bytes=drive.size_bytes, firmware=drive.firmware or "",
                    asset_tag=job.asset_tag, host_device=host_computer.asset_tag if host_computer else None),
        classification_before=settings.classification_before,
        classification_after=settings.classification_after if sanitised else settings.classification_before,
        data_backed_up=settings.data_backed_up,  # type: ignore[arg-type]
        backup_location=None,
        level=taken_level if sanitised else None,
        method_chain=tuple(steps),
        verification=verification,
        evidence=Evidence(
            capabilities=capabilities,
            hidden_area=_hidden_area(hidden),
            canary=canary,
            timings=Timings(started_at=started, finished_at=finished, duration_seconds=max(duration, 0.0),
                            bytes_processed=job.bytes_written,
                            throughput_bytes_per_second=float(job.throughput or 0.0)),
            observations=observations,
        ),
        notes=station_text(job.reason),
        host=host_computer,
        health=health,
    )


def _host(job: JobRow, registry: Registry | None) -> Host | None:
    """The host computer: as the bay's intake recorded it on the job, else the host registered
    ('wipe-agent host add') under the job's asset tag; None when the drive was wiped on its own."""
    host = job.host or {}
    if not host and registry is not None and job.asset_tag:
        from agent.reuse.store import ReuseStore

        found = ReuseStore(registry).registered_host(job.asset_tag)
        if found is not None:
            host = {"asset_tag": found.asset, "make": found.make, "model": found.model, "serial": found.serial}
    if not host:
        return None
    asset = host.get("asset_tag") or host.get("asset")
    return Host(asset_tag=str(asset) if asset else None, make=str(host.get("make") or ""),
                model=str(host.get("model") or ""), serial=str(host.get("serial") or ""))


def _health_before(registry: Registry, job: JobRow) -> Health | None:
    """The SMART summary filed for the drive before the job started ('wipe-agent health'), if any."""
    from agent.reuse.store import ReuseStore

    found = ReuseStore(registry).health_before(job.drive.model, job.drive.serial, job.started_at or job.created_at)
    if found is None:
        return None
    at, reading = found
    status = reading.status if reading.status in ("ok", "not_applicable", "unavailable") else "unavailable"
    return Health(status=status, read_at=at, source=station_text(reading.source) or "not recorded",  # type: ignore[arg-type]
                  smart_passed=reading.smart_passed, reallocated_sectors=reading.reallocated_sectors,
                  pending_sectors=reading.pending_sectors, offline_uncorrectable=reading.offline_uncorrectable,
                  critical_warning=reading.critical_warning, percentage_used=reading.percentage_used,
                  media_errors=reading.media_errors, note=station_text(reading.note))


def station_text(value: str | None) -> str:
    """The station's own free text (a job's reason, often an exception's message) as a record may hold it.

    Records refuse control, format and separator characters and non-NFC text (a partner must read
    exactly what was signed). A drive's identity is refused rather than repaired, since it is evidence;
    the station's own wording is not, so line breaks and tabs become spaces and any other such
    character is written as its code point.
    """
    if not value:
        return ""
    text = unicodedata.normalize("NFC", " ".join(value.split()))
    return "".join(character if unicodedata.category(character) not in ("Cc", "Cf", "Zl", "Zp")
                   else f"U+{ord(character):04X}" for character in text)


def station_signer(state_dir: Path) -> StationSigner | None:
    """The station's signer, or None when no key is configured (certificates are then not issued)."""
    try:
        return load_station_signer(state_dir)
    except NoSignerConfigured:
        return None
    except CertsError as exc:
        raise CertificateError(f"station key: {exc}") from exc


ISSUING_KIND = "certificate-issuing"
"""Chain entry written before a certificate is signed: its id, record hash and final path."""


def _finish_interrupted(registry: Registry, job: JobRow, signer: StationSigner, expect: DocumentKind) -> Path | None:
    """Link the certificate an interrupted certify of ``job`` already signed and published (chained as
    issuing, file under its final name, reading back as that id and hash); None when there is none."""
    pending = [entry for entry in registry.audit.entries(job.id) if entry.kind == ISSUING_KIND]
    if not pending:
        return None
    data = pending[-1].data if isinstance(pending[-1].data, dict) else {}
    path = Path(str(data.get("path", "")))
    Path(f"{path}.issuing").unlink(missing_ok=True)  # signed but never read back: not evidence
    if not path.is_file():
        return None
    try:
        checked = read_back(path, signer, expect)
    except CertsError:
        return None
    if checked.certificate_id != data.get("certificate_id") or checked.record_sha256 != data.get("record_sha256"):
        return None
    registry.attach_certificate(job.id, str(path), str(data["certificate_id"]), str(data["record_sha256"]))
    return path


def certify(registry: Registry, job: JobRow, signer: StationSigner, settings: CertificateSettings) -> Path | None:
    """Issue the certificate (or failure report) for ``job`` and link it; None if the job gets none."""
    if job.state not in CERTIFIABLE:
        return None
    if not settings.organisation.strip():
        reason = no_organisation(settings)
        registry.note_certificate_refused(job.id, reason)
        raise CertificateError(f"job {job.id} is recorded {job.state}, but {reason}")
    now = datetime.now(UTC)
    try:
        try:
            try:
                record = build_record(job, signer.station_id, settings, now, registry)
            except RecordError as exc:
                # A control, bidi or format character (from a drive's identity, intake or the job)
                # would make the page read differently from what is signed, or unverifiable: the
                # record refuses it, so this job gets no certificate until the value is corrected.
                raise CertificateError(f"job {job.id}: certificate not issued: record field {exc} "
                                       "(a certificate must read to a person exactly as it is signed: "
                                       "correct the value at intake or check the drive's identity)") from exc
            directory = settings.directory_for(registry.state_dir)
            make_private_directory(directory, STATE_DIRECTORY_MODE)
            kind = "certificate" if record.outcome == "sanitised" else "failure-report"
            path = directory / f"{kind}-{record.certificate_id}.pdf"
            expect = DocumentKind.CERTIFICATE if record.outcome == "sanitised" else DocumentKind.FAILURE_REPORT
            finished = _finish_interrupted(registry, job, signer, expect)
            if finished is not None:
                return finished
            # In the chain before anything is signed (H9): a kill from here on leaves a document the chain
            # names, and the next certify of this job links that one instead of signing a second.
            with registry.transaction() as tx:
                registry.record(tx, ISSUING_KIND, job.id, {"certificate_id": record.certificate_id,
                                                           "record_sha256": record.sha256(), "path": str(path)})
            partial = path.with_name(path.name + ".issuing")
            issued = issue_certificate_details(record, signer, partial, tsa_url=settings.tsa_url,
                                               tsa_timeout=settings.tsa_timeout)
            # read back from the file, as a partner would, before it gets its name and the registry links it
            checked = read_back(partial, signer, expect)
            os.replace(partial, path)
            if checked.code == "not_checked":
                _LOG.warning("certificate %s: %s", record.certificate_id, checked.reason)
            if issued.problems:
                # Evidence that this document is not (fully) timestamped ('certificates extend' fixes it)
                # or that the station's CRL needs renewing.
                _LOG.warning("certificate %s issued at %s: %s", record.certificate_id, issued.level.value,
                             "; ".join(issued.problems))
        except CertsError as exc:
            raise CertificateError(f"job {job.id}: certificate not issued: {exc}") from exc
        except OSError as exc:  # ENOSPC, EROFS … on the state filesystem: the job's outcome stands as recorded
            full = " (the state filesystem is full)" if exc.errno == errno.ENOSPC else ""
            raise CertificateError(f"job {job.id} is recorded {job.state}, but its certificate was not written: "
                                   f"{exc.strerror or exc}{full}") from None
    except CertificateError as refused:
        # the reason goes on the job (its journal), not only to the terminal or daemon log that saw it
        try:
            registry.note_certificate_refused(job.id, refused.message)
        except Exception:  # a registry that cannot take the note (full disk) must not hide the refusal
            _LOG.exception("job %s: the certificate refusal could not be recorded on the job", job.id)
        raise
    registry.attach_certificate(job.id, str(path), record.certificate_id, record.sha256())
    return path
