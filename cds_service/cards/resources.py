"""FHIR R4 resources the cards propose (Condition, ServiceRequest), validated with fhir.resources."""

from __future__ import annotations

import re
from typing import Any

import orjson
from fhir.resources.R4B.condition import Condition
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.consensus.findings import Finding, OrderProposal
from cds_service.facts.valuesets import (
    BMD_ONLY_OSTEOPOROSIS_DISPLAY,
    BMD_ONLY_OSTEOPOROSIS_ICD10_CM,
    ICD10_CM,
    LOINC,
    OSTEOPOROSIS_DISPLAY,
    OSTEOPOROSIS_SNOMED,
    PROPOSED_ORDERS,
    SNOMED,
)

TOPIC_SYSTEM = "urn:osteo-cds:finding"

_OSTEOPOROSIS_CODINGS = [
    {"system": SNOMED, "code": OSTEOPOROSIS_SNOMED, "display": OSTEOPOROSIS_DISPLAY},
]
_BMD_ONLY_ICD = {
    "system": ICD10_CM,
    "code": BMD_ONLY_OSTEOPOROSIS_ICD10_CM,
    "display": BMD_ONLY_OSTEOPOROSIS_DISPLAY,
}


def condition_resource(
    patient_id: str, finding: Finding, note: str | None = None, text: str = "Osteoporosis"
) -> dict[str, Any]:
    """DX-9: the diagnosis a card suggests is provisional."""
    codings = list(_OSTEOPOROSIS_CODINGS)
    if finding.topic == "osteoporosis-bmd":
        codings.append(_BMD_ONLY_ICD)
    resource: dict[str, Any] = {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "provisional",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "code": {"coding": codings, "text": text},
        "subject": {"reference": f"Patient/{patient_id}"},
        "note": [
            {"text": note or f"Suggested by osteo-cds ({finding.topic}); rules {', '.join(finding.rules)}."}
        ],
    }
    return _validated(Condition, resource, patient_id)


def service_request_resource(
    patient_id: str,
    finding: Finding,
    order: OrderProposal,
    note: str | None = None,
    order_note: str | None = None,
) -> dict[str, Any]:
    """CONTRACT.md suggestions: draft proposal, coded, with a reason and a note citing the rule."""
    coding = PROPOSED_ORDERS[order.kind]
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "code": {"coding": [{"system": LOINC, "code": coding.loinc, "display": coding.display}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "reasonCode": [
            {
                "coding": [{"system": TOPIC_SYSTEM, "code": finding.topic}],
                "text": order.reason or finding.topic,
            }
        ],
        "note": [{"text": note or f"Proposed by osteo-cds; rules {', '.join(finding.rules)}."}],
    }
    if coding.text:
        resource["code"]["text"] = coding.text
    if order_note:
        resource["note"].append({"text": order_note})
    if coding.body_site:
        resource["bodySite"] = [
            {"coding": [{"system": SNOMED, "code": coding.body_site, "display": coding.body_site_display}]}
        ]
    return _validated(ServiceRequest, resource, patient_id)


# A proposed resource is the same for every patient but for its subject reference, and fhir.resources
# costs ~0.1 ms per resource. So each shape is validated once per process: a reference "Patient/<id>" with
# an id of FHIR's id syntax is a valid FHIR string whatever the id (the only check a Reference.reference
# gets), so a shape that validated once validates for every such id. Other ids (possible from
# `osteo-cds evaluate`) are validated every time. The set is bounded; races only validate twice.
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
_PLACEHOLDER_SUBJECT = {"reference": "Patient/{id}"}
_MAX_SHAPES = 512
_validated_shapes: set[tuple[str, bytes]] = set()


def _validated(model: Any, resource: dict[str, Any], patient_id: str) -> dict[str, Any]:
    # Raises pydantic.ValidationError on a malformed resource: a defect of ours, caught by the tests.
    shape = _shape(model, resource, patient_id)
    if shape is not None and shape in _validated_shapes:
        return resource
    model.model_validate(resource)
    if shape is not None and len(_validated_shapes) < _MAX_SHAPES:
        _validated_shapes.add(shape)
    return resource


def _shape(model: Any, resource: dict[str, Any], patient_id: str) -> tuple[str, bytes] | None:
    """The resource with its subject reference blanked out, as a key; None when the id is not plain."""
    if not _FHIR_ID.fullmatch(patient_id):
        return None
    if resource.get("subject") != {"reference": f"Patient/{patient_id}"}:
        return None
    blanked = {**resource, "subject": _PLACEHOLDER_SUBJECT}
    return model.__name__, orjson.dumps(blanked, option=orjson.OPT_SORT_KEYS)
