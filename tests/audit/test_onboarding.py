"""Site onboarding (issue 14): unrecognised codings counted in traffic, reported without patient data."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from cds_service.api.app import create_app
from cds_service.audit.onboarding import onboarding_report_main, onboarding_rows, record_unrecognised
from cds_service.audit.store import AuditStore
from cds_service.facts.codemap import parse_code_map
from cds_service.fhir.onboarding import unrecognised_codings
from cds_service.settings import Settings

CODE_MAP = parse_code_map({"dxa-t-lumbar-spine": [{"system": "urn:his", "code": "YZ.T"}]})
LOINC = "http://loinc.org"


def concept(system: str, code: str, display: str = "") -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code, "display": display}]}


CASES = [
    ("DXA LOINC", {"resourceType": "Observation", "code": concept(LOINC, "38267-1")}, []),
    ("mapped local code", {"resourceType": "Observation", "code": concept("urn:his", "YZ.T")}, []),
    (
        "unmapped local code",
        {"resourceType": "Observation", "code": concept("urn:his", "GGJ.T", "股骨颈T值")},
        [("Observation", "code", "urn:his", "GGJ.T", "股骨颈T值")],
    ),
    (
        "text-only code",
        {"resourceType": "Observation", "code": {"text": "腰椎骨密度"}},
        [("Observation", "code", "", "", "腰椎骨密度")],
    ),
    ("imaging report LOINC", {"resourceType": "DiagnosticReport", "code": concept(LOINC, "24984-7")}, []),
    (
        "local report, lab category",
        {
            "resourceType": "DiagnosticReport",
            "code": concept("urn:ris", "XR-LS", "腰椎正侧位"),
            "category": [concept("urn:his", "LAB")],
        },
        [
            ("DiagnosticReport", "code", "urn:ris", "XR-LS", "腰椎正侧位"),
            ("DiagnosticReport", "category", "urn:his", "LAB", ""),
        ],
    ),
    (
        "imaging category only counts the code",
        {
            "resourceType": "DiagnosticReport",
            "code": concept("urn:ris", "CT-CHEST"),
            "category": [concept("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD")],
        },
        [("DiagnosticReport", "code", "urn:ris", "CT-CHEST", "")],
    ),
    ("other resource types", {"resourceType": "Condition", "code": concept("urn:his", "X")}, []),
]


@pytest.mark.parametrize(("resource", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_unrecognised_codings(resource: dict[str, Any], expected: list[tuple[str, ...]]) -> None:
    assert sorted(unrecognised_codings([resource], CODE_MAP)) == sorted(expected)


def test_counts_accumulate_and_the_report_carries_no_patient_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    store = AuditStore.from_url(url)
    coding = ("Observation", "code", "urn:his", "GGJ.T", "股骨颈T值")
    record_unrecognised(store, Counter({coding: 2}))
    record_unrecognised(store, Counter({coding: 3}))
    assert [(r.code, r.count) for r in onboarding_rows(store)] == [("GGJ.T", 5)]
    assert onboarding_rows(store, min_count=6) == []
    store.dispose()

    out = io.StringIO()
    assert onboarding_report_main(["--csv"], url, out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "resource_type,element,system,code,display,count,last_seen"
    assert lines[1].startswith("Observation,code,urn:his,GGJ.T,股骨颈T值,5,")


def test_a_hook_call_records_what_it_did_not_recognise(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    client = create_app(Settings(auth="none", database_url=url, metrics_enabled=False)).test_client()
    report = {
        "resourceType": "DiagnosticReport",
        "id": "r1",
        "status": "final",
        "subject": {"reference": "Patient/p1"},
        "code": concept("urn:ris", "XR-LS", "腰椎正侧位"),
    }
    body = {
        "hook": "patient-view",
        "hookInstance": "6f1c1f0e-2f7a-4b52-9d43-3c0d2b8e7a10",
        "context": {"patientId": "p1", "userId": "Practitioner/u1"},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": "p1"},
            "observations": None,
            "conditions": None,
            "procedures": None,
            "reports": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": report}]},
        },
    }
    assert client.post("/cds-services/osteoporosis-patient-view", json=body).status_code == 200
    out = io.StringIO()
    assert onboarding_report_main([], url, out=out) == 0
    assert "XR-LS" in out.getvalue() and "p1" not in out.getvalue().replace("XR-LS", "")
