"""The programme model: one state per asset across every station, derived from what the stations recorded.

An asset's state is never set by hand and never pushed by a station: it follows, by one rule, from the
facts the fleet holds — the jobs of the asset's drives (any station) and what the stations' audit chains
say about the asset (intake, host registration, eligibility decision, manifest, destruction)::

    destroyed     a destruction is recorded
    handed_over   the station that allocated it recorded the partner's receipt of that manifest, or the fleet
                  recorded the receipt of the fleet manifest listing it
    allocated     a station's manifest or a fleet manifest (not voided) lists it
    in_progress   a drive's latest job is still running
    held          a drive's latest job failed, was interrupted or refused, or is routed hold/destroy;
                  or the latest eligibility decision routes it to hold or destruction
    eligible      every drive's latest job sanitised and the latest decision routes it to a scheme
    sanitised     every drive's latest job sanitised (no decision yet); a registered host's drives all have one
    received      an intake or host registration names it, or some but not all of its drives are done
    awaiting      nothing yet (as imported from the register)

A station's eligibility decision, manifest or destruction counts for an asset only once that station has
received it (its own intake or host registration, or a job of its own on the asset's drives): a station
cannot allocate, hold or destroy an asset it never had.

The rule is one SQL
statement over the touched assets, run at the end of every ingest batch in the batch's transaction, so
a state is always the rule applied to the facts stored — recomputed, never accumulated.
"""

from __future__ import annotations

from typing import Any

FACT_KINDS = ("intake", "host-registered", "eligibility-decision", "manifest", "manifest-handed-over", "destruction")
"""Audit entries that state something of an asset; a host registration also links its drives (``host-drive``)."""
ACTIVE_STATES = ("created", "checking", "running", "verifying")
UNFINISHED_STATES = ("failed", "interrupted", "refused")

