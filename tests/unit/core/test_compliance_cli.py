"""``jobs`` filters and CSV, and ``audit sample``: on a real registry through the real command line."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.audit.log import AuditLog
from agent.cli.compliance_commands import SAMPLE_AUDIT_KIND, sample_rank
from agent.cli.main import cli
from agent.discovery.identity import DriveIdentity
from agent.reuse.store import ReuseStore
from agent.store.registry import Registry

BASE = DriveIdentity(
    path="/dev/sdz", name="sdz", by_id=None, model="Test Disk", serial="SN0", firmware="1.0", vendor=None,
    size_bytes=1 << 30, logical_sector=512, physical_sector=4096, rotational=True, transport="sata",
    media="hdd", removable=False, read_only=False, id_path=None,
)
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    """Each reading one minute after the last: jobs get distinct, known creation times."""

    def __init__(self) -> None:
        self.now = START - timedelta(minutes=1)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


def _job(registry: Registry, serial: str, *, state: str = "sanitised", method: str = "overwrite.zero",
         operator: str = "alice", asset: str | None = None) -> str:
    job = registry.create_job(dataclasses.replace(BASE, serial=serial), "nist-clear-overwrite", operator,
                              f"explicit command by {operator}", asset)
    registry.transition(job, "checking", "guard")
    if state == "refused":
        registry.transition(job, "refused", "guard", reason="protected")
        return job
    registry.transition(job, "running", "method-start", method=method, level="clear")
    registry.transition(job, state, "verified" if state == "sanitised" else "failed")
    return job


def _cli(state: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["--state-dir", str(state), *args], obj={})
    return result.exit_code, result.output


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    registry = Registry(tmp_path / "state", clock=Clock()).open()
    yield registry
    registry.close()


def test_jobs_filters_each_narrow_to_the_matching_jobs(registry: Registry) -> None:
    first = _job(registry, "SN1", asset="AT-1")
    second = _job(registry, "SN2", operator="bob", state="failed")
    third = _job(registry, "SN3", asset="AT-3", state="refused")
    state = registry.state_dir

    def ids(*args: str) -> list[str]:
        code, output = _cli(state, "jobs", "--json", *args)
        assert code == 0, output
        return [row["job_id"] for row in json.loads(output)["jobs"]]

    assert ids() == [third, second, first]
    assert ids("--asset", "AT-1") == [first]
    assert ids("--serial", "SN2") == [second]
    assert ids("--state", "refused") == [third]
    assert ids("--operator", "bob") == [second]
    created = {row: registry.job(row).created_at for row in (first, second, third)}
    assert ids("--since", created[second][:19]) == [third, second]
    assert ids("--until", created[second][:19]) == [first]          # before that moment
    assert ids("--until", "2026-03-01") == [third, second, first]   # a date alone: the whole day
    assert ids("--until", "2026-02-28") == []
    assert ids("--state", "sanitised", "--operator", "bob") == []   # filters combine
    code, output = _cli(state, "jobs", "--state", "lost")
    assert code == 2 and "lost" in output


def test_jobs_csv_is_a_table_and_formula_safe(registry: Registry) -> None:
    hostile = _job(registry, "=HYPERLINK(\"http://x\")", asset="+cmd|' /C calc'!A0", operator="@evil")
    plain = _job(registry, "SN9", asset="AT-9")
    code, output = _cli(registry.state_dir, "jobs", "--csv")
    assert code == 0, output
    rows = list(csv.DictReader(io.StringIO(output)))
    assert [row["job_id"] for row in rows] == [plain, hostile]
    assert rows[1]["serial"] == "'=HYPERLINK(\"http://x\")"
    assert rows[1]["asset_tag"] == "'+cmd|' /C calc'!A0" and rows[1]["operator"] == "'@evil"
    assert rows[0]["serial"] == "SN9" and rows[0]["verification"] == "" and rows[0]["state"] == "sanitised"
    # no cell of any row starts with a character a spreadsheet would evaluate
    assert not [cell for row in rows for cell in row.values() if cell.startswith(("=", "+", "-", "@"))]
    code, output = _cli(registry.state_dir, "jobs", "--csv", "--json")
    assert code == 2 and "exclude each other" in output


def _sample(state: Path, *args: str) -> dict:
    code, output = _cli(state, "audit", "sample", "--json", *args)
    assert code == 0, output
    return json.loads(output)


def test_sample_is_reproducible_stratified_and_only_on_site(registry: Registry) -> None:
    zeros = [_job(registry, f"Z{index}", asset=f"Z-{index}") for index in range(12)]
    randoms = [_job(registry, f"R{index}", method="overwrite.random", asset=f"R-{index}") for index in range(6)]
    _job(registry, "F1", state="failed")                                  # not sanitised: never in the population
    redone = _job(registry, "Z0", state="failed")                         # Z0's latest job failed: off the list
    store = ReuseStore(registry)
    store.db.execute("INSERT INTO reuse_manifest_jobs(job_id, manifest_id) VALUES(?, 'M-1')", (zeros[1],))
    store.db.execute("INSERT INTO reuse_manifest_assets(asset, manifest_id) VALUES('Z-2', 'M-1')")
    store.db.execute("INSERT INTO reuse_destructions(id, asset, at, method, witness, report_path, report_sha256, "
                     "record_json) VALUES('D-1', 'R-0', 'now', 'shred', 'w', 'p', 'h', '{}')")
    on_site = set(zeros[3:]) | set(randoms[1:])
    state = registry.state_dir

    first = _sample(state, "--percent", "20", "--seed", "audit-2026")
    assert first["population"] == len(on_site) == 14 and redone not in json.dumps(first)
    assert first["strata"] == {"overwrite.random": {"population": 5, "drawn": 1},
                               "overwrite.zero": {"population": 9, "drawn": 2}}
    assert first["drawn"] == 3 >= math.ceil(0.2 * 14)
    drawn = [item["job_id"] for item in first["sample"]]
    assert set(drawn) <= on_site
    # the documented algorithm, recomputed here: lowest SHA-256(seed ‖ 0 ‖ id) per method
    nonce = first["nonce"]
    assert len(nonce) == 32 and int(nonce, 16) >= 0  # drawn by the station at the seed's first use, chained
    expected = sorted(zeros[3:], key=lambda job: sample_rank("audit-2026", job, nonce))[:2] + \
        sorted(randoms[1:], key=lambda job: sample_rank("audit-2026", job, nonce))[:1]
    assert sorted(drawn) == sorted(expected)
    assert [item["rank_sha256"] for item in first["sample"]] == sorted(item["rank_sha256"] for item in first["sample"])

    again = _sample(state, "--percent", "20", "--seed", "audit-2026")               # same seed, same drives
    assert again["sample"] == first["sample"] and (first["earlier_draws"], again["earlier_draws"]) == (0, 1)
    assert again["nonce"] == nonce  # the seed's nonce is reused: reproducible
    others = {tuple(item["job_id"] for item in _sample(state, "--seed", f"other-{n}")["sample"]) for n in range(4)}
    assert any(set(sample) != set(drawn) for sample in others)                      # another seed, another draw
    everything = _sample(state, "--percent", "100", "--seed", "x")
    assert {item["job_id"] for item in everything["sample"]} == on_site


def test_sample_needs_a_seed_and_a_sane_percent(registry: Registry) -> None:
    code, output = _cli(registry.state_dir, "audit", "sample")
    assert code == 2 and "--seed" in output
    code, output = _cli(registry.state_dir, "audit", "sample", "--seed", "s", "--percent", "0")
    assert code == 2


def test_every_draw_is_chained_so_grinding_seeds_shows(registry: Registry) -> None:
    """M12: 158 of 200 seeds left a chosen drive out, and drawing left no trace."""
    jobs = [_job(registry, f"Z{index}") for index in range(10)]
    state = registry.state_dir
    draws = [_sample(state, "--percent", "20", "--seed", f"seed-{n}") for n in range(3)]
    assert [item["earlier_draws"] for item in draws] == [0, 1, 2]
    chained = [entry for entry in AuditLog(registry.db).entries() if entry.kind == SAMPLE_AUDIT_KIND]
    assert [entry.subject for entry in chained] == ["seed-0", "seed-1", "seed-2"]
    for entry, result in zip(chained, draws, strict=True):
        assert entry.data["drawn"] == [item["job_id"] for item in result["sample"]]
        assert entry.data["population"] == 10 and entry.data["percent"] == 20.0
        assert entry.data["population_sha256"] == result["population_sha256"]
    expected = hashlib.sha256("".join(f"{job}\n" for job in sorted(jobs)).encode()).hexdigest()
    assert chained[0].data["population_sha256"] == expected
    # the nonce each seed's ordering uses is in the chain; seeds do not share one
    assert len({entry.data["nonce"] for entry in chained}) == 3
    assert all(entry.data["nonce"] == result["nonce"] for entry, result in zip(chained, draws, strict=True))
    assert AuditLog(registry.db).verify().valid
    code, output = _cli(state, "audit", "sample", "--seed", "seed-3")
    assert code == 0 and "3 earlier draw(s) over exactly this population" in output


@pytest.mark.parametrize(("args", "named"), [
    (("--percent", "nan", "--seed", "1"), "not NaN"),
    (("--seed", "   "), "must not be blank"),
    (("--seed", "audit\u202e6202"), "U+202E"),
    (("--seed", "s" * 201), "longer than 200"),
])
def test_bad_seed_or_percent_is_one_line_exit_2(registry: Registry, args: tuple[str, ...], named: str) -> None:
    code, output = _cli(registry.state_dir, "audit", "sample", *args)
    assert code == 2 and named in output and "Traceback" not in output
    assert not [entry for entry in AuditLog(registry.db).entries() if entry.kind == SAMPLE_AUDIT_KIND]


def test_jobs_csv_says_nobody_was_signed_in_rather_than_an_empty_operator_cell(registry: Registry) -> None:
    """L2: a job nobody was signed in for showed an empty cell (read as "unknown" in a spreadsheet)."""
    job = registry.create_job(dataclasses.replace(BASE, serial="SN-U"), "nist-clear-overwrite", "", "test",
                              operator_title="", operator_uid=1001, operator_via="the station daemon")
    code, output = _cli(registry.state_dir, "jobs", "--csv")
    assert code == 0, output
    [row] = [row for row in csv.DictReader(io.StringIO(output)) if row["job_id"] == job]
    assert row["operator"].startswith("no operator signed in") and "uid 1001" in row["operator"]


def test_a_seed_cannot_be_ground_offline_its_nonce_is_drawn_when_first_used(registry: Registry) -> None:
    """M12: with the public algorithm alone, anyone could pick offline a seed that leaves a drive out.
    The order also depends on a nonce the station draws (and chains) at the seed's first use."""
    for index in range(10):
        _job(registry, f"Z{index}")
    state = registry.state_dir
    nonces = {_sample(state, "--seed", f"fresh-{n}")["nonce"] for n in range(5)}
    assert len(nonces) == 5  # unknown before each seed's first draw
    again = _sample(state, "--seed", "fresh-0")
    first = next(entry for entry in AuditLog(registry.db).entries()
             if entry.kind == SAMPLE_AUDIT_KIND and entry.subject == "fresh-0")
    assert again["nonce"] == first.data["nonce"] and again["earlier_draws"] == 5
    assert [item["job_id"] for item in again["sample"]] == first.data["drawn"]
