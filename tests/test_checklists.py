"""docs/architecture.md's change checklists, walked: what a new maintainer edits, and that it is enough.

- A new card: the registry (cds_service/topics.py), the card texts in both languages, the rule that
  returns its Finding, and tests. Everything else (settings, engine, preview, openapi.yaml) follows.
- A new FHIR code: one line in cds_service/facts/valuesets.py, recognised end to end.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from cds_service.api.app import create_app
from cds_service.cards.render import render_cards
from cds_service.cards.texts import card_texts
from cds_service.consensus.findings import Finding
from cds_service.engine import evaluate
from cds_service.settings import LANGUAGES, Settings
from cds_service.topics import TOPICS, Group, Topic
from scripts.openapi_topics import OPENAPI, with_topics
from tests.builders import TODAY, make_settings, patient

REPO = Path(__file__).resolve().parents[1]
NEW_TOPIC = "example-new-card"  # a card that does not exist: added to the registry for this test only


@pytest.fixture
def new_card(monkeypatch: pytest.MonkeyPatch) -> str:
    """Checklist "Adding a card", steps 1 and 2: a registry row and texts in both languages."""
    monkeypatch.setitem(
        TOPICS, NEW_TOPIC, Topic(Group.RECOMMENDATION, "warning", ("DXA-5",), proposes_orders=True)
    )
    for language in LANGUAGES:
        words = {"title": f"New card ({language})", "summary": "Summary {value}", "detail": "Detail."}
        monkeypatch.setitem(card_texts(language)["cards"], NEW_TOPIC, words)
    return NEW_TOPIC


def test_a_new_card_is_accepted_by_the_settings(new_card: str) -> None:
    assert new_card in Settings.from_env({"OSTEO_CDS_DISABLED_CARDS": new_card}).disabled_cards


def test_a_new_card_renders_with_the_registry_s_group_and_indicator(new_card: str) -> None:
    finding = Finding(topic=new_card, rules=("DXA-5",))
    for language in LANGUAGES:
        [card] = render_cards([finding], [], language=language, patient_id="p1")
        assert (card["source"]["topic"]["code"], card["indicator"]) == (new_card, "warning")
        assert "overrideReasons" in card  # a recommendation


def test_a_new_card_appears_in_the_generated_openapi_schemas(new_card: str) -> None:
    generated = with_topics(OPENAPI.read_text(encoding="utf-8"))
    assert f"- {new_card}" in generated.split("# END topic-schemas")[0].split("RecommendationTopic:")[1]
    assert generated.count(f"- {new_card}") == 2  # its group's enum and its indicator's rule


def test_a_new_card_is_listed_by_the_preview_with_its_rules(new_card: str) -> None:
    client = create_app(make_settings(preview_enabled=True)).test_client()
    page = client.get("/").get_data(as_text=True)
    row = page.split(f'data-topic="{new_card}"', 1)[1].split("</tr>", 1)[0]
    assert "DXA-5" in row


def test_a_new_order_card_is_withheld_from_a_deceased_patient(
    new_card: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Step 3 (the rule) is the consensus function; here a stand-in rule returns the new card."""
    from cds_service import engine

    monkeypatch.setattr(engine, "assess", lambda *args, **kwargs: [Finding(topic=new_card, rules=("DXA-5",))])
    assert evaluate([patient()], "p1", make_settings()).topics == [new_card]
    assert evaluate([patient(deceased=True)], "p1", make_settings()).topics == []


# --- Adding a FHIR code: one line in facts/valuesets.py -------------------------------------------------

NEW_CODE = "TEST-0001"  # not a real LOINC code: stands for a newly verified thoracolumbar spine study
_RECORD = [
    patient(birth_date="1950-03-01"),
    {
        "resourceType": "DiagnosticReport",
        "id": "r1",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://loinc.org", "code": NEW_CODE}]},
        "effectiveDateTime": f"{TODAY.year - 1}-06-01",
        "conclusion": "No fracture.",
    },
]
_EVALUATE = f"""
import json, sys
from datetime import date
from cds_service.engine import evaluate
from cds_service.settings import Settings
settings = Settings(auth="none", today=date.fromisoformat({TODAY.isoformat()!r}))
print(json.dumps(evaluate(json.load(sys.stdin), "p1", settings).topics))
"""


def _topics_with_edited_valuesets(tmp_path: Path, old: str, new: str) -> list[str]:
    """Evaluate the record with a copy of the package whose valuesets.py alone was edited."""
    shutil.copytree(
        REPO / "cds_service", tmp_path / "cds_service", ignore=shutil.ignore_patterns("__pycache__")
    )
    with (REPO / "pyproject.toml").open("rb") as handle:
        data_dirs = tomllib.load(handle)["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    for folder in data_dirs:  # the data the package reads beside it (card texts, report cues)
        shutil.copytree(REPO / folder, tmp_path / folder)
    valuesets = tmp_path / "cds_service" / "facts" / "valuesets.py"
    text = valuesets.read_text(encoding="utf-8")
    assert text.count(old) == 1
    valuesets.write_text(text.replace(old, new), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", _EVALUATE],
        input=json.dumps(_RECORD),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        check=True,
        timeout=120,
    )
    topics: Any = json.loads(done.stdout)
    return list(topics)


def test_a_new_imaging_code_is_one_line_in_valuesets(tmp_path: Path) -> None:
    """REC-SPINE-XR: unknown, the study does not cover the spine and the card is given; added to
    IMAGING_STUDIES as a thoracolumbar radiograph, the card is not given. No other file changes."""
    assert "spine-radiograph-recommended" in evaluate(_RECORD, "p1", make_settings()).topics
    anchor = "IMAGING_STUDIES: dict[str, ImagingStudy] = {\n"
    line = f'    "{NEW_CODE}": ImagingStudy(spine=_TL, radiograph=True),\n'
    topics = _topics_with_edited_valuesets(tmp_path, anchor, anchor + line)
    assert "spine-radiograph-recommended" not in topics
