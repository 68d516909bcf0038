"""Regressions from the clinical review: each case is a realistic record that once gave a wrong card."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builders import (
    born,
    card_topics,
    condition,
    diagnosis_of,
    evaluate_resources,
    findings_of,
    patient,
    procedure,
    qct,
    t_score,
    z_score,
)

Resource = dict[str, Any]
DAY = "2026-07-10"  # within the 6-month doubtful-fracture window of REC-CT-MRI
WOMAN_68 = patient(gender="female", birth_date=born(68, on=DAY))
MAN_70 = patient(gender="male", birth_date=born(70, on=DAY))


def report(conclusion: str, *, code_text: str = "胸腰椎正侧位", when: str = DAY, id: str = "dr1") -> Resource:
    return {
        "resourceType": "DiagnosticReport",
        "id": id,
        "status": "final",
        "code": {"text": code_text},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
        "conclusion": conclusion,
    }


def service_request(text: str) -> Resource:
    return {
        "resourceType": "ServiceRequest",
        "id": "sr1",
        "status": "active",
        "intent": "order",
        "code": {"text": text},
        "subject": {"reference": "Patient/p1"},
    }


def _diagnosis(*resources: Resource) -> str | None:
    dx = diagnosis_of(findings_of(list(resources)))
    return dx.topic if dx else None


def test_dxa1_single_vertebra_scores_never_decide() -> None:
    # DXA-1: L1-L4 as a whole; densitometers export one row per vertebra beside the L1-L4 total.
    rows = [t_score(v, when=DAY, body_site=level) for level, v in (("L1", -2.9), ("L2", -2.3), ("L3", -2.0))]
    total = t_score(-2.2, when=DAY, body_site="L1-L4")
    neck = t_score(-1.8, loinc="38263-0", when=DAY)
    assert _diagnosis(WOMAN_68, *rows, total, neck) == "low-bone-mass"


@pytest.mark.parametrize(
    ("coded", "text", "rule"),
    [
        pytest.param(
            condition(icd="S32.000", onset=DAY),
            "L1椎体病理性压缩骨折，考虑转移瘤。",
            "FX-8",
            id="FX-8 coded + pathological",
        ),
        pytest.param(
            condition(snomed="359817006", onset=DAY),
            "车祸致右股骨颈骨折。",
            "FX-5",
            id="FX-5 coded + high energy",
        ),
    ],
)
def test_fx_a_coded_fracture_takes_its_reports_verdict(coded: Resource, text: str, rule: str) -> None:
    assert _diagnosis(MAN_70, coded, report(text, code_text="MRI")) is None


def test_fx5_a_crash_does_not_explain_an_old_fracture() -> None:
    text = "车祸伤后：右侧第5、6肋骨骨折。L1椎体陈旧性压缩性骨折。"
    assert _diagnosis(WOMAN_68, report(text, code_text="胸部CT")) == "osteoporosis-fracture"


@pytest.mark.parametrize(
    "fusion",
    [
        pytest.param(
            condition(icd="Z98.1", text="踝关节融合术后", onset="2020-01-01"), id="DXA-2 ankle arthrodesis"
        ),
        pytest.param(
            procedure(snomed="55705006", text="颈椎融合术", performed="2020-01-01"), id="DXA-2 cervical"
        ),
        pytest.param(
            condition(icd=("http://hl7.org/fhir/sid/icd-10-cm", "M43.22"), onset="2020-01-01"),
            id="DXA-2 M43.22 cervical fusion",
        ),
    ],
)
def test_dxa2_a_fusion_elsewhere_keeps_the_lumbar_spine(fusion: Resource) -> None:
    spine, neck = t_score(-2.8, when=DAY), t_score(-1.5, loinc="38263-0", when=DAY)
    response = evaluate_resources([MAN_70, fusion, spine, neck]).response
    assert "osteoporosis-bmd" in card_topics(response)
    assert "forearm-dxa-recommended" not in card_topics(response)


def test_dxa2_a_lumbar_fusion_still_limits_the_spine() -> None:
    fusion = condition(icd="Z98.1", text="腰椎融合术后", onset="2020-01-01")
    spine, neck = t_score(-2.8, when=DAY), t_score(-1.5, loinc="38263-0", when=DAY)
    assert _diagnosis(MAN_70, fusion, spine, neck) == "low-bone-mass"


def test_rec_qct_not_for_the_young() -> None:
    # QCT-6: no QCT category below the POP-1 population, so no QCT (a CT) is proposed for a child.
    child = patient(gender="female", birth_date=born(14, on=DAY))
    scoliosis = condition(icd=("http://hl7.org/fhir/sid/icd-10-cm", "M41.1"), onset="2020-01-01")
    response = evaluate_resources([child, scoliosis, z_score(-0.5, when=DAY)]).response
    assert "qct-recommended" not in card_topics(response)


def test_pop4_menopause_as_text_only() -> None:
    woman_45 = patient(gender="female", birth_date=born(45, on=DAY))
    menopause = condition(text="绝经", onset="2024-01-01")
    assert (
        _diagnosis(woman_45, menopause, t_score(-2.6, when=DAY), z_score(-1.0, when=DAY))
        == "osteoporosis-bmd"
    )


@pytest.mark.parametrize("text", ["绝经前", "围绝经期综合征", "premenopausal"])
def test_pop4_premenopause_text_is_not_menopause(text: str) -> None:
    woman_45 = patient(gender="female", birth_date=born(45, on=DAY))
    dx = _diagnosis(
        woman_45, condition(text=text, onset="2024-01-01"), t_score(-2.6, when=DAY), z_score(-1.0, when=DAY)
    )
    assert dx == "within-expected-range-for-age"


def test_fx6_fracture_condition_as_text_only() -> None:
    assert _diagnosis(MAN_70, condition(text="腰1椎体压缩性骨折", onset=DAY)) == "osteoporosis-fracture"


def test_fx6_a_provisional_fracture_condition_is_not_proof() -> None:
    provisional = condition(snomed="359817006", onset=DAY, verification="provisional")
    topics = card_topics(evaluate_resources([MAN_70, provisional]).response)
    assert "osteoporosis-fracture" not in topics
    assert "fracture-imaging-recommended" in topics


@pytest.mark.parametrize("text", ["XR Cervical spine 2 Views", "腰椎MRI平扫", "腰椎正侧位"])
def test_rec_spine_xr_an_order_of_part_of_the_spine_does_not_suppress_it(text: str) -> None:
    response = evaluate_resources([MAN_70, service_request(text)]).response
    assert "spine-radiograph-recommended" in card_topics(response)


def test_rec_spine_xr_an_order_of_both_parts_suppresses_it() -> None:
    response = evaluate_resources([MAN_70, service_request("胸腰椎正侧位")]).response
    assert "spine-radiograph-recommended" not in card_topics(response)


def test_fx4_one_fracture_seen_twice_is_not_multiple() -> None:
    first = report("L1椎体压缩骨折。", when="2024-05-10", id="dr1")
    second = report("L1椎体压缩骨折。", code_text="腰椎CT", when=DAY, id="dr2")
    dx = diagnosis_of(findings_of([MAN_70, first, second]))
    assert dx is not None
    assert "multiple-vertebral-higher-risk" not in dx.notes


def test_qct5_mg_per_cc_is_mg_per_cm3() -> None:
    values = [qct(70.0, vertebra=level, unit_code="mg/cc", when=DAY) for level in ("L1", "L2")]
    assert _diagnosis(MAN_70, *values) == "osteoporosis-bmd"


def test_pop1_unknown_sex_is_not_called_an_assumed_menopause() -> None:
    someone = patient(gender=None, birth_date=born(70, on=DAY))
    dx = diagnosis_of(findings_of([someone, t_score(-2.7, when=DAY)]))
    assert dx is not None
    assert "assumed-postmenopausal" not in dx.notes
    assert "sex-unknown" in dx.notes


@pytest.mark.parametrize("text", ["L1椎体压缩性骨折，外伤后。", "外伤后L1椎体压缩骨折。"])
def test_fx1a_a_recorded_trauma_of_unknown_energy_is_not_assumed_away(text: str) -> None:
    # FX-1a assumes a fragility fracture only when no trauma is recorded.
    assert _diagnosis(WOMAN_68, report(text)) is None


def test_fx1a_minor_trauma_still_counts() -> None:
    assert _diagnosis(WOMAN_68, report("摔倒后L1椎体压缩骨折。")) == "osteoporosis-fracture"


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        pytest.param(
            "L1椎体见横行带状放射性浓聚。", "osteoporosis-fracture", id="DX-8 linear band is a fracture"
        ),
        pytest.param(
            "L1椎体线状放射性浓聚，骨折可能。",
            "fracture-imaging-recommended",
            id="DX-8 hedged: CT/MRI (FX-6)",
        ),
        pytest.param(
            "L1椎体见带状放射性浓聚可能。",
            "fracture-imaging-recommended",
            id="DX-8 hedged band itself (FX-6)",
        ),
    ],
)
def test_dx8_bone_scan_linear_uptake_band(text: str, topic: str) -> None:
    scan = report(text, code_text="全身骨显像")
    assert topic in card_topics(evaluate_resources([WOMAN_68, scan]).response)


def test_dx8_a_normal_bone_scan_is_nothing() -> None:
    scan = report("全身骨显像未见明显异常。", code_text="全身骨显像")
    assert _diagnosis(WOMAN_68, scan) is None


# --- second review ----------------------------------------------------------------------------------


def test_dxa1_one_exam_over_two_days_is_one_exam() -> None:
    spine = t_score(-2.8, when="2024-01-10T15:50:00Z")  # 23:50 in Shanghai
    hip = t_score(-1.5, loinc="38264-8", when="2024-01-10T16:10:00Z")  # 00:10 the next day
    assert _diagnosis(WOMAN_68, spine, hip) == "osteoporosis-bmd"
    assert _diagnosis(
        WOMAN_68, t_score(-2.8, when="2024-01-10"), t_score(-1.5, loinc="38264-8", when="2024-01-11")
    ) == ("osteoporosis-bmd")


def test_dxa1_a_repeat_exam_months_later_is_a_new_exam() -> None:
    old, new = t_score(-2.8, when="2023-01-10"), t_score(-1.5, loinc="38264-8", when="2024-01-10")
    assert _diagnosis(WOMAN_68, old, new) == "low-bone-mass"


def test_a_preliminary_imaging_report_is_listed_in_the_data_notes() -> None:
    preliminary = report("L1椎体压缩性骨折。") | {"status": "preliminary"}
    result = evaluate_resources([WOMAN_68, preliminary, t_score(-1.8, when=DAY)])
    # The full explanation lists it; the first card counts it (CONTRACT.md "Cards", issue 17).
    assert all("DiagnosticReport/dr1" in text for text in result.explanations())
    assert "Data not used: 1 — status not final or cancelled (1)" in result.response["cards"][0]["detail"]


def test_pop3_a_young_hip_fracture_leads_to_the_work_up_and_says_why() -> None:
    woman_49 = patient(gender="female", birth_date=born(49, on=DAY))
    findings = findings_of([woman_49, condition(snomed="5913000", onset=DAY)])
    [workup] = [f for f in findings if f.topic == "secondary-cause-workup"]
    assert {"DX-6", "POP-3"} <= set(workup.rules)
    assert {"young-fracture", "premenopausal-by-age"} <= set(workup.notes)
    assert "OSTEO_CDS_MENOPAUSE_AGE" in {s.name for s in workup.settings}
    assert diagnosis_of(findings) is None


def test_rec_bmd_not_when_a_bmd_is_on_record() -> None:
    xr = report("腰椎骨质疏松改变。", code_text="腰椎正侧位X线")
    response = evaluate_resources([WOMAN_68, t_score(-2.8, when="2022-01-01"), xr]).response
    assert "bmd-measurement-recommended" not in card_topics(response)


def test_dx4_qus_named_by_its_local_code_text_is_not_bmd() -> None:
    from cds_service.facts.codemap import parse_code_map
    from tests.builders import make_settings, observation

    settings = make_settings(
        code_map=parse_code_map({"peripheral-bmd": [{"system": "urn:h", "code": "QUS"}]})
    )
    qus = observation(code=("urn:h", "QUS"), value=-1.2, unit_code="{T-score}", when=DAY)
    qus["code"]["coding"][0]["display"] = "跟骨超声骨密度测定 QUS"
    findings = findings_of([WOMAN_68, qus], settings=settings)
    [card] = [f for f in findings if f.topic == "peripheral-screening-only"]
    assert "qus-not-bmd" in card.notes
    assert all(e.kind == "qus" for e in card.evidence)


def test_spine_xr_age_is_named_as_the_consensus_value() -> None:
    result = evaluate_resources([MAN_70])
    cards = result.response["cards"]
    [index] = [
        i for i, c in enumerate(cards) if c["source"]["topic"]["code"] == "spine-radiograph-recommended"
    ]
    assert (
        "`OSTEO_CDS_SPINE_XR_AGE` = 60: age for spine radiographs (REC-SPINE-XR) (the consensus's own value)"
        in result.explanations()[index]
    )
    # The card itself names only the implementation choices among its settings.
    assert "OSTEO_CDS_SPINE_XR_AGE" not in cards[index]["detail"]
    assert "implementation choice: spine imaging look-back 36 months" in cards[index]["detail"]


def test_the_qct_card_stands_whether_or_not_the_bmd_card_is_switched_off() -> None:
    # REC-QCT with a DXA on record; the BMD card (which would propose QCT itself) is off here.
    from tests.builders import make_settings, observation

    bmi = observation(loinc="39156-5", value=36.0, unit_code="kg/m2", when=DAY)
    xr = report("腰椎骨质疏松改变。", code_text="腰椎正侧位X线")
    old_dxa = t_score(-1.8, when="2020-01-01")
    settings = make_settings(disabled_cards=frozenset({"bmd-measurement-recommended"}))
    topics = card_topics(evaluate_resources([WOMAN_68, bmi, xr, old_dxa], settings=settings).response)
    assert "bmd-measurement-recommended" not in topics
    assert "qct-recommended" in topics


def test_bmd_lookback_lists_what_it_leaves_out() -> None:
    from cds_service.settings import ClinicalSettings
    from tests.builders import make_settings

    settings = make_settings(clinical=ClinicalSettings(bmd_lookback_months=24))
    old = t_score(-2.8, when="2020-01-01")
    result = evaluate_resources([MAN_70, old], settings=settings)
    response = result.response
    assert "osteoporosis-bmd" not in card_topics(response)
    assert response["cards"], "the spine card is still given"
    assert all("OSTEO_CDS_BMD_LOOKBACK_MONTHS" in text for text in result.explanations())
    assert "older than the BMD look-back (1)" in response["cards"][0]["detail"]
