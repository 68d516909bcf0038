"""The SMART app (issue 17 item 2): EHR launch, token exchange, the page, its headers and its audit trail.

Flask's test client against `responses`: a FHIR server (tests/conftest.py FakeFhirServer), its
smart-configuration and token endpoint. The end-to-end run in a browser is
tests/browser/test_smart_browser.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import responses
from flask.testing import FlaskClient

from cds_service import engine
from cds_service.api.app import create_app
from cds_service.api.config import AUDIT_KEY, LazyAuditStore
from cds_service.settings import Settings, SettingsError
from cds_service.smart.blueprint import COOKIE, V1_SCOPES, V2_SCOPES, focus
from cds_service.smart.links import smart_texts
from tests.builders import patient, t_score
from tests.conftest import FHIR_BASE, FakeFhirServer

PUBLIC = "https://cds.example.org"
AUTHORIZE = "https://auth.example.org/authorize"
TOKEN = "https://auth.example.org/token"
EHR_ORIGIN = "https://ehr.example.org"
ACCESS_TOKEN = "secret-access-token-1234567890"
CLIENT_ID = "osteo-cds-app"
# POP-1/DXA-3: a postmenopausal woman with a lumbar T-score of -2.7 → an osteoporosis diagnosis card.
RECORD = [patient("p1", birth_date="1950-03-01"), t_score(-2.7, when="2021-03-01")]
DIAGNOSIS = "osteoporosis-bmd"


def smart_settings(tmp_path: Path, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "auth": "none",
        "today": date(2021, 6, 1),
        "database_url": f"sqlite:///{tmp_path / 'audit.db'}",
        "public_url": PUBLIC,
        "fhir_servers": (FHIR_BASE,),
        "smart_client_id": CLIENT_ID,
        "smart_frame_ancestors": (EHR_ORIGIN,),
    }
    values.update(changes)
    return Settings(**values)


@pytest.fixture
def smart_client(tmp_path: Path) -> FlaskClient:
    return create_app(smart_settings(tmp_path)).test_client()


def _id_token(user: str = "Practitioner/dr1") -> str:
    return jwt.encode({"aud": CLIENT_ID, "iss": "https://auth.example.org", "fhirUser": user}, "k" * 32)


def ehr(
    rsps: responses.RequestsMock,
    *,
    capabilities: tuple[str, ...] = ("launch-ehr", "permission-v2"),
    app_context: str | None = None,
    token_calls: list[dict[str, list[str]]] | None = None,
) -> FakeFhirServer:
    """The EHR: smart-configuration, token endpoint (registered first) and the FHIR server."""
    rsps.add(
        responses.GET,
        f"{FHIR_BASE}/.well-known/smart-configuration",
        json={
            "authorization_endpoint": AUTHORIZE,
            "token_endpoint": TOKEN,
            "capabilities": list(capabilities),
            "code_challenge_methods_supported": ["S256"],
        },
    )

    def token(request: Any) -> tuple[int, dict[str, str], str]:
        form = parse_qs(request.body)
        if token_calls is not None:
            token_calls.append(form)
        body: dict[str, Any] = {
            "access_token": ACCESS_TOKEN,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": V2_SCOPES,
            "patient": "p1",
            "id_token": _id_token(),
        }
        if app_context is not None:
            body["appContext"] = app_context
        return 200, {"Content-Type": "application/json"}, json.dumps(body)

    rsps.add_callback(responses.POST, TOKEN, callback=token)
    return FakeFhirServer(list(RECORD)).register(rsps)


def launch(client: FlaskClient, iss: str = FHIR_BASE) -> Any:
    return client.get("/smart/launch", query_string={"iss": iss, "launch": "xyz"}, base_url=PUBLIC)


def authorize_params(response: Any) -> dict[str, str]:
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(AUTHORIZE + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def launched(client: FlaskClient) -> Any:
    """Launch, authorize (the EHR says yes) and come back: the callback's response."""
    params = authorize_params(launch(client))
    return client.get(
        "/smart/callback", query_string={"code": "c0de", "state": params["state"]}, base_url=PUBLIC
    )


