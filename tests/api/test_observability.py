"""Logs, metrics and readiness (api/observability.py, api/health.py): counts out, patient data never."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from jwt.algorithms import ECAlgorithm
from prometheus_client.parser import text_string_to_metric_families

from cds_service.api import health, observability
from cds_service.api.app import create_app
from cds_service.fhir.prefetch import PREFETCH_TEMPLATES
from cds_service.hooks.patient_view import STRATEGY
from cds_service.settings import Settings
from tests.builders import patient, t_score
from tests.conftest import FakeFhirServer

REPO = Path(__file__).resolve().parents[2]
SERVICE = "osteoporosis-patient-view"
HOOK_PATH = f"/cds-services/{SERVICE}"
FHIR_BASE = "https://ehr.example.org/fhir"
ISSUER = "https://ehr.example.org"
JWKS_URL = "https://ehr.example.org/jwks.json"
PATIENT = "PHI-PATIENT-4711"  # markers: must never show up in logs or metrics
ACCESS_TOKEN = "FHIR-TOKEN-SECRET-0815"
FEMORAL_NECK_T = "38265-5"
_KEY = ec.generate_private_key(ec.SECP384R1())


# --- helpers -------------------------------------------------------------------------------------------


def chart() -> list[dict[str, Any]]:
    """A chart that gives a card (T -3.0) and a skipped item (an implausible T-score)."""
    return [
        patient(id=PATIENT, birth_date="1950-03-01"),
        t_score(-3.0, patient=PATIENT),
        t_score(-12.0, loinc=FEMORAL_NECK_T, patient=PATIENT),
    ]


def no_prefetch_call() -> dict[str, Any]:
    """A call without prefetch: the service searches the FHIR server (patient id in every query string)."""
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "fhirServer": FHIR_BASE,
        "fhirAuthorization": {
            "access_token": ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "patient/*.read",
            "subject": "osteo-cds",
            "patient": PATIENT,
        },
        "context": {"patientId": PATIENT, "userId": "Practitioner/example"},
    }


def sample(registry_text: bytes | str, name: str, labels: dict[str, str]) -> float:
    text = registry_text.decode() if isinstance(registry_text, bytes) else registry_text
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


def value(name: str, **labels: str) -> float:
    return observability.metrics().registry.get_sample_value(name, labels) or 0.0


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(auth="none", database_url=f"sqlite:///{tmp_path / 'audit.db'}")


@pytest.fixture
def fhir(rsps: responses.RequestsMock) -> FakeFhirServer:
    return FakeFhirServer(chart()).register(rsps)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The JSON lines the service writes (our formatter and filter), at INFO, for the test's duration."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(observability.json_formatter())
    handler.addFilter(observability.RequestContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


# --- metrics -------------------------------------------------------------------------------------------


def test_a_hook_call_moves_the_counters(settings: Settings, fhir: FakeFhirServer) -> None:
    client = create_app(settings).test_client()
    before = {
        "requests": value("osteo_cds_requests_total", service=SERVICE, status="200"),
        "duration": value("osteo_cds_request_duration_seconds_count", service=SERVICE),
        "cards": value("osteo_cds_cards_total", topic="osteoporosis-bmd"),
        "skipped": value("osteo_cds_skipped_items_total", reason="implausible"),
        "fhir": value("osteo_cds_fhir_requests_total", resource_type="Observation", outcome="ok"),
        "fhir_time": value("osteo_cds_fhir_request_duration_seconds_count", resource_type="Observation"),
    }
    response = client.post(HOOK_PATH, json=no_prefetch_call())
    assert response.status_code == 200
    after = {
        "requests": value("osteo_cds_requests_total", service=SERVICE, status="200"),
        "duration": value("osteo_cds_request_duration_seconds_count", service=SERVICE),
        "cards": value("osteo_cds_cards_total", topic="osteoporosis-bmd"),
        "skipped": value("osteo_cds_skipped_items_total", reason="implausible"),
        "fhir": value("osteo_cds_fhir_requests_total", resource_type="Observation", outcome="ok"),
        "fhir_time": value("osteo_cds_fhir_request_duration_seconds_count", resource_type="Observation"),
    }
    # Observation is searched twice: bone density and vitals (query plan, issue 14)
    observation_searches = float(sum(key.resource_type == "Observation" for key in STRATEGY.keys))
    expected = dict.fromkeys(before, 1.0) | dict.fromkeys(("fhir", "fhir_time"), observation_searches)
    assert {key: after[key] - before[key] for key in before} == expected


def test_errors_and_unknown_routes_are_counted_under_closed_labels(client: FlaskClient) -> None:
    before_400 = value("osteo_cds_requests_total", service=SERVICE, status="400")
    before_unknown = value("osteo_cds_requests_total", service="unknown", status="404")
    before_unmatched = value("osteo_cds_requests_total", service="unmatched", status="404")
    client.post(HOOK_PATH, data=b"{", content_type="application/json")
    client.post(f"/cds-services/{PATIENT}", json={})
    client.get(f"/{PATIENT}")
    assert value("osteo_cds_requests_total", service=SERVICE, status="400") == before_400 + 1
    assert value("osteo_cds_requests_total", service="unknown", status="404") == before_unknown + 1
    assert value("osteo_cds_requests_total", service="unmatched", status="404") == before_unmatched + 1


def test_metrics_hold_no_patient_data(settings: Settings, fhir: FakeFhirServer) -> None:
    client = create_app(settings).test_client()
    assert client.post(HOOK_PATH, json=no_prefetch_call()).status_code == 200
    client.post(f"/cds-services/{PATIENT}/feedback", json={})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = response.get_data(as_text=True)
    for name in (
        "osteo_cds_requests_total",
        "osteo_cds_request_duration_seconds_bucket",
        "osteo_cds_fhir_requests_total",
        "osteo_cds_fhir_request_duration_seconds_bucket",
        "osteo_cds_cards_total",
        "osteo_cds_skipped_items_total",
    ):
        assert name in text
    for secret in (PATIENT, ACCESS_TOKEN, "Patient/", "ehr.example.org", "?"):
        assert secret not in text


def test_metrics_can_be_turned_off(settings: Settings) -> None:
    assert Settings.from_env({"OSTEO_CDS_METRICS": "false"}).metrics_enabled is False
    assert Settings.from_env({}).metrics_enabled is True
    client = create_app(settings.with_changes(metrics_enabled=False)).test_client()
    assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize(
    ("outcome", "label"),
    [
        ("ok", "ok"),
        ("cut", "cut"),
        ("http 503", "http-5xx"),
        ("http 404", "http-4xx"),
        ("http abc", "http-other"),
        ("timeout", "timeout"),
        ("connection error", "connection-error"),
        ("budget exceeded", "budget-exceeded"),
        ("OperationOutcome", "operation-outcome"),
        ("not JSON", "invalid-response"),
        ("request error InvalidURL", "error"),
        ("error KeyError", "error"),
    ],
)
def test_fhir_outcomes_become_a_closed_set_of_labels(outcome: str, label: str) -> None:
    assert observability.fhir_outcome(outcome) == label


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        ("osteoporosis-bmd", "osteoporosis-bmd"),
        ("unknown-unit", "unknown-unit"),
        (PATIENT, "other"),
        ("", "other"),
    ],
)
def test_labels_from_our_own_codes_are_shape_checked(raw: str, label: str) -> None:
    assert observability.label(raw) == label


# --- multiprocess mode ------------------------------------------------------------------------------------

WORKER_SCRIPT = """
import os, sys
import prometheus_client  # imported before the directory is known, as in a gunicorn master
os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
from cds_service.api import observability
metrics = observability.metrics()
metrics.requests.labels(service="osteoporosis-patient-view", status="200").inc()
metrics.cards.labels(topic="osteoporosis-bmd").inc(2)
metrics.request_duration.labels(service="osteoporosis-patient-view").observe(0.2)
"""


def test_metrics_of_several_processes_are_collected_from_the_multiprocess_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    observability.metrics()  # this process's own metrics stay single-process, whatever the order of tests
    directory = tmp_path / "metrics"
    directory.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER_SCRIPT, str(directory)], cwd=REPO, env=env)
        for _ in range(2)
    ]
    assert [worker.wait(timeout=60) for worker in workers] == [0, 0]
    assert len(list(directory.glob("*.db"))) >= 2  # one value file per process and type

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    text = observability.metrics().exposition()
    assert sample(text, "osteo_cds_requests_total", {"service": SERVICE, "status": "200"}) == 2
    assert sample(text, "osteo_cds_cards_total", {"topic": "osteoporosis-bmd"}) == 4
    assert sample(text, "osteo_cds_request_duration_seconds_count", {"service": SERVICE}) == 2


# --- logs ------------------------------------------------------------------------------------------------


@pytest.fixture
def jwt_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rsps: responses.RequestsMock) -> Flask:
    rsps.get(
        JWKS_URL,
        json={"keys": [{**ECAlgorithm.to_jwk(_KEY.public_key(), as_dict=True), "kid": "k1", "alg": "ES384"}]},
    )
    FakeFhirServer(chart()).register(rsps)
    return create_app(
        Settings(
            auth="jwt",
            trusted_issuers={ISSUER: JWKS_URL},
            database_url=f"sqlite:///{tmp_path / 'audit.db'}",
            replay_db=str(tmp_path / "jti.sqlite3"),
        )
    )


def cds_jwt(**changes: Any) -> str:
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "aud": "http://localhost" + HOOK_PATH,
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
        "tenant": "hospital-1",
        **changes,
    }
    return jwt.encode(payload, _KEY, algorithm="ES384", headers={"kid": "k1", "typ": "JWT"})


def test_the_log_of_a_hook_call_has_its_counts_and_no_patient_id_nor_token(
    jwt_app: Flask, json_log: io.StringIO
) -> None:
    token = cds_jwt()
    response = jwt_app.test_client().post(
        HOOK_PATH + f"?patient={PATIENT}",
        json=no_prefetch_call(),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    raw = json_log.getvalue()
    for secret in (PATIENT, ACCESS_TOKEN, token, *token.split("."), "?patient", "Bearer"):
        assert secret not in raw
    lines = log_lines(json_log)  # every line is one JSON object
    [request_line] = [line for line in lines if line.get("route") == "/cds-services/<service_id>"]
    assert request_line["request_id"] == response.headers["X-Request-ID"]
    assert request_line["service"] == SERVICE
    assert request_line["status"] == 200
    assert request_line["duration_ms"] >= 0
    assert request_line["fhir_searches"] == len(PREFETCH_TEMPLATES)
    assert request_line["cards"]["osteoporosis-bmd"] == 1
    assert request_line["skipped"] == {"implausible": 1}
    assert request_line["auth_issuer"] == ISSUER and request_line["auth_tenant"] == "hospital-1"
    # the hook's own figures are in the same line: one line per request, not one more per hook call
    assert request_line["resources"] > 0
    assert set(request_line["sources"]) == set(PREFETCH_TEMPLATES)
    assert set(request_line["sources"].values()) <= {"server", "omitted"}
    assert request_line["gather_ms"] >= 0 and request_line["evaluate_ms"] >= 0
    assert "data_cut" not in request_line and "drafts" not in request_line
    info = [line for line in lines if line["level"] == "INFO" and line.get("request_id")]
    assert info == [request_line]


def test_other_lines_of_a_request_carry_its_request_id(client: FlaskClient, json_log: io.StringIO) -> None:
    feedback = {
        "feedback": [
            {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2021-12-11T10:05:31Z"}
        ]
    }
    response = client.post(HOOK_PATH + "/feedback", json=feedback)
    assert response.status_code == 200
    lines = log_lines(json_log)
    [request_line] = [line for line in lines if line.get("route") == "/cds-services/<service_id>/feedback"]
    [feedback_line] = [line for line in lines if line["logger"] == "cds_service.api.feedback"]
    assert feedback_line["request_id"] == request_line["request_id"] == response.headers["X-Request-ID"]


def test_the_log_of_a_refused_call_has_its_reason_and_no_token(jwt_app: Flask, json_log: io.StringIO) -> None:
    token = cds_jwt(aud="https://elsewhere.example.org" + HOOK_PATH)
    response = jwt_app.test_client().post(
        HOOK_PATH, json=no_prefetch_call(), headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 401
    raw = json_log.getvalue()
    for secret in (PATIENT, ACCESS_TOKEN, token, *token.split(".")):
        assert secret not in raw
    lines = log_lines(json_log)
    assert any(line.get("auth_failure") == "audience" for line in lines)
    assert any(line.get("status") == 401 for line in lines)


def test_configured_logging_writes_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        observability.configure_logging()
        logging.getLogger("cds_service.test").info("hello", extra={"fhir_searches": 2})
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    [line] = [json.loads(text) for text in capsys.readouterr().err.splitlines() if "hello" in text]
    assert line["message"] == "hello" and line["level"] == "INFO" and line["fhir_searches"] == 2
    assert line["logger"] == "cds_service.test" and "time" in line


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        pytest.param(
            {"cards": {"osteoporosis-bmd": 1}}, {"cards": {"osteoporosis-bmd": 1}}, id="logs: counts"
        ),
        pytest.param(
            {"auth_issuer": "https://ehr.例子"}, {"auth_issuer": "https://ehr.例子"}, id="logs: UTF-8 kept"
        ),
        pytest.param(
            {"auth_tenant": "t\ud800"}, {"auth_tenant": "t\ud800"}, id="logs: lone surrogate (json fallback)"
        ),
        pytest.param({"count": 2**70}, {"count": 2**70}, id="logs: integer beyond 64 bits (json fallback)"),
    ],
)
def test_a_log_line_is_one_json_object_whatever_its_fields(
    extra: dict[str, Any], expected: dict[str, Any]
) -> None:
    record = logging.LogRecord("cds_service.test", logging.INFO, __file__, 1, "hello %s", ("there",), None)
    record.__dict__.update(extra)
    text = observability.json_formatter().format(record)
    assert "\n" not in text
    line = json.loads(text)
    assert (
        line["message"] == "hello there" and line["level"] == "INFO" and line["logger"] == "cds_service.test"
    )
    assert line["time"].endswith("+00:00") and {k: line[k] for k in expected} == expected


# --- readiness ---------------------------------------------------------------------------------------------


def test_ready_when_texts_and_audit_store_answer(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready"}


def test_not_ready_without_an_audit_store(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    password_url = f"sqlite:///{blocked}/sub/audit.db?password=hunter2"
    client = create_app(Settings(auth="none", database_url=password_url)).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert "audit store" in body["issue"][0]["diagnostics"]
    text = response.get_data(as_text=True)
    assert "hunter2" not in text and str(blocked) not in text


def test_not_ready_without_card_texts(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(language: str) -> dict[str, Any]:
        raise FileNotFoundError("card texts (cards/en.toml) not found beside the package")

    monkeypatch.setattr(health, "card_texts", missing)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "card texts" in response.get_json()["issue"][0]["diagnostics"]


def test_liveness_does_not_depend_on_the_audit_store(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    client = create_app(Settings(auth="none", database_url=f"sqlite:///{blocked}/audit.db")).test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_every_answer_has_a_request_id(client: FlaskClient) -> None:
    ids = {client.get(path).headers["X-Request-ID"] for path in ("/healthz", "/cds-services", "/nowhere")}
    assert len(ids) == 3