_RECOMPUTE = """
WITH touched(asset) AS (SELECT DISTINCT upper(value) FROM unnest(%(assets)s::text[]) AS value),
linked AS (  -- a job belongs to an asset by its own asset tag, or as a drive of a registered host
    SELECT t.asset, j.* FROM fleet_jobs j JOIN touched t ON upper(j.asset_tag) = t.asset
    UNION
    SELECT t.asset, j.* FROM touched t
    JOIN fleet_asset_facts h ON h.kind = 'host-drive' AND upper(h.asset_tag) = t.asset
    JOIN fleet_jobs j ON j.serial = h.ref AND j.station_id = h.station_id),
latest AS (
    SELECT DISTINCT ON (asset, coalesce(serial, job_id)) asset, state, route, station_id
    FROM linked
    ORDER BY asset, coalesce(serial, job_id), created_at DESC, updated_seq DESC),
jobs AS (
    SELECT asset,
           bool_or(state IN ('created', 'checking', 'running', 'verifying')) AS active,
           bool_or(state IN ('failed', 'interrupted', 'refused') OR route IN ('hold', 'destroy')) AS held,
           bool_and(state = 'sanitised') AS clean,
           max(station_id) AS station
    FROM latest GROUP BY asset),
missing AS (  -- registered drives of a host that no job has touched yet: the host is not done
    SELECT t.asset, count(*) AS drives FROM touched t
    JOIN fleet_asset_facts h ON h.kind = 'host-drive' AND upper(h.asset_tag) = t.asset
    WHERE NOT EXISTS (SELECT 1 FROM fleet_jobs j WHERE j.serial = h.ref AND j.station_id = h.station_id)
    GROUP BY t.asset),
facts AS (
    SELECT upper(f.asset_tag) AS asset,
           bool_or(f.kind = 'destruction') AS destroyed,
           bool_or(f.kind = 'manifest' AND NOT f.voided) AS allocated,
           -- a hand-over counts for the manifest the same station allocated the asset in
           bool_or(f.kind = 'manifest-handed-over' AND EXISTS (
               SELECT 1 FROM fleet_asset_facts m WHERE m.station_id = f.station_id AND m.kind = 'manifest'
               AND m.ref = f.ref AND NOT m.voided AND upper(m.asset_tag) = upper(f.asset_tag)
               AND m.audit_seq < f.audit_seq)) AS handed,  -- a hand-over before the manifest hands over nothing
           (array_agg(f.route ORDER BY f.at DESC, f.audit_seq DESC)
                FILTER (WHERE f.kind = 'eligibility-decision'))[1] AS decision,
           bool_or(f.kind IN ('intake', 'host-registered')) AS received
    FROM fleet_asset_facts f JOIN touched t ON upper(f.asset_tag) = t.asset
    -- a station speaks of an asset it has received (its own intake or host registration, or a job of its own on
    -- the asset's drives): another station's decision, manifest or destruction naming it changes nothing
    WHERE f.kind IN ('intake', 'host-registered')
       OR EXISTS (SELECT 1 FROM fleet_asset_facts r WHERE r.station_id = f.station_id
                  AND r.kind IN ('intake', 'host-registered') AND upper(r.asset_tag) = t.asset)
       OR EXISTS (SELECT 1 FROM linked l WHERE l.asset = t.asset AND l.station_id = f.station_id)
    GROUP BY 1),
fleet_claims AS (  -- a fleet manifest's claim (agent/fleet/manifests.py) allocates the asset as a station's does,
                  -- and the fleet's record of its hand-over hands it over as a station's does
    SELECT t.asset, bool_or(EXISTS (SELECT 1 FROM fleet_manifest_handovers h
                                    WHERE h.manifest_id = c.manifest_id)) AS handed
    FROM fleet_manifest_assets c JOIN touched t ON upper(c.asset_tag) = t.asset
    WHERE NOT c.voided GROUP BY t.asset),
computed AS (
    SELECT t.asset,
           CASE WHEN f.destroyed THEN 'destroyed'
                WHEN f.handed OR c.handed THEN 'handed_over'
                WHEN f.allocated OR c.asset IS NOT NULL THEN 'allocated'
                WHEN j.active THEN 'in_progress'
                WHEN j.held THEN 'held'
                WHEN j.clean AND m.drives IS NULL AND f.decision LIKE 'reuse:%%' THEN 'eligible'
                WHEN j.clean AND m.drives IS NULL AND f.decision IN ('hold', 'destroy') THEN 'held'
                WHEN j.clean AND m.drives IS NULL THEN 'sanitised'
                WHEN f.received OR j.asset IS NOT NULL THEN 'received'
                ELSE 'awaiting' END AS state,
           CASE WHEN f.decision LIKE 'reuse:%%' THEN substring(f.decision FROM 7) END AS scheme,
           j.station
    FROM touched t LEFT JOIN jobs j USING (asset) LEFT JOIN facts f USING (asset) LEFT JOIN missing m USING (asset)
    LEFT JOIN fleet_claims c USING (asset))
UPDATE fleet_assets a
SET state = c.state, scheme = c.scheme, last_station = coalesce(c.station, a.last_station),
    state_since = CASE WHEN a.state = c.state THEN a.state_since ELSE now() END
FROM computed c
WHERE upper(a.asset_tag) = c.asset
  AND (a.state, a.scheme, a.last_station) IS DISTINCT FROM (c.state, c.scheme, coalesce(c.station, a.last_station))
"""


def facts_of_entry(kind: str, subject: str, data: Any) -> list[tuple[str, str, str | None]]:
    """The (asset tag, ref, route) facts an audit entry states; [] for entries that say nothing of an asset."""
    if kind not in FACT_KINDS and kind != "manifest-voided":
        return []
    if kind in ("manifest", "manifest-handed-over"):
        assets = data.get("assets") if isinstance(data, dict) else None
        return [(asset, subject, None) for asset in assets or [] if type(asset) is str and asset]
    if kind == "host-registered":
        serials = data.get("drive_serials") if isinstance(data, dict) else None
        drives = [(subject, f"drive:{serial}", None) for serial in serials or [] if type(serial) is str and serial]
        return [(subject, "", None), *drives] if subject else []
    route = data.get("route") if kind == "eligibility-decision" and isinstance(data, dict) else None
    return [(subject, "", route if type(route) is str else None)] if subject else []


