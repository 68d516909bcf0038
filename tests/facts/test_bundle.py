"""FHIR Bundles → resources (cds_service.facts.bundle): urn:uuid references, any Bundle type, one patient."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.facts.bundle import BundleError, bundle_resources, single_patient_id
from tests.builders import bundle, condition, facts_of, observation, patient, t_score


def _by_key(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{r['resourceType']}/{r.get('id')}": r for r in resources}


def test_urn_uuid_references_become_type_and_id() -> None:
    source = bundle(
        patient(),
        t_score(-2.7, id="t1", device="Device/d1"),
        condition(snomed="64859006", id="c1"),
        {"resourceType": "Device", "id": "d1", "manufacturer": "GE Lunar"},
        urn=True,
    )
    assert source["type"] == "transaction"
    assert source["entry"][1]["resource"]["subject"]["reference"].startswith("urn:uuid:")
    resources = _by_key(bundle_resources(source))
    assert resources["Observation/t1"]["subject"] == {"reference": "Patient/p1"}
    assert resources["Observation/t1"]["device"] == {"reference": "Device/d1"}
    assert resources["Condition/c1"]["subject"] == {"reference": "Patient/p1"}


def test_urn_uuid_bundle_gives_the_same_facts_as_a_plain_one() -> None:
    items = [
        patient(gender="male", birth_date="1950-01-01"),
        t_score(-2.7, id="t1"),
        condition(snomed="69896004"),
    ]
    plain = facts_of(bundle_resources(bundle(*items)))
    urn = facts_of(bundle_resources(bundle(*items, urn=True)))
    assert urn.measurements == plain.measurements
    assert urn.coded == plain.coded
    assert [m.source for m in urn.measurements] == ["Observation/t1"]


def test_resource_without_id_takes_the_uuid_of_its_full_url() -> None:
    uuid = "7f0c5c3e-4f1b-4d3e-9a55-3a1d0c2e8b11"
    source = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": f"urn:uuid:{uuid}", "resource": {"resourceType": "Patient", "gender": "male"}},
            {
                "fullUrl": "urn:uuid:0b7e2f6a-1111-4222-8333-944455556666",
                "resource": {**t_score(-2.7), "subject": {"reference": f"urn:uuid:{uuid}"}},
            },
        ],
    }
    resources = bundle_resources(source)
    assert resources[0]["id"] == uuid
    assert resources[1]["subject"] == {"reference": f"Patient/{uuid}"}
    assert single_patient_id(resources) == uuid


def test_absolute_full_urls_are_aliases_too() -> None:
    base = "https://ehr.example.org/fhir"
    source = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"fullUrl": f"{base}/Patient/p1", "resource": patient()},
            {
                "fullUrl": f"{base}/Observation/t1",
                "resource": {**t_score(-2.7, id="t1"), "subject": {"reference": f"{base}/Patient/p1"}},
            },
        ],
    }
    resources = _by_key(bundle_resources(source))
    assert resources["Observation/t1"]["subject"] == {"reference": "Patient/p1"}


def test_nested_references_are_rewritten_and_other_strings_kept() -> None:
    urn = "urn:uuid:aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
    obs = {
        **observation(loinc="38268-9", id="panel"),
        "subject": {"reference": urn},
        "hasMember": [{"reference": urn}],
        "note": [{"text": urn}],  # not a reference: kept as written
    }
    source = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": urn, "resource": patient()}, {"resource": obs}],
    }
    [_, rewritten] = bundle_resources(source)
    assert rewritten["subject"] == {"reference": "Patient/p1"}
    assert rewritten["hasMember"] == [{"reference": "Patient/p1"}]
    assert rewritten["note"] == [{"text": urn}]


@pytest.mark.parametrize(
    "bundle_type",
    [
        pytest.param("collection", id="bundle type collection"),
        pytest.param("searchset", id="bundle type searchset"),
        pytest.param("transaction", id="bundle type transaction"),
        pytest.param("batch", id="bundle type batch"),
        pytest.param("document", id="bundle type document"),
    ],
)
def test_any_bundle_type(bundle_type: str) -> None:
    resources = bundle_resources(bundle(patient(), t_score(-2.7), type=bundle_type))
    assert [r["resourceType"] for r in resources] == ["Patient", "Observation"]


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param(None, id="bundle without entry"),
        pytest.param([], id="bundle with empty entry"),
        pytest.param("x", id="bundle entry a string"),
        pytest.param(
            [None, 3, "x", [], {}, {"resource": None}, {"resource": "Patient"}], id="bundle junk entries"
        ),
    ],
)
def test_junk_entries_are_passed_over(entries: Any) -> None:
    source: dict[str, Any] = {"resourceType": "Bundle", "type": "collection"}
    if entries is not None:
        source["entry"] = entries
    assert bundle_resources(source) == []


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({"resourceType": "Patient", "id": "p1"}, id="bundle error: a Patient, not a Bundle"),
        pytest.param({}, id="bundle error: empty object"),
        pytest.param({"entry": []}, id="bundle error: no resourceType"),
    ],
)
def test_not_a_bundle_is_an_error(document: dict[str, Any]) -> None:
    with pytest.raises(BundleError):
        bundle_resources(document)


# --- one patient ------------------------------------------------------------------------------------------


def test_single_patient_id() -> None:
    assert (
        single_patient_id(bundle_resources(bundle(patient(id="abc"), t_score(-2.7, patient="abc")))) == "abc"
    )


def test_same_patient_twice_is_one_patient() -> None:
    assert single_patient_id([patient(id="p1"), patient(id="p1")]) == "p1"


@pytest.mark.parametrize(
    "resources",
    [
        pytest.param([patient(id="p1"), patient(id="p2")], id="bundle error: two patients"),
        pytest.param(
            [patient(id="p1"), patient(id="p2"), patient(id="p3")], id="bundle error: three patients"
        ),
        pytest.param([t_score(-2.7)], id="bundle error: no patient"),
        pytest.param([{"resourceType": "Patient"}], id="bundle error: a patient without id"),
        pytest.param([], id="bundle error: nothing"),
    ],
)
def test_not_exactly_one_patient_is_an_error(resources: list[dict[str, Any]]) -> None:
    with pytest.raises(BundleError):
        single_patient_id(resources)


def test_multiple_patients_in_a_bundle_is_an_error() -> None:
    resources = bundle_resources(bundle(patient(id="p1"), patient(id="p2"), t_score(-2.7), urn=True))
    with pytest.raises(BundleError, match="2 patients"):
        single_patient_id(resources)
