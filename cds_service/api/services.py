"""`/cds-services`: discovery and the service call (parse, validate, call the hook handler, serialise)."""

from __future__ import annotations

import logging
from collections import Counter

import orjson
from flask import Blueprint, Response, current_app, g, request
from pydantic import ValidationError

from cds_service import __version__
from cds_service.api import observability
from cds_service.api.config import audit_store_of, current_settings
from cds_service.api.errors import error_response
from cds_service.api.models import OrderRequest, PatientViewRequest, describe_errors
from cds_service.audit.onboarding import record_response
from cds_service.engine import Evaluation
from cds_service.fhir.client import FhirServerRefused
from cds_service.fhir.gather import DataUnavailable
from cds_service.fhir.onboarding import Coding
from cds_service.hooks import orders, patient_view
from cds_service.settings import LANGUAGES

log = logging.getLogger(__name__)

blueprint = Blueprint("cds_services", __name__)

SERVICE_IDS = (patient_view.SERVICE_ID, orders.SELECT_ID, orders.SIGN_ID)
_BOM = b"\xef\xbb\xbf"


class BadBody(ValueError):
    """The request body is not a JSON object."""


def json_response(body: object, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def parse_json_object(raw: bytes) -> dict[str, object]:
    """The body as a JSON object; BadBody names what is wrong with it (never echoing it)."""
    raw = raw.removeprefix(_BOM)
    if not raw.strip():
        raise BadBody("request body is empty")
    try:
        body = orjson.loads(raw)  # strict UTF-8, no NaN, bounded nesting
    except orjson.JSONDecodeError as exc:
        raise BadBody("request body is not valid UTF-8 JSON") from exc
    if not isinstance(body, dict):
        raise BadBody("request body must be a JSON object")
    return body


def pick_language(default: str) -> str:
    """`zh-CN` for any zh*, `en` for any en*, in the order of the client's preference; else the setting."""
    for value, quality in request.accept_languages:
        if quality <= 0:
            continue
        tag = value.lower()
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return default if default in LANGUAGES else "en"


@blueprint.get("/cds-services")
def discovery() -> Response:
    return json_response(
        {
            "services": [
                patient_view.describe(current_settings()),
                orders.describe(orders.SELECT_ID, current_settings()),
                orders.describe(orders.SIGN_ID, current_settings()),
            ]
        }
    )


@blueprint.post("/cds-services/<service_id>")
def call_service(service_id: str) -> Response:
    if service_id not in SERVICE_IDS:
        return error_response(404, "not-found", "no CDS service with this id")
    settings = current_settings()
    model = PatientViewRequest if service_id == patient_view.SERVICE_ID else OrderRequest
    try:
        hook_request = model.model_validate(parse_json_object(request.get_data(cache=False)))
        order_call = (
            hook_request.to_order_call(service_id) if isinstance(hook_request, OrderRequest) else None
        )
    except BadBody as exc:
        return error_response(400, "structure", str(exc))
    except ValidationError as exc:
        return error_response(400, "invalid", describe_errors(exc))
    except ValueError as exc:  # the order context does not fit this service (messages name fields only)
        return error_response(400, "invalid", str(exc))
    language = pick_language(settings.language)
    unrecognised: list[Counter[Coding]] = []  # written with the issued cards, in one transaction
    try:
        if order_call is not None:
            evaluation = orders.handle(
                order_call, settings, language, unrecognised.append, observability.record_hook_figures
            )
        else:
            evaluation = patient_view.handle(
                hook_request.to_call(),
                settings,
                language,
                unrecognised.append,
                observability.record_hook_figures,
            )
    except FhirServerRefused as exc:
        return error_response(400, "forbidden", str(exc))
    except DataUnavailable as exc:
        # CDS Hooks 2.0: 412 when the data can be had neither from prefetch nor from the FHIR server.
        # Resource types only: no patient data in error bodies.
        return error_response(
            412,
            "incomplete",
            "cannot obtain the FHIR data this service needs: "
            f"{', '.join(exc.resource_types)} (not in the prefetch, and not obtainable from fhirServer)",
        )
    observability.record_evaluation(evaluation)
    # OSTEO_CDS_SILENT: the cards are recorded (card-volume report) but no clinician sees them yet.
    response = json_response({"cards": []} if settings.silent else evaluation.response)
    _record_once_sent(
        response,
        hook_request.hookInstance,
        evaluation,
        sum(unrecognised, Counter()),
        service_id,
        settings.silent,
    )
    return response


def _record_once_sent(
    response: Response,
    hook_instance: str,
    evaluation: Evaluation,
    unrecognised: Counter[Coding],
    service_id: str,
    silent: bool,
) -> None:
    """The audit records of one response in one transaction: card uuids and topics (to match feedback) and
    the site-onboarding counts (no patient data), written once the answer is sent.

    The WSGI server closes the response after its last byte is written (PEP 3333; gunicorn does it in the
    request's thread, before that thread takes another request, and a graceful stop waits for it): the
    clinician does not wait for the write (0.2 ms of a typical call's 1.3, more when SQLite's write lock is
    busy). A worker killed hard in that instant loses the records of that one response; feedback on its
    cards is still stored (as for unknown cards). A store failure costs no cards: it is logged.
    """
    lazy_store = audit_store_of(current_app)
    if lazy_store is None:
        return
    cards = evaluation.response.get("cards")
    issued = []
    for card in cards if isinstance(cards, list) else []:
        topic = card.get("source", {}).get("topic", {}).get("code") if isinstance(card, dict) else None
        if isinstance(card, dict) and isinstance(card.get("uuid"), str) and isinstance(topic, str):
            issued.append((card["uuid"], topic))
    if not issued and not unrecognised:
        return
    request_id = g.get("request_id", "-")  # the request's context is gone when the response is closed

    def write() -> None:
        try:
            record_response(
                lazy_store.get(), unrecognised, hook_instance, service_id, issued, __version__, silent=silent
            )
        except Exception as exc:  # the audit trail must not cost the clinician the cards
            log.error(
                "audit records not written (request %s): %s",
                request_id,
                type(exc).__name__,
                extra={"request_id": request_id},
            )

    response.call_on_close(write)
