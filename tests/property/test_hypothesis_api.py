"""Arbitrary bodies posted to the hook and the feedback route: never a 500, always JSON, errors are
OperationOutcomes that name the problem without quoting the body (STYLE.md "errors at the edges").

Bodies are random JSON (any nesting, any types, unicode, nulls), valid requests with fields replaced by
values of the wrong type or deleted, requests whose prefetch holds random FHIR-ish resources, raw bytes,
huge strings and deep nesting. No network: FHIR calls fail inside `responses`.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from cds_service.api.app import create_app
from cds_service.settings import Settings
from tests.conftest import check_cds_response

HOOK = "/cds-services/osteoporosis-patient-view"
FEEDBACK = "/cds-services/osteoporosis-patient-view/feedback"
ROUTES = (HOOK, FEEDBACK)
TODAY = date(2021, 6, 1)
ALLOWED_FHIR = "https://fhir.invalid/r4"
# Put into values (never keys): an error answer must not quote it back.
MARKER = "PHI-MARKER-90210"
PREFETCH_KEYS = ("patient", "observations", "conditions", "procedures", "reports", "serviceRequests")

PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

VALID_HOOK_REQUEST: dict[str, Any] = {
    "hook": "patient-view",
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "context": {"userId": "Practitioner/example", "patientId": "p1"},
    "prefetch": {
        "patient": {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-03-01"},
        "observations": {"resourceType": "Bundle", "type": "searchset"},
        "conditions": None,
        "procedures": None,
        "reports": None,
        "serviceRequests": None,
    },
}
VALID_FEEDBACK: dict[str, Any] = {
    "feedback": [
        {
            "card": "9368d37b-283f-44a0-93ea-547cebab93ed",
            "outcome": "accepted",
            "acceptedSuggestions": [{"id": "e56e1945-20b3-4393-8503-a1a20fd73152"}],
            "outcomeTimestamp": "2021-06-01T10:05:31Z",
        },
        {
            "card": "0b6f2a56-4a62-4d3e-9a43-1c7f0b8e2f10",
            "outcome": "overridden",
            "overrideReason": {
                "reason": {"system": "urn:osteo-cds:override-reason", "code": "patient-declined"},
                "userComment": "declined",
            },
            "outcomeTimestamp": "2021-06-01T10:05:31+08:00",
        },
    ]
}
# Every field of the two bodies, as a path of keys and list indices.
HOOK_FIELDS: list[tuple[Any, ...]] = [
    (),
    ("hook",),
    ("hookInstance",),
    ("fhirServer",),
    ("fhirAuthorization",),
    ("fhirAuthorization", "access_token"),
    ("fhirAuthorization", "patient"),
    ("context",),
    ("context", "patientId"),
    ("context", "userId"),
    ("context", "encounterId"),
    ("prefetch",),
    ("prefetch", "patient"),
    ("prefetch", "patient", "birthDate"),
    ("prefetch", "patient", "gender"),
    ("prefetch", "patient", "id"),
    ("prefetch", "observations"),
    ("prefetch", "observations", "entry"),
    ("prefetch", "observations", "link"),
    ("prefetch", "conditions"),
    ("prefetch", "serviceRequests"),
    ("extension",),
]
FEEDBACK_FIELDS: list[tuple[Any, ...]] = [
    (),
    ("feedback",),
    ("feedback", 0),
    ("feedback", 0, "card"),
    ("feedback", 0, "outcome"),
    ("feedback", 0, "outcomeTimestamp"),
    ("feedback", 0, "acceptedSuggestions"),
    ("feedback", 0, "acceptedSuggestions", 0),
    ("feedback", 0, "acceptedSuggestions", 0, "id"),
    ("feedback", 1, "overrideReason"),
    ("feedback", 1, "overrideReason", "reason"),
    ("feedback", 1, "overrideReason", "reason", "code"),
    ("feedback", 1, "overrideReason", "reason", "system"),
    ("feedback", 1, "overrideReason", "userComment"),
]

SPECIAL_STRINGS = [
    "",
    " ",
    "\x00",
    "\ud800",  # a lone surrogate (valid as a JSON escape, not as UTF-8)
    "\udfff\ud800",
    "骨质疏松 L1椎体压缩性骨折",
    "مرحبا",
    "😀" * 10,
    "null",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "Patient/p1",
    "patient-view",
    "2021-06-01T10:05:31Z",
    "9368d37b-283f-44a0-93ea-547cebab93ed",
    MARKER,
]
texts = st.text(max_size=30) | st.sampled_from(SPECIAL_STRINGS)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    # keys without the marker: they name fields, and a field name may be echoed in the diagnostics
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)

RESOURCE_TYPES = [
    "Patient",
    "Observation",
    "Condition",
    "Procedure",
    "DiagnosticReport",
    "ServiceRequest",
    "Bundle",
    "OperationOutcome",
    "Device",
    "Unknown",
]
FHIR_FIELDS = [
    "id",
    "status",
    "code",
    "subject",
    "patient",
    "valueQuantity",
    "component",
    "bodySite",
    "effectiveDateTime",
    "effectivePeriod",
    "issued",
    "clinicalStatus",
    "verificationStatus",
    "onsetDateTime",
    "performedDateTime",
    "conclusion",
    "conclusionCode",
    "category",
    "birthDate",
    "gender",
    "deceasedBoolean",
    "deceasedDateTime",
    "entry",
    "link",
    "device",
    "method",
    "note",
]
# JSON that every parser reads alike (no lone surrogates, 64-bit integers): FHIR-ish content that reaches
# the engine instead of being refused at the door.
plain_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from([s for s in SPECIAL_STRINGS if "\ud800" not in s and "\udfff" not in s]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
fhir_values = (
    plain_json_values
    | st.just({"reference": "Patient/p1"})
    | st.just({"coding": [{"system": "http://loinc.org", "code": "38267-1"}]})
    | st.just({"value": -2.7, "code": "{T-score}"})
    | st.sampled_from(["final", "2020-01-01", "1950-03-01", "female", "L1椎体压缩性骨折"])
)


@st.composite
def fhir_resources(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    # A failed client query (OperationOutcome) only inside Bundles: at the top it is a 412, tested elsewhere.
    types = RESOURCE_TYPES if depth else [t for t in RESOURCE_TYPES if t != "OperationOutcome"]
    resource: dict[str, Any] = {"resourceType": draw(st.sampled_from(types))}
    resource.update(draw(st.dictionaries(st.sampled_from(FHIR_FIELDS), fhir_values, max_size=6)))
    if resource["resourceType"] == "Bundle" and depth == 0 and draw(st.booleans()):
        entries = draw(st.lists(fhir_resources(depth=1), max_size=4))
        resource["entry"] = [{"resource": entry} for entry in entries] + draw(
            st.lists(plain_json_values, max_size=2)
        )
    return resource


def _has(node: Any, key: Any) -> bool:
    if isinstance(node, dict):
        return key in node
    return isinstance(node, list) and isinstance(key, int) and key < len(node)


def set_path(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    """The body with the element at `path` replaced (a missing last key is added; () is the root)."""
    if not path:
        return value
    node = body
    for key in path[:-1]:
        if not _has(node, key):
            return body
        node = node[key]
    if isinstance(node, dict) or _has(node, path[-1]):
        node[path[-1]] = value
    return body


def delete_path(body: Any, path: tuple[Any, ...]) -> Any:
    """The body without the element at `path` (unchanged when it is not there)."""
    node = body
    for key in path[:-1]:
        if not _has(node, key):
            return body
        node = node[key]
    if path and _has(node, path[-1]):
        del node[path[-1]]
    return body


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any], fields: list[tuple[Any, ...]]) -> Any:
    """A valid body with 1-4 fields replaced by random values (wrong types, nulls, unicode) or deleted."""
    body: Any = copy.deepcopy(base)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from(fields))
        if path and draw(st.integers(min_value=0, max_value=4)) == 0:
            body = delete_path(body, path)
        else:
            body = set_path(body, path, draw(json_values))
    return body


@st.composite
def hook_with_random_prefetch(draw: st.DrawFn) -> dict[str, Any]:
    """A hook request whose prefetch keys (all there, mostly) hold random resources, Bundles or nulls."""
    body = copy.deepcopy(VALID_HOOK_REQUEST)
    objects = st.dictionaries(st.text(max_size=10), plain_json_values, max_size=4)
    regular = st.none() | fhir_resources() | fhir_resources().map(bundle_of)
    # now and then a value that is no FHIR resource at all (the service treats it as a failed query)
    values = one_in(20, objects, otherwise=regular)
    # now and then a key is missing (412 unless it is serviceRequests)
    prefetch = {
        key: draw(values) for key in PREFETCH_KEYS if not draw(one_in(30, st.just(True), st.just(False)))
    }
    prefetch.update(draw(st.dictionaries(st.text(max_size=10), st.none() | objects, max_size=2)))
    body["prefetch"] = prefetch
    if draw(one_in(4, st.just(True), st.just(False))):
        body["context"]["patientId"] = draw(st.sampled_from(["p2", MARKER]) | texts)
    return body


def one_in(n: int, rare: st.SearchStrategy[Any], otherwise: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`rare` about once in n draws. (Hypothesis favours small integers, so `integers(0, n) == 0` is not rare;
    sampled_from shrinks towards its first element, the common case.)"""
    return st.sampled_from([False] * (n - 1) + [True]).flatmap(lambda pick: rare if pick else otherwise)


