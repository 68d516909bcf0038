"""`POST /cds-services/osteoporosis-order-select` and `…-order-sign` (issue 15): request validation, bodies
shaped as the sandbox's imaging-order (PAMA) screen sends them and as a Chinese EHR would, cards whose
actions reference draftOrders or create FHIR-valid resources."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from cds_service.api.app import create_app
from cds_service.facts.codemap import parse_code_map
from cds_service.hooks import patient_view
from cds_service.settings import Settings
from tests.builders import LOCAL, born, observation, patient, topic_of
from tests.conftest import TODAY  # the `client` fixture's today

SELECT, SIGN = "/cds-services/osteoporosis-order-select", "/cds-services/osteoporosis-order-sign"
PATIENT = "PHI-PATIENT-4711"
CPT = "http://www.ama-assn.org/go/cpt"
Body = dict[str, Any]


def service_request(
    id: str, coding: dict[str, str] | None = None, text: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A draft ServiceRequest as the PAMA screen builds it: intent plan, a CPT code, a SNOMED reason."""
    code: dict[str, Any] = {}
    if coding:
        code["coding"] = [coding]
    if text:
        code["text"] = text
    return {
        "resourceType": "ServiceRequest",
        "id": id,
        "status": "draft",
        "intent": "plan",
        "code": code,
        "subject": {"reference": f"Patient/{PATIENT}"},
        "reasonCode": [{"coding": [{"system": "http://snomed.info/sct", "code": "13213009"}]}],
        **extra,
    }


CHEST_CT = service_request(
    "pama-1", {"system": CPT, "code": "71250", "display": "CT thorax, diagnostic; without contrast material"}
)
DXA = service_request("dxa-1", {"system": CPT, "code": "77080"})


def body(
    hook: str = "order-select",
    drafts: list[dict[str, Any]] | None = None,
    selections: list[str] | None = None,
    bundle_type: str | None = None,
    record: list[dict[str, Any]] | None = None,
    who: dict[str, Any] | None = None,
    **context: Any,
) -> Body:
    drafts = [CHEST_CT] if drafts is None else drafts
    bundle: dict[str, Any] = {"resourceType": "Bundle", "entry": [{"resource": d} for d in drafts]}
    if bundle_type:
        bundle["type"] = bundle_type
    ctx: dict[str, Any] = {"patientId": PATIENT, "userId": "Practitioner/example", "draftOrders": bundle}
    if hook == "order-select":
        ctx["selections"] = selections if selections is not None else [f"ServiceRequest/{drafts[0]['id']}"]
    ctx.update(context)
    prefetch: dict[str, Any] = dict.fromkeys(patient_view.describe()["prefetch"])
    prefetch["patient"] = who or patient(PATIENT, birth_date=born(70, on=TODAY.isoformat()))
    if record:
        prefetch["observations"] = {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r} for r in record],
        }
    return {
        "hook": hook,
        "hookInstance": "3f1c2b1e-0d7e-4a53-9c1e-5d0b9f1e2a11",
        "context": ctx,
        "prefetch": prefetch,
    }


def post(client: FlaskClient, url: str, payload: Body | bytes, **headers: str) -> TestResponse:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post(url, data=data, content_type="application/json", headers=headers)


def checked_cards(response: TestResponse, payload: Body) -> list[dict[str, Any]]:
    """200 and cards whose every action references draftOrders or creates a FHIR-valid resource."""
    assert response.status_code == 200, response.get_data(as_text=True)
    drafts = {
        f"{e['resource']['resourceType']}/{e['resource'].get('id')}"
        for e in payload["context"]["draftOrders"]["entry"]
    }
    cards: list[dict[str, Any]] = response.get_json()["cards"]
    for card in cards:
        for suggestion in card.get("suggestions", []):
            for action in suggestion["actions"]:
                if action["type"] == "delete":
                    assert action["resourceId"] in drafts
                else:
                    ServiceRequest.model_validate(action["resource"])
    return cards


@pytest.mark.parametrize(
    "bundle_type", [None, "collection"], ids=["PAMA draftOrders without Bundle.type", "type"]
)
@pytest.mark.parametrize(("url", "hook"), [(SELECT, "order-select"), (SIGN, "order-sign")])
def test_pama_shaped_ct_order_gets_qct_with_ct(
    client: FlaskClient, url: str, hook: str, bundle_type: str | None
) -> None:
    payload = body(hook=hook, bundle_type=bundle_type)
    cards = checked_cards(post(client, url, payload), payload)
    assert [topic_of(c) for c in cards] == ["qct-with-ct"]
    [suggestion] = cards[0]["suggestions"]
    assert suggestion["isRecommended"] is True and cards[0]["selectionBehavior"] == "at-most-one"


