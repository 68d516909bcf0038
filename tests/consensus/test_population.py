"""Population rules (CONSENSUS-RULES.md §1): POP-1 men ≥ 50, POP-2 oophorectomy, POP-3 Z-score population,
POP-4 assumed menopause (a setting)."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.settings import ClinicalSettings
from tests.builders import (
    EXAM,
    SNOMED,
    born,
    condition,
    diagnosis_of,
    findings_of,
    make_settings,
    patient,
    procedure,
    t_score,
    used_sources,
    z_score,
)


def _findings(resources: list[dict[str, Any]], **clinical: Any) -> list[Any]:
    settings = make_settings(clinical=ClinicalSettings(**clinical)) if clinical else None
    return findings_of(resources, settings=settings)


def _topics(findings: list[Any]) -> list[str]:
    return [f.topic for f in findings]


def _settings(finding: Any) -> dict[str, str]:
    return {s.name: s.value for s in finding.settings}


# --- POP-1 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "diagnosis"),
    [
        pytest.param(born(50), "osteoporosis-bmd", id="POP-1 man on his 50th birthday: T-score criteria"),
        pytest.param(born(72), "osteoporosis-bmd", id="POP-1 man of 72: T-score criteria"),
        pytest.param(
            born(50, days_later=1), None, id="POP-1 man of 49 (a day short of 50): no T-score category"
        ),
        pytest.param(born(30), None, id="POP-1 man of 30: no T-score category"),
    ],
)
def test_pop1_men_from_50_are_judged_by_t_score(birth: str, diagnosis: str | None) -> None:
    findings = _findings([patient(gender="male", birth_date=birth), t_score(-3.0, id="t")])
    dx = diagnosis_of(findings)
    assert (dx.topic if dx else None) == diagnosis
    if dx is None:
        assert "z-score-required" in _topics(findings)  # POP-3: the young man has only a T-score
    else:
        assert "POP-1" in dx.rules
        assert _settings(dx) == {"OSTEO_CDS_OLDER_MALE_AGE": "50"}


def test_pop1_older_male_age_is_a_setting() -> None:
    resources = [patient(gender="male", birth_date=born(55)), t_score(-3.0)]
    dx = diagnosis_of(_findings(resources, older_male_age=60))
    assert dx is None
    dx = diagnosis_of(_findings(resources, older_male_age=55))
    assert dx is not None and _settings(dx)["OSTEO_CDS_OLDER_MALE_AGE"] == "55"


# --- POP-3 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("z", "topic"),
    [
        pytest.param(-2.5, "below-expected-range-for-age", id="POP-3 Z=-2.5 is below the expected range"),
        pytest.param(-2.0, "below-expected-range-for-age", id="POP-3 Z=-2.0 is below the expected range"),
        pytest.param(-1.99, "within-expected-range-for-age", id="POP-3 Z=-1.99 is within the expected range"),
        pytest.param(0.4, "within-expected-range-for-age", id="POP-3 Z=+0.4 is within the expected range"),
    ],
)
def test_pop3_z_score_for_the_young(z: float, topic: str) -> None:
    findings = _findings(
        [patient(gender="male", birth_date=born(35)), z_score(z, id="z"), t_score(-3.2, id="t")]
    )
    dx = diagnosis_of(findings)
    assert dx is not None
    assert dx.topic == topic
    assert "POP-3" in dx.rules
    assert used_sources(dx) == {"Observation/z"}  # the T-score is never used for them
    assert "z-score-required" not in _topics(findings)


@pytest.mark.parametrize(
    "person",
    [
        pytest.param(
            patient(gender="male", birth_date=born(35)), id="POP-3 man of 35 with only T: Z-score required"
        ),
        pytest.param(
            patient(gender="female", birth_date=born(17)), id="POP-3 girl of 17 with only T: Z-score required"
        ),
        pytest.param(
            patient(gender="female", birth_date=born(42)),
            id="POP-3 woman of 42 with only T: Z-score required",
        ),
    ],
)
def test_pop3_only_t_scores_require_a_z_score(person: dict[str, Any]) -> None:
    findings = _findings([person, t_score(-3.1, id="t"), t_score(-2.9, "38263-0")])
    assert diagnosis_of(findings) is None  # never "osteoporosis" from a T-score
    assert "z-score-required" in _topics(findings)
    card = next(f for f in findings if f.topic == "z-score-required")
    assert "POP-3" in card.rules


def test_pop3_young_person_with_low_z_score_gets_the_secondary_cause_workup() -> None:
    findings = _findings([patient(gender="male", birth_date=born(35)), z_score(-2.2, id="z")])
    assert "secondary-cause-workup" in _topics(findings)  # DX-6
    workup = next(f for f in findings if f.topic == "secondary-cause-workup")
    assert "DX-6" in workup.rules


# --- POP-4 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "assumed"),
    [
        pytest.param(
            born(50), True, id="POP-4 woman on her 50th birthday, record silent: assumed postmenopausal"
        ),
        pytest.param(born(66), True, id="POP-4 woman of 66, record silent: assumed postmenopausal"),
        pytest.param(
            born(50, days_later=1), False, id="POP-4 woman of 49, record silent: premenopausal by age"
        ),
    ],
)
def test_pop4_menopause_assumed_from_50(birth: str, assumed: bool) -> None:
    findings = _findings([patient(gender="female", birth_date=birth), t_score(-2.7)])
    dx = diagnosis_of(findings)
    if assumed:
        assert dx is not None
        assert dx.topic == "osteoporosis-bmd"
        assert "POP-4" in dx.rules
        assert "assumed-postmenopausal" in dx.notes
        assert _settings(dx)["OSTEO_CDS_MENOPAUSE_AGE"] == "50"  # the setting is named on the card
    else:
        assert dx is None
        assert "z-score-required" in _topics(findings)


@pytest.mark.parametrize(
    ("menopause_age", "assumed"),
    [
        pytest.param(48, True, id="POP-4 setting 48: woman of 49 assumed postmenopausal"),
        pytest.param(49, True, id="POP-4 setting 49: woman of 49 assumed postmenopausal"),
        pytest.param(50, False, id="POP-4 setting 50: woman of 49 not assumed"),
    ],
)
def test_pop4_menopause_age_is_a_setting(menopause_age: int, assumed: bool) -> None:
    resources = [patient(gender="female", birth_date=born(49)), t_score(-2.7)]
    dx = diagnosis_of(_findings(resources, menopause_age=menopause_age))
    assert (dx is not None) is assumed
    if dx is not None:
        assert _settings(dx)["OSTEO_CDS_MENOPAUSE_AGE"] == str(menopause_age)


@pytest.mark.parametrize(
    "record",
    [
        pytest.param(
            condition(snomed="76498008", onset="2018-01-01"), id="POP-4 postmenopausal state SNOMED recorded"
        ),
        pytest.param(condition(icd="N95.1", onset="2018-01-01"), id="POP-4 menopause ICD-10 N95.1 recorded"),
        pytest.param(
            condition(icd=("http://hl7.org/fhir/sid/icd-10-cm", "Z78.0")), id="POP-4 Z78.0 recorded"
        ),
    ],
)
def test_pop4_recorded_menopause_is_not_an_assumption(record: dict[str, Any]) -> None:
    dx = diagnosis_of(_findings([patient(gender="female", birth_date=born(47)), record, t_score(-2.7)]))
    assert dx is not None
    assert dx.topic == "osteoporosis-bmd"
    assert "assumed-postmenopausal" not in dx.notes
    assert "OSTEO_CDS_MENOPAUSE_AGE" not in _settings(dx)


# --- POP-2 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "surgery",
    [
        pytest.param(
            [procedure(snomed="76876009", performed="2021-05-01")], id="POP-2 bilateral oophorectomy SNOMED"
        ),
        pytest.param(
            [procedure(code=("http://www.cms.gov/Medicare/Coding/ICD10", "0UT20ZZ"), performed="2021-05-01")],
            id="POP-2 bilateral oophorectomy ICD-10-PCS",
        ),
        pytest.param(
            [procedure(text="双侧卵巢切除术", performed="2021-05-01")], id="POP-2 双侧卵巢切除 text only"
        ),
        pytest.param(
            [
                procedure(text="Left oophorectomy", performed="2015-05-01"),
                procedure(text="Right oophorectomy", performed="2021-05-01"),
            ],
            id="POP-2 left then right oophorectomy over time",
        ),
        pytest.param(
            [condition(icd=("http://hl7.org/fhir/sid/icd-10-cm", "Z90.722"))], id="POP-2 Z90.722 status"
        ),
    ],
)
def test_pop2_bilateral_oophorectomy_at_45_means_t_score_criteria(surgery: list[dict[str, Any]]) -> None:
    dx = diagnosis_of(_findings([patient(gender="female", birth_date=born(45)), *surgery, t_score(-2.7)]))
    assert dx is not None
    assert dx.topic == "osteoporosis-bmd"
    assert "POP-2" in dx.rules
    assert "assumed-postmenopausal" not in dx.notes


@pytest.mark.parametrize(
    "surgery",
    [
        pytest.param(
            procedure(text="Left oophorectomy", performed="2021-05-01"), id="POP-2 one ovary: not menopause"
        ),
        pytest.param(
            procedure(text="Oophorectomy", performed="2021-05-01"), id="POP-2 side unknown: not menopause"
        ),
        pytest.param(
            procedure(snomed="76876009", performed="2025-05-01"),
            id="POP-2 bilateral after the exam: not then",
        ),
        pytest.param(
            procedure(snomed="76876009", performed="2021-05-01", status="entered-in-error"),
            id="POP-2 entered-in-error oophorectomy ignored",
        ),
    ],
)
def test_pop2_does_not_apply(surgery: dict[str, Any]) -> None:
    findings = _findings([patient(gender="female", birth_date=born(45)), surgery, t_score(-2.7)])
    assert diagnosis_of(findings) is None
    assert "z-score-required" in _topics(findings)


# --- premenopausal recorded -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("onset", "premenopausal"),
    [
        pytest.param(EXAM, True, id="POP-3 premenopausal state recorded at the exam: Z-score population"),
        pytest.param(
            "2025-02-01", True, id="POP-3 premenopausal state recorded after the exam: Z-score population"
        ),
        pytest.param("2015-02-01", False, id="POP-4 premenopausal state recorded years before: assumed post"),
    ],
)
def test_premenopausal_recorded_at_52(onset: str, premenopausal: bool) -> None:
    resources = [
        patient(gender="female", birth_date=born(52)),
        condition(snomed="22636003", onset=onset),
        t_score(-2.7),
    ]
    findings = _findings(resources)
    dx = diagnosis_of(findings)
    if premenopausal:
        assert dx is None
        assert "z-score-required" in _topics(findings)
    else:
        assert dx is not None and dx.topic == "osteoporosis-bmd"


def test_premenopausal_woman_with_z_score_is_judged_by_z() -> None:
    resources = [
        patient(gender="female", birth_date=born(52)),
        condition(snomed="22636003", onset=EXAM),
        z_score(-2.0, id="z"),
        t_score(-2.9, id="t"),
    ]
    dx = diagnosis_of(_findings(resources))
    assert dx is not None
    assert dx.topic == "below-expected-range-for-age"
    assert used_sources(dx) == {"Observation/z"}


# --- unknown sex or age ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("person", "clinical", "topic"),
    [
        pytest.param(
            patient(gender="female", birth_date=None), {}, None, id="POP no birth date: no category"
        ),
        pytest.param(
            patient(gender="male", birth_date=None), {}, None, id="POP man, no birth date: no category"
        ),
        pytest.param(
            patient(gender=None, birth_date=born(52)),
            {"older_male_age": 55},
            None,
            id="POP unknown sex at 52, readings disagree (women 50, men 55): no category",
        ),
        pytest.param(
            patient(gender=None, birth_date=born(60)),
            {},
            "osteoporosis-bmd",
            id="POP unknown sex at 60, both readings T-score: category",
        ),
    ],
)
def test_population_unknown(person: dict[str, Any], clinical: dict[str, Any], topic: str | None) -> None:
    dx = diagnosis_of(_findings([person, t_score(-2.7)], **clinical))
    assert (dx.topic if dx else None) == topic


def test_pop2_oophorectomy_sides_from_body_site() -> None:
    # Procedure.bodySite is a list in R4: a bilateral oophorectomy by two sided procedures.
    resources = [
        patient(gender="female", birth_date=born(45)),
        procedure(text="Oophorectomy", body_site=(SNOMED, "7771000"), performed="2015-01-01"),
        procedure(text="Oophorectomy", body_site=(SNOMED, "24028007"), performed="2020-01-01"),
        t_score(-2.7),
    ]
    dx = diagnosis_of(_findings(resources))
    assert dx is not None and "POP-2" in dx.rules
