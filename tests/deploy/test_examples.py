"""examples/patients: every demonstration patient gives the cards index.json promises (engine only, fast).

Together the hand-made records and the Synthea fixtures cover every topic code of CONTRACT.md, with the
settings the index names (today fixed, the example code map). The hand-made records use local codes only
through examples/code-map.json and standard codes only from ../shared/reference/codes.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from cds_service.engine import evaluate
from cds_service.facts.bundle import bundle_resources, single_patient_id
from cds_service.facts.codemap import CONCEPTS, load_code_map
from cds_service.settings import Settings
from cds_service.topics import TOPIC_CODES, Group, topics_of

ROOT = Path(__file__).resolve().parents[2]
PATIENTS_DIR = ROOT / "examples" / "patients"
INDEX_PATH = PATIENTS_DIR / "index.json"
CODE_MAP_PATH = ROOT / "examples" / "code-map.json"
REQUESTS_DIR = ROOT / "examples" / "requests"
# Standard terminologies: every code of these in a hand-made record must be one codes.md lists.
STANDARD_SYSTEMS = {
    "http://loinc.org",
    "http://snomed.info/sct",
    "http://hl7.org/fhir/sid/icd-10",
    "http://hl7.org/fhir/sid/icd-10-cm",
    "http://dicom.nema.org/resources/ontology/DCM",
}
LOCAL_SYSTEM = re.compile(r"^https?://his\.[a-z0-9-]+\.example/")
CODES_MD_CANDIDATES = (
    ROOT.parent / "shared" / "reference" / "codes.md",
    Path("/work/shared/reference/codes.md"),
)

INDEX: dict[str, Any] = json.loads(INDEX_PATH.read_text(encoding="utf-8"))
ENTRIES = [(PATIENTS_DIR / e["file"], e) for e in INDEX["patients"]] + [
    (ROOT / e["file"], e) for e in INDEX["synthea"]
]


@cache
def settings() -> Settings:
    named = INDEX["settings"]
    return Settings(
        auth="none",
        today=date.fromisoformat(named["OSTEO_CDS_TODAY"]),
        code_map=load_code_map(ROOT / named["OSTEO_CDS_CODE_MAP"]),
    )


def bundle_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def codings(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("system"), str) and isinstance(node.get("code"), str):
            yield node
        for value in node.values():
            yield from codings(value)
    elif isinstance(node, list):
        for item in node:
            yield from codings(item)


def handmade() -> list[Path]:
    return sorted(p for p in PATIENTS_DIR.glob("*.json") if p.name != "index.json")


@pytest.mark.parametrize(("path", "entry"), ENTRIES, ids=[e["file"].rsplit("/", 1)[-1] for _, e in ENTRIES])
def test_each_patient_gives_the_cards_the_index_names(path: Path, entry: dict[str, Any]) -> None:
    resources = bundle_resources(bundle_of(path))
    patient_id = single_patient_id(resources)

    result = evaluate(resources, patient_id, settings())

    assert patient_id == entry["patientId"]
    assert sorted(result.topics) == sorted(entry["expectedTopics"])
    assert [card["source"]["topic"]["code"] for card in result.response["cards"]] == result.topics


def test_the_patients_together_cover_every_card_topic() -> None:
    # patient-view's topics: the order group's cards answer draft orders, which a record alone cannot give
    # (tests/consensus/test_orders.py and tests/api/test_order_hooks.py cover each of them).
    covered = {topic for _, entry in ENTRIES for topic in entry["expectedTopics"]}
    assert covered == set(TOPIC_CODES) - set(topics_of(Group.ORDER))


def test_the_index_lists_every_handmade_file_once_with_both_languages() -> None:
    listed = [entry["file"] for entry in INDEX["patients"]]
    assert sorted(listed) == [p.name for p in handmade()]
    for entry in INDEX["patients"] + INDEX["synthea"]:
        assert entry["description"].strip() and entry["description_zh"].strip()
        assert re.search(r"[\u4e00-\u9fff]", entry["description_zh"]), entry["file"]
        assert "\n" not in entry["description"] + entry["description_zh"]


def test_the_code_map_loads_and_names_only_contract_concepts() -> None:
    raw = json.loads(CODE_MAP_PATH.read_text(encoding="utf-8"))
    assert set(raw) <= CONCEPTS
    assert load_code_map(CODE_MAP_PATH)


@pytest.mark.parametrize("path", handmade(), ids=lambda p: p.name)
def test_handmade_records_are_transactions_with_chinese_reports_and_mapped_local_codes(path: Path) -> None:
    bundle = bundle_of(path)
    code_map = settings().code_map
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["request"] == {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
        assert entry["fullUrl"].startswith("urn:uuid:")
    reports = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DiagnosticReport"]
    assert all(re.search(r"[\u4e00-\u9fff]", r["conclusion"]) for r in reports)
    # A local code on a result or a report is one the code map knows (CONTRACT.md "Local codes").
    for resource_type in ("Observation", "DiagnosticReport"):
        for entry in bundle["entry"]:
            if entry["resource"]["resourceType"] != resource_type:
                continue
            for coding in codings(entry["resource"]["code"]):
                if LOCAL_SYSTEM.match(coding["system"]):
                    assert code_map.concept_of(coding["system"], coding["code"]), coding


def _codes_md() -> str | None:
    for candidate in CODES_MD_CANDIDATES:
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8")
    return None


@pytest.mark.parametrize("path", handmade(), ids=lambda p: p.name)
def test_handmade_records_use_only_standard_codes_from_codes_md(path: Path) -> None:
    reference = _codes_md()
    if reference is None:
        pytest.skip("shared/reference/codes.md is not beside the repository")
    used = {(c["system"], c["code"]) for c in codings(bundle_of(path)) if c["system"] in STANDARD_SYSTEMS}
    unknown = sorted(
        code for _, code in used if not re.search(rf"(?<![\w.-]){re.escape(code)}(?![\w-])", reference)
    )
    assert not unknown, f"codes not in codes.md: {unknown}"


@pytest.mark.parametrize(("path", "entry"), [(PATIENTS_DIR / e["file"], e) for e in INDEX["patients"]])
def test_each_handmade_patient_has_example_requests_giving_its_cards(
    path: Path, entry: dict[str, Any]
) -> None:
    requests = {
        kind: json.loads((REQUESTS_DIR / f"{path.stem}-{kind}.json").read_text(encoding="utf-8"))
        for kind in ("prefetch", "no-prefetch")
    }
    assert {r["context"]["patientId"] for r in requests.values()} == {entry["patientId"]}
    assert "prefetch" not in requests["no-prefetch"] and "fhirServer" in requests["no-prefetch"]
    prefetched: list[dict[str, Any]] = []
    for value in requests["prefetch"]["prefetch"].values():
        if value.get("resourceType") == "Bundle":
            prefetched.extend(e["resource"] for e in value.get("entry", []))
        else:
            prefetched.append(value)

    result = evaluate(prefetched, entry["patientId"], settings())

    assert sorted(result.topics) == sorted(entry["expectedTopics"])
