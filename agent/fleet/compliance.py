"""What compliance must look at across the programme: the exceptions, each with where and why.

- ``held``: assets held (a drive's latest job failed, was interrupted or refused, or routed hold/destroy);
- ``interrupted``: drives whose latest job was interrupted (a power cut, a pulled drive) — never certified;
- ``certificate_missing``: sanitised or failed jobs whose certificate or failure report the fleet has not
  received (none issued, or issued but not forwarded, or refused on ingest);
- ``chain``: records the fleet refused (broken or rewound audit chains, bad checkpoints, forged documents),
  per station and reason, and stations whose newest signed checkpoint is older than ``late_hours``;
- ``overdue``: assets past their due date that are not done (sanitised, eligible, allocated, handed over or
  destroyed);
- ``allocated_twice``: assets listed in more than one manifest that stands (not voided) — a station's manifest
  or a fleet manifest: the fleet never lists an asset twice itself, but a station is autonomous and may ship an
  asset the fleet already allocated (its manifest reaches the fleet later).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

DONE = ("sanitised", "eligible", "allocated", "handed_over", "destroyed")

_LATEST = """
SELECT DISTINCT ON (coalesce(nullif(serial, ''), station_id || '/' || job_id))
       station_id, job_id, state, route, model, serial, asset_tag, certificate_id, finished_at
FROM fleet_jobs
ORDER BY coalesce(nullif(serial, ''), station_id || '/' || job_id), created_at DESC, updated_seq DESC
"""


_ALLOCATED_TWICE = """
SELECT asset, array_agg(listing ORDER BY listing) FROM (
    SELECT upper(c.asset_tag) AS asset, 'fleet manifest ' || m.document_id AS listing
    FROM fleet_manifest_assets c JOIN fleet_manifests m ON m.id = c.manifest_id WHERE NOT c.voided
    UNION
    SELECT upper(asset_tag), 'manifest ' || ref || ' of station ' || station_id
    FROM fleet_asset_facts WHERE kind = 'manifest' AND NOT voided) listings
GROUP BY asset HAVING count(*) > 1 ORDER BY asset
"""


def exceptions(db: Any, *, today: datetime | None = None, late_hours: float = 24.0,
               limit: int = 1000) -> dict[str, Any]:
    """Every exception class, counted, with up to ``limit`` items each."""
    now = today or datetime.now(UTC)
    latest = db.execute(_LATEST).fetchall()
    interrupted = [_job(row) for row in latest if row[2] == "interrupted"]
    documents = {(str(row[0]), str(row[1])) for row in db.execute(
        "SELECT station_id, document_id FROM fleet_documents").fetchall()}
    missing = [_job(row) for row in latest if row[2] in ("sanitised", "failed")
               and (row[7] is None or (row[0], row[7]) not in documents)]
    held = [{"asset_tag": row[0], "since": row[1].isoformat(), "station": row[2]} for row in db.execute(
        "SELECT asset_tag, state_since, last_station FROM fleet_assets WHERE state = 'held' ORDER BY state_since")]
    overdue = [{"asset_tag": row[0], "due_date": row[1].isoformat(), "state": row[2], "department": row[3]}
               for row in db.execute("SELECT asset_tag, due_date, state, department FROM fleet_assets "
                                     "WHERE due_date < %s AND NOT (state = ANY(%s)) ORDER BY due_date, asset_tag",
                                     (now.date(), list(DONE)))]
    refused = [{"station_id": row[0], "code": row[1], "count": int(row[2]), "latest": row[3].isoformat(),
                "reason": row[4]} for row in db.execute(
        "SELECT station_id, code, count(*), max(at), (array_agg(reason ORDER BY at DESC))[1] FROM fleet_quarantine "
        "GROUP BY station_id, code ORDER BY station_id, code")]
    late = [{"station_id": row[0], "entries_after_checkpoint": int(row[1]),
             "last_checkpoint_at": row[2]} for row in db.execute(
        "SELECT s.station_id, s.audit_seq - coalesce(max(c.seq), 0), max(c.at) FROM fleet_stations s "
        "LEFT JOIN fleet_checkpoints c USING (station_id) GROUP BY s.station_id, s.audit_seq "
        "HAVING s.audit_seq > coalesce(max(c.seq), 0) AND (max(c.at) IS NULL OR max(c.at) < %s) "
        "ORDER BY 1", ((now - timedelta(hours=late_hours)).isoformat(),))]
    twice = [{"asset_tag": row[0], "manifests": list(row[1])} for row in db.execute(_ALLOCATED_TWICE)]
    db.commit()
    return {
        "held": {"count": len(held), "items": held[:limit]},
        "interrupted": {"count": len(interrupted), "items": interrupted[:limit]},
        "certificate_missing": {"count": len(missing), "items": missing[:limit]},
        "chain": {"refused": refused, "late_checkpoints": late},
        "overdue": {"count": len(overdue), "items": overdue[:limit]},
        "allocated_twice": {"count": len(twice), "items": twice[:limit]},
    }


def _job(row: Any) -> dict[str, Any]:
    return {"station_id": row[0], "job_id": row[1], "state": row[2], "route": row[3], "model": row[4],
            "serial": row[5], "asset_tag": row[6], "certificate_id": row[7],
            "finished_at": row[8].isoformat() if row[8] else None}


_ASSET_JOBS = """
SELECT station_id, job_id, state, method, model, serial, media, created_at, finished_at, route, certificate_id,
       reason, body FROM (
    SELECT j.* FROM fleet_jobs j WHERE upper(j.asset_tag) = upper(%(tag)s)
    UNION  -- the drives of a registered host, by the serial its station registered
    SELECT j.* FROM fleet_asset_facts h JOIN fleet_jobs j ON j.serial = h.ref AND j.station_id = h.station_id
    WHERE h.kind = 'host-drive' AND upper(h.asset_tag) = upper(%(tag)s)) AS linked
