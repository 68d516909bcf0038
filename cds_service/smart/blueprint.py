"""The SMART on FHIR app (issue 17): the full explanation and the bone-density chart, launched from a card.

SMART App Launch 2.0 EHR launch, with Authlib's OAuth 2.0 client:

1. `GET /smart/launch?iss=…&launch=…`: `iss` must be one of OSTEO_CDS_FHIR_SERVERS (else 400, before any
   request or redirect); the endpoints come from `{iss}/.well-known/smart-configuration`; the browser is
   sent to the authorization endpoint with PKCE (S256 only), a fresh `state`, `launch` and `aud=iss`.
   The state and the PKCE verifier are kept server-side under a new session id (the cookie).
2. `GET /smart/callback?code=…&state=…`: the state must be the one of this browser's launch; the code is
   exchanged (with that launch's verifier); the access token, patient, fhirUser and appContext are kept
   server-side under a new session id, and the browser goes on to the page.
3. `GET /smart/app`: reads the patient's record through the service's query plan with the token, runs the
   pipeline, and shows every card's full explanation and the chart. `appContext` (a card's topic code, as
   the cards' `smart` links carry it) shows that card; none, or one naming no current card, shows all
   (the latter with a note). Each view is audited (fhirUser, patient, time).

Only GET routes, none of them changing anything but the caller's own session: a forged cross-site request
can at most start a launch, which the `state` check then refuses. The cookie is Secure, HttpOnly and
SameSite=None (the app runs in the EHR's iframe); it holds a random id, never a token.
"""

from __future__ import annotations

import logging
import secrets
import threading
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749.errors import OAuth2Error
from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from markupsafe import Markup
from werkzeug.wrappers import Response as BaseResponse

from cds_service import engine
from cds_service.api.config import AUDIT_KEY, SETTINGS_KEY, LazyAuditStore
from cds_service.fhir.client import FhirServerRefused, check_fhir_server
from cds_service.fhir.gather import DataUnavailable
from cds_service.hooks.patient_view import ORDER_KEYS, strategy_for
from cds_service.preview.chart import assessment_chart_model, render_svg
from cds_service.preview.markup import markdown_to_safe_html
from cds_service.settings import LANGUAGES, Settings
from cds_service.smart.links import PREFIX, redirect_uri, smart_texts
from cds_service.smart.sessions import SessionStore

log = logging.getLogger(__name__)

BLUEPRINT_NAME = "smart"
COOKIE = "osteo_cds_smart"
SESSIONS_KEY = "osteo_cds.smart.sessions"
LAUNCH_LIFETIME = timedelta(minutes=10)
DEFAULT_TOKEN_SECONDS = 300  # when the token response gives no expires_in
MAX_SESSION_SECONDS = 3600  # a session never outlives an hour: relaunch from the card
MAX_PARAM = 2048  # `launch`, `code`, `state` and `iss` longer than this are refused
V2_SCOPES = "launch openid fhirUser patient/*.rs"
V1_SCOPES = "launch openid fhirUser patient/*.read"


class LaunchRefused(Exception):
    """A launch or callback the app does not accept: a short page with this status."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason  # for the log; never a URL, token or patient id


def register_smart(app: Flask) -> None:
    """Add the SMART app's routes (only when OSTEO_CDS_SMART_CLIENT_ID is set); again: nothing."""
    if BLUEPRINT_NAME in app.blueprints or not _settings_of(app).smart_enabled:
        return
    audit = app.extensions.get(AUDIT_KEY)
    if not isinstance(audit, LazyAuditStore):
        audit = LazyAuditStore(_settings_of(app).database_url)
        app.extensions[AUDIT_KEY] = audit
    app.extensions[SESSIONS_KEY] = _LazySessions(audit)
    app.register_blueprint(make_blueprint())


