"""Against a real FHIR R4 server (sekmet-fhir, scripts/fhir_server.py): no-prefetch calls, templates, paging.

One server for the module, loaded with examples/patients (hand-made, local codes) and the Synthea bundles,
ids kept. A no-prefetch call (the service runs its own searches on the server) must give the same cards
as the prefetch call built from the same bundle, and as examples/patients/index.json says.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from cds_service.api.app import create_app
from cds_service.fhir.client import Deadline, FhirClient
from cds_service.fhir.gather import PrefetchStrategy
from cds_service.fhir.prefetch import PREFETCH_TEMPLATES, render
from cds_service.hooks import patient_view
from cds_service.settings import Settings
from scripts.demo import DemoPatient, demo_patients, hook_requests
from scripts.fhir_server import FhirServer, sekmet_available
from scripts.load_fhir import LoadError

pytestmark = [
    pytest.mark.fhir_server,
    pytest.mark.skipif(
        not sekmet_available(),
        reason=".fhir-server/bin/sekmet is missing: `bash scripts/test-setup.sh` installs it",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
SERVICE_URL = "/cds-services/osteoporosis-patient-view"
STRICT = {"Prefer": "handling=strict", "Accept": "application/fhir+json"}
PATIENTS = demo_patients()
BY_NAME = {p.name: p for p in PATIENTS}
MANY_OBSERVATIONS = "vicenta-maggio"  # the longest Synthea record: 130+ observations


@pytest.fixture(scope="module")
def fhir_server() -> Iterator[FhirServer]:
    with FhirServer() as server:
        server.load([ROOT / "examples" / "patients", ROOT / "tests" / "fixtures" / "synthea"])
        yield server


def post(client: FlaskClient, body: dict[str, Any]) -> tuple[int, list[str]]:
    response = client.post(SERVICE_URL, json=body)
    payload = response.get_json()
    cards = payload.get("cards", []) if isinstance(payload, dict) else []
    return response.status_code, [card["source"]["topic"]["code"] for card in cards]


def requests_for(patient: DemoPatient, server: FhirServer) -> tuple[dict[str, Any], dict[str, Any]]:
    return hook_requests(patient, server.base_url)


# --- the same cards with and without prefetch ------------------------------------------------------------


@pytest.mark.parametrize("name", [p.name for p in PATIENTS])
def test_no_prefetch_on_a_real_server_gives_the_prefetch_cards(
    fhir_server: FhirServer, client: FlaskClient, name: str
) -> None:
    patient = BY_NAME[name]
    with_prefetch, without_prefetch = requests_for(patient, fhir_server)

    prefetch_status, prefetch_topics = post(client, with_prefetch)
    fetched_status, fetched_topics = post(client, without_prefetch)

    assert (prefetch_status, fetched_status) == (200, 200)
    assert sorted(fetched_topics) == sorted(prefetch_topics)
    assert sorted(fetched_topics) == sorted(patient.expected), "examples/patients/index.json"


def test_a_prefetched_first_page_is_completed_by_following_next_on_the_server(
    fhir_server: FhirServer, client: FlaskClient
) -> None:
    """A client may paginate prefetch: page 1 of the observations, the rest read from `next` links."""
    patient = BY_NAME[MANY_OBSERVATIONS]
    full, _ = requests_for(patient, fhir_server)
    first_page = requests.get(
        f"{fhir_server.base_url}/Observation",
        params={"patient": patient.patient_id, "_sort": "-date", "_count": "20"},
        headers=STRICT,
        timeout=30,
    ).json()
    assert any(link["relation"] == "next" for link in first_page["link"])
    paged = {**full, "fhirServer": fhir_server.base_url}
    paged["prefetch"] = {**full["prefetch"], "observations": first_page}

    assert post(client, paged) == post(client, full)


# --- the prefetch templates are valid searches on a real server ------------------------------------------


@pytest.mark.parametrize("key", list(PREFETCH_TEMPLATES))
def test_every_prefetch_template_is_accepted_with_strict_handling(fhir_server: FhirServer, key: str) -> None:
    """`Prefer: handling=strict`: an unknown search or sort parameter would be a 400, not a silent skip."""
    patient = BY_NAME[MANY_OBSERVATIONS]
    relative = render(PREFETCH_TEMPLATES[key], {"patientId": patient.patient_id, "userId": "Practitioner/x"})

    answer = requests.get(f"{fhir_server.base_url}/{relative}", headers=STRICT, timeout=30)

    assert answer.status_code == 200, answer.text[:500]
    body = answer.json()
    if "?" in relative:
        assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
        assert not [e for e in body.get("entry", []) if e.get("search", {}).get("mode") == "outcome"]
    else:
        assert body == {**body, "resourceType": "Patient", "id": patient.patient_id}


def test_strict_handling_does_refuse_an_unknown_parameter(fhir_server: FhirServer) -> None:
    """The check above means something: this server does refuse what it does not know."""
    answer = requests.get(
        f"{fhir_server.base_url}/Observation", params={"patient": "x", "no-such-param": "1"}, headers=STRICT
    )
    assert answer.status_code == 400


def test_search_results_are_filtered_by_patient(fhir_server: FhirServer, settings: Settings) -> None:
    """What the templates ask of the server holds: only this patient's resources come back."""
    patient = BY_NAME["wang-xiulan"]
    template = patient_view.strategy_for(settings).templates["observations"]  # the code map's local codes
    relative = render(template, {"patientId": patient.patient_id})
    body = requests.get(f"{fhir_server.base_url}/{relative}", headers=STRICT, timeout=30).json()
    subjects = {e["resource"]["subject"]["reference"] for e in body["entry"]}
    assert subjects == {f"Patient/{patient.patient_id}"}


