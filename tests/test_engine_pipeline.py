"""One pipeline (engine.assess_record / engine.evaluate) for every caller: the hook, the CLI, the preview
and its chart. The chart draws what the engine concluded instead of re-running the rules."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service import engine
from cds_service.api.app import create_app
from cds_service.consensus import assessment as consensus_assessment
from cds_service.settings import ClinicalSettings
from tests.builders import TODAY, bundle, make_settings, patient, t_score


@pytest.fixture
def judged(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts every run of the fracture rules (FX-*), wherever it is called from."""
    calls: list[str] = []
    real = engine.judge_all

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append("judge")
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "judge_all", counting)
    monkeypatch.setattr(consensus_assessment, "judge_all", counting)
    return calls


def _woman() -> list[dict[str, Any]]:
    """A T-score of osteoporosis two years before TODAY."""
    assert TODAY.year == 2026
    return [patient(birth_date="1950-03-01"), t_score(-2.7, when="2024-01-10", id="lumbar")]


def test_evaluate_judges_fractures_once(judged: list[str]) -> None:
    evaluation = engine.evaluate(_woman(), "p1", make_settings())
    assert judged == ["judge"]
    assert evaluation.assessment is not None
    assert [f.topic for f in evaluation.assessment.findings] == evaluation.topics


def test_the_preview_draws_the_chart_from_the_engine_s_assessment(judged: list[str]) -> None:
    client = create_app(make_settings(preview_enabled=True)).test_client()
    response = client.post("/preview/evaluate", json={"document": bundle(*_woman())})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert judged == ["judge"]  # cards and chart from one run of the rules
    assert response.get_json()["chart_svg"].startswith("<svg")


def test_switched_off_cards_are_left_out_by_the_engine_for_every_caller() -> None:
    settings = make_settings(disabled_cards=frozenset({"osteoporosis-bmd"}))
    assessment = engine.assess_record(_woman(), "p1", settings)
    assert "osteoporosis-bmd" not in [f.topic for f in assessment.findings]
    assert engine.evaluate(_woman(), "p1", settings).topics == [f.topic for f in assessment.findings]


def test_the_bmd_look_back_note_reaches_every_caller() -> None:
    settings = make_settings(clinical=ClinicalSettings(bmd_lookback_months=12))
    assessment = engine.assess_record(_woman(), "p1", settings)
    assert [n.reason for n in assessment.facts.notes] == ["before-lookback"]
