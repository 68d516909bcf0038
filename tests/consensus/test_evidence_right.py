"""Issue 17 "evidence right": the mechanism read from a fracture Condition's text and notes (FX-1, FX-1a),
postmenopausal status from the codes that imply it (POP-4), one evidence row per fracture, its own date."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from cds_service.consensus.population import Basis, population_on
from tests.builders import (
    ICD10,
    ICD10_CM,
    SNOMED,
    born,
    condition,
    diagnosis_of,
    facts_of,
    findings_of,
    make_settings,
    patient,
    t_score,
)

Resource = dict[str, Any]
FRACTURE_DAY = "2025-12-03"
WOMAN_85 = patient(gender="female", birth_date=born(85, on=FRACTURE_DAY))
WOMAN_55 = patient(gender="female", birth_date=born(55, on=FRACTURE_DAY))


def _hip_fracture(text: str, **extra: Any) -> Resource:
    """A coded femoral-neck fracture (WHO ICD-10 S72.0) whose text may say how it happened."""
    return condition(icd="S72.0", text=text, onset=FRACTURE_DAY, clinical="resolved", id="fx", **extra)


def _rib_fracture(text: str, **extra: Any) -> Resource:
    """A rib fracture (SNOMED 33737001): not a usual site, so it counts only with a stated low trauma."""
    return condition(snomed="33737001", text=text, onset=FRACTURE_DAY, id="fx", **extra)


# --- FX-1 / FX-1a: the mechanism in a Condition's text and notes ---------------------------------------


@pytest.mark.parametrize(
    ("resource", "topic", "assumed"),
    [
        pytest.param(
            _hip_fracture("右股骨颈骨折（家中平地跌倒）"),
            "osteoporosis-fracture",
            False,
            id="FX-1 He Yulan: 家中平地跌倒 in the code text is minor trauma, not assumed",
        ),
        pytest.param(
            _hip_fracture("右股骨颈骨折"),
            "osteoporosis-fracture",
            True,
            id="FX-1a hip fracture text silent: mechanism assumed",
        ),
        pytest.param(
            _hip_fracture("右股骨颈骨折", note=[{"text": "患者在家中平地跌倒"}]),
            "osteoporosis-fracture",
            False,
            id="FX-1 fall on level ground stated in a note: minor trauma",
        ),
        pytest.param(
            _hip_fracture("右股骨颈骨折（车祸）"), None, False, id="FX-5 traffic accident in the code text"
        ),
        pytest.param(
            _hip_fracture("右股骨颈骨折", note=[{"text": "高处坠落伤"}]),
            None,
            False,
            id="FX-5 fall from height stated in a note",
        ),
        pytest.param(
            _rib_fracture("右侧第5肋骨骨折（平地摔倒）"),
            "osteoporosis-fracture",
            False,
            id="FX-1 minor trauma stated: a rib fracture counts",
        ),
        pytest.param(
            _rib_fracture("右侧第5肋骨骨折"), None, False, id="FX-1a rib, no mechanism: not counted"
        ),
    ],
)
def test_fx1_mechanism_from_condition_text_and_notes(
    resource: Resource, topic: str | None, assumed: bool
) -> None:
    dx = diagnosis_of(findings_of([WOMAN_85, resource]))
    assert (dx.topic if dx else None) == topic
    if dx is not None:
        assert ("mechanism-assumed" in dx.notes) is assumed
        assert ("FX-1a" in dx.rules) is assumed


# --- POP-4: codes that imply a postmenopausal woman, keyed on the code system ---------------------------

ICD10_CN = "http://hl7.org/fhir/sid/icd-10-cn"


@pytest.mark.parametrize(
    ("coding", "recorded"),
    [
        pytest.param((ICD10, "M81.0"), True, id="POP-4 WHO ICD-10 M81.0 postmenopausal osteoporosis"),
        pytest.param(
            (ICD10, "M80.0"), True, id="POP-4 WHO ICD-10 M80.0 postmenopausal osteoporosis + fracture"
        ),
        pytest.param((ICD10_CN, "M81.000"), True, id="POP-4 Chinese clinical edition M81.000 (under M81.0)"),
        pytest.param((ICD10_CM, "M81.0"), False, id="POP-4 ICD-10-CM M81.0 is age-related: implies nothing"),
        pytest.param(
            (ICD10_CM, "M80.08XA"), False, id="POP-4 ICD-10-CM M80.0 is age-related: implies nothing"
        ),
        pytest.param((ICD10, "M81.9"), False, id="POP-4 WHO ICD-10 M81.9 unspecified: implies nothing"),
        pytest.param((SNOMED, "102447009"), True, id="POP-4 SNOMED 102447009 postmenopausal osteoporosis"),
        pytest.param((SNOMED, "203453001"), True, id="POP-4 SNOMED 203453001 postmenopausal OP + fracture"),
        pytest.param((SNOMED, "64859006"), False, id="POP-4 SNOMED 64859006 osteoporosis: implies nothing"),
    ],
)
def test_pop4_codes_that_imply_postmenopause(coding: tuple[str, str], recorded: bool) -> None:
    facts = facts_of([WOMAN_55, condition(code=coding, onset="2025-01-01")])
    basis = population_on(facts, date(2025, 6, 1), make_settings().clinical).basis
    assert basis is (Basis.POSTMENOPAUSAL_RECORDED if recorded else Basis.ASSUMED_POSTMENOPAUSAL)


@pytest.mark.parametrize(
    ("who", "onset", "basis"),
    [
        pytest.param(
            WOMAN_85,
            "2025-12-10",
            Basis.POSTMENOPAUSAL_RECORDED,
            id="POP-4 He Yulan: M81.0 a week after, aged 85: recorded",
        ),
        pytest.param(
            WOMAN_85,
            "2025-11-01",
            Basis.POSTMENOPAUSAL_RECORDED,
            id="POP-4 M81.0 before the fracture: recorded",
        ),
        pytest.param(
            patient(gender="female", birth_date=born(45, on=FRACTURE_DAY)),
            "2026-06-01",
            Basis.PREMENOPAUSAL_BY_AGE,
            id="POP-4 recorded later, aged 45 at the fracture: not taken back",
        ),
    ],
)
def test_pop4_postmenopause_recorded_after_the_day(who: Resource, onset: str, basis: Basis) -> None:
    facts = facts_of([who, condition(icd="M81.0", onset=onset)])
    assert population_on(facts, date.fromisoformat(FRACTURE_DAY), make_settings().clinical).basis is basis


# --- FX-6: one fracture from two sources is one evidence row, dated by its own date ---------------------


def _report(conclusion: str, when: str, id: str, loinc: str = "38268-9") -> Resource:
    """An imaging DiagnosticReport (default: a DXA report that mentions the fracture in passing)."""
    return {
        "resourceType": "DiagnosticReport",
        "id": id,
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
        "conclusion": conclusion,
    }


@pytest.mark.parametrize(
    ("resources", "date_", "sources"),
    [
        pytest.param(
            [
                _hip_fracture("右股骨颈骨折（家中平地跌倒）"),
                _report("左股骨颈T值-3.1（右髋骨折未测）", "2025-12-08", "dxa"),
            ],
            "2025-12-03",
            ["Condition/fx", "DiagnosticReport/dxa"],
            id="FX-6 He Yulan: Condition onset 12-03, not the DXA report's 12-08; one row, both sources",
        ),
        pytest.param(
            [
                _report("L1椎体压缩性骨折", "2025-06-01", "xr1", "24984-7"),
                _report("L1椎体压缩性骨折", "2025-07-01", "xr2", "24984-7"),
            ],
            "2025-06-01",
            ["DiagnosticReport/xr1", "DiagnosticReport/xr2"],
            id="FX-6 the same L1 fracture on two radiographs: the first imaging date",
        ),
    ],
)
def test_fx6_one_row_per_fracture_with_its_own_date(
    resources: list[Resource], date_: str, sources: list[str]
) -> None:
    dx = diagnosis_of(findings_of([WOMAN_85, t_score(-3.1, when="2025-12-08"), *resources]))
    assert dx is not None
    [row] = [e for e in dx.evidence if e.kind == "fracture"]
    assert row.when == date.fromisoformat(date_)
    assert [row.source, *row.also_in] == sources
    assert dx.params["fracture_date"] == date_


def test_fx6_two_fractures_stay_two_rows() -> None:
    resources = [
        _report("L1椎体压缩性骨折", "2025-06-01", "xr1", "24984-7"),
        _hip_fracture("右股骨颈骨折"),
    ]
    dx = diagnosis_of(findings_of([WOMAN_85, *resources]))
    assert dx is not None
    rows = [e for e in dx.evidence if e.kind == "fracture"]
    assert [r.source for r in rows] == ["Condition/fx", "DiagnosticReport/xr1"]  # the latest first
    assert dx.params["fracture_date"] == FRACTURE_DAY
