"""CONTRACT.md "Common sense that is part of the contract" and the card structure: no order cards for a
deceased patient or when the same order is already open, OSTEO_CDS_DISABLED_CARDS, overrideReasons,
selectionBehavior, uuids, no empty optional fields, and `{"cards": []}` when nothing bears on bone health."""

from __future__ import annotations

import copy
import itertools
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.facts.codemap import parse_code_map
from cds_service.settings import Settings
from tests.builders import (
    DIAGNOSIS_TOPICS,
    ICD10_CM,
    LOCAL,
    LOCAL_CODES,
    LOINC,
    SNOMED,
    TODAY,
    TOPIC_SYSTEM,
    born,
    card_topics,
    concept,
    condition,
    diagnosis_topics,
    evaluate_resources,
    make_settings,
    observation,
    patient,
    t_score,
    topic_of,
)

Resource = dict[str, Any]

NOW = TODAY.isoformat()
RECENT = "2025-06-01"
DOUBT_DAY = "2026-07-10"  # a doubtful fracture asks for CT/MRI for 6 months (REC-CT-MRI)
SETTINGS = make_settings(
    code_map=parse_code_map(
        {
            **{name: [{"system": LOCAL, "code": code}] for name, code in LOCAL_CODES.items()},
            "genant-grade": [{"system": LOCAL, "code": "GENANT"}],
            "bmi": [{"system": LOCAL, "code": "BMI-L"}],
            "spine-imaging-report": [{"system": LOCAL, "code": "XR-SPINE-L"}],
        }
    )
)
# CONTRACT.md suggestion table: the cards that propose an order.
ORDER_TOPICS = frozenset(
    {
        "spine-radiograph-recommended",
        "qct-recommended",
        "bmd-measurement-recommended",
        "forearm-dxa-recommended",
        "fracture-imaging-recommended",
    }
)
XR_SPINE, XR_PELVIS, XR_HUMERUS = "24984-7", "24762-7", "24619-9"
DXA_STUDY, QCT_STUDY, CT_LUMBAR = "38268-9", "95925-4", "24963-1"

_ids = itertools.count(1)


def diagnostic_report(conclusion: str, *, loinc: str = XR_SPINE, when: str = RECENT) -> Resource:
    """A final imaging DiagnosticReport with a LOINC code and a conclusion."""
    return {
        "resourceType": "DiagnosticReport",
        "id": f"dr{next(_ids)}",
        "status": "final",
        "code": concept((LOINC, loinc)),
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
        "conclusion": conclusion,
    }


def service_request(
    loinc: str | None = None, text: str | None = None, status: str = "active", patient: str = "p1"
) -> Resource:
    """A ServiceRequest already in the chart (an order placed, or a draft)."""
    return {
        "resourceType": "ServiceRequest",
        "id": f"sr{next(_ids)}",
        "status": status,
        "intent": "order",
        "code": concept((LOINC, loinc) if loinc else None, text),
        "subject": {"reference": f"Patient/{patient}"},
    }


def bmi(value: float) -> Resource:
    return observation(loinc="39156-5", value=value, unit_code="kg/m2", when=RECENT)


def old_man(**extra: Any) -> Resource:
    return patient(gender="male", birth_date=born(70, on=NOW), **extra)


HIP_FRACTURE = condition(snomed="5913000", onset="2024-03-01")

# One chart per order card: the card is given (with a diagnosis beside it) to a living man of 70.
SCENARIOS: dict[str, tuple[list[Resource], str]] = {
    "spine-radiograph-recommended": ([t_score(-2.7, when=RECENT)], "osteoporosis-bmd"),
    "qct-recommended": ([t_score(-2.7, when=RECENT), bmi(17.0)], "osteoporosis-bmd"),
    "forearm-dxa-recommended": (
        [
            t_score(-1.5, "38267-1", when=RECENT),
            t_score(-2.7, "38263-0", when=RECENT),
            condition(icd="Z98.1"),
        ],
        "osteoporosis-bmd",
    ),
    "bmd-measurement-recommended": (
        [HIP_FRACTURE, diagnostic_report("骨盆骨质疏松改变", loinc=XR_PELVIS)],
        "osteoporosis-fracture",
    ),
    "fracture-imaging-recommended": (
        [HIP_FRACTURE, diagnostic_report("L1椎体压缩骨折可能", when=DOUBT_DAY)],
        "osteoporosis-fracture",
    ),
}