def make_blueprint() -> Blueprint:
    blueprint = Blueprint(
        BLUEPRINT_NAME,
        __name__,
        url_prefix=PREFIX,
        template_folder="templates",
        static_folder="static",
        static_url_path="/static",
    )
    blueprint.add_url_rule("/launch", "launch", launch, methods=["GET"])
    blueprint.add_url_rule("/callback", "callback", callback, methods=["GET"])
    blueprint.add_url_rule("/app", "page", page, methods=["GET"])
    blueprint.register_error_handler(LaunchRefused, _refused)
    blueprint.after_request(_security_headers)
    return blueprint


# --- views ----------------------------------------------------------------------------------------


def launch() -> ResponseReturnValue:
    settings = _settings()
    iss = _param("iss")
    launch_id = _param("launch")
    if not settings.fhir_servers:
        raise LaunchRefused(400, "no OSTEO_CDS_FHIR_SERVERS configured")
    try:
        iss = check_fhir_server(iss, settings)
    except FhirServerRefused as exc:
        raise LaunchRefused(400, "iss is not an allowed FHIR server") from exc
    config = _smart_configuration(iss, settings)
    authorize, token = (
        _endpoint(config, "authorization_endpoint", iss),
        _endpoint(config, "token_endpoint", iss),
    )
    methods = config.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise LaunchRefused(400, "the authorization server does not support PKCE S256")
    capabilities = config.get("capabilities")
    v2 = isinstance(capabilities, list) and "permission-v2" in capabilities
    scope = V2_SCOPES if v2 else V1_SCOPES
    verifier = generate_token(64)
    state = generate_token(32)
    with _client(settings, scope) as client:  # builds the URL (S256 challenge of the verifier); no request
        url, _ = client.create_authorization_url(
            authorize, state=state, code_verifier=verifier, launch=launch_id, aud=iss
        )
    session_id = _sessions().create(
        {"phase": "launch", "state": state, "verifier": verifier, "iss": iss, "token_endpoint": token},
        LAUNCH_LIFETIME,
    )
    response = redirect(url, code=302)
    _set_cookie(response, session_id, LAUNCH_LIFETIME)
    log.info("smart: launch redirected to authorization (%s scopes)", "v2" if v2 else "v1")
    return response


def callback() -> ResponseReturnValue:
    settings = _settings()
    session_id = request.cookies.get(COOKIE)
    pending = _sessions().get(session_id)
    if pending is None or pending.get("phase") != "launch" or session_id is None:
        raise LaunchRefused(400, "callback without a launch in this browser")
    _sessions().delete(session_id)  # one use: a replayed callback finds nothing
    if request.args.get("error"):
        raise LaunchRefused(400, "authorization refused")
    if not secrets.compare_digest(_param("state"), str(pending["state"])):
        raise LaunchRefused(400, "state mismatch")
    client = _client(settings, None)
    try:
        token = client.fetch_token(
            str(pending["token_endpoint"]),
            grant_type="authorization_code",
            code=_param("code"),
            code_verifier=str(pending["verifier"]),
        )
    except (OAuth2Error, requests.RequestException, ValueError) as exc:
        raise LaunchRefused(400, f"token exchange failed ({type(exc).__name__})") from exc
    finally:
        client.close()
    access_token, patient = token.get("access_token"), token.get("patient")
    if not isinstance(access_token, str) or not isinstance(patient, str) or not patient:
        raise LaunchRefused(400, "the token response has no access token or no patient")
    lifetime = token.get("expires_in")
    seconds = lifetime if isinstance(lifetime, int) and lifetime > 0 else DEFAULT_TOKEN_SECONDS
    seconds = min(seconds, MAX_SESSION_SECONDS)
    app_context = token.get("appContext")
    new_id = _sessions().create(
        {
            "phase": "app",
            "iss": pending["iss"],
            "access_token": access_token,
            "patient": patient,
            "user": _fhir_user(token.get("id_token"), settings),
            "app_context": app_context if isinstance(app_context, str) else None,
        },
        timedelta(seconds=seconds),
    )
    response = redirect(url_for(f"{BLUEPRINT_NAME}.page"), code=303)
    _set_cookie(response, new_id, timedelta(seconds=seconds))
    log.info("smart: token received, session started")
    return response