def test_bmi_35_dxa_order_is_replaced_by_qct(client: FlaskClient) -> None:
    bmi = observation(value=35.0, unit_code="kg/m2", loinc="39156-5", when="2021-05-01", patient=PATIENT)
    payload = body(drafts=[DXA], record=[bmi])
    [card] = checked_cards(post(client, SELECT, payload), payload)
    assert topic_of(card) == "qct-instead-of-dxa"
    assert [a["type"] for a in card["suggestions"][0]["actions"]] == ["delete", "create"]


def _without_selections() -> Body:
    payload = body()
    del payload["context"]["selections"]
    return payload


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(body(draftOrders=[CHEST_CT]), "draftOrders", id="draftOrders a list, not a Bundle: 400"),
        pytest.param(
            body(draftOrders=CHEST_CT), "draftOrders must be a FHIR Bundle", id="draftOrders a resource"
        ),
        pytest.param(_without_selections(), "selections", id="order-select without selections: 400"),
        pytest.param(body(hook="order-sign"), "order-select hook only", id="order-sign body to order-select"),
        pytest.param(body(hook="patient-view"), "hook", id="patient-view body to order-select"),
    ],
)
def test_bad_order_requests_are_400_with_a_clear_message(
    client: FlaskClient, payload: Body, message: str
) -> None:
    response = post(client, SELECT, payload)
    assert response.status_code == 400
    diagnostics = response.get_json()["issue"][0]["diagnostics"]
    assert message in diagnostics and PATIENT not in response.get_data(as_text=True)


def test_non_service_request_drafts_are_ignored(client: FlaskClient) -> None:
    medication = {"resourceType": "MedicationRequest", "id": "m1", "status": "draft", "intent": "order"}
    payload = body(hook="order-sign", drafts=[medication, {"resourceType": "Patient"}])
    assert checked_cards(post(client, SIGN, payload), payload) == []


def test_order_sign_without_relevant_orders_is_no_cards(client: FlaskClient) -> None:
    payload = body(hook="order-sign", drafts=[service_request("x", {"system": CPT, "code": "99213"})])
    response = post(client, SIGN, payload)
    assert response.status_code == 200 and response.get_json() == {"cards": []}


@pytest.fixture
def chinese_client(tmp_path: Path) -> FlaskClient:
    code_map = parse_code_map(
        {
            "order-central-dxa": [{"system": LOCAL, "code": "RIS-DXA-01"}],
            "bmi": [{"system": LOCAL, "code": "BMI"}],
        }
    )
    settings = Settings(
        auth="none", today=TODAY, code_map=code_map, database_url=f"sqlite:///{tmp_path / 'audit.db'}"
    )
    return create_app(settings).test_client()


@pytest.mark.parametrize(
    "draft",
    [
        pytest.param(
            service_request("his-1", {"system": LOCAL, "code": "RIS-DXA-01"}), id="local code (code map)"
        ),
        pytest.param(service_request("his-1", text="双能X线骨密度（腰椎+髋部）"), id="Chinese order text"),
    ],
)
def test_chinese_ehr_dxa_order_with_obesity(chinese_client: FlaskClient, draft: dict[str, Any]) -> None:
    bmi = observation(
        value=36.2, unit_code="kg/m2", loinc=None, code=(LOCAL, "BMI"), when="2021-05-01", patient=PATIENT
    )
    payload = body(hook="order-sign", drafts=[draft], record=[bmi])
    response = post(chinese_client, SIGN, payload, **{"Accept-Language": "zh-CN"})
    [card] = checked_cards(response, payload)
    assert topic_of(card) == "qct-instead-of-dxa"
    assert "QCT" in card["summary"] and "DXA结果不可靠" in card["summary"]
    assert card["suggestions"][0]["label"] == "以腰椎QCT替代DXA"


def test_feedback_on_an_order_card_is_matched_to_the_issued_card(client: FlaskClient) -> None:
    [card] = post(client, SELECT, body()).get_json()["cards"]
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "accepted",
                "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
                "outcomeTimestamp": "2021-06-01T10:00:00Z",
            }
        ]
    }
    response = post(client, f"{SELECT}/feedback", feedback)
    assert response.status_code == 200


def test_the_request_log_line_of_an_order_hook_counts_its_drafts(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    payload = body(hook="order-sign", drafts=[CHEST_CT, DXA])
    with caplog.at_level(logging.INFO, logger="cds_service"):
        assert post(client, SIGN, payload).status_code == 200
    [line] = [r for r in caplog.records if r.name == "cds_service.api.observability"]
    assert line.drafts == 2 and line.resources >= 1  # type: ignore[attr-defined]
    assert line.sources["patient"] == "prefetch"  # type: ignore[attr-defined]
    assert PATIENT not in caplog.text