# --- launch ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "iss",
    [
        pytest.param("https://evil.example.com/fhir", id="other-host"),
        pytest.param(FHIR_BASE.replace("ehr.example.org", "ehr.example.org.evil.com"), id="suffix-host"),
        pytest.param("javascript:alert(1)", id="not-http"),
        pytest.param(f"{FHIR_BASE}?x=1", id="query"),
        pytest.param("https://user:pw@ehr.example.org/fhir", id="credentials"),
    ],
)
def test_launch_refuses_an_iss_not_configured_before_any_request(
    smart_client: FlaskClient, rsps: responses.RequestsMock, iss: str
) -> None:
    response = launch(smart_client, iss)
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert len(rsps.calls) == 0  # no smart-configuration fetched: no SSRF


def test_launch_refused_when_no_fhir_servers_are_configured(tmp_path: Path, rsps: Any) -> None:
    client = create_app(smart_settings(tmp_path, fhir_servers=())).test_client()
    assert launch(client).status_code == 400
    assert len(rsps.calls) == 0


@pytest.mark.parametrize(
    ("capabilities", "scope"),
    [
        pytest.param(("launch-ehr", "permission-v2"), V2_SCOPES, id="v2-server"),
        pytest.param(("launch-ehr", "permission-v1"), V1_SCOPES, id="v1-server"),
    ],
)
def test_launch_redirects_with_pkce_s256_state_launch_and_scopes(
    smart_client: FlaskClient, rsps: responses.RequestsMock, capabilities: tuple[str, ...], scope: str
) -> None:
    ehr(rsps, capabilities=capabilities)
    params = authorize_params(launch(smart_client))
    assert params["response_type"] == "code"
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == f"{PUBLIC}/smart/callback"
    assert params["scope"] == scope
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43  # base64url SHA-256
    assert params["launch"] == "xyz"
    assert params["aud"] == FHIR_BASE
    assert len(params["state"]) >= 32


def test_launch_cookie_is_secure_httponly_samesite_none_and_holds_no_token(
    smart_client: FlaskClient, rsps: responses.RequestsMock
) -> None:
    ehr(rsps)
    cookie = launch(smart_client).headers["Set-Cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    for flag in ("Secure", "HttpOnly", "SameSite=None", "Path=/smart/"):
        assert flag in cookie


def test_launch_refused_when_the_server_lacks_s256(smart_client: FlaskClient, rsps: Any) -> None:
    rsps.add(
        responses.GET,
        f"{FHIR_BASE}/.well-known/smart-configuration",
        json={
            "authorization_endpoint": AUTHORIZE,
            "token_endpoint": TOKEN,
            "code_challenge_methods_supported": ["plain"],
        },
    )
    assert launch(smart_client).status_code == 400


# --- callback -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda state: {"code": "c0de", "state": "forged"}, id="state-mismatch"),
        pytest.param(lambda state: {"error": "access_denied", "state": state}, id="authorization-error"),
    ],
)
def test_callback_refused_without_asking_for_a_token(
    smart_client: FlaskClient, rsps: responses.RequestsMock, answer: Callable[[str], dict[str, str]]
) -> None:
    calls: list[dict[str, list[str]]] = []
    ehr(rsps, token_calls=calls)
    params = authorize_params(launch(smart_client))
    response = smart_client.get("/smart/callback", query_string=answer(params["state"]), base_url=PUBLIC)
    assert response.status_code == 400
    assert calls == []


def test_callback_without_a_launch_in_this_browser_is_refused(
    smart_client: FlaskClient, rsps: responses.RequestsMock
) -> None:
    ehr(rsps)
    params = authorize_params(launch(smart_client))
    other = smart_client.application.test_client()  # another browser: no launch cookie
    response = other.get(
        "/smart/callback", query_string={"code": "c", "state": params["state"]}, base_url=PUBLIC
    )
    assert response.status_code == 400


