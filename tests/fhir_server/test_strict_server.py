"""Every example patient against a FHIR server as strict as the strictest real one (issue 14).

scripts/strict_fhir_server.py, in-process: it refuses an Observation search without code or category
("Must have either code or category", as Epic does), refuses `_sort`, and pages at 50. Each patient of
examples/patients/index.json (hand-made and Synthea, OSTEO_CDS_TODAY and the code map of the index) must
give the index's cards three ways, and never make the server refuse a search:
- no prefetch: the service runs the query plan's searches on the server;
- through prefetch: the EHR runs discovery's templates on the server (first pages only, the service
  follows `next` on fhirServer);
- the committed example request (examples/requests, every key answered in one unpaged searchset).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from bench import long_chart_waves
from cds_service.fhir.prefetch import render
from cds_service.hooks import patient_view
from cds_service.settings import Settings
from scripts.demo import demo_patients, hook_requests
from scripts.make_examples import bundle_resources
from scripts.strict_fhir_server import MAX_PAGE_SIZE, StrictFhirServer

ROOT = Path(__file__).resolve().parents[2]
SERVICE_URL = "/cds-services/osteoporosis-patient-view"
PATIENTS = demo_patients()
BY_NAME = {p.name: p for p in PATIENTS}


@pytest.fixture(scope="module")
def server() -> Iterator[StrictFhirServer]:
    resources = [r for patient in PATIENTS for r in bundle_resources(patient.path)]
    with StrictFhirServer(resources) as strict:
        yield strict


def topics(client: FlaskClient, body: dict[str, Any]) -> list[str]:
    response = client.post(SERVICE_URL, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return sorted(card["source"]["topic"]["code"] for card in response.get_json()["cards"])


def prefetch_from(server: StrictFhirServer, settings: Settings, context: dict[str, Any]) -> dict[str, Any]:
    """What an EHR sends after running discovery's templates on its server: first pages only."""
    prefetch = {}
    for key, template in patient_view.strategy_for(settings).templates.items():
        answer = requests.get(f"{server.base}/{render(template, context)}", timeout=30)
        assert answer.status_code == 200, (key, answer.text[:300])
        prefetch[key] = answer.json()
    return prefetch


@pytest.mark.parametrize("name", [p.name for p in PATIENTS])
def test_the_same_cards_with_and_without_prefetch_on_a_strict_server(
    server: StrictFhirServer, settings: Settings, client: FlaskClient, name: str
) -> None:
    patient = BY_NAME[name]
    with_prefetch, without_prefetch = hook_requests(patient, server.base)
    refused_before = len(server.refused)

    fetched = topics(client, without_prefetch | {"fhirServer": server.base})
    through_prefetch = topics(
        client,
        without_prefetch
        | {
            "fhirServer": server.base,
            "prefetch": prefetch_from(server, settings, without_prefetch["context"]),
        },
    )
    committed = topics(client, with_prefetch)

    assert server.refused[refused_before:] == []
    assert fetched == through_prefetch == committed == sorted(patient.expected)


def test_the_strict_server_refuses_what_the_strictest_servers_refuse(server: StrictFhirServer) -> None:
    """The test above means something: unnarrowed Observations and _sort are refused, pages are 50."""
    patient = BY_NAME["vicenta-maggio"]
    unnarrowed = requests.get(f"{server.base}/Observation?patient={patient.patient_id}", timeout=30)
    assert unnarrowed.status_code == 400
    assert unnarrowed.json()["issue"][0]["diagnostics"] == "Must have either code or category"
    sorted_search = requests.get(
        f"{server.base}/Condition?patient={patient.patient_id}&_sort=-date", timeout=30
    )
    assert sorted_search.status_code == 400
    paged = requests.get(
        f"{server.base}/Observation?patient={patient.patient_id}&category=vital-signs&_count=200", timeout=30
    ).json()
    assert len(paged["entry"]) == MAX_PAGE_SIZE < paged["total"]
    assert any(link["relation"] == "next" for link in paged["link"])


def test_a_5000_observation_chart_gives_every_dxa_and_the_right_card_in_three_waves() -> None:
    """Issue 14: narrowed searches, pages of 50, unnarrowed Observation searches refused (bench/ at 50 ms)."""
    outcome = long_chart_waves.run(delay=0.0)

    assert outcome.refused == 0
    assert outcome.dxa_read == outcome.dxa_in_chart > 0
    assert outcome.topics == long_chart_waves.EXPECTED_TOPICS
    assert outcome.waves <= 3
