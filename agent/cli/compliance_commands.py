"""Compliance spot checks: ``wipe-agent audit sample`` draws the drives to verify again.

NIST SP 800-88 asks for secondary verification of a representative sample (this project's
schemes: at least 20 %). The sample must be reproducible — a compliance officer re-runs it a year
later with the same seed and gets the same drives — and unpredictable to whoever wiped them
before the seed is chosen. The algorithm, stated in the output so another tool can repeat it:

1. Population: every drive whose *latest* job is ``sanitised`` and that is still on site — neither
   that job nor its asset is listed in a manifest, and the asset has no destruction record. A drive
   is (model, serial); a drive without a readable serial counts once per job.
2. Strata: the population split by the job's method (overwrite.zero, overwrite.random, a firmware
   purge…), so every method in use is checked.
3. Order within a stratum: ascending SHA-256 over ``seed ‖ 0x00 ‖ nonce ‖ 0x00 ‖ job id`` (UTF-8),
   hex, where ``nonce`` is 32 hex digits the station draws at random the first time a seed is used
   and writes to the audit chain with that draw; every later use of the seed reuses it.
4. From each stratum of n drives the first ceil(p · n / 100) are drawn, so the sample holds at least
   ceil(p % of the population) drives; the result is listed in the same hash order.

Whoever runs the command picks the seed, and could retry seeds until a drive they fear is left out.
So every draw is written to the audit chain (``audit-sample-drawn``: seed, percent, the population's
size and SHA-256 over its job ids, the drawn job ids) in the same transaction that reads the
population, and the output says how many draws this population had before: a ground sample shows as
a run of draws in the chain, and the one to trust is the first draw with the seed compliance gave.
Grinding offline is of no use either: the algorithm is public, but the nonce is unknown until the
seed's first draw is chained, and from then on that seed's sample is fixed (the same seed on the same
registry draws the same drives, a year later too).

Attached to the ``audit`` group of :mod:`agent.cli.reuse_commands` (importing this module registers it).
"""

from __future__ import annotations

import hashlib
import math
import secrets
from dataclasses import dataclass
from typing import Any

import click

from agent.cli.output import handle_errors, json_option, print_json, printable
from agent.cli.reuse_commands import _store, audit
from agent.reuse.store import ReuseStore
from agent.store.registry import JobRow, has_serial

ALGORITHM = ("population: drives whose latest job is sanitised, not in a manifest, not destroyed; strata: method; "
             "order: sha256(seed || 0x00 || nonce || 0x00 || job_id) ascending, nonce chained with the seed's "
             "first draw; per stratum: ceil(percent * n / 100)")
_ALL_JOBS = 10_000_000


@dataclass(frozen=True)
class Drawn:
    """One drive of the sample, with the hash that placed it."""

    job: JobRow
    rank: str

    def to_json(self) -> dict[str, Any]:
        """JSON form: enough to find the drive and re-verify it."""
        job = self.job
        return {"job_id": job.id, "rank_sha256": self.rank, "method": job.method, "level": job.level,
                "model": job.drive.model, "serial": job.drive.serial, "size_bytes": job.drive.size_bytes,
                "asset_tag": _asset(job), "finished_at": job.finished_at,
                "verify": f"wipe-agent verify-media DEVICE --job {job.id}"}


def sample_rank(seed: str, job_id: str, nonce: str) -> str:
    """The ordering key of a job in the sample: SHA-256 over seed, NUL, the seed's nonce, NUL, job id."""
    return hashlib.sha256(f"{seed}\0{nonce}\0{job_id}".encode()).hexdigest()


def _asset(job: JobRow) -> str | None:
    host = job.host or {}
    value = job.asset_tag or host.get("asset") or host.get("asset_tag")
    return str(value) if value else None


def on_site(store: ReuseStore) -> list[JobRow]:
    """The population: for each drive its latest job, when that is sanitised and the drive has not left."""
    seen: set[tuple[str, str]] = set()
    population: list[JobRow] = []
    for job in store.registry.jobs(_ALL_JOBS):  # newest first: the first job seen of a drive is its latest
        key = (job.drive.model, job.drive.serial) if has_serial(job.drive.serial) else ("job", job.id)
        if key in seen:
            continue
        seen.add(key)
        if job.state != "sanitised" or store.job_shipped_in(job.id) is not None:
            continue
        asset = _asset(job)
        if asset is not None and (store.shipped_in(asset) is not None or store.destruction(asset) is not None):
            continue
        population.append(job)
    return population


SAMPLE_AUDIT_KIND = "audit-sample-drawn"
MAX_SEED = 200


def population_sha256(population: list[JobRow]) -> str:
    """SHA-256 over the population's job ids, sorted, one per line: which drives the draw was from."""
    lines = "".join(f"{job_id}\n" for job_id in sorted(job.id for job in population))
    return hashlib.sha256(lines.encode("utf-8")).hexdigest()


