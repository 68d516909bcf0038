"""MedicationRequest / MedicationStatement → systemic glucocorticoid use (POP-5), with its time span.

A drug is a systemic glucocorticoid by WHO ATC H02AB, by a verified RxNorm code, or by the drug's name in
the medication text (the Chinese and English names a Chinese EHR sends). Inhaled, topical, eye, nose, ear
and joint-injection use does not count: an ATC code outside H02AB, or a route, method, dosage text or dose
form saying so. Of the secondary causes POP-5 names, glucocorticoid therapy is the only drug.
"""

from __future__ import annotations

import zoneinfo
from datetime import date, timedelta

from cds_service.facts.cues import cue_table
from cds_service.facts.fhirpath import (
    JsonObject,
    as_dict,
    as_list,
    as_str,
    codings,
    concept_text,
    parse_fhir_datetime,
    resource_key,
)
from cds_service.facts.model import DataNote, MedicationUse
from cds_service.facts.valuesets import ATC, ATC_SYSTEMIC_GLUCOCORTICOIDS, RXNORM, RXNORM_GLUCOCORTICOIDS

# The names and the not-systemic words are data: cues/medications.toml.
_CUES = {key: tuple(words) for key, words in cue_table("medications").items()}
GLUCOCORTICOID_NAMES = _CUES["glucocorticoid_names"]
NOT_SYSTEMIC_WORDS = _CUES["not_systemic"]
_REQUEST_STATUSES = frozenset({"active", "completed", "stopped", "on-hold"})
_REQUEST_INTENTS = frozenset(
    {"order", "original-order", "reflex-order", "filler-order", "instance-order", "plan"}
)
_STATEMENT_STATUSES = frozenset({"active", "completed", "stopped", "on-hold", "unknown"})
_UNIT_DAYS = {
    "d": 1,
    "day": 1,
    "days": 1,
    "wk": 7,
    "week": 7,
    "weeks": 7,
    "mo": 30,
    "month": 30,
    "months": 30,
}


def read_medication(
    resource: JsonObject, tz: zoneinfo.ZoneInfo
) -> tuple[MedicationUse | None, DataNote | None]:
    """A systemic glucocorticoid order or statement as a fact; other drugs give (None, None)."""
    concept = resource.get("medicationCodeableConcept")
    if not _is_glucocorticoid(concept):
        return None, None
    source = resource_key(resource)
    status = as_str(resource.get("status"))
    statement = resource.get("resourceType") == "MedicationStatement"
    if status not in (_STATEMENT_STATUSES if statement else _REQUEST_STATUSES):
        return None, DataNote(source, "status", status or "missing")
    if not statement and as_str(resource.get("intent")) not in _REQUEST_INTENTS:
        return None, None  # a proposal is not therapy
    if not _systemic(concept, resource):
        return None, DataNote(source, "medication-not-systemic")
    start, end = _span(resource, statement, tz)
    ongoing = status == "active" and end is None
    if start is None or (end is None and not ongoing):
        return None, DataNote(source, "medication-duration-unknown")
    display = concept_text(concept) or None
    return MedicationUse("glucocorticoids", start, end, ongoing, source, display), None


def _is_glucocorticoid(concept: object) -> bool:
    atc_coded = False
    for system, code, _ in codings(concept):
        if system == ATC:
            atc_coded = True
            if code.upper().startswith(ATC_SYSTEMIC_GLUCOCORTICOIDS):
                return True
        if system == RXNORM and code in RXNORM_GLUCOCORTICOIDS:
            return True
    if atc_coded:
        return False  # coded in ATC outside H02AB: e.g. R03BA inhaled, D07 skin, S01 eye
    text = concept_text(concept).lower()
    return any(name in text for name in GLUCOCORTICOID_NAMES)


def _systemic(concept: object, resource: JsonObject) -> bool:
    words = [concept_text(concept)]
    for dosage in map(as_dict, as_list(resource.get("dosageInstruction")) + as_list(resource.get("dosage"))):
        if dosage is not None:
            words.append(concept_text(dosage.get("route")))
            words.append(concept_text(dosage.get("method")))
            words.append(as_str(dosage.get("text")) or "")
    text = f" {' '.join(words).lower()} "
    return not any(word in text for word in NOT_SYSTEMIC_WORDS)


def _span(resource: JsonObject, statement: bool, tz: zoneinfo.ZoneInfo) -> tuple[date | None, date | None]:
    """When the drug was (to be) taken: MedicationStatement.effective[x]; for a MedicationRequest the
    dispense validity period, else authoredOn plus the expected supply × (1 + repeats allowed)."""
    if statement:
        period = as_dict(resource.get("effectivePeriod"))
        if period is not None:
            return parse_fhir_datetime(period.get("start"), tz), parse_fhir_datetime(period.get("end"), tz)
        return parse_fhir_datetime(resource.get("effectiveDateTime"), tz), None
    dispense = as_dict(resource.get("dispenseRequest")) or {}
    validity = as_dict(dispense.get("validityPeriod")) or {}
    start = parse_fhir_datetime(validity.get("start"), tz) or parse_fhir_datetime(
        resource.get("authoredOn"), tz
    )
    end = parse_fhir_datetime(validity.get("end"), tz)
    supply = as_dict(dispense.get("expectedSupplyDuration"))
    if end is None and start is not None and supply is not None:
        value = supply.get("value")
        unit = (as_str(supply.get("code")) or as_str(supply.get("unit")) or "").lower()
        repeats = dispense.get("numberOfRepeatsAllowed")
        times = 1 + (
            repeats if isinstance(repeats, int) and not isinstance(repeats, bool) and repeats > 0 else 0
        )
        if isinstance(value, int | float) and not isinstance(value, bool) and unit in _UNIT_DAYS:
            days = float(value) * _UNIT_DAYS[unit] * times
            if 0 < days < 36_500:
                end = start + timedelta(days=days)
    return start, end
