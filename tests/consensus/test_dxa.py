"""DXA rules (CONSENSUS-RULES.md §2): DXA-1 lowest region of the latest exam, DXA-2 forearm, DXA-3 categories,
DXA-4 region unknown, DXA-6 reference database."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builders import (
    SNOMED,
    born,
    condition,
    diagnosis_of,
    findings_of,
    local,
    observation,
    patient,
    procedure,
    t_score,
    used_sources,
)

# A man of 70 at the exam: POP-1 without any assumption.
OLD_MAN = patient(gender="male", birth_date=born(70))

LUMBAR, NECK, HIP = "38267-1", "38263-0", "38264-8"
NECK_LEFT, NECK_RIGHT = "80948-3", "80947-5"
FOREARM_LEFT = "80944-2"


def _diagnosis(*resources: Any) -> Any:
    dx = diagnosis_of(findings_of([OLD_MAN, *resources]))
    assert dx is not None
    return dx


# --- DXA-3 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "topic"),
    [
        pytest.param(0.5, "normal-bmd", id="DXA-3 T=+0.5 is normal"),
        pytest.param(-1.0, "normal-bmd", id="DXA-3 T=-1.0 is normal"),
        pytest.param(-1.01, "low-bone-mass", id="DXA-3 T=-1.01 is low bone mass"),
        pytest.param(-2.49, "low-bone-mass", id="DXA-3 T=-2.49 is low bone mass"),
        pytest.param(-2.5, "osteoporosis-bmd", id="DXA-3 T=-2.5 is osteoporosis"),
        pytest.param(-2.51, "osteoporosis-bmd", id="DXA-3 T=-2.51 is osteoporosis"),
        pytest.param(-4.2, "osteoporosis-bmd", id="DXA-3 T=-4.2 is osteoporosis"),
    ],
)
def test_dxa3_category_of_the_t_score(t: float, topic: str) -> None:
    dx = _diagnosis(t_score(t, id="t1"))
    assert dx.topic == topic
    assert "DXA-3" in dx.rules
    assert used_sources(dx) == {"Observation/t1"}
    assert dx.params["value"] == pytest.approx(t)


# --- DXA-1 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lumbar", "neck", "hip", "decisive", "topic"),
    [
        pytest.param(-1.2, -2.6, -1.8, "neck", "osteoporosis-bmd", id="DXA-1 femoral neck lowest decides"),
        pytest.param(-2.7, -1.1, -1.8, "lumbar", "osteoporosis-bmd", id="DXA-1 lumbar spine lowest decides"),
        pytest.param(-0.4, -0.9, -1.3, "hip", "low-bone-mass", id="DXA-1 total hip lowest decides"),
        pytest.param(0.2, -0.3, -1.0, "hip", "normal-bmd", id="DXA-1 all normal, lowest -1.0 normal"),
    ],
)
def test_dxa1_lowest_of_lumbar_neck_and_total_hip(
    lumbar: float, neck: float, hip: float, decisive: str, topic: str
) -> None:
    dx = _diagnosis(
        t_score(lumbar, LUMBAR, id="lumbar"), t_score(neck, NECK, id="neck"), t_score(hip, HIP, id="hip")
    )
    assert dx.topic == topic
    assert "DXA-1" in dx.rules
    decisive_rows = [e for e in dx.evidence if e.used and e.value == min(lumbar, neck, hip)]
    assert [e.source for e in decisive_rows] == [f"Observation/{decisive}"]
    # Every region of the exam is shown and counted (all three are diagnostic regions).
    assert used_sources(dx) == {"Observation/lumbar", "Observation/neck", "Observation/hip"}


@pytest.mark.parametrize(
    ("older", "newer", "topic"),
    [
        pytest.param(-3.0, -0.5, "normal-bmd", id="DXA-1 older osteoporotic exam ignored, latest normal"),
        pytest.param(
            -0.5, -2.8, "osteoporosis-bmd", id="DXA-1 older normal exam ignored, latest osteoporotic"
        ),
        pytest.param(-1.5, -0.9, "normal-bmd", id="DXA-1 older low exam ignored, latest normal"),
    ],
)
def test_dxa1_only_the_most_recent_exam(older: float, newer: float, topic: str) -> None:
    dx = _diagnosis(
        t_score(older, LUMBAR, when="2019-05-02", id="old"),
        t_score(older, NECK, when="2019-05-02", id="old-neck"),
        t_score(newer, LUMBAR, when="2024-01-10", id="new"),
    )
    assert dx.topic == topic
    assert used_sources(dx) == {"Observation/new"}
    assert dx.params["date"] == "2024-01-10"


def test_dxa1_regions_of_one_day_are_one_exam() -> None:
    # Two observations on the same day at different times are one exam: the lowest of both decides.
    dx = _diagnosis(
        t_score(-1.2, LUMBAR, when="2024-01-10T09:00:00+08:00", id="a"),
        t_score(-2.6, HIP, when="2024-01-10T09:20:00+08:00", id="b"),
    )
    assert dx.topic == "osteoporosis-bmd"
    assert used_sources(dx) == {"Observation/a", "Observation/b"}


# --- DXA-2 --------------------------------------------------------------------------------------

SPINAL_FUSION_CONDITION = condition(icd="Z98.1", onset="2015-01-01", id="fusion")
SPINAL_FUSION_PROCEDURE = procedure(snomed="55705006", performed="2015-01-01", id="fusion")
BILATERAL_HIP_PROSTHESIS = condition(icd="Z96.643", onset="2015-01-01", id="prosthesis")


@pytest.mark.parametrize(
    "fusion",
    [
        pytest.param(SPINAL_FUSION_CONDITION, id="DXA-2 spinal fusion coded as ICD-10 Z98.1"),
        pytest.param(SPINAL_FUSION_PROCEDURE, id="DXA-2 spinal fusion procedure SNOMED 55705006"),
    ],
)
def test_dxa2_spinal_fusion_excludes_lumbar_and_forearm_counts(fusion: dict[str, Any]) -> None:
    dx = _diagnosis(
        fusion,
        t_score(-3.4, LUMBAR, id="lumbar"),
        t_score(-1.4, HIP, id="hip"),
        t_score(-2.7, FOREARM_LEFT, id="forearm"),
    )
    assert dx.topic == "osteoporosis-bmd"
    assert "DXA-2" in dx.rules
    assert used_sources(dx) == {"Observation/hip", "Observation/forearm"}
    assert dx.params["region"] == "forearm"
    assert "forearm-counts" in dx.notes
    assert "site-unusable-spinal-fusion" in dx.notes
    lumbar_rows = [e for e in dx.evidence if e.source == "Observation/lumbar"]
    assert lumbar_rows and not any(e.used for e in lumbar_rows)  # shown, not counted


def test_dxa2_spinal_fusion_without_forearm_uses_the_hip() -> None:
    dx = _diagnosis(SPINAL_FUSION_CONDITION, t_score(-3.4, LUMBAR, id="lumbar"), t_score(-1.4, HIP, id="hip"))
    assert dx.topic == "low-bone-mass"
    assert used_sources(dx) == {"Observation/hip"}


def test_dxa2_bilateral_hip_prosthesis_makes_the_forearm_count() -> None:
    dx = _diagnosis(
        BILATERAL_HIP_PROSTHESIS,
        t_score(-1.5, LUMBAR, id="lumbar"),
        t_score(-2.6, FOREARM_LEFT, id="forearm"),
    )
    assert dx.topic == "osteoporosis-bmd"
    assert used_sources(dx) == {"Observation/lumbar", "Observation/forearm"}
    assert "DXA-2" in dx.rules


def test_dxa2_hip_prostheses_left_then_right_make_both_hips_unusable() -> None:
    dx = _diagnosis(
        procedure(snomed="52734007", body_site=(SNOMED, "7771000"), performed="2012-01-01"),
        procedure(snomed="52734007", body_site=(SNOMED, "24028007"), performed="2016-01-01"),
        t_score(-3.0, NECK_LEFT, id="neck-left"),
        t_score(-1.5, LUMBAR, id="lumbar"),
        t_score(-2.6, FOREARM_LEFT, id="forearm"),
    )
    assert dx.topic == "osteoporosis-bmd"
    assert used_sources(dx) == {"Observation/lumbar", "Observation/forearm"}


@pytest.mark.parametrize(
    "forearm",
    [
        pytest.param(
            t_score(-3.0, FOREARM_LEFT, id="forearm"), id="DXA-2 no site problem: forearm LOINC ignored"
        ),
        pytest.param(
            observation(code=local("dxa-t-forearm"), value=-3.0, unit_code="{T-score}", id="forearm"),
            id="DXA-2 no site problem: forearm local code ignored",
        ),
    ],
)
def test_dxa2_forearm_does_not_count_when_spine_and_hip_are_usable(forearm: dict[str, Any]) -> None:
    dx = _diagnosis(t_score(-0.6, LUMBAR, id="lumbar"), t_score(-0.8, HIP, id="hip"), forearm)
    assert dx.topic == "normal-bmd"
    assert "Observation/forearm" not in used_sources(dx)


def test_dxa2_fusion_after_the_exam_does_not_apply() -> None:
    dx = _diagnosis(
        condition(icd="Z98.1", onset="2025-06-01"),
        t_score(-2.6, LUMBAR, id="lumbar"),
        t_score(-3.5, FOREARM_LEFT, id="forearm"),
    )
    assert dx.topic == "osteoporosis-bmd"
    assert used_sources(dx) == {"Observation/lumbar"}
    assert "DXA-2" not in dx.rules


def test_dxa2_prosthesis_of_one_hip_excludes_that_hip_only() -> None:
    dx = _diagnosis(
        condition(icd="Z96.641", onset="2015-01-01"),  # right artificial hip joint
        t_score(-3.0, NECK_RIGHT, id="neck-right"),
        t_score(-1.2, NECK_LEFT, id="neck-left"),
        t_score(-0.8, LUMBAR, id="lumbar"),
    )
    assert dx.topic == "low-bone-mass"
    assert "Observation/neck-right" not in used_sources(dx)


def test_dxa2_prosthesis_of_one_hip_does_not_make_the_forearm_count() -> None:
    dx = _diagnosis(
        condition(icd="Z96.641", onset="2015-01-01"),  # right artificial hip joint
        t_score(-1.2, NECK_LEFT, id="neck-left"),
        t_score(-1.5, LUMBAR, id="lumbar"),
        t_score(-2.6, FOREARM_LEFT, id="forearm"),
    )
    assert dx.topic == "low-bone-mass"
    assert "Observation/forearm" not in used_sources(dx)


def test_dxa2_prosthesis_on_the_only_measured_hip_makes_the_forearm_count() -> None:
    dx = _diagnosis(
        condition(icd="Z96.641", onset="2015-01-01"),  # right artificial hip joint
        t_score(-1.0, NECK_RIGHT, id="neck-right"),  # the replaced side was measured: not valid
        t_score(-1.5, LUMBAR, id="lumbar"),
        t_score(-2.6, FOREARM_LEFT, id="forearm"),
    )
    assert dx.topic == "osteoporosis-bmd"
    assert used_sources(dx) == {"Observation/lumbar", "Observation/forearm"}
    assert "DXA-2" in dx.rules


# --- DXA-4 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "unspecified",
    [
        pytest.param(
            t_score(-2.8, "38265-5", display="DXA [T-score] Bone density", id="t"),
            id="DXA-4 Synthea 38265-5 without body site is region-unknown",
        ),
        pytest.param(
            observation(code=local("dxa-t-unspecified"), value=-2.8, unit_code="{T-score}", id="t"),
            id="DXA-4 local unspecified T-score is region-unknown",
        ),
    ],
)
def test_dxa4_t_score_without_region_is_used_with_a_note(unspecified: dict[str, Any]) -> None:
    dx = _diagnosis(unspecified)
    assert dx.topic == "osteoporosis-bmd"
    assert "DXA-4" in dx.rules
    assert "region-unknown" in dx.notes
    assert dx.params["region"] == "unspecified"
    assert used_sources(dx) == {"Observation/t"}


def test_dxa4_no_note_when_regions_are_known() -> None:
    dx = _diagnosis(t_score(-2.8, LUMBAR), t_score(-1.0, NECK))
    assert "DXA-4" not in dx.rules
    assert "region-unknown" not in dx.notes


# --- DXA-6 --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        pytest.param(
            {"method": "T-score vs NHANES III reference"}, "NHANES", id="DXA-6 NHANES in method named"
        ),
        pytest.param(
            {"note": [{"text": "Reference database: USA (Caucasian female)"}]},
            "USA",
            id="DXA-6 USA in note named",
        ),
        pytest.param(
            {"note": [{"text": "参考数据库: 日本"}]}, "日本", id="DXA-6 Japanese reference (zh) named"
        ),
    ],
)
def test_dxa6_non_chinese_reference_is_named(extra: dict[str, Any], named: str) -> None:
    dx = _diagnosis(t_score(-2.6, **extra))
    assert dx.topic == "osteoporosis-bmd"  # still used
    assert "DXA-6" in dx.rules
    assert "reference-database-not-chinese" in dx.notes
    assert dx.params["reference_database"] == named


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({}, id="DXA-6 no reference stated: no note"),
        pytest.param(
            {"method": "Chinese reference (China multicentre 2018)"}, id="DXA-6 Chinese reference: no note"
        ),
        pytest.param({"note": [{"text": "中国人群参考数据库"}]}, id="DXA-6 中国 reference: no note"),
    ],
)
def test_dxa6_chinese_or_unstated_reference_has_no_note(extra: dict[str, Any]) -> None:
    dx = _diagnosis(t_score(-2.6, **extra))
    assert "DXA-6" not in dx.rules
    assert "reference-database-not-chinese" not in dx.notes
