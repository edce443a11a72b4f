"""A station as the fleet sees it: outbox records of jobs, a real hash chain, signed checkpoints, documents."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs.audit_chain import GENESIS, checkpoint_payload, entry_hash
from certs.pki import StationSigner


def free_port() -> int:
    """A TCP port free on loopback now (a fleet service that is restarted on it keeps it)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _recently() -> datetime:
    """A minute ago: inside the validity of a station certificate issued now (back-dated 5 minutes)."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)


@dataclass
class StationFeed:
    """Builds one station's outbox: every record numbered by the station's outbox sequence."""

    station_id: str
    signer: StationSigner | None = None
    seq: int = 0
    audit_seq: int = 0
    audit_head: str = GENESIS
    checkpoints: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    base: datetime = field(default_factory=_recently)

    def _add(self, kind: str, key: str, body: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        record = {"seq": self.seq, "kind": kind, "key": key, "body": body}
        self.records.append(record)
        return record

    def job(self, number: int, *, state: str = "sanitised", asset: str | None = None,
            serial: str | None = None) -> dict[str, Any]:
        job_id = f"{self.station_id}-J{number:06d}"
        created = self.base - timedelta(hours=1) + timedelta(seconds=number)
        return self._add("job", job_id, {
            "job_id": job_id, "state": state, "outcome": state, "profile": "nist-purge", "method": "nvme-sanitize",
            "drive": {"model": "Example NVMe", "serial": serial or f"{self.station_id}-S{number:06d}"},
            "asset_tag": asset, "host": None, "created_at": created.isoformat(),
            "finished_at": (created + timedelta(minutes=20)).isoformat(), "route": None, "bytes_written": 0,
            "decisions": [], "verification": {"mode": "sampling", "passed": True}})

    def audit(self, kind: str = "decision", subject: str = "LAPTOP-0001",
              data: Any = None) -> dict[str, Any]:
        self.audit_seq += 1
        at = (self.base + timedelta(milliseconds=10 * self.audit_seq)).isoformat(timespec="milliseconds")
        data = {"n": self.audit_seq} if data is None else data
        digest = entry_hash(self.audit_head, self.audit_seq, at, kind, subject, data)
        body = {"seq": self.audit_seq, "at": at, "kind": kind, "subject": subject, "data": data,
                "prev_hash": self.audit_head, "hash": digest}
        self.audit_head = digest
        return self._add("audit", f"audit-{self.audit_seq}", body)

    def checkpoint(self, signer: StationSigner | None = None, *, head: str | None = None) -> dict[str, Any]:
        signer = signer or self.signer
        assert signer is not None
        self.checkpoints += 1
        at = (self.base + timedelta(milliseconds=10 * self.audit_seq + 5)).isoformat(timespec="milliseconds")
        signed_head = head or self.audit_head
        payload = checkpoint_payload(signer.station_id, self.audit_seq, signed_head, self.audit_seq, at)
        body = {"number": self.checkpoints, "station_id": signer.station_id, "seq": self.audit_seq,
                "head": signed_head, "count": self.audit_seq, "at": at,
                "signature": base64.b64encode(signer.private_key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode(),
                "certificate": base64.b64encode(signer.certificate.public_bytes(serialization.Encoding.DER)).decode()}
        return self._add("checkpoint", f"checkpoint-{self.checkpoints}", body)

    def document(self, pdf: Path) -> dict[str, Any]:
        return self._add("document", pdf.name, {"pdf": base64.b64encode(pdf.read_bytes()).decode()})

    def batch(self, records: list[dict[str, Any]] | None = None, *, station_id: str | None = None) -> dict[str, Any]:
        return {"station_id": station_id or self.station_id, "records": self.records if records is None else records}


def sanitised_job(registry: Any, signer: StationSigner | None, state_dir: Path, serial: str) -> str:
    """One job through a real station registry's whole lifecycle (each transition chained in its audit log),
    with a real signed certificate when ``signer`` is given; returns the job id."""
    from agent.discovery.identity import DriveIdentity
    from certs.issue import issue_certificate
    from certs.samples import sample_record

    identity = DriveIdentity(
        path="/dev/sdz", name="sdz", by_id=None, model="Fleet Disk", serial=serial, firmware="1", vendor=None,
        size_bytes=1 << 30, logical_sector=512, physical_sector=4096, rotational=True, transport="sata",
        media="hdd", removable=False, read_only=False, id_path=None)
    job: str = registry.create_job(identity, "nist-clear", "test", "test", durable=False)
    registry.transition(job, "checking", "checks", durable=False)
    registry.transition(job, "running", "started", method="overwrite.single-pass")
    registry.transition(job, "verifying", "written")
    registry.transition(job, "sanitised", "verified")
    if signer is not None:
        pdf = issue_certificate(sample_record(station_id=signer.station_id, job_id=job, certificate_id=f"C-{job}",
                                              demo=False), signer, state_dir / "certificates" / f"{job}.pdf")
        registry.attach_certificate(job, str(pdf), f"C-{job}", "0" * 64)
    return job
