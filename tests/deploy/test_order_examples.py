"""examples/draft-orders.json: each order-select demonstration gives exactly its expected order topics through
the Flask test client (examples/requests/<patient>-order-select.json, the index's settings), and the committed
request is the one scripts/demo.py writes.

Issue 15: `make demo` prints these; one draft order per demonstration patient where an order card is expected.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest
from flask.testing import FlaskClient

from cds_service.api.app import create_app
from cds_service.facts.codemap import load_code_map
from cds_service.preview.draft_orders import OrderDemo, load_draft_orders
from cds_service.settings import Settings
from cds_service.topics import Group, topics_of
from scripts import demo as demo_script

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
INDEX: dict[str, Any] = json.loads((EXAMPLES / "patients" / "index.json").read_text(encoding="utf-8"))
ORDERS = load_draft_orders(EXAMPLES)
SELECT = "/cds-services/osteoporosis-order-select"


@pytest.fixture(scope="module")
def client() -> FlaskClient:
    named = INDEX["settings"]
    settings = Settings(
        auth="none",
        today=date.fromisoformat(named["OSTEO_CDS_TODAY"]),
        code_map=load_code_map(ROOT / named["OSTEO_CDS_CODE_MAP"]),
    )
    return create_app(settings).test_client()


def _request(demo: OrderDemo) -> dict[str, Any]:
    path = EXAMPLES / "requests" / f"{demo.patient}-order-select.json"
    request: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return request


@pytest.mark.parametrize("demo", ORDERS.demos, ids=lambda d: f"{'+'.join(d.expected_topics)}-{d.patient}")
def test_each_order_demonstration_gives_exactly_its_topics(client: FlaskClient, demo: OrderDemo) -> None:
    request = _request(demo)
    drafts = [e["resource"] for e in request["context"]["draftOrders"]["entry"]]

    response = client.post(SELECT, json=request)

    assert response.status_code == 200, response.get_data(as_text=True)
    cards = response.get_json()["cards"]
    assert sorted(c["source"]["topic"]["code"] for c in cards) == sorted(demo.expected_topics)
    assert request["hook"] == "order-select" and request["context"]["selections"] == [
        f"ServiceRequest/{d['id']}" for d in drafts
    ]
    for draft in drafts:
        ServiceRequest.model_validate(draft)
    for card in cards:  # every action deletes the selected draft or creates a valid order
        for suggestion in card.get("suggestions", []):
            for action in suggestion["actions"]:
                if action["type"] == "delete":
                    assert action["resourceId"] == request["context"]["selections"][0]
                else:
                    ServiceRequest.model_validate(action["resource"])


def test_the_order_demonstrations_cover_every_order_card_but_duplicate_order() -> None:
    # duplicate-order needs an open order on the chart; tests/api/test_order_hooks.py covers it. Two order
    # cards share their topic with patient-view's (CONTRACT.md "Order hooks").
    covered = {t for d in ORDERS.demos for t in d.expected_topics}
    shared = {"peripheral-screening-only", "z-score-required"}
    assert covered == set(topics_of(Group.ORDER)) - {"duplicate-order"} | shared


def test_each_demonstration_names_a_listed_patient_once_and_a_known_draft() -> None:
    listed = {Path(e["file"]).stem for e in INDEX["patients"]}
    patients = [d.patient for d in ORDERS.demos]
    assert len(patients) == len(set(patients)) and set(patients) <= listed
    assert all(ORDERS.kind(d.draft) is not None for d in ORDERS.demos)


def test_the_committed_requests_are_what_demo_writes(tmp_path: Path) -> None:
    handmade = [p for p in demo_script.demo_patients() if p.path.parent == demo_script.PATIENTS_DIR.resolve()]
    server = json.loads((EXAMPLES / "requests" / "wang-xiulan-no-prefetch.json").read_text())["fhirServer"]

    written = demo_script.write_order_requests(tmp_path, server, handmade, prefetch=True)

    assert [o.demo for o in written] == list(ORDERS.demos)
    for order in written:
        assert json.loads(order.path.read_text()) == _request(order.demo), order.path.name
