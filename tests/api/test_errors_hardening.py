"""Bad input and inner failures: 413 / 400 / 500 that name the problem and never echo data or a trace."""

from __future__ import annotations

import importlib
import io
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cds_service import engine
from cds_service.api.app import create_app
from cds_service.audit.store import AuditStore
from cds_service.fhir.prefetch import PREFETCH_TEMPLATES
from cds_service.settings import Settings

HOOK_PATH = "/cds-services/osteoporosis-patient-view"
FEEDBACK_PATH = f"{HOOK_PATH}/feedback"
PATIENT = "PHI-PATIENT-4711"
TOKEN = "TOKEN-SECRET-0815"
LIMIT = 2048


def hook_body() -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": PATIENT, "userId": "Practitioner/1"},
        "prefetch": dict.fromkeys(PREFETCH_TEMPLATES),
    }


@pytest.fixture
def small_app(tmp_path: Path) -> Flask:
    settings = Settings(auth="none", database_url=f"sqlite:///{tmp_path / 'audit.db'}", max_body_bytes=LIMIT)
    return create_app(settings)


@pytest.fixture
def small_client(small_app: Flask) -> FlaskClient:
    return small_app.test_client()


def assert_clean_outcome(response: TestResponse, status: int) -> dict[str, Any]:
    assert response.status_code == status
    assert response.is_json
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["diagnostics"]
    text = response.get_data(as_text=True)
    for leak in (PATIENT, TOKEN, "Traceback", 'File "', "RuntimeError", "sqlite"):
        assert leak not in text
    return dict(body)


# --- 413 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [HOOK_PATH, FEEDBACK_PATH])
def test_a_body_over_the_limit_is_413(small_client: FlaskClient, path: str) -> None:
    padded = b'{"pad": "' + b"x" * LIMIT + b'"}'
    response = small_client.post(path, data=padded, content_type="application/json")
    body = assert_clean_outcome(response, 413)
    assert body["issue"][0]["code"] == "too-long"


def post_chunked(client: FlaskClient, path: str, raw: bytes) -> TestResponse:
    # No Content-Length to check up front: the limit holds while the body is read. gunicorn marks a
    # chunked body as terminated (wsgi.input_terminated); the test client has to be told.
    return client.post(
        path,
        input_stream=io.BytesIO(raw),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


@pytest.mark.parametrize("path", [HOOK_PATH, FEEDBACK_PATH])
def test_a_chunked_body_over_the_limit_is_413_too(small_client: FlaskClient, path: str) -> None:
    # Werkzeug alone would cut it at the limit and pass the first part on (a 400, or worse, a valid prefix).
    valid_prefix = json.dumps(hook_body()).encode() + b" " * (4 * LIMIT)
    for raw in (b'{"pad": "' + b"x" * (4 * LIMIT) + b'"}', valid_prefix):
        assert_clean_outcome(post_chunked(small_client, path, raw), 413)


def test_a_chunked_body_under_the_limit_is_read(small_client: FlaskClient) -> None:
    response = post_chunked(small_client, HOOK_PATH, json.dumps(hook_body()).encode())
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_a_body_under_the_limit_is_read(small_client: FlaskClient) -> None:
    assert small_client.post(HOOK_PATH, json=hook_body()).status_code == 200


# --- 400 ---------------------------------------------------------------------------------------------

BAD_BODIES = [
    pytest.param(b"{", id="truncated JSON"),
    pytest.param(b'{"hook": "patient-view", "x": "\xff\xfe"}', id="invalid UTF-8"),
    pytest.param(b"\xef\xbb\xbf\xff", id="BOM then invalid UTF-8"),
    pytest.param(b"{'hook': 'patient-view'}", id="single quotes"),
    pytest.param(f'{{"context": {{"patientId": "{PATIENT}"'.encode(), id="cut off after a patient id"),
]


@pytest.mark.parametrize("path", [HOOK_PATH, FEEDBACK_PATH])
@pytest.mark.parametrize("raw", BAD_BODIES)
def test_invalid_json_is_400_without_an_echo(client: FlaskClient, path: str, raw: bytes) -> None:
    response = client.post(path, data=raw, content_type="application/json")
    assert_clean_outcome(response, 400)


# --- 500: whatever happens inside, the client gets a request id and nothing else ------------------------


def test_an_engine_failure_is_a_500_without_a_trace(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"cannot read {PATIENT} with {TOKEN}")

    monkeypatch.setattr(engine, "evaluate", explode)
    response = client.post(HOOK_PATH, json=hook_body())
    body = assert_clean_outcome(response, 500)
    assert body["issue"][0]["code"] == "exception"
    request_id = response.headers["X-Request-ID"]
    assert request_id in body["issue"][0]["diagnostics"]
    # the log has the class and the request id, not the message
    assert "RuntimeError" in caplog.text and request_id in caplog.text
    assert PATIENT not in caplog.text and TOKEN not in caplog.text


def test_an_audit_store_failure_on_feedback_is_a_500_without_a_trace(
    client: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(self: AuditStore, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(f"{PATIENT} sqlite:///secret")

    monkeypatch.setattr(AuditStore, "record_feedback", explode)
    feedback = {
        "feedback": [
            {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2021-06-01T10:00:00Z"}
        ]
    }
    assert_clean_outcome(client.post(FEEDBACK_PATH, json=feedback), 500)


def test_a_failure_in_the_jwt_gate_is_a_500_without_a_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cds_service.api.security import JwtGate

    def explode(self: JwtGate) -> Any:
        raise RuntimeError(TOKEN)

    monkeypatch.setattr(JwtGate, "verifier", explode)
    app = create_app(
        Settings(
            auth="jwt",
            trusted_issuers={"https://ehr.example.org": "https://ehr.example.org/jwks"},
            database_url=f"sqlite:///{tmp_path / 'audit.db'}",
        )
    )
    response = app.test_client().post(HOOK_PATH, json=hook_body(), headers={"Authorization": "Bearer a.b.c"})
    assert_clean_outcome(response, 500)


def test_unexpected_errors_are_logged_as_one_line_without_the_message(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(engine, "evaluate", lambda *a, **k: 1 / 0)
    caplog.set_level(logging.ERROR)
    client.post(HOOK_PATH, json=hook_body())
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is None  # no traceback in the log either: locals' values stay out


# --- the optional preview ------------------------------------------------------------------------------


def test_a_missing_preview_package_does_not_stop_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_import = importlib.import_module

    def without_preview(name: str, package: str | None = None) -> Any:
        if name == "cds_service.preview":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", without_preview)
    settings = Settings(auth="none", database_url=f"sqlite:///{tmp_path / 'audit.db'}", preview_enabled=True)
    client = create_app(settings).test_client()
    assert "preview is not available" in caplog.text
    assert client.post(HOOK_PATH, json=hook_body()).status_code == 200


def test_the_preview_is_registered_when_enabled(tmp_path: Path) -> None:
    settings = Settings(auth="none", database_url=f"sqlite:///{tmp_path / 'audit.db'}")
    without = {rule.rule for rule in create_app(settings).url_map.iter_rules()}
    with_preview = {
        rule.rule for rule in create_app(settings.with_changes(preview_enabled=True)).url_map.iter_rules()
    }
    assert without < with_preview
