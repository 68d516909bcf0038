"""The preview routes: the page (`GET /`), its orders mode (`GET /preview/orders`), `POST /preview/evaluate`
and `POST /chart.svg`.

A demonstration and review tool, registered only when the preview setting is on. It evaluates the
data it is given with the same engine as the hook, stores nothing and calls no FHIR server.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from cds_service import engine
from cds_service.api.config import SETTINGS_KEY
from cds_service.cards.texts import card_texts
from cds_service.facts.bundle import BundleError, patient_data
from cds_service.preview.chart import assessment_chart_model, render_svg
from cds_service.preview.demos import (
    DEFAULT_EXAMPLES_DIR,
    Catalogue,
    Demo,
    demo_settings,
    load_catalogue,
    read_demo,
)
from cds_service.preview.draft_orders import draft_service_request, load_draft_orders
from cds_service.preview.markup import is_web_url, markdown_to_safe_html
from cds_service.preview.texts import preview_texts
from cds_service.settings import LANGUAGES, Settings
from cds_service.topics import TOPICS

log = logging.getLogger(__name__)

BLUEPRINT_NAME = "preview"
EXAMPLES_DIR_KEY = "osteo_cds.preview.examples_dir"

# The page runs only its own script and style; card HTML is sanitised, and this stops anything missed.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'"


class PreviewError(Exception):
    """A request the preview cannot answer: becomes a JSON error with this status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def register_preview(app: Flask, examples_dir: Path | None = None) -> None:
    """Add the preview routes to the app; calling it again does nothing.

    `examples_dir` holds the demonstrations (default: the repository's examples/)."""
    if BLUEPRINT_NAME in app.blueprints:
        return
    app.extensions[EXAMPLES_DIR_KEY] = examples_dir or DEFAULT_EXAMPLES_DIR
    app.register_blueprint(make_blueprint())


def make_blueprint() -> Blueprint:
    blueprint = Blueprint(
        BLUEPRINT_NAME,
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/preview/static",
    )
    blueprint.add_url_rule("/", "page", page, methods=["GET"])
    blueprint.add_url_rule("/preview/examples/<path:demo_id>", "example", example, methods=["GET"])
    blueprint.add_url_rule("/preview/orders", "orders", orders_view, methods=["GET"])
    blueprint.add_url_rule("/preview/evaluate", "evaluate", evaluate_view, methods=["POST"])
    blueprint.add_url_rule("/chart.svg", "chart", chart_view, methods=["POST"])
    blueprint.register_error_handler(PreviewError, _preview_error)
    blueprint.register_error_handler(HTTPException, _http_error)
    blueprint.register_error_handler(Exception, _unexpected_error)
    blueprint.after_request(_security_headers)
    return blueprint


# --- views ----------------------------------------------------------------------------------------


def page() -> ResponseReturnValue:
    language = _language(request.args.get("lang"))
    texts = preview_texts(language)
    cards = card_texts(language)
    topics = [
        {
            "code": code,
            "title": cards["cards"][code]["title"],
            "group": topic.group.value,
            "indicator": topic.indicator,
            "meaning_html": markdown_to_safe_html(cards["cards"][code]["detail"]),
            "rules": topic.rules,
        }
        for code, topic in TOPICS.items()
    ]
    catalogue = _catalogue()
    demos = [
        {
            "id": d.id,
            "label": d.label,
            "group": d.group,
            "description": d.description_in(language),
            "expected_topics": d.expected_topics,
        }
        for d in catalogue.demos
    ]
    demo_settings_text = ", ".join(f"{k}={v}" for k, v in catalogue.settings.items())
    return render_template(
        "preview/index.html",
        lang=language,
        languages=LANGUAGES,
        page=texts["page"],
        ui=texts["ui"],
        orders=texts["orders"],
        about_html=[markdown_to_safe_html(p) for p in texts["page"]["about"]],
        endpoints_html=[markdown_to_safe_html(e) for e in texts["page"]["endpoints"]],
        cards_intro_html=markdown_to_safe_html(texts["page"]["cards_intro"]),
        topics=topics,
        patient_demos=[d for d in demos if d["group"] == "patients"],
        request_demos=[d for d in demos if d["group"] == "requests"],
        demo_settings=demo_settings_text,
    )


def example(demo_id: str) -> ResponseReturnValue:
    demo = _catalogue().find(demo_id)
    if demo is None:
        raise PreviewError(404, "no such demonstration patient")
    return current_app.response_class(json.dumps(_demo_document(demo)), mimetype="application/json")