def page() -> ResponseReturnValue:
    settings = _settings()
    language = _language(settings)
    words = smart_texts(language)
    session = _sessions().get(request.cookies.get(COOKIE))
    if session is None or session.get("phase") != "app":
        raise LaunchRefused(401, "no app session")
    patient, iss = str(session["patient"]), str(session["iss"])
    try:
        gathered = strategy_for(settings).gather(
            prefetch=None,
            context={"patientId": patient, "userId": str(session["user"])},
            fhir_server=iss,
            access_token=str(session["access_token"]),
            settings=settings,
        )
    except (DataUnavailable, FhirServerRefused) as exc:
        raise LaunchRefused(502, f"FHIR read failed ({type(exc).__name__})") from exc
    evaluation = engine.evaluate(
        gathered.resources,
        patient,
        settings,
        language=language,
        data_cut=gathered.data_cut,
        orders_unknown=any(key in ORDER_KEYS for key in gathered.omitted),
        reading_notes=gathered.notes,
    )
    assert evaluation.assessment is not None  # engine.evaluate always gives it
    _audit().get().record_app_view(str(session["user"]), patient, iss)
    cards = evaluation.response["cards"]
    # The card's full explanation (its detail is the five-second version), in the cards' order.
    explanations = evaluation.explanations()
    shown, note = focus(cards, session.get("app_context"), show_all="all" in request.args)
    return render_template(
        "smart/app.html",
        lang=language,
        languages=LANGUAGES,
        words=words,
        note=words[note] if note else None,
        data_cut=gathered.data_cut or bool(gathered.omitted),
        cards=[
            _card_view(card, explanation)
            for card, explanation in zip(cards, explanations, strict=True)
            if any(card is chosen for chosen in shown)
        ],
        all_count=len(cards),
        focused=len(shown) < len(cards),
        chart_svg=Markup(render_svg(assessment_chart_model(evaluation.assessment, language))),
    )


def focus(
    cards: list[dict[str, Any]], app_context: object, *, show_all: bool = False
) -> tuple[list[dict[str, Any]], str | None]:
    """The cards to show and the note to show with them, for the launch's `appContext` (a topic code)."""
    if show_all or not isinstance(app_context, str) or not app_context:
        return cards, None
    chosen = [card for card in cards if _topic(card) == app_context]
    if not chosen:
        return cards, "no_such_card"
    return chosen, "focused_note"


# --- helpers --------------------------------------------------------------------------------------


class _LazySessions:
    """The session store on the audit store's database, opened on first use in each worker."""

    def __init__(self, audit: LazyAuditStore) -> None:
        self._audit = audit
        self._store: SessionStore | None = None
        self._lock = threading.Lock()

    def get(self) -> SessionStore:
        with self._lock:
            if self._store is None:
                self._store = SessionStore(self._audit.get().engine)
            return self._store


def _settings_of(app: Flask) -> Settings:
    settings = app.config[SETTINGS_KEY]
    assert isinstance(settings, Settings)
    return settings


def _settings() -> Settings:
    return _settings_of(current_app)


def _sessions() -> SessionStore:
    holder = current_app.extensions[SESSIONS_KEY]
    assert isinstance(holder, _LazySessions)
    return holder.get()


def _audit() -> LazyAuditStore:
    audit = current_app.extensions[AUDIT_KEY]
    assert isinstance(audit, LazyAuditStore)
    return audit


def _param(name: str) -> str:
    value = request.args.get(name, "")
    if not value or len(value) > MAX_PARAM:
        raise LaunchRefused(400, f"missing or oversized {name}")
    return value


def _language(settings: Settings) -> str:
    asked = request.args.get("lang")
    if asked in LANGUAGES:
        return str(asked)
    best = request.accept_languages.best_match(LANGUAGES)
    return best if best in LANGUAGES else settings.language


