"""Prefetch templates (one source for discovery and for the fallback searches) and token rendering."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from urllib.parse import quote

from cds_service.facts.codemap import CodeMap
from cds_service.fhir.plan import build_plan

# The keys are part of the service description (CONTRACT.md): EHRs configure prefetch by them. Never rename;
# new keys may be added. The templates come from the query plan (plan.py), which also gives the service's
# own searches; these are the templates of a service without a code map (discovery shows those of the
# running code map: hooks/patient_view.py).
PREFETCH_TEMPLATES: Mapping[str, str] = MappingProxyType(build_plan(CodeMap()).templates)

# CDS Hooks 2.0 §Prefetch tokens: user tokens are the id of `context.userId` when it is of that type.
USER_TOKENS: Mapping[str, str] = MappingProxyType(
    {
        "userPractitionerId": "Practitioner",
        "userPractitionerRoleId": "PractitionerRole",
        "userPatientId": "Patient",
        "userRelatedPersonId": "RelatedPerson",
    }
)

_TOKEN = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")


class TemplateError(ValueError):
    """A template cannot be rendered for this request (a token without a value, or an unsafe value)."""


def resource_type_of(template: str) -> str:
    """The resource type a template reads or searches: `Observation?...` → `Observation`."""
    return re.split(r"[/?]", template, maxsplit=1)[0]


def is_read(template: str) -> bool:
    """A read (`Patient/{{...}}`) answers with one resource; a search answers with a Bundle."""
    return "?" not in template and "/" in template


def token_values(context: Mapping[str, object]) -> dict[str, str]:
    """The value of every token a request's context can fill."""
    values: dict[str, str] = {}
    for name, value in context.items():
        # Only root-level primitive context fields are tokens (CDS Hooks 2.0 §Prefetch tokens).
        if isinstance(value, str):
            values[f"context.{name}"] = value
        elif isinstance(value, bool):
            values[f"context.{name}"] = "true" if value else "false"
        elif isinstance(value, int | float):
            values[f"context.{name}"] = str(value)
    user = context.get("userId")
    if isinstance(user, str):
        user_type, _, user_id = user.partition("/")
        for token, resource_type in USER_TOKENS.items():
            if user_type == resource_type and user_id:
                values[token] = user_id
    return values


def render(template: str, context: Mapping[str, object]) -> str:
    """The template with its tokens filled in, each value percent-encoded (a query or path part)."""
    values = token_values(context)

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values.get(name)
        if value is None or value == "":
            raise TemplateError(f"no value for prefetch token {name}")
        if value in (".", ".."):
            # would be a dot segment in a path, which URL normalisation removes: another resource
            raise TemplateError(f"unsafe value for prefetch token {name}")
        return quote(value, safe="")

    return _TOKEN.sub(fill, template)
