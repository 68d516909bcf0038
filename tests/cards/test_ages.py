"""Issue 17: an age on a card says what it is — the age at the exam, at the fracture, or today (POP-1, POP-3,
POP-4, REC-SPINE-XR)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.builders import born, evaluate_resources, patient, t_score, z_score

EXAM = "2024-01-10"


def _cards(resources: list[dict[str, Any]], language: str) -> dict[str, str]:
    """Each card's summary, detail and full explanation (what the SMART app shows), by topic."""
    result = evaluate_resources(resources, language=language)
    return {
        c["source"]["topic"]["code"]: c["summary"] + "\n" + c["detail"] + "\n" + explanation
        for c, explanation in zip(result.response["cards"], result.explanations(), strict=True)
    }


def _details(resources: list[dict[str, Any]], language: str) -> dict[str, str]:
    cards = evaluate_resources(resources, language=language).response["cards"]
    return {c["source"]["topic"]["code"]: c["detail"] for c in cards}


# (full explanation en, zh; the card's own short line en, zh — None where the note is not one that changes
# how the card reads and so is in the explanation only)
@pytest.mark.parametrize(
    ("who", "score", "topic", "full", "card"),
    [
        pytest.param(
            patient(gender="female", birth_date=born(69, on=EXAM)),
            t_score(-2.7, when=EXAM),
            "osteoporosis-bmd",
            ("aged 69 at the exam she was **assumed postmenopausal**", "该女性检查时69岁"),
            (
                "Assumed postmenopausal, aged 69 at the exam",
                "未记录绝经：检查时69岁，**假定为绝经后**（POP-4）",
            ),
            id="POP-4 assumed postmenopausal: aged 69 at the exam",
        ),
        pytest.param(
            patient(gender="male", birth_date=born(55, on=EXAM)),
            t_score(-1.5, when=EXAM),
            "low-bone-mass",
            ("A man aged 55 at the exam", "检查时55岁男性"),
            None,
            id="POP-1 older male: aged 55 at the exam",
        ),
        pytest.param(
            patient(gender="female", birth_date=born(45, on=EXAM)),
            z_score(-2.3, when=EXAM),
            "below-expected-range-for-age",
            ("aged 45 at the exam she was taken as premenopausal", "患者检查时45岁"),
            ("Taken as premenopausal, aged 45 at the exam", "检查时45岁，按年龄视为绝经前（POP-4）"),
            id="POP-3 premenopausal by age: aged 45 at the exam",
        ),
    ],
)
def test_pop_ages_say_at_the_exam(
    who: dict[str, Any],
    score: dict[str, Any],
    topic: str,
    full: tuple[str, str],
    card: tuple[str, str] | None,
) -> None:
    for language, text in zip(("en", "zh-CN"), full, strict=True):
        assert text in _cards([who, score], language)[topic]
    if card is not None:
        for language, line in zip(("en", "zh-CN"), card, strict=True):
            assert line in _details([who, score], language)[topic]


def test_rec_spine_xr_age_says_today() -> None:
    who = patient(gender="female", birth_date="1950-01-01")  # 76 on the tests' today (2026-11-25)
    resources = [who, t_score(-1.5, when=EXAM)]
    assert _cards(resources, "en")["spine-radiograph-recommended"].startswith("Aged 76 today:")
    assert "患者现年76岁" in _cards(resources, "zh-CN")["spine-radiograph-recommended"]