ORDER BY created_at, station_id, job_id
"""

_ASSET_AUDIT = """
SELECT a.station_id, a.seq, a.at, a.kind, a.subject, a.data, a.hash FROM fleet_audit a
WHERE upper(a.subject) = upper(%(tag)s)
   OR (a.station_id, a.subject) IN (SELECT * FROM unnest(%(stations)s::text[], %(jobs)s::text[]))
   OR (a.station_id, a.seq) IN (SELECT f.station_id, f.audit_seq FROM fleet_asset_facts f
                                WHERE upper(f.asset_tag) = upper(%(tag)s))
   OR (a.kind = 'validation-statement' AND a.station_id = ANY(%(stations)s::text[]) AND a.data LIKE ANY(%(likes)s))
ORDER BY a.at, a.station_id, a.seq
"""


def asset_history(db: Any, key: str, *, limit: int = 2000) -> dict[str, Any] | None:
    """Everything the fleet holds of one asset (by tag or serial, or a tag only the stations' jobs name): its
    register row, every job of its drives (with each job's verification and secondary verifications), the
    certificates and reports received for them, and every audit entry that speaks of it — its own entries
    (intake, host registration, attestations, decisions, destruction), its jobs' entries, the manifests that
    list it and the validation statements that cover its jobs. None when the fleet knows nothing of ``key``."""
    from agent.fleet.assets import asset_by_key

    asset = asset_by_key(db, key)
    tag = asset.asset_tag if asset is not None else key
    jobs = db.execute(_ASSET_JOBS, {"tag": tag}).fetchall()
    if asset is None and not jobs:
        return None
    stations = [str(row[0]) for row in jobs]
    job_ids = [str(row[1]) for row in jobs]
    wanted = {(station, certificate) for station, certificate in
              ((str(row[0]), row[10]) for row in jobs) if certificate}
    documents = {}
    if wanted:
        for station, document_id, kind, sha256, signed_at, size in db.execute(
                "SELECT station_id, document_id, kind, sha256, signed_at, length(pdf) FROM fleet_documents "
                "WHERE (station_id, document_id) IN (SELECT * FROM unnest(%s::text[], %s::text[]))",
                ([s for s, _ in wanted], [d for _, d in wanted])).fetchall():
            documents[(str(station), str(document_id))] = {
                "station_id": station, "document_id": document_id, "kind": kind, "sha256": sha256,
                "signed_at": signed_at.isoformat() if signed_at else None, "bytes": int(size)}
    likes = [f'%"{_like(job_id)}"%' for job_id in job_ids] or ["-"]
    entries = db.execute(_ASSET_AUDIT, {"tag": tag, "stations": stations or [""], "jobs": job_ids or [""],
                                        "likes": likes}).fetchall()
    audit = []
    for station, seq, at, kind, subject, data, digest in entries[:limit]:
        parsed = json.loads(data)
        if kind == "validation-statement" and not _covers(parsed, set(job_ids)):
            continue  # a LIKE match on another job's id that merely contains this one
        audit.append({"station_id": station, "seq": int(seq), "at": at, "kind": kind, "subject": subject,
                      "data": parsed, "hash": digest})
    items = []
    for row in jobs:
        body = json.loads(row[12])
        verification = body.get("verification") if isinstance(body.get("verification"), dict) else None
        checks = [check for check in body.get("secondary_verifications") or [] if isinstance(check, dict)]
        items.append({"station_id": row[0], "job_id": row[1], "state": row[2], "method": row[3], "model": row[4],
                      "serial": row[5], "media": row[6], "created_at": row[7].isoformat(),
                      "finished_at": row[8].isoformat() if row[8] else None, "route": row[9],
                      "certificate_id": row[10], "reason": row[11], "verification": verification,
                      "secondary_verifications": checks,
                      "document": documents.get((str(row[0]), str(row[10]))) if row[10] else None})
    register = asset.to_json() if asset is not None else None
    extra = db.execute("SELECT scheme, last_station FROM fleet_assets WHERE asset_tag = %s", (tag,)).fetchone()
    db.rollback()
    return {"asset_tag": tag, "register": register, "scheme": extra[0] if extra else None,
            "last_station": extra[1] if extra else None, "jobs": items, "documents": list(documents.values()),
            "audit": audit, "audit_truncated": len(entries) > limit,
            "attestations": [entry for entry in audit if entry["kind"] == "attestation"],
            "validations": [entry for entry in audit if entry["kind"] == "validation-statement"]}


def _covers(data: Any, job_ids: set[str]) -> bool:
    jobs = data.get("jobs") if isinstance(data, dict) else None
    return any(isinstance(item, dict) and item.get("job_id") in job_ids for item in jobs or []) or any(
        isinstance(item, str) and item in job_ids for item in jobs or [])


def _like(text: str) -> str:
    """``text`` as a literal inside a LIKE pattern (backslash is PostgreSQL's default escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def station_audit_export(db: Any, station: str) -> dict[str, Any] | None:
    """The station's audit chain as the fleet holds it, in the station's own export format
    (``wipe-agent audit verify --file`` checks it offline against the trust bundle): every entry up to the
    newest signed checkpoint (what a checkpoint anchors), and the checkpoints. Entries after the newest
    checkpoint are left out, as ``audit export`` on the station leaves them out. None for an unknown station;
    a station without a checkpoint exports all its entries, and the verifier says they are unanchored."""
    from certs.audit_chain import EXPORT_FORMAT

    try:
        known = db.execute("SELECT audit_seq FROM fleet_stations WHERE station_id = %s", (station,)).fetchone()
        if known is None:
            return None
        checkpoints = [json.loads(row[0]) for row in db.execute(
            "SELECT body FROM fleet_checkpoints WHERE station_id = %s ORDER BY number", (station,)).fetchall()]
        last = max((int(item["seq"]) for item in checkpoints), default=int(known[0]))
        entries = [{"seq": int(seq), "at": at, "kind": kind, "subject": subject, "data": json.loads(data),
                    "prev_hash": prev_hash, "hash": digest}
                   for seq, at, kind, subject, data, prev_hash, digest in db.execute(
                       "SELECT seq, at, kind, subject, data, prev_hash, hash FROM fleet_audit "
                       "WHERE station_id = %s AND seq <= %s ORDER BY seq", (station, last)).fetchall()]
    finally:
        db.rollback()
    return {"format": EXPORT_FORMAT, "station_id": station,
            "exported_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "range": {"from_seq": 1, "to_seq": entries[-1]["seq"] if entries else last},
            "entries": entries, "checkpoints": [item for item in checkpoints if int(item["seq"]) <= last],
            "certificates": [], "exported_by": "wipe-agent fleet console (the fleet's copy of the station's chain)"}
