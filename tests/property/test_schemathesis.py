"""openapi.yaml against the app: schemathesis in-process (WSGI), the spec's own examples, and real cards.

The schemathesis run is bounded and reproducible: a fixed seed, deterministic generation and a few
examples per operation, with the checks "not a server error", "response conforms to the schema",
"content type is the documented one" and "status code is documented". It runs without authentication
(OSTEO_CDS_AUTH=none) and without network: every FHIR call the app would make fails inside `responses`.

What the schema cannot say (CONTRACT.md "Cards": no null or empty optional field, rule IDs from
CONSENSUS-RULES.md in each card's detail) is checked here in Python on every 200 the hook gives.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import responses
import schemathesis
import yaml
from flask import Flask
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cds_service.api.app import create_app
from cds_service.settings import Settings
from tests import builders
from tests.conftest import EXAMPLES, check_cds_response

REPO = Path(__file__).resolve().parents[2]
OPENAPI = REPO / "openapi.yaml"
RULES_FILE = REPO.parent / "shared" / "CONSENSUS-RULES.md"
TODAY = date(2021, 6, 1)  # the date the example requests were built for (tests/conftest.py)
# The only fhirServer this app may call; `responses` answers it with connection errors (→ 412).
ALLOWED_FHIR = "https://fhir.invalid/r4"
HOOK_PATH = "/cds-services/osteoporosis-patient-view"
# The example requests that carry their data (the -no-prefetch ones would read a FHIR server).
PREFETCH_EXAMPLES = sorted(p.stem for p in EXAMPLES.glob("*-prefetch.json") if "-no-prefetch" not in p.stem)

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20200601,
        "generation": {"max-examples": 50, "deterministic": True, "mode": "all", "database": "none"},
        "phases": {"stateful": {"enabled": False}},
    }
)
schema = schemathesis.openapi.from_path(OPENAPI, config=CONFIG)
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance, status_code_conformance]


@cache
def openapi_document() -> dict[str, Any]:
    loaded = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def component_validator(name: str) -> jsonschema.Draft202012Validator:
    """A JSON Schema 2020-12 validator for `#/components/schemas/<name>` (refs resolve in the document)."""
    root = {"$ref": f"#/components/schemas/{name}", "components": openapi_document()["components"]}
    return jsonschema.Draft202012Validator(
        root, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@cache
def consensus_rule_ids() -> frozenset[str] | None:
    """The rule IDs of CONSENSUS-RULES.md (../shared beside the repo in CI), None when it is not there."""
    if not RULES_FILE.is_file():
        return None
    text = RULES_FILE.read_text(encoding="utf-8")
    return frozenset(re.findall(r"^\|\s*([A-Z]+(?:-[A-Za-z0-9]+)+)\s*\|", text, flags=re.MULTILINE))


def cited_rules(card: dict[str, Any]) -> list[str]:
    """The rule IDs on the card's "consensus rules" line (CONTRACT.md: rule IDs in `detail`)."""
    return builders.cited_rules(card["detail"])


def check_cards_beyond_schema(body: Any) -> None:
    """CONTRACT.md card rules the schema cannot express."""
    check_cds_response(body)
    known = consensus_rule_ids()
    for card in body["cards"]:
        rules = cited_rules(card)
        assert rules, f"{card['source']['topic']['code']}: no rule IDs in detail"
        if known is not None:
            assert set(rules) <= known, f"rules not in CONSENSUS-RULES.md: {set(rules) - known}"


# --- the app under test ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wsgi_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    database = tmp_path_factory.mktemp("schemathesis") / "audit.db"
    settings = Settings(
        auth="none", today=TODAY, database_url=f"sqlite:///{database}", fhir_servers=(ALLOWED_FHIR,)
    )
    # No network: any FHIR request the app makes fails as a connection error.
    with responses.RequestsMock(assert_all_requests_are_fired=False):
        yield create_app(settings)


# --- schemathesis ------------------------------------------------------------------------------------


@schema.parametrize()
def test_api_conforms_to_openapi(case: schemathesis.Case, wsgi_app: Flask) -> None:
    response = case.call_and_validate(app=wsgi_app, checks=CHECKS)
    # The coverage phase also sends undocumented methods (OPTIONS is the CORS preflight): POSTs only.
    if case.operation.path == HOOK_PATH and case.method == "POST" and response.status_code == 200:
        check_cards_beyond_schema(response.json())


