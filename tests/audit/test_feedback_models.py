"""The feedback body models: CDS Hooks 2.0 §Feedback and the 3.0 invariants cds-fb-2 and cds-fb-3."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cds_service.audit.feedback import MAX_FEEDBACK_ITEMS, FeedbackError, parse_feedback, parse_rfc3339

CARD = "4e0a3a1e-3283-4575-ab82-028d55fe2719"
SUGGESTION = "e56e1945-20b3-4393-8503-a1a20fd73152"
# A value a clinician might type; it must never come back in an error message.
PATIENT_MARKER = "Zhang San MRN 0042"


def accepted(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "card": CARD,
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": SUGGESTION}],
        "outcomeTimestamp": "2021-12-11T10:05:31Z",
    }
    item.update(changes)
    return {key: value for key, value in item.items() if value is not ...}


def overridden(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "card": CARD,
        "outcome": "overridden",
        "overrideReason": {"reason": {"system": "urn:osteo-cds:override", "code": "not-indicated"}},
        "outcomeTimestamp": "2021-12-11T10:05:31Z",
    }
    item.update(changes)
    return {key: value for key, value in item.items() if value is not ...}


def test_spec_example_accepted() -> None:
    [item] = parse_feedback({"feedback": [accepted()]})
    assert item.card == CARD
    assert item.outcome == "accepted"
    assert item.accepted_suggestion_ids == (SUGGESTION,)
    assert item.outcome_timestamp == datetime(2021, 12, 11, 10, 5, 31, tzinfo=UTC)
    assert not item.has_user_comment


def test_overridden_with_coded_reason_and_comment() -> None:
    reason = {"reason": {"system": "urn:x", "code": "c", "display": "C"}, "userComment": PATIENT_MARKER}
    [item] = parse_feedback({"feedback": [overridden(overrideReason=reason)]})
    assert item.override_reason is not None and item.override_reason.reason is not None
    assert item.override_reason.reason.code == "c"
    assert item.has_user_comment


@pytest.mark.parametrize(
    "item",
    [
        pytest.param(overridden(overrideReason=...), id="overridden without reason"),
        pytest.param(overridden(overrideReason={"userComment": "no"}), id="cds-fb-3 comment only"),
        pytest.param(overridden(acceptedSuggestions=[]), id="overridden with empty acceptedSuggestions"),
        pytest.param(accepted(card=CARD.upper()), id="upper-case uuid"),
        pytest.param(accepted(extension={"x": 1}, other=True), id="extra fields ignored"),
        pytest.param(accepted(outcomeTimestamp="2021-12-11T10:05:31.52+08:00"), id="offset and fraction"),
    ],
)
def test_valid_items(item: dict[str, Any]) -> None:
    assert len(parse_feedback({"feedback": [item]})) == 1


def test_card_is_lower_cased_and_timestamp_converted_to_utc() -> None:
    [item] = parse_feedback(
        {"feedback": [accepted(card=CARD.upper(), outcomeTimestamp="2021-12-11T10:05:31.123456789+08:00")]}
    )
    assert item.card == CARD
    assert item.outcome_timestamp == datetime(2021, 12, 11, 2, 5, 31, 123456, tzinfo=UTC)


def test_suggestion_ids_are_a_set() -> None:
    [item] = parse_feedback(
        {"feedback": [accepted(acceptedSuggestions=[{"id": "b"}, {"id": "a"}, {"id": "b"}])]}
    )
    assert item.accepted_suggestion_ids == ("a", "b")


def test_extensions_are_not_kept() -> None:
    [item] = parse_feedback({"feedback": [accepted(extension={"note": PATIENT_MARKER})]})
    assert PATIENT_MARKER not in repr(item.model_dump())


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param([accepted()], "JSON object", id="body an array"),
        pytest.param(None, "JSON object", id="body null"),
        pytest.param("feedback", "JSON object", id="body a string"),
        pytest.param({}, "feedback is required", id="feedback missing"),
        pytest.param({"feedback": None}, "must be an array", id="feedback null"),
        pytest.param({"feedback": accepted()}, "must be an array", id="feedback an object"),
        pytest.param({"feedback": []}, "must not be empty", id="feedback empty"),
        pytest.param({"feedback": [accepted()] * (MAX_FEEDBACK_ITEMS + 1)}, "more than", id="too many items"),
        pytest.param({"feedback": ["x"]}, "feedback[0]: must be an object", id="item a string"),
        pytest.param({"feedback": [accepted(card=...)]}, "feedback[0].card: is required", id="card missing"),
        pytest.param(
            {"feedback": [accepted(card=PATIENT_MARKER)]}, "card: must be a uuid", id="card not uuid"
        ),
        pytest.param({"feedback": [accepted(card=42)]}, "card: must be a string", id="card a number"),
        pytest.param(
            {"feedback": [accepted(card="{" + CARD + "}")]}, "card: must be a uuid", id="card uuid in braces"
        ),
        pytest.param({"feedback": [accepted(outcome="ignored")]}, "outcome", id="outcome ignored"),
        pytest.param({"feedback": [accepted(outcome=...)]}, "outcome: is required", id="outcome missing"),
        pytest.param(
            {"feedback": [accepted(acceptedSuggestions=...)]},
            "cds-fb-2",
            id="cds-fb-2 accepted no suggestions",
        ),
        pytest.param(
            {"feedback": [accepted(acceptedSuggestions=[])]},
            "cds-fb-2",
            id="cds-fb-2 accepted empty suggestions",
        ),
        pytest.param(
            {"feedback": [accepted(acceptedSuggestions=[{}])]},
            "acceptedSuggestions[0].id: is required",
            id="suggestion without id",
        ),
        pytest.param(
            {"feedback": [accepted(acceptedSuggestions=[{"id": "x" * 65}])]},
            "acceptedSuggestions[0].id",
            id="suggestion id too long",
        ),
        pytest.param(
            {"feedback": [overridden(acceptedSuggestions=[{"id": SUGGESTION}])]},
            "must not carry acceptedSuggestions",
            id="overridden with suggestions",
        ),
        pytest.param(
            {"feedback": [accepted(overrideReason={"userComment": "x"})]},
            "only allowed with outcome overridden",
            id="accepted with override reason",
        ),
        pytest.param({"feedback": [overridden(overrideReason={})]}, "cds-fb-3", id="cds-fb-3 empty reason"),
        pytest.param(
            {"feedback": [overridden(overrideReason={"userComment": "  "})]},
            "cds-fb-3",
            id="cds-fb-3 blank comment",
        ),
        pytest.param(
            {"feedback": [overridden(overrideReason={"reason": {"code": "c"}})]},
            "overrideReason.reason.system: is required",
            id="reason without system",
        ),
        pytest.param(
            {"feedback": [accepted(outcomeTimestamp=...)]},
            "outcomeTimestamp: is required",
            id="timestamp missing",
        ),
        pytest.param(
            {"feedback": [accepted(outcomeTimestamp="2021-12-11")]}, "RFC 3339", id="timestamp date only"
        ),
        pytest.param(
            {"feedback": [accepted(outcomeTimestamp="2021-12-11T10:05:31")]},
            "RFC 3339",
            id="timestamp no offset",
        ),
        pytest.param(
            {"feedback": [accepted(outcomeTimestamp="2021-02-30T10:05:31Z")]},
            "RFC 3339",
            id="timestamp Feb 30",
        ),
        pytest.param(
            {"feedback": [accepted(outcomeTimestamp=1639217131)]}, "must be a string", id="timestamp epoch"
        ),
        pytest.param(
            {"feedback": [accepted(outcomeTimestamp=PATIENT_MARKER)]}, "RFC 3339", id="timestamp free text"
        ),
    ],
)
def test_invalid_bodies(body: object, problem: str) -> None:
    with pytest.raises(FeedbackError) as caught:
        parse_feedback(body)
    assert problem in caught.value.message
    assert PATIENT_MARKER not in caught.value.message
    assert "\n" not in caught.value.message


def test_problems_of_several_items_are_named_by_index() -> None:
    with pytest.raises(FeedbackError) as caught:
        parse_feedback({"feedback": [accepted(), accepted(outcome="maybe"), accepted(card="nope")]})
    assert "feedback[1].outcome" in caught.value.message
    assert "feedback[2].card" in caught.value.message
    assert "feedback[0]" not in caught.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1985-04-12T23:20:50.52Z", datetime(1985, 4, 12, 23, 20, 50, 520000, tzinfo=UTC)),
        ("1996-12-19T16:39:57-08:00", datetime(1996, 12, 20, 0, 39, 57, tzinfo=UTC)),
        ("1996-12-19t16:39:57z", datetime(1996, 12, 19, 16, 39, 57, tzinfo=UTC)),
        ("2021-12-11T10:05:31.1234567Z", datetime(2021, 12, 11, 10, 5, 31, 123456, tzinfo=UTC)),
        ("1990-12-31T23:59:60Z", datetime(1990, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2021-12-11T24:00:00Z", None),
        ("2021-12-11T10:05:31+24:00", None),
        ("20211211T100531Z", None),
        ("2021-12-11T10:05Z", None),
        ("", None),
    ],
)
def test_parse_rfc3339(text: str, expected: datetime | None) -> None:
    assert parse_rfc3339(text) == expected
