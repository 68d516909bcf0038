"""`make bench` (issue 14): a 5,000-Observation chart behind the strictest FHIR server, 50 ms per request.

The chart is Vicenta Maggio's Synthea record (DXA T -3.48 in 1994, the oldest results of her chart; index
card `severe-osteoporosis`) padded with 20 years of visits: heart rate, respiratory rate and temperature at
each, weight/height/BMI monthly, six labs every other visit, until the chart holds 5,000 Observations.
The server (scripts/strict_fhir_server.py) refuses Observation searches without code or category, refuses
`_sort`, and pages at 50; each request takes 50 ms.

Measured: requests, waves (the longest chain of dependent requests: a search, its retry, its pages), the
wall time of a no-prefetch call, whether every DXA Observation of the chart was read, and the card.
Before issue 14 the service asked `Observation?patient=X`: this server refuses that (412), and a lenient
server paging at 50 needs 100 pages, past the 10-page cap (the DXA lost).

    .venv/bin/python -m bench.long_chart_waves [--delay 0.05]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from cds_service.api.app import create_app
from cds_service.facts.codemap import CodeMap
from cds_service.facts.valuesets import DXA_LOINC
from cds_service.hooks import patient_view
from cds_service.settings import Settings
from scripts.make_examples import bundle_resources
from scripts.strict_fhir_server import StrictFhirServer

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "tests" / "fixtures" / "synthea" / "Vicenta_Maggio_456879da-8654-413e-b211-6308d9815586.json"
# The index's diagnosis for her record (DXA T -3.48 + fractures); alive, she
# is also due spine radiographs today (REC-SPINE-XR: aged 60 or more, no spine imaging).
EXPECTED_TOPICS = ("severe-osteoporosis", "spine-radiograph-recommended")
TODAY = date(2026, 11, 25)  # OSTEO_CDS_TODAY of examples/patients/index.json
OBSERVATIONS = 5000
SEED = 20201125
DELAY_SECONDS = 0.050
VISIT_DAYS = 11
LOINC = "http://loinc.org"
Resource = dict[str, Any]

# (LOINC, display, unit, mean, spread): codes as bench/charts.py uses them; values are noise, never read
# as clinical data except weight/height/BMI, which are kept ordinary (BMI ~24) so the card does not move.
_EVERY_VISIT = (
    ("8867-4", "Heart rate", "/min", 74.0, 8.0),
    ("9279-1", "Respiratory rate", "/min", 15.0, 2.0),
    ("8310-5", "Body temperature", "Cel", 36.8, 0.3),
)
_MONTHLY = (
    ("29463-7", "Body Weight", "kg", 58.0, 1.5),
    ("8302-2", "Body Height", "cm", 156.0, 0.3),
    ("39156-5", "Body Mass Index", "kg/m2", 23.8, 0.6),
)
_LABS = (
    ("2339-0", "Glucose", "mg/dL", 92.0, 12.0),
    ("38483-4", "Creatinine", "mg/dL", 0.9, 0.15),
    ("49765-1", "Calcium", "mg/dL", 9.4, 0.3),
    ("2947-0", "Sodium", "mmol/L", 140.0, 2.0),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 13.2, 0.8),
    ("1989-3", "25-Hydroxyvitamin D3 [Mass/volume] in Serum or Plasma", "ng/mL", 24.0, 6.0),
)


@dataclass(frozen=True)
class Outcome:
    requests: int
    waves: int
    seconds: float
    dxa_read: int
    dxa_in_chart: int
    topics: tuple[str, ...]
    refused: int


def long_chart() -> tuple[str, list[Resource]]:
    """(patient id, resources): the record padded to OBSERVATIONS Observations, deterministically."""
    resources = bundle_resources(RECORD)
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    # She died in 2002 and a deceased patient gets no card (issue 17): her death is left out, so that the
    # card shows whether the 1994 DXA was read behind the pages (the chart is padded up to today anyway).
    patient.pop("deceasedDateTime", None)
    patient.pop("deceasedBoolean", None)
    patient_id = patient["id"]
    rng = random.Random(SEED)
    count = sum(r["resourceType"] == "Observation" for r in resources)
    visit = 0
    while count < OBSERVATIONS:
        when = TODAY - timedelta(days=1 + visit * VISIT_DAYS)
        rows = list(_EVERY_VISIT)
        if visit % 3 == 0:
            rows += _MONTHLY
        if visit % 2 == 0:
            rows += _LABS
        for code, display, unit, mean, spread in rows[: OBSERVATIONS - count]:
            resources.append(
                _observation(patient_id, f"long-{count}", when, code, display, unit, rng.gauss(mean, spread))
            )
            count += 1
        visit += 1
    return patient_id, resources


def _observation(
    patient_id: str, rid: str, when: date, code: str, display: str, unit: str, value: float
) -> Resource:
    return {
        "resourceType": "Observation",
        "id": rid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": f"{when.isoformat()}T09:00:00+08:00",
        "valueQuantity": {
            "value": round(value, 2),
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }


def run(delay: float = DELAY_SECONDS) -> Outcome:
    """One no-prefetch call of the service against the strict server holding the long chart."""
    patient_id, resources = long_chart()
    dxa_ids = {
        r["id"]
        for r in resources
        if r["resourceType"] == "Observation"
        and any(c.get("system") == LOINC and c.get("code") in DXA_LOINC for c in r["code"].get("coding", []))
    }
    settings = Settings(
        auth="none",
        today=TODAY,
        code_map=CodeMap(),
        database_url="sqlite://",
        metrics_enabled=False,
        fhir_budget_seconds=10.0,
        fhir_timeout_seconds=5.0,
    )
    client = create_app(settings).test_client()
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": "0b5e8a3c-3f0a-4d8e-9a55-6c0d1e2f3a4b",
        "context": {"userId": "Practitioner/bench", "patientId": patient_id},
    }
    with StrictFhirServer(resources, delay=delay) as server:
        body["fhirServer"] = server.base
        started = time.perf_counter()
        response = client.post("/cds-services/osteoporosis-patient-view", json=body)
        seconds = time.perf_counter() - started
        waves, requests_made, refused = server.waves(), len(server.log), len(server.refused)
        # the same searches once more, in-process, to see which resources they brought
        gathered = patient_view.strategy_for(settings).gather(
            prefetch=None,
            context=body["context"],
            fhir_server=server.base,
            access_token=None,
            settings=settings,
        )
    read = {r.get("id") for r in gathered.resources if r.get("resourceType") == "Observation"}
    cards = response.get_json().get("cards", []) if response.status_code == 200 else []
    return Outcome(
        requests=requests_made,
        waves=waves,
        seconds=seconds,
        dxa_read=len(dxa_ids & read),
        dxa_in_chart=len(dxa_ids),
        topics=tuple(sorted(card["source"]["topic"]["code"] for card in cards)),
        refused=refused,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=DELAY_SECONDS, help="seconds per request")
    args = parser.parse_args(argv)
    outcome = run(args.delay)
    print(json.dumps(outcome.__dict__, indent=1))
    ok = (
        outcome.topics == EXPECTED_TOPICS
        and outcome.waves <= 3
        and outcome.refused == 0
        and outcome.dxa_read == outcome.dxa_in_chart
    )
    print(
        f"long chart ({OBSERVATIONS} Observations, strict server, pages of 50, "
        f"{args.delay * 1000:.0f} ms/request): "
        f"{outcome.requests} requests in {outcome.waves} waves, {outcome.seconds * 1000:.0f} ms, "
        f"cards {', '.join(outcome.topics)} {'(as expected)' if ok else '(NOT as expected)'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
