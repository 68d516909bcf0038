"""scripts/load_fhir.py without a server: transactions keep resource ids, folders yield only Bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.load_fhir import LoadError, as_put_transaction, bundle_files, patient_ids

ROOT = Path(__file__).resolve().parents[2]


def synthea_style() -> dict[str, object]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:p-1",
                "resource": {"resourceType": "Patient", "id": "p-1"},
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "fullUrl": "urn:uuid:o-1",
                "resource": {
                    "resourceType": "Observation",
                    "id": "o-1",
                    "subject": {"reference": "urn:uuid:p-1"},
                },
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "fullUrl": "urn:uuid:x",
                "resource": {"resourceType": "Observation"},
                "request": {"method": "POST", "url": "Observation"},
            },
            {
                "resource": {"resourceType": "Practitioner", "id": "d-1"},
                "request": {"method": "POST", "url": "Practitioner", "ifNoneExist": "identifier=x|1"},
            },
        ],
    }


def test_posted_entries_with_an_id_become_puts_of_that_id() -> None:
    original = synthea_style()
    prepared = as_put_transaction(original)
    requests = [entry["request"] for entry in prepared["entry"]]  # type: ignore[index]
    assert requests == [
        {"method": "PUT", "url": "Patient/p-1"},
        {"method": "PUT", "url": "Observation/o-1"},
        {"method": "POST", "url": "Observation"},  # no id: the server names it
        {"method": "POST", "url": "Practitioner", "ifNoneExist": "identifier=x|1"},  # conditional: kept
    ]
    # references to the fullUrls are left for the server to resolve; the input is not changed
    assert prepared["entry"][1]["resource"]["subject"] == {"reference": "urn:uuid:p-1"}  # type: ignore[index]
    assert original["entry"][0]["request"]["method"] == "POST"  # type: ignore[index]
    assert patient_ids(prepared) == ("p-1",)


def test_a_collection_is_loaded_as_a_transaction() -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": {"resourceType": "Patient", "id": "a"}}],
    }
    prepared = as_put_transaction(bundle)
    assert prepared["type"] == "transaction"
    assert prepared["entry"][0]["request"] == {"method": "PUT", "url": "Patient/a"}  # type: ignore[index]


def test_not_a_bundle_is_refused() -> None:
    with pytest.raises(LoadError):
        as_put_transaction({"resourceType": "Patient", "id": "a"})


def test_folders_give_their_bundles_in_name_order_and_skip_the_index(tmp_path: Path) -> None:
    for name in ("b.json", "a.json"):
        (tmp_path / name).write_text(json.dumps({"resourceType": "Bundle", "type": "transaction"}))
    (tmp_path / "index.json").write_text(json.dumps({"patients": []}))
    (tmp_path / "notes.txt").write_text("not json")
    assert [p.name for p in bundle_files([tmp_path])] == ["a.json", "b.json"]
    with pytest.raises(LoadError):
        list(bundle_files([tmp_path / "missing"]))


def test_every_example_patient_file_is_found() -> None:
    found = {p.name for p in bundle_files([ROOT / "examples" / "patients"])}
    assert (
        "index.json" not in found
        and len(found) == len(list((ROOT / "examples" / "patients").glob("*.json"))) - 1
    )
