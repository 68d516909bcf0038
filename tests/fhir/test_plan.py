"""The query plan (issue 14): conformant searches by construction, one source for templates and searches."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import responses

from cds_service.api.app import create_app
from cds_service.facts import extract
from cds_service.facts.codemap import CodeMap, parse_code_map
from cds_service.facts.valuesets import (
    BMI_LOINC,
    DXA_LOINC,
    HEIGHT_LOINC,
    IMAGING_NOTE_TYPE_LOINC,
    WEIGHT_LOINC,
)
from cds_service.fhir.gather import PrefetchStrategy
from cds_service.fhir.plan import (
    MAX_QUERY_CHARS,
    PATIENT,
    build_plan,
    is_recent,
    recent_since,
)
from cds_service.hooks.patient_view import STRATEGY
from cds_service.settings import Settings

EXAMPLE_MAP = parse_code_map(
    {
        "dxa-t-lumbar-spine": [{"system": "urn:his", "code": "YZ.T"}],
        "qct-lumbar-vbmd": [{"system": "urn:his", "code": "QCT,VBMD"}],
        "bmi": [{"system": "urn:his", "code": "TZ.BMI"}],
        "spine-imaging-report": [{"system": "urn:ris", "code": "XR-SPINE"}],
    }
)
# A site with a very long code map: 400 local codes.
LONG_MAP = parse_code_map(
    {"dxa-t-unspecified": [{"system": "urn:his", "code": f"BMD-ITEM-{n:05d}"} for n in range(400)]}
)


def params(template: str) -> list[tuple[str, str]]:
    return parse_qsl(template.partition("?")[2])


def codes(template: str) -> set[str]:
    return {code for name, value in params(template) if name == "code" for code in value.split(",")}


@pytest.mark.parametrize("code_map", [CodeMap(), EXAMPLE_MAP, LONG_MAP], ids=["none", "example", "400 codes"])
def test_every_observation_search_is_narrowed_by_code(code_map: CodeMap) -> None:
    for query in build_plan(code_map).queries:
        names = [name for name, _ in params(query.template)]
        if query.resource_type == "Observation":
            assert "code" in names or "category" in names, query.key  # never patient alone (Epic refuses)
        if not query.is_read:
            assert names[0] == "patient" and ("patient", PATIENT) in params(query.template)


@pytest.mark.parametrize("key", ["conditions", "procedures", "reports"])
def test_reports_conditions_and_procedures_are_not_narrowed(key: str) -> None:
    (query,) = [q for q in build_plan(EXAMPLE_MAP).queries if q.key == key]
    assert [name for name, _ in params(query.template)] == ["patient", "_count"]


def test_observation_codes_cover_every_code_the_reader_counts() -> None:
    """The searches ask for every coding extract.py can count, the code map's included (not copied)."""
    plan = build_plan(EXAMPLE_MAP)
    standard = {code for _, code in extract._STANDARD_OBSERVATION_CODINGS}
    assert standard <= plan.observation_codes()
    assert {*DXA_LOINC, BMI_LOINC, WEIGHT_LOINC, HEIGHT_LOINC} <= plan.observation_codes()
    assert "38268-9" in plan.observation_codes()  # a DXA panel: its values are in components
    assert {"YZ.T", "QCT%5C%2CVBMD", "TZ.BMI"} <= plan.observation_codes()  # `\,` escaped, then URL-encoded
    assert "XR-SPINE" not in plan.observation_codes()  # a report code: reports are read whole
    documents = dict(params(plan.templates["documents"]))["type"]
    assert documents == f"{IMAGING_NOTE_TYPE_LOINC},XR-SPINE"  # imaging notes filed under the local type


def test_vitals_have_their_own_key_bounded_in_the_services_own_search_only() -> None:
    (vitals,) = [q for q in build_plan(EXAMPLE_MAP).queries if q.key == "vitals"]
    assert codes(vitals.template) == {BMI_LOINC, WEIGHT_LOINC, HEIGHT_LOINC, "TZ.BMI"}
    assert "date" not in dict(params(vitals.template))  # a prefetch template cannot name today
    assert dict(params(vitals.own_template(date(2026, 11, 25))))["date"] == "ge2024-11-25"


