"""REC-CT-MRI over HTTP: a doubtful non-spine fracture's card carries CT and MRI of the region as FHIR-valid
draft ServiceRequests (selectionBehavior any; the hip's MRI first and recommended)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest
from flask.testing import FlaskClient

from cds_service.fhir.prefetch import PREFETCH_TEMPLATES
from tests.builders import LOINC, born, concept, patient

HOOK_PATH = "/cds-services/osteoporosis-patient-view"
DOUBT_DAY = "2026-07-10"


def hook_body(conclusion: str, xr_loinc: str) -> dict[str, Any]:
    report = {
        "resourceType": "DiagnosticReport",
        "id": "dr1",
        "status": "final",
        "code": concept((LOINC, xr_loinc)),
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": DOUBT_DAY,
        "conclusion": conclusion,
    }
    prefetch: dict[str, Any] = dict.fromkeys(PREFETCH_TEMPLATES)
    prefetch["patient"] = patient(gender="male", birth_date=born(75, on=DOUBT_DAY))
    prefetch["reports"] = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": report}]}
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": "p1", "userId": "Practitioner/1"},
        "prefetch": prefetch,
    }


@pytest.mark.parametrize(
    ("conclusion", "xr_loinc", "codes", "recommended"),
    [
        pytest.param(
            "右股骨颈骨折可能",
            "24762-7",
            ["36013-1", "36014-9"],
            "36013-1",
            id="REC-CT-MRI hip: MR Hip first",
        ),
        pytest.param(
            "possible distal radius fracture", "24619-9", ["37428-0", "25033-2"], None, id="REC-CT-MRI wrist"
        ),
        pytest.param("肱骨近端骨折待排", "24765-0", ["36062-8", "24905-2"], None, id="REC-CT-MRI shoulder"),
    ],
)
def test_doubtful_non_spine_fracture_card_suggests_valid_service_requests(
    client: FlaskClient, conclusion: str, xr_loinc: str, codes: list[str], recommended: str | None
) -> None:
    response = client.post(HOOK_PATH, json=hook_body(conclusion, xr_loinc))
    assert response.status_code == 200
    [card] = [
        c
        for c in response.get_json()["cards"]
        if c["source"]["topic"]["code"] == "fracture-imaging-recommended"
    ]
    assert card["selectionBehavior"] == "any"
    requests = [s["actions"][0]["resource"] for s in card["suggestions"]]
    for request in requests:
        ServiceRequest.model_validate(request)
        assert request["status"] == "draft" and request["intent"] == "proposal"
        assert request["code"]["coding"][0]["system"] == LOINC
    assert [r["code"]["coding"][0]["code"] for r in requests] == codes
    flagged = [
        s["actions"][0]["resource"]["code"]["coding"][0]["code"]
        for s in card["suggestions"]
        if s.get("isRecommended")
    ]
    assert flagged == ([recommended] if recommended else [])


def test_rec_ct_mri_thoracic_mri_advising_contrast_mri_end_to_end(client: FlaskClient) -> None:
    """REC-CT-MRI, FX-8 (issue 17): a thoracic MRI naming 转移瘤不除外 and 建议增强MRI检查 gets the contrast
    MRI the radiologist advises (recommended) beside CT (the modality not yet done), never the plain MRI
    again; the card quotes the hedge and the advice."""
    body = hook_body("T11椎体压缩性骨折，转移瘤不除外。建议增强MRI检查。", "24980-5")  # MR Thoracic spine
    response = client.post(HOOK_PATH, json=body, headers={"Accept-Language": "zh-CN"})
    assert response.status_code == 200
    [card] = [
        c
        for c in response.get_json()["cards"]
        if c["source"]["topic"]["code"] == "fracture-imaging-recommended"
    ]
    requests = [s["actions"][0]["resource"] for s in card["suggestions"]]
    for request in requests:
        ServiceRequest.model_validate(request)
        assert request["status"] == "draft" and request["intent"] == "proposal"
    codes = [r["code"]["coding"][0]["code"] for r in requests]
    assert codes == ["24981-3", "24978-9"]  # MR Thoracic spine WO and W contrast IV; CT Thoracic spine
    assert [s.get("isRecommended", False) for s in card["suggestions"]] == [True, False]
    assert "FX-8" in card["detail"] and "REC-CT-MRI" in card["detail"]
    assert "建议增强MRI检查" in card["detail"] and "转移瘤不除外" in card["detail"]
