"""End to end over the real Synthea bundles (tests/fixtures/synthea), today fixed at 2026-11-25.

Expected diagnoses are worked out by hand from CONSENSUS-RULES.md (ages at the exam, Asia/Shanghai dates):

- Chad Quigley: M b.1952-06-19, T -2.83 on 2012-08-16 (age 60). POP-1, DXA-4, DXA-3: osteoporosis-bmd.
- Gayla Ferry: F b.1937-06-03, T -2.57 on 2017-08-03 (80). POP-4, DXA-3: osteoporosis-bmd.
- Odilia Feeney: F b.1996-06-26, T 0.08 on 2013-09-17 (17). POP-3 with a T-score only: no diagnosis,
  z-score-required.
- Sina Yundt: F b.1937-07-15, T -3.74 on 2018-03-29 (80). POP-4, DXA-3: osteoporosis-bmd.
- Tamatha Witting: F b.1948-05-29, T 0.004 on 2013-06-29 (65) is normal (DXA-3), but a wrist fracture
  (263102004) the same day with no trauma recorded is a fragility fracture by FX-1a (usual site, POP-1 at the
  fracture), which diagnoses osteoporosis whatever the BMD (FX-2, DX-3): osteoporosis-fracture.
- Vicenta Maggio: F b.1924-06-16, deceased 2002 (so no card at all; the rules are checked as if alive).
  T -0.29 (1992) and T -3.48 (1994-06-27 UTC, 1994-06-28 in
  Shanghai, age 70): the latest exam decides (DXA-1), osteoporosis (DXA-3); a forearm fracture (65966004) in
  1992 at 68, read as wrist (FX-1a): BMD osteoporosis + fragility fracture = severe-osteoporosis (DX-2).
- Willia Runolfsdottir: F b.1922-09-25, T -2.546 on 2012-11-12 (90). POP-4, DXA-3 (≤ -2.5): osteoporosis-bmd.

Only the diagnosis group is pinned here; recommendation cards (spine radiographs, …) are other rules' tests.
"""

from __future__ import annotations

import json
import uuid
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from cds_service import CONSENSUS_REFERENCE
from cds_service.engine import Evaluation
from cds_service.facts.bundle import bundle_resources, single_patient_id
from tests.builders import (
    DIAGNOSIS_TOPICS,
    TOPIC_SYSTEM,
    card_topics,
    cited_rules,
    diagnosis_of,
    diagnosis_topics,
    evaluate_resources,
    facts_of,
    findings_of,
    make_settings,
)

SYNTHEA = Path(__file__).resolve().parent / "fixtures" / "synthea"
TODAY = date(2026, 11, 25)
OSTEOPOROSIS_TOPICS = {"osteoporosis-bmd", "osteoporosis-fracture", "severe-osteoporosis"}


class Case(NamedTuple):
    file: str
    diagnosis: str | None
    dxa: str  # the Observation id of the T-score the cards rest on
    older_dxa: str | None  # an older exam that must not decide (DXA-1)
    osteoporosis_recorded: bool  # Condition 64859006 on record
    recommendation: str | None = None  # a recommendation card that must be there


