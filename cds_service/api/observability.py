"""Logs and metrics: a JSON log line per request, Prometheus metrics (multiprocess under gunicorn), /metrics.

What goes out of here is counts, route patterns, ids we made ourselves and closed sets of labels: never a
patient id, a token, a request or response body, or a URL with its query string.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import prometheus_client
from flask import Flask, Response, g, has_request_context, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from pythonjsonlogger.json import JsonEncoder
from pythonjsonlogger.orjson import OrjsonFormatter

from cds_service.engine import Evaluation
from cds_service.fhir import client as fhir_client
from cds_service.hooks.patient_view import HookFigures
from cds_service.settings import Settings

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"
JSON_LOG_FORMAT = "%(levelname)s %(name)s %(process)d %(message)s"

# The spec targets ~500 ms per call and EHRs give up after 5-10 s: buckets around those.
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 2.5, 5.0, 10.0)
# One FHIR search (its pages and retry included) within the 2 s budget (OSTEO_CDS_FHIR_BUDGET).
FHIR_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)
# Label values that come from our own code (topic codes, skip reasons) still pass this shape check, so a
# bug can never turn free text into a label.
_LABEL_SHAPE = re.compile(r"[a-z0-9][a-z0-9-]{0,47}")


# --- metrics -----------------------------------------------------------------------------------------


class Metrics:
    """The service's metrics; one set per process (prometheus-client keeps one value file per process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = prometheus_client.Counter(
            "osteo_cds_requests",
            "HTTP requests answered, by CDS service (or route) and status",
            ["service", "status"],
            registry=self.registry,
        )
        self.request_duration = Histogram(
            "osteo_cds_request_duration_seconds",
            "Time from request to response, by CDS service (or route)",
            ["service"],
            buckets=REQUEST_BUCKETS,
            registry=self.registry,
        )
        self.fhir_requests = prometheus_client.Counter(
            "osteo_cds_fhir_requests",
            "FHIR searches on the EHR's server (each with its pages), by resource type and outcome",
            ["resource_type", "outcome"],
            registry=self.registry,
        )
        self.fhir_duration = Histogram(
            "osteo_cds_fhir_request_duration_seconds",
            "Time of one FHIR search on the EHR's server (its pages included), by resource type",
            ["resource_type"],
            buckets=FHIR_BUCKETS,
            registry=self.registry,
        )
        self.cards = prometheus_client.Counter(
            "osteo_cds_cards", "Cards returned, by topic code", ["topic"], registry=self.registry
        )
        self.skipped_items = prometheus_client.Counter(
            "osteo_cds_skipped_items",
            "FHIR items skipped while reading a patient's data, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.auth_failures = prometheus_client.Counter(
            "osteo_cds_auth_failures",
            "Calls refused by the JWT check, by class of reason",
            ["reason_class"],
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        """The text for `GET /metrics`: every worker's values in multiprocess mode, else this process's."""
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


_metrics: Metrics | None = None
_metrics_lock = threading.Lock()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def metrics() -> Metrics:
    """This process's metrics, created on first use (in a gunicorn worker: after the fork)."""
    global _metrics
    with _metrics_lock:
        if _metrics is None:
            if multiprocess_dir() is not None and values.ValueClass is values.MutexValue:
                # prometheus-client picks single- or multiprocess values when it is first imported; the
                # directory may have been set up after that (osteo-cds serve sets it before gunicorn forks).
                values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
            _metrics = Metrics()
        return _metrics


def label(value: str) -> str:
    return value if _LABEL_SHAPE.fullmatch(value) else "other"


def count_auth_failure(reason_class: str) -> None:
    try:
        metrics().auth_failures.labels(reason_class=label(reason_class)).inc()
    except Exception as exc:  # the refusal stands; only its count is lost
        log.warning("auth metrics not recorded: %s", type(exc).__name__)


# --- per-request figures --------------------------------------------------------------------------------


@dataclass
class RequestFigures:
    """Counts gathered during one request for its log line; FHIR searches report from other threads."""

    fhir_searches: int = 0
    fhir_failures: int = 0
    cards: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    hook: HookFigures | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_search(self, ok: bool) -> None:
        with self.lock:
            self.fhir_searches += 1
            if not ok:
                self.fhir_failures += 1


def _figures() -> RequestFigures | None:
    if not has_request_context():
        return None
    figures = g.get("osteo_figures")
    return figures if isinstance(figures, RequestFigures) else None


def record_hook_figures(figures: HookFigures) -> None:
    """A hook call's counts and timings, for the request's one log line."""
    current = _figures()
    if current is not None:
        current.hook = figures


def _hook_fields(figures: HookFigures) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "resources": figures.resources,
        "sources": figures.sources,
        "gather_ms": round(figures.gather_ms, 1),
        "evaluate_ms": round(figures.evaluate_ms, 1),
    }
    if figures.drafts is not None:
        fields["drafts"] = figures.drafts
    if figures.data_cut:
        fields["data_cut"] = True
    return fields


