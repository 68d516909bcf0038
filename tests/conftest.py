"""Shared fixtures: settings and app (flaskr style), example requests, a fake FHIR server, CDS checks."""

from __future__ import annotations

import copy
import json
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from requests import PreparedRequest

from cds_service import engine
from cds_service.api.app import create_app
from cds_service.settings import Settings

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "requests"
TODAY = date(2021, 6, 1)
FHIR_BASE = "https://ehr.example.org/fhir"
SERVICE_URL = "/cds-services/osteoporosis-patient-view"

Resource = dict[str, Any]


# --- app ----------------------------------------------------------------------------------------


class SentClient(FlaskClient):
    """Flask's test client as a WSGI server behaves: the response is closed once its body is read, so the work
    the app does after sending (the audit records of a hook call) is done before the test looks at it.
    Werkzeug's client defers that close to `response.close()`; `buffered=False` asks for its behaviour."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


Flask.test_client_class = SentClient  # every app's test_client(), in every test


@pytest.fixture
def osteo_settings(tmp_path: Path) -> Settings:
    """Development settings with a fixed today and an audit store in the test's own folder."""
    return Settings(auth="none", today=TODAY, database_url=f"sqlite:///{tmp_path / 'audit.db'}")


@pytest.fixture
def app(osteo_settings: Settings) -> Flask:
    return create_app(osteo_settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


# --- example requests (examples/requests, built by scripts/make_examples.py) ---------------------

_EXAMPLE_CACHE: dict[str, dict[str, Any]] = {}


def load_example(name: str) -> dict[str, Any]:
    if name not in _EXAMPLE_CACHE:
        _EXAMPLE_CACHE[name] = json.loads((EXAMPLES / f"{name}.json").read_text(encoding="utf-8"))
    return copy.deepcopy(_EXAMPLE_CACHE[name])


def prefetched_resources(hook_request: Mapping[str, Any]) -> list[Resource]:
    """Every resource in a request's prefetch (Bundle entries and single resources)."""
    found: list[Resource] = []
    for value in (hook_request.get("prefetch") or {}).values():
        if not isinstance(value, dict):
            continue
        if value.get("resourceType") == "Bundle":
            found.extend(e["resource"] for e in value.get("entry", []))
        else:
            found.append(value)
    return found


@pytest.fixture
def example_request() -> Callable[[str], dict[str, Any]]:
    """`example_request("chad-quigley-prefetch")` → a fresh copy of that request."""
    return load_example


# --- a FHIR server faked with `responses` ---------------------------------------------------------


def _patient_of(resource: Resource) -> str | None:
    if resource.get("resourceType") == "Patient":
        return f"Patient/{resource.get('id')}"
    subject = resource.get("subject") or resource.get("patient") or {}
    return subject.get("reference") if isinstance(subject, dict) else None


@dataclass
class FakeFhirServer:
    """Resources behind `responses`: reads, searches by patient (and ServiceRequest status), `next` paging.

    `ignore_filters` answers every search with every resource of the type, like a server that ignores
    the search parameters (the service must filter by itself).
    """

    resources: list[Resource]
    base: str = FHIR_BASE
    page_size: int = 50
    ignore_filters: bool = False
    calls: list[PreparedRequest] = field(default_factory=list)

    def register(self, rsps: responses.RequestsMock) -> FakeFhirServer:
        rsps.add_callback(responses.GET, re.compile(re.escape(self.base) + r"/.*"), callback=self._answer)
        return self

    def _answer(self, request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        self.calls.append(request)
        parts = urlsplit(str(request.url))
        path = parts.path.removeprefix(urlsplit(self.base).path).strip("/")
        query = dict(parse_qsl(parts.query))
        headers = {"Content-Type": "application/fhir+json"}
        if "/" in path:
            resource_type, resource_id = path.split("/", 1)
            for resource in self.resources:
                if resource.get("resourceType") == resource_type and resource.get("id") == resource_id:
                    return 200, headers, json.dumps(resource)
            return 404, headers, json.dumps(_outcome("not-found"))
        matches = [r for r in self.resources if r.get("resourceType") == path]
        if not self.ignore_filters:
            if "patient" in query:
                matches = [r for r in matches if _patient_of(r) == f"Patient/{query['patient']}"]
            if "status" in query:
                matches = [r for r in matches if r.get("status") in query["status"].split(",")]
        offset = int(query.get("_offset", "0"))
        page = matches[offset : offset + self.page_size]
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(matches)}
        if offset + self.page_size < len(matches):
            following = {**query, "_offset": str(offset + self.page_size)}
            bundle["link"] = [{"relation": "next", "url": f"{self.base}/{path}?{urlencode(following)}"}]
        if page:
            bundle["entry"] = [{"resource": r, "search": {"mode": "match"}} for r in page]
        return 200, headers, json.dumps(bundle)


def _outcome(code: str) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code}]}


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """All HTTP of the test goes through `responses`; unregistered URLs fail as connection errors."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def fake_fhir_server(rsps: responses.RequestsMock) -> Callable[..., FakeFhirServer]:
    """`fake_fhir_server(resources, page_size=50, ignore_filters=False)` → a registered FakeFhirServer."""

    def start(resources: list[Resource], **options: Any) -> FakeFhirServer:
        return FakeFhirServer(resources, **options).register(rsps)

    return start


# --- the engine, recorded instead of run ----------------------------------------------------------


@dataclass
class EngineCall:
    resources: list[Resource]
    patient_id: str
    language: str | None
    data_cut: bool
    orders_unknown: bool = False
    reading_notes: list[Any] = field(default_factory=list)


@pytest.fixture
def engine_calls(monkeypatch: pytest.MonkeyPatch) -> list[EngineCall]:
    """Replaces engine.evaluate by a recorder answering `{"cards": []}`: tests of what reaches the engine."""
    calls: list[EngineCall] = []

    def record(
        resources: Any,
        patient_id: str,
        settings: Settings,
        *,
        language: str | None = None,
        data_cut: bool = False,
        orders_unknown: bool = False,
        reading_notes: Any = (),
    ) -> engine.Evaluation:
        calls.append(
            EngineCall(list(resources), patient_id, language, data_cut, orders_unknown, list(reading_notes))
        )
        return engine.Evaluation(response={"cards": []})

    monkeypatch.setattr(engine, "evaluate", record)
    return calls


# --- CDS Hooks 2.0 response rules -----------------------------------------------------------------

INDICATORS = {"info", "warning", "critical"}
SELECTION_BEHAVIORS = {"at-most-one", "any"}
TOPIC_SYSTEM = "urn:osteo-cds:finding"


def _no_null_or_empty(node: Any, where: str) -> None:
    # CDS Hooks "Use of JSON": optional fields are left out, never null, "", [] or {}.
    assert node is not None, f"{where} is null"
    if isinstance(node, str | list | dict):
        assert len(node) > 0, f"{where} is empty"
    if isinstance(node, dict):
        for key, value in node.items():
            _no_null_or_empty(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _no_null_or_empty(value, f"{where}[{index}]")


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


def check_cds_response(body: Any) -> None:
    """Assert a body follows the CDS Hooks 2.0 response rules and CONTRACT.md's card rules."""
    assert isinstance(body, dict) and isinstance(body.get("cards"), list)
    for index, card in enumerate(body["cards"]):
        _no_null_or_empty(card, f"cards[{index}]")
        assert isinstance(card["summary"], str) and len(card["summary"]) < 140
        assert card["indicator"] in INDICATORS
        assert isinstance(card["source"]["label"], str)
        assert card["source"]["topic"]["system"] == TOPIC_SYSTEM
        assert isinstance(card["source"]["topic"]["code"], str)
        assert _is_uuid(card.get("uuid"))
        if "suggestions" in card:
            assert card.get("selectionBehavior") in SELECTION_BEHAVIORS
            for suggestion in card["suggestions"]:
                assert isinstance(suggestion["label"], str)
                assert _is_uuid(suggestion.get("uuid"))
                for action in suggestion.get("actions", []):
                    assert action["type"] in {"create", "update", "delete"}
                    assert isinstance(action["description"], str)
                    if action["type"] == "create":
                        assert isinstance(action["resource"], dict)
        for reason in card.get("overrideReasons", []):
            assert reason["display"] and reason["code"] and reason["system"]


def without_uuids(node: Any) -> Any:
    """The response with every `uuid` removed (they are fresh on each call), to compare two answers."""
    if isinstance(node, dict):
        return {key: without_uuids(value) for key, value in node.items() if key != "uuid"}
    if isinstance(node, list):
        return [without_uuids(item) for item in node]
    return node


@pytest.fixture
def cds_rules() -> Callable[[Any], None]:
    return check_cds_response


@pytest.fixture
def comparable() -> Callable[[Any], Any]:
    return without_uuids


@pytest.fixture
def resources_of() -> Callable[[Mapping[str, Any]], list[Resource]]:
    return prefetched_resources
