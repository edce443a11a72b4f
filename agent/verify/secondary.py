"""Secondary verification of a finished job (``verify-media DEVICE --job ID``), as NIST SP 800-88 asks.

The expectation is regenerated from the job's own record, never from the operator's word: the
``expectation`` its method recorded in ``method_details`` (zeros, a pattern, the clear-random
AES-256-CTR stream from its recorded key and nonce, or the firmware purge's erased / deallocated /
indeterminate state) and, after a firmware purge, the canaries journalled before the command
(``canaries-planted``), whose absence is proven again. The drive is identified by the kernel and
must be the job's drive (model, serial, size): another drive is refused, named.

Mismatching pieces are mapped to logical-sector extents ("LBA a-b (n sectors)"), and an equivalent
check another tool can repeat is printed (``cmp`` against /dev/zero, ``openssl enc -aes-256-ctr``).
The result is one ``verifications`` row linked to the job and one audit entry, in one transaction.
"""

from __future__ import annotations

import shlex
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from agent.audit.log import evidence_sha256
from agent.discovery.identity import DriveIdentity
from agent.errors import ConfigError
from agent.methods.canary import CanarySet, prove_absent
from agent.methods.expectations import DeallocatedZero, ErasedState, FirmwareResult, Indeterminate
from agent.store.registry import JobRow, Registry, has_serial
from agent.transport.block import BlockDevice
from agent.verify.expectation import AesCtrStream, Expectation, Pattern, Zero, expectation_from_json
from agent.verify.readback import verify

MAX_LISTED_EXTENTS = 16
AUDIT_KIND = "secondary-verification"


def _canaries(registry: Registry, job: JobRow) -> CanarySet | None:
    """The canaries the job journalled before its firmware command (the last set, if resumed)."""
    found: CanarySet | None = None
    for event in registry.events(job.id):
        if event["event"] == "canaries-planted" and isinstance(event["data"], dict):
            try:
                found = CanarySet.from_json(event["data"])
            except (KeyError, TypeError, ValueError):
                raise ConfigError(f"job {job.id}: its recorded canaries are damaged") from None
    return found


def _check_chained(registry: Registry, job: JobRow) -> None:
    """The job's recorded method details and canaries must be what the audit chain holds the hashes of (the
    registry rows are plain SQLite; the chain is what is signed). Jobs from before the hashes were chained
    have none to compare."""
    entries = registry.audit.entries(job.id)
    chained = [entry for entry in entries if isinstance(entry.data, dict) and "method_sha256" in entry.data]
    if chained and chained[-1].data["method_sha256"] != evidence_sha256(job.method_details):
        raise ConfigError(f"job {job.id}: its recorded expectation is not the one in the audit chain (entry "
                          f"{chained[-1].seq}): the registry was altered; nothing was read")
    planted = [entry for entry in entries if entry.kind == "job-canaries-planted"]
    events = [event["data"] for event in registry.events(job.id) if event["event"] == "canaries-planted"]
    if planted and (not events or planted[-1].data.get("sha256") != evidence_sha256(events[-1])):
        raise ConfigError(f"job {job.id}: its recorded canaries are not the ones in the audit chain (entry "
                          f"{planted[-1].seq}): the registry was altered; nothing was read")
    if events and not planted and chained:
        raise ConfigError(f"job {job.id}: canaries are recorded that the audit chain never saw: the registry was "
                          "altered; nothing was read")


def job_expectation(registry: Registry, job: JobRow) -> tuple[Expectation, CanarySet | None]:
    """What the job's method says the medium holds now, and its canaries (firmware purges only)."""
    if job.state != "sanitised":
        raise ConfigError(f"job {job.id} is {job.state}, not sanitised: there is no result to verify again")
    details = job.method_details or {}
    _check_chained(registry, job)
    recorded = details.get("expectation")
    if not isinstance(recorded, dict):
        raise ConfigError(f"job {job.id} ({job.method or 'no method'}) recorded no expectation to regenerate")
    canaries = _canaries(registry, job)
    kind = recorded.get("kind")
    reason = str(recorded.get("reason", ""))
    if kind in ("erased", "indeterminate") and canaries is None:
        raise ConfigError(f"job {job.id}: a {kind} expectation needs the job's canaries, and none were recorded")
    if kind == "erased":
        return ErasedState(reason, canaries=canaries), canaries
    if kind == "indeterminate":
        assert canaries is not None
        return Indeterminate(reason, canaries), canaries
    if kind == "zero-deallocated":
        return DeallocatedZero(reason), canaries
    try:
        inner = expectation_from_json(recorded)  # zero, pattern, random
    except ConfigError as exc:
        raise ConfigError(f"job {job.id}: {exc}; nothing was read") from None
    if recorded.get("written_by") == "device firmware" and not isinstance(inner, AesCtrStream):
        return FirmwareResult(inner, reason), canaries
    return inner, canaries


def drive_problem(job: JobRow, identity: DriveIdentity) -> str | None:
    """Why ``identity`` (what the kernel says is at the node) is not the job's drive; None when it is."""
    recorded = job.drive
    if not has_serial(recorded.serial) or not has_serial(identity.serial):
        return (f"{identity.path} cannot be matched to job {job.id}: the drive has no readable serial, "
                "so its identity cannot be proven")
    differences = [f"{name} {mine!r} ≠ job's {theirs!r}" for name, mine, theirs in (
        ("model", identity.model, recorded.model), ("serial", identity.serial, recorded.serial),
        ("size", identity.size_bytes, recorded.size_bytes)) if mine != theirs]
    if not differences:
        return None
    return (f"{identity.path} is not the drive of job {job.id}: it is {identity.model!r} serial "
            f"{identity.serial!r} ({'; '.join(differences)}); refusing")


