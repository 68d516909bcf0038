"""OperationOutcome bodies for HTTP errors: a code and a diagnostics line naming the problem, nothing else."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from flask import Response


def operation_outcome(code: str, diagnostics: str) -> dict[str, Any]:
    """A FHIR OperationOutcome with one error issue; `code` is a FHIR issue type (invalid, not-found, ...)."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    }


# FHIR issue type per HTTP status, for errors raised by Flask/Werkzeug itself (routing, body size, ...).
ISSUE_CODE_BY_STATUS = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    412: "incomplete",
    413: "too-long",
    415: "not-supported",
    429: "throttled",
    500: "exception",
    503: "transient",
}


def error_response(
    status: int, code: str, diagnostics: str, headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON OperationOutcome response with that status (CDS Hooks 3.0 STU: a body on every non-2xx)."""
    response = Response(
        orjson.dumps(operation_outcome(code, diagnostics)), status=status, mimetype="application/json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
