"""Fleet-wide secondary verification: one reproducible sample across every station, assigned and tracked.

The station's rule (``wipe-agent audit sample``, :mod:`agent.cli.compliance_commands`) applied to the
programme, so one compliance team can answer for every station at once:

1. Population: every drive whose *latest* job, on any station, is ``sanitised``, whose asset (if it is in
   the register) is neither allocated to a manifest, handed over nor destroyed. A drive is its serial
   (a drive without one counts once per job).
2. Strata: (station, method), so every station and every method in use is checked.
3. Order within a stratum: ascending SHA-256 over ``seed ‖ 0x00 ‖ nonce ‖ 0x00 ‖ station ‖ 0x00 ‖ job id``;
   the nonce (32 hex digits) is drawn at random at a seed's first draw and kept: a seed's sample is fixed
   from then on, and nobody can grind seeds offline before that draw.
4. From each stratum of n drives the first ceil(p · n / 100).

Every draw is recorded (seed, percent, population size and SHA-256, how many earlier draws were made over
exactly this population): a seed shopped for shows as a run of draws. Each drawn drive is assigned to the
station that holds it (``wipe-agent verify-media DEVICE --job JOB`` there); its result comes back with the
job's next forwarded snapshot (``secondary_verifications``) and :func:`sample_status` reports it.
"""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agent.fleet.errors import FleetInputError

ALGORITHM = ("population: drives whose latest job on any station is sanitised, asset not allocated, handed over or "
             "destroyed; strata: (station, method); order: sha256(seed || 0x00 || nonce || 0x00 || station || 0x00 "
             "|| job_id) ascending, nonce fixed at the seed's first draw; per stratum: ceil(percent * n / 100)")

_POPULATION = """
WITH latest AS (  -- each drive's latest job on any station
    SELECT DISTINCT ON (coalesce(nullif(serial, ''), station_id || '/' || job_id))
           station_id, job_id, coalesce(method, '-') AS method, state, model, serial, asset_tag
    FROM fleet_jobs
    ORDER BY coalesce(nullif(serial, ''), station_id || '/' || job_id), created_at DESC, updated_seq DESC),
gone AS (SELECT upper(asset_tag) AS asset FROM fleet_assets WHERE state IN ('allocated', 'handed_over', 'destroyed'))
-- gone: the drive's asset (by the job's tag, or the registered host it is a drive of) has left; as joins, not a
-- scan of the register per job (that took minutes at 40,000 jobs)
SELECT l.station_id, l.job_id, l.method, l.state, l.model, l.serial, l.asset_tag,
       EXISTS (SELECT 1 FROM gone g WHERE g.asset = upper(l.asset_tag))
       OR EXISTS (SELECT 1 FROM fleet_asset_facts h JOIN gone g ON g.asset = upper(h.asset_tag)
                  WHERE h.kind = 'host-drive' AND h.station_id = l.station_id AND h.ref = l.serial)
FROM latest l
"""


@dataclass(frozen=True)
class SampleItem:
    station_id: str
    job_id: str
    method: str
    model: str | None
    serial: str | None
    asset_tag: str | None
    rank: str

    def to_json(self) -> dict[str, Any]:
        return {"station_id": self.station_id, "job_id": self.job_id, "method": self.method, "model": self.model,
                "serial": self.serial, "asset_tag": self.asset_tag, "rank_sha256": self.rank,
                "verify": f"on {self.station_id}: wipe-agent verify-media DEVICE --job {self.job_id}"}


def rank(seed: str, nonce: str, station: str, job_id: str) -> str:
    return hashlib.sha256(f"{seed}\0{nonce}\0{station}\0{job_id}".encode()).hexdigest()


def check_seed(seed: str) -> str:
    from certs.record import text_problem

    problem = "must not be blank" if not seed.strip() else text_problem(seed)
    if not problem and len(seed) > 200:
        problem = "longer than 200 characters"
    if problem:
        raise FleetInputError(f"--seed {problem}")
    return seed


