"""The JWT gate through the Flask app (cds_service/api/security.py): who gets in, who gets a bare 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from flask.testing import FlaskClient
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from werkzeug.test import TestResponse

from cds_service.api import observability
from cds_service.api.app import StartupError, check_startable, create_app
from cds_service.api.auth import AuthError, ReplayStoreUnavailable
from cds_service.api.security import bearer_token, reason_class, trusts_public_sandbox
from cds_service.fhir.prefetch import PREFETCH_TEMPLATES
from cds_service.serve import run_server
from cds_service.settings import Settings

ISSUER = "https://ehr.example.org/fhir"
JWKS_URL = "https://ehr.example.org/.well-known/jwks.json"
SERVICE = "osteoporosis-patient-view"
HOOK_PATH = f"/cds-services/{SERVICE}"
FEEDBACK_PATH = f"{HOOK_PATH}/feedback"
TEST_ROOT = "http://localhost"  # the Flask test client's default url_root
EC_KID = "ec-1"
RSA_KID = "rsa-1"
PATIENT = "PHI-PATIENT-4711"

_EC_KEY = ec.generate_private_key(ec.SECP384R1())
_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_STRANGER_KEY = ec.generate_private_key(ec.SECP384R1())

JWKS = {
    "keys": [
        {
            **ECAlgorithm.to_jwk(_EC_KEY.public_key(), as_dict=True),
            "kid": EC_KID,
            "use": "sig",
            "alg": "ES384",
        },
        {
            **RSAAlgorithm.to_jwk(_RSA_KEY.public_key(), as_dict=True),
            "kid": RSA_KID,
            "use": "sig",
            "alg": "RS384",
        },
    ]
}


# --- builders ----------------------------------------------------------------------------------------


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": TEST_ROOT + HOOK_PATH,
        "exp": now + 300,
        "iat": now,
        "jti": str(uuid.uuid4()),
    }
    base.update(changes)
    return {key: value for key, value in base.items() if value is not ...}


def token(*, alg: str = "ES384", key: Any = None, kid: str | None = None, **claim_changes: Any) -> str:
    if key is None:
        key = _EC_KEY if alg == "ES384" else _RSA_KEY
    if kid is None:
        kid = EC_KID if alg == "ES384" else RSA_KID
    return jwt.encode(claims(**claim_changes), key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
    """A token PyJWT would not make: alg none, or HS256 keyed with the issuer's public key."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims()).encode())}"
    return f"{signing_input}.{_b64(sign(signing_input.encode()))}"


def _public_pem() -> bytes:
    return _EC_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def hook_body() -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": PATIENT, "userId": "Practitioner/example"},
        "prefetch": dict.fromkeys(PREFETCH_TEMPLATES),
    }


def feedback_body() -> dict[str, Any]:
    return {
        "feedback": [
            {"card": str(uuid.uuid4()), "outcome": "overridden", "outcomeTimestamp": "2021-06-01T10:00:00Z"}
        ]
    }


def call(client: FlaskClient, jwt_token: str | None, path: str = HOOK_PATH, **kwargs: Any) -> TestResponse:
    headers = {"Authorization": f"Bearer {jwt_token}"} if jwt_token is not None else {}
    body = feedback_body() if path.endswith("/feedback") else hook_body()
    return client.post(path, json=body, headers=headers, **kwargs)


def assert_bare_401(response: TestResponse) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = response.get_json()
    # Nothing about which check failed: the same minimal OperationOutcome for every refusal.
    assert body == {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "login"}]}


# --- fixtures ----------------------------------------------------------------------------------------


@pytest.fixture
def jwks_server(rsps: responses.RequestsMock) -> responses.RequestsMock:
    rsps.get(JWKS_URL, json=JWKS)
    return rsps


@pytest.fixture
def jwt_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    return Settings(
        auth="jwt",
        trusted_issuers={ISSUER: JWKS_URL},
        database_url=f"sqlite:///{tmp_path / 'audit.db'}",
        replay_db=str(tmp_path / "jti.sqlite3"),
    )


