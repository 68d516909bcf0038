"""Order-hook advice → CDS Hooks cards: the card body as render.py makes it, the suggestions here (delete the
draft by `resourceId`, create the proposed order), every action on a resource in `draftOrders` or created in
the same suggestion."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from cds_service.cards.render import OVERRIDE_SYSTEM, render_cards
from cds_service.cards.resources import service_request_resource
from cds_service.cards.texts import card_texts
from cds_service.consensus.orders import OrderAdvice
from cds_service.facts.model import DataNote


def render_order_cards(
    advice: Sequence[OrderAdvice],
    notes: Sequence[DataNote],
    *,
    language: str,
    patient_id: str,
    data_cut: bool,
) -> list[dict[str, Any]]:
    texts = card_texts(language)
    cards = []
    shown: set[str] = set()  # a note that changes the reading is on the first card it concerns only
    for item in advice:
        words = texts["cards"][item.finding.topic]
        # A patient-view topic reused for an order (CONTRACT.md "Order hooks") has its order wording.
        variant = "order_" if "order_summary" in words else ""
        card = render_cards(
            [item.finding],
            notes,
            language=language,
            patient_id=patient_id,
            data_cut=data_cut,
            variant=variant,
            shown=shown,
        )[0]
        # CONTRACT.md: override reasons on every card that advises (render.py gives them to recommendations).
        card.setdefault(
            "overrideReasons",
            [
                {"system": OVERRIDE_SYSTEM, "code": code, "display": display}
                for code, display in texts["override_reasons"].items()
            ],
        )
        card.pop("suggestions", None)
        card.pop("selectionBehavior", None)
        suggestions = [_suggestion(item, index, texts, patient_id) for index in range(len(item.suggestions))]
        if suggestions:
            card["suggestions"] = suggestions
            card["selectionBehavior"] = "at-most-one"
        cards.append(card)
    return cards


def _suggestion(item: OrderAdvice, index: int, texts: dict[str, Any], patient_id: str) -> dict[str, Any]:
    plan = item.suggestions[index]
    words = texts["order_suggestions"]
    rules = ", ".join(item.finding.rules)
    actions: list[dict[str, Any]] = []
    if plan.delete_draft:
        actions.append({"type": "delete", "description": words["delete_action"], "resourceId": item.draft})
    if plan.create is not None:
        order_note = (
            words["with_ct_note"].format(order=item.draft) if item.finding.topic == "qct-with-ct" else None
        )
        resource = service_request_resource(
            patient_id,
            item.finding,
            plan.create,
            note=texts["suggestions"]["order_note"].format(rules=rules),
            order_note=order_note,
        )
        actions.append({"type": "create", "description": words["create_action"], "resource": resource})
    return {
        "label": words[plan.label],
        "uuid": str(uuid.uuid4()),
        "isRecommended": plan.recommended,
        "actions": actions,
    }
