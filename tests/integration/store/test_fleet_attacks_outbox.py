"""The station's outbox against a fleet that lies (a real registry, a scripted fleet): an answer that claims
records never sent, refuses records never sent or is not the shape of an ingest result is an error of the
fleet (FleetUnavailable, one line), never a traceback and never a record marked delivered that was not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.fleet.errors import FleetUnavailable
from agent.fleet.outbox import Outbox
from agent.store.registry import Registry
from tests.integration.store.test_fleet_outbox import STATION, run_jobs, station  # noqa: F401  (fixture)

pytestmark = pytest.mark.root


class ScriptedFleet:
    """Answers every push with ``answer(batch)``."""

    def __init__(self, answer: Any, start: int = 1) -> None:
        self.answer = answer
        self.start = start
        self.batches: list[dict[str, Any]] = []

    def next_seq(self) -> int:
        return self.start

    def push(self, batch: dict[str, Any]) -> dict[str, Any]:
        self.batches.append(batch)
        result: dict[str, Any] = self.answer(batch)
        return result


def _last(batch: dict[str, Any]) -> int:
    return int(batch["records"][-1]["seq"])


@pytest.mark.parametrize("answer", [
    lambda b: {"next_seq": _last(b) + 1_000_000, "accepted": 1, "resent": 0, "refused": []},
    lambda b: {"next_seq": _last(b) + 1, "accepted": "lots", "resent": 0, "refused": []},
    lambda b: {"next_seq": _last(b) + 1, "accepted": 1, "resent": [1], "refused": []},
    lambda b: {"next_seq": _last(b) + 1, "accepted": 1, "resent": 0, "refused": 7},
    lambda b: {"next_seq": _last(b) + 1, "accepted": 1, "resent": 0, "refused": "x"},
], ids=["next-seq-ahead", "accepted-not-a-number", "resent-a-list", "refused-a-number", "refused-a-string"])
def test_an_answer_a_fleet_cannot_honestly_give_is_refused_and_nothing_is_marked_delivered(
        state_dir: Path, station: tuple[Registry, Path, Path], answer: Any) -> None:  # noqa: F811
    registry, _, _ = station
    run_jobs(registry, state_dir, 0, 2)
    outbox = Outbox(registry, STATION)
    with pytest.raises(FleetUnavailable, match="fleet"):
        outbox.push(ScriptedFleet(answer), batch=3)
    status = outbox.status()
    assert status.acknowledged == 0 and status.backlog == status.records > 3


def test_refusals_of_records_never_sent_are_not_kept(state_dir: Path,
                                                     station: tuple[Registry, Path, Path]) -> None:  # noqa: F811
    registry, _, _ = station
    run_jobs(registry, state_dir, 0, 1)
    outbox = Outbox(registry, STATION)

    def answer(batch: dict[str, Any]) -> dict[str, Any]:
        first = batch["records"][0]["seq"]
        return {"next_seq": _last(batch) + 1, "accepted": 0, "resent": 0,
                "refused": [{"seq": first, "code": "malformed", "reason": "really"},
                            {"seq": 999_999, "code": "malformed", "reason": "never sent"},
                            {"seq": -1, "code": "malformed", "reason": "never sent"}]}

    result = outbox.push(ScriptedFleet(answer))
    assert [item["seq"] for item in outbox.refusals()] == [1]
    assert result.refused == 1 and outbox.status().backlog == 0


def test_a_registry_audit_entry_that_is_not_json_is_forwarded_not_a_traceback(
        state_dir: Path, station: tuple[Registry, Path, Path]) -> None:  # noqa: F811
    registry, _, _ = station
    run_jobs(registry, state_dir, 0, 1)
    registry.db.execute("UPDATE audit_log SET data_json = '{not json' WHERE seq = 1")
    registry.db.commit()
    outbox = Outbox(registry, STATION)
    fleet = ScriptedFleet(lambda b: {"next_seq": _last(b) + 1, "accepted": len(b["records"]), "resent": 0,
                                     "refused": []})
    outbox.push(fleet)
    [first] = [r for batch in fleet.batches for r in batch["records"] if r["key"] == "audit-1"]
    assert first["body"]["data"] == "{not json"  # as stored: the fleet finds its hash does not match
    assert outbox.status().backlog == 0


def test_batches_stop_at_a_size_the_fleet_takes_not_only_at_a_count(
        state_dir: Path, station: tuple[Registry, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """Certificates are ~90 KB: 500 records of them pass the fleet's 64 MiB request limit (a 413 for ever)."""
    import json

    from agent.fleet import outbox as module

    registry, _, _ = station
    run_jobs(registry, state_dir, 0, 4)
    monkeypatch.setattr(module, "MAX_BATCH_BYTES", 150_000)  # about one certificate (~116 KB in base64)
    outbox = Outbox(registry, STATION)
    fleet = ScriptedFleet(lambda b: {"next_seq": _last(b) + 1, "accepted": len(b["records"]), "resent": 0,
                                     "refused": []})
    result = outbox.push(fleet, batch=500)
    sizes = [len(json.dumps(batch)) for batch in fleet.batches]
    documents = [sum(r["kind"] == "document" for r in batch["records"]) for batch in fleet.batches]
    assert max(documents) == 1 and sum(documents) == 4
    assert all(size < 150_000 or len(batch["records"]) == 1 for size, batch in zip(sizes, fleet.batches, strict=True))
    assert result.sent == outbox.status().records and outbox.status().backlog == 0
