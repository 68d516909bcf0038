"""Combined diagnosis (CONSENSUS-RULES.md §5 and POP-5): DX-1 worse of DXA and QCT, DX-4 peripheral and QUS,
DX-5 TBS, DX-9 densitometric diagnosis; cards: disabled topics, deceased patients, one diagnosis at most."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cds_service.cards.render import CONSENSUS_VALUE_SETTINGS
from cds_service.cards.texts import card_texts
from cds_service.consensus.findings import Finding, OrderProposal
from cds_service.facts.model import ProposedOrder
from tests.builders import (
    DIAGNOSIS_TOPICS,
    DICOM,
    born,
    card_topics,
    condition,
    diagnosis_of,
    diagnosis_topics,
    evaluate_resources,
    findings_of,
    local,
    make_settings,
    observation,
    patient,
    procedure,
    qct,
    t_score,
    topic_of,
    used_sources,
    z_score,
)

OLD_MAN = patient(gender="male", birth_date=born(70))
CALCANEUS_T = "38266-3"

# CONTRACT.md "Cards": the indicator of each topic.
INDICATORS = {
    "severe-osteoporosis": "critical",
    "osteoporosis-bmd": "warning",
    "osteoporosis-fracture": "warning",
    "low-bone-mass": "info",
    "normal-bmd": "info",
    "below-expected-range-for-age": "warning",
    "within-expected-range-for-age": "info",
    "z-score-required": "warning",
    "secondary-cause-workup": "warning",
    "peripheral-screening-only": "info",
}


def _diagnosis(*resources: Any) -> Finding:
    dx = diagnosis_of(findings_of([OLD_MAN, *resources]))
    assert dx is not None
    return dx


# --- DX-1 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dxa", "vbmd", "topic", "decisive"),
    [
        pytest.param(
            -1.5, 75.0, "osteoporosis-bmd", "qct", id="DX-1 DXA low, QCT osteoporosis: osteoporosis (QCT)"
        ),
        pytest.param(
            -2.6, 130.0, "osteoporosis-bmd", "dxa", id="DX-1 DXA osteoporosis, QCT normal: osteoporosis"
        ),
        pytest.param(-0.5, 100.0, "low-bone-mass", "qct", id="DX-1 DXA normal, QCT low: low bone mass (QCT)"),
        pytest.param(-1.8, 150.0, "low-bone-mass", "dxa", id="DX-1 DXA low, QCT normal: low bone mass (DXA)"),
        pytest.param(-0.2, 140.0, "normal-bmd", None, id="DX-1 both normal: normal"),
    ],
)
def test_dx1_worse_of_dxa_and_qct(dxa: float, vbmd: float, topic: str, decisive: str | None) -> None:
    dx = _diagnosis(t_score(dxa, id="dxa", when="2023-03-01"), qct(vbmd, id="qct", when="2024-01-10"))
    assert dx.topic == topic
    assert "DX-1" in dx.rules
    assert used_sources(dx) == {"Observation/dxa", "Observation/qct"}  # both exams classified
    if decisive == "qct":
        assert dx.params["value"] == pytest.approx(vbmd)
    elif decisive == "dxa":
        assert dx.params["value"] == pytest.approx(dxa)


@pytest.mark.parametrize(
    ("topic", "resources"),
    [
        pytest.param("osteoporosis-bmd", [t_score(-2.5)], id="cards osteoporosis-bmd is a warning"),
        pytest.param("low-bone-mass", [t_score(-1.5)], id="cards low-bone-mass is info"),
        pytest.param("normal-bmd", [t_score(-0.5)], id="cards normal-bmd is info"),
    ],
)
def test_diagnosis_card_indicator(topic: str, resources: list[dict[str, Any]]) -> None:
    cards = evaluate_resources([OLD_MAN, *resources]).response["cards"]
    card = next(c for c in cards if topic_of(c) == topic)
    assert card["indicator"] == INDICATORS[topic]
    assert cards[0] is card  # the diagnosis comes first


def _by_table_1(t: float) -> str:  # DXA-3
    return "osteoporosis-bmd" if t <= -2.5 else "low-bone-mass" if t < -1.0 else "normal-bmd"


def _by_table_2(vbmd: float) -> str:  # QCT-2
    return "osteoporosis-bmd" if vbmd < 80 else "low-bone-mass" if vbmd <= 120 else "normal-bmd"


@pytest.mark.parametrize(
    ("resource", "classify"),
    [
        pytest.param(t_score(-2.51), _by_table_1, id="DXA-3 T=-2.51 shown as an osteoporotic value"),
        pytest.param(t_score(-1.01), _by_table_1, id="DXA-3 T=-1.01 shown as a low-bone-mass value"),
        pytest.param(t_score(-2.546), _by_table_1, id="DXA-3 T=-2.546 shown as an osteoporotic value"),
        pytest.param(qct(79.9), _by_table_2, id="QCT-2 79.9 shown as an osteoporotic value"),
        pytest.param(qct(120.1), _by_table_2, id="QCT-2 120.1 shown as a normal value"),
        pytest.param(t_score(-2.4951), _by_table_1, id="DXA-3 T=-2.4951 not shown as -2.5"),
        pytest.param(t_score(-1.004), _by_table_1, id="DXA-3 T=-1.004 not shown as -1.0"),
        pytest.param(qct(79.96), _by_table_2, id="QCT-2 79.96 not shown as 80.0"),
        pytest.param(qct(120.04), _by_table_2, id="QCT-2 120.04 not shown as 120.0"),
    ],
)
def test_value_shown_on_the_card_is_in_the_cards_category(resource: dict[str, Any], classify: Any) -> None:
    [card] = [
        c
        for c in evaluate_resources([OLD_MAN, resource]).response["cards"]
        if topic_of(c) in DIAGNOSIS_TOPICS
    ]
    shown = float(re.findall(r"-?\d+\.\d+", card["summary"])[0])
    assert classify(shown) == topic_of(card), card["summary"]


@pytest.mark.parametrize("language", ["en", "zh-CN"])
@pytest.mark.parametrize(
    "resources",
    [
        pytest.param(
            [OLD_MAN, t_score(-2.7), t_score(-1.2, "38263-0")], id="cards DXA osteoporosis cites its rules"
        ),
        pytest.param(
            [patient(gender="female", birth_date=born(55)), t_score(-1.7)],
            id="cards POP-4 low bone mass cites its rules",
        ),
        pytest.param(
            [OLD_MAN, qct(70.0, vertebra="L1"), qct(90.0, vertebra="L2")], id="cards QCT cites its rules"
        ),
        pytest.param(
            [patient(gender="male", birth_date=born(30)), t_score(-3.0)],
            id="cards z-score-required cites its rules",
        ),
        pytest.param(
            [OLD_MAN, condition(snomed="69896004"), t_score(-2.6)],
            id="cards secondary-cause-workup cites its rules",
        ),
        pytest.param(
            [OLD_MAN, t_score(-3.0, CALCANEUS_T)], id="cards peripheral-screening-only cites its rules"
        ),
    ],
)
def test_every_card_cites_its_rule_ids_and_settings(resources: list[dict[str, Any]], language: str) -> None:
    findings = {f.topic: f for f in findings_of(resources)}
    result = evaluate_resources(resources, language=language)
    cards = result.response["cards"]
    assert {topic_of(c) for c in cards} == set(findings)
    for card, explanation in zip(cards, result.explanations(), strict=True):
        finding = findings[topic_of(card)]
        assert finding.rules
        for rule in finding.rules:
            assert rule in card["detail"], (finding.topic, rule)
        for setting in finding.settings:
            # Every setting in the full explanation; on the card, those that are implementation choices.
            assert setting.name in explanation, (finding.topic, setting.name)
            if setting.name not in CONSENSUS_VALUE_SETTINGS:  # in a few words, with its value
                short = card_texts(language)["settings_short"][setting.name].format(value=setting.value)
                assert short in card["detail"], (finding.topic, setting.name)


def test_assumed_menopause_card_names_the_setting() -> None:
    resources = [patient(gender="female", birth_date=born(55)), t_score(-2.7)]
    result = evaluate_resources(resources)
    [index] = [i for i, c in enumerate(result.response["cards"]) if topic_of(c) == "osteoporosis-bmd"]
    card = result.response["cards"][index]
    assert "implementation choice: menopause assumed at 50" in card["detail"]
    assert "POP-4" in card["detail"]
    assert "OSTEO_CDS_MENOPAUSE_AGE" in result.explanations()[index]


@pytest.mark.parametrize(
    "skipped",
    [
        pytest.param(
            t_score(-3.9, status="entered-in-error", id="skipped"), id="data notes entered-in-error listed"
        ),
        pytest.param(t_score(-9.5, id="skipped"), id="data notes implausible value listed"),
        pytest.param(qct(300.0, unit_code="[hnsf'U]", id="skipped"), id="data notes Hounsfield units listed"),
        pytest.param(t_score(-2.0, unit_code="%", id="skipped"), id="data notes unknown unit listed"),
    ],
)
def test_skipped_items_are_listed_on_the_cards_given(skipped: dict[str, Any]) -> None:
    resources = [OLD_MAN, condition(snomed="69896004"), t_score(-2.6), skipped]
    result = evaluate_resources(resources)
    cards = result.response["cards"]
    assert len(cards) >= 2
    # CONTRACT.md: listed in the data notes of the full explanation of every card, and counted in one
    # short line on the first card (issue 17: a note is not repeated on every card of a response).
    for explanation in result.explanations():
        assert "Observation/skipped" in explanation.replace("\\", "")
    assert "Data not used: 1" in cards[0]["detail"]
    assert not any("Data not used" in card["detail"] for card in cards[1:])
    assert sum(result.skipped.values()) == 1


# --- DX-4 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "peripheral",
    [
        pytest.param(t_score(-3.2, CALCANEUS_T, id="p"), id="DX-4 calcaneus DXA T-score only: screening"),
        pytest.param(
            observation(code=local("peripheral-bmd"), value=-3.2, unit_code="{T-score}", id="p"),
            id="DX-4 local peripheral T-score only: screening",
        ),
        pytest.param(
            observation(code=local("peripheral-bmd"), value=0.31, unit_code="g/cm2", id="p"),
            id="DX-4 local peripheral areal BMD only: screening",
        ),
        pytest.param(
            t_score(-3.2, method="pDXA forearm", loinc="38265-5", id="p"), id="DX-4 pDXA by method: screening"
        ),
    ],
)
def test_dx4_peripheral_only_is_never_a_diagnosis(peripheral: dict[str, Any]) -> None:
    findings = findings_of([OLD_MAN, peripheral])
    assert diagnosis_of(findings) is None
    [screening] = [f for f in findings if f.topic == "peripheral-screening-only"]
    assert {"DX-4", "REC-PERIPHERAL"} <= set(screening.rules)
    assert [e.source for e in screening.evidence] == ["Observation/p"]
    assert not any(e.used for e in screening.evidence)


def test_dx4_peripheral_next_to_central_dxa_does_not_decide() -> None:
    findings = findings_of([OLD_MAN, t_score(-1.5, id="dxa"), t_score(-3.5, CALCANEUS_T, id="p")])
    dx = diagnosis_of(findings)
    assert dx is not None
    assert dx.topic == "low-bone-mass"
    assert used_sources(dx) == {"Observation/dxa"}
    assert "peripheral-screening-only" not in [f.topic for f in findings]


@pytest.mark.parametrize(
    "qus",
    [
        pytest.param(
            t_score(-3.0, CALCANEUS_T, method=(DICOM, "BDUS"), id="qus"), id="DX-4 QUS by DICOM BDUS"
        ),
        pytest.param(
            observation(
                code=local("peripheral-bmd"),
                value=-3.0,
                unit_code="{T-score}",
                method="Calcaneal ultrasound",
                id="qus",
            ),
            id="DX-4 QUS by method text",
        ),
        pytest.param(
            observation(
                code=local("peripheral-bmd"),
                value=-3.0,
                unit_code="{T-score}",
                method="跟骨超声骨密度",
                id="qus",
            ),
            id="DX-4 QUS by method text 超声",
        ),
    ],
)
def test_dx4_quantitative_ultrasound_is_never_called_bmd(qus: dict[str, Any]) -> None:
    findings = findings_of([OLD_MAN, qus])
    assert diagnosis_of(findings) is None
    [screening] = [f for f in findings if f.topic == "peripheral-screening-only"]
    assert "qus-not-bmd" in screening.notes
    assert [e.kind for e in screening.evidence] == ["qus"]  # not a BMD, T-score or peripheral BMD row


def test_dx4_qus_next_to_dxa_is_context_not_bmd() -> None:
    dx = _diagnosis(t_score(-1.5, id="dxa"), t_score(-3.0, CALCANEUS_T, method=(DICOM, "BDUS"), id="qus"))
    assert dx.topic == "low-bone-mass"
    qus_rows = [e for e in dx.evidence if e.source == "Observation/qus"]
    assert [(e.kind, e.used) for e in qus_rows] == [("qus", False)]


# --- DX-5 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dxa", "topic"),
    [
        pytest.param(
            -1.5, "low-bone-mass", id="DX-5 degraded TBS 1.1 does not make low bone mass osteoporosis"
        ),
        pytest.param(-0.5, "normal-bmd", id="DX-5 degraded TBS 1.1 does not change normal"),
    ],
)
def test_dx5_tbs_never_decides(dxa: float, topic: str) -> None:
    dx = _diagnosis(
        t_score(dxa, id="dxa"), observation(code=local("tbs"), value=1.1, unit_code="1", id="tbs")
    )
    assert dx.topic == topic
    assert used_sources(dx) == {"Observation/dxa"}
    assert [(e.source, e.used) for e in dx.evidence if e.source == "Observation/tbs"] == [
        ("Observation/tbs", False)
    ]
    assert "DX-5" in dx.rules
    assert "tbs-context" in dx.notes


def test_dx5_tbs_alone_gives_no_diagnosis() -> None:
    findings = findings_of([OLD_MAN, observation(code=local("tbs"), value=1.05, unit_code="1")])
    assert diagnosis_of(findings) is None


# --- POP-5 --------------------------------------------------------------------------------------

RHEUMATOID_ARTHRITIS = condition(snomed="69896004", onset="2010-01-01", id="ra")


@pytest.mark.parametrize(
    ("cause", "dxa", "topic", "workup"),
    [
        pytest.param(
            RHEUMATOID_ARTHRITIS, -2.8, "osteoporosis-bmd", True, id="POP-5 RA + osteoporosis: both cards"
        ),
        pytest.param(
            RHEUMATOID_ARTHRITIS, -1.6, "low-bone-mass", True, id="POP-5 RA + low bone mass: both cards"
        ),
        pytest.param(RHEUMATOID_ARTHRITIS, -0.4, "normal-bmd", False, id="POP-5 RA + normal BMD: no work-up"),
        pytest.param(
            condition(icd="E21.0", id="ra"),
            -2.6,
            "osteoporosis-bmd",
            True,
            id="POP-5 hyperparathyroidism E21.0",
        ),
        pytest.param(
            condition(icd=("http://hl7.org/fhir/sid/icd-10-cm", "Z79.52"), id="ra"),
            -2.6,
            "osteoporosis-bmd",
            True,
            id="POP-5 long-term glucocorticoids Z79.52",
        ),
        pytest.param(
            condition(snomed="69896004", clinical="resolved", id="ra"),
            -2.8,
            "osteoporosis-bmd",
            False,
            id="POP-5 resolved cause: no work-up",
        ),
        pytest.param(
            condition(snomed="69896004", verification="entered-in-error", id="ra"),
            -2.8,
            "osteoporosis-bmd",
            False,
            id="POP-5 entered-in-error cause: no work-up",
        ),
    ],
)
def test_pop5_secondary_cause_with_low_bmd(
    cause: dict[str, Any], dxa: float, topic: str, workup: bool
) -> None:
    findings = findings_of([OLD_MAN, cause, t_score(dxa, id="dxa")])
    dx = diagnosis_of(findings)
    assert dx is not None and dx.topic == topic  # the diagnosis card is still given
    workups = [f for f in findings if f.topic == "secondary-cause-workup"]
    assert bool(workups) is workup
    if workup:
        assert "POP-5" in workups[0].rules
        assert "Condition/ra" in {e.source for e in workups[0].evidence}
        assert "Observation/dxa" in {e.source for e in workups[0].evidence}


def test_pop5_both_cards_reach_the_response() -> None:
    result = evaluate_resources([OLD_MAN, RHEUMATOID_ARTHRITIS, t_score(-2.8)])
    topics = card_topics(result.response)
    assert diagnosis_topics(result.response) == ["osteoporosis-bmd"]
    assert "secondary-cause-workup" in topics
    workup = next(c for c in result.response["cards"] if topic_of(c) == "secondary-cause-workup")
    assert workup["indicator"] == INDICATORS["secondary-cause-workup"]


# --- DX-9 ---------------------------------------------------------------------------------------


def _condition_suggestions(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        action["resource"]
        for suggestion in card.get("suggestions", [])
        for action in suggestion["actions"]
        if action.get("resource", {}).get("resourceType") == "Condition"
    ]


def test_dx9_osteoporosis_card_suggests_a_provisional_condition() -> None:
    cards = evaluate_resources([OLD_MAN, t_score(-2.7)]).response["cards"]
    card = next(c for c in cards if topic_of(c) == "osteoporosis-bmd")
    [resource] = _condition_suggestions(card)
    assert [c["code"] for c in resource["verificationStatus"]["coding"]] == ["provisional"]
    assert "64859006" in [c["code"] for c in resource["code"]["coding"]]
    assert resource["subject"] == {"reference": "Patient/p1"}
    assert card["selectionBehavior"] in ("at-most-one", "any")
    dx = diagnosis_of(findings_of([OLD_MAN, t_score(-2.7)]))
    assert dx is not None
    assert "DX-9" in dx.rules
    assert "densitometric-diagnosis" in dx.notes


@pytest.mark.parametrize(
    "recorded",
    [
        pytest.param(condition(snomed="64859006"), id="DX-9 osteoporosis SNOMED recorded: no suggestion"),
        pytest.param(condition(icd="M81.0"), id="DX-9 osteoporosis ICD-10 M81.0 recorded: no suggestion"),
        pytest.param(
            condition(icd="M81.000"), id="DX-9 osteoporosis Chinese M81.000 recorded: no suggestion"
        ),
        pytest.param(
            condition(text="绝经后骨质疏松症"), id="DX-9 osteoporosis as Chinese text: no suggestion"
        ),
        pytest.param(
            condition(snomed="64859006", clinical="inactive"),
            id="DX-9 inactive osteoporosis on record: no suggestion",
        ),
    ],
)
def test_dx9_no_condition_suggestion_when_osteoporosis_is_recorded(recorded: dict[str, Any]) -> None:
    cards = evaluate_resources([OLD_MAN, recorded, t_score(-2.7)]).response["cards"]
    card = next(c for c in cards if topic_of(c) == "osteoporosis-bmd")
    assert _condition_suggestions(card) == []


def test_dx9_an_osteoporotic_fracture_on_record_records_osteoporosis() -> None:
    # 443165006 "Osteoporotic fracture of bone": the chart already names osteoporosis.
    cards = evaluate_resources([OLD_MAN, condition(snomed="443165006"), t_score(-2.7)]).response["cards"]
    card = next(c for c in cards if topic_of(c) == "severe-osteoporosis")
    assert _condition_suggestions(card) == []


@pytest.mark.parametrize(
    "not_recorded",
    [
        pytest.param(
            condition(snomed="64859006", verification="entered-in-error"),
            id="DX-9 entered-in-error: still suggested",
        ),
        pytest.param(
            condition(snomed="64859006", verification="refuted"), id="DX-9 refuted: still suggested"
        ),
        pytest.param(condition(text="Osteoporosis screening"), id="DX-9 'screening' text is no diagnosis"),
    ],
)
def test_dx9_suggestion_when_osteoporosis_is_not_really_recorded(not_recorded: dict[str, Any]) -> None:
    cards = evaluate_resources([OLD_MAN, not_recorded, t_score(-2.7)]).response["cards"]
    card = next(c for c in cards if topic_of(c) == "osteoporosis-bmd")
    assert len(_condition_suggestions(card)) == 1


@pytest.mark.parametrize(
    ("t", "topic"),
    [
        pytest.param(-1.5, "low-bone-mass", id="DX-9 low bone mass: no Condition suggestion"),
        pytest.param(-0.5, "normal-bmd", id="DX-9 normal: no Condition suggestion, no DX-9 note"),
    ],
)
def test_dx9_only_osteoporosis_suggests_a_condition(t: float, topic: str) -> None:
    cards = evaluate_resources([OLD_MAN, t_score(t)]).response["cards"]
    card = next(c for c in cards if topic_of(c) == topic)
    assert _condition_suggestions(card) == []


# --- settings: disabled cards -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disabled", "resources", "hidden"),
    [
        pytest.param(
            {"z-score-required"},
            [patient(gender="male", birth_date=born(35)), t_score(-3.0)],
            "z-score-required",
            id="settings OSTEO_CDS_DISABLED_CARDS hides z-score-required",
        ),
        pytest.param(
            {"secondary-cause-workup"},
            [OLD_MAN, RHEUMATOID_ARTHRITIS, t_score(-2.8)],
            "secondary-cause-workup",
            id="settings OSTEO_CDS_DISABLED_CARDS hides secondary-cause-workup",
        ),
        pytest.param(
            {"peripheral-screening-only"},
            [OLD_MAN, t_score(-3.0, CALCANEUS_T)],
            "peripheral-screening-only",
            id="settings OSTEO_CDS_DISABLED_CARDS hides peripheral-screening-only",
        ),
    ],
)
def test_disabled_cards_are_never_shown(
    disabled: set[str], resources: list[dict[str, Any]], hidden: str
) -> None:
    assert hidden in card_topics(evaluate_resources(resources).response)
    result = evaluate_resources(resources, settings=make_settings(disabled_cards=frozenset(disabled)))
    assert hidden not in card_topics(result.response)
    assert hidden not in result.topics


def test_disabling_one_card_keeps_the_others() -> None:
    resources = [OLD_MAN, RHEUMATOID_ARTHRITIS, t_score(-2.8)]
    result = evaluate_resources(
        resources, settings=make_settings(disabled_cards=frozenset({"secondary-cause-workup"}))
    )
    assert diagnosis_topics(result.response) == ["osteoporosis-bmd"]


# --- deceased patients ----------------------------------------------------------------------------

_XR_ORDER = Finding(
    topic="spine-radiograph-recommended",
    rules=("REC-SPINE-XR",),
    params={"age": 70},
    orders=(OrderProposal(ProposedOrder.SPINE_RADIOGRAPH),),
)


def _service_requests(cards: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        action["resource"]
        for card in cards
        for suggestion in card.get("suggestions", [])
        for action in suggestion["actions"]
        if action.get("resource", {}).get("resourceType") == "ServiceRequest"
    ]


@pytest.mark.parametrize(
    ("deceased", "orders"),
    [
        pytest.param(None, True, id="deceased not stated: order cards shown"),
        pytest.param(False, True, id="deceasedBoolean false: order cards shown"),
        pytest.param(True, False, id="deceasedBoolean true: no card at all"),
        pytest.param("2025-03-01", False, id="deceasedDateTime: no card at all"),
    ],
)
def test_deceased_patient_gets_no_card(
    deceased: bool | str | None, orders: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An order-proposing finding is added to the real ones, whatever rules produce orders today.
    from cds_service import engine

    real_assess = engine.assess
    monkeypatch.setattr(engine, "assess", lambda *args, **kwargs: [*real_assess(*args, **kwargs), _XR_ORDER])
    person = patient(gender="male", birth_date=born(70), deceased=deceased)
    result = evaluate_resources([person, t_score(-2.9)])
    assert diagnosis_topics(result.response) == (["osteoporosis-bmd"] if orders else [])
    assert bool(_service_requests(result.response["cards"])) is orders
    assert ("spine-radiograph-recommended" in card_topics(result.response)) is orders


def test_deceased_patient_real_rules_give_no_card() -> None:
    person = patient(gender="female", birth_date="1924-06-16", deceased="2002-06-29T21:51:36+00:00")
    result = evaluate_resources([person, t_score(-3.5, when="1994-06-27")])
    assert result.response == {"cards": []}
    assert result.topics == []


# --- one diagnosis at most ------------------------------------------------------------------------

_SEXES = st.sampled_from(["female", "male", None])
_SCORES = st.floats(min_value=-5, max_value=3, allow_nan=False).map(lambda v: round(v, 2))
_DXA_CODES = st.sampled_from(["38267-1", "38263-0", "38264-8", "38265-5", "80944-2", CALCANEUS_T])
_Z_CODES = st.sampled_from(["85394-5", "80934-3", "80933-5"])
_DATES = st.sampled_from(["2010-02-03", "2019-07-08", "2024-01-10"])
_EXTRAS = st.sampled_from(
    [
        condition(snomed="69896004"),  # RA (POP-5)
        condition(snomed="64859006"),  # osteoporosis recorded
        condition(snomed="443165006", onset="2022-05-01"),  # osteoporotic fracture
        condition(snomed="359817006", onset="2023-05-01", clinical="resolved"),  # hip fracture
        condition(icd="Z98.1"),  # spinal fusion (DXA-2)
        condition(snomed="22636003", onset="2024-01-10"),  # premenopausal
        procedure(snomed="76876009", performed="2015-01-01"),  # bilateral oophorectomy
        observation(code=local("tbs"), value=1.1, unit_code="1"),
    ]
)


@st.composite
def _records(draw: st.DrawFn) -> list[dict[str, Any]]:
    person = patient(gender=draw(_SEXES), birth_date=born(draw(st.integers(10, 95))))
    resources: list[dict[str, Any]] = [person]
    for _ in range(draw(st.integers(0, 4))):
        resources.append(t_score(draw(_SCORES), draw(_DXA_CODES), when=draw(_DATES)))
    for _ in range(draw(st.integers(0, 2))):
        resources.append(z_score(draw(_SCORES), draw(_Z_CODES), when=draw(_DATES)))
    for _ in range(draw(st.integers(0, 3))):
        vertebra = draw(st.sampled_from([None, "L1", "L2", "L3"]))
        resources.append(
            qct(draw(st.floats(20, 250).map(lambda v: round(v, 1))), vertebra=vertebra, when=draw(_DATES))
        )
    if draw(st.booleans()):
        resources.append(observation(code=local("qct-hip-t"), value=draw(_SCORES), when=draw(_DATES)))
    resources.extend(draw(st.lists(_EXTRAS, max_size=3)))
    return resources


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_records())
def test_at_most_one_diagnosis_card_always(resources: list[dict[str, Any]]) -> None:
    result = evaluate_resources(resources)
    topics = card_topics(result.response)
    assert len([t for t in topics if t in DIAGNOSIS_TOPICS]) <= 1
    if topics and topics[0] not in DIAGNOSIS_TOPICS:
        assert not set(topics) & DIAGNOSIS_TOPICS  # a diagnosis, when there is one, comes first