def record_facts(db: Any, station: str, audit_seq: int, at: str, kind: str, subject: str, data: Any) -> list[str]:
    """Store the facts of one accepted audit entry; returns the assets whose state may have changed."""
    if kind == "manifest-voided":
        # a hand-over is final (the devices left with the partner): a void after it, which the station's own code
        # refuses, changes nothing here either; a hand-over after a void counts for nothing (see _RECOMPUTE)
        rows = db.execute(
            "UPDATE fleet_asset_facts m SET voided = true WHERE m.station_id = %s AND m.kind = 'manifest' "
            "AND m.ref = %s AND NOT EXISTS (SELECT 1 FROM fleet_asset_facts h WHERE h.station_id = m.station_id "
            "AND h.kind = 'manifest-handed-over' AND h.ref = m.ref AND h.audit_seq > m.audit_seq) "
            "RETURNING m.asset_tag", (station, subject)).fetchall()
        return [str(row[0]) for row in rows]
    facts = facts_of_entry(kind, subject, data)
    for index, (asset, ref, route) in enumerate(facts):
        drive = ref.startswith("drive:") and kind == "host-registered"
        # one fact row per (entry, asset): a host's drive links are rows of their own, numbered after the entry
        db.execute("INSERT INTO fleet_asset_facts (station_id, audit_seq, asset_tag, kind, ref, route, at, part) "
                   "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                   (station, audit_seq, asset[:256], "host-drive" if drive else kind,
                    ref[len("drive:"):][:256] if drive else ref[:256], route, at, index))
    return [asset for asset, _, _ in facts]


def assets_of_drives(db: Any, station: str, serials: list[str]) -> list[str]:
    """The registered hosts whose drives (by serial, on ``station``) these are."""
    if not serials:
        return []
    return [str(row[0]) for row in db.execute(
        "SELECT DISTINCT asset_tag FROM fleet_asset_facts WHERE kind = 'host-drive' AND station_id = %s "
        "AND ref = ANY(%s)", (station, serials)).fetchall()]


def recompute(db: Any, assets: list[str]) -> int:
    """Apply the rule to ``assets``; returns how many changed state."""
    if not assets:
        return 0
    return int(db.execute(_RECOMPUTE, {"assets": sorted(set(assets))}).rowcount or 0)


def summary(db: Any) -> dict[str, Any]:
    """The programme at a glance: assets by state, by scheme, by station, and the total."""
    states = {str(row[0]): int(row[1]) for row in db.execute(
        "SELECT state, count(*) FROM fleet_assets GROUP BY state").fetchall()}
    schemes = {str(row[0]): int(row[1]) for row in db.execute(
        "SELECT scheme, count(*) FROM fleet_assets WHERE scheme IS NOT NULL GROUP BY scheme").fetchall()}
    stations = {str(row[0]): int(row[1]) for row in db.execute(
        "SELECT station_id, count(*) FROM fleet_jobs GROUP BY station_id").fetchall()}
    total = sum(states.values())
    done = sum(states.get(state, 0) for state in ("sanitised", "eligible", "allocated", "handed_over", "destroyed"))
    return {"total": total, "states": states, "schemes": schemes, "jobs_by_station": stations,
            "done": done, "percent_done": round(100.0 * done / total, 1) if total else 0.0}


DONE_STATES = ("sanitised", "eligible", "allocated", "handed_over", "destroyed")

_DONE_DAYS = """
WITH done AS (SELECT upper(asset_tag) AS asset, state_since FROM fleet_assets WHERE state = ANY(%(done)s)),
finished AS (  -- the sanitised jobs of a done asset: by its own tag, or as a drive of a registered host
    SELECT d.asset, j.finished_at FROM done d JOIN fleet_jobs j ON upper(j.asset_tag) = d.asset
    WHERE j.state = 'sanitised'
    UNION ALL
    SELECT d.asset, j.finished_at FROM done d
    JOIN fleet_asset_facts h ON h.kind = 'host-drive' AND upper(h.asset_tag) = d.asset
    JOIN fleet_jobs j ON j.serial = h.ref AND j.station_id = h.station_id WHERE j.state = 'sanitised'),
dated AS (SELECT d.asset, coalesce(max(f.finished_at), d.state_since) AS at
          FROM done d LEFT JOIN finished f USING (asset) GROUP BY d.asset, d.state_since)
SELECT (at AT TIME ZONE 'UTC')::date, count(*) FROM dated GROUP BY 1 ORDER BY 1
"""


def done_per_day(db: Any) -> list[tuple[Any, int]]:
    """(UTC day, assets done that day) for every day any asset was done, oldest first: an asset counts on the
    day its last drive was sanitised (a done asset without a sanitised job — one destroyed unwiped — on the day
    it reached its state), so the counts add up to :func:`summary`'s ``done``."""
    return [(day, int(count)) for day, count in db.execute(_DONE_DAYS, {"done": list(DONE_STATES)}).fetchall()]