CASES = [
    Case(
        "Chad_Quigley_b9737c68-296c-46fa-9a3c-aca513681a73",
        "osteoporosis-bmd",
        "65e0a2ce-f6f1-434a-b9ac-62a4a877bf7a",
        None,
        True,
    ),
    Case(
        "Gayla_Ferry_259bc6c6-9c1d-43e9-bd25-7539cf07f8ac",
        "osteoporosis-bmd",
        "cb916e04-d28e-4583-b89f-66dcb682804d",
        None,
        True,
    ),
    Case(
        "Odilia_Feeney_fe743225-b81a-4d0a-acdb-bf9110dd83d9",
        None,
        "600eb4f1-a666-4dd4-af83-1b88c90c0b57",
        None,
        False,
        "z-score-required",
    ),
    Case(
        "Sina_Yundt_9907f1bc-0884-4be2-b3d2-57602e4aaf42",
        "osteoporosis-bmd",
        "e522dcb7-7fb8-4dca-b4eb-fcee6b96e88e",
        None,
        True,
    ),
    Case(
        "Tamatha_Witting_55a37df6-b780-4272-8d51-499be0e7df86",
        "osteoporosis-fracture",
        "e9f7c1ea-4f4b-4fc0-b6bc-188bca3da246",
        None,
        False,
    ),
    Case(
        "Vicenta_Maggio_456879da-8654-413e-b211-6308d9815586",
        "severe-osteoporosis",
        "409dd1cc-dc15-471d-9a03-8bbfd5a634a7",
        "4d895e58-6e94-4929-aba7-8759b2d1264e",
        True,
    ),
    Case(
        "Willia_Runolfsdottir_074c3873-c476-40e3-8046-f67372eb5e05",
        "osteoporosis-bmd",
        "b9d2c03e-d83c-45d3-93cc-88c325b7983c",
        None,
        True,
    ),
]
IDS = {
    "Chad": "Synthea Chad Quigley M T-2.83: osteoporosis-bmd",
    "Gayla": "Synthea Gayla Ferry F80 T-2.57: osteoporosis-bmd",
    "Odilia": "Synthea Odilia Feeney F17 T only: z-score-required, no diagnosis",
    "Sina": "Synthea Sina Yundt F80 T-3.74: osteoporosis-bmd",
    "Tamatha": "Synthea Tamatha Witting F65 T0.004 + wrist fracture: osteoporosis-fracture",
    "Vicenta": "Synthea Vicenta Maggio deceased, T-3.48 + forearm fracture: severe-osteoporosis",
    "Willia": "Synthea Willia Runolfsdottir F90 T-2.546: osteoporosis-bmd",
}
PARAMS = [pytest.param(case, id=IDS[case.file.split("_")[0]]) for case in CASES]
LANGUAGES = ["en", "zh-CN"]


@cache
def _load_as_recorded(file: str) -> tuple[tuple[dict[str, Any], ...], str]:
    document = json.loads((SYNTHEA / f"{file}.json").read_text(encoding="utf-8"))
    resources = bundle_resources(document)
    return tuple(resources), single_patient_id(resources)


@cache
def _load(file: str) -> tuple[tuple[dict[str, Any], ...], str]:
    """The bundle with the Patient's death left out: a deceased patient gets no card (CONTRACT.md), so the
    rules behind Vicenta Maggio's cards are checked as if she were alive, and her death on its own below."""
    resources, patient_id = _load_as_recorded(file)
    alive = tuple(
        {k: v for k, v in r.items() if not k.startswith("deceased")}
        if r.get("resourceType") == "Patient"
        else r
        for r in resources
    )
    return alive, patient_id


def _evaluate(case: Case, language: str = "en") -> Evaluation:
    resources, patient_id = _load(case.file)
    return evaluate_resources(resources, patient_id, make_settings(), language=language)


def _suggested(cards: list[dict[str, Any]], resource_type: str) -> list[dict[str, Any]]:
    return [
        action["resource"]
        for card in cards
        for suggestion in card.get("suggestions", [])
        for action in suggestion.get("actions", [])
        if isinstance(action.get("resource"), dict)
        and action["resource"].get("resourceType") == resource_type
    ]


def _unescaped(markdown: str) -> str:
    return markdown.replace("\\", "")


def test_every_bundle_is_covered() -> None:
    assert {p.stem for p in SYNTHEA.glob("*.json")} == {case.file for case in CASES}


# --- the diagnosis ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", PARAMS)
def test_diagnosis_topic(case: Case) -> None:
    result = _evaluate(case)
    assert diagnosis_topics(result.response) == ([case.diagnosis] if case.diagnosis else [])
    if case.recommendation:
        assert case.recommendation in card_topics(result.response)


@pytest.mark.parametrize("case", PARAMS)
def test_evidence_is_the_latest_dxa_observation(case: Case) -> None:
    resources, patient_id = _load(case.file)
    findings = findings_of(resources, patient_id, make_settings())
    finding = diagnosis_of(findings) or next(f for f in findings if f.topic == case.recommendation)
    dxa_rows = [e for e in finding.evidence if e.kind == "t-score"]
    assert [e.source for e in dxa_rows] == [f"Observation/{case.dxa}"]
    assert dxa_rows[0].used is (case.diagnosis is not None)  # a T-score decides nothing for Odilia
    result = _evaluate(case)
    cards = result.response["cards"]
    index = next(i for i, c in enumerate(cards) if c["source"]["topic"]["code"] == finding.topic)
    # The card names the evidence in words; the full explanation (the SMART app) names its source.
    assert f"Observation/{case.dxa}" in _unescaped(result.explanations()[index])
    if case.older_dxa:
        assert f"Observation/{case.older_dxa}" not in {e.source for e in finding.evidence if e.used}


