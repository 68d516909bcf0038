"""Discovery, `/healthz`, answers to wrong methods, and the app factory / `osteo-cds serve` start checks."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

import pytest
from flask.testing import FlaskClient

from cds_service.api.app import StartupError, create_app
from cds_service.facts.codemap import parse_code_map
from cds_service.fhir.prefetch import PREFETCH_TEMPLATES
from cds_service.serve import ServeError, default_workers, gunicorn_options, run_server
from cds_service.settings import ServerSettings, Settings, SettingsError

SERVICE_ID = "osteoporosis-patient-view"
# CDS Hooks 2.0 §Prefetch template: reference, token, date params, _count and _sort (type and intent are
# token parameters of DocumentReference and MedicationRequest).
TEMPLATE_PARAMS = {"patient", "status", "category", "code", "type", "intent", "_count", "_sort"}
TOKEN = re.compile(r"\{\{([^{}]*)\}\}")
VALID_TOKENS = {"context.patientId", "context.userId", "context.encounterId", "userPractitionerId"}


def service(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/cds-services")
    assert response.status_code == 200
    services = response.get_json()["services"]
    return next(s for s in services if s["id"] == SERVICE_ID)  # type: ignore[no-any-return]


def test_discovery_lists_the_three_services_with_one_prefetch(client: FlaskClient) -> None:
    # issue 15: the order hooks beside patient-view, gathering the record with the same templates.
    services = {s["id"]: s for s in client.get("/cds-services").get_json()["services"]}
    assert {sid: s["hook"] for sid, s in services.items()} == {
        SERVICE_ID: "patient-view",
        "osteoporosis-order-select": "order-select",
        "osteoporosis-order-sign": "order-sign",
    }
    assert all(s["prefetch"] == services[SERVICE_ID]["prefetch"] for s in services.values())
    for entry in services.values():
        assert all(value not in (None, "", [], {}) for value in entry.values())


def test_discovery_describes_the_patient_view_service(client: FlaskClient) -> None:
    entry = service(client)
    assert entry["id"] == SERVICE_ID
    assert entry["hook"] == "patient-view"
    assert entry["title"] and entry["description"]
    assert "FHIR R4" in entry["usageRequirements"]
    assert set(entry) <= {"id", "hook", "title", "description", "prefetch", "usageRequirements", "extension"}


def test_discovery_has_no_null_or_empty_fields(client: FlaskClient) -> None:
    for key, value in service(client).items():
        assert value not in (None, "", [], {}), key


def test_prefetch_keys_are_stable(client: FlaskClient) -> None:
    # Part of the outside contract: EHRs are configured with these keys. The contract only grows (issue 14).
    assert list(service(client)["prefetch"])[:6] == [
        "patient",
        "observations",
        "conditions",
        "procedures",
        "reports",
        "serviceRequests",
    ]
    assert list(service(client)["prefetch"])[6:] == [
        "vitals",
        "documents",
        "medications",
        "medicationStatements",
    ]
    assert service(client)["prefetch"] == dict(PREFETCH_TEMPLATES)


@pytest.mark.parametrize("key", list(PREFETCH_TEMPLATES))
def test_templates_are_valid_prefetch_queries(key: str) -> None:
    template = PREFETCH_TEMPLATES[key]
    assert set(TOKEN.findall(template)) <= VALID_TOKENS
    path, _, query = template.partition("?")
    assert re.fullmatch(r"[A-Z][A-Za-z]+(/\{\{context\.patientId\}\})?", path), path
    if not query:
        assert path == "Patient/{{context.patientId}}"
        return
    params = parse_qsl(query, strict_parsing=True, keep_blank_values=False)
    names = [name for name, _ in params]
    assert set(names) <= TEMPLATE_PARAMS, names
    assert ("patient", "{{context.patientId}}") in params
    assert " " not in template and "|" not in template  # already a valid query string, nothing to escape


@pytest.mark.parametrize("key", ["conditions", "procedures", "reports"])
def test_clinical_templates_are_not_narrowed_by_code(key: str) -> None:
    # CONTRACT.md: local and text-only codes are common in Chinese hospitals.
    names = [name for name, _ in parse_qsl(PREFETCH_TEMPLATES[key].partition("?")[2])]
    assert "code" not in names


@pytest.mark.parametrize("key", ["observations", "vitals"])
def test_observation_templates_are_narrowed_by_code(key: str) -> None:
    # Issue 14 (changes the test above, which covered observations too): Epic refuses an Observation search
    # without code or category, US Core promises patient+code.
    names = [name for name, _ in parse_qsl(PREFETCH_TEMPLATES[key].partition("?")[2])]
    assert "code" in names


def test_discovery_shows_the_code_maps_codes(osteo_settings: Settings) -> None:
    code_map = parse_code_map({"dxa-t-lumbar-spine": [{"system": "urn:local", "code": "YZ,T"}]})
    client = create_app(osteo_settings.with_changes(code_map=code_map)).test_client()
    observations = service(client)["prefetch"]["observations"]
    assert observations.startswith(PREFETCH_TEMPLATES["observations"].removesuffix("&_count=200"))
    assert ",YZ%5C%2CT&" in observations  # FHIR escapes the comma in a token, the URL the backslash


def test_healthz(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_discovery_answers_browsers(client: FlaskClient) -> None:
    response = client.options(
        "/cds-services",
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/cds-services"),
        ("delete", "/cds-services"),
        ("get", f"/cds-services/{SERVICE_ID}"),
        ("put", f"/cds-services/{SERVICE_ID}"),
        ("post", "/healthz"),
    ],
)
def test_wrong_method_is_405_with_an_operation_outcome(client: FlaskClient, method: str, path: str) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert response.is_json
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert response.headers["Allow"]


def test_unknown_path_is_404_with_an_operation_outcome(client: FlaskClient) -> None:
    response = client.get("/nothing-here")
    assert response.status_code == 404
    assert response.get_json()["issue"][0]["code"] == "not-found"


# --- the app factory and `osteo-cds serve` ------------------------------------------------------------


def test_jwt_mode_refuses_to_build_the_app() -> None:
    with pytest.raises(StartupError, match="jwt mode needs the JWT check"):
        create_app(Settings(auth="jwt"))


def test_serve_refuses_jwt_mode_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_server(Settings(auth="jwt"), port=1) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "jwt mode" in error


@pytest.mark.parametrize(
    ("env", "workers", "threads", "expected"),
    [
        ({}, None, None, (default_workers(), 4)),
        ({"OSTEO_CDS_WORKERS": "3", "OSTEO_CDS_THREADS": "8"}, None, None, (3, 8)),
        ({"OSTEO_CDS_WORKERS": "3"}, 1, 2, (1, 2)),
        ({"OSTEO_CDS_WORKERS": " "}, None, None, (default_workers(), 4)),
        ({"OSTEO_CDS_WORKERS": "two"}, None, None, None),
        ({"OSTEO_CDS_THREADS": "0"}, None, None, None),
        ({}, 1000, None, None),
    ],
)
def test_worker_and_thread_counts(
    env: dict[str, str], workers: int | None, threads: int | None, expected: tuple[int, int] | None
) -> None:
    if expected is None:
        with pytest.raises((ServeError, SettingsError)):
            gunicorn_options("127.0.0.1", 8080, workers, threads, ServerSettings.from_env(env))
        return
    options = gunicorn_options("127.0.0.1", 8080, workers, threads, ServerSettings.from_env(env))
    assert (options["workers"], options["threads"]) == expected
    assert options["accesslog"] is None and options["max_requests_jitter"] > 0
    assert 1 <= default_workers() <= 4


def test_ipv6_hosts_are_bracketed() -> None:
    assert gunicorn_options("::", 8080, 1, 1)["bind"] == "[::]:8080"