def burn_up(db: Any, start: Any, end: Any) -> dict[str, Any]:
    """Assets done per UTC day from ``start`` (inclusive) to ``end`` (exclusive), cumulative from the programme's
    first (see :func:`done_per_day`)."""
    return burn_up_of(done_per_day(db), start, end)


def burn_up_of(rows: list[tuple[Any, int]], start: Any, end: Any) -> dict[str, Any]:
    """:func:`burn_up` from :func:`done_per_day`'s rows (one query serves every period)."""
    from datetime import timedelta

    before = sum(count for day, count in rows if day < start)
    counts = {day: count for day, count in rows if start <= day < end}
    days, daily, cumulative, running = [], [], [], before
    cursor = start
    while cursor < end:
        running += counts.get(cursor, 0)
        days.append(cursor.isoformat())
        daily.append(counts.get(cursor, 0))
        cumulative.append(running)
        cursor += timedelta(days=1)
    return {"before": before, "days": days, "daily": daily, "cumulative": cumulative,
            "after": sum(count for day, count in rows if day >= end)}


_ROUTES = """
WITH decisions AS (  -- each asset's latest eligibility decision by a station that received it (the state's rule)
    SELECT DISTINCT ON (upper(f.asset_tag)) upper(f.asset_tag) AS asset, f.route FROM fleet_asset_facts f
    WHERE f.kind = 'eligibility-decision' AND f.route IS NOT NULL
      AND (EXISTS (SELECT 1 FROM fleet_asset_facts r WHERE r.station_id = f.station_id
                   AND r.kind IN ('intake', 'host-registered') AND upper(r.asset_tag) = upper(f.asset_tag))
           OR EXISTS (SELECT 1 FROM fleet_jobs j WHERE j.station_id = f.station_id
                      AND upper(j.asset_tag) = upper(f.asset_tag)))
    ORDER BY upper(f.asset_tag), f.at DESC, f.audit_seq DESC)
SELECT CASE WHEN a.state = 'destroyed' THEN 'destroy'
            WHEN a.scheme IS NOT NULL THEN 'reuse:' || a.scheme
            ELSE coalesce(d.route, 'undecided') END AS route,
       a.state, count(*)
FROM fleet_assets a LEFT JOIN decisions d ON d.asset = upper(a.asset_tag)
GROUP BY 1, 2 ORDER BY 1, 2
"""


def routes(db: Any) -> list[dict[str, Any]]:
    """Assets by route — ``reuse:<scheme>``, ``destroy``, ``hold`` or ``undecided`` — each with its states.

    A destroyed asset's route is ``destroy``; an eligible (or allocated) one's is its scheme's; otherwise the
    latest eligibility decision of a station that received the asset (a decision of another station does not
    count, as in the state rule), or ``undecided``."""
    table: dict[str, dict[str, int]] = {}
    for route, state, count in db.execute(_ROUTES).fetchall():
        table.setdefault(str(route), {})[str(state)] = int(count)
    ordered = sorted(table.items(), key=lambda item: (-sum(item[1].values()), item[0]))
    return [{"route": route, "assets": sum(states.values()), "states": states} for route, states in ordered]


def time_in_state(db: Any, now: Any = None) -> list[dict[str, Any]]:
    """For each state: how many assets are in it now and how long they have been (median, 90th percentile and
    longest, in hours, from ``state_since``)."""
    age = "extract(epoch FROM coalesce(%(now)s::timestamptz, now()) - state_since)"
    rows = db.execute(
        f"SELECT state, count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY {age}), "
        f"percentile_cont(0.9) WITHIN GROUP (ORDER BY {age}), max({age}) "
        "FROM fleet_assets GROUP BY state", {"now": now}).fetchall()
    order = {state: index for index, state in enumerate(
        ("awaiting", "received", "in_progress", "held", "sanitised", "eligible", "allocated", "handed_over",
         "destroyed"))}
    return [{"state": str(state), "assets": int(count), "median_hours": round(max(float(median), 0) / 3600, 1),
             "p90_hours": round(max(float(p90), 0) / 3600, 1), "max_hours": round(max(float(longest), 0) / 3600, 1)}
            for state, count, median, p90, longest in sorted(rows, key=lambda row: order.get(str(row[0]), 99))]
