"""Levers measured by the benchmark but not applied to the service (see docs/performance.md)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from cds_service.facts.codemap import CodeMap
from cds_service.facts.valuesets import BMI_LOINC, DXA_LOINC, HEIGHT_LOINC, LOINC, WEIGHT_LOINC
from cds_service.fhir.prefetch import PREFETCH_TEMPLATES


def recognised_observation_codings(code_map: CodeMap) -> list[tuple[str, str]]:
    """Every coding that can make an Observation count: the built-in LOINC codes and the code map's."""
    codings = {(LOINC, code) for code in DXA_LOINC}
    codings |= {(LOINC, BMI_LOINC), (LOINC, WEIGHT_LOINC), (LOINC, HEIGHT_LOINC)}
    codings |= set(code_map.by_coding)
    return sorted(codings)


def narrowed_templates(code_map: CodeMap) -> Mapping[str, str]:
    """The shipped templates with the Observation search narrowed to the recognised codes (CONTRACT.md
    allows it when every recognised code is listed, the code map's included).

    `combo-code` rather than `code`: it also matches component codes, so a panel whose own code is
    unknown but whose components are recognised (a densitometer export) is still found.
    """
    tokens = ",".join(
        quote(f"{system}|{code}", safe="/:|") for system, code in recognised_observation_codings(code_map)
    )
    templates = dict(PREFETCH_TEMPLATES)
    templates["observations"] = templates["observations"].replace("&_sort", f"&combo-code={tokens}&_sort", 1)
    return templates