def _client(settings: Settings, scope: str | None) -> OAuth2Session:
    return OAuth2Session(
        client_id=settings.smart_client_id,
        client_secret=settings.smart_client_secret,
        token_endpoint_auth_method="client_secret_basic" if settings.smart_client_secret else "none",
        scope=scope,
        redirect_uri=redirect_uri(settings),
        code_challenge_method="S256",
        default_timeout=settings.fhir_timeout_seconds,
    )


def _smart_configuration(iss: str, settings: Settings) -> dict[str, Any]:
    try:
        response = requests.get(
            f"{iss}/.well-known/smart-configuration",
            headers={"Accept": "application/json"},
            timeout=settings.fhir_timeout_seconds,
            allow_redirects=False,
        )
        response.raise_for_status()
        config = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise LaunchRefused(502, f"smart-configuration not read ({type(exc).__name__})") from exc
    if not isinstance(config, dict):
        raise LaunchRefused(502, "smart-configuration is not a JSON object")
    return config


def _endpoint(config: dict[str, Any], name: str, iss: str) -> str:
    """An endpoint of the smart-configuration: an absolute URL, https unless the FHIR server is http."""
    url = config.get(name)
    if not isinstance(url, str):
        raise LaunchRefused(502, f"smart-configuration has no {name}")
    parts = urlsplit(url)
    allowed = ("https",) if urlsplit(iss).scheme == "https" else ("http", "https")
    if parts.scheme not in allowed or not parts.hostname or parts.username or parts.password:
        raise LaunchRefused(502, f"smart-configuration {name} is not an acceptable URL")
    return url


def _fhir_user(id_token: object, settings: Settings) -> str:
    """fhirUser of the OpenID Connect id_token, for the audit trail.

    The id_token comes straight from the token endpoint over TLS, which OpenID Connect Core 1.0 §3.1.3.7
    accepts in place of checking its signature; its audience must still be this client.
    """
    if not isinstance(id_token, str):
        return "unknown"
    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return "unknown"
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    user = claims.get("fhirUser")
    if settings.smart_client_id not in audiences or not isinstance(user, str):
        return "unknown"
    return user


def _set_cookie(response: BaseResponse, session_id: str, lifetime: timedelta) -> None:
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(lifetime.total_seconds()),
        path=f"{PREFIX}/",
        secure=True,
        httponly=True,
        samesite="None",  # the app runs in the EHR's iframe: a cross-site context
    )


def _topic(card: dict[str, Any]) -> str | None:
    code = card.get("source", {}).get("topic", {}).get("code")
    return code if isinstance(code, str) else None


def _card_view(card: dict[str, Any], explanation: str) -> dict[str, Any]:
    return {
        "topic": _topic(card),
        "title": card.get("source", {}).get("topic", {}).get("display"),
        "indicator": card.get("indicator"),
        "summary": card.get("summary"),
        # The full explanation: evidence table, report text, every note, rules, settings, skipped data.
        "explanation_html": Markup(markdown_to_safe_html(explanation)),
    }


def _refused(exc: LaunchRefused) -> ResponseReturnValue:
    log.warning("smart: refused (%s)", exc.reason)
    settings = _settings()
    words = smart_texts(_language(settings))
    key = {401: "not_signed_in", 502: "fhir_failed"}.get(exc.status, "launch_refused")
    body = render_template("smart/refused.html", words=words, message=words[key])
    return Response(body, status=exc.status, mimetype="text/html")


def frame_ancestors(settings: Settings) -> str:
    return " ".join(settings.smart_frame_ancestors) or "'none'"


def _security_headers(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # the callback's code never leaves in a Referer
    response.headers["Cache-Control"] = "no-store"
    # The preview's strict policy, except frame-ancestors: the configured EHR origins may frame the app.
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'; "
        f"frame-ancestors {frame_ancestors(_settings())}"
    )
    return response