def test_token_exchange_sends_the_launch_verifier_and_the_session_holds_no_token(
    smart_client: FlaskClient, rsps: responses.RequestsMock
) -> None:
    calls: list[dict[str, list[str]]] = []
    ehr(rsps, token_calls=calls)
    params = authorize_params(launch(smart_client))
    response = smart_client.get(
        "/smart/callback", query_string={"code": "c0de", "state": params["state"]}, base_url=PUBLIC
    )
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/smart/app")
    (form,) = calls
    verifier = form["code_verifier"][0]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == params["code_challenge"]  # the verifier bound to this launch
    assert form["grant_type"] == ["authorization_code"] and form["code"] == ["c0de"]
    assert form["client_id"] == [CLIENT_ID]  # a public client
    cookie = response.headers["Set-Cookie"]
    assert ACCESS_TOKEN not in cookie and "Secure" in cookie and "SameSite=None" in cookie
    # A replayed callback finds no launch any more.
    again = smart_client.get(
        "/smart/callback", query_string={"code": "c0de", "state": params["state"]}, base_url=PUBLIC
    )
    assert again.status_code == 400


def test_confidential_client_authenticates_with_its_secret(tmp_path: Path, rsps: Any) -> None:
    client = create_app(smart_settings(tmp_path, smart_client_secret="s3cret")).test_client()
    ehr(rsps)
    assert launched(client).status_code == 303
    token_call = next(c for c in rsps.calls if c.request.url == TOKEN)
    assert token_call.request.headers["Authorization"].startswith("Basic ")


# --- the page -------------------------------------------------------------------------------------


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_page_shows_chart_and_explanation_without_the_token(
    smart_client: FlaskClient, rsps: responses.RequestsMock, language: str
) -> None:
    fhir = ehr(rsps)
    launched(smart_client)
    page = smart_client.get("/smart/app", query_string={"lang": language}, base_url=PUBLIC)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<svg" in html
    assert f'data-topic="{DIAGNOSIS}"' in html
    assert "DXA-3" in html  # the rule IDs of the full explanation
    # Issue 17: the app shows what the five-second card leaves out — the evidence table with each source's
    # id and the settings by their variable names.
    assert "<table>" in html and "Observation/" in html
    assert "OSTEO_CDS_" in html
    assert ACCESS_TOKEN not in html and "p1" not in page.headers.get("Location", "")
    assert f'lang="{language}"' in html
    # The record was read from the FHIR server with the token, through the query plan.
    assert all(call.headers["Authorization"] == f"Bearer {ACCESS_TOKEN}" for call in fhir.calls)
    assert any("Observation?patient=p1&code=" in str(call.url) for call in fhir.calls)


def test_page_headers_strict_csp_with_the_ehr_as_frame_ancestor(
    smart_client: FlaskClient, rsps: responses.RequestsMock
) -> None:
    ehr(rsps)
    launched(smart_client)
    page = smart_client.get("/smart/app", base_url=PUBLIC)
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert csp.endswith(f"frame-ancestors {EHR_ORIGIN}")
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"


def test_frame_ancestors_none_when_no_ehr_origin_is_configured(tmp_path: Path, rsps: Any) -> None:
    client = create_app(smart_settings(tmp_path, smart_frame_ancestors=())).test_client()
    response = client.get("/smart/app", base_url=PUBLIC)
    assert response.status_code == 401
    assert response.headers["Content-Security-Policy"].endswith("frame-ancestors 'none'")


def test_page_without_a_session_is_refused(smart_client: FlaskClient) -> None:
    assert smart_client.get("/smart/app", base_url=PUBLIC).status_code == 401


@pytest.mark.parametrize(
    ("app_context", "shown_all", "note_id"),
    [
        pytest.param(None, True, None, id="no-appContext-whole-assessment"),
        pytest.param(DIAGNOSIS, False, "focus-note", id="appContext-names-a-card"),
        pytest.param("qct-recommended", True, "focus-note", id="appContext-names-no-current-card"),
    ],
)
def test_app_context_focuses_the_card_it_names(
    smart_client: FlaskClient,
    rsps: responses.RequestsMock,
    app_context: str | None,
    shown_all: bool,
    note_id: str | None,
) -> None:
    ehr(rsps, app_context=app_context)
    launched(smart_client)
    html = smart_client.get("/smart/app", query_string={"lang": "en"}, base_url=PUBLIC).get_data(as_text=True)
    assert f'data-topic="{DIAGNOSIS}"' in html
    assert ('id="show-all"' in html) is (not shown_all)
    assert (note_id is not None) is ('id="focus-note"' in html)
    if app_context == "qct-recommended":
        assert "not in the current assessment" in html


