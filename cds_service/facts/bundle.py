"""FHIR Bundles of any type → the resources inside, with urn:uuid references made 'Type/id'."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cds_service.facts.fhirpath import as_dict, as_list, as_str


class BundleError(ValueError):
    """The input is not a usable FHIR Bundle or resource."""


def bundle_resources(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The entries' resources; references to entries by fullUrl become relative 'Type/id' references."""
    if bundle.get("resourceType") != "Bundle":
        raise BundleError("not a FHIR Bundle")
    entries = [as_dict(e) for e in as_list(bundle.get("entry"))]
    aliases: dict[str, str] = {}
    resources: list[dict[str, Any]] = []
    for entry in entries:
        if entry is None:
            continue
        resource = as_dict(entry.get("resource"))
        if resource is None:
            continue
        rtype, rid = as_str(resource.get("resourceType")), as_str(resource.get("id"))
        full_url = as_str(entry.get("fullUrl"))
        if rtype and full_url:
            if rid is None and full_url.startswith("urn:uuid:"):
                rid = full_url.removeprefix("urn:uuid:")
                resource = {**resource, "id": rid}
            if rid:
                aliases[full_url] = f"{rtype}/{rid}"
        resources.append(dict(resource))
    if not aliases:
        return resources
    return [_rewrite(r, aliases) for r in resources]


def _rewrite(value: Any, aliases: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and item in aliases:
                out[key] = aliases[item]
            else:
                out[key] = _rewrite(item, aliases)
        return out
    if isinstance(value, list):
        return [_rewrite(item, aliases) for item in value]
    return value


def single_patient_id(resources: list[dict[str, Any]]) -> str:
    """The id of the one Patient among the resources."""
    ids = [as_str(r.get("id")) for r in resources if r.get("resourceType") == "Patient"]
    unique = list(dict.fromkeys(i for i in ids if i))
    if not unique:
        raise BundleError("the Bundle holds no Patient with an id")
    if len(unique) > 1:
        raise BundleError(f"the Bundle holds {len(unique)} patients; give one patient's data")
    return unique[0]


def patient_data(document: Any) -> tuple[list[dict[str, Any]], str]:
    """A Bundle (any type), or a CDS Hooks request whose prefetch holds the data."""
    if not isinstance(document, dict):
        raise BundleError("input must be a JSON object: a FHIR Bundle or a CDS Hooks request")
    if document.get("resourceType") == "Bundle":
        resources = bundle_resources(document)
        return resources, single_patient_id(resources)
    if "hook" in document and "context" in document:
        context = document.get("context")
        patient_id = context.get("patientId") if isinstance(context, dict) else None
        if not isinstance(patient_id, str) or not patient_id:
            raise BundleError("CDS Hooks request without a string context.patientId")
        prefetch = document.get("prefetch")
        if prefetch is not None and not isinstance(prefetch, dict):
            raise BundleError("CDS Hooks request: prefetch must be an object")
        collected: list[dict[str, Any]] = []
        for value in (prefetch or {}).values():
            if isinstance(value, dict) and value.get("resourceType") == "Bundle":
                collected.extend(bundle_resources(value))
            elif isinstance(value, dict) and value.get("resourceType"):
                collected.append(value)
        return collected, patient_id
    raise BundleError(
        "input is neither a FHIR Bundle nor a CDS Hooks request (no resourceType 'Bundle', no hook)"
    )