@pytest.mark.parametrize(
    ("resource", "kept"),
    [
        ({"effectiveDateTime": "2024-11-25T08:00:00+08:00"}, True),
        ({"effectiveDateTime": "2024-11-24"}, False),
        ({"effectivePeriod": {"start": "2020-01-01", "end": "2025-01-01"}}, True),
        ({"issued": "2019-05-01T00:00:00Z"}, False),
        ({}, True),  # no date: kept, the reader notes it
    ],
    ids=["boundary day", "day before", "period ending inside", "issued long ago", "no date"],
)
def test_prefetched_vitals_are_cut_to_the_same_window(resource: dict[str, Any], kept: bool) -> None:
    assert is_recent(resource, recent_since(date(2026, 11, 25))) is kept


def test_new_keys_search_as_us_core_allows() -> None:
    templates = build_plan(CodeMap()).templates
    assert params(templates["documents"]) == [
        ("patient", PATIENT),
        ("type", IMAGING_NOTE_TYPE_LOINC),
        ("_count", "200"),
    ]
    assert params(templates["medications"])[:2] == [("patient", PATIENT), ("intent", "order,plan")]
    assert params(templates["medicationStatements"])[:1] == [("patient", PATIENT)]


def test_a_long_code_list_is_split_over_numbered_keys_each_short_enough() -> None:
    plan = build_plan(LONG_MAP)
    keys = [q.key for q in plan.queries if q.key.startswith("observations")]
    assert keys[:2] == ["observations", "observations2"] and len(keys) >= 3
    for query in plan.queries:
        longest = query.own_template(date(2026, 11, 25)).partition("?")[2].replace(PATIENT, "x" * 64)
        assert len(longest) <= MAX_QUERY_CHARS, query.key
    together = set().union(*(codes(q.template) for q in plan.queries if q.key in keys))
    assert {f"BMD-ITEM-{n:05d}" for n in range(400)} | set(DXA_LOINC) <= together


def test_the_plan_is_built_once_per_code_map() -> None:
    assert build_plan(EXAMPLE_MAP) is build_plan(parse_code_map(_raw(EXAMPLE_MAP)))


def _raw(code_map: CodeMap) -> dict[str, list[dict[str, str]]]:
    raw: dict[str, list[dict[str, str]]] = {}
    for (system, code), concept in code_map.by_coding.items():
        raw.setdefault(concept, []).append({"system": system, "code": code})
    return raw


# --- graceful degradation (issue 14): an optional parameter refused, asked again once without it ---------

BASE = "https://ehr.example.org/fhir"
CONTEXT = {"patientId": "p1", "userId": "Practitioner/u1"}
REFUSAL = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "not-supported", "diagnostics": "_count is not supported"}],
}


def refusing_count(
    rsps: responses.RequestsMock, status: int, refuse_everything: tuple[str, ...] = ()
) -> None:
    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        path, _, query = str(request.path_url).removeprefix("/fhir/").partition("?")
        resource_type = path.split("/")[0]
        if resource_type in refuse_everything or "_count=" in query:
            return status, {}, json.dumps(REFUSAL)
        if path.startswith("Patient/"):
            return 200, {}, json.dumps({"resourceType": "Patient", "id": "p1"})
        entry = {"resource": {"resourceType": resource_type, "id": f"{resource_type}-1"}}
        return 200, {}, json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": [entry]})

    rsps.add_callback(responses.GET, re.compile(re.escape(BASE) + "/.*"), callback=answer)


@pytest.mark.parametrize("status", [400, 422], ids=["400", "422"])
def test_a_refused_count_is_retried_once_without_it_and_noted(
    rsps: responses.RequestsMock, status: int
) -> None:
    refusing_count(rsps, status)
    strategy = PrefetchStrategy.from_plan(build_plan(CodeMap()))
    gathered = strategy.gather(
        prefetch=None, context=CONTEXT, fhir_server=BASE, access_token=None, settings=Settings()
    )
    searches = [q for q in strategy.keys if "?" in q.template]
    assert len(rsps.calls) == 1 + 2 * len(searches)  # the Patient read, then each search twice
    assert {r["resourceType"] for r in gathered.resources} >= {"Observation", "DocumentReference"}
    noted = {(n.source, n.reason, n.detail) for n in gathered.notes}
    assert ("Observation", "fhir-parameter-refused", "_count") in noted
    assert gathered.omitted == ()


