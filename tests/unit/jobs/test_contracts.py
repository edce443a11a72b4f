"""The daemon↔worker contract: one field list per message, today's strings on the wire."""

from __future__ import annotations

import json

import pytest

from agent.contracts import (
    MESSAGES,
    CertificateFailed,
    ContractError,
    Created,
    Done,
    Error,
    JobState,
    LeftRunning,
    NotResumable,
    Phase,
    Progress,
    Route,
    WorkerEvent,
    WorkerRequest,
    message_from_json,
)
from agent.store.registry import ACTIVE_STATES, FINAL_STATES


def test_enum_values_are_the_stored_strings() -> None:
    assert {state.value for state in JobState} == set(FINAL_STATES) | set(ACTIVE_STATES)
    assert {state for state in JobState if state.final} == set(FINAL_STATES)
    assert json.dumps({"state": JobState.SANITISED, "route": Route.HOLD, "phase": Phase.VERIFY}) == (
        '{"state": "sanitised", "route": "hold", "phase": "verify"}')
    assert JobState("failed") is JobState.FAILED and Route("destroy") is Route.DESTROY


def test_every_message_round_trips_with_the_wire_names() -> None:
    samples = [Created("j1"), Progress("j1", Phase.OVERWRITE, 5, 10), Done("j1", JobState.SANITISED, None, None,
               Route.REUSE, "overwrite.zero", "/c.pdf"), Error(None, {"code": "x", "message": "m"}),
               LeftRunning("j1"), CertificateFailed("j1", {"message": "no key"}), NotResumable("j1")]
    assert {type(sample) for sample in samples} == set(MESSAGES.values())
    for sample in samples:
        wire = json.loads(json.dumps(sample.to_json()))
        assert wire["event"] == sample.event.value
        assert message_from_json(wire) == sample
    assert Progress("j", "verify", 1, 2).to_json() == {"event": "progress", "job_id": "j", "phase": "verify",
                                                       "done": 1, "total": 2}
    assert {event.value for event in WorkerEvent} == {"created", "progress", "done", "error", "left-running",
                                                       "certificate-error", "not-resumable"}


@pytest.mark.parametrize("line", [
    {"event": "exploded", "job_id": "j"},
    {"job_id": "j"},
    {"event": "progress", "job_id": "j", "phase": "overwrite", "done": 1},
    {"event": "progress", "job_id": "j", "phase": "overwrite", "done": "many", "total": 2},
    {"event": "done", "job_id": "j"},
    ["event", "done"],
])
def test_a_malformed_message_is_a_contract_error(line: object) -> None:
    with pytest.raises(ContractError):
        message_from_json(line)  # type: ignore[arg-type]


def test_request_round_trip_ignores_launcher_keys_and_needs_its_fields() -> None:
    request = WorkerRequest(state_dir="/s", device_path="/dev/loop3", profile="p", operator="o", bay="bay-1",
                            seating={"dev_t": 1, "diskseq": 2}, certificate_settings={"organisation": "Org"})
    wire = {**json.loads(json.dumps(request.to_json())), "ticket": 7, "parent_pid": 99}
    assert WorkerRequest.from_json(wire) == WorkerRequest(**{**request.to_json(), "parent_pid": 99})
    for missing in ("state_dir", "device_path", "profile", "operator"):
        with pytest.raises(ContractError, match=missing):
            WorkerRequest.from_json({key: value for key, value in request.to_json().items() if key != missing})
