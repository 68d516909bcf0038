"""`POST /cds-services/osteoporosis-patient-view`: status matrix, prefetch shapes, FHIR fallback, cards."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import responses
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cds_service import engine
from cds_service.api import services
from cds_service.api.app import create_app
from cds_service.audit.store import AuditStore
from cds_service.fhir.prefetch import PREFETCH_TEMPLATES
from cds_service.hooks.patient_view import STRATEGY
from cds_service.settings import Settings

URL = "/cds-services/osteoporosis-patient-view"
FHIR_BASE = "https://ehr.example.org/fhir"
PATIENT = "PHI-PATIENT-4711"  # a marker: must never show up in error bodies or logs
TOKEN = "TOKEN-SECRET-0815"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "requests"

Body = dict[str, Any]


def minimal(**changes: Any) -> Body:
    """A valid call whose prefetch says "no data" for every key."""
    body: Body = {
        "hook": "patient-view",
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "context": {"patientId": PATIENT, "userId": "Practitioner/example"},
        "prefetch": dict.fromkeys(PREFETCH_TEMPLATES),
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not ...}


def with_context(**changes: Any) -> Body:
    context = {"patientId": PATIENT, "userId": "Practitioner/example", **changes}
    return minimal(context={key: value for key, value in context.items() if value is not ...})


def authorization(**changes: Any) -> dict[str, Any]:
    auth = {
        "access_token": TOKEN,
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "osteo-cds",
        "patient": PATIENT,
        **changes,
    }
    return {key: value for key, value in auth.items() if value is not ...}


def post(client: FlaskClient, body: Body | bytes, **headers: str) -> TestResponse:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(URL, data=data, content_type="application/json", headers=headers)


def assert_operation_outcome(response: TestResponse) -> None:
    assert response.is_json
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "error" and body["issue"][0]["diagnostics"]
    text = response.get_data(as_text=True)
    assert PATIENT not in text and TOKEN not in text and "Traceback" not in text


# --- the status matrix (AHRQ CDS Connect style negative fixtures) ------------------------------------

MATRIX: list[tuple[str, Body | bytes, int]] = [
    ("valid, every key null", minimal(), 200),
    ("valid, unknown fields and extension", minimal(extension={"com.example": {"a": 1}}, x=1), 200),
    ("valid, context.encounterId", with_context(encounterId="e1"), 200),
    ("valid, no userId", with_context(userId=...), 200),
    (
        "valid, fhirAuthorization for this patient",
        minimal(fhirServer=FHIR_BASE, fhirAuthorization=authorization()),
        200,
    ),
    (
        "valid, fhirAuthorization without patient",
        minimal(fhirServer=FHIR_BASE, fhirAuthorization=authorization(patient=...)),
        200,
    ),
    ("empty body", b"", 400),
    ("whitespace body", b"  \n", 400),
    ("not JSON", b"hook=patient-view", 400),
    ("truncated JSON", b'{"hook": "patient-view", "context": {', 400),
    ("invalid UTF-8", b'{"hook": "patient-view", "hookInstance": "\xff\xfe"}', 400),
    ("NaN", b'{"hook": "patient-view", "x": NaN}', 400),
    ("JSON array", b"[]", 400),
    ("JSON string", b'"patient-view"', 400),
    ("JSON null", b"null", 400),
    ("deeply nested", b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}", 400),
    ("wrong hook", minimal(hook="order-select"), 400),
    ("hook missing", minimal(hook=...), 400),
    ("hook not a string", minimal(hook=1), 400),
    ("hookInstance missing", minimal(hookInstance=...), 400),
    ("context missing", minimal(context=...), 400),
    ("context not an object", minimal(context=[PATIENT]), 400),
    ("patientId missing", with_context(patientId=...), 400),
    ("patientId a number", with_context(patientId=4711), 400),
    ("patientId null", with_context(patientId=None), 400),
    ("patientId empty", with_context(patientId=""), 400),
    ("patientId blank", with_context(patientId="   "), 400),
    ("userId not a string", with_context(userId=["Practitioner/1"]), 400),
    ("fhirAuthorization without fhirServer", minimal(fhirAuthorization=authorization()), 400),
    (
        "fhirAuthorization for another patient",
        minimal(fhirServer=FHIR_BASE, fhirAuthorization=authorization(patient="someone-else")),
        400,
    ),
    (
        "token_type not Bearer",
        minimal(fhirServer=FHIR_BASE, fhirAuthorization=authorization(token_type="MAC")),
        400,
    ),
    (
        "access_token missing",
        minimal(fhirServer=FHIR_BASE, fhirAuthorization=authorization(access_token=...)),
        400,
    ),
    (
        "expires_in not a number",
        minimal(fhirServer=FHIR_BASE, fhirAuthorization=authorization(expires_in="soon")),
        400,
    ),
    ("fhirServer not http(s)", minimal(fhirServer="ftp://ehr.example.org/fhir"), 400),
    ("fhirServer not a URL", minimal(fhirServer="ehr"), 400),
    ("fhirServer a number", minimal(fhirServer=8080), 400),
    ("prefetch an array", minimal(prefetch=[]), 400),
    ("prefetch value a string", minimal(prefetch={"patient": "Patient/1"}), 400),
    ("prefetch key missing, no fhirServer", minimal(prefetch={"patient": None}), 412),
    ("no prefetch, no fhirServer", minimal(prefetch=...), 412),
    ("prefetch null, no fhirServer", minimal(prefetch=None), 412),
    (
        "OperationOutcome prefetch, no fhirServer",
        minimal(
            prefetch={
                **dict.fromkeys(PREFETCH_TEMPLATES),
                "observations": {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "timeout"}],
                },
            }
        ),
        412,
    ),
]


@pytest.mark.parametrize(
    ("body", "status"), [(b, s) for _, b, s in MATRIX], ids=[name for name, _, _ in MATRIX]
)
def test_status_matrix(
    client: FlaskClient,
    engine_calls: list[Any],
    rsps: responses.RequestsMock,
    body: Body | bytes,
    status: int,
) -> None:
    response = post(client, body)
    assert response.status_code == status, response.get_data(as_text=True)
    if status == 200:
        assert response.get_json() == {"cards": []}
    else:
        assert_operation_outcome(response)
    assert len(rsps.calls) == 0, "no call above needs the FHIR server"


def test_412_names_the_missing_resource_types(client: FlaskClient) -> None:
    response = post(client, minimal(prefetch={"patient": None, "observations": None, "conditions": None}))
    assert response.status_code == 412
    diagnostics = response.get_json()["issue"][0]["diagnostics"]
    assert "DiagnosticReport" in diagnostics and "Procedure" in diagnostics
    assert "Observation" not in diagnostics and "ServiceRequest" not in diagnostics


def test_unknown_service_is_404(client: FlaskClient) -> None:
    response = client.post("/cds-services/no-such-service", json=minimal())
    assert response.status_code == 404
    assert_operation_outcome(response)


def test_fhir_server_outside_the_allowed_list_is_400(
    osteo_settings: Settings, rsps: responses.RequestsMock
) -> None:
    client = create_app(
        osteo_settings.with_changes(fhir_servers=("https://ehr.example.org/fhir",))
    ).test_client()
    refused = post(client, minimal(prefetch=..., fhirServer="https://ehr.example.org.evil.com/fhir"))
    assert refused.status_code == 400
    assert_operation_outcome(refused)
    assert len(rsps.calls) == 0


def test_body_over_the_size_limit_is_413(osteo_settings: Settings) -> None:
    client = create_app(osteo_settings.with_changes(max_body_bytes=2048)).test_client()
    response = post(client, minimal(extension={"pad": "x" * 4096}))
    assert response.status_code == 413
    assert_operation_outcome(response)


def test_unexpected_errors_are_a_generic_500(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: Any, **kwargs: Any) -> engine.Evaluation:
        raise RuntimeError(f"failed on {PATIENT}")

    monkeypatch.setattr(engine, "evaluate", explode)
    with caplog.at_level(logging.DEBUG):
        response = post(client, minimal())
    assert response.status_code == 500
    assert_operation_outcome(response)
    assert response.headers["X-Request-ID"] in response.get_json()["issue"][0]["diagnostics"]
    assert "RuntimeError" in caplog.text and PATIENT not in caplog.text


def test_error_responses_carry_cors_headers(client: FlaskClient) -> None:
    response = client.post(URL, data=b"[]", headers={"Origin": "https://ehr.example.org"})
    assert response.status_code == 400
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://ehr.example.org")


# --- language -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "setting", "expected"),
    [
        (None, "en", "en"),
        (None, "zh-CN", "zh-CN"),
        ("zh-CN,zh;q=0.9,en;q=0.8", "en", "zh-CN"),
        ("zh-TW", "en", "zh-CN"),
        ("zh", "en", "zh-CN"),
        ("en-US,en;q=0.9", "zh-CN", "en"),
        ("fr-FR, zh;q=0.5", "en", "zh-CN"),
        ("fr-FR", "zh-CN", "zh-CN"),
        ("en;q=0.2, zh-CN;q=0.8", "en", "zh-CN"),
        ("*", "zh-CN", "zh-CN"),
        ("zh;q=0, en", "zh-CN", "en"),
    ],
)
def test_accept_language_picks_the_card_language(
    osteo_settings: Settings, engine_calls: list[Any], header: str | None, setting: str, expected: str
) -> None:
    client = create_app(osteo_settings.with_changes(language=setting)).test_client()
    headers = {"Accept-Language": header} if header else {}
    assert post(client, minimal(), **headers).status_code == 200
    assert engine_calls[-1].language == expected


# --- prefetch shapes and the FHIR fallback (what reaches the engine) -------------------------------------


def test_tokens_and_patient_ids_stay_out_of_the_logs(
    client: FlaskClient,
    engine_calls: list[Any],
    fake_fhir_server: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = fake_fhir_server([{"resourceType": "Patient", "id": PATIENT}])
    with caplog.at_level(logging.DEBUG):
        response = post(
            client, minimal(prefetch=..., fhirServer=FHIR_BASE, fhirAuthorization=authorization())
        )
    assert response.status_code == 200
    assert len(server.calls) == len(PREFETCH_TEMPLATES)
    assert all(call.headers["Authorization"] == f"Bearer {TOKEN}" for call in server.calls)
    assert TOKEN not in caplog.text and PATIENT not in caplog.text


def test_page_cap_reaches_the_engine_as_data_cut(
    osteo_settings: Settings,
    engine_calls: list[Any],
    fake_fhir_server: Callable[..., Any],
    example_request: Callable[[str], Body],
    resources_of: Callable[[Body], list[dict[str, Any]]],
) -> None:
    # pages of 2: the narrowed Observation searches (issue 14) are too short to page at 50
    fake_fhir_server(resources_of(example_request("chad-quigley-prefetch")), page_size=2)
    client = create_app(osteo_settings.with_changes(fhir_max_pages=1)).test_client()
    request = example_request("chad-quigley-no-prefetch") | {"fhirServer": FHIR_BASE}
    assert post(client, request).status_code == 200
    assert engine_calls[-1].data_cut
    observation_searches = sum(key.resource_type == "Observation" for key in STRATEGY.keys)
    assert (
        sum(r["resourceType"] == "Observation" for r in engine_calls[-1].resources)
        <= 2 * observation_searches
    )


JUNK_ANSWERS = {
    "html": {"body": "<html>maintenance</html>", "status": 200, "content_type": "text/html"},
    "truncated JSON": {"body": '{"resourceType": "Bundle", "entry": [{', "status": 200},
    "server error": {"body": "{}", "status": 500},
    "unavailable twice": {"body": "", "status": 503},
}


@pytest.mark.parametrize("junk", list(JUNK_ANSWERS))
def test_junk_from_the_fhir_server_is_412_never_500(
    client: FlaskClient, rsps: responses.RequestsMock, junk: str
) -> None:
    rsps.get(FHIR_BASE + "/Observation", **JUNK_ANSWERS[junk])
    prefetch = dict.fromkeys(PREFETCH_TEMPLATES)
    del prefetch["observations"]
    response = post(client, minimal(prefetch=prefetch, fhirServer=FHIR_BASE))
    assert response.status_code == 412
    assert "Observation" in response.get_json()["issue"][0]["diagnostics"]


@pytest.mark.parametrize("junk", list(JUNK_ANSWERS))
def test_junk_for_service_requests_only_degrades(
    client: FlaskClient, engine_calls: list[Any], rsps: responses.RequestsMock, junk: str
) -> None:
    rsps.get(FHIR_BASE + "/ServiceRequest", **JUNK_ANSWERS[junk])
    prefetch = dict.fromkeys(PREFETCH_TEMPLATES)
    del prefetch["serviceRequests"]
    response = post(client, minimal(prefetch=prefetch, fhirServer=FHIR_BASE))
    assert response.status_code == 200
    assert len(engine_calls) == 1


# --- end to end with the real engine: Synthea examples -------------------------------------------------

EXPECTED_TOPIC = {
    "chad-quigley": "osteoporosis-bmd",  # male, T -2.83
    "odilia-feeney": "z-score-required",  # T 0.08 at 17, wrist fracture
    # T 0.004 is normal, but her wrist fracture at 65 is taken as a fragility fracture, which
    # diagnoses osteoporosis whatever the BMD (FX-2, DX-3): the fracture card, not normal-bmd.
    "tamatha-witting": "osteoporosis-fracture",
}


def topics(response: TestResponse) -> list[str]:
    return [card["source"]["topic"]["code"] for card in response.get_json()["cards"]]


@pytest.mark.parametrize("name", list(EXPECTED_TOPIC))
def test_synthea_examples_give_their_cards(
    client: FlaskClient, example_request: Callable[[str], Body], cds_rules: Callable[[Any], None], name: str
) -> None:
    response = post(client, example_request(f"{name}-prefetch"))
    assert response.status_code == 200
    cds_rules(response.get_json())
    assert EXPECTED_TOPIC[name] in topics(response)


@pytest.mark.parametrize("name", list(EXPECTED_TOPIC))
def test_a_paged_fhir_server_gives_the_same_cards_as_prefetch(
    client: FlaskClient,
    example_request: Callable[[str], Body],
    resources_of: Callable[[Body], list[dict[str, Any]]],
    fake_fhir_server: Callable[..., Any],
    cds_rules: Callable[[Any], None],
    comparable: Callable[[Any], Any],
    name: str,
) -> None:
    prefetched = post(client, example_request(f"{name}-prefetch"))
    # pages of 10: narrowed searches (issue 14) are too short to page at 50
    server = fake_fhir_server(resources_of(example_request(f"{name}-prefetch")), page_size=10)
    fetched = post(client, example_request(f"{name}-no-prefetch") | {"fhirServer": FHIR_BASE})

    assert fetched.status_code == 200
    cds_rules(fetched.get_json())
    assert comparable(fetched.get_json()) == comparable(prefetched.get_json())
    assert len(server.calls) > len(PREFETCH_TEMPLATES), "the searches come in pages of 10"


def test_a_server_ignoring_search_filters_changes_nothing(
    client: FlaskClient,
    example_request: Callable[[str], Body],
    resources_of: Callable[[Body], list[dict[str, Any]]],
    fake_fhir_server: Callable[..., Any],
    comparable: Callable[[Any], Any],
) -> None:
    chad = example_request("chad-quigley-prefetch")
    everyone = [r for name in EXPECTED_TOPIC for r in resources_of(example_request(f"{name}-prefetch"))]
    fake_fhir_server(everyone, page_size=50, ignore_filters=True)

    unfiltered = post(client, example_request("chad-quigley-no-prefetch") | {"fhirServer": FHIR_BASE})

    assert unfiltered.status_code == 200
    assert comparable(unfiltered.get_json()) == comparable(post(client, chad).get_json())


def test_partial_prefetch_and_operation_outcome_keys_are_completed_from_the_server(
    client: FlaskClient,
    example_request: Callable[[str], Body],
    resources_of: Callable[[Body], list[dict[str, Any]]],
    fake_fhir_server: Callable[..., Any],
    comparable: Callable[[Any], Any],
) -> None:
    full = example_request("chad-quigley-prefetch")
    server = fake_fhir_server(resources_of(full), page_size=50)
    partial = example_request("chad-quigley-prefetch") | {"fhirServer": FHIR_BASE}
    del partial["prefetch"]["observations"]
    partial["prefetch"]["conditions"] = {"resourceType": "OperationOutcome", "issue": [{"severity": "error"}]}

    response = post(client, partial)

    assert response.status_code == 200
    assert {call.path_url.split("?")[0] for call in server.calls} == {"/fhir/Observation", "/fhir/Condition"}
    assert comparable(response.get_json()) == comparable(post(client, full).get_json())


def test_null_everywhere_is_no_cards(client: FlaskClient, cds_rules: Callable[[Any], None]) -> None:
    response = post(client, minimal())
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}
    cds_rules(response.get_json())


# --- cards issued and feedback on them ------------------------------------------------------------------


def test_issued_cards_are_recorded_so_feedback_finds_them(
    client: FlaskClient, osteo_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    card_uuid = "4e0a3a1e-3283-4575-ab82-028d55fe2719"
    card = {
        "uuid": card_uuid,
        "summary": "x",
        "indicator": "info",
        "source": {"label": "osteo-cds", "topic": {"system": "urn:osteo-cds:finding", "code": "normal-bmd"}},
    }

    def one_card(*args: Any, **kwargs: Any) -> engine.Evaluation:
        return engine.Evaluation(response={"cards": [card]}, topics=["normal-bmd"])

    monkeypatch.setattr(engine, "evaluate", one_card)
    assert post(client, minimal()).status_code == 200

    feedback = {
        "feedback": [{"card": card_uuid, "outcome": "overridden", "outcomeTimestamp": "2021-06-01T10:00:00Z"}]
    }
    response = client.post(f"{URL}/feedback", json=feedback)
    assert response.status_code == 200

    rows = AuditStore.from_url(osteo_settings.database_url).report()
    assert [(row.topic_code, row.issued, row.overridden) for row in rows] == [("normal-bmd", 1, 1)]


def test_the_records_of_a_response_are_written_once_it_is_sent(
    client: FlaskClient, osteo_settings: Settings, example_request: Callable[[str], Body]
) -> None:
    # Unbuffered, as a WSGI server sends it: the whole answer is there before the response is closed, the
    # records are written when the server closes it (after the last byte), in one transaction.
    response = client.post(URL, json=example_request("he-yulan-prefetch"), buffered=False)
    topics = {card["source"]["topic"]["code"] for card in response.get_json()["cards"]}
    store = AuditStore.from_url(osteo_settings.database_url)
    assert topics and store.report() == []
    response.close()
    assert {row.topic_code for row in store.report()} == topics


def test_a_store_failure_after_sending_is_logged_without_patient_data(
    client: FlaskClient,
    example_request: Callable[[str], Body],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def full_disk(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full at /var/lib/osteo-cds")

    monkeypatch.setattr(services, "record_response", full_disk)
    with caplog.at_level(logging.ERROR, logger="cds_service"):
        response = post(client, example_request("he-yulan-prefetch"))
    assert response.status_code == 200 and response.get_json()["cards"]  # the clinician has the cards
    [line] = [r for r in caplog.records if r.name == "cds_service.api.services"]
    assert line.getMessage() == (
        f"audit records not written (request {response.headers['X-Request-ID']}): OSError"
    )
    assert line.request_id == response.headers["X-Request-ID"]  # type: ignore[attr-defined]
    assert "disk full" not in caplog.text


def test_feedback_for_an_unknown_service_is_404(client: FlaskClient) -> None:
    response = client.post("/cds-services/nope/feedback", json={"feedback": []})
    assert response.status_code == 404


@pytest.mark.parametrize("language", ["en", "zh-CN"])
@pytest.mark.parametrize(
    "name",
    sorted(
        path.name.removesuffix("-prefetch.json")
        for path in EXAMPLES.glob("*-prefetch.json")
        if not path.name.endswith("-no-prefetch.json")
    ),
)
def test_every_example_answer_follows_the_cds_hooks_rules(
    client: FlaskClient,
    example_request: Callable[[str], Body],
    cds_rules: Callable[[Any], None],
    name: str,
    language: str,
) -> None:
    response = post(client, example_request(f"{name}-prefetch"), **{"Accept-Language": language})
    assert response.status_code == 200
    cds_rules(response.get_json())


# --- OSTEO_CDS_SILENT (issue 17 go-live safety) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("silent", "shown"),
    [
        pytest.param(False, True, id="OSTEO_CDS_SILENT unset: cards shown and recorded"),
        pytest.param(True, False, id="OSTEO_CDS_SILENT=true: cards recorded, response {cards: []}"),
    ],
)
def test_silent_mode_records_cards_but_answers_none(
    silent: bool, shown: bool, osteo_settings: Settings, example_request: Callable[[str], Body]
) -> None:
    client = create_app(osteo_settings.with_changes(silent=silent)).test_client()
    response = post(client, example_request("he-yulan-prefetch"))
    assert response.status_code == 200
    assert bool(response.get_json()["cards"]) is shown
    rows = AuditStore.from_url(osteo_settings.database_url).report()
    assert "spine-radiograph-recommended" in {row.topic_code for row in rows}
    # The audit rows say which cards were shown: silent ones are counted apart, in no rate.
    issued = len(response.get_json()["cards"])
    assert (sum(r.issued for r in rows), sum(r.silent for r in rows) > 0) == (issued, silent)


@pytest.mark.parametrize(
    ("raw", "silent"),
    [
        pytest.param(None, False, id="OSTEO_CDS_SILENT default off"),
        pytest.param("true", True, id="OSTEO_CDS_SILENT=true"),
        pytest.param("false", False, id="OSTEO_CDS_SILENT=false"),
    ],
)
def test_silent_setting(raw: str | None, silent: bool) -> None:
    env = {} if raw is None else {"OSTEO_CDS_SILENT": raw}
    assert Settings.from_env(env).silent is silent