@pytest.fixture
def jwt_app(jwt_settings: Settings, jwks_server: responses.RequestsMock) -> Flask:
    return create_app(jwt_settings)


@pytest.fixture
def jwt_client(jwt_app: Flask) -> FlaskClient:
    return jwt_app.test_client()


# --- accepted ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES384", "RS384"])
def test_a_valid_token_is_accepted(jwt_client: FlaskClient, alg: str) -> None:
    response = call(jwt_client, token(alg=alg))
    assert response.status_code == 200
    assert response.get_json() == {"cards": []}


def test_unknown_claims_and_an_audience_array_are_accepted(jwt_client: FlaskClient) -> None:
    extra = token(aud=[TEST_ROOT + HOOK_PATH], sub="client-id", nbf=int(time.time()) - 300, tenant="org-1")
    assert call(jwt_client, extra).status_code == 200


def test_the_feedback_route_accepts_a_token_for_its_own_url(jwt_client: FlaskClient) -> None:
    response = call(jwt_client, token(aud=TEST_ROOT + FEEDBACK_PATH), FEEDBACK_PATH)
    assert response.status_code == 200


# --- refused: a bare 401 -----------------------------------------------------------------------------

REFUSED: list[Any] = [
    pytest.param(lambda: None, id="no Authorization header"),
    pytest.param(lambda: "", id="Bearer with nothing"),
    pytest.param(lambda: token(exp=int(time.time()) - 3600, iat=int(time.time()) - 4000), id="expired"),
    pytest.param(lambda: token(aud="https://cds.example.org" + HOOK_PATH), id="wrong aud"),
    pytest.param(lambda: token(aud=TEST_ROOT + "/cds-services"), id="aud of discovery"),
    pytest.param(lambda: token(iss="https://evil.example.net"), id="unknown iss"),
    pytest.param(lambda: token(key=_STRANGER_KEY), id="bad signature"),
    pytest.param(lambda: token(kid="no-such-kid"), id="unknown kid"),
    pytest.param(lambda: token(jti=...), id="no jti"),
    pytest.param(
        lambda: handmade({"alg": "none", "typ": "JWT", "kid": EC_KID}, lambda _: b""), id="alg none"
    ),
    pytest.param(
        lambda: handmade(
            {"alg": "HS256", "typ": "JWT", "kid": EC_KID},
            lambda data: hmac.new(_public_pem(), data, hashlib.sha256).digest(),
        ),
        id="HS256 keyed with the public key",
    ),
    pytest.param(lambda: "not-a-jwt", id="garbage"),
]


@pytest.mark.parametrize("make_token", REFUSED)
def test_a_bad_token_gets_a_bare_401(jwt_client: FlaskClient, make_token: Callable[[], str | None]) -> None:
    assert_bare_401(call(jwt_client, make_token()))


@pytest.mark.parametrize("make_token", REFUSED[:4])
def test_the_feedback_route_needs_a_valid_token_too(
    jwt_client: FlaskClient, make_token: Callable[[], str | None]
) -> None:
    assert_bare_401(call(jwt_client, make_token(), FEEDBACK_PATH))


def test_a_token_for_the_hook_is_refused_on_the_feedback_route(jwt_client: FlaskClient) -> None:
    assert_bare_401(call(jwt_client, token(aud=TEST_ROOT + HOOK_PATH), FEEDBACK_PATH))


def test_a_replayed_token_is_refused(jwt_client: FlaskClient) -> None:
    once = token()
    assert call(jwt_client, once).status_code == 200
    assert_bare_401(call(jwt_client, once))


def test_other_schemes_are_refused(jwt_client: FlaskClient) -> None:
    response = jwt_client.post(HOOK_PATH, json=hook_body(), headers={"Authorization": f"Basic {token()}"})
    assert_bare_401(response)