# --- the document itself -----------------------------------------------------------------------------


def test_openapi_document_is_valid_openapi_3_1() -> None:
    assert openapi_document()["openapi"].startswith("3.1")
    schema.validate()  # against the OpenAPI 3.1 meta-schema


def test_openapi_documents_exactly_the_app_routes(app: Flask) -> None:
    """Every route the app serves is in openapi.yaml and the reverse (a new route must be documented)."""
    adapter = app.url_map.bind("localhost")
    documented: set[tuple[str, str]] = set()
    for path, item in openapi_document()["paths"].items():
        concrete = path.replace("{id}", "osteoporosis-patient-view")
        for method in item:
            endpoint, _ = adapter.match(concrete, method=method.upper())
            documented.add((endpoint, method.upper()))
    served = {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    assert documented == served


@pytest.mark.parametrize(
    ("path", "schema_name"),
    [
        ("/cds-services/osteoporosis-patient-view", "PatientViewRequest"),
        ("/cds-services/{id}/feedback", "FeedbackRequest"),
    ],
)
def test_request_examples_follow_their_schema(path: str, schema_name: str) -> None:
    content = openapi_document()["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    assert content["schema"] == {"$ref": f"#/components/schemas/{schema_name}"}
    validator = component_validator(schema_name)
    for name, example in content["examples"].items():
        errors = [error.message for error in validator.iter_errors(example["value"])]
        assert not errors, f"example {name}: {errors}"


def test_spec_examples_answer_as_documented(client: Any) -> None:
    """The spec's hook examples answer 200 with cards that follow the schema (a diagnosis among them)."""
    content = openapi_document()["paths"][HOOK_PATH]["post"]["requestBody"]["content"]["application/json"]
    validator = component_validator("CdsResponse")
    topics = []
    for example in content["examples"].values():
        response = client.post(HOOK_PATH, json=example["value"])
        assert response.status_code == 200
        errors = [error.message for error in validator.iter_errors(response.json)]
        assert not errors
        check_cards_beyond_schema(response.json)
        topics += [card["source"]["topic"]["code"] for card in response.json["cards"]]
    assert "osteoporosis-bmd" in topics


@pytest.mark.parametrize("language", ["en", "zh-CN"])
@pytest.mark.parametrize("example", PREFETCH_EXAMPLES)
def test_example_requests_give_cards_that_follow_the_schema(
    client: Any, example_request: Any, example: str, language: str
) -> None:
    response = client.post(HOOK_PATH, json=example_request(example), headers={"Accept-Language": language})
    assert response.status_code == 200
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in component_validator("CdsResponse").iter_errors(response.json)
    ]
    assert not errors
    check_cards_beyond_schema(response.json)


# --- the schema is strict enough to catch contract breaks ---------------------------------------------


def _valid_cards() -> dict[str, Any]:
    body = {
        "cards": [
            {
                "uuid": "0b6f2a56-4a62-4d3e-9a43-1c7f0b8e2f10",
                "summary": "Osteoporosis by bone density",
                "indicator": "warning",
                "detail": "**Consensus rules:** DXA-3",
                "source": {
                    "label": "osteo-cds",
                    "topic": {"system": "urn:osteo-cds:finding", "code": "osteoporosis-bmd"},
                },
                "selectionBehavior": "at-most-one",
                "suggestions": [
                    {
                        "label": "Record osteoporosis",
                        "uuid": "5d3c8f0e-0f55-4a8e-8a2b-8b2a9b1f6c21",
                        "actions": [
                            {
                                "type": "create",
                                "description": "Add to the problem list",
                                "resource": {
                                    "resourceType": "Condition",
                                    "verificationStatus": {"coding": [{"code": "provisional"}]},
                                    "code": {"text": "Osteoporosis"},
                                    "subject": {"reference": "Patient/p1"},
                                },
                            }
                        ],
                    }
                ],
            },
            {
                "uuid": "9c1d7e3a-2b4f-4c6d-8e9f-0a1b2c3d4e5f",
                "summary": "Thoracic and lumbar spine radiographs are recommended",
                "indicator": "info",
                "detail": "**Consensus rules:** REC-SPINE-XR",
                "source": {
                    "label": "osteo-cds",
                    "topic": {"system": "urn:osteo-cds:finding", "code": "spine-radiograph-recommended"},
                },
                "selectionBehavior": "at-most-one",
                "suggestions": [
                    {
                        "label": "Order spine radiographs",
                        "uuid": "1e2d3c4b-5a69-4788-9a0b-1c2d3e4f5a6b",
                        "actions": [
                            {
                                "type": "create",
                                "description": "Order",
                                "resource": {
                                    "resourceType": "ServiceRequest",
                                    "status": "draft",
                                    "intent": "proposal",
                                    "code": {"coding": [{"system": "http://loinc.org", "code": "24984-7"}]},
                                    "subject": {"reference": "Patient/p1"},
                                    "reasonCode": [{"text": "REC-SPINE-XR"}],
                                    "note": [{"text": "Proposed by osteo-cds; rules REC-SPINE-XR."}],
                                },
                            }
                        ],
                    }
                ],
                "overrideReasons": [{"system": "urn:osteo-cds:override-reason", "code": "x", "display": "X"}],
            },
        ]
    }
    return copy.deepcopy(body)


def _break_summary(body: dict[str, Any]) -> None:
    body["cards"][0]["summary"] = "x" * 140


def _break_topic_system(body: dict[str, Any]) -> None:
    body["cards"][0]["source"]["topic"]["system"] = "urn:other"


def _break_topic_code(body: dict[str, Any]) -> None:
    body["cards"][0]["source"]["topic"]["code"] = "osteopenia"


def _break_indicator_enum(body: dict[str, Any]) -> None:
    body["cards"][0]["indicator"] = "hard-stop"


def _break_indicator_of_topic(body: dict[str, Any]) -> None:
    body["cards"][0]["indicator"] = "critical"


def _break_uuid(body: dict[str, Any]) -> None:
    body["cards"][1]["suggestions"][0]["uuid"] = "not-a-uuid"


def _break_selection_behavior(body: dict[str, Any]) -> None:
    del body["cards"][0]["selectionBehavior"]


def _break_override_display(body: dict[str, Any]) -> None:
    del body["cards"][1]["overrideReasons"][0]["display"]


def _break_override_reasons_missing(body: dict[str, Any]) -> None:
    del body["cards"][1]["overrideReasons"]


def _break_two_diagnoses(body: dict[str, Any]) -> None:
    second = copy.deepcopy(body["cards"][0])
    second["source"]["topic"]["code"] = "low-bone-mass"
    second["indicator"] = "info"
    body["cards"].append(second)


def _break_null_optional(body: dict[str, Any]) -> None:
    body["cards"][0]["links"] = None


def _break_empty_suggestions(body: dict[str, Any]) -> None:
    body["cards"][0]["suggestions"] = []


def _break_service_request_status(body: dict[str, Any]) -> None:
    body["cards"][1]["suggestions"][0]["actions"][0]["resource"]["status"] = "active"


def _break_service_request_note(body: dict[str, Any]) -> None:
    del body["cards"][1]["suggestions"][0]["actions"][0]["resource"]["note"]


def _break_condition_verification(body: dict[str, Any]) -> None:
    resource = body["cards"][0]["suggestions"][0]["actions"][0]["resource"]
    resource["verificationStatus"] = {"coding": [{"code": "confirmed"}]}


def _break_create_without_resource(body: dict[str, Any]) -> None:
    del body["cards"][0]["suggestions"][0]["actions"][0]["resource"]


def _break_misspelt_field(body: dict[str, Any]) -> None:
    body["cards"][0]["selectionbehavior"] = body["cards"][0].pop("selectionBehavior")


BREAKS = [
    _break_summary,
    _break_topic_system,
    _break_topic_code,
    _break_indicator_enum,
    _break_indicator_of_topic,
    _break_uuid,
    _break_selection_behavior,
    _break_override_display,
    _break_override_reasons_missing,
    _break_two_diagnoses,
    _break_null_optional,
    _break_empty_suggestions,
    _break_service_request_status,
    _break_service_request_note,
    _break_condition_verification,
    _break_create_without_resource,
    _break_misspelt_field,
]


def test_valid_cards_pass_the_schema() -> None:
    errors = [error.message for error in component_validator("CdsResponse").iter_errors(_valid_cards())]
    assert not errors


@pytest.mark.parametrize("contract_break", BREAKS, ids=[b.__name__.removeprefix("_break_") for b in BREAKS])
def test_schema_rejects_contract_breaks(contract_break: Any) -> None:
    body = _valid_cards()
    contract_break(body)
    assert not component_validator("CdsResponse").is_valid(body)