def evaluate_view() -> ResponseReturnValue:
    """JSON in: {"document": <Bundle or CDS Hooks request>} or {"example": "<id>"}, and "lang".
    JSON out: the cards as an EHR shows them (detail as sanitised HTML) and the chart as SVG."""
    body = _json_body()
    if not isinstance(body, dict):
        raise PreviewError(400, "the body must be a JSON object")
    settings = _settings()
    if "document" in body:
        document = body["document"]
    elif isinstance(body.get("example"), str):
        catalogue = _catalogue()
        demo = catalogue.find(body["example"])
        if demo is None:
            raise PreviewError(404, "no such demonstration patient")
        document = _demo_document(demo)
        settings = demo_settings(settings, catalogue, _examples_dir())
    elif body.get("resourceType") == "Bundle" or "hook" in body:
        document = body  # a Bundle or hook request posted as it is
    else:
        raise PreviewError(400, 'give "document" (a FHIR Bundle or CDS Hooks request) or "example"')
    lang = body.get("lang", request.args.get("lang"))
    if lang is not None and not isinstance(lang, str):
        raise PreviewError(400, "lang must be a string")
    language = _language(lang, strict=lang is not None)
    resources, patient_id = _patient_data_of(document)
    evaluation = engine.evaluate(resources, patient_id, settings, language=language)
    assert evaluation.assessment is not None  # engine.evaluate always gives it
    notes = []
    if isinstance(document, dict) and "hook" in document and not document.get("prefetch"):
        notes.append("no_prefetch")
    cards = [_card_view(card, language) for card in evaluation.response["cards"]]
    for view, explanation in zip(cards, evaluation.explanations(), strict=True):
        view["explanation_html"] = markdown_to_safe_html(explanation)
    payload = {
        "lang": language,
        "cards": cards,
        "topics": [card["source"]["topic"]["code"] for card in evaluation.response["cards"]],
        "chart_svg": render_svg(assessment_chart_model(evaluation.assessment, language)),
        "notes": notes,
    }
    response = current_app.response_class(
        json.dumps(payload, ensure_ascii=False), mimetype="application/json"
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def orders_view() -> ResponseReturnValue:
    """The orders mode: a demonstration patient and a draft order kind chosen in a plain GET form, and the
    cards `osteoporosis-order-select` gives when that draft is selected. Rendered on the server (no script);
    the record is the patient's bundle, evaluated with the index's settings like the other demonstrations."""
    language = _language(request.args.get("lang"))
    texts = preview_texts(language)
    catalogue = _catalogue()
    orders = load_draft_orders(_examples_dir())
    patients = [d for d in catalogue.demos if d.group == "patients"]
    chosen_patient, chosen_draft = request.args.get("patient", ""), request.args.get("draft", "")
    patient = next((d for d in patients if d.path.stem == chosen_patient), None)
    kind = orders.kind(chosen_draft)
    if (chosen_patient and patient is None) or (chosen_draft and kind is None):
        raise PreviewError(404, "no such demonstration patient or draft order")
    result: dict[str, Any] | None = None
    if patient is not None and kind is not None:
        resources, patient_id = _patient_data_of(_demo_document(patient))
        draft = draft_service_request(kind, patient_id)
        settings = demo_settings(_settings(), catalogue, _examples_dir())
        evaluation = engine.evaluate_orders(
            resources, patient_id, settings, [draft], {f"ServiceRequest/{draft['id']}"}, language=language
        )
        expected = next(
            (
                o.expected_topics
                for o in orders.demos
                if (o.patient, o.draft) == (chosen_patient, chosen_draft)
            ),
            None,
        )
        result = {
            "cards": [_card_view(card, language) for card in evaluation.response["cards"]],
            "topics": evaluation.topics,
            "expected": expected,
            "draft_json": json.dumps(draft, ensure_ascii=False, indent=1),
        }
    paired = {o.patient: o.draft for o in orders.demos}
    return render_template(
        "preview/orders.html",
        lang=language,
        page=texts["page"],
        ui=texts["ui"],
        orders=texts["orders"],
        patients=[
            {"id": d.path.stem, "label": d.label, "paired": orders.kind(paired.get(d.path.stem, ""))}
            for d in patients
        ],
        kinds=[{"id": k.id, "title": k.title_in(language)} for k in orders.kinds],
        chosen_patient=chosen_patient,
        chosen_draft=chosen_draft,
        result=result,
        language_hrefs={  # the language switch keeps the choice
            code: url_for(
                "preview.orders", lang=code, patient=chosen_patient or None, draft=chosen_draft or None
            )
            for code in LANGUAGES
        },
    )


def chart_view() -> ResponseReturnValue:
    """The chart of a FHIR Bundle or CDS Hooks request (the body), as SVG to embed."""
    language = _language(request.args.get("lang"), strict="lang" in request.args)
    resources, patient_id = _patient_data_of(_json_body())
    svg = render_svg(
        assessment_chart_model(engine.assess_record(resources, patient_id, _settings()), language)
    )
    response = Response(svg, mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "no-store"
    return response


# --- helpers --------------------------------------------------------------------------------------


def _settings() -> Settings:
    settings = current_app.config[SETTINGS_KEY]
    assert isinstance(settings, Settings)
    return settings


def _examples_dir() -> Path:
    folder = current_app.extensions.get(EXAMPLES_DIR_KEY, DEFAULT_EXAMPLES_DIR)
    return folder if isinstance(folder, Path) else DEFAULT_EXAMPLES_DIR


def _catalogue() -> Catalogue:
    """Read at request time: demonstrations added while the service runs show up."""
    return load_catalogue(_examples_dir())


def _language(asked: str | None, *, strict: bool = False) -> str:
    """?lang= (or the body's lang), else the browser's Accept-Language, else the service's setting."""
    if asked in LANGUAGES:
        return str(asked)
    if strict:
        raise PreviewError(400, f"lang must be one of {', '.join(LANGUAGES)}")
    best = request.accept_languages.best_match(LANGUAGES)
    return best if best in LANGUAGES else _settings().language


def _json_body() -> Any:
    limit = _settings().max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PreviewError(413, f"the body is larger than {limit} bytes")
    raw = request.get_data(cache=False)
    if len(raw) > limit:
        raise PreviewError(413, f"the body is larger than {limit} bytes")
    if not raw.strip():
        raise PreviewError(400, "the body is empty; send JSON")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise PreviewError(400, "the body is not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise PreviewError(
            400, f"the body is not valid JSON (line {exc.lineno}, column {exc.colno})"
        ) from exc
    except RecursionError as exc:
        raise PreviewError(400, "the body is nested too deeply") from exc


def _patient_data_of(document: Any) -> tuple[list[dict[str, Any]], str]:
    try:
        return patient_data(document)
    except BundleError as exc:
        raise PreviewError(400, str(exc)) from exc


def _demo_document(demo: Demo) -> Any:
    try:
        return read_demo(demo)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("demonstration file %s is not readable JSON", demo.path.name)
        raise PreviewError(500, "the demonstration file is not readable") from exc


def _card_view(card: dict[str, Any], language: str) -> dict[str, Any]:
    """A card as the page draws it: all text stays text, except `detail_html` (rendered and sanitised)."""
    source = card.get("source", {})
    view: dict[str, Any] = {
        "topic": source.get("topic", {}).get("code"),
        "topic_display": source.get("topic", {}).get("display"),
        "indicator": card.get("indicator"),
        "summary": card.get("summary"),
        "detail_html": markdown_to_safe_html(card.get("detail", "")),
        "source_label": source.get("label"),
        "source_url": source.get("url") if is_web_url(source.get("url")) else None,
        "suggestions": [
            {
                "label": s.get("label"),
                "is_recommended": bool(s.get("isRecommended")),
                "actions": [
                    {
                        "type": a.get("type"),
                        "description": a.get("description"),
                        "resource_type": (a.get("resource") or {}).get("resourceType"),
                        "resource": a.get("resource"),
                    }
                    for a in s.get("actions", [])
                ],
            }
            for s in card.get("suggestions", [])
        ],
        "selection_behavior": card.get("selectionBehavior"),
        "override_reasons": [r.get("display") or r.get("code") for r in card.get("overrideReasons", [])],
        "links": [
            {"label": link.get("label"), "url": link.get("url"), "type": link.get("type")}
            for link in card.get("links", [])
            if link.get("type") == "absolute" and is_web_url(link.get("url"))
        ],
        "smart_links": sum(1 for link in card.get("links", []) if link.get("type") == "smart"),
        "raw": card,
    }
    return view


def _preview_error(exc: PreviewError) -> ResponseReturnValue:
    return _error(exc.status, exc.message)


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    if status == 413:
        return _error(413, f"the body is larger than {_settings().max_body_bytes} bytes")
    return _error(status, exc.name)


def _unexpected_error(exc: Exception) -> ResponseReturnValue:
    # The type only: messages and tracebacks may hold patient data.
    log.error("preview: unexpected %s", type(exc).__name__)
    return _error(500, "internal error while evaluating the data")


def _error(status: int, message: str) -> ResponseReturnValue:
    body = json.dumps({"status": status, "message": message}, ensure_ascii=False)
    return current_app.response_class(body, status=status, mimetype="application/json")


def _security_headers(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if response.mimetype == "image/svg+xml":
        response.headers["Content-Security-Policy"] = SVG_CSP
    elif response.mimetype == "text/html":
        response.headers["Content-Security-Policy"] = PAGE_CSP
    return response