def test_unknown_service_ids_are_refused_before_they_are_looked_up(jwt_client: FlaskClient) -> None:
    assert_bare_401(jwt_client.post("/cds-services/no-such-service", json=hook_body()))


def test_the_body_is_not_read_before_the_token_is_checked(jwt_client: FlaskClient) -> None:
    # An unauthenticated client cannot make the service parse (or size-check) anything.
    response = jwt_client.post(HOOK_PATH, data=b"\xff{not json", content_type="application/json")
    assert_bare_401(response)


# --- public routes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/cds-services", "/healthz", "/metrics"])
def test_discovery_health_and_metrics_need_no_token(jwt_client: FlaskClient, path: str) -> None:
    assert jwt_client.get(path).status_code == 200


def test_readiness_needs_no_token(jwt_client: FlaskClient) -> None:
    assert jwt_client.get("/readyz").status_code == 200


@pytest.mark.parametrize("path", [HOOK_PATH, FEEDBACK_PATH])
def test_a_preflight_needs_no_token(jwt_client: FlaskClient, path: str) -> None:
    response = jwt_client.options(
        path,
        headers={
            "Origin": "https://ehr.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"]


# --- the audience: OSTEO_CDS_PUBLIC_URL, else the request -------------------------------------------


def test_aud_is_the_public_url_plus_the_path_when_it_is_set(
    jwt_settings: Settings, jwks_server: responses.RequestsMock
) -> None:
    public = "https://cds.example.org/osteo/"
    client = create_app(jwt_settings.with_changes(public_url=public)).test_client()
    assert call(client, token(aud="https://cds.example.org/osteo" + HOOK_PATH)).status_code == 200
    # what the request itself says (Host header, scheme) no longer counts
    assert_bare_401(call(client, token(aud=TEST_ROOT + HOOK_PATH)))


def test_aud_is_derived_from_the_request_when_no_public_url_is_set(jwt_client: FlaskClient) -> None:
    base = "https://cds.example.net"
    response = call(jwt_client, token(aud=base + HOOK_PATH), base_url=base)
    assert response.status_code == 200
    assert_bare_401(call(jwt_client, token(aud=TEST_ROOT + HOOK_PATH), base_url=base))


# --- the replay store --------------------------------------------------------------------------------


def test_an_unreachable_replay_store_answers_503_not_401(
    jwt_settings: Settings, jwks_server: responses.RequestsMock
) -> None:
    # nothing listens on port 1: the Redis store fails at once, and the call fails closed
    app = create_app(jwt_settings.with_changes(redis_url="redis://127.0.0.1:1/0"))
    response = call(app.test_client(), token())
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert response.get_json()["issue"][0]["code"] == "transient"
    assert app.test_client().get("/readyz").status_code == 503


def test_the_verifier_is_built_once_per_app(jwt_app: Flask) -> None:
    client = jwt_app.test_client()
    assert call(client, token()).status_code == 200
    gate = jwt_app.extensions["osteo_cds.auth"]
    verifier = gate.verifier()
    assert call(client, token()).status_code == 200
    assert gate.verifier() is verifier


# --- what is logged and counted ------------------------------------------------------------------------


def test_a_refusal_is_logged_with_its_reason_never_the_token(
    jwt_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    expired = token(exp=int(time.time()) - 3600, iat=int(time.time()) - 4000)
    caplog.set_level(logging.INFO)
    assert_bare_401(call(jwt_client, expired))
    text = caplog.text
    assert "ExpiredSignatureError" in text
    assert expired not in text and expired.split(".")[1] not in text and expired.split(".")[2] not in text


def test_refusals_are_counted_by_class(jwt_client: FlaskClient) -> None:
    registry = observability.metrics().registry

    def failures(reason: str) -> float:
        return registry.get_sample_value("osteo_cds_auth_failures_total", {"reason_class": reason}) or 0.0

    before = {reason: failures(reason) for reason in ("missing", "expired", "replay", "signature")}
    call(jwt_client, None)
    call(jwt_client, token(exp=int(time.time()) - 3600, iat=int(time.time()) - 4000))
    call(jwt_client, token(key=_STRANGER_KEY))
    once = token()
    call(jwt_client, once)
    call(jwt_client, once)
    assert {reason: failures(reason) - before[reason] for reason in before} == dict.fromkeys(before, 1.0)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("no bearer token (no Authorization header)", "missing"),
        ("ExpiredSignatureError: 'Signature has expired'", "expired"),
        ("ImmatureSignatureError: 'not yet valid'", "not-yet-valid"),
        ("InvalidSignatureError: 'Signature verification failed'", "signature"),
        ("aud 'x' does not name https://cds.example.org/cds-services/a", "audience"),
        ("untrusted issuer 'aud JWKS'", "issuer"),
        ("jku 'https://evil' is not the JWKS URL configured for x", "issuer"),
        ("alg 'none' not accepted", "algorithm"),
        ("JWKS fetch from https://x failed (ConnectionError)", "jwks"),
        ("unknown kid 'k'", "key"),
        ("replayed jti", "replay"),
        ("malformed token header (DecodeError)", "malformed"),
        ("exp or iat missing", "claims"),
        ("something new", "other"),
    ],
)
def test_reason_classes_are_a_closed_set(reason: str, expected: str) -> None:
    assert reason_class(AuthError(reason)) == expected


