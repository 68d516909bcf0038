"""Fragility fractures (CONSENSUS-RULES.md §4 FX-1…FX-8) and how they enter the diagnosis (§5 DX-2, DX-3,
DX-6), judged in the POP-1 population at the time of the fracture; QCT-1 leaves a fractured vertebra out."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from cds_service.consensus.findings import Finding
from cds_service.facts.codemap import parse_code_map
from cds_service.facts.valuesets import PROPOSED_ORDERS
from tests.builders import (
    ICD10,
    ICD10_CM,
    LOCAL,
    LOCAL_CODES,
    LOINC,
    SNOMED,
    born,
    card_topics,
    concept,
    condition,
    diagnosis_of,
    evaluate_resources,
    findings_of,
    make_settings,
    observation,
    patient,
    qct,
    t_score,
    topic_of,
    used_sources,
)

Resource = dict[str, Any]

ICD10_CN = "http://hl7.org/fhir/sid/icd-10-cn"
FRACTURE_DAY = "2026-07-10"  # within REC-CT-MRI's 6 months and FX-4's 36-month look-back (TODAY 2026-11-25)
OLD_MAN = patient(gender="male", birth_date=born(70, on=FRACTURE_DAY))  # POP-1 without any assumption
GENANT_CODE = (LOCAL, "GENANT")
# LOCAL_MAP of tests/builders.py has no genant-grade concept: the same hospital's map with it.
SETTINGS = make_settings(
    code_map=parse_code_map(
        {
            **{name: [{"system": LOCAL, "code": code}] for name, code in LOCAL_CODES.items()},
            "genant-grade": [{"system": LOCAL, "code": GENANT_CODE[1]}],
        }
    )
)
XR_SPINE = "24984-7"  # XR Thoracic and lumbar spine 2 Views
CT_LUMBAR, MR_LUMBAR, CT_THORACIC, MR_THORACIC = "24963-1", "24968-0", "24978-9", "24980-5"

_report_ids = itertools.count(1)


def diagnostic_report(
    conclusion: str | None = None,
    *,
    loinc: str | None = XR_SPINE,
    text: str | None = None,
    category: str | None = None,
    when: str = FRACTURE_DAY,
    conclusion_codes: tuple[tuple[str, str], ...] = (),
    status: str = "final",
    id: str | None = None,
    **extra: Any,
) -> Resource:
    """An imaging DiagnosticReport: code (LOINC and/or text), v2-0074 category, conclusion text/codes."""
    resource: Resource = {
        "resourceType": "DiagnosticReport",
        "id": id or f"dr{next(_report_ids)}",
        "status": status,
        "code": concept((LOINC, loinc) if loinc else None, text) if (loinc or text) else {"text": ""},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
    }
    if category is not None:
        resource["category"] = [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": category}]}
        ]
    if conclusion is not None:
        resource["conclusion"] = conclusion
    if conclusion_codes:
        resource["conclusionCode"] = [concept(code) for code in conclusion_codes]
    resource.update(extra)
    return resource


def genant(grade: int, vertebra: str = "L1", **kwargs: Any) -> Resource:
    """A Genant grade Observation under the local code, the vertebra in bodySite (CONTRACT.md)."""
    return observation(code=GENANT_CODE, valueInteger=grade, body_site=vertebra, when=FRACTURE_DAY, **kwargs)


def _findings(*resources: Resource, who: Resource = OLD_MAN) -> list[Finding]:
    return findings_of([who, *resources], settings=SETTINGS)


def _topics(findings: list[Finding]) -> list[str]:
    return [f.topic for f in findings]


def _finding(findings: list[Finding], topic: str) -> Finding:
    [found] = [f for f in findings if f.topic == topic]
    return found


def _fracture_rows(finding: Finding) -> list[Any]:
    return [e for e in finding.evidence if e.kind == "fracture"]


# --- FX-1 / FX-1a: usual sites, mechanism not recorded ----------------------------------------------


@pytest.mark.parametrize(
    ("resource", "site"),
    [
        pytest.param(
            condition(snomed="42942008", id="fx"), "vertebra", id="FX-1a vertebral Condition counts"
        ),
        pytest.param(condition(snomed="5913000", id="fx"), "hip", id="FX-1a hip Condition counts"),
        pytest.param(
            condition(snomed="263199001", id="fx"), "distal-radius", id="FX-1a distal radius Condition counts"
        ),
        pytest.param(
            condition(snomed="263102004", id="fx"), "distal-radius", id="FX-1a wrist Condition counts"
        ),
        pytest.param(
            condition(icd="S42.20", id="fx"), "proximal-humerus", id="FX-1a proximal humerus Condition counts"
        ),
        pytest.param(diagnostic_report("L1椎体压缩骨折", id="fx"), "vertebra", id="FX-1a report L1 vertebra"),
        pytest.param(diagnostic_report("右股骨颈骨折", id="fx"), "hip", id="FX-1a report femoral neck (hip)"),
        pytest.param(
            diagnostic_report("左股骨粗隆间骨折", id="fx"), "hip", id="FX-1a report intertrochanteric (hip)"
        ),
        pytest.param(
            diagnostic_report("右侧桡骨远端骨折", id="fx"), "distal-radius", id="FX-1a report distal radius"
        ),
        pytest.param(diagnostic_report("右侧Colles骨折", id="fx"), "distal-radius", id="FX-1a report Colles"),
        pytest.param(diagnostic_report("左腕部骨折", id="fx"), "distal-radius", id="FX-1a report wrist"),
        pytest.param(
            diagnostic_report("左肱骨近端骨折", id="fx"),
            "proximal-humerus",
            id="FX-1a report proximal humerus",
        ),
    ],
)
def test_fx1a_usual_site_with_no_trauma_recorded_is_a_fragility_fracture(
    resource: Resource, site: str
) -> None:
    dx = diagnosis_of(_findings(resource))
    assert dx is not None
    assert dx.topic == "osteoporosis-fracture"
    assert {"FX-1", "FX-1a", "FX-2", "DX-3"} <= set(dx.rules)
    assert "mechanism-assumed" in dx.notes  # the card says the mechanism was assumed
    assert "fx-criteria" in dx.notes  # FX-1: the three criteria for the clinician to confirm
    [row] = _fracture_rows(dx)
    assert row.used
    assert row.source.endswith("/fx")
    assert (row.region or "").split(" ")[0] == site


@pytest.mark.parametrize(
    ("text", "site"),
    [
        pytest.param("L1椎体机能不全性骨折", "vertebra", id="FX-1 insufficiency fracture of L1 counts"),
        pytest.param("骶骨机能不全性骨折", "pelvis", id="FX-1 sacral insufficiency fracture counts"),
        pytest.param("Sacral insufficiency fracture.", "pelvis", id="FX-1 English sacral insufficiency"),
        pytest.param("L2椎体骨质疏松性压缩骨折", "vertebra", id="FX-1 osteoporotic compression fracture"),
    ],
)
def test_fx1_insufficiency_fracture_names_its_own_mechanism(text: str, site: str) -> None:
    # FX-1: insufficiency fractures (机能不全性骨折) count; the word states the low-energy mechanism, so
    # nothing is assumed (FX-1a) even at a site that is not one of the usual four.
    dx = diagnosis_of(_findings(diagnostic_report(text, id="fx")))
    assert dx is not None
    assert dx.topic == "osteoporosis-fracture"
    assert {"FX-1", "FX-2", "DX-3"} <= set(dx.rules)
    assert "FX-1a" not in dx.rules
    assert "mechanism-assumed" not in dx.notes
    [row] = _fracture_rows(dx)
    assert (row.region or "").split(" ")[0] == site


@pytest.mark.parametrize(
    "resource",
    [
        pytest.param(condition(snomed="58150001"), id="FX-1a clavicle Condition not counted"),
        pytest.param(condition(snomed="16114001"), id="FX-1a ankle Condition not counted"),
        pytest.param(condition(snomed="33737001"), id="FX-1a rib Condition not counted"),
        pytest.param(diagnostic_report("左侧锁骨骨折"), id="FX-1a report clavicle not counted"),
        pytest.param(diagnostic_report("右踝骨折"), id="FX-1a report ankle not counted"),
        pytest.param(diagnostic_report("右侧第5肋骨骨折"), id="FX-1a report rib not counted"),
        pytest.param(diagnostic_report("左侧耻骨支骨折"), id="FX-1a report pubic ramus not counted"),
    ],
)
def test_fx1a_other_site_with_no_mechanism_is_not_counted(resource: Resource) -> None:
    findings = _findings(resource)
    assert diagnosis_of(findings) is None
    assert not {"secondary-cause-workup", "fracture-imaging-recommended"} & set(_topics(findings))


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("平地跌倒后右踝骨折", id="FX-1 fall from standing, ankle: counted"),
        pytest.param("跌倒后左侧锁骨骨折", id="FX-1 fall, clavicle: counted"),
    ],
)
def test_fx1_minor_trauma_stated_counts_at_any_site(text: str) -> None:
    dx = diagnosis_of(_findings(diagnostic_report(text)))
    assert dx is not None and dx.topic == "osteoporosis-fracture"
    assert "FX-1a" not in dx.rules  # the mechanism was stated, not assumed
    assert "mechanism-assumed" not in dx.notes


# --- FX-2, DX-2, DX-3: the fracture and the BMD ----------------------------------------------------


HIP_FRACTURE = condition(snomed="5913000", onset=FRACTURE_DAY, id="hipfx")


@pytest.mark.parametrize(
    ("bmd", "topic", "rule"),
    [
        pytest.param(None, "osteoporosis-fracture", "DX-3", id="DX-3 fragility fracture, no BMD"),
        pytest.param(
            t_score(0.3), "osteoporosis-fracture", "DX-3", id="FX-2 fragility fracture, T=+0.3 (normal)"
        ),
        pytest.param(t_score(-1.0), "osteoporosis-fracture", "DX-3", id="FX-2 fragility fracture, T=-1.0"),
        pytest.param(t_score(-2.4), "osteoporosis-fracture", "DX-3", id="DX-3 fragility fracture, T=-2.4"),
        pytest.param(t_score(-2.5), "severe-osteoporosis", "DX-2", id="DX-2 fragility fracture, T=-2.5"),
        pytest.param(t_score(-3.2), "severe-osteoporosis", "DX-2", id="DX-2 fragility fracture, T=-3.2"),
        pytest.param(qct(80.0), "osteoporosis-fracture", "DX-3", id="DX-3 fragility fracture, QCT 80.0"),
        pytest.param(qct(79.9), "severe-osteoporosis", "DX-2", id="DX-2 fragility fracture, QCT 79.9"),
    ],
)
def test_fx2_fragility_fracture_diagnoses_osteoporosis_whatever_the_bmd(
    bmd: Resource | None, topic: str, rule: str
) -> None:
    dx = diagnosis_of(_findings(HIP_FRACTURE, *([bmd] if bmd else [])))
    assert dx is not None
    assert dx.topic == topic
    assert {"FX-1", "FX-2", rule} <= set(dx.rules)
    assert ({"DX-2", "DX-3"} - {rule}).isdisjoint(dx.rules)
    assert "Condition/hipfx" in used_sources(dx)
    if bmd is not None:
        assert f"Observation/{bmd['id']}" in {e.source for e in dx.evidence}
    if topic == "severe-osteoporosis":
        assert dx.indicator == "critical"
        assert bmd is not None and dx.params["value"] == pytest.approx(bmd["valueQuantity"]["value"])


def test_dx2_severe_osteoporosis_card_is_critical_and_cites_its_rules() -> None:
    cards = evaluate_resources([OLD_MAN, HIP_FRACTURE, t_score(-2.8)], settings=SETTINGS).response["cards"]
    card = cards[0]
    assert topic_of(card) == "severe-osteoporosis"
    assert card["indicator"] == "critical"
    for rule in ("DX-2", "FX-1", "FX-2", "DXA-3"):
        assert rule in card["detail"]


# --- FX-5: high-energy trauma ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("车祸后L1椎体骨折", id="FX-5 traffic accident (车祸) not fragility"),
        pytest.param("高处坠落致L1椎体爆裂骨折", id="FX-5 fall from height (高处坠落) not fragility"),
        pytest.param("L1 burst fracture after a motor vehicle accident", id="FX-5 motor vehicle accident"),
        pytest.param("L1 compression fracture after a fall from height", id="FX-5 fall from height (en)"),
    ],
)
def test_fx5_high_energy_fracture_is_not_fragility(text: str) -> None:
    findings = _findings(diagnostic_report(text), t_score(-1.5))
    dx = diagnosis_of(findings)
    assert dx is not None and dx.topic == "low-bone-mass"  # the BMD alone decides
    assert not {"FX-1", "FX-2"} & set(dx.rules)
    assert "fracture-imaging-recommended" not in _topics(findings)


# --- FX-6: imaging evidence, Condition status, negation and certainty -------------------------------


@pytest.mark.parametrize(
    ("clinical", "verification", "counts"),
    [
        pytest.param("active", None, True, id="FX-6 active fracture Condition counts"),
        pytest.param("resolved", None, True, id="FX-6 resolved fracture Condition still counts (history)"),
        pytest.param("inactive", None, True, id="FX-6 inactive fracture Condition still counts (history)"),
        pytest.param("active", "confirmed", True, id="FX-6 confirmed fracture Condition counts"),
        pytest.param(
            "active", "entered-in-error", False, id="FX-6 entered-in-error Condition does not count"
        ),
        pytest.param("resolved", "refuted", False, id="FX-6 refuted Condition does not count"),
    ],
)
def test_fx6_fracture_condition_status(clinical: str, verification: str | None, counts: bool) -> None:
    fracture = condition(snomed="5913000", clinical=clinical, verification=verification, id="fx")
    dx = diagnosis_of(_findings(fracture))
    if counts:
        assert dx is not None and dx.topic == "osteoporosis-fracture"
        assert "FX-6" in dx.rules
        assert "fracture-condition-trusted" in dx.notes  # FX-6: coded Conditions trusted as imaging-proven
    else:
        assert dx is None
        skipped = evaluate_resources([OLD_MAN, fracture], settings=SETTINGS).skipped
        assert skipped["verification"] == 1  # listed in the Data notes, not silently dropped


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("未见骨折", id="FX-6 未见骨折 is not a fracture"),
        pytest.param("无压缩骨折", id="FX-6 无压缩骨折 is not a fracture"),
        pytest.param("胸腰椎未见明确骨折征象", id="FX-6 未见明确骨折征象 is not a fracture"),
        pytest.param("No fracture.", id="FX-6 'No fracture' is not a fracture"),
        pytest.param("No acute fracture.", id="FX-6 'No acute fracture' is not a fracture"),
    ],
)
def test_fx6_negated_mention_is_no_fracture(text: str) -> None:
    findings = _findings(diagnostic_report(text))
    assert diagnosis_of(findings) is None
    assert not {"fracture-imaging-recommended", "vertebral-fracture-ecf-check"} & set(_topics(findings))


@pytest.mark.parametrize(
    ("text", "orders"),
    [
        pytest.param("L1椎体压缩骨折可能", {CT_LUMBAR, MR_LUMBAR}, id="FX-6 可能 is not proof"),
        pytest.param("可疑L1椎体骨折", {CT_LUMBAR, MR_LUMBAR}, id="FX-6 可疑 is not proof"),
        pytest.param("L1椎体压缩骨折不除外", {CT_LUMBAR, MR_LUMBAR}, id="FX-6 不除外 is not proof"),
        pytest.param("L1椎体压缩骨折待排", {CT_LUMBAR, MR_LUMBAR}, id="FX-6 待排 is not proof"),
        pytest.param(
            "suspicious for L1 compression fracture", {CT_LUMBAR, MR_LUMBAR}, id="FX-6 'suspicious for'"
        ),
        pytest.param(
            "cannot exclude L1 compression fracture", {CT_LUMBAR, MR_LUMBAR}, id="FX-6 'cannot exclude'"
        ),
        pytest.param("possible L1 compression fracture", {CT_LUMBAR, MR_LUMBAR}, id="FX-6 'possible'"),
        pytest.param(
            "T12椎体压缩骨折可能", {CT_THORACIC, MR_THORACIC}, id="FX-6 thoracic level gets thoracic CT/MR"
        ),
    ],
)
def test_fx6_uncertain_fracture_recommends_ct_mri_and_gives_no_diagnosis(text: str, orders: set[str]) -> None:
    findings = _findings(diagnostic_report(text, id="dr"))
    assert diagnosis_of(findings) is None
    card = _finding(findings, "fracture-imaging-recommended")
    assert {"REC-CT-MRI", "FX-6"} <= set(card.rules)
    assert "fracture-uncertain" in card.notes
    assert {PROPOSED_ORDERS[o.kind].loinc for o in card.orders} == orders
    assert {e.source for e in card.evidence} == {"DiagnosticReport/dr"}


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("符合L1椎体压缩骨折", id="FX-6 符合 counts"),
        pytest.param("可见L1椎体压缩骨折", id="FX-6 可见 counts"),
        pytest.param("考虑L1椎体压缩骨折", id="FX-6 考虑 (the usual impression wording) counts"),
    ],
)
def test_fx6_certain_wording_counts(text: str) -> None:
    findings = _findings(diagnostic_report(text))
    dx = diagnosis_of(findings)
    assert dx is not None and dx.topic == "osteoporosis-fracture"
    assert "fracture-imaging-recommended" not in _topics(findings)


def test_fx6_uncertain_fracture_confirmed_later_needs_no_more_imaging() -> None:
    findings = _findings(
        diagnostic_report("L1椎体压缩骨折可能", when="2026-07-10"),
        diagnostic_report("MRI：L1椎体压缩骨折", when="2026-07-20"),
    )
    assert diagnosis_of(findings) is not None
    assert "fracture-imaging-recommended" not in _topics(findings)


@pytest.mark.parametrize(
    ("text", "when", "topic", "setting"),
    [
        # REC-CT-MRI: due only while the doubtful report is recent, OSTEO_CDS_DOUBTFUL_FRACTURE_MONTHS (6, a
        # choice); it was the 36-month spine-imaging look-back before issue 13.
        pytest.param(
            "L1椎体压缩骨折可能",
            "2026-05-25",
            "fracture-imaging-recommended",
            ("OSTEO_CDS_DOUBTFUL_FRACTURE_MONTHS", "6"),
            id="REC-CT-MRI 6 months ago (boundary): card",
        ),
        pytest.param(
            "L1椎体压缩骨折可能",
            "2026-04-25",
            None,
            None,
            id="REC-CT-MRI 7 months ago: no card (doubtful-fracture window)",
        ),
        pytest.param(
            "L1椎体Genant 2度压缩骨折",
            "2023-11-25",
            "vertebral-fracture-ecf-check",
            ("OSTEO_CDS_SPINE_IMAGING_LOOKBACK_MONTHS", "36"),
            id="FX-4 36 months ago: check",
        ),
        pytest.param(
            "L1椎体Genant 2度压缩骨折",
            "2023-10-25",
            None,
            None,
            id="FX-4 37 months ago: no check (look-back)",
        ),
    ],
)
def test_imaging_follow_up_only_for_recent_reports(
    text: str, when: str, topic: str | None, setting: tuple[str, str] | None
) -> None:
    findings = _findings(diagnostic_report(text, when=when))
    follow_up = {"fracture-imaging-recommended", "vertebral-fracture-ecf-check"} & set(_topics(findings))
    assert follow_up == ({topic} if topic else set())
    if topic and setting:
        settings = {s.name: s.value for s in _finding(findings, topic).settings}
        assert settings[setting[0]] == setting[1]


# --- FX-8: pathological fractures --------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("L2椎体病理性骨折，考虑转移", id="FX-8 病理性骨折 with metastasis"),
        pytest.param("T12椎体压缩骨折，骨髓瘤可能", id="FX-8 possible myeloma at the fracture"),
        pytest.param("L1椎体骨质破坏伴病理性骨折", id="FX-8 bone destruction at the fracture"),
    ],
)
def test_fx8_pathological_fracture_is_not_fragility_and_recommends_ct_mri(text: str) -> None:
    findings = _findings(diagnostic_report(text))
    assert diagnosis_of(findings) is None
    card = _finding(findings, "fracture-imaging-recommended")
    assert {"REC-CT-MRI", "FX-8"} <= set(card.rules)
    assert "fracture-possibly-pathological" in card.notes
    assert card.orders  # a vertebral level: CT and MR of the region are proposed


# --- FX-3 / FX-4: Genant grade and endplate/cortex fracture ------------------------------------------


@pytest.mark.parametrize(
    ("resource", "counted", "ecf_check"),
    [
        pytest.param(
            diagnostic_report("L1椎体楔形变，Genant 1度，终板完整"),
            False,
            False,
            id="FX-4 Genant 1 with ECF absent (终板完整) is a deformity",
        ),
        pytest.param(
            diagnostic_report("L1椎体Genant 1度压缩骨折，终板完整"),
            False,
            False,
            id="FX-4 Genant 1 fracture word but ECF absent is a deformity",
        ),
        pytest.param(
            diagnostic_report("L1椎体楔形变，Genant 1度"),
            True,
            True,
            id="FX-3 Genant 1 with ECF not stated counted and checked",
        ),
        pytest.param(
            diagnostic_report("L1椎体Genant 2度压缩骨折"),
            True,
            True,
            id="FX-3 Genant 2度 with ECF not stated counted and checked",
        ),
        pytest.param(
            diagnostic_report("L1椎体Genant Ⅱ度压缩骨折"),
            True,
            True,
            id="FX-3 Genant Ⅱ度 (Roman numeral) counted and checked",
        ),
        pytest.param(
            diagnostic_report("L1 grade 2 compression fracture"), True, True, id="FX-3 'grade 2' counted"
        ),
        pytest.param(
            diagnostic_report("L1椎体Genant 2度压缩骨折，终板骨折"),
            True,
            False,
            id="FX-4 Genant 2 with ECF present counted, no check",
        ),
        pytest.param(genant(0), False, False, id="FX-3 Genant observation grade 0 is normal"),
        pytest.param(genant(1), True, True, id="FX-3 Genant observation grade 1 counted and checked"),
        pytest.param(genant(2), True, True, id="FX-3 Genant observation grade 2 counted and checked"),
        pytest.param(genant(3), True, True, id="FX-3 Genant observation grade 3 counted and checked"),
        pytest.param(
            diagnostic_report("L1椎体Genant 2度"),
            True,
            True,
            id="FX-3 bare 'L1椎体Genant 2度' counted and checked",
        ),
    ],
)
def test_fx3_fx4_genant_grade_and_ecf(resource: Resource, counted: bool, ecf_check: bool) -> None:
    findings = _findings(resource)
    dx = diagnosis_of(findings)
    if counted:
        assert dx is not None and dx.topic == "osteoporosis-fracture"
        assert {"FX-3", "FX-4"} <= set(dx.rules)
        assert "genant-visual-error" in dx.notes  # visual grading has error: the card says so
        [row] = _fracture_rows(dx)
        assert row.unit == "Genant" and row.value is not None and row.value >= 1
    else:
        assert dx is None
    assert ("vertebral-fracture-ecf-check" in _topics(findings)) is ecf_check
    if ecf_check:
        check = _finding(findings, "vertebral-fracture-ecf-check")
        assert {"FX-3", "FX-4"} <= set(check.rules)
        assert not check.orders


@pytest.mark.parametrize(
    ("resource", "higher_risk"),
    [
        pytest.param(diagnostic_report("L1椎体压缩骨折"), False, id="FX-4 one vertebra: no higher-risk note"),
        pytest.param(diagnostic_report("L1、L2椎体压缩骨折"), True, id="FX-4 two vertebrae: higher risk"),
        pytest.param(genant(3), True, id="FX-4 Genant 3 (severe): higher risk"),
        pytest.param(genant(2), False, id="FX-4 Genant 2 single: no higher-risk note"),
    ],
)
def test_fx4_severe_or_multiple_vertebral_fractures_mean_higher_risk(
    resource: Resource, higher_risk: bool
) -> None:
    dx = diagnosis_of(_findings(resource))
    assert dx is not None
    assert ("multiple-vertebral-higher-risk" in dx.notes) is higher_risk


# --- FX-7: marrow oedema -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "note"),
    [
        pytest.param("MRI：L1椎体压缩骨折，骨髓水肿", "acuity-new", id="FX-7 marrow oedema: new fracture"),
        pytest.param("L1椎体陈旧性压缩骨折", "acuity-old", id="FX-7 陈旧性: old fracture"),
        pytest.param("L1椎体压缩骨折", None, id="FX-7 acuity not stated: no note"),
    ],
)
def test_fx7_marrow_oedema_tells_new_from_old(text: str, note: str | None) -> None:
    dx = diagnosis_of(_findings(diagnostic_report(text)))
    assert dx is not None and dx.topic == "osteoporosis-fracture"
    acuity = {n for n in dx.notes if n.startswith("acuity-")}
    assert acuity == ({note} if note else set())
    assert ("FX-7" in dx.rules) is (note is not None)


# --- POP-1 at the time of the fracture (FX-1a, DX-6) -------------------------------------------------

OLD_FRACTURE = "2015-03-01"  # years ago: the age then, not today, decides


def _at_fracture(sex: str, age: int, days_later: int = 0) -> Resource:
    return patient(gender=sex, birth_date=born(age, on=OLD_FRACTURE, days_later=days_later))


@pytest.mark.parametrize(
    ("who", "resources", "topic", "workup"),
    [
        pytest.param(
            _at_fracture("female", 45),
            [condition(snomed="5913000", onset=OLD_FRACTURE)],
            None,
            True,
            id="DX-6 woman 45 (no menopause) hip, no mechanism: work-up, no label",
        ),
        pytest.param(
            _at_fracture("female", 45),
            [diagnostic_report("无明显外伤，右股骨颈骨折", when=OLD_FRACTURE)],
            None,
            True,
            id="DX-6 woman 45 hip with no trauma stated: work-up, no label",
        ),
        pytest.param(
            _at_fracture("female", 45),
            [condition(snomed="58150001", onset=OLD_FRACTURE)],
            None,
            False,
            id="DX-6 woman 45 clavicle, no mechanism (not a usual site): no work-up",
        ),
        pytest.param(
            _at_fracture("female", 45),
            [diagnostic_report("车祸致右股骨颈骨折", when=OLD_FRACTURE)],
            None,
            False,
            id="DX-6 woman 45 hip from a traffic accident (FX-5): no work-up",
        ),
        pytest.param(
            _at_fracture("female", 45),
            [diagnostic_report("L1椎体压缩骨折", when=OLD_FRACTURE)],
            None,
            True,
            id="DX-6 woman 45 vertebral fracture: work-up, no label",
        ),
        pytest.param(
            _at_fracture("female", 45),
            [condition(icd=(ICD10_CM, "M80.08XA"), onset=OLD_FRACTURE)],
            None,
            True,
            id="DX-6 woman 45 coded osteoporotic fracture: work-up, no label",
        ),
        pytest.param(
            _at_fracture("female", 50, days_later=1),
            [condition(snomed="5913000", onset=OLD_FRACTURE)],
            None,
            True,
            id="POP-4 woman a day short of 50 at the hip fracture: work-up, no label",
        ),
        pytest.param(
            _at_fracture("female", 50),
            [condition(snomed="5913000", onset=OLD_FRACTURE)],
            "osteoporosis-fracture",
            False,
            id="POP-4 woman 50 at the hip fracture, assumed postmenopausal: counts",
        ),
        pytest.param(
            _at_fracture("female", 45),
            [
                condition(snomed="76498008", onset="2014-01-01"),
                condition(snomed="5913000", onset=OLD_FRACTURE),
            ],
            "osteoporosis-fracture",
            False,
            id="POP-1 woman 45 with menopause recorded before the hip fracture: counts",
        ),
        pytest.param(
            _at_fracture("male", 50, days_later=1),
            [condition(snomed="5913000", onset=OLD_FRACTURE)],
            None,
            True,
            id="DX-6 man 49 hip, no mechanism: work-up, no label",
        ),
        pytest.param(
            _at_fracture("male", 49),
            [diagnostic_report("L1椎体压缩骨折", when=OLD_FRACTURE)],
            None,
            True,
            id="DX-6 man 49 vertebral fracture: work-up, no label",
        ),
        pytest.param(
            _at_fracture("male", 50),
            [condition(snomed="5913000", onset=OLD_FRACTURE)],
            "osteoporosis-fracture",
            False,
            id="POP-1 man 50 at the hip fracture: counts",
        ),
    ],
)
def test_pop1_population_at_the_time_of_the_fracture(
    who: Resource, resources: list[Resource], topic: str | None, workup: bool, request: pytest.FixtureRequest
) -> None:
    findings = _findings(*resources, who=who)
    dx = diagnosis_of(findings)
    assert (dx.topic if dx else None) == topic
    assert ("secondary-cause-workup" in _topics(findings)) is workup
    if workup:
        card = _finding(findings, "secondary-cause-workup")
        assert {"DX-6", "POP-3"} <= set(card.rules)
        assert any(e.kind == "fracture" for e in card.evidence)
    if dx is not None:
        # POP-4: the card says when menopause was assumed at the fracture, and names the setting.
        assumed = "assumed" in request.node.callspec.id
        assert ("assumed-postmenopausal-at-fracture" in dx.notes) is assumed
        settings = {s.name: s.value for s in dx.settings}
        assert (settings.get("OSTEO_CDS_MENOPAUSE_AGE") == "50") is assumed


# --- FX-6 coded fractures: ICD-10 by prefix ----------------------------------------------------------


@pytest.mark.parametrize(
    ("coding", "site", "osteoporotic"),
    [
        pytest.param((ICD10, "S72.0"), "hip", False, id="FX-6 WHO ICD-10 S72.0 is a hip fracture"),
        pytest.param((ICD10_CM, "S72.001A"), "hip", False, id="FX-6 ICD-10-CM S72.001A is a hip fracture"),
        pytest.param((ICD10_CM, "s72.001a"), "hip", False, id="FX-6 ICD-10-CM lower case s72.001a"),
        pytest.param((ICD10, "S72.000x001"), "hip", False, id="FX-6 Chinese extension S72.000x001 is hip"),
        pytest.param((ICD10_CM, "S22.000A"), "vertebra", False, id="FX-6 ICD-10-CM S22.000A is vertebral"),
        pytest.param((ICD10, "S32.0"), "vertebra", False, id="FX-6 WHO ICD-10 S32.0 is vertebral"),
        pytest.param((ICD10, "S52.50"), "distal-radius", False, id="FX-6 WHO ICD-10 S52.50 is distal radius"),
        pytest.param(
            (ICD10_CM, "M80.08XA"), "vertebra", True, id="FX-6 ICD-10-CM M80.08XA osteoporotic vertebra"
        ),
        pytest.param((ICD10, "M80.08XA"), "vertebra", True, id="FX-6 icd-10 system M80.08XA osteoporotic"),
        pytest.param((ICD10, "M80.08"), "vertebra", True, id="FX-6 WHO ICD-10 M80.08 osteoporotic"),
        pytest.param(
            (ICD10, "M80.000"), "unspecified", True, id="FX-6 Chinese M80.000 osteoporotic fracture"
        ),
        pytest.param((ICD10_CN, "M80.000"), "unspecified", True, id="FX-6 icd-10-cn system M80.000"),
    ],
)
def test_fx6_icd10_fracture_codes_by_prefix(coding: tuple[str, str], site: str, osteoporotic: bool) -> None:
    dx = diagnosis_of(_findings(condition(code=coding, onset=FRACTURE_DAY)))
    assert dx is not None and dx.topic == "osteoporosis-fracture"
    [row] = _fracture_rows(dx)
    assert (row.region or "").split(" ")[0] == site
    # An osteoporotic fracture code (M80) is low-trauma by definition: no mechanism is assumed, and it records
    # osteoporosis, so no Condition is suggested (CONTRACT.md common sense).
    assert ("FX-1a" in dx.rules) is not osteoporotic
    assert dx.suggest_condition is not osteoporotic


@pytest.mark.parametrize(
    "coding",
    [
        pytest.param((ICD10, "S82.6"), id="FX-1a WHO ICD-10 S82.6 (ankle) not counted"),
        pytest.param((ICD10_CM, "S42.001A"), id="FX-1a ICD-10-CM S42.001A (clavicle) not counted"),
    ],
)
def test_fx1a_icd10_fracture_at_other_site_not_counted(coding: tuple[str, str]) -> None:
    assert diagnosis_of(_findings(condition(code=coding, onset=FRACTURE_DAY))) is None


def test_fx6_conclusion_code_of_a_report_is_imaging_evidence() -> None:
    report = diagnostic_report("见诊断", conclusion_codes=((SNOMED, "5913000"),), id="dr")
    dx = diagnosis_of(_findings(report))
    assert dx is not None and dx.topic == "osteoporosis-fracture"
    assert "DiagnosticReport/dr" in used_sources(dx)


# --- QCT-1: a fractured vertebra is left out of the mean ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "topic", "mean", "used"),
    [
        pytest.param(
            "L1椎体压缩骨折",
            "severe-osteoporosis",
            72.0,
            {"q2", "q3"},
            id="QCT-1 fractured L1 left out: mean of L2+L3 72.0, severe with the fracture",
        ),
        pytest.param(
            "L1椎体压缩骨折可能",
            "low-bone-mass",
            100.0,
            {"q1", "q2"},
            id="QCT-1 uncertain L1 fracture not left out: mean of L1+L2 100.0",
        ),
        pytest.param(None, "low-bone-mass", 100.0, {"q1", "q2"}, id="QCT-1 no fracture: mean of L1+L2 100.0"),
    ],
)
def test_qct1_fractured_vertebra_left_out_of_the_mean(
    text: str | None, topic: str, mean: float, used: set[str]
) -> None:
    # A compressed vertebra reads falsely dense: L1 130 would lift the mean out of the osteoporosis range.
    vertebrae = [
        qct(130.0, vertebra="L1", id="q1"),
        qct(70.0, vertebra="L2", id="q2"),
        qct(74.0, vertebra="L3", id="q3"),
    ]
    reports = [diagnostic_report(text, when="2023-12-01")] if text else []
    dx = diagnosis_of(_findings(*vertebrae, *reports))
    assert dx is not None
    assert dx.topic == topic
    qct_rows = {e.source.removeprefix("Observation/") for e in dx.evidence if e.kind == "qct-vbmd" and e.used}
    assert qct_rows == used
    assert dx.params["value"] == pytest.approx(mean)
    assert ("qct-fractured-left-out" in dx.notes) is (topic == "severe-osteoporosis")
    assert "QCT-1" in dx.rules


def test_fracture_cards_end_to_end() -> None:
    response = evaluate_resources(
        [OLD_MAN, diagnostic_report("L1椎体Genant 2度压缩骨折")], settings=SETTINGS
    ).response
    topics = card_topics(response)
    assert topics[0] == "osteoporosis-fracture"
    assert "vertebral-fracture-ecf-check" in topics


# --- FX-4: a diagnosis resting only on an unchecked Genant grade 1 vertebra is provisional (issue 17) ------


@pytest.mark.parametrize(
    ("resources", "topic", "note", "suggests"),
    [
        pytest.param(
            [genant(1, "T8")],
            "osteoporosis-fracture",
            "diagnosis-provisional-ecf",
            False,
            id="FX-4 Xu Fang: only a Genant 1 T8, ECF not described: provisional, no Condition",
        ),
        pytest.param(
            [genant(1, "T8"), diagnostic_report("T8椎体高度轻度减低，Genant 1度")],
            "osteoporosis-fracture",
            "diagnosis-provisional-ecf",
            False,
            id="FX-4 the same grade 1 on VFA and report: still provisional",
        ),
        pytest.param(
            [diagnostic_report("L1椎体Genant 1度压缩骨折，终板骨折")],
            "osteoporosis-fracture",
            None,
            True,
            id="FX-4 grade 1 with ECF present: a fracture, not provisional",
        ),
        pytest.param(
            [genant(2, "T12")],
            "osteoporosis-fracture",
            None,
            True,
            id="FX-4 grade 2, ECF not stated: not provisional",
        ),
        pytest.param(
            [genant(1, "T8"), diagnostic_report("右股骨颈骨折")],
            "osteoporosis-fracture",
            None,
            True,
            id="FX-4 grade 1 T8 and a hip fracture: the hip decides, not provisional",
        ),
        pytest.param(
            [genant(1, "T8"), t_score(-3.0, when=FRACTURE_DAY)],
            "severe-osteoporosis",
            "severity-provisional-ecf",
            True,
            id="FX-4 BMD osteoporosis + grade 1 only: severity provisional, Condition kept",
        ),
    ],
)
def test_fx4_provisional_until_the_ecf_check(
    resources: list[Resource], topic: str, note: str | None, suggests: bool
) -> None:
    findings = _findings(*resources)
    dx = diagnosis_of(findings)
    assert dx is not None and dx.topic == topic
    provisional_notes = {"diagnosis-provisional-ecf", "severity-provisional-ecf"} & set(dx.notes)
    assert provisional_notes == ({note} if note else set())
    assert dx.suggest_condition is suggests
    assert (dx.params.get("summary_variant") == "provisional") is (note == "diagnosis-provisional-ecf")
    if note:
        assert "vertebral-fracture-ecf-check" in _topics(findings)  # the check the diagnosis waits for
