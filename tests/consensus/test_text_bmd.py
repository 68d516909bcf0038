"""Issue 14 end to end: BMD only in report text gives the card of the same values as Observations, with the
sentence quoted; unreadable values stop the exam's category; reported not-measured sites (DXA-1, DXA-2);
POP-5 glucocorticoid therapy from medications (threshold OSTEO_CDS_GLUCOCORTICOID_MONTHS)."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.cards.texts import card_texts
from cds_service.settings import ClinicalSettings
from tests.builders import (
    attachment,
    diagnosis_of,
    diagnosis_topics,
    diagnostic_report,
    evaluate_resources,
    findings_of,
    imaging_note,
    make_settings,
    medication,
    observation,
    patient,
    qct,
    t_score,
    z_score,
)

P1 = patient()  # a woman of 73 at the exam: assumed postmenopausal (POP-4), T-score criteria
QCT_LOINC = "95924-7"

TEXT_AND_OBSERVATIONS = [
    pytest.param(
        diagnostic_report("骨密度检查：腰椎L1-L4 BMD 0.812 g/cm²，T值 -2.8；左股骨颈 T值 -2.1，Z值 -0.9。"),
        [t_score(-2.8), t_score(-2.1, loinc="80948-3"), z_score(-0.9, loinc="80940-0")],
        "osteoporosis-bmd",
        "腰椎L1-L4 BMD 0.812 g/cm²，T值 -2.8",
        id="DXA-1 DXA-3 zh osteoporosis",
    ),
    pytest.param(
        diagnostic_report(
            presented=[attachment("DXA. Lumbar spine L1-L4: T-score -1.8. Left femoral neck: T-score -2.0.")]
        ),
        [t_score(-1.8), t_score(-2.0, loinc="80948-3")],
        "low-bone-mass",
        "Left femoral neck: T-score -2.0",
        id="DXA-1 DXA-3 en low bone mass (presentedForm)",
    ),
    pytest.param(
        diagnostic_report("L1、L2椎体松质骨骨密度平均值 72.5 mg/cm³", loinc=QCT_LOINC),
        [qct(72.5)],
        "osteoporosis-bmd",
        "L1、L2椎体松质骨骨密度平均值 72.5 mg/cm³",
        id="QCT-1 QCT-2 zh reported mean osteoporosis",
    ),
    pytest.param(
        imaging_note(attachment("QCT lumbar spine. L1 vBMD 95.0 mg/cm3, L2 vBMD 101.0 mg/cm3.")),
        [qct(95.0, "L1"), qct(101.0, "L2")],
        "low-bone-mass",
        "L1 vBMD 95.0 mg/cm3, L2 vBMD 101.0 mg/cm3",
        id="QCT-1 QCT-2 en per vertebra low bone mass (imaging note)",
    ),
]


@pytest.mark.parametrize(("report", "observations", "topic", "quote"), TEXT_AND_OBSERVATIONS)
@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_text_gives_the_card_of_the_same_observations(
    report: dict[str, Any], observations: list[dict[str, Any]], topic: str, quote: str, language: str
) -> None:
    result = evaluate_resources([P1, report], language=language)
    from_text = result.response
    from_observations = evaluate_resources([P1, *observations], language=language).response
    assert diagnosis_topics(from_text) == diagnosis_topics(from_observations) == [topic]
    index = next(i for i, c in enumerate(from_text["cards"]) if c["source"]["topic"]["code"] == topic)
    # The card names the values and that they come from a report or document; the full explanation quotes
    # the sentence, Markdown-escaped.
    source_types = card_texts(language)["source_types"]
    detail = from_text["cards"][index]["detail"]
    assert source_types["DiagnosticReport"] in detail or source_types["DocumentReference"] in detail
    assert quote in result.explanations()[index].replace("\\", "")


@pytest.mark.parametrize(("report", "observations", "topic", "quote"), TEXT_AND_OBSERVATIONS)
def test_discrete_values_win_over_the_text_of_the_same_exam(
    report: dict[str, Any], observations: list[dict[str, Any]], topic: str, quote: str
) -> None:
    diagnosis = diagnosis_of(findings_of([P1, report, *observations]))
    assert diagnosis is not None and diagnosis.topic == topic
    assert not any(e.quote for e in diagnosis.evidence)  # the text is not counted a second time
    result = evaluate_resources([P1, report, *observations])
    assert "not counted again" in result.explanations()[0]
    # Nothing is missing (the values were used, from the discrete results): not counted on the card (issue 17:
    # He Yulan's "报告文字中的骨密度数值未重复计入" on every card was noise).
    assert not any("Data not used" in card["detail"] for card in result.response["cards"])


# --- a value present but unreadable: no category from that exam ------------------------------------


@pytest.mark.parametrize(
    "resources",
    [
        pytest.param([diagnostic_report("腰椎 T值 -0.5；左股骨颈 T值 -2.x")], id="DXA-3 text unreadable"),
        pytest.param(
            [t_score(-0.5), observation(loinc="80948-3", valueString="-2.x")], id="DXA-3 valueString"
        ),
        pytest.param(
            [
                t_score(-0.5, when="2024-01-10"),
                observation(loinc="80948-3", valueString="?", when="2024-01-11"),
            ],
            id="DXA-3 unreadable the next day, same exam",
        ),
        pytest.param(
            [t_score(-0.5, when="2022-01-10"), diagnostic_report("股骨颈 T值 ***", when="2024-01-10")],
            id="DXA-1 the newest exam unreadable: the older one does not stand in",
        ),
        pytest.param(
            [diagnostic_report("L1、L2 平均骨密度 75.2", loinc=QCT_LOINC)], id="QCT-1 mean without unit"
        ),
    ],
)
def test_an_unreadable_value_gives_no_category(resources: list[dict[str, Any]]) -> None:
    assert diagnosis_of(findings_of([P1, *resources])) is None


def test_an_unreadable_value_is_stated_with_a_fracture_diagnosis() -> None:
    fracture = diagnostic_report("L1椎体压缩性骨折（Genant 2度）", loinc="24970-6", code_text="腰椎正侧位")
    findings = findings_of([P1, fracture, t_score(-3.0), observation(loinc="80948-3", valueString="-2.x")])
    diagnosis = diagnosis_of(findings)
    assert diagnosis is not None and diagnosis.topic == "osteoporosis-fracture"
    assert "bmd-unreadable-no-category" in diagnosis.notes


def test_an_older_unreadable_value_does_not_stop_a_newer_exam() -> None:
    resources = [P1, observation(loinc="80948-3", valueString="?", when="2020-01-10"), t_score(-2.7)]
    diagnosis = diagnosis_of(findings_of(resources))
    assert diagnosis is not None and diagnosis.topic == "osteoporosis-bmd"


def test_a_number_as_value_string_counts_like_a_quantity() -> None:
    diagnosis = diagnosis_of(
        findings_of([P1, t_score(-0.5), observation(loinc="80948-3", valueString="-2.6")])
    )
    assert diagnosis is not None and diagnosis.topic == "osteoporosis-bmd"


# --- a site not measured: the category from the sites measured; DXA-2 where its reasons hold --------


def test_a_site_not_measured_is_stated_and_the_rest_decides() -> None:
    findings = findings_of([P1, diagnostic_report("右髋未测（骨折），左股骨颈 T值 -1.6；腰椎 T值 -1.2")])
    diagnosis = diagnosis_of(findings)
    assert diagnosis is not None and diagnosis.topic == "low-bone-mass"
    assert "site-not-measured" in diagnosis.notes
    # DXA-1: the right hip is the one not measured, while the left was (the side stays on the row).
    assert [(e.kind, e.region, e.side, e.used) for e in diagnosis.evidence if e.kind == "not-measured"] == [
        ("not-measured", "total-hip", "right", False)
    ]
    assert "forearm-dxa-recommended" not in {f.topic for f in findings}  # a fracture is not a DXA-2 reason


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("腰椎因内固定未测；左股骨颈 T值 -1.5，左全髋 T值 -1.2", id="DXA-2 spine fixation zh"),
        pytest.param(
            "Lumbar spine not measured due to hardware. Left femoral neck T-score -1.5.", id="DXA-2 en"
        ),
    ],
)
def test_a_site_not_measurable_for_a_dxa2_reason_brings_the_forearm(text: str) -> None:
    findings = findings_of([P1, diagnostic_report(text)])
    topics = {f.topic for f in findings}
    assert "low-bone-mass" in topics and "forearm-dxa-recommended" in topics
    diagnosis = diagnosis_of(findings)
    assert diagnosis is not None and "DXA-2" in diagnosis.rules
    assert "site-unusable-reported-not-measurable" in diagnosis.notes


def test_a_forearm_in_text_counts_when_dxa2_holds() -> None:
    text = "腰椎因内固定未测；左股骨颈 T值 -1.5；非优势侧前臂1/3 T值 -2.7"
    diagnosis = diagnosis_of(findings_of([P1, diagnostic_report(text)]))
    assert diagnosis is not None and diagnosis.topic == "osteoporosis-bmd"
    assert "forearm-counts" in diagnosis.notes


# --- POP-5: glucocorticoid therapy from medications -------------------------------------------------


def _workup(*resources: Any, **clinical: Any) -> Any:
    settings = make_settings(clinical=ClinicalSettings(**clinical)) if clinical else make_settings()
    return next(
        (
            f
            for f in findings_of([P1, t_score(-2.7), *resources], settings=settings)
            if f.topic == "secondary-cause-workup"
        ),
        None,
    )


@pytest.mark.parametrize(
    ("resources", "counts"),
    [
        pytest.param([medication("泼尼松片")], True, id="POP-5 active order since 2024: ongoing"),
        pytest.param(
            [medication(atc="H02AB04", status="completed", end="2024-04-01")], True, id="POP-5 91 days"
        ),
        pytest.param(
            [medication(atc="H02AB04", status="completed", end="2024-03-31")], False, id="POP-5 90 days"
        ),
        pytest.param(
            [
                medication("泼尼松", status="completed", start="2024-01-01", end="2024-02-15"),
                medication("泼尼松", status="completed", start="2024-02-10", end="2024-04-05"),
            ],
            True,
            id="POP-5 overlapping orders merged",
        ),
        pytest.param(
            [
                medication("泼尼松", status="completed", start="2023-01-01", end="2023-02-15"),
                medication("泼尼松", status="completed", start="2024-01-01", end="2024-02-20"),
            ],
            True,
            id="POP-5 two courses add up",
        ),
        pytest.param([medication("布地奈德吸入剂", atc="R03BA02")], False, id="POP-5 inhaled does not count"),
        pytest.param([medication("地塞米松", route="外用")], False, id="POP-5 topical does not count"),
        pytest.param(
            [medication("泼尼松", start="2026-11-01")], False, id="POP-5 active since 24 days: too short"
        ),
    ],
)
def test_glucocorticoid_therapy_of_three_months_is_a_secondary_cause(
    resources: list[Any], counts: bool
) -> None:
    workup = _workup(*resources)
    assert (workup is not None) is counts
    if counts:
        assert "POP-5" in workup.rules and "glucocorticoid-months" in workup.notes
        assert [(s.name, s.value) for s in workup.settings] == [("OSTEO_CDS_GLUCOCORTICOID_MONTHS", "3")]
        assert any(e.kind == "secondary-cause" and e.region == "glucocorticoids" for e in workup.evidence)


def test_the_glucocorticoid_threshold_is_a_setting() -> None:
    course = medication(atc="H02AB07", status="completed", end="2024-05-01")  # four months
    assert _workup(course) is not None
    assert _workup(course, glucocorticoid_months=6) is None


def test_the_card_names_the_threshold_as_an_implementation_choice() -> None:
    result = evaluate_resources([P1, t_score(-2.7), medication("泼尼松片")])
    cards = result.response["cards"]
    index = next(i for i, c in enumerate(cards) if c["source"]["topic"]["code"] == "secondary-cause-workup")
    assert "implementation choice: glucocorticoids for 3+ months" in cards[index]["detail"]
    assert "OSTEO_CDS_GLUCOCORTICOID_MONTHS" in result.explanations()[index]