@pytest.mark.parametrize("case", PARAMS)
def test_no_data_notes_about_the_dxa_observations(case: Case) -> None:
    resources, patient_id = _load(case.file)
    facts = facts_of(resources, patient_id)
    assert not [
        n for n in facts.notes if n.source in (f"Observation/{case.dxa}", f"Observation/{case.older_dxa}")
    ]
    assert f"Observation/{case.dxa}" in {m.source for m in facts.measurements}


@pytest.mark.parametrize("case", PARAMS)
def test_condition_suggestion_only_when_osteoporosis_is_not_recorded(case: Case) -> None:
    cards = _evaluate(case).response["cards"]
    conditions = _suggested(cards, "Condition")
    expected = 1 if case.diagnosis in OSTEOPOROSIS_TOPICS and not case.osteoporosis_recorded else 0
    assert len(conditions) == expected
    for resource in conditions:
        assert [c["code"] for c in resource["verificationStatus"]["coding"]] == ["provisional"]  # DX-9


def test_deceased_patient_gets_no_card() -> None:
    # CONTRACT.md common sense (issue 17): Vicenta Maggio died in 2002; no card, the diagnosis included.
    vicenta = next(case for case in CASES if case.file.startswith("Vicenta"))
    resources, patient_id = _load_as_recorded(vicenta.file)
    assert evaluate_resources(resources, patient_id, make_settings()).response == {"cards": []}


# --- the cards follow CONTRACT.md -------------------------------------------------------------------------


def _no_null_or_empty(node: Any, where: str) -> None:
    assert node is not None, f"{where} is null"
    if isinstance(node, str | list | dict):
        assert len(node) > 0, f"{where} is empty"
    if isinstance(node, dict):
        for key, value in node.items():
            _no_null_or_empty(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _no_null_or_empty(value, f"{where}[{index}]")


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("case", PARAMS)
def test_cards_follow_the_contract(case: Case, language: str) -> None:
    result = _evaluate(case, language)
    body = result.response
    for explanation in result.explanations():
        assert explanation.rstrip().endswith(CONSENSUS_REFERENCE)
    assert set(body) == {"cards"}
    json.dumps(body)  # serialisable as it is
    uuids: list[str] = []
    for index, card in enumerate(body["cards"]):
        _no_null_or_empty(card, f"cards[{index}]")
        assert isinstance(card["summary"], str) and len(card["summary"]) < 140
        assert card["indicator"] in {"info", "warning", "critical"}
        topic = card["source"]["topic"]
        assert topic["system"] == TOPIC_SYSTEM
        assert isinstance(topic["code"], str)
        # CONTRACT.md "Cards": the detail ends with its one line of rule IDs; the reference is in the source
        # and, in full, in the explanation.
        assert cited_rules(card["detail"].rstrip().splitlines()[-1])
        uuids.append(card["uuid"])
        if "suggestions" in card:
            assert card["selectionBehavior"] in {"at-most-one", "any"}
            uuids.extend(s["uuid"] for s in card["suggestions"])
        if topic["code"] not in DIAGNOSIS_TOPICS:
            assert card["overrideReasons"]
    for value in uuids:
        uuid.UUID(value)
    assert len(set(uuids)) == len(uuids)
    assert len(diagnosis_topics(body)) <= 1


@pytest.mark.parametrize("case", PARAMS)
def test_language_changes_no_topic_code(case: Case) -> None:
    topics = {language: card_topics(_evaluate(case, language).response) for language in LANGUAGES}
    assert topics["en"] == topics["zh-CN"]


def test_no_unfilled_placeholders_in_card_text() -> None:
    for case in CASES:
        for language in LANGUAGES:
            for card in _evaluate(case, language).response["cards"]:
                for text in (card["summary"], card["detail"], card["source"]["topic"].get("display", "")):
                    assert "{" not in text, (case.file, language, text)
