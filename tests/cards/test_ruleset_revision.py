"""Issue 17 go-live safety: every card names the CONSENSUS-RULES revision beside the service version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cds_service import RULESET_REVISION, __version__
from tests.builders import evaluate_resources, patient, t_score

RULES_FILE = Path(__file__).resolve().parents[3] / "shared" / "CONSENSUS-RULES.md"


@pytest.mark.skipif(
    not RULES_FILE.exists(), reason="../shared/CONSENSUS-RULES.md is not beside the repository"
)
def test_ruleset_revision_is_the_header_of_consensus_rules() -> None:
    header = re.search(r"\*\*Revision (\d{4}-\d{2}-\d{2})\*\*", RULES_FILE.read_text(encoding="utf-8"))
    assert header is not None
    assert header.group(1) == RULESET_REVISION


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_every_card_names_service_version_and_ruleset_revision(language: str) -> None:
    person = patient(gender="female", birth_date="1950-01-01")
    result = evaluate_resources([person, t_score(-2.7)], language=language)
    cards = result.response["cards"]
    assert cards
    for card, explanation in zip(cards, result.explanations(), strict=True):
        # On the card where its source is named (the detail stays five seconds long), and in the explanation.
        label = card["source"]["label"]
        assert f"osteo-cds {__version__}" in label and RULESET_REVISION in label
        version_line = explanation.rstrip().splitlines()[-1]
        assert __version__ in version_line and RULESET_REVISION in version_line