def test_a_search_refused_without_optional_parameters_is_not_retried_unconformant(
    rsps: responses.RequestsMock,
) -> None:
    """An optional key still refused without _count is stated on the cards; never a wider search."""
    refusing_count(rsps, 400, refuse_everything=("DocumentReference",))
    strategy = PrefetchStrategy.from_plan(build_plan(CodeMap()))
    gathered = strategy.gather(
        prefetch=None, context=CONTEXT, fhir_server=BASE, access_token=None, settings=Settings()
    )
    document_calls = [
        str(c.request.path_url) for c in rsps.calls if "DocumentReference" in str(c.request.path_url)
    ]
    assert len(document_calls) == 2 and all("type=18748-4" in call for call in document_calls)
    assert gathered.omitted == ("documents",)
    assert ("DocumentReference", "fhir-not-read", "documents") in {
        (n.source, n.reason, n.detail) for n in gathered.notes
    }


def test_a_refused_parameter_reaches_the_cards_data_notes(
    rsps: responses.RequestsMock, tmp_path: Path
) -> None:
    refusing_count(rsps, 400)
    settings = Settings(auth="none", database_url=f"sqlite:///{tmp_path / 'a.db'}", metrics_enabled=False)
    body = {
        "hook": "patient-view",
        "hookInstance": "6f1c1f0e-2f7a-4b52-9d43-3c0d2b8e7a10",
        "fhirServer": BASE,
        "context": CONTEXT,
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-01-01"}
        },
    }
    response = create_app(settings).test_client().post("/cds-services/osteoporosis-patient-view", json=body)
    assert response.status_code == 200
    details = " ".join(card["detail"] for card in response.get_json()["cards"])
    # CONTRACT.md "Cards": a refused FHIR query changes how the card is read, so the card says it in one
    # short line (which parameter is in the full explanation's data notes).
    assert "The FHIR server refused a search parameter" in details


# --- report bodies given as a `url` to a Binary (read by facts/, fetched here) --------------------------


def test_binary_report_bodies_on_the_same_server_are_read_after_the_searches(
    rsps: responses.RequestsMock,
) -> None:
    report = {
        "resourceType": "DiagnosticReport",
        "id": "r1",
        "presentedForm": [
            {"contentType": "text/plain", "url": "Binary/b1"},
            {"contentType": "text/plain", "url": f"{BASE}/Binary/b2/_history/3"},
            {
                "contentType": "text/plain",
                "url": "https://elsewhere.example/fhir/Binary/b3",
            },  # never: the token
            {"contentType": "text/plain", "data": "5pGY6KaB", "url": "Binary/b4"},  # inline: nothing to fetch
        ],
    }
    document = {
        "resourceType": "DocumentReference",
        "id": "d1",
        "content": [{"attachment": {"url": "Binary/b1"}}],
    }
    binary = {"resourceType": "Binary", "contentType": "text/plain", "data": "5pGY6KaB"}
    rsps.get(f"{BASE}/Binary/b1", json={**binary, "id": "b1"})
    rsps.get(f"{BASE}/Binary/b2", json={**binary, "id": "b2"})
    prefetch = {key.name: None for key in STRATEGY.keys}
    prefetch["patient"] = {"resourceType": "Patient", "id": "p1"}
    prefetch["reports"] = {"resourceType": "Bundle", "entry": [{"resource": report}]}
    prefetch["documents"] = {"resourceType": "Bundle", "entry": [{"resource": document}]}

    gathered = STRATEGY.gather(
        prefetch=prefetch, context=CONTEXT, fhir_server=BASE, access_token="t", settings=Settings()
    )

    assert sorted(str(c.request.url) for c in rsps.calls) == [f"{BASE}/Binary/b1", f"{BASE}/Binary/b2"]
    assert {r["id"] for r in gathered.resources if r["resourceType"] == "Binary"} == {"b1", "b2"}
