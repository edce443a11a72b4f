"""A method's evidence is typed: sections the certificate prints are fields, stored as they always were."""

from __future__ import annotations

import json

import pytest

from agent.methods.base import Level, MethodEvidence, MethodOutcome


def test_evidence_round_trips_through_the_stored_json() -> None:
    evidence = MethodEvidence(capabilities={"sanitize": {"crypto": True}}, hidden_areas={"actions": []},
                              canaries={"passed": True, "checked": 64}, observations={"polls": 3, "expectation": "z"})
    stored = json.loads(json.dumps(evidence.to_json(), sort_keys=True))
    assert stored == {"capabilities": {"sanitize": {"crypto": True}}, "hidden_areas": {"actions": []},
                      "canaries": {"passed": True, "checked": 64}, "polls": 3, "expectation": "z"}
    assert MethodEvidence.from_json(stored) == evidence
    # an overwrite has no capabilities or canaries: those keys are absent, never null
    assert MethodEvidence(hidden_areas={"checked": False}, observations={"passes": 1}).to_json() == {
        "hidden_areas": {"checked": False}, "passes": 1}


def test_a_section_is_never_an_observation() -> None:
    with pytest.raises(ValueError, match="canaries"):
        MethodEvidence(observations={"canaries": {"passed": True}})


def test_a_malformed_section_reads_as_absent_and_is_not_printed_as_an_observation() -> None:
    evidence = MethodEvidence.from_json({"canaries": "yes", "capabilities": None, "polls": 1})
    assert evidence.canaries is None and evidence.capabilities is None and evidence.observations == {"polls": 1}


def test_the_outcome_details_are_the_evidence_as_stored() -> None:
    outcome = MethodOutcome("overwrite.zero", Level.CLEAR, None, 10, 1.0,
                            MethodEvidence(hidden_areas={"checked": True}, observations={"passes": 1}))
    assert outcome.details == {"hidden_areas": {"checked": True}, "passes": 1}
    assert MethodOutcome("x", Level.CLEAR, None, 0, 0.0).details == {}