def record_evaluation(evaluation: Evaluation) -> None:
    """Cards by topic and skipped items by reason: into the metrics and the request's log line."""
    topics = [label(topic) for topic in evaluation.topics]
    skipped = Counter[str]()
    for reason, count in evaluation.skipped.items():
        skipped[label(reason)] += count
    try:
        current = metrics()
        for topic in topics:
            current.cards.labels(topic=topic).inc()
        for reason, count in skipped.items():
            current.skipped_items.labels(reason=reason).inc(count)
    except Exception as exc:  # metrics must never cost the clinician the cards
        log.warning("card metrics not recorded: %s", type(exc).__name__)
    figures = _figures()
    if figures is not None:
        figures.cards.update(topics)
        figures.skipped.update(skipped)


_FHIR_OUTCOMES = {
    "ok": "ok",
    "cut": "cut",  # an answer, but incomplete (page cap, a later page failed, out of time)
    "timeout": "timeout",
    "connection error": "connection-error",
    "budget exceeded": "budget-exceeded",
    "OperationOutcome": "operation-outcome",
    "page too large": "too-large",
    "not JSON": "invalid-response",
    "not a FHIR resource": "invalid-response",
    "unexpected resourceType": "invalid-response",
}


def fhir_outcome(outcome: str) -> str:
    """The FHIR client's free-text outcome ("ok", "cut", "http 503", "timeout", ...) as a closed label."""
    if outcome.startswith("http "):
        code = outcome.removeprefix("http ").strip()
        return f"http-{code[0]}xx" if code[:1] in ("1", "2", "3", "4", "5") else "http-other"
    return _FHIR_OUTCOMES.get(outcome, "error")


def _search_observer() -> fhir_client.SearchObserver:
    """Made in the request's thread when a FhirClient is created; called from the search threads."""
    figures = _figures()

    def observe(resource_type: str, outcome: str, seconds: float) -> None:
        try:
            current = metrics()
            kind = resource_type if resource_type.isalpha() and len(resource_type) <= 40 else "other"
            current.fhir_requests.labels(resource_type=kind, outcome=fhir_outcome(outcome)).inc()
            current.fhir_duration.labels(resource_type=kind).observe(seconds)
            if figures is not None:
                figures.add_search(outcome in ("ok", "cut"))
        except Exception as exc:  # metrics must never cost a search its result
            log.warning("fhir metrics not recorded: %s", type(exc).__name__)

    return observe


fhir_client.search_observer_factory = _search_observer


# --- the request log --------------------------------------------------------------------------------------


def service_label(known_service_ids: Iterable[str]) -> str:
    """The `service` label and log field: the CDS service id (or `<id>/feedback`), else the route's name."""
    rule = request.url_rule
    if rule is None:
        return "unmatched"  # 404/405: nothing the client typed becomes a label
    service_id = (request.view_args or {}).get("service_id")
    if service_id is not None:
        name = service_id if service_id in known_service_ids else "unknown"
        return f"{name}/feedback" if rule.rule.endswith("/feedback") else name
    return str(rule.endpoint).rsplit(".", 1)[-1]


