"""CORS (flask-cors in cds_service/api/app.py): preflights, the origin allowlist, headers on errors too."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
import responses
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from jwt.algorithms import ECAlgorithm

from cds_service import engine
from cds_service.api.app import create_app
from cds_service.fhir.prefetch import PREFETCH_TEMPLATES
from cds_service.settings import Settings

HOOK_PATH = "/cds-services/osteoporosis-patient-view"
FEEDBACK_PATH = f"{HOOK_PATH}/feedback"
EHR_ORIGIN = "https://ehr.example.org"
ISSUER = "https://ehr.example.org/fhir"
JWKS_URL = "https://ehr.example.org/jwks.json"
_KEY = ec.generate_private_key(ec.SECP384R1())


def hook_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": "p1", "userId": "Practitioner/1"},
        "prefetch": dict.fromkeys(PREFETCH_TEMPLATES),
    }
    body.update(changes)
    return body


def preflight(client: FlaskClient, path: str, origin: str = EHR_ORIGIN) -> Any:
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )


def assert_allowed(response: Any) -> None:
    # With OSTEO_CDS_CORS_ORIGINS=* flask-cors echoes the caller's origin (with Vary: Origin).
    assert response.headers.get("Access-Control-Allow-Origin") in ("*", EHR_ORIGIN)


def make_app(tmp_path: Path, **changes: Any) -> Flask:
    settings = Settings(auth="none", database_url=f"sqlite:///{tmp_path / 'audit.db'}", **changes)
    return create_app(settings)


# --- preflight ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/cds-services", HOOK_PATH, FEEDBACK_PATH])
def test_a_preflight_allows_authorization_and_content_type_and_is_cached(
    client: FlaskClient, path: str
) -> None:
    response = preflight(client, path)
    assert response.status_code == 200
    assert_allowed(response)
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type"} <= allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert int(response.headers["Access-Control-Max-Age"]) >= 600


def test_an_allowlist_echoes_only_the_listed_origins(tmp_path: Path) -> None:
    client = make_app(tmp_path, cors_origins=(EHR_ORIGIN, "https://other-ehr.example.net")).test_client()
    allowed = preflight(client, HOOK_PATH)
    assert allowed.headers["Access-Control-Allow-Origin"] == EHR_ORIGIN
    assert "Origin" in allowed.headers.get("Vary", "")
    refused = preflight(client, HOOK_PATH, origin="https://evil.example.com")
    assert "Access-Control-Allow-Origin" not in refused.headers
    answered = client.post(HOOK_PATH, json=hook_body(), headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in answered.headers


def test_the_request_id_is_exposed_to_browsers(client: FlaskClient) -> None:
    response = client.get("/cds-services", headers={"Origin": EHR_ORIGIN})
    assert_allowed(response)
    assert "X-Request-ID" in response.headers["Access-Control-Expose-Headers"]


# --- error answers carry the headers too (else the browser hides the status from the EHR page) ---------


def test_cors_headers_on_400(client: FlaskClient) -> None:
    response = client.post(
        HOOK_PATH, data=b"{", content_type="application/json", headers={"Origin": EHR_ORIGIN}
    )
    assert response.status_code == 400
    assert_allowed(response)


def test_cors_headers_on_412(client: FlaskClient) -> None:
    response = client.post(HOOK_PATH, json=hook_body(prefetch={}), headers={"Origin": EHR_ORIGIN})
    assert response.status_code == 412
    assert_allowed(response)


def test_cors_headers_on_500(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "evaluate", explode)
    response = client.post(HOOK_PATH, json=hook_body(), headers={"Origin": EHR_ORIGIN})
    assert response.status_code == 500
    assert_allowed(response)


def test_cors_headers_on_413(tmp_path: Path) -> None:
    client = make_app(tmp_path, max_body_bytes=1024).test_client()
    response = client.post(
        HOOK_PATH, data=b"x" * 4096, content_type="application/json", headers={"Origin": EHR_ORIGIN}
    )
    assert response.status_code == 413
    assert_allowed(response)


def test_cors_headers_on_404_below_cds_services(client: FlaskClient) -> None:
    response = client.post("/cds-services/no-such-service", json=hook_body(), headers={"Origin": EHR_ORIGIN})
    assert response.status_code == 404
    assert_allowed(response)


@pytest.mark.parametrize("origins", [("*",), (EHR_ORIGIN,)])
def test_cors_headers_on_401(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rsps: responses.RequestsMock, origins: tuple[str, ...]
) -> None:
    rsps.get(
        JWKS_URL,
        json={"keys": [{**ECAlgorithm.to_jwk(_KEY.public_key(), as_dict=True), "kid": "k1", "alg": "ES384"}]},
    )
    client = create_app(
        Settings(
            auth="jwt",
            trusted_issuers={ISSUER: JWKS_URL},
            cors_origins=origins,
            database_url=f"sqlite:///{tmp_path / 'audit.db'}",
            replay_db=str(tmp_path / "jti.sqlite3"),
        )
    ).test_client()
    expired = jwt.encode(
        {
            "iss": ISSUER,
            "aud": "http://localhost" + HOOK_PATH,
            "exp": int(time.time()) - 3600,
            "iat": int(time.time()) - 4000,
            "jti": "j1",
        },
        _KEY,
        algorithm="ES384",
        headers={"kid": "k1"},
    )
    for headers in ({}, {"Authorization": f"Bearer {expired}"}):
        response = client.post(HOOK_PATH, json=hook_body(), headers={"Origin": EHR_ORIGIN, **headers})
        assert response.status_code == 401
        assert_allowed(response)
