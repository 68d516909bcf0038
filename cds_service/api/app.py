"""The app factory: `create_app(settings)` builds a Flask app from its settings and nothing else."""

from __future__ import annotations

import importlib
import logging

from flask import Flask, Response, g, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.wsgi import LimitedStream

from cds_service.api import health, observability, security, services
from cds_service.api.config import AUDIT_KEY, SETTINGS_KEY, LazyAuditStore, settings_of
from cds_service.api.errors import ISSUE_CODE_BY_STATUS, error_response
from cds_service.api.feedback import make_feedback_blueprint
from cds_service.settings import Settings

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = observability.REQUEST_ID_HEADER
PREVIEW_MODULE = "cds_service.preview"


class StartupError(RuntimeError):
    """The app cannot run with these settings: raised by create_app, reported by `osteo-cds serve`."""


def check_startable(settings: Settings) -> None:
    """Refuse settings this build cannot honour, before any worker starts."""
    try:
        security.check_auth_settings(settings)
    except security.AuthSettingsError as exc:
        raise StartupError(str(exc)) from None


def create_app(settings: Settings | None = None) -> Flask:
    """The service as a Flask app; settings from the environment when None."""
    settings = Settings.from_env() if settings is None else settings
    check_startable(settings)
    if not logging.getLogger().handlers:
        observability.configure_logging()  # e.g. under another WSGI server; `osteo-cds serve` does its own
    if settings.auth == "none":
        log.warning("OSTEO_CDS_AUTH=none: CDS Hooks calls are not authenticated (development only)")
    app = Flask(__name__)
    app.config[SETTINGS_KEY] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # The request id and clock first, then the JWT gate: refusals are logged and counted like any answer.
    observability.register_request_observation(app, settings, services.SERVICE_IDS)
    security.register_auth(app, settings)
    _register_body_limit(app)
    app.register_blueprint(services.blueprint)
    app.register_blueprint(health.blueprint)
    register_feedback(app)
    if settings.smart_enabled:
        register_smart(app)
    if settings.preview_enabled:
        register_preview(app)
    _register_error_handlers(app)
    _register_cors(app, settings)
    return app


def register_preview(app: Flask) -> None:
    """The optional preview pages (OSTEO_CDS_PREVIEW); the service runs without them if they are missing."""
    try:
        preview = importlib.import_module(PREVIEW_MODULE)
    except ImportError as exc:
        log.warning("OSTEO_CDS_PREVIEW is on but the preview is not available (%s missing)", exc.name)
        return
    if settings_of(app).auth == "jwt":
        log.warning("OSTEO_CDS_PREVIEW is on: its pages are public, not behind the JWT check")
    preview.register_preview(app)


def register_smart(app: Flask) -> None:
    """The SMART app the cards link to (OSTEO_CDS_SMART_CLIENT_ID); its tables live in the audit database."""
    from cds_service.smart.blueprint import register_smart as register

    register(app)


def register_feedback(app: Flask) -> None:
    """`POST /cds-services/{id}/feedback`, with the audit store it writes to (opened lazily per worker)."""
    store = LazyAuditStore(settings_of(app).database_url)
    app.extensions[AUDIT_KEY] = store
    app.register_blueprint(make_feedback_blueprint(store.get, services.SERVICE_IDS))


def _register_body_limit(app: Flask) -> None:
    """413 for a chunked body over OSTEO_CDS_MAX_BODY_BYTES, as for one whose Content-Length says so.

    Without a Content-Length, Werkzeug stops reading at the limit and hands on the first part, which would
    then be judged as (invalid) JSON. Runs after the JWT gate: nobody unauthenticated makes us read a body.
    """

    @app.before_request
    def _refuse_long_chunked_body() -> None:
        if request.method != "POST" or request.content_length is not None:
            return
        request.get_data(cache=True)  # the views read this cached copy
        stream = request.stream
        if isinstance(stream, LimitedStream) and stream.is_exhausted:
            stream.read(1)  # reading past the maximum raises RequestEntityTooLarge (413)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        headers = {}
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            headers["Allow"] = ", ".join(exc.valid_methods)
        diagnostics = f"{request.method} {request.path}: {exc.name}" if status in (404, 405) else exc.name
        return error_response(status, ISSUE_CODE_BY_STATUS.get(status, "processing"), diagnostics, headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # The type and the request id only: messages and tracebacks may hold patient data or tokens.
        request_id = g.get("request_id", "-")
        log.error("unexpected %s in request %s", type(exc).__name__, request_id)
        return error_response(500, "exception", f"internal error (request {request_id})")


def _register_cors(app: Flask, settings: Settings) -> None:
    # Browser EHRs (and the CDS Hooks sandbox) preflight every call; headers go on errors too.
    origins: str | list[str] = "*" if "*" in settings.cors_origins else list(settings.cors_origins)
    CORS(
        app,
        resources={r"/cds-services.*": {"origins": origins}, r"/healthz": {"origins": origins}},
        methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Content-Type", "Authorization"],
        expose_headers=[REQUEST_ID_HEADER],
        max_age=600,
    )