def check_seed(_ctx: click.Context, _param: click.Parameter, seed: str) -> str:
    """The seed is printed, chained and re-typed a year later: one clean line of bounded text."""
    from certs.record import text_problem

    problem = "must not be blank" if not seed.strip() else text_problem(seed)
    if not problem and len(seed) > MAX_SEED:
        problem = f"longer than {MAX_SEED} characters"
    if problem:
        raise click.BadParameter(problem, param_hint="'--seed'")
    return seed


def check_percent(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
    """click's FloatRange lets NaN through (every comparison with it is false)."""
    if math.isnan(value):
        raise click.BadParameter("must be a number above 0 and at most 100, not NaN", param_hint="'--percent'")
    return value


def record_draw(store: ReuseStore, percent: float,
                seed: str) -> tuple[list[JobRow], list[Drawn], dict[str, dict[str, int]], int, str]:
    """Read the population, draw, and chain the draw, in one transaction; also how many earlier draws
    (with any seed) were made over exactly this population, and the seed's nonce."""
    registry = store.registry
    with registry.transaction():
        entries = [entry for entry in registry.audit.entries() if entry.kind == SAMPLE_AUDIT_KIND]
        first = next((entry for entry in entries if entry.data.get("seed") == seed), None)
        nonce = str(first.data["nonce"]) if first is not None and first.data.get("nonce") else secrets.token_hex(16)
        population = on_site(store)
        drawn, strata = draw(population, percent, seed, nonce)
        digest = population_sha256(population)
        earlier = sum(1 for entry in entries if entry.data.get("population_sha256") == digest)
        registry.audit.append(SAMPLE_AUDIT_KIND, seed, {
            "seed": seed, "nonce": nonce, "percent": percent, "algorithm": ALGORITHM, "population": len(population),
            "population_sha256": digest, "drawn": [item.job.id for item in drawn], "earlier_draws": earlier,
        }, in_transaction=True)
    return population, drawn, strata, earlier, nonce


def draw(population: list[JobRow], percent: float, seed: str,
         nonce: str) -> tuple[list[Drawn], dict[str, dict[str, int]]]:
    """The sample (hash order) and, per method, how many drives there are and how many were drawn."""
    strata: dict[str, list[Drawn]] = {}
    for job in population:
        strata.setdefault(job.method or "-", []).append(Drawn(job, sample_rank(seed, job.id, nonce)))
    drawn: list[Drawn] = []
    counts: dict[str, dict[str, int]] = {}
    for method, members in sorted(strata.items()):
        take = math.ceil(percent * len(members) / 100)
        members.sort(key=lambda item: item.rank)
        drawn.extend(members[:take])
        counts[method] = {"population": len(members), "drawn": take}
    drawn.sort(key=lambda item: item.rank)
    return drawn, counts


@audit.command("sample")
@click.option("--percent", type=click.FloatRange(0, 100, min_open=True), default=20.0, show_default=True,
              callback=check_percent,
              help="Share of the on-site sanitised drives to draw (at least this, rounded up per method).")
@click.option("--seed", required=True, callback=check_seed,
              help="One line of text given by compliance; the same seed on the same registry draws the same "
                   "drives. Every draw is recorded in the audit chain.")
@json_option
@click.pass_context
@handle_errors
def audit_sample(ctx: click.Context, percent: float, seed: str, as_json: bool) -> None:
    """Draw a reproducible sample of sanitised drives still on site for secondary verification."""
    store = _store(ctx)
    try:
        population, drawn, strata, earlier, nonce = record_draw(store, percent, seed)
    finally:
        store.registry.close()
    if as_json:
        print_json({"seed": seed, "nonce": nonce, "percent": percent, "algorithm": ALGORITHM,
                    "population": len(population),
                    "population_sha256": population_sha256(population), "earlier_draws": earlier,
                    "drawn": len(drawn), "strata": strata, "sample": [item.to_json() for item in drawn]})
        return
    if earlier:
        click.echo(f"note: {earlier} earlier draw(s) over exactly this population are in the audit chain "
                   f"({SAMPLE_AUDIT_KIND}); this draw is recorded too", err=True)
    click.echo(f"sample of {len(drawn)} of {len(population)} sanitised drive(s) on site "
               f"({percent:g} %, seed {printable(seed)!r}, nonce {nonce}; per method: "
               + (", ".join(f"{method} {count['drawn']}/{count['population']}" for method, count in strata.items())
                  or "none") + ")")
    for item in drawn:
        job = item.job
        click.echo(f"  {job.id}  {job.method or '-':<18} {printable(job.drive.model)[:24]:<24} "
                   f"serial {printable(job.drive.serial)[:22]:<22} asset {printable(_asset(job) or '-')}")
    if drawn:
        click.echo("verify each with: wipe-agent verify-media DEVICE --job JOB")
    click.echo(f"algorithm: {ALGORITHM}")