@dataclass
class ExtentTally:
    """Maps mismatching read-back pieces to runs of consecutive mismatching logical sectors."""

    expectation: Expectation
    sector: int
    extents: list[list[int]] = field(default_factory=list)  # [first LBA, last LBA]
    sectors: int = 0

    def __call__(self, offset: int, data: memoryview) -> None:
        """Called by read-back for a piece that did not match: find which of its sectors differ."""
        for start in range(0, len(data), self.sector):
            piece = data[start : start + self.sector]
            if self.expectation.matches(offset + start, piece):
                continue
            lba = (offset + start) // self.sector
            self.sectors += 1
            if self.extents and self.extents[-1][1] == lba - 1:
                self.extents[-1][1] = lba
            else:
                self.extents.append([lba, lba])

    def to_json(self) -> dict[str, Any]:
        """Every extent and the bytes of the mismatching sectors."""
        return {"sector_bytes": self.sector, "mismatched_sectors": self.sectors,
                "mismatched_bytes": self.sectors * self.sector,
                "extents": [{"first_lba": first, "last_lba": last, "sectors": last - first + 1}
                            for first, last in self.extents]}


def describe_extent(extent: dict[str, Any]) -> str:
    """``LBA a-b (n sectors)``."""
    count = extent["sectors"]
    return f"LBA {extent['first_lba']}-{extent['last_lba']} ({count} sector{'s' if count != 1 else ''})"


def independent_check(expectation: Expectation, device: str, size: int) -> str | None:
    """A shell line another tool runs to repeat a full check of ``size`` bytes (exit 0: identical).

    None where no standard tool can regenerate the content (a firmware erased/indeterminate state,
    a multi-byte pattern)."""
    inner = expectation.inner if isinstance(expectation, FirmwareResult) else expectation
    target = shlex.quote(device)
    if isinstance(inner, Zero | DeallocatedZero):
        return f"cmp -n {size} /dev/zero {target}"
    if isinstance(inner, Pattern) and len(inner.pattern) == 1:
        return f"head -c {size} /dev/zero | tr '\\000' '\\{inner.pattern[0]:03o}' | cmp -n {size} - {target}"
    if isinstance(inner, AesCtrStream):
        # OpenSSL's CTR counter is the whole 16-byte IV, incremented big-endian: our nonce + offset // 16;
        # its stderr is dropped because head closing the pipe makes it complain ("error writing output")
        return (f"openssl enc -aes-256-ctr -nosalt -K {inner.key.hex()} -iv {inner.nonce.hex()} </dev/zero 2>/dev/null "
                f"| head -c {size} | cmp -n {size} - {target}")
    return None


def record(registry: Registry, job: JobRow, identity: DriveIdentity, result: dict[str, Any], by: str) -> int:
    """One verifications row linked to the job and its audit entry, committed together; the row's id."""
    audit = registry.audit  # the station's chain: its checkpoint rule applies to these appends too

    def audit_entry(tx: sqlite3.Connection, row_id: int) -> None:
        audit.append(AUDIT_KIND, job.id, {
            "verification_id": row_id, "job_id": job.id, "by": by, "device": identity.path,
            "model": identity.model, "serial": identity.serial, "mode": result["mode"], "passed": result["passed"],
            "seed": result.get("seed"), "bytes_checked": result["bytes_checked"],
            "mismatched_bytes": result["mismatches"]["mismatched_bytes"],
            "expectation": result["expectation"].get("kind"), "certificate": result.get("certificate")},
            in_transaction=True)

    return registry.record_verification(job.id, identity, result, also=audit_entry)


def verify_job(registry: Registry, job: JobRow, identity: DriveIdentity, mode: str, *, seed: str | None,
               by: str) -> dict[str, Any]:
    """Re-verify the job's drive read-only against the job's own expectation; record and return the result.

    The caller has identified the node (``identity``); it is matched to the job before anything is read."""
    expectation, canaries = job_expectation(registry, job)
    problem = drive_problem(job, identity)
    if problem is not None:
        raise ConfigError(problem)
    tally = ExtentTally(expectation, identity.logical_sector)
    # O_RDONLY and shared: a spot check never writes, and never takes the drive from anyone
    with BlockDevice(identity.path, writable=False, exclusive=False) as handle:
        if handle.size != job.drive.size_bytes:
            raise ConfigError(f"{identity.path} now reads {handle.size} bytes, job {job.id}'s drive had "
                              f"{job.drive.size_bytes}: refusing")
        result = verify(handle, expectation, mode, seed=seed, on_mismatch=tally)
        canary_report = prove_absent(handle, canaries) if canaries is not None else None
    data = {"device": identity.path, "model": identity.model, "serial": identity.serial, **result.to_json()}
    data["secondary"] = True
    data["mismatches"] = tally.to_json()
    if canary_report is not None:
        data["canaries"] = canary_report.to_json()
        data["passed"] = result.passed and canary_report.passed
    data["certificate"] = job.certificate_path  # the certificate this re-check stands beside, if one was issued
    # the clear-random key is the job's, recorded once on the job: each re-check's row names the job's
    # expectation without a copy of the key (eight re-checks made eight more copies of a secret), and
    # the openssl line that spells it out is shown to the caller, not stored
    stored = {**data, "expectation": _without_key(data.get("expectation"))}
    data["verification_id"] = record(registry, job, identity, stored, by)
    data["independent_check"] = independent_check(expectation, identity.path, job.drive.size_bytes)
    return data


def _without_key(described: Any) -> Any:
    if isinstance(described, dict) and "key" in described:
        return {**{name: value for name, value in described.items() if name != "key"},
                "key": "recorded on the job (not copied here)"}
    return described