def _response(resources: list[Resource], settings: Settings = SETTINGS, language: str | None = None) -> Any:
    return evaluate_resources(resources, settings=settings, language=language).response


def _topics(resources: list[Resource], settings: Settings = SETTINGS) -> list[str]:
    return card_topics(_response(resources, settings))


def _service_requests(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        action["resource"]
        for suggestion in card.get("suggestions", [])
        for action in suggestion["actions"]
        if action.get("resource", {}).get("resourceType") == "ServiceRequest"
    ]


@pytest.mark.parametrize("topic", sorted(SCENARIOS))
def test_the_living_get_the_order_card_of_each_scenario(topic: str) -> None:
    resources, diagnosis = SCENARIOS[topic]
    response = _response([old_man(), *resources])
    assert diagnosis_topics(response) == [diagnosis]
    [card] = [c for c in response["cards"] if topic_of(c) == topic]
    assert _service_requests(card)  # it proposes an order


# --- a deceased patient ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "deceased",
    [
        pytest.param({"deceased": True}, id="deceasedBoolean true"),
        pytest.param({"deceased": "2026-01-01T08:00:00+08:00"}, id="deceasedDateTime"),
    ],
)
@pytest.mark.parametrize("topic", sorted(SCENARIOS))
def test_deceased_patient_gets_no_card_at_all(topic: str, deceased: dict[str, Any]) -> None:
    # CONTRACT.md common sense (issue 17): no card at all, the diagnosis included.
    resources, diagnosis = SCENARIOS[topic]
    assert diagnosis_topics(_response([old_man(), *resources])) == [diagnosis]
    assert _response([old_man(**deceased), *resources]) == {"cards": []}


def test_deceased_boolean_false_is_alive() -> None:
    resources, _ = SCENARIOS["spine-radiograph-recommended"]
    assert "spine-radiograph-recommended" in _topics([old_man(deceased=False), *resources])


def test_deceased_patient_gets_no_fracture_imaging_card_for_a_non_vertebral_site() -> None:
    resources = [HIP_FRACTURE, diagnostic_report("右肱骨近端骨折可能", loinc=XR_HUMERUS, when=DOUBT_DAY)]
    assert "fracture-imaging-recommended" in _topics([old_man(), *resources])
    assert "fracture-imaging-recommended" not in _topics([old_man(deceased=True), *resources])


# --- an order already open -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "order", "suppressed"),
    [
        pytest.param(
            "spine-radiograph-recommended", service_request(XR_SPINE), True, id="open active 24984-7"
        ),
        pytest.param(
            "spine-radiograph-recommended",
            service_request(XR_SPINE, status="draft"),
            True,
            id="open draft 24984-7",
        ),
        pytest.param(
            "spine-radiograph-recommended",
            service_request(text="胸腰椎正侧位"),
            True,
            id="open active by Chinese text 胸腰椎正侧位",
        ),
        pytest.param(
            "spine-radiograph-recommended",
            service_request(XR_SPINE, status="completed"),
            False,
            id="completed 24984-7 does not suppress",
        ),
        pytest.param(
            "spine-radiograph-recommended",
            service_request(XR_SPINE, status="revoked"),
            False,
            id="revoked 24984-7 does not suppress",
        ),
        pytest.param(
            "spine-radiograph-recommended",
            service_request(XR_SPINE, status="entered-in-error"),
            False,
            id="entered-in-error 24984-7 does not suppress",
        ),
        pytest.param(
            "spine-radiograph-recommended",
            service_request(XR_SPINE, patient="someone-else"),
            False,
            id="another patient's 24984-7 does not suppress",
        ),
        pytest.param(
            "bmd-measurement-recommended", service_request(DXA_STUDY), True, id="open active 38268-9"
        ),
        pytest.param(
            "bmd-measurement-recommended",
            service_request(text="双能X线骨密度测定", status="draft"),
            True,
            id="open draft by Chinese text 双能X线骨密度测定",
        ),
        pytest.param(
            "bmd-measurement-recommended",
            service_request(DXA_STUDY, status="completed"),
            False,
            id="completed 38268-9 does not suppress",
        ),
        pytest.param("qct-recommended", service_request(QCT_STUDY), True, id="open active 95925-4"),
        pytest.param(
            "qct-recommended",
            service_request(text="腰椎定量CT骨密度测定"),
            True,
            id="open active by text 定量CT",
        ),
        pytest.param(
            "qct-recommended",
            service_request(QCT_STUDY, status="revoked"),
            False,
            id="revoked 95925-4 does not suppress",
        ),
        pytest.param(
            "forearm-dxa-recommended",
            service_request(text="前臂双能X线骨密度测定"),
            True,
            id="open active by text 前臂 (forearm) DXA",
        ),
        pytest.param(
            "forearm-dxa-recommended",
            service_request(text="前臂双能X线骨密度测定", status="completed"),
            False,
            id="completed forearm DXA does not suppress",
        ),
        pytest.param(
            "fracture-imaging-recommended",
            service_request(CT_LUMBAR),
            True,
            id="open active 24963-1 CT lumbar spine",
        ),
        pytest.param(
            "fracture-imaging-recommended",
            service_request(CT_LUMBAR, status="completed"),
            False,
            id="completed 24963-1 does not suppress",
        ),
    ],
)
def test_open_service_request_for_the_same_thing_suppresses_the_order_card(
    topic: str, order: Resource, suppressed: bool
) -> None:
    resources, diagnosis = SCENARIOS[topic]
    response = _response([old_man(), *resources, order])
    assert (topic not in card_topics(response)) is suppressed
    assert diagnosis_topics(response) == [diagnosis]