@pytest.mark.parametrize(
    ("cards", "app_context", "expected", "note"),
    [
        pytest.param(["a", "b"], None, ["a", "b"], None, id="none"),
        pytest.param(["a", "b"], "b", ["b"], "focused_note", id="names-a-card"),
        pytest.param(["a", "b"], "c", ["a", "b"], "no_such_card", id="names-no-card"),
        pytest.param([], "c", [], "no_such_card", id="no-cards"),
    ],
)
def test_focus(cards: list[str], app_context: str | None, expected: list[str], note: str | None) -> None:
    built = [{"source": {"topic": {"code": c}}} for c in cards]
    shown, said = focus(built, app_context)
    assert [c["source"]["topic"]["code"] for c in shown] == expected
    assert said == note


def test_every_view_is_audited_with_user_patient_and_time(
    smart_client: FlaskClient, rsps: responses.RequestsMock
) -> None:
    ehr(rsps)
    launched(smart_client)
    smart_client.get("/smart/app", base_url=PUBLIC)
    smart_client.get("/smart/app", query_string={"all": "1"}, base_url=PUBLIC)
    store = smart_client.application.extensions[AUDIT_KEY]
    assert isinstance(store, LazyAuditStore)
    views = store.get().app_views()
    assert [(u, p, f) for u, p, f, _ in views] == [("Practitioner/dr1", "p1", FHIR_BASE)] * 2
    assert all(when is not None for *_, when in views)


def test_nothing_of_the_patient_or_token_is_logged(
    smart_client: FlaskClient, rsps: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    ehr(rsps)
    caplog.set_level("DEBUG")
    launched(smart_client)
    smart_client.get("/smart/app", base_url=PUBLIC)
    assert ACCESS_TOKEN not in caplog.text
    assert "Patient/p1" not in caplog.text and "c0de" not in caplog.text


# --- off unless configured; the cards' links --------------------------------------------------------


def test_app_is_off_unless_a_client_id_is_set(tmp_path: Path) -> None:
    client = create_app(smart_settings(tmp_path, smart_client_id=None)).test_client()
    assert client.get("/smart/launch", query_string={"iss": FHIR_BASE, "launch": "x"}).status_code == 404


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_cards_link_to_the_app_with_their_topic_as_app_context(tmp_path: Path, language: str) -> None:
    settings = smart_settings(tmp_path)
    cards = engine.evaluate(RECORD, "p1", settings, language=language).response["cards"]
    assert cards
    for card in cards:
        (link,) = [link for link in card["links"] if link["type"] == "smart"]
        assert link["url"] == f"{PUBLIC}/smart/launch"
        assert link["appContext"] == card["source"]["topic"]["code"]
        assert link["label"]


def test_cards_have_no_app_link_when_the_app_is_off(tmp_path: Path) -> None:
    settings = smart_settings(tmp_path, smart_client_id=None)
    cards = engine.evaluate(RECORD, "p1", settings).response["cards"]
    assert all("links" not in card for card in cards)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param(
            {"OSTEO_CDS_SMART_CLIENT_ID": "x"}, "OSTEO_CDS_PUBLIC_URL", id="client-id-without-public-url"
        ),
        pytest.param(
            {"OSTEO_CDS_SMART_FRAME_ANCESTORS": "https://ehr.example.org/path"},
            "OSTEO_CDS_SMART_FRAME_ANCESTORS",
            id="frame-ancestor-not-an-origin",
        ),
    ],
)
def test_smart_settings_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_smart_settings_read() -> None:
    settings = Settings.from_env(
        {
            "OSTEO_CDS_SMART_CLIENT_ID": "app",
            "OSTEO_CDS_SMART_CLIENT_SECRET": "s",
            "OSTEO_CDS_PUBLIC_URL": PUBLIC,
            "OSTEO_CDS_SMART_FRAME_ANCESTORS": "https://ehr.example.org, http://localhost:8080",
        }
    )
    assert settings.smart_enabled and settings.smart_client_secret == "s"
    assert settings.smart_frame_ancestors == ("https://ehr.example.org", "http://localhost:8080")


def test_app_texts_are_the_same_keys_in_both_languages() -> None:
    assert smart_texts("en").keys() == smart_texts("zh-CN").keys()
    assert all(smart_texts("zh-CN").values())
