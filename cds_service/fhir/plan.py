"""The query plan: every FHIR search the service makes, built once per code map at start-up.

Discovery's prefetch templates and the service's own searches (no prefetch, or a failed prefetch key) are
both rendered from it, so they cannot drift apart (CONTRACT.md "HTTP"). Every search is one that real
servers accept (US Core search requirements; Epic refuses an Observation search without code or
category):

- Observations by `patient` + `code`, never `patient` alone. The codes are every code the service
  recognises: the bone-density LOINC codes of facts/valuesets.py and every coding of the site's code map.
  Codes are sent without their system (`code=38267-1,...`): a token without a system matches that code in
  any system, a superset the service filters again by system, and it keeps the URL short. BMI, weight and
  height have a key of their own (`vitals`) so that the service's own search can bound them to the recent
  past with `date=ge` (a prefetch template cannot name today's date).
- DiagnosticReport, Condition and Procedure by `patient` only: local and text-only codes are common in
  Chinese hospitals, and reports without a category are common too (Synthea's DXA and radiograph reports
  carry none; many RIS interfaces send none), so neither a code nor a category filter is safe for them.
- DocumentReference imaging notes by `patient` + `type`: LOINC 18748-4 "Diagnostic imaging study"
  (codes.md D) and the code map's `spine-imaging-report` codings (a site's local note types). Not by
  `category`: US Core's is the generic `clinical-note`, and no code-map concept names a local one.
- MedicationRequest by `patient` + `intent` (order, plan: what is or will be taken); MedicationStatement
  by `patient` (not in US Core: an optional key whose failure is not an error).

`_count` is the one optional parameter: a server that refuses it (400/422) is asked again without it
(gather.py), and the cards say so. `_sort` is not used: narrowed searches are short enough to read whole,
and some servers refuse it.

A code list whose query would be longer than MAX_QUERY_CHARS is split over numbered keys
(`observations`, `observations2`, ...), which run in parallel (docs/operations.md).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

from cds_service.consensus.lookback import BODY_MEASURE_YEARS, body_measures_since
from cds_service.facts.codemap import CodeMap
from cds_service.facts.valuesets import (
    BMD_STUDY_LOINC,
    BMI_LOINC,
    DXA_LOINC,
    HEIGHT_LOINC,
    IMAGING_NOTE_TYPE_LOINC,
    WEIGHT_LOINC,
)

PATIENT = "{{context.patientId}}"
# The query part (after `?`) at its longest, patient id of 64 characters (FHIR's longest id) included.
# IIS, which hosts Epic's and many other Windows FHIR servers, refuses a query string over 2,048 bytes by
# default (maxQueryString); 1,800 leaves room for the date bound and for proxies that add parameters.
MAX_QUERY_CHARS = 1800
_LONGEST_ID = "x" * 64
PAGE_SIZE = "200"
# BMI, weight and height (`vitals`) are read from the last RECENT_YEARS only (consensus/lookback.py says
# why): the service's own search says `date=ge`; a prefetched answer (a template cannot name today) is cut to
# the same window in gather.py, and the engine applies it to any record.
RECENT_YEARS = BODY_MEASURE_YEARS
MEDICATION_INTENTS = ("order", "plan")
# Code-map concepts that code imaging reports, not Observations: reports are not narrowed by code, and
# DocumentReference imaging notes are searched by them as local types.
_REPORT_CONCEPTS = frozenset({"spine-imaging-report"})
_VITAL_CONCEPTS = frozenset({"bmi"})


@dataclass(frozen=True)
class PlannedQuery:
    """One prefetch key and the search behind it."""

    key: str
    resource_type: str
    params: tuple[tuple[str, str], ...] = ()  # the conformant search (patient first); () for the read
    optional: tuple[tuple[str, str], ...] = (("_count", PAGE_SIZE),)  # dropped if the server refuses
    recent: bool = False  # own search bounded with date=ge (today - RECENT_YEARS)
    required: bool = True  # without it no answer (412); else answered without it
    noted: bool = False  # an optional key whose loss is stated on the cards

    @property
    def is_read(self) -> bool:
        return not self.params

    @property
    def template(self) -> str:
        """The prefetch template (discovery)."""
        if self.is_read:
            return f"{self.resource_type}/{PATIENT}"
        return f"{self.resource_type}?{_query((*self.params, *self.optional))}"

    def own_template(self, today: date) -> str:
        """The template of the service's own search: the prefetch template, bounded in time if `recent`."""
        return bounded(self.template, today) if self.recent else self.template


@dataclass(frozen=True)
class QueryPlan:
    queries: tuple[PlannedQuery, ...]

    @property
    def templates(self) -> dict[str, str]:
        return {q.key: q.template for q in self.queries}

    @property
    def optional_keys(self) -> frozenset[str]:
        return frozenset(q.key for q in self.queries if not q.required)

    def observation_codes(self) -> frozenset[str]:
        """Every code the Observation searches ask for (tests check it covers what the reader counts)."""
        return frozenset(
            code
            for q in self.queries
            if q.resource_type == "Observation"
            for name, value in q.params
            if name == "code"
            for code in value.split(",")
        )


