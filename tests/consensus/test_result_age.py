"""Issue 17: an old decisive result says how old it is; a normal or low-bone-mass result older than
OSTEO_CDS_BMD_REMEASURE_MONTHS (default 60) also advises re-measurement; an osteoporosis-range result or
a fragility fracture keeps supporting the diagnosis whatever its age (DXA-3, FX-2). Today is 2026-11-25."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from cds_service.settings import ClinicalSettings, Settings
from tests.builders import (
    condition,
    diagnosis_of,
    evaluate_resources,
    findings_of,
    make_settings,
    patient,
    t_score,
)

WOMAN = patient(gender="female", birth_date="1950-01-01")


@pytest.mark.parametrize(
    ("score", "when", "topic", "remeasure"),
    [
        pytest.param(
            -0.5, "2021-11-25", "normal-bmd", False, id="DXA-3 normal exactly 60 months old: no remeasure"
        ),
        pytest.param(
            -0.5, "2021-11-24", "normal-bmd", True, id="DXA-3 normal 60 months and a day: remeasure"
        ),
        pytest.param(
            -1.8, "2016-03-01", "low-bone-mass", True, id="DXA-3 low bone mass 10 years old: remeasure"
        ),
        pytest.param(-1.8, "2025-03-01", "low-bone-mass", False, id="DXA-3 low bone mass 1 year old: none"),
        pytest.param(
            -3.0,
            "2016-03-01",
            "osteoporosis-bmd",
            False,
            id="DXA-3 osteoporosis 10 years old: still supports",
        ),
    ],
)
def test_remeasure_old_normal_or_low_bone_mass(score: float, when: str, topic: str, remeasure: bool) -> None:
    dx = diagnosis_of(findings_of([WOMAN, t_score(score, when=when)]))
    assert dx is not None and dx.topic == topic
    assert ("bmd-remeasure" in dx.notes) is remeasure
    names = {s.name: s.value for s in dx.settings}
    assert ("OSTEO_CDS_BMD_REMEASURE_MONTHS" in names) is remeasure


def test_remeasure_months_is_a_setting() -> None:
    resources = [WOMAN, t_score(-0.5, when="2024-10-01")]
    assert "bmd-remeasure" not in diagnosis_of(findings_of(resources)).notes  # type: ignore[union-attr]
    dx = diagnosis_of(
        findings_of(resources, settings=make_settings(clinical=_clinical(bmd_remeasure_months=24)))
    )
    assert dx is not None and "bmd-remeasure" in dx.notes
    assert Settings.from_env({"OSTEO_CDS_BMD_REMEASURE_MONTHS": "24"}).clinical.bmd_remeasure_months == 24
    assert Settings.from_env({}).clinical.bmd_remeasure_months == 60


def _clinical(**changes: Any) -> ClinicalSettings:
    return replace(make_settings().clinical, **changes)


@pytest.mark.parametrize(
    ("resources", "en", "zh"),
    [
        pytest.param(
            [t_score(-3.0, when="2016-03-01")],
            "(2016-03-01, 10 years ago)",
            "（2016-03-01，10年前）",
            id="DXA-3 osteoporosis from 2016: the summary says 10 years ago",
        ),
        pytest.param(
            [t_score(-3.0, when="2025-11-01")],
            "(2025-11-01, 1 year ago)",
            "（2025-11-01，1年前）",
            id="DXA-3 a result of one year: 1 year ago",
        ),
        pytest.param(
            [t_score(-3.0, when="2026-01-10")],
            "(2026-01-10)",
            "（2026-01-10）",
            id="DXA-3 a result under a year old: the date alone",
        ),
        pytest.param(
            [condition(snomed="5913000", onset="2014-05-01")],
            "(2014-05-01, 12 years ago)",
            "2014-05-01，12年前",
            id="FX-2 a hip fracture of 2014 keeps the diagnosis; the summary says 12 years ago",
        ),
    ],
)
def test_summary_says_how_old_the_decisive_result_is(
    resources: list[dict[str, Any]], en: str, zh: str
) -> None:
    for language, expected in (("en", en), ("zh-CN", zh)):
        cards = evaluate_resources([WOMAN, *resources], language=language).response["cards"]
        assert expected in cards[0]["summary"], (language, cards[0]["summary"])