@pytest.mark.parametrize(
    "topic",
    [
        pytest.param(
            topic,
            id=f"{topic}: its accepted draft is not proposed again",
        )
        for topic in sorted(SCENARIOS)
    ],
)
def test_an_accepted_suggestion_is_not_proposed_again(topic: str) -> None:
    resources, _ = SCENARIOS[topic]
    chart = [old_man(), *resources]
    [card] = [c for c in _response(chart)["cards"] if topic_of(c) == topic]
    accepted = []
    for number, proposed in enumerate(_service_requests(card)):
        placed = copy.deepcopy(proposed)  # the EHR stores the draft the card created
        placed["id"] = f"accepted{number}"
        accepted.append(placed)
    assert accepted
    assert topic not in _topics([*chart, *accepted])


def test_an_open_qct_order_does_not_suppress_the_spine_radiograph() -> None:
    resources, _ = SCENARIOS["spine-radiograph-recommended"]
    topics = _topics([old_man(), *resources, service_request(text="腰椎QCT骨密度测定")])
    assert "spine-radiograph-recommended" in topics


# --- OSTEO_CDS_DISABLED_CARDS -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disabled", "kept"),
    [
        pytest.param("spine-radiograph-recommended", {"osteoporosis-bmd", "qct-recommended"}, id="one card"),
        pytest.param(
            "spine-radiograph-recommended, qct-recommended",
            {"osteoporosis-bmd"},
            id="two cards, with a space",
        ),
        pytest.param(
            "osteoporosis-bmd", {"spine-radiograph-recommended", "qct-recommended"}, id="the diagnosis card"
        ),
        pytest.param("", {"osteoporosis-bmd", "spine-radiograph-recommended", "qct-recommended"}, id="none"),
    ],
)
def test_disabled_cards_are_never_shown(disabled: str, kept: set[str]) -> None:
    from_env = Settings.from_env({"OSTEO_CDS_AUTH": "none", "OSTEO_CDS_DISABLED_CARDS": disabled})
    settings = SETTINGS.with_changes(disabled_cards=from_env.disabled_cards)
    resources, _ = SCENARIOS["qct-recommended"]
    assert set(_topics([old_man(), *resources], settings)) == kept


# --- card structure ---------------------------------------------------------------------------------------

STRUCTURE_CHARTS = [
    pytest.param([old_man(), *resources], id=f"structure {topic}")
    for topic, (resources, _) in SCENARIOS.items()
] + [
    pytest.param(
        [
            old_man(),
            t_score(-1.5, when=RECENT, device="GE Lunar iDXA"),
            t_score(-1.4, device="Hologic Horizon A"),
        ],
        id="structure cross-device-comparison",
    ),
    pytest.param(
        [old_man(), diagnostic_report("L1椎体Genant 2度压缩骨折"), t_score(-2.8, when=RECENT)],
        id="structure severe-osteoporosis + ecf check",
    ),
    pytest.param(
        [old_man(), observation(loinc="38266-3", value=-2.6, unit_code="{T-score}")],
        id="structure peripheral-screening-only",
    ),
    pytest.param(
        [patient(gender="male", birth_date=born(35, on=NOW)), t_score(-3.0, when=RECENT)],
        id="structure z-score-required",
    ),
    pytest.param(
        [
            patient(birth_date=born(35, on=NOW)),
            observation(loinc="85394-5", value=-2.4, unit_code="{Z-score}", when=RECENT),
            condition(icd=(ICD10_CM, "E05.90")),
        ],
        id="structure below-expected-range + secondary-cause-workup",
    ),
]