def build_plan(code_map: CodeMap) -> QueryPlan:
    """The plan for a code map (cached: one per code map per process)."""
    return _build(frozenset(code_map.by_coding.items()))


@functools.cache
def _build(mapped: frozenset[tuple[tuple[str, str], str]]) -> QueryPlan:
    # Bone-density study codes too: a panel Observation coded as the study carries its values in components
    # (extract.py reads them), and `code` searches Observation.code only. A panel under a local code that
    # the code map does not name is not found (README "Data the service reads").
    bmd_codes = [*DXA_LOINC, *sorted(BMD_STUDY_LOINC)]
    vital_codes = [BMI_LOINC, WEIGHT_LOINC, HEIGHT_LOINC]
    document_types = [IMAGING_NOTE_TYPE_LOINC]
    for (_, code), concept in sorted(mapped):
        if concept in _VITAL_CONCEPTS:
            vital_codes.append(code)
        elif concept in _REPORT_CONCEPTS:
            document_types.append(code)  # a site that files imaging notes under a local type
        else:
            bmd_codes.append(code)
    patient = (("patient", PATIENT),)
    queries = [
        PlannedQuery("patient", "Patient"),
        *_by_code("observations", "Observation", bmd_codes),
        PlannedQuery("conditions", "Condition", patient),
        PlannedQuery("procedures", "Procedure", patient),
        PlannedQuery("reports", "DiagnosticReport", patient),
        PlannedQuery(
            "serviceRequests",
            "ServiceRequest",
            # a token search where a comma means OR: enough to not propose an order already on the chart
            (*patient, ("status", "active,draft")),
            required=False,
        ),
        # Optional, stated on the cards when missing: an EHR configured before this key existed sends its
        # unnarrowed `observations`, which hold the vitals too; a 412 would break it.
        *_by_code("vitals", "Observation", vital_codes, recent=True, required=False),
        PlannedQuery(
            "documents",
            "DocumentReference",
            (*patient, ("type", ",".join(dict.fromkeys(_token(c) for c in document_types)))),
            required=False,
            noted=True,
        ),
        PlannedQuery(
            "medications",
            "MedicationRequest",
            (*patient, ("intent", ",".join(MEDICATION_INTENTS))),
            required=False,
            noted=True,
        ),
        PlannedQuery("medicationStatements", "MedicationStatement", patient, required=False),
    ]
    return QueryPlan(tuple(queries))


def _by_code(
    key: str, resource_type: str, codes: Iterable[str], recent: bool = False, required: bool = True
) -> list[PlannedQuery]:
    """One query per chunk of codes that fits in MAX_QUERY_CHARS: `key`, `key2`, `key3`, ..."""
    chunks: list[list[str]] = [[]]
    for code in dict.fromkeys(_token(c) for c in codes):  # once each, in order
        trial = PlannedQuery(key, resource_type, _code_params([*chunks[-1], code]), recent=recent)
        if chunks[-1] and len(_longest_query(trial)) > MAX_QUERY_CHARS:
            chunks.append([])
        chunks[-1].append(code)
    return [
        PlannedQuery(
            key if n == 1 else f"{key}{n}",
            resource_type,
            _code_params(chunk),
            recent=recent,
            required=required,
            noted=not required,
        )
        for n, chunk in enumerate(chunks, start=1)
    ]


def _code_params(codes: list[str]) -> tuple[tuple[str, str], ...]:
    return (("patient", PATIENT), ("code", ",".join(codes)))


def _longest_query(query: PlannedQuery) -> str:
    return query.own_template(date(2000, 1, 1)).partition("?")[2].replace(PATIENT, _LONGEST_ID)


def _token(code: str) -> str:
    """A code as a token search value: FHIR escapes `,` `|` `$` `\\` with a backslash; then URL-encoded."""
    escaped = "".join(f"\\{c}" if c in ",|$\\" else c for c in code.strip())
    return quote(escaped, safe="-._~")


def _query(params: Iterable[tuple[str, str]]) -> str:
    return "&".join(f"{name}={value}" for name, value in params)


def recent_since(today: date) -> date:
    return body_measures_since(today)


def bounded(template: str, today: date) -> str:
    """A search limited to the last RECENT_YEARS (`date=ge`)."""
    return f"{template}&date=ge{recent_since(today).isoformat()}"


def is_recent(resource: Mapping[str, Any], since: date) -> bool:
    """What `date=ge{since}` keeps of an Observation; one without a date is kept (the reader notes it)."""
    for name in ("effectiveDateTime", "effectiveInstant", "effectivePeriod", "issued"):
        value = resource.get(name)
        if isinstance(value, dict):
            value = value.get("end") or value.get("start")
        if isinstance(value, str) and value:
            return value[:10] >= since.isoformat()
    return True
