"""Liveness `GET /healthz` and readiness `GET /readyz` (card texts, audit store, JWT replay store)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Blueprint, Flask, current_app, jsonify
from flask.typing import ResponseReturnValue
from sqlalchemy import text

from cds_service.api.config import audit_store_of
from cds_service.api.errors import error_response
from cds_service.api.security import auth_gate_of
from cds_service.cards.texts import card_texts
from cds_service.settings import LANGUAGES

log = logging.getLogger(__name__)

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify({"status": "ok"})


@blueprint.get("/readyz")
def readyz() -> ResponseReturnValue:
    """200 when every dependency of a call answers; else 503 naming the failed checks (not their causes)."""
    failed = [name for name, check in readiness_checks(current_app) if not _passes(name, check)]
    if failed:
        return error_response(503, "transient", "not ready: " + ", ".join(failed))
    return jsonify({"status": "ready"})


def readiness_checks(app: Flask) -> list[tuple[str, Callable[[], None]]]:
    checks: list[tuple[str, Callable[[], None]]] = [("card texts", _load_card_texts)]
    store = audit_store_of(app)
    if store is not None:
        lazy_store = store

        def audit_store() -> None:
            with lazy_store.get().engine.connect() as connection:
                connection.execute(text("SELECT 1"))

        checks.append(("audit store", audit_store))
    gate = auth_gate_of(app)
    if gate is not None:
        checks.append(("jwt replay store", gate.check_replay_store))
    return checks


def _load_card_texts() -> None:
    for language in LANGUAGES:
        card_texts(language)


def _passes(name: str, check: Callable[[], None]) -> bool:
    try:
        check()
    except Exception as exc:  # the class only: messages may hold database URLs with passwords
        log.warning("readiness check %s failed: %s", name, type(exc).__name__)
        return False
    return True
