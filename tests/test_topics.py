"""The topic registry (cds_service/topics.py) is the one source: every derived place follows it.

CONTRACT.md "Cards" is the registry's specification; openapi.yaml, the settings, the engine, the preview and
the card texts are derived from (or checked against) it here, so a copy that drifts fails a test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cds_service.consensus.findings import Finding
from cds_service.settings import Settings, SettingsError
from cds_service.topics import ORDER_TOPICS, TOPIC_CODES, TOPICS, Group
from scripts.openapi_topics import OPENAPI, with_topics

CONTRACT = Path(__file__).resolve().parents[1].parent / "shared" / "CONTRACT.md"


def test_openapi_topic_schemas_are_generated_from_the_registry() -> None:
    text = OPENAPI.read_text(encoding="utf-8")
    assert text == with_topics(text), "openapi.yaml drifted: run python scripts/openapi_topics.py"


@pytest.mark.skipif(not CONTRACT.is_file(), reason="../shared/CONTRACT.md is not beside the repository")
def test_the_registry_is_contract_md_cards_table() -> None:
    groups = {g.value for g in Group}
    rows = {}
    for line in CONTRACT.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and re.fullmatch(r"`[a-z0-9-]+`", cells[0]) and cells[1] in groups:
            rules = tuple(r.strip() for r in cells[4].split(","))
            rows[cells[0].strip("`")] = (cells[1], cells[2], rules)
    # duplicate-order's column is prose ("the rule of the order's purpose"): the registry lists those rules.
    prose = {
        code for code, (_, _, rules) in rows.items() if not re.fullmatch(r"[A-Z]+(-[A-Z0-9]+)+", rules[0])
    }
    assert prose <= {"duplicate-order"}
    rows = {code: row if code not in prose else (*row[:2], TOPICS[code].rules) for code, row in rows.items()}
    assert rows == {code: (t.group.value, t.indicator, t.rules) for code, t in TOPICS.items()}


def test_order_topics_are_the_recommendations_that_propose_orders() -> None:
    assert {
        "spine-radiograph-recommended",
        "qct-recommended",
        "bmd-measurement-recommended",
        "forearm-dxa-recommended",
        "fracture-imaging-recommended",
    } == ORDER_TOPICS
    assert all(TOPICS[t].group is Group.RECOMMENDATION for t in ORDER_TOPICS)


def test_settings_accept_exactly_the_registry_codes() -> None:
    assert Settings.from_env({"OSTEO_CDS_DISABLED_CARDS": ",".join(TOPIC_CODES)}).disabled_cards == set(
        TOPIC_CODES
    )
    with pytest.raises(SettingsError, match="unknown topic"):
        Settings.from_env({"OSTEO_CDS_DISABLED_CARDS": "no-such-card"})


@pytest.mark.parametrize("code", TOPIC_CODES)
def test_a_finding_takes_group_and_indicator_from_the_registry(code: str) -> None:
    finding = Finding(topic=code, rules=TOPICS[code].rules)
    assert (finding.group, finding.indicator) == (TOPICS[code].group, TOPICS[code].indicator)
