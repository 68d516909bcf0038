"""The order hooks' rules (consensus/orders.py, CONTRACT.md "Order hooks"): qct-instead-of-dxa (REC-QCT),
qct-with-ct (REC-QCT-CT), peripheral-screening-only (DX-4), z-score-required (POP-3), spine-imaging-on-record
(REC-SPINE-XR) and duplicate-order, through engine.evaluate_orders as the hooks call it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service import engine
from cds_service.consensus.lookback import months_before
from cds_service.facts.valuesets import CPT
from cds_service.settings import Settings
from tests.builders import (
    LOINC,
    SNOMED,
    TODAY,
    born,
    concept,
    condition,
    make_settings,
    patient,
    t_score,
    topic_of,
)
from tests.consensus.test_recommendations import CODE_MAP, bmi, diagnostic_report

Resource = dict[str, Any]
NOW = TODAY.isoformat()
WOMAN_70 = patient(birth_date=born(70, on=NOW))
SETTINGS = make_settings(code_map=CODE_MAP)


def draft(
    id: str = "d1",
    cpt: str | None = None,
    text: str | None = None,
    reason: str | None = None,
    code: tuple[str, str] | None = None,
    **extra: Any,
) -> Resource:
    """A draft ServiceRequest as an ordering screen sends it (intent plan, CPT code, SNOMED reason)."""
    codes = [(CPT, cpt)] if cpt else []
    if code:
        codes.append(code)
    resource: Resource = {
        "resourceType": "ServiceRequest",
        "id": id,
        "status": "draft",
        "intent": "plan",
        "code": concept(codes or None, text) if (codes or text) else {"text": ""},
        "subject": {"reference": "Patient/p1"},
    }
    if reason is not None:
        resource["reasonCode"] = [{"text": reason}]
    resource.update(extra)
    return resource


def cards_of(
    *record: Resource,
    drafts: Sequence[Resource],
    who: Resource = WOMAN_70,
    selected: Sequence[str] | None = None,
    settings: Settings = SETTINGS,
) -> list[dict[str, Any]]:
    concerned = selected if selected is not None else [f"ServiceRequest/{d['id']}" for d in drafts]
    response = engine.evaluate_orders([who, *record], "p1", settings, drafts, concerned).response
    cards: list[dict[str, Any]] = response["cards"]
    _check_actions(cards, drafts)
    return cards


def _check_actions(cards: list[dict[str, Any]], drafts: Sequence[Resource]) -> None:
    """Every action references a resource in draftOrders or creates one (FHIR-valid)."""
    draft_ids = {f"ServiceRequest/{d['id']}" for d in drafts}
    for card in cards:
        for suggestion in card.get("suggestions", []):
            assert suggestion["actions"] and suggestion["uuid"]
            for action in suggestion["actions"]:
                if action["type"] == "delete":
                    assert action["resourceId"] in draft_ids
                else:
                    assert action["type"] == "create"
                    ServiceRequest.model_validate(action["resource"])
                    assert action["resource"]["subject"] == {"reference": "Patient/p1"}


def topics(cards: list[dict[str, Any]]) -> list[str]:
    return [topic_of(c) for c in cards]


def only(cards: list[dict[str, Any]], topic: str) -> dict[str, Any]:
    found = [c for c in cards if topic_of(c) == topic]
    assert len(found) == 1, topics(cards)
    return found[0]


# --- qct-instead-of-dxa (REC-QCT) ------------------------------------------------------------------

DXA = draft(cpt="77080")


@pytest.mark.parametrize(
    ("value", "card"),
    [
        pytest.param(18.4, True, id="REC-QCT BMI 18.4 DXA ordered: replace with QCT"),
        pytest.param(18.5, False, id="REC-QCT BMI 18.5 DXA ordered: no card"),
        pytest.param(34.9, False, id="REC-QCT BMI 34.9 DXA ordered: no card"),
        pytest.param(35.0, True, id="REC-QCT BMI 35.0 DXA ordered: replace with QCT"),
    ],
)
def test_rec_qct_bmi_replaces_the_draft_dxa(value: float, card: bool) -> None:
    cards = cards_of(bmi(value), drafts=[DXA])
    assert ("qct-instead-of-dxa" in topics(cards)) is card
    if card:
        found = only(cards, "qct-instead-of-dxa")
        assert found["indicator"] == "warning" and "REC-QCT" in found["detail"]
        [suggestion] = found["suggestions"]
        assert suggestion["isRecommended"] is True
        assert [a["type"] for a in suggestion["actions"]] == ["delete", "create"]
        assert suggestion["actions"][0]["resourceId"] == "ServiceRequest/d1"
        assert suggestion["actions"][1]["resource"]["code"]["coding"][0] == {
            "system": LOINC,
            "code": "95925-4",
            "display": "CT Skeletal system.axial Multisection for bone density",
        }
        assert found["overrideReasons"]


@pytest.mark.parametrize(
    ("record", "card"),
    [
        pytest.param(
            [diagnostic_report("L2椎体压缩性骨折。")], True, id="REC-QCT L2 fracture: add QCT or replace"
        ),
        pytest.param(
            [diagnostic_report("T8椎体压缩性骨折。")], False, id="REC-QCT T8 fracture: DXA stays valid"
        ),
        pytest.param([condition(snomed="298382003")], True, id="REC-QCT coded scoliosis: add QCT or replace"),
    ],
)
def test_rec_qct_spine_only_factor_offers_two_choices(record: list[Resource], card: bool) -> None:
    cards = cards_of(*record, drafts=[DXA])
    assert ("qct-instead-of-dxa" in topics(cards)) is card
    if card:
        found = only(cards, "qct-instead-of-dxa")
        assert found["selectionBehavior"] == "at-most-one"
        add, replace = found["suggestions"]
        assert add["isRecommended"] is True and [a["type"] for a in add["actions"]] == ["create"]
        assert replace["isRecommended"] is False
        assert [a["type"] for a in replace["actions"]] == ["delete", "create"]
        assert "DXA-1" in found["detail"]


def test_rec_qct_site_without_qct_refers_instead_of_suggesting() -> None:
    found = only(
        cards_of(bmi(36.0), drafts=[DXA], settings=make_settings(code_map=CODE_MAP, site_has_qct=False)),
        "qct-instead-of-dxa",
    )
    assert "suggestions" not in found
    assert "OSTEO_CDS_SITE_HAS_QCT" in found["detail"]


def test_rec_qct_no_card_when_qct_is_among_the_drafts() -> None:
    assert cards_of(bmi(36.0), drafts=[DXA, draft("d2", cpt="77078")]) == []


# --- z-score-required (POP-3) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("who", "card"),
    [
        pytest.param(patient(birth_date=born(40, on=NOW)), True, id="POP-3 woman 40 (premenopausal by age)"),
        pytest.param(patient(gender="male", birth_date=born(45, on=NOW)), True, id="POP-3 man 45"),
        pytest.param(patient(gender="male", birth_date=born(55, on=NOW)), False, id="POP-1 man 55: no card"),
    ],
)
def test_pop3_dxa_order_needs_z_scores(who: Resource, card: bool) -> None:
    cards = cards_of(drafts=[DXA], who=who)
    assert ("z-score-required" in topics(cards)) is card
    if card:
        found = only(cards, "z-score-required")
        assert "Z" in found["summary"] and "POP-3" in found["detail"]


# --- peripheral-screening-only (DX-4) ----------------------------------------------------------------------

FUSION = condition(snomed="55705006")  # spinal fusion (DXA-2 site unusable)


@pytest.mark.parametrize(
    ("drafts", "record", "card"),
    [
        pytest.param([draft(cpt="76977")], [], True, id="DX-4 QUS ordered: screening only"),
        pytest.param([draft(cpt="77081")], [], True, id="DX-4 peripheral DXA ordered: screening only"),
        pytest.param([draft(text="跟骨超声骨密度")], [], True, id="DX-4 Chinese QUS order text"),
        pytest.param(
            [draft(cpt="76977"), draft("d2", cpt="77080")], [], False, id="DX-4 with central DXA: no card"
        ),
        pytest.param(
            [draft(cpt="77081", text="DXA forearm")],
            [FUSION],
            False,
            id="DXA-2 forearm DXA with spinal fusion",
        ),
    ],
)
def test_dx4_peripheral_test_ordered_as_the_diagnostic_one(
    drafts: list[Resource], record: list[Resource], card: bool
) -> None:
    cards = cards_of(*record, drafts=drafts)
    assert ("peripheral-screening-only" in topics(cards)) is card
    if card:
        [suggestion] = only(cards, "peripheral-screening-only")["suggestions"]
        assert [a["type"] for a in suggestion["actions"]] == ["delete", "create"]


# --- spine-imaging-on-record (REC-SPINE-XR) -----------------------------------------------------------------


def _months_ago(months: int) -> str:
    return months_before(TODAY, months).isoformat()


@pytest.mark.parametrize(
    ("order", "when", "card"),
    [
        pytest.param(
            draft(cpt="72100"), _months_ago(36), True, id="REC-SPINE-XR imaging 36 months ago: on record"
        ),
        pytest.param(
            draft(cpt="72100"), _months_ago(37), False, id="REC-SPINE-XR imaging 37 months ago: none"
        ),
        pytest.param(
            draft(cpt="72100", reason="routine screening"), "2025-06-01", True, id="REC-SPINE-XR routine"
        ),
        pytest.param(draft(cpt="72100", reason="low back pain"), "2025-06-01", False, id="REC-SPINE-XR pain"),
        pytest.param(
            draft(text="腰椎正侧位", reason="跌倒后腰痛"), "2025-06-01", False, id="REC-SPINE-XR 跌倒"
        ),
        pytest.param(
            draft(text="胸腰椎正侧位", reason="骨质疏松筛查"), "2025-06-01", True, id="REC-SPINE-XR 筛查"
        ),
    ],
)
def test_rec_spine_xr_imaging_already_on_record(order: Resource, when: str, card: bool) -> None:
    cards = cards_of(diagnostic_report("胸腰椎未见骨折。", when=when), drafts=[order])
    assert ("spine-imaging-on-record" in topics(cards)) is card
    if card:
        found = only(cards, "spine-imaging-on-record")
        assert "suggestions" not in found and "REC-SPINE-XR" in found["detail"]


# --- qct-with-ct (REC-QCT-CT) -------------------------------------------------------------------------------

CHEST_CT = draft(cpt="71250")


@pytest.mark.parametrize(
    ("who", "record", "order", "settings", "card"),
    [
        pytest.param(WOMAN_70, [], CHEST_CT, SETTINGS, True, id="REC-QCT-CT woman 70 chest CT"),
        pytest.param(
            patient(birth_date=born(65, on=NOW)), [], CHEST_CT, SETTINGS, True, id="REC-QCT-CT woman 65"
        ),
        pytest.param(
            patient(birth_date=born(64, on=NOW)), [], CHEST_CT, SETTINGS, False, id="REC-QCT-CT woman 64"
        ),
        pytest.param(
            patient(gender="male", birth_date=born(70, on=NOW)),
            [],
            CHEST_CT,
            SETTINGS,
            True,
            id="REC-QCT-CT man 70",
        ),
        pytest.param(
            patient(gender="male", birth_date=born(69, on=NOW)),
            [],
            CHEST_CT,
            SETTINGS,
            False,
            id="REC-QCT-CT man 69",
        ),
        pytest.param(WOMAN_70, [], draft(cpt="71271"), SETTINGS, True, id="REC-QCT-CT low-dose screening CT"),
        pytest.param(WOMAN_70, [], draft(text="胸部CT平扫"), SETTINGS, True, id="REC-QCT-CT 胸部CT平扫"),
        pytest.param(
            WOMAN_70, [], draft(text="胸部CT增强"), SETTINGS, False, id="REC-QCT-CT contrast CT: none"
        ),
        pytest.param(
            WOMAN_70, [], draft(cpt="72128"), SETTINGS, False, id="REC-QCT-CT thoracic spine CT: none"
        ),
        pytest.param(
            WOMAN_70,
            [t_score(-1.5, when=_months_ago(23))],
            CHEST_CT,
            SETTINGS,
            False,
            id="REC-QCT-CT DXA 23 months",
        ),
        pytest.param(
            WOMAN_70,
            [t_score(-1.5, when=_months_ago(25))],
            CHEST_CT,
            SETTINGS,
            True,
            id="REC-QCT-CT DXA 25 months",
        ),
        pytest.param(
            WOMAN_70,
            [],
            CHEST_CT,
            make_settings(code_map=CODE_MAP, site_has_qct=False),
            False,
            id="REC-QCT-CT site without QCT",
        ),
    ],
)
def test_rec_qct_ct_qct_rides_the_ct(
    who: Resource, record: list[Resource], order: Resource, settings: Settings, card: bool
) -> None:
    cards = cards_of(*record, drafts=[order], who=who, settings=settings)
    assert ("qct-with-ct" in topics(cards)) is card
    if card:
        [suggestion] = only(cards, "qct-with-ct")["suggestions"]
        [create] = suggestion["actions"]
        assert create["type"] == "create"
        assert any("ServiceRequest/d1" in n["text"] for n in create["resource"]["note"])


def test_rec_qct_ct_not_when_qct_is_among_the_drafts() -> None:
    assert "qct-with-ct" not in topics(cards_of(drafts=[CHEST_CT, draft("d2", text="腰椎定量CT")]))


# --- duplicate-order ----------------------------------------------------------------------------------------


def _chart_order(id: str, **extra: Any) -> Resource:
    return {**draft(id, **extra), "status": "active", "intent": "order"}


@pytest.mark.parametrize(
    ("chart", "card"),
    [
        pytest.param(
            [_chart_order("o9", code=(LOINC, "38268-9"))], True, id="duplicate-order DXA already ordered"
        ),
        pytest.param(
            [_chart_order("o9", text="双能X线骨密度")], True, id="duplicate-order Chinese DXA order text"
        ),
        pytest.param(
            [_chart_order("o9", text="骨密度检查")], True, id="duplicate-order BMD order naming no method"
        ),
        pytest.param(
            [_chart_order("o9", cpt="77078")], False, id="duplicate-order QCT on chart, DXA drafted: none"
        ),
        pytest.param([{**DXA, "id": "d1"}], False, id="duplicate-order the draft itself is not on the chart"),
        pytest.param([_chart_order("o9", cpt="72100")], False, id="duplicate-order another kind: none"),
    ],
)
def test_duplicate_order(chart: list[Resource], card: bool) -> None:
    cards = cards_of(*chart, drafts=[DXA])
    assert ("duplicate-order" in topics(cards)) is card
    if card:
        assert "ServiceRequest/o9" in only(cards, "duplicate-order")["detail"]


# --- scope ---------------------------------------------------------------------------------------------


def test_order_select_cards_concern_the_selections_only() -> None:
    drafts = [draft("d2", cpt="76977"), CHEST_CT]
    assert topics(cards_of(drafts=drafts, selected=["ServiceRequest/d2"])) == ["peripheral-screening-only"]
    assert topics(cards_of(drafts=drafts, selected=["ServiceRequest/d1"])) == ["qct-with-ct"]


def test_no_card_for_a_deceased_patient_or_an_unrelated_order() -> None:
    assert cards_of(bmi(36.0), drafts=[DXA], who=patient(birth_date=born(70, on=NOW), deceased=True)) == []
    assert cards_of(bmi(36.0), drafts=[draft(code=(SNOMED, "268556000"), text="Full blood count")]) == []


def test_a_note_that_changes_the_reading_is_on_the_first_order_card_only() -> None:
    # CONTRACT.md "Cards" / issue 17: a FHIR search cut by the page cap concerns every card, and is said once.
    drafts = [draft("d2", cpt="76977"), CHEST_CT]
    concerned = [f"ServiceRequest/{d['id']}" for d in drafts]
    cards = engine.evaluate_orders([WOMAN_70], "p1", SETTINGS, drafts, concerned, data_cut=True).response[
        "cards"
    ]
    assert len(cards) == 2
    said = [
        card["source"]["topic"]["code"] for card in cards if "older items may be missing" in card["detail"]
    ]
    assert said == [cards[0]["source"]["topic"]["code"]]
