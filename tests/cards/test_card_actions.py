"""Suggestions and notes that depend on the card: complementary orders, orders unknown, language."""

from __future__ import annotations

from typing import Any

from cds_service.settings import Settings
from tests.builders import born, card_topics, evaluate_resources, patient, topic_of

DAY = "2026-07-10"  # within the 6-month doubtful-fracture window of REC-CT-MRI
MAN_70 = patient(gender="male", birth_date=born(70, on=DAY))
DOUBTFUL = {
    "resourceType": "DiagnosticReport",
    "id": "dr1",
    "status": "final",
    # A radiograph: both CT and MRI are still to do (after an MRI only CT is offered, REC-CT-MRI).
    "code": {"text": "DR腰椎正侧位"},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": DAY,
    "conclusion": "L1椎体压缩骨折可能。",
}


def _card(response: dict[str, Any], topic: str) -> dict[str, Any]:
    return next(c for c in response["cards"] if topic_of(c) == topic)


def test_rec_ct_mri_ct_and_mri_may_both_be_accepted() -> None:
    card = _card(evaluate_resources([MAN_70, DOUBTFUL]).response, "fracture-imaging-recommended")
    assert len(card["suggestions"]) == 2
    assert card["selectionBehavior"] == "any"


def test_other_order_cards_offer_alternatives_at_most_one() -> None:
    card = _card(evaluate_resources([MAN_70]).response, "spine-radiograph-recommended")
    assert card["selectionBehavior"] == "at-most-one"


def test_orders_unknown_is_named_on_order_cards_only() -> None:
    from cds_service import engine
    from tests.builders import make_settings

    settings: Settings = make_settings()
    result = engine.evaluate([MAN_70, DOUBTFUL], "p1", settings, orders_unknown=True)
    order_topics = {"fracture-imaging-recommended", "spine-radiograph-recommended"}
    for card, explanation in zip(result.response["cards"], result.explanations(), strict=True):
        named = "check that this order has not been placed already" in explanation
        assert named == (topic_of(card) in order_topics)
    # On the cards themselves: one short line, on the first order card only (not repeated in a response).
    on_cards = [
        topic_of(c) for c in result.response["cards"] if "check this is not already ordered" in c["detail"]
    ]
    assert len(on_cards) == 1 and on_cards[0] in order_topics


def test_zh_cn_order_labels_and_notes_are_chinese_and_codes_unchanged() -> None:
    en = evaluate_resources([MAN_70], language="en").response
    zh = evaluate_resources([MAN_70], language="zh-CN").response
    assert card_topics(en) == card_topics(zh)
    en_card, zh_card = (_card(r, "spine-radiograph-recommended") for r in (en, zh))
    zh_suggestion = zh_card["suggestions"][0]
    assert "胸椎" in zh_suggestion["label"]
    zh_request = zh_suggestion["actions"][0]["resource"]
    en_request = en_card["suggestions"][0]["actions"][0]["resource"]
    assert zh_request["code"] == en_request["code"]  # LOINC keeps its own display
    assert "REC-SPINE-XR" in zh_request["note"][0]["text"]
    assert "建议" in zh_request["note"][0]["text"]