def test_an_unavailable_replay_store_has_its_own_class() -> None:
    assert reason_class(ReplayStoreUnavailable("replayed jti")) == "replay-store-unavailable"


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer abc", True),
        ("bearer abc", True),
        ("Bearer  abc ", True),
        ("Bearer a b", False),
        ("abc", False),
    ],
)
def test_bearer_token_parsing(header: str, ok: bool) -> None:
    if ok:
        assert bearer_token(header) == "abc"
    else:
        with pytest.raises(AuthError):
            bearer_token(header)


# --- start-up ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issuers", "message"),
    [
        ({}, "no call could ever be accepted"),
        ({ISSUER: "http://ehr.example.org/jwks.json"}, "must be https"),
        ({ISSUER: "ftp://ehr.example.org/jwks.json"}, "must be https"),
        ({ISSUER: "https:///jwks.json"}, "must be https"),
    ],
)
def test_jwt_mode_refuses_to_start_when_nothing_or_anything_could_be_trusted(
    issuers: dict[str, str], message: str
) -> None:
    with pytest.raises(StartupError, match=message):
        create_app(Settings(auth="jwt", trusted_issuers=issuers))


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/jwks", "http://localhost/jwks", "http://[::1]/jwks"])
def test_plain_http_jwks_is_allowed_on_loopback(url: str) -> None:
    check_startable(Settings(auth="jwt", trusted_issuers={ISSUER: url}))


def test_serve_refuses_an_empty_issuer_list_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_server(Settings(auth="jwt"), port=1) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "OSTEO_CDS_TRUSTED_ISSUERS" in error


def test_auth_none_warns_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    create_app(Settings(auth="none", database_url=f"sqlite:///{tmp_path / 'audit.db'}"))
    assert "OSTEO_CDS_AUTH=none" in caplog.text


def test_the_public_sandbox_is_never_trusted_by_default() -> None:
    assert not trusts_public_sandbox(Settings.from_env({}))
    assert dict(Settings.from_env({}).trusted_issuers) == {}


def test_trusting_the_public_sandbox_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        auth="jwt",
        trusted_issuers={
            "https://sandbox.cds-hooks.org": "https://sandbox.cds-hooks.org/.well-known/jwks.json"
        },
        database_url=f"sqlite:///{tmp_path / 'audit.db'}",
        replay_db=str(tmp_path / "jti.sqlite3"),
    )
    assert trusts_public_sandbox(settings)
    create_app(settings)
    assert "sandbox" in caplog.text and "anyone" in caplog.text
