"""QCT rules (CONSENSUS-RULES.md §3): QCT-1 which value, QCT-2 categories, QCT-3 hip QCT, QCT-5 units,
QCT-6 the young, QCT-7 Mindways."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builders import (
    born,
    diagnosis_of,
    evaluate_resources,
    facts_of,
    findings_of,
    local,
    observation,
    patient,
    qct,
    t_score,
    used_sources,
)

OLD_MAN = patient(gender="male", birth_date=born(70))
YOUNG_MAN = patient(gender="male", birth_date=born(40))


def _diagnosis(*resources: Any) -> Any:
    return diagnosis_of(findings_of([OLD_MAN, *resources]))


# --- QCT-2 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vbmd", "topic"),
    [
        pytest.param(150.0, "normal-bmd", id="QCT-2 150 is normal"),
        pytest.param(120.1, "normal-bmd", id="QCT-2 120.1 is normal"),
        pytest.param(120.0, "low-bone-mass", id="QCT-2 120 is low bone mass"),
        pytest.param(100.0, "low-bone-mass", id="QCT-2 100 is low bone mass"),
        pytest.param(80.0, "low-bone-mass", id="QCT-2 80 is low bone mass"),
        pytest.param(79.9, "osteoporosis-bmd", id="QCT-2 79.9 is osteoporosis"),
        pytest.param(40.0, "osteoporosis-bmd", id="QCT-2 40 is osteoporosis"),
    ],
)
def test_qct2_category_of_the_lumbar_mean(vbmd: float, topic: str) -> None:
    dx = _diagnosis(qct(vbmd, id="mean"))
    assert dx is not None
    assert dx.topic == topic
    assert {"QCT-1", "QCT-2"} <= set(dx.rules)
    assert used_sources(dx) == {"Observation/mean"}
    assert dx.params["value"] == pytest.approx(vbmd)


# --- QCT-1 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vertebrae", "used", "mean", "topic"),
    [
        pytest.param(
            {"L1": 70.0, "L2": 90.0, "L3": 200.0},
            {"L1", "L2"},
            80.0,
            "low-bone-mass",
            id="QCT-1 L1+L2 preferred over L3",
        ),
        pytest.param(
            {"L2": 70.0, "L3": 80.0, "L4": 200.0},
            {"L2", "L3"},
            75.0,
            "osteoporosis-bmd",
            id="QCT-1 L1 missing: L2+L3",
        ),
        pytest.param(
            {"L1": 100.0, "L3": 50.0}, {"L1", "L3"}, 75.0, "osteoporosis-bmd", id="QCT-1 L2 missing: L1+L3"
        ),
        pytest.param(
            {"L1": 119.0, "L2": 121.2},
            {"L1", "L2"},
            120.1,
            "normal-bmd",
            id="QCT-1 mean 120.1 of L1+L2 is normal",
        ),
    ],
)
def test_qct1_mean_of_two_vertebrae(
    vertebrae: dict[str, float], used: set[str], mean: float, topic: str
) -> None:
    dx = _diagnosis(*(qct(value, vertebra=level, id=level) for level, value in vertebrae.items()))
    assert dx is not None
    assert dx.topic == topic
    assert "QCT-1" in dx.rules
    assert used_sources(dx) == {f"Observation/{level}" for level in used}
    assert dx.params["value"] == pytest.approx(mean)
    assert dx.params["measure"] == "qct-mean"


@pytest.mark.parametrize(
    "site",
    [
        pytest.param(("http://snomed.info/sct", "66794005"), id="QCT-1 vertebra as SNOMED L1 code"),
        pytest.param("腰1", id="QCT-1 vertebra as text 腰1"),
        pytest.param("L1 vertebral body", id="QCT-1 vertebra as text L1"),
    ],
)
def test_qct1_vertebra_read_from_body_site(site: Any) -> None:
    dx = _diagnosis(
        observation(code=local("qct-lumbar-vbmd"), value=70.0, unit_code="mg/cm3", body_site=site, id="a"),
        qct(80.0, vertebra="L2", id="b"),
    )
    assert dx is not None
    assert dx.topic == "osteoporosis-bmd"  # (70 + 80) / 2 = 75
    assert used_sources(dx) == {"Observation/a", "Observation/b"}


def test_qct1_reported_mean_is_used_over_vertebrae() -> None:
    dx = _diagnosis(
        qct(75.0, id="mean"), qct(130.0, vertebra="L1", id="L1"), qct(130.0, vertebra="L2", id="L2")
    )
    assert dx is not None
    assert dx.topic == "osteoporosis-bmd"
    assert used_sources(dx) == {"Observation/mean"}


def test_qct1_single_vertebra_gives_no_category() -> None:
    assert _diagnosis(qct(50.0, vertebra="L1")) is None


def test_qct1_single_vertebra_is_explained_on_the_card_given() -> None:
    dx = _diagnosis(qct(50.0, vertebra="L1", id="L1"), t_score(-1.5, id="dxa"))
    assert dx is not None
    assert dx.topic == "low-bone-mass"  # DXA alone; the single vertebra decided nothing
    assert "qct-single-vertebra" in dx.notes
    assert used_sources(dx) == {"Observation/dxa"}


@pytest.mark.parametrize(
    ("value", "unit_code", "topic"),
    [
        pytest.param(0.07, "g/cm3", "osteoporosis-bmd", id="QCT-5 0.07 g/cm3 is 70 mg/cm3"),
        pytest.param(0.1, "g/cm3", "low-bone-mass", id="QCT-5 0.1 g/cm3 is 100 mg/cm3"),
        pytest.param(0.13, "g/cm3", "normal-bmd", id="QCT-5 0.13 g/cm3 is 130 mg/cm3"),
        pytest.param(79.9, "mg/mL", "osteoporosis-bmd", id="QCT-5 mg/mL same as mg/cm3 (79.9)"),
        pytest.param(80.0, "mg/mL", "low-bone-mass", id="QCT-5 mg/mL same as mg/cm3 (80)"),
        pytest.param(75.0, "mg/cm3", "osteoporosis-bmd", id="QCT-5 mg/cm3 as is"),
    ],
)
def test_qct5_units_are_converted(value: float, unit_code: str, topic: str) -> None:
    dx = _diagnosis(qct(value, unit_code=unit_code))
    assert dx is not None
    assert dx.topic == topic


@pytest.mark.parametrize(
    ("unit_code", "reason"),
    [
        pytest.param("[hnsf'U]", "hounsfield-units", id="QCT-5 UCUM Hounsfield units not used"),
        pytest.param("HU", "hounsfield-units", id="QCT-5 HU not used"),
        pytest.param("g/cm2", "unknown-unit", id="QCT-5 areal unit on a vBMD code not used"),
    ],
)
def test_qct5_other_units_are_skipped_with_a_data_note(unit_code: str, reason: str) -> None:
    resources = [OLD_MAN, qct(75.0, unit_code=unit_code, id="q"), t_score(-1.5, id="dxa")]
    facts = facts_of(resources)
    assert [(n.source, n.reason) for n in facts.notes] == [("Observation/q", reason)]
    dx = diagnosis_of(findings_of(resources))
    assert dx is not None
    assert dx.topic == "low-bone-mass"  # from DXA; the QCT value was not used
    result = evaluate_resources(resources)
    assert result.skipped[reason] == 1


# --- QCT-3 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "topic"),
    [
        pytest.param(-2.5, "osteoporosis-bmd", id="QCT-3 hip QCT T=-2.5 is osteoporosis"),
        pytest.param(-2.49, "low-bone-mass", id="QCT-3 hip QCT T=-2.49 is low bone mass"),
        pytest.param(-1.0, "normal-bmd", id="QCT-3 hip QCT T=-1.0 is normal"),
    ],
)
def test_qct3_hip_qct_t_score_by_dxa_criteria(t: float, topic: str) -> None:
    dx = _diagnosis(observation(code=local("qct-hip-t"), value=t, unit_code="{T-score}", id="hip"))
    assert dx is not None
    assert dx.topic == topic
    assert "QCT-3" in dx.rules
    assert used_sources(dx) == {"Observation/hip"}


# --- QCT-6 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vbmd", "workup"),
    [
        pytest.param(60.0, True, id="QCT-6 young vBMD 60: work-up, no category"),
        pytest.param(120.0, True, id="QCT-6 young vBMD 120: work-up, no category"),
        pytest.param(120.1, False, id="QCT-6 young vBMD 120.1: no work-up, no category"),
    ],
)
def test_qct6_young_person_gets_no_qct_category(vbmd: float, workup: bool) -> None:
    findings = findings_of([YOUNG_MAN, qct(vbmd, id="q")])
    assert diagnosis_of(findings) is None
    topics = [f.topic for f in findings]
    assert ("secondary-cause-workup" in topics) is workup
    if workup:
        card = next(f for f in findings if f.topic == "secondary-cause-workup")
        assert {"QCT-6", "DX-6"} <= set(card.rules)
        assert "Observation/q" in used_sources(card)


def test_qct6_young_person_never_gets_an_osteoporosis_label() -> None:
    result = evaluate_resources([YOUNG_MAN, qct(40.0), observation(code=local("qct-hip-t"), value=-3.5)])
    assert not {"osteoporosis-bmd", "low-bone-mass", "normal-bmd", "severe-osteoporosis"} & set(result.topics)


# --- QCT-7 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resources", "named"),
    [
        pytest.param([qct(100.0)], True, id="QCT-7 lumbar QCT category names Mindways 120 kV"),
        pytest.param(
            [observation(code=local("qct-hip-t"), value=-2.0, unit_code="{T-score}")],
            True,
            id="QCT-7 hip QCT category names Mindways",
        ),
        pytest.param([t_score(-2.0)], False, id="QCT-7 DXA alone: no Mindways note"),
    ],
)
def test_qct7_mindways_note_with_a_qct_category(resources: list[dict[str, Any]], named: bool) -> None:
    dx = _diagnosis(*resources)
    assert dx is not None
    assert ("qct-mindways" in dx.notes) is named
    assert ("QCT-7" in dx.rules) is named