def register_request_observation(app: Flask, settings: Settings, known_service_ids: Iterable[str]) -> None:
    """A request id on every answer, one log line and the request metrics per request, and `/metrics`."""
    service_ids = frozenset(known_service_ids)

    @app.before_request
    def _start() -> None:
        g.request_id = uuid.uuid4().hex
        g.started = time.monotonic()
        g.osteo_figures = RequestFigures()

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id")
        if not request_id:
            return response
        response.headers[REQUEST_ID_HEADER] = request_id
        seconds = time.monotonic() - g.get("started", time.monotonic())
        service = service_label(service_ids)
        try:
            current = metrics()
            current.requests.labels(service=service, status=str(response.status_code)).inc()
            current.request_duration.labels(service=service).observe(seconds)
        except Exception as exc:  # a metrics failure must not turn an answer into a 500
            log.warning("request metrics not recorded: %s", type(exc).__name__)
        # the route pattern, not the path: nothing a client typed ends up in the log
        route = request.url_rule.rule if request.url_rule is not None else "-"
        fields: dict[str, Any] = {
            "request_id": request_id,
            "method": request.method,
            "route": route,
            "service": service,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 1),
        }
        figures = g.get("osteo_figures")
        if isinstance(figures, RequestFigures):
            if figures.hook is not None:
                fields.update(_hook_fields(figures.hook))
            if figures.fhir_searches:
                fields["fhir_searches"] = figures.fhir_searches
                fields["fhir_failures"] = figures.fhir_failures
            if figures.cards:
                fields["cards"] = dict(figures.cards)
            if figures.skipped:
                fields["skipped"] = dict(figures.skipped)
        for name in ("auth_issuer", "auth_tenant"):
            if g.get(name):
                fields[name] = g.get(name)
        log.info(
            "%s %s %d %.0f ms", request.method, route, response.status_code, seconds * 1000, extra=fields
        )
        return response

    if settings.metrics_enabled:

        @app.get(METRICS_PATH)
        def prometheus_metrics() -> Response:
            return Response(metrics().exposition(), mimetype=None, content_type=CONTENT_TYPE_LATEST)


# --- log configuration -------------------------------------------------------------------------------------


class RequestContextFilter(logging.Filter):
    """Adds the request id to every record logged while a request is handled (in the request's thread)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and has_request_context():
            request_id = g.get("request_id")
            if request_id:
                record.request_id = request_id
        return True


class _JsonLines(OrjsonFormatter):
    """python-json-logger's fields encoded by orjson: ~35 µs less CPU per request than the standard `json`
    (two lines; docs/performance.md, issue 12, fifth pass). What orjson refuses (a lone surrogate, an integer
    beyond 64 bits) is encoded by the standard module instead, so no line is lost."""

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        try:
            return super().jsonify_log_record(log_data)
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            return json.dumps(log_data, cls=JsonEncoder, ensure_ascii=False)


def json_formatter() -> logging.Formatter:
    """One JSON object per line: time, level, logger, process, message, and the record's extra fields."""
    return _JsonLines(
        JSON_LOG_FORMAT,
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",  # ISO 8601, UTC
    )


def logging_config(level: str = "INFO") -> dict[str, Any]:
    """A dictConfig: JSON lines on stderr for our loggers and gunicorn's (its access log stays off)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_context": {"()": f"{__name__}.RequestContextFilter"}},
        "formatters": {"json": {"()": f"{__name__}.json_formatter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["request_context"],
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": level, "handlers": [], "propagate": False},
            # urllib3 logs request lines (query strings with patient ids) at DEBUG
            "urllib3": {"level": "WARNING"},
        },
    }


def configure_logging(level: str = "INFO") -> None:
    """JSON logs on stderr for this process (osteo-cds serve, or create_app when nothing is configured)."""
    logging.config.dictConfig(logging_config(level))