def bundle_of(resource: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": resource}]}


def encode(body: Any, ascii_only: bool) -> bytes:
    return json.dumps(body, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


# --- the app ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    database = tmp_path_factory.mktemp("hypothesis-api") / "audit.db"
    settings_ = Settings(
        auth="none", today=TODAY, database_url=f"sqlite:///{database}", fhir_servers=(ALLOWED_FHIR,)
    )
    app: Flask = create_app(settings_)
    with responses.RequestsMock(assert_all_requests_are_fired=False):
        yield app.test_client()


def check_answer(route: str, response: TestResponse) -> None:
    """Never a 5xx; always a JSON body; an error is an OperationOutcome that does not quote the body."""
    raw = response.get_data()
    if currently_in_test_context():
        event(f"status {response.status_code}")  # shown by --hypothesis-show-statistics
    assert response.status_code < 500, raw[:500]
    assert response.mimetype == "application/json", response.mimetype
    body = json.loads(raw)
    if response.status_code >= 400:
        assert body["resourceType"] == "OperationOutcome"
        assert body["issue"] and all(
            issue["severity"] in ("fatal", "error", "warning", "information")
            and isinstance(issue["code"], str)
            and issue["code"]
            for issue in body["issue"]
        )
        assert MARKER not in raw.decode("utf-8"), "the error answer quotes the request"
    elif route == HOOK:
        assert response.status_code == 200
        check_cds_response(body)
    else:
        assert response.status_code == 200
        assert body == {}


def post(client: FlaskClient, route: str, data: bytes, **headers: str) -> TestResponse:
    return client.post(route, data=data, headers={"Content-Type": "application/json", **headers})


# --- properties -----------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(route=st.sampled_from(ROUTES), body=json_values, ascii_only=st.booleans())
def test_any_json_body(api_client: FlaskClient, route: str, body: Any, ascii_only: bool) -> None:
    check_answer(route, post(api_client, route, encode(body, ascii_only)))


@PROPERTY_SETTINGS
@given(body=mutated(VALID_HOOK_REQUEST, HOOK_FIELDS), ascii_only=st.booleans())
def test_hook_request_with_wrong_fields(api_client: FlaskClient, body: Any, ascii_only: bool) -> None:
    check_answer(HOOK, post(api_client, HOOK, encode(body, ascii_only)))


@PROPERTY_SETTINGS
@given(body=mutated(VALID_FEEDBACK, FEEDBACK_FIELDS), ascii_only=st.booleans())
def test_feedback_with_wrong_fields(api_client: FlaskClient, body: Any, ascii_only: bool) -> None:
    check_answer(FEEDBACK, post(api_client, FEEDBACK, encode(body, ascii_only)))


@PROPERTY_SETTINGS
@given(
    body=hook_with_random_prefetch(),
    language=st.sampled_from(["en", "zh-CN", "zh;q=0.5, en;q=abc", "*", "xx", ""]),
)
def test_hook_with_random_fhir_resources(api_client: FlaskClient, body: Any, language: str) -> None:
    check_answer(
        HOOK, post(api_client, HOOK, encode(body, ascii_only=False), **{"Accept-Language": language})
    )


@PROPERTY_SETTINGS
@given(
    route=st.sampled_from(ROUTES),
    raw=st.binary(max_size=300)
    | st.sampled_from(
        [
            b"",
            b"   ",
            b"\xef\xbb\xbf{}",
            b"\xef\xbb\xbf",
            b"{",
            b'{"hook": "patient-view",',
            b"NaN",
            b'{"feedback": [NaN]}',
            b'{"a": Infinity}',
            b"\xff\xfe{\x00}\x00",
            b'{"hook": "\xff"}',
            b'{"hook": "patient-view", "hook": 5}',
            b"[" * 50,
            b"1e999999",
            b'"' + b"\\" * 10 + b'"',
        ]
    ),
    content_type=st.sampled_from(
        ["application/json", "application/fhir+json", "text/plain", "", "application/json; charset=latin-1"]
    ),
)
def test_raw_bytes(api_client: FlaskClient, route: str, raw: bytes, content_type: str) -> None:
    check_answer(route, api_client.post(route, data=raw, headers={"Content-Type": content_type}))


# --- bounded extremes, example-based (each case is expensive) -------------------------------------------


@pytest.mark.parametrize("size", [100_000, 4_000_000, 6 * 1024 * 1024])
@pytest.mark.parametrize(
    ("route", "path"),
    [
        (HOOK, ("context", "patientId")),
        (HOOK, ("hookInstance",)),
        (HOOK, ("prefetch", "patient", "birthDate")),
        (FEEDBACK, ("feedback", 1, "overrideReason", "userComment")),
        (FEEDBACK, ("feedback", 0, "card")),
    ],
)
def test_huge_strings(api_client: FlaskClient, route: str, path: tuple[Any, ...], size: int) -> None:
    base = VALID_HOOK_REQUEST if route == HOOK else VALID_FEEDBACK
    body = set_path(copy.deepcopy(base), path, "骨" * (size // 3))
    response = post(api_client, route, encode(body, False))
    check_answer(route, response)
    if size > 5 * 1024 * 1024:
        assert response.status_code == 413


@pytest.mark.parametrize("depth", [2_000, 100_000])
@pytest.mark.parametrize(
    "route",
    [
        HOOK,
        FEEDBACK,
    ],
)
def test_deeply_nested_json(api_client: FlaskClient, route: str, depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    check_answer(route, post(api_client, route, nested))
    inner = b'{"feedback": ' + nested + b', "hook": "patient-view", "context": ' + nested + b"}"
    check_answer(route, post(api_client, route, inner))


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"])
def test_extreme_datetime_in_prefetch(api_client: FlaskClient, when: str) -> None:
    body = copy.deepcopy(VALID_HOOK_REQUEST)
    body["prefetch"]["observations"]["entry"] = [
        {
            "resource": {
                "resourceType": "Observation",
                "id": "t",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "38267-1"}]},
                "subject": {"reference": "Patient/p1"},
                "effectiveDateTime": when,
                "valueQuantity": {"value": -2.7, "code": "{T-score}"},
            }
        }
    ]
    check_answer(HOOK, post(api_client, HOOK, encode(body, ascii_only=True)))
