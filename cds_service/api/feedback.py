"""The CDS Hooks 2.0 feedback endpoint: validate the body, store it in the audit store, answer `200 {}`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from flask import Blueprint, jsonify, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError

from cds_service.api.errors import operation_outcome
from cds_service.api.services import BadBody, parse_json_object
from cds_service.audit.feedback import FeedbackError, parse_feedback
from cds_service.audit.store import AuditStore

logger = logging.getLogger(__name__)


def make_feedback_blueprint(
    store_getter: Callable[[], AuditStore], known_service_ids: Collection[str]
) -> Blueprint:
    """`POST /cds-services/<service_id>/feedback` for the given services, stored through `store_getter()`."""
    services = frozenset(known_service_ids)
    blueprint = Blueprint("feedback", __name__)

    @blueprint.post("/cds-services/<service_id>/feedback")
    def receive_feedback(service_id: str) -> ResponseReturnValue:
        if service_id not in services:
            return jsonify(operation_outcome("not-found", "no CDS service with this id")), 404
        # Content-Type is not required (some clients omit or mislabel it); the body must be a JSON object,
        # parsed like the hook's (orjson: strict UTF-8, bounded nesting, never a RecursionError).
        try:
            body = parse_json_object(request.get_data(cache=True))
        except BadBody as exc:
            return jsonify(operation_outcome("invalid", str(exc))), 400
        try:
            items = parse_feedback(body)
        except FeedbackError as exc:
            return jsonify(operation_outcome("invalid", exc.message)), 400
        try:
            result = store_getter().record_feedback(service_id, items)
        except SQLAlchemyError as exc:
            # The cause goes to the log by class only: statement parameters are not for log files.
            logger.error("feedback not stored for service %s: %s", service_id, type(exc).__name__)
            return jsonify(operation_outcome("exception", "feedback could not be stored")), 500
        logger.info(
            "feedback for service %s: %d stored, %d duplicate, %d for unknown cards",
            service_id,
            result.stored,
            result.duplicates,
            result.unknown_cards,
        )
        return jsonify({}), 200

    return blueprint