def _empty_paths(node: Any, path: str = "$") -> Iterator[str]:
    if node is None or node == "" or node == [] or node == {}:
        yield path
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _empty_paths(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _empty_paths(value, f"{path}[{index}]")


@pytest.mark.parametrize("language", ["en", "zh-CN"])
@pytest.mark.parametrize("chart", STRUCTURE_CHARTS)
def test_card_structure(chart: list[Resource], language: str) -> None:
    response = _response(chart, language=language)
    cards = response["cards"]
    assert cards
    assert list(_empty_paths(response)) == []  # optional fields are left out, never null or empty
    uuids: list[str] = []
    for card in cards:
        topic = topic_of(card)
        assert card["source"]["topic"]["system"] == TOPIC_SYSTEM
        assert len(card["summary"]) < 140
        assert card["indicator"] in ("info", "warning", "critical")
        uuids.append(str(uuid.UUID(card["uuid"])))
        if topic not in DIAGNOSIS_TOPICS:
            # CONTRACT.md: overrideReasons on every recommendation card, Codings with a display.
            assert card["overrideReasons"]
            for reason in card["overrideReasons"]:
                assert reason["code"] and reason["display"]
        suggestions = card.get("suggestions")
        if not suggestions:
            assert "selectionBehavior" not in card
            continue
        assert card["selectionBehavior"] in ("at-most-one", "any")
        for suggestion in suggestions:
            uuids.append(str(uuid.UUID(suggestion["uuid"])))
            assert suggestion["label"]
            for action in suggestion["actions"]:
                resource = action["resource"]
                assert resource["subject"] == {"reference": "Patient/p1"}
                if resource["resourceType"] == "ServiceRequest":
                    ServiceRequest.model_validate(resource)
                    assert (resource["status"], resource["intent"]) == ("draft", "proposal")
                    assert resource["reasonCode"] and resource["note"]
                    assert topic in ORDER_TOPICS
                else:
                    Condition.model_validate(resource)
                    assert resource["verificationStatus"]["coding"][0]["code"] == "provisional"  # DX-9
    assert len(set(uuids)) == len(uuids)
    assert len([c for c in cards if topic_of(c) in DIAGNOSIS_TOPICS]) <= 1


def test_no_condition_suggestion_when_the_chart_records_osteoporosis() -> None:
    def condition_suggested(resources: list[Resource]) -> bool:
        [card] = [c for c in _response([old_man(), *resources])["cards"] if topic_of(c) in DIAGNOSIS_TOPICS]
        return any(
            action["resource"]["resourceType"] == "Condition"
            for suggestion in card.get("suggestions", [])
            for action in suggestion["actions"]
        )

    assert condition_suggested([t_score(-2.7)])
    assert not condition_suggested([t_score(-2.7), condition(snomed="64859006")])
    assert not condition_suggested([HIP_FRACTURE, condition(icd=(ICD10_CM, "M81.0"))])


# --- nothing that bears on bone health ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "resources",
    [
        pytest.param([patient(birth_date=born(40, on=NOW))], id="a woman of 40 with nothing else"),
        pytest.param(
            [patient(gender="male", birth_date=born(59, on=NOW))], id="a man of 59 with nothing else"
        ),
        pytest.param(
            [
                patient(birth_date=born(40, on=NOW)),
                condition(code=(SNOMED, "38341003"), text="Hypertension"),
                observation(loinc="8480-6", value=128, unit_code="mm[Hg]"),
                bmi(23.0),
                diagnostic_report("两肺纹理清晰，心影不大", loinc="36643-5"),
            ],
            id="a woman of 40 with hypertension, blood pressure, BMI and a normal chest radiograph",
        ),
        pytest.param(
            [patient(birth_date=born(40, on=NOW)), t_score(-2.0, status="entered-in-error")],
            id="a woman of 40 whose only BMD was entered in error (a data note, never a card of its own)",
        ),
    ],
)
def test_nothing_bone_related_gives_no_cards(resources: list[Resource]) -> None:
    assert _response(resources) == {"cards": []}