# --- paging ----------------------------------------------------------------------------------------------


def test_the_client_follows_every_next_link_of_a_paged_search(
    fhir_server: FhirServer, settings: Settings
) -> None:
    patient = BY_NAME[MANY_OBSERVATIONS]
    page_size = 7
    total = requests.get(
        f"{fhir_server.base_url}/Observation",
        params={"patient": patient.patient_id, "_summary": "count"},
        headers=STRICT,
        timeout=30,
    ).json()["total"]
    client = FhirClient(fhir_server.base_url, None, settings.with_changes(fhir_max_pages=1000))
    try:
        result = client.search(
            f"Observation?patient={patient.patient_id}&_sort=-date&_count={page_size}", Deadline(30)
        )
    finally:
        client.close()

    assert result.ok and not result.cut
    assert result.pages == math.ceil(total / page_size) > 1
    assert len({r["id"] for r in result.resources}) == len(result.resources) == total


def test_small_pages_through_the_whole_service_give_the_same_cards(
    fhir_server: FhirServer, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Templates patched to `_count=9`: every search is paged, and the cards do not change."""
    patient = BY_NAME[MANY_OBSERVATIONS]
    with_prefetch, without_prefetch = requests_for(patient, fhir_server)
    small_pages(monkeypatch, settings, 9)
    client = create_app(settings.with_changes(fhir_max_pages=100)).test_client()

    assert post(client, without_prefetch) == post(client, with_prefetch) == (200, list(patient.expected))


def test_a_page_cap_cuts_the_search_and_still_answers(
    fhir_server: FhirServer, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Too many pages for OSTEO_CDS_FHIR_MAX_PAGES: an answer (newest first were read), never an error."""
    patient = BY_NAME[MANY_OBSERVATIONS]
    _, without_prefetch = requests_for(patient, fhir_server)
    small_pages(monkeypatch, settings, 5)
    client = create_app(settings.with_changes(fhir_max_pages=2)).test_client()

    status, _ = post(client, without_prefetch)
    assert status == 200


def small_pages(monkeypatch: pytest.MonkeyPatch, settings: Settings, count: int) -> None:
    """The service's query plan with `_count={count}`: every search is paged."""
    keys = patient_view.strategy_for(settings).keys
    small = PrefetchStrategy(
        tuple(replace(key, template=key.template.replace("_count=200", f"_count={count}")) for key in keys)
    )
    assert small.templates != patient_view.strategy_for(settings).templates
    monkeypatch.setattr(patient_view, "strategy_for", lambda _settings: small)


# --- a patient the server does not know ------------------------------------------------------------------


def test_a_patient_unknown_to_the_server_is_412_or_no_cards(
    fhir_server: FhirServer, client: FlaskClient
) -> None:
    """CONTRACT.md: cards [] or 412. The Patient read is a 404, so the required `patient` key is missing."""
    body = {
        "hook": "patient-view",
        "hookInstance": "6f1c1f0e-2f7a-4b52-9d43-3c0d2b8e7a10",
        "fhirServer": fhir_server.base_url,
        "context": {"userId": "Practitioner/cn-dr-a-lin", "patientId": "cn-no-such-patient"},
    }
    status, topics = post(client, body)
    assert (status, topics) in ((412, []), (200, []))


# --- loading ---------------------------------------------------------------------------------------------


def test_loading_again_keeps_one_resource_per_id(fhir_server: FhirServer) -> None:
    (loaded,) = fhir_server.load([ROOT / "examples" / "patients" / "wang-xiulan.json"])
    assert loaded.patients == ("cn-wang-xiulan",)
    total = requests.get(
        f"{fhir_server.base_url}/Patient", params={"_id": "cn-wang-xiulan"}, headers=STRICT, timeout=30
    ).json()["total"]
    assert total == 1


def test_a_bundle_the_server_refuses_names_the_file_and_the_reason(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.json"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": {"resourceType": "Patient", "id": "cn-broken", "gender": 7}}],
    }
    broken.write_text(json.dumps(bundle), encoding="utf-8")
    with pytest.raises(LoadError, match=r"broken\.json: HTTP 4\d\d"):
        fhir_server.load([broken])
