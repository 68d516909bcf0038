"""FHIR R4 resources → facts (cds_service.facts.extract): the data shapes of "Data the service reads"."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cds_service.facts.codemap import parse_code_map
from cds_service.facts.model import Measure, Modality, Region, Sex
from tests.builders import (
    LOCAL,
    LOINC,
    SNOMED,
    born,
    component,
    condition,
    evaluate_resources,
    facts_of,
    local,
    observation,
    patient,
    procedure,
    qct,
    t_score,
)

P1 = patient(gender="female", birth_date="1950-03-01")


def _measurements(*resources: Any, code_map: Any = None) -> list[Any]:
    facts = (
        facts_of([P1, *resources], code_map=code_map) if code_map is not None else facts_of([P1, *resources])
    )
    return facts.measurements


def _notes(*resources: Any) -> list[tuple[str, str]]:
    return [(n.source, n.reason) for n in facts_of([P1, *resources]).notes]


def _with(resource: dict[str, Any], **elements: Any) -> dict[str, Any]:
    """The resource with elements set as given, whatever their shape."""
    return {**resource, **elements}


def _only(*resources: Any) -> Any:
    [m] = _measurements(*resources)
    return m


# --- Patient --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "sex", "birth", "deceased"),
    [
        pytest.param(
            patient(gender="female", birth_date="1950-03-01"),
            Sex.FEMALE,
            date(1950, 3, 1),
            False,
            id="patient female with birth date",
        ),
        pytest.param(
            patient(gender="male", birth_date="1950"),
            Sex.MALE,
            date(1950, 1, 1),
            False,
            id="patient partial birth date YYYY",
        ),
        pytest.param(
            patient(gender="other", birth_date=None), Sex.UNKNOWN, None, False, id="patient other sex"
        ),
        pytest.param(
            patient(deceased=True), Sex.FEMALE, date(1950, 3, 1), True, id="patient deceasedBoolean"
        ),
        pytest.param(
            patient(deceased="2020-01-01"), Sex.FEMALE, date(1950, 3, 1), True, id="patient deceasedDateTime"
        ),
        pytest.param(
            patient(deceased=False), Sex.FEMALE, date(1950, 3, 1), False, id="patient deceased false"
        ),
    ],
)
def test_patient(resource: dict[str, Any], sex: Sex, birth: date | None, deceased: bool) -> None:
    facts = facts_of([resource])
    assert (facts.sex, facts.birth_date, facts.deceased) == (sex, birth, deceased)


# --- site-specific LOINC, left and right ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("loinc", "measure", "region", "laterality"),
    [
        pytest.param("38267-1", Measure.T_SCORE, Region.LUMBAR_SPINE, None, id="LOINC 38267-1 lumbar T"),
        pytest.param("85394-5", Measure.Z_SCORE, Region.LUMBAR_SPINE, None, id="LOINC 85394-5 lumbar Z"),
        pytest.param(
            "38263-0", Measure.T_SCORE, Region.FEMORAL_NECK, None, id="LOINC 38263-0 femoral neck T"
        ),
        pytest.param(
            "80948-3", Measure.T_SCORE, Region.FEMORAL_NECK, "left", id="LOINC 80948-3 left femoral neck T"
        ),
        pytest.param(
            "80947-5", Measure.T_SCORE, Region.FEMORAL_NECK, "right", id="LOINC 80947-5 right femoral neck T"
        ),
        pytest.param("38264-8", Measure.T_SCORE, Region.TOTAL_HIP, None, id="LOINC 38264-8 total hip T"),
        pytest.param(
            "80946-7", Measure.T_SCORE, Region.TOTAL_HIP, "left", id="LOINC 80946-7 left total hip T"
        ),
        pytest.param(
            "80945-9", Measure.T_SCORE, Region.TOTAL_HIP, "right", id="LOINC 80945-9 right total hip T"
        ),
        pytest.param(
            "80938-4", Measure.Z_SCORE, Region.TOTAL_HIP, "left", id="LOINC 80938-4 left total hip Z"
        ),
        pytest.param("80944-2", Measure.T_SCORE, Region.FOREARM, "left", id="LOINC 80944-2 left forearm T"),
        pytest.param("80943-4", Measure.T_SCORE, Region.FOREARM, "right", id="LOINC 80943-4 right forearm T"),
    ],
)
def test_site_specific_loinc(loinc: str, measure: Measure, region: Region, laterality: str | None) -> None:
    unit = "{T-score}" if measure is Measure.T_SCORE else "{Z-score}"
    m = _only(observation(loinc=loinc, value=-1.7, unit_code=unit, id="o"))
    assert (m.modality, m.measure, m.region, m.laterality) == (Modality.DXA, measure, region, laterality)
    assert (m.value, m.when, m.source) == (-1.7, date(2024, 1, 10), "Observation/o")


@pytest.mark.parametrize(
    ("loinc", "value", "unit_code", "expected"),
    [
        pytest.param("24966-4", 0.812, "g/cm2", 0.812, id="LOINC 24966-4 lumbar aBMD g/cm2"),
        pytest.param(
            "24966-4", 0.812, "g/cm-2", 0.812, id="LOINC 24966-4 lumbar aBMD g/cm-2 (FHIR example typo)"
        ),
        pytest.param("24701-5", 712.0, "mg/cm2", 0.712, id="LOINC 24701-5 neck aBMD mg/cm2"),
    ],
)
def test_areal_bmd_units(loinc: str, value: float, unit_code: str, expected: float) -> None:
    m = _only(observation(loinc=loinc, value=value, unit_code=unit_code))
    assert m.measure is Measure.ABMD
    assert m.value == pytest.approx(expected)
    assert m.unit == "g/cm2"


# --- body site ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("site", "region", "laterality"),
    [
        pytest.param((SNOMED, "29627003"), Region.FEMORAL_NECK, None, id="bodySite SNOMED femoral neck"),
        pytest.param((SNOMED, "122496007"), Region.LUMBAR_SPINE, None, id="bodySite SNOMED lumbar spine"),
        pytest.param(
            "Left femoral neck", Region.FEMORAL_NECK, "left", id="bodySite text 'Left femoral neck'"
        ),
        pytest.param("Total Hip", Region.TOTAL_HIP, None, id="bodySite text 'Total Hip'"),
        pytest.param("腰椎 L1-L4", Region.LUMBAR_SPINE, None, id="bodySite text 腰椎"),
        pytest.param("股骨颈", Region.FEMORAL_NECK, None, id="bodySite text 股骨颈"),
        pytest.param("右侧全髋", Region.TOTAL_HIP, "right", id="bodySite text 右侧全髋"),
        pytest.param("1/3 Radius", Region.FOREARM, None, id="bodySite text 1/3 radius"),
    ],
)
def test_body_site_gives_the_region_of_an_unspecified_code(
    site: Any, region: Region, laterality: str | None
) -> None:
    m = _only(observation(code=local("dxa-t-unspecified"), value=-2.0, unit_code="{T-score}", body_site=site))
    assert (m.region, m.laterality) == (region, laterality)


# --- LOINC 38265-5 (codes.md caveat 1) -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("display", "site", "region"),
    [
        pytest.param(
            "DXA [T-score] Bone density",
            None,
            Region.UNSPECIFIED,
            id="38265-5 Synthea display, no body site: unspecified",
        ),
        pytest.param(None, None, Region.UNSPECIFIED, id="38265-5 no display, no body site: unspecified"),
        pytest.param(
            "DXA Radius and Ulna [T-score] Bone density",
            None,
            Region.FOREARM,
            id="38265-5 official display 'Radius and Ulna': forearm",
        ),
        pytest.param(
            "DXA [T-score] Bone density",
            (SNOMED, "14975008"),
            Region.FOREARM,
            id="38265-5 body site forearm (SNOMED): forearm",
        ),
        pytest.param(
            "DXA [T-score] Bone density",
            "Left forearm 33% radius",
            Region.FOREARM,
            id="38265-5 body site text forearm: forearm",
        ),
    ],
)
def test_loinc_38265_5_both_ways(display: str | None, site: Any, region: Region) -> None:
    m = _only(t_score(-2.6, "38265-5", display=display, body_site=site))
    assert m.region is region
    assert m.measure is Measure.T_SCORE


# --- panel Observation with components ---------------------------------------------------------------


def test_panel_observation_components_are_read() -> None:
    panel = observation(
        loinc="38268-9",  # DXA Skeletal system Views for bone density: the study, no value of its own
        components=[
            component(loinc="38267-1", value=-1.4, unit_code="{T-score}"),
            component(loinc="38263-0", value=-2.6, unit_code="{T-score}"),
            component(loinc="38264-8", value=-2.1, unit_code="{T-score}"),
            component(loinc="24966-4", value=0.85, unit_code="g/cm2"),
            component(code=("urn:vendor", "BMC"), value=55.0, unit_code="g"),  # unknown: passed over
        ],
        id="panel",
    )
    facts = facts_of([P1, panel])
    got = sorted((m.region, m.measure, m.value) for m in facts.measurements)
    assert got == sorted(
        [
            (Region.LUMBAR_SPINE, Measure.T_SCORE, -1.4),
            (Region.FEMORAL_NECK, Measure.T_SCORE, -2.6),
            (Region.TOTAL_HIP, Measure.T_SCORE, -2.1),
            (Region.LUMBAR_SPINE, Measure.ABMD, 0.85),
        ]
    )
    assert {m.source for m in facts.measurements} == {"Observation/panel"}
    assert facts.notes == []


def test_panel_component_body_site_gives_the_region() -> None:
    panel = observation(
        code=("urn:vendor", "DXA-PANEL"),
        components=[
            component(code=local("dxa-t-unspecified"), value=-1.1, unit_code="{T-score}", body_site="腰椎"),
            component(code=local("dxa-t-unspecified"), value=-2.2, unit_code="{T-score}", body_site="股骨颈"),
        ],
    )
    got = sorted((m.region, m.value) for m in _measurements(panel))
    assert got == sorted([(Region.LUMBAR_SPINE, -1.1), (Region.FEMORAL_NECK, -2.2)])


# --- score units ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "unit_code", "kept"),
    [
        pytest.param(None, "{T-score}", True, id="unit code {T-score}"),
        pytest.param(None, "1", True, id="unit code 1"),
        pytest.param("SD", None, True, id="unit text SD"),
        pytest.param("sd", None, True, id="unit text sd lower case"),
        pytest.param(None, None, True, id="no unit at all"),
        pytest.param("T-score", None, True, id="unit text T-score"),
        pytest.param(None, "{Z-score}", False, id="Z-score unit on a T-score code: not used"),
        pytest.param(None, "g/cm2", False, id="g/cm2 on a T-score code: not used"),
        pytest.param(None, "%", False, id="percent on a T-score code: not used"),
    ],
)
def test_t_score_units(unit: str | None, unit_code: str | None, kept: bool) -> None:
    obs = observation(loinc="38267-1", value=-2.0, unit=unit, unit_code=unit_code, id="o")
    facts = facts_of([P1, obs])
    assert bool(facts.measurements) is kept
    if not kept:
        assert [(n.source, n.reason) for n in facts.notes] == [("Observation/o", "unknown-unit")]


# --- times ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obs", "when"),
    [
        pytest.param(t_score(-2.0, when="2023-04-05"), date(2023, 4, 5), id="effectiveDateTime date"),
        pytest.param(
            t_score(-2.0, when="2023-04-05T23:30:00Z"),
            date(2023, 4, 6),
            id="effectiveDateTime UTC in Shanghai",
        ),
        pytest.param(
            t_score(-2.0, when="2023-04-05T08:00:00+08:00"), date(2023, 4, 5), id="effectiveDateTime +08:00"
        ),
        pytest.param(
            t_score(
                -2.0,
                when="2023-04",
            ),
            date(2023, 4, 1),
            id="effectiveDateTime YYYY-MM",
        ),
        pytest.param(
            t_score(-2.0, when="2023-04-05", period=True), date(2023, 4, 5), id="effectivePeriod start"
        ),
        pytest.param(
            t_score(-2.0, when=None, effectivePeriod={"end": "2023-04-07"}),
            date(2023, 4, 7),
            id="effectivePeriod end only",
        ),
        pytest.param(
            t_score(-2.0, when=None, issued="2023-04-08T10:00:00+08:00"), date(2023, 4, 8), id="issued"
        ),
    ],
)
def test_observation_times(obs: dict[str, Any], when: date) -> None:
    assert _only(obs).when == when


def test_observation_without_any_time_is_noted() -> None:
    assert _notes(t_score(-2.0, when=None, id="o")) == [("Observation/o", "no-date")]


# --- local codes through a CodeMap ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("concept_name", "unit_code", "modality", "measure", "region"),
    [
        pytest.param(
            "dxa-t-lumbar-spine",
            "{T-score}",
            Modality.DXA,
            Measure.T_SCORE,
            Region.LUMBAR_SPINE,
            id="local dxa-t-lumbar-spine",
        ),
        pytest.param(
            "dxa-t-femoral-neck",
            "1",
            Modality.DXA,
            Measure.T_SCORE,
            Region.FEMORAL_NECK,
            id="local dxa-t-femoral-neck",
        ),
        pytest.param(
            "dxa-z-total-hip",
            "{Z-score}",
            Modality.DXA,
            Measure.Z_SCORE,
            Region.TOTAL_HIP,
            id="local dxa-z-total-hip",
        ),
        pytest.param(
            "dxa-t-forearm",
            "{T-score}",
            Modality.DXA,
            Measure.T_SCORE,
            Region.FOREARM,
            id="local dxa-t-forearm",
        ),
        pytest.param(
            "qct-hip-t", "{T-score}", Modality.QCT, Measure.T_SCORE, Region.HIP, id="local qct-hip-t"
        ),
        pytest.param(
            "qct-lumbar-vbmd",
            "mg/cm3",
            Modality.QCT,
            Measure.VBMD,
            Region.LUMBAR_SPINE,
            id="local qct-lumbar-vbmd mean",
        ),
        pytest.param(
            "peripheral-bmd",
            "g/cm2",
            Modality.PERIPHERAL,
            Measure.ABMD,
            Region.OTHER,
            id="local peripheral-bmd areal",
        ),
        pytest.param(
            "peripheral-bmd",
            "{T-score}",
            Modality.PERIPHERAL,
            Measure.T_SCORE,
            Region.OTHER,
            id="local peripheral-bmd T-score",
        ),
        pytest.param("tbs", "1", Modality.TBS, Measure.INDEX, Region.LUMBAR_SPINE, id="local tbs"),
    ],
)
def test_local_codes_through_the_code_map(
    concept_name: str, unit_code: str, modality: Modality, measure: Measure, region: Region
) -> None:
    value = {"mg/cm3": 95.0, "g/cm2": 0.4, "1": 1.2 if concept_name == "tbs" else -1.5}.get(unit_code, -1.5)
    m = _only(observation(code=local(concept_name), value=value, unit_code=unit_code))
    assert (m.modality, m.measure, m.region) == (modality, measure, region)


def test_local_code_unknown_without_the_map() -> None:
    obs = observation(code=local("dxa-t-lumbar-spine"), value=-2.0, unit_code="{T-score}")
    assert _measurements(obs, code_map=parse_code_map({})) == []


def test_local_code_matches_system_and_code() -> None:
    other_system = observation(code=("urn:other-hospital", "DXA-T-L1L4"), value=-2.0, unit_code="{T-score}")
    assert _measurements(other_system) == []
    codemap = parse_code_map({"dxa-t-total-hip": [{"system": LOCAL, "code": "H"}, {"code": "HIP-NO-SYSTEM"}]})
    no_system = observation(code=("", "HIP-NO-SYSTEM"), value=-2.0)
    no_system["code"]["coding"][0].pop("system")
    assert [m.region for m in _measurements(no_system, code_map=codemap)] == [Region.TOTAL_HIP]


def test_qct_vertebrae_from_body_site() -> None:
    got = sorted(
        (m.region, m.vertebra, m.value)
        for m in _measurements(
            qct(80.0, vertebra="L1"),
            qct(90.0, vertebra="腰2"),
            observation(
                code=local("qct-lumbar-vbmd"), value=100.0, unit_code="mg/cm3", body_site=(SNOMED, "36470004")
            ),
            qct(85.0),  # no vertebra: the reported mean
            qct(88.0, vertebra="L1-L2"),  # a range is not one vertebra: a mean
        )
    )
    assert got == sorted(
        [
            (Region.VERTEBRA, "L1", 80.0),
            (Region.VERTEBRA, "L2", 90.0),
            (Region.VERTEBRA, "L3", 100.0),
            (Region.LUMBAR_SPINE, None, 85.0),
            (Region.LUMBAR_SPINE, None, 88.0),
        ]
    )


@pytest.mark.parametrize(
    ("value", "unit_code", "expected"),
    [
        pytest.param(0.0855, "g/cm3", 85.5, id="QCT-5 g/cm3 x1000"),
        pytest.param(85.5, "mg/mL", 85.5, id="QCT-5 mg/mL = mg/cm3"),
        pytest.param(85.5, "mg/cm3", 85.5, id="QCT-5 mg/cm3"),
    ],
)
def test_qct_units(value: float, unit_code: str, expected: float) -> None:
    m = _only(qct(value, unit_code=unit_code))
    assert m.value == pytest.approx(expected)
    assert m.unit == "mg/cm3"


# --- statuses ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "counted"),
    [
        pytest.param("final", True, id="status final counts"),
        pytest.param("amended", True, id="status amended counts"),
        pytest.param("corrected", True, id="status corrected counts"),
        pytest.param("preliminary", False, id="status preliminary: data note"),
        pytest.param("registered", False, id="status registered: data note"),
        pytest.param("entered-in-error", False, id="status entered-in-error: data note"),
        pytest.param("cancelled", False, id="status cancelled: data note"),
    ],
)
def test_observation_status(status: str, counted: bool) -> None:
    obs = t_score(-2.0, status=status, id="o")
    facts = facts_of([P1, obs])
    assert bool(facts.measurements) is counted
    assert [(n.source, n.reason, n.detail) for n in facts.notes] == (
        [] if counted else [("Observation/o", "status", status)]
    )


def test_entered_in_error_does_not_decide_but_is_listed_in_data_notes() -> None:
    result = evaluate_resources(
        [patient(gender="male", birth_date=born(70)), t_score(-3.5, status="entered-in-error"), t_score(-0.5)]
    )
    assert "normal-bmd" in result.topics
    assert result.skipped["status"] == 1


# --- plausibility -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obs", "kept"),
    [
        pytest.param(t_score(-8.0), True, id="plausibility T=-8 kept"),
        pytest.param(t_score(-8.01), False, id="plausibility T=-8.01 skipped"),
        pytest.param(t_score(6.0), True, id="plausibility T=+6 kept"),
        pytest.param(t_score(6.01), False, id="plausibility T=+6.01 skipped"),
        pytest.param(observation(loinc="85394-5", value=-8.01), False, id="plausibility Z=-8.01 skipped"),
        pytest.param(qct(400.0), True, id="plausibility vBMD 400 kept"),
        pytest.param(qct(400.1), False, id="plausibility vBMD 400.1 skipped"),
        pytest.param(qct(0.0), True, id="plausibility vBMD 0 kept"),
        pytest.param(qct(-0.1), False, id="plausibility vBMD -0.1 skipped"),
        pytest.param(qct(0.4001, unit_code="g/cm3"), False, id="plausibility vBMD 0.4001 g/cm3 skipped"),
        pytest.param(
            observation(loinc="24966-4", value=0.2, unit_code="g/cm2"), True, id="plausibility aBMD 0.2 kept"
        ),
        pytest.param(
            observation(loinc="24966-4", value=0.19, unit_code="g/cm2"),
            False,
            id="plausibility aBMD 0.19 skipped",
        ),
        pytest.param(
            observation(loinc="24966-4", value=2.0, unit_code="g/cm2"), True, id="plausibility aBMD 2.0 kept"
        ),
        pytest.param(
            observation(loinc="24966-4", value=2.01, unit_code="g/cm2"),
            False,
            id="plausibility aBMD 2.01 skipped",
        ),
        pytest.param(
            t_score(-25.0, unit_code="{T-score}"),
            False,
            id="plausibility BMD-like value under T code skipped",
        ),
    ],
)
def test_bmd_plausibility(obs: dict[str, Any], kept: bool) -> None:
    facts = facts_of([P1, obs])
    assert bool(facts.measurements) is kept
    assert [n.reason for n in facts.notes] == ([] if kept else ["implausible"])


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        pytest.param(10.0, True, id="plausibility BMI 10 kept"),
        pytest.param(9.99, False, id="plausibility BMI 9.99 skipped"),
        pytest.param(80.0, True, id="plausibility BMI 80 kept"),
        pytest.param(80.01, False, id="plausibility BMI 80.01 skipped"),
    ],
)
def test_bmi_plausibility(value: float, kept: bool) -> None:
    facts = facts_of([P1, observation(loinc="39156-5", value=value, unit_code="kg/m2")])
    assert [b.value for b in facts.bmis] == ([value] if kept else [])
    assert [n.reason for n in facts.notes] == ([] if kept else ["implausible"])


# --- BMI -----------------------------------------------------------------------------------------------


def test_bmi_derived_from_weight_and_height() -> None:
    facts = facts_of(
        [
            P1,
            observation(loinc="29463-7", value=45.0, unit_code="kg", when="2024-01-10", id="w"),
            observation(loinc="8302-2", value=160.0, unit_code="cm", when="2023-12-01"),
            observation(loinc="8302-2", value=150.0, unit_code="cm", when="2015-01-01"),
        ]
    )
    [bmi] = facts.bmis
    assert bmi.derived
    assert bmi.value == pytest.approx(17.6, abs=0.05)  # 45 / 1.60² with the height nearest the weight
    assert bmi.source == "Observation/w"


def test_recorded_bmi_wins_over_derived() -> None:
    facts = facts_of(
        [
            P1,
            observation(loinc="39156-5", value=22.5, unit_code="kg/m2"),
            observation(loinc="29463-7", value=45.0, unit_code="kg"),
            observation(loinc="8302-2", value=160.0, unit_code="cm"),
        ]
    )
    assert [(b.value, b.derived) for b in facts.bmis] == [(22.5, False)]


# --- conditions and procedures ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "concepts"),
    [
        pytest.param(condition(snomed="64859006"), ["osteoporosis"], id="condition SNOMED osteoporosis"),
        pytest.param(
            condition(icd="M81.000"),
            ["osteoporosis", "postmenopausal"],
            id="condition Chinese ICD-10 M81.000 by prefix (POP-4: under M81.0, postmenopausal)",
        ),
        pytest.param(
            condition(icd=("http://hl7.org/fhir/sid/icd-10-cm", "M80.08XA")),
            ["osteoporosis"],
            id="condition ICD-10-CM M80.08XA by prefix",
        ),
        pytest.param(
            condition(snomed="69896004"), ["secondary-cause:rheumatoid-arthritis"], id="condition RA"
        ),
        pytest.param(condition(icd="N18.3"), ["secondary-cause:ckd"], id="condition ICD-10 N18.3 CKD"),
        pytest.param(condition(snomed="162864005"), [], id="condition BMI 30+ not a concept of ours"),
        pytest.param(
            procedure(snomed="76876009"), ["bilateral-oophorectomy"], id="procedure bilateral oophorectomy"
        ),
        pytest.param(procedure(snomed="76876009", status="not-done"), [], id="procedure not-done ignored"),
        pytest.param(
            procedure(snomed="76876009", status="preparation"), [], id="procedure in preparation ignored"
        ),
    ],
)
def test_coded_concepts(resource: dict[str, Any], concepts: list[str]) -> None:
    assert [c.concept for c in facts_of([P1, resource]).coded] == concepts


@pytest.mark.parametrize(
    ("verification", "kept"),
    [
        pytest.param(None, True, id="condition no verification status kept"),
        pytest.param("confirmed", True, id="condition confirmed kept"),
        pytest.param("provisional", True, id="condition provisional kept"),
        pytest.param("entered-in-error", False, id="condition entered-in-error: data note"),
        pytest.param("refuted", False, id="condition refuted: data note"),
    ],
)
def test_condition_verification(verification: str | None, kept: bool) -> None:
    facts = facts_of([P1, condition(snomed="64859006", verification=verification, id="c")])
    assert facts.has("osteoporosis") is kept
    assert [(n.source, n.reason) for n in facts.notes] == ([] if kept else [("Condition/c", "verification")])


# --- DSTU2 and other junk never crashes -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "note"),
    [
        pytest.param(
            condition(snomed="64859006", clinical=None, clinicalStatus="active", id="j"),
            "not-fhir-r4",
            id="junk DSTU2 Condition with string clinicalStatus",
        ),
        pytest.param(
            condition(snomed="64859006", verification=None, verificationStatus="confirmed", id="j"),
            "not-fhir-r4",
            id="junk DSTU2 Condition with string verificationStatus",
        ),
        pytest.param(
            t_score(-2.0, id="j", valueQuantity="-2.0"), "no-value", id="junk Observation value as a string"
        ),
        pytest.param(
            t_score(-2.0, id="j", valueQuantity={"value": "-2.0"}),
            "no-value",
            id="junk Observation quantity value as a string",
        ),
        pytest.param(t_score(-2.0, id="j", valueQuantity={"value": True}), "no-value", id="junk value true"),
        pytest.param(
            # Issue 14: a number sent as valueString is read (tests/facts/test_values_and_bodies.py);
            # a valueString that is not a number is a value present but unreadable.
            observation(loinc="38267-1", valueString="见报告", id="j"),
            "unreadable-value",
            id="junk valueString not a number",
        ),
        pytest.param(
            t_score(-2.0, id="j", effectiveDateTime=20240110), "no-date", id="junk date as a number"
        ),
        pytest.param(
            t_score(-2.0, id="j", effectiveDateTime="yesterday"), "no-date", id="junk date as prose"
        ),
        pytest.param(t_score(-2.0, id="j", status=["final"]), "status", id="junk status as a list"),
    ],
)
def test_junk_is_skipped_with_a_note(resource: dict[str, Any], note: str) -> None:
    facts = facts_of([P1, resource])
    assert facts.measurements == [] and facts.coded == []
    assert [(n.source, n.reason) for n in facts.notes] == [(f"{resource['resourceType']}/j", note)]


@pytest.mark.parametrize(
    "junk",
    [
        pytest.param([], id="junk a list"),
        pytest.param(42, id="junk a number"),
        pytest.param("Observation", id="junk a string"),
        pytest.param(None, id="junk null"),
        pytest.param({}, id="junk an empty object"),
        pytest.param({"resourceType": 7}, id="junk resourceType a number"),
        pytest.param({"resourceType": "Observation"}, id="junk Observation with nothing"),
        pytest.param(
            {"resourceType": "Observation", "code": "38267-1", "subject": "Patient/p1"},
            id="junk Observation code and subject as strings",
        ),
        pytest.param(
            {
                "resourceType": "Observation",
                "code": {"coding": {"code": "38267-1"}},
                "subject": {"reference": "Patient/p1"},
                "status": "final",
            },
            id="junk coding as an object",
        ),
        pytest.param(
            {
                "resourceType": "Observation",
                "code": {"coding": [{"system": LOINC, "code": 38267}]},
                "subject": {"reference": "Patient/p1"},
                "status": "final",
            },
            id="junk code as a number",
        ),
        pytest.param(t_score(-2.0, component={"code": "x"}), id="junk component as an object"),
        pytest.param(t_score(-2.0, component=[None, 3, {"code": None}]), id="junk component items"),
        pytest.param(
            t_score(-2.0, bodySite=[{"text": "L1"}]), id="junk bodySite as a list on an Observation"
        ),
        pytest.param(_with(t_score(-2.0), device="Device/1"), id="junk device as a string"),
        pytest.param(t_score(-2.0, note="NHANES"), id="junk note as a string"),
        pytest.param(_with(t_score(-2.0), method=["pDXA"]), id="junk method as a list"),
        pytest.param(patient(birthDate=19500301), id="junk birthDate as a number"),
        pytest.param(patient(birthDate="1950-02-30"), id="junk birthDate 30 February"),
        pytest.param(condition(snomed="64859006", onsetDateTime={"x": 1}), id="junk onset as an object"),
        pytest.param(
            condition(snomed="64859006", clinicalStatus={"coding": "active"}), id="junk coding string"
        ),
        pytest.param(procedure(snomed="52734007", bodySite="left"), id="junk procedure bodySite string"),
        pytest.param(procedure(snomed="52734007", performedPeriod="2020"), id="junk performedPeriod string"),
        pytest.param(
            {
                "resourceType": "DiagnosticReport",
                "subject": {"reference": "Patient/p1"},
                "status": "final",
                "conclusion": ["x"],
                "conclusionCode": "x",
                "category": "RAD",
            },
            id="junk DiagnosticReport",
        ),
        pytest.param(
            {
                "resourceType": "ServiceRequest",
                "subject": {"reference": "Patient/p1"},
                "status": "active",
                "code": "24984-7",
            },
            id="junk ServiceRequest",
        ),
        pytest.param(
            {"resourceType": "Device", "id": "1", "deviceName": ["x", None], "manufacturer": 3},
            id="junk Device",
        ),
    ],
)
def test_junk_never_crashes(junk: Any) -> None:
    facts = facts_of([P1, junk])
    assert facts.patient_id == "p1"
    evaluate_resources([P1, junk, t_score(-2.7)])


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
_KEYS = st.sampled_from(
    [
        "code",
        "status",
        "valueQuantity",
        "effectiveDateTime",
        "effectivePeriod",
        "issued",
        "bodySite",
        "component",
        "method",
        "device",
        "note",
        "subject",
        "clinicalStatus",
        "verificationStatus",
        "onsetDateTime",
        "performedDateTime",
        "performedPeriod",
        "birthDate",
        "gender",
        "deceasedBoolean",
        "conclusion",
        "category",
    ]
)


@settings(max_examples=300, deadline=None)
@given(key=_KEYS, junk=_JSON, base=st.sampled_from(["obs", "panel", "cond", "proc", "patient"]))
def test_any_element_of_any_shape_never_crashes(key: str, junk: Any, base: str) -> None:
    resource = {
        "obs": t_score(-2.0, body_site="L1", method="DXA"),
        "panel": observation(loinc="38268-9", components=[component(loinc="38263-0", value=-2.0)]),
        "cond": condition(snomed="69896004"),
        "proc": procedure(snomed="52734007", body_site="left hip"),
        "patient": patient(),
    }[base]
    resource[key] = junk
    others = [] if base == "patient" else [patient()]
    evaluate_resources([*others, resource, t_score(-2.7)])


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(10**400, id="plausibility integer too large for a float skipped"),
        pytest.param(float("nan"), id="plausibility NaN skipped"),
        pytest.param(float("inf"), id="plausibility infinity skipped"),
        pytest.param(float("-inf"), id="plausibility minus infinity skipped"),
    ],
)
def test_non_finite_values_are_implausible_not_a_crash(value: Any) -> None:
    facts = facts_of(
        [P1, t_score(value, id="big"), observation(loinc="39156-5", value=value, unit_code="kg/m2")]
    )
    assert facts.measurements == [] and facts.bmis == []
    assert {n.source for n in facts.notes} >= {"Observation/big"}
    evaluate_resources([P1, t_score(value), t_score(-2.7)])


# --- other patients ---------------------------------------------------------------------------------------


def test_other_patients_resources_are_ignored() -> None:
    facts = facts_of(
        [
            P1,
            patient(id="p2", gender="male", birth_date="1990-01-01"),
            t_score(-3.0, patient="p2"),
            condition(snomed="64859006", patient="p2"),
            t_score(-1.0, id="mine"),
            t_score(-2.9, subject={"reference": "http://other.example/fhir/Patient/p2"}),
            t_score(-2.9, subject={"reference": "Group/p1"}),
            t_score(-2.9, subject=None),
        ]
    )
    assert (facts.sex, facts.birth_date) == (Sex.FEMALE, date(1950, 3, 1))
    assert [m.source for m in facts.measurements] == ["Observation/mine"]
    assert facts.coded == []


@pytest.mark.parametrize(
    "reference",
    [
        pytest.param("Patient/p1", id="subject relative reference"),
        pytest.param("https://ehr.example.org/fhir/Patient/p1", id="subject absolute reference"),
        pytest.param("Patient/p1/_history/3", id="subject versioned reference"),
    ],
)
def test_own_resources_by_any_reference_form(reference: str) -> None:
    assert len(_measurements(t_score(-2.0, subject={"reference": reference}))) == 1


def test_unreadable_birth_date_is_noted() -> None:
    facts = facts_of([patient(birth_date="not a date")])
    assert facts.birth_date is None
    assert [(n.source, n.reason) for n in facts.notes] == [("Patient/p1", "unreadable-birth-date")]
