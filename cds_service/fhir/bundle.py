"""What a FHIR answer holds: a Bundle's resources, its `next` link, and whether it only reports errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Resource = dict[str, Any]

_ERROR_SEVERITIES = frozenset({"error", "fatal"})


def is_error_outcome(resource: Mapping[str, Any]) -> bool:
    """An OperationOutcome reporting a failure (one with only information or warnings is not)."""
    if resource.get("resourceType") != "OperationOutcome":
        return False
    issues = resource.get("issue")
    if not isinstance(issues, list) or not issues:
        return True  # an outcome that says nothing is not data either
    return any(not isinstance(i, dict) or i.get("severity", "error") in _ERROR_SEVERITIES for i in issues)


def entry_resources(bundle: Mapping[str, Any]) -> tuple[list[Resource], bool]:
    """The resources of a Bundle's entries (no OperationOutcomes), and whether it held only error outcomes.

    Non-object entries and entries without a resource are dropped as junk. A Bundle with no entries at
    all is an empty answer, not a failure.
    """
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return [], False
    resources: list[Resource] = []
    error_outcome = False
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            continue
        if resource["resourceType"] == "OperationOutcome":
            error_outcome = error_outcome or is_error_outcome(resource)
            continue
        resources.append(resource)
    return resources, (error_outcome and not resources)


def next_link(bundle: Mapping[str, Any]) -> str | None:
    """The URL of `link[relation=next]`, if the Bundle is a page of a longer answer."""
    links = bundle.get("link")
    if not isinstance(links, list):
        return None
    for link in links:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if isinstance(url, str) and url.strip():
                return url.strip()
    return None