def draw(db: Any, percent: float, seed: str) -> dict[str, Any]:
    """Draw, record and assign a sample in one transaction (``db`` is the fleet's connection, in a transaction)."""
    if not (0 < percent <= 100):  # NaN fails this too
        raise FleetInputError(f"--percent must be above 0 and at most 100, not {percent}")
    check_seed(seed)
    db.execute("LOCK TABLE fleet_sample_seeds IN SHARE ROW EXCLUSIVE MODE")  # one draw at a time: a seed's nonce
    row = db.execute("SELECT nonce FROM fleet_sample_seeds WHERE seed = %s", (seed,)).fetchone()
    if row is None:
        nonce = secrets.token_hex(16)
        db.execute("INSERT INTO fleet_sample_seeds (seed, nonce) VALUES (%s, %s)", (seed, nonce))
    else:
        nonce = str(row[0])
    population = [item for item in db.execute(_POPULATION).fetchall() if item[3] == "sanitised" and not item[7]]
    strata: dict[tuple[str, str], list[SampleItem]] = {}
    for station, job_id, method, _, model, serial, asset, _ in population:
        strata.setdefault((station, method), []).append(
            SampleItem(station, job_id, method, model, serial, asset, rank(seed, nonce, station, job_id)))
    drawn: list[SampleItem] = []
    counts: dict[str, dict[str, Any]] = {}
    for (station, method), members in sorted(strata.items()):
        take = math.ceil(percent * len(members) / 100)
        members.sort(key=lambda item: item.rank)
        drawn.extend(members[:take])
        counts[f"{station} {method}"] = {"station": station, "method": method, "population": len(members),
                                         "drawn": take}
    drawn.sort(key=lambda item: item.rank)
    digest = hashlib.sha256("".join(f"{item[0]}\0{item[1]}\n" for item in sorted(population)).encode()).hexdigest()
    earlier_row = db.execute("SELECT count(*) FROM fleet_sample_draws WHERE population_sha256 = %s",
                             (digest,)).fetchone()
    earlier = int(earlier_row[0]) if earlier_row else 0
    draw_row = db.execute("INSERT INTO fleet_sample_draws (seed, percent, population, population_sha256, "
                          "earlier_draws) VALUES (%s, %s, %s, %s, %s) RETURNING id, at",
                          (seed, percent, len(population), digest, earlier)).fetchone()
    draw_id = int(draw_row[0])
    with db.cursor() as cursor:
        cursor.executemany("INSERT INTO fleet_sample_items (draw_id, station_id, job_id, method, rank_sha256) "
                           "VALUES (%s, %s, %s, %s, %s)",
                           [(draw_id, item.station_id, item.job_id, item.method, item.rank) for item in drawn])
    return {"draw": draw_id, "at": draw_row[1].isoformat(), "seed": seed, "nonce": nonce, "percent": percent,
            "algorithm": ALGORITHM, "population": len(population), "population_sha256": digest,
            "earlier_draws": earlier, "drawn": len(drawn), "strata": counts,
            "sample": [item.to_json() for item in drawn]}


def _moment(value: Any) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value) if type(value) is str else None
    except ValueError:
        return None
    return moment if moment is not None and moment.tzinfo is not None else None


def sample_status(db: Any, draw_id: int | None = None) -> dict[str, Any]:
    """The latest draw (or ``draw_id``): each drawn drive's secondary verification since the draw —
    ``passed``, ``failed`` or ``pending`` — per station and in total."""
    row = db.execute("SELECT id, seed, percent, at, population, population_sha256, earlier_draws "
                     "FROM fleet_sample_draws WHERE %s::bigint IS NULL OR id = %s "
                     "ORDER BY id DESC LIMIT 1", (draw_id, draw_id)).fetchone()
    if row is None:
        raise FleetInputError("no sample has been drawn" if draw_id is None else f"no sample draw {draw_id}")
    draw_id, seed, percent, at = int(row[0]), str(row[1]), float(row[2]), row[3]
    drawn_from = {"population": int(row[4]), "population_sha256": str(row[5]), "earlier_draws": int(row[6])}
    items = db.execute("SELECT i.station_id, i.job_id, i.method, j.body FROM fleet_sample_items i "
                       "LEFT JOIN fleet_jobs j USING (station_id, job_id) WHERE i.draw_id = %s "
                       "ORDER BY i.rank_sha256", (draw_id,)).fetchall()
    results = []
    totals = {"passed": 0, "failed": 0, "pending": 0}
    per_station: dict[str, dict[str, int]] = {}
    for station, job_id, method, body in items:
        outcome, checked_at = "pending", None
        for check in (json.loads(body).get("secondary_verifications") or []) if body else []:
            when = _moment(check.get("at"))
            if when is not None and when >= at and isinstance(check.get("passed"), bool):
                outcome, checked_at = ("passed" if check["passed"] else "failed"), when.isoformat()
        totals[outcome] += 1
        per_station.setdefault(station, {"passed": 0, "failed": 0, "pending": 0})[outcome] += 1
        results.append({"station_id": station, "job_id": job_id, "method": method, "result": outcome,
                        "checked_at": checked_at})
    return {"draw": draw_id, "seed": seed, "percent": percent, "at": at.isoformat(), **drawn_from, "totals": totals,
            "stations": per_station, "items": results}
