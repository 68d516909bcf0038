"""The app factory: `create_app(settings)` builds a Flask app from its settings and nothing else."""

from __future__ import annotations

import logging
import time
import uuid

from flask import Flask, Response, g, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from cds_service.api import health, services
from cds_service.api.config import AUDIT_KEY, SETTINGS_KEY, LazyAuditStore, settings_of
from cds_service.api.errors import ISSUE_CODE_BY_STATUS, error_response
from cds_service.api.feedback import make_feedback_blueprint
from cds_service.settings import Settings

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"


class StartupError(RuntimeError):
    """The app cannot run with these settings: raised by create_app, reported by `osteo-cds serve`."""


def check_startable(settings: Settings) -> None:
    """Refuse settings this build cannot honour, before any worker starts."""
    if settings.auth == "jwt":
        raise StartupError(
            "jwt mode needs the JWT check; not available in this build "
            "(set OSTEO_CDS_AUTH=none for development)"
        )


def create_app(settings: Settings | None = None) -> Flask:
    """The service as a Flask app; settings from the environment when None."""
    settings = Settings.from_env() if settings is None else settings
    check_startable(settings)
    if settings.auth == "none":
        log.warning("OSTEO_CDS_AUTH=none: CDS Hooks calls are not authenticated (development only)")
    app = Flask(__name__)
    app.config[SETTINGS_KEY] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.register_blueprint(services.blueprint)
    app.register_blueprint(health.blueprint)
    register_feedback(app)
    _register_request_log(app)
    _register_error_handlers(app)
    _register_cors(app, settings)
    return app


def register_feedback(app: Flask) -> None:
    """`POST /cds-services/{id}/feedback`, with the audit store it writes to (opened lazily per worker)."""
    store = LazyAuditStore(settings_of(app).database_url)
    app.extensions[AUDIT_KEY] = store
    app.register_blueprint(make_feedback_blueprint(store.get, services.SERVICE_IDS))


def _register_request_log(app: Flask) -> None:
    """A request id on every answer, and one log line per request (gunicorn's access log is off)."""

    @app.before_request
    def _start() -> None:
        g.request_id = uuid.uuid4().hex
        g.started = time.monotonic()

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
            # the route pattern, not the path: nothing a client typed ends up in the log
            route = request.url_rule.rule if request.url_rule is not None else "-"
            log.info(
                "%s %s %d %.0f ms (request %s)",
                request.method,
                route,
                response.status_code,
                (time.monotonic() - g.get("started", time.monotonic())) * 1000,
                request_id,
            )
        return response


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
