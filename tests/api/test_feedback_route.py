"""`POST /cds-services/<id>/feedback` (cds_service/api/feedback.py) on a tiny app with only that blueprint."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from cds_service.api.feedback import make_feedback_blueprint
from cds_service.audit.feedback import FeedbackItem
from cds_service.audit.store import AuditStore, FeedbackResult

SERVICE = "osteoporosis-patient-view"
URL = f"/cds-services/{SERVICE}/feedback"
CARD = str(uuid.uuid4())
PATIENT_MARKER = "Zhang San MRN 0042"


def accepted(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "card": CARD,
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": "suggestion-1"}],
        "outcomeTimestamp": "2021-12-11T10:05:31Z",
    }
    item.update(changes)
    return {key: value for key, value in item.items() if value is not ...}


@pytest.fixture
def store(tmp_path: Path) -> AuditStore:
    return AuditStore.from_url(f"sqlite:///{tmp_path / 'audit.db'}")


@pytest.fixture
def client(store: AuditStore) -> FlaskClient:
    app = Flask(__name__)
    app.register_blueprint(make_feedback_blueprint(lambda: store, [SERVICE]))
    return app.test_client()


def stored_rows(store: AuditStore) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(text("SELECT * FROM feedback"))]


def assert_outcome(response: Any, status: int, code: str) -> str:
    assert response.status_code == status
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    [issue] = body["issue"]
    assert (issue["severity"], issue["code"]) == ("error", code)
    assert "Traceback" not in issue["diagnostics"]
    return str(issue["diagnostics"])


def test_valid_feedback_is_stored(client: FlaskClient, store: AuditStore) -> None:
    store.record_issued("hook-1", SERVICE, [(CARD, "osteoporosis-bmd")], "0.1.0")
    response = client.post(URL, json={"feedback": [accepted()]})
    assert response.status_code == 200
    assert response.get_json() == {}
    [row] = stored_rows(store)
    assert (row["card_uuid"], row["outcome"], row["service_id"]) == (CARD, "accepted", SERVICE)
    assert [(r.topic_code, r.accepted) for r in store.report(None, None)] == [("osteoporosis-bmd", 1)]


def test_repeated_feedback_is_answered_200_and_stored_once(client: FlaskClient, store: AuditStore) -> None:
    body = {"feedback": [accepted()]}
    assert client.post(URL, json=body).status_code == 200
    assert client.post(URL, json=body).status_code == 200
    assert len(stored_rows(store)) == 1


def test_feedback_on_an_unknown_card_is_accepted(client: FlaskClient, store: AuditStore) -> None:
    response = client.post(URL, json={"feedback": [accepted(card=str(uuid.uuid4()))]})
    assert response.status_code == 200
    assert len(stored_rows(store)) == 1


def test_comment_text_is_not_stored(client: FlaskClient, store: AuditStore) -> None:
    item = {
        "card": CARD,
        "outcome": "overridden",
        "overrideReason": {"userComment": PATIENT_MARKER},
        "outcomeTimestamp": "2021-12-11T10:05:31Z",
    }
    assert client.post(URL, json={"feedback": [item]}).status_code == 200
    [row] = stored_rows(store)
    assert row["has_user_comment"] in (1, True)
    assert PATIENT_MARKER not in json.dumps(row, default=str)


def test_json_without_json_content_type_is_read(client: FlaskClient, store: AuditStore) -> None:
    response = client.post(URL, data=json.dumps({"feedback": [accepted()]}), content_type="text/plain")
    assert response.status_code == 200
    assert len(stored_rows(store)) == 1


def test_unknown_service_is_404(client: FlaskClient, store: AuditStore) -> None:
    response = client.post("/cds-services/no-such-service/feedback", json={"feedback": [accepted()]})
    diagnostics = assert_outcome(response, 404, "not-found")
    assert "no-such-service" not in diagnostics
    assert stored_rows(store) == []


def test_get_is_not_allowed(client: FlaskClient) -> None:
    assert client.get(URL).status_code == 405


def _raw(data: str | bytes, content_type: str = "application/json") -> dict[str, Any]:
    return {"data": data, "content_type": content_type}


@pytest.mark.parametrize(
    ("request_kwargs", "problem"),
    [
        pytest.param(_raw(f'{{"feedback": [{PATIENT_MARKER}'), "not valid UTF-8 JSON", id="malformed JSON"),
        pytest.param(_raw(PATIENT_MARKER, "text/plain"), "not valid UTF-8 JSON", id="plain text"),
        pytest.param(_raw(b"\xff\xfe{}"), "not valid UTF-8 JSON", id="not UTF-8"),
        pytest.param(_raw(""), "empty", id="empty body"),
        pytest.param(_raw("null"), "JSON object", id="JSON null"),
        pytest.param({"json": [accepted()]}, "JSON object", id="JSON array"),
        pytest.param({"json": PATIENT_MARKER}, "JSON object", id="JSON string"),
        pytest.param({"json": {}}, "feedback is required", id="feedback missing"),
        pytest.param({"json": {"feedback": []}}, "must not be empty", id="feedback empty"),
        pytest.param({"json": {"feedback": accepted()}}, "must be an array", id="feedback not a list"),
        pytest.param({"json": {"feedback": [accepted()] * 101}}, "more than 100", id="feedback too long"),
        pytest.param({"json": {"feedback": [accepted(outcome="dismissed")]}}, "outcome", id="bad outcome"),
        pytest.param(
            {"json": {"feedback": [accepted(acceptedSuggestions=...)]}},
            "cds-fb-2",
            id="accepted without suggestions",
        ),
        pytest.param(
            {"json": {"feedback": [accepted(outcomeTimestamp=PATIENT_MARKER)]}},
            "outcomeTimestamp",
            id="bad timestamp",
        ),
        pytest.param(
            {"json": {"feedback": [accepted(outcomeTimestamp="2021-12-11 10:05")]}},
            "outcomeTimestamp",
            id="timestamp without seconds or offset",
        ),
        pytest.param({"json": {"feedback": [accepted(card=PATIENT_MARKER)]}}, "card", id="bad uuid"),
        pytest.param(
            {"json": {"feedback": [accepted(), accepted(card="not-a-uuid")]}},
            "feedback[1].card",
            id="one bad item of two",
        ),
    ],
)
def test_malformed_payloads_are_400(
    client: FlaskClient, store: AuditStore, request_kwargs: dict[str, Any], problem: str
) -> None:
    response = client.post(URL, **request_kwargs)
    diagnostics = assert_outcome(response, 400, "invalid")
    assert problem in diagnostics
    assert PATIENT_MARKER not in diagnostics
    assert stored_rows(store) == []  # nothing of a rejected body is stored, valid items included


class _BrokenStore(AuditStore):
    def record_feedback(self, service_id: str, items: Any) -> FeedbackResult:
        raise OperationalError("INSERT INTO feedback ...", {"card_uuid": CARD}, Exception("disk I/O error"))


def test_store_failure_is_500_without_details(store: AuditStore, caplog: pytest.LogCaptureFixture) -> None:
    broken = _BrokenStore(store.engine)
    app = Flask(__name__)
    app.register_blueprint(make_feedback_blueprint(lambda: broken, [SERVICE]))
    response = app.test_client().post(URL, json={"feedback": [accepted()]})
    diagnostics = assert_outcome(response, 500, "exception")
    assert "INSERT" not in diagnostics and "disk" not in diagnostics
    assert CARD not in caplog.text


def test_invalid_bodies_never_reach_the_store(store: AuditStore) -> None:
    calls: list[int] = []

    def getter() -> AuditStore:
        calls.append(1)
        return store

    app = Flask(__name__)
    app.register_blueprint(make_feedback_blueprint(getter, {SERVICE}))
    client = app.test_client()
    client.post(URL, json={"feedback": [accepted()]})
    client.post(URL, json={"feedback": []})
    assert len(calls) == 1  # invalid bodies never reach the store


def test_items_reach_the_store_parsed(store: AuditStore, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[FeedbackItem]] = []
    original = store.record_feedback

    def spy(service_id: str, items: Any) -> FeedbackResult:
        seen.append(list(items))
        return original(service_id, items)

    monkeypatch.setattr(store, "record_feedback", spy)
    app = Flask(__name__)
    app.register_blueprint(make_feedback_blueprint(lambda: store, [SERVICE]))
    app.test_client().post(URL, json={"feedback": [accepted(card=CARD.upper(), extension={"x": 1})]})
    [[item]] = seen
    assert item.card == CARD
