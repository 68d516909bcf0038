"""Site onboarding: the codes, categories and exam names seen in traffic that nothing recognised (issue 14).

Counted per call, without patient ids or values: (resource type, element, system, code, display) of each
Observation and DiagnosticReport coding the service does not know, so that a site can extend its code map
(`osteo-cds onboarding-report`). A DiagnosticReport counts as recognised by an imaging LOINC code
(valuesets.py), a code-map coding or an imaging category; a report known only by its text is counted
under its code (that is what a code map would add).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from cds_service.facts.codemap import CodeMap
from cds_service.facts.fhirpath import as_dict, as_list, as_str, codings
from cds_service.facts.valuesets import (
    BMI_LOINC,
    DXA_LOINC,
    HEIGHT_LOINC,
    IMAGING_CATEGORY_CODES,
    IMAGING_REPORT_LOINC,
    LOINC,
    SPINE_IMAGING_LOINC,
    WEIGHT_LOINC,
)

# (resource type, element, system, code, display); code "" with the text as display for a text-only code
Coding = tuple[str, str, str, str, str]
MAX_PER_CALL = 200  # distinct codings counted per call: a bound on the write, whatever the chart
MAX_DISPLAY = 120
_OBSERVATION_LOINC = frozenset({*DXA_LOINC, BMI_LOINC, WEIGHT_LOINC, HEIGHT_LOINC})
_REPORT_LOINC = frozenset({*SPINE_IMAGING_LOINC, *IMAGING_REPORT_LOINC})


def unrecognised_codings(resources: Iterable[Mapping[str, Any]], code_map: CodeMap) -> Counter[Coding]:
    """How often each unrecognised Observation/DiagnosticReport coding (or text-only code) occurs."""
    counts: Counter[Coding] = Counter()
    for resource in resources:
        kind = resource.get("resourceType")
        if kind == "Observation":
            known = _OBSERVATION_LOINC
        elif kind == "DiagnosticReport":
            known = _REPORT_LOINC
        else:
            continue
        code = resource.get("code")
        found = codings(code)
        if not any(_recognised(system, value, known, code_map) for system, value, _ in found):
            for system, value, display in found:
                counts[(str(kind), "code", system, value, (display or "")[:MAX_DISPLAY])] += 1
            text = as_str((as_dict(code) or {}).get("text"))
            if not found and text:
                counts[(str(kind), "code", "", "", text[:MAX_DISPLAY])] += 1
        if kind == "DiagnosticReport":
            for category in as_list(resource.get("category")):
                for system, value, display in codings(category):
                    if value not in IMAGING_CATEGORY_CODES and code_map.concept_of(system, value) is None:
                        counts[
                            ("DiagnosticReport", "category", system, value, (display or "")[:MAX_DISPLAY])
                        ] += 1
        if len(counts) >= MAX_PER_CALL:
            break
    return counts


def _recognised(system: str, code: str, known: frozenset[str], code_map: CodeMap) -> bool:
    return (system == LOINC and code in known) or code_map.concept_of(system, code) is not None
