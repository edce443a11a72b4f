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
