"""Small builders of FHIR R4 JSON for tests, and one-call runners of the facts → consensus → cards path.

Resources are plain dicts, as an EHR sends them. Every builder takes `**extra` elements that are merged
last, so a test can add or break any element (`observation(..., valueQuantity="-2.5")`).
"""

from __future__ import annotations

import base64
import itertools
import re
import uuid
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from cds_service.cards.texts import card_texts
from cds_service.consensus.assessment import assess
from cds_service.consensus.findings import Finding
from cds_service.engine import Evaluation, evaluate
from cds_service.facts.codemap import CodeMap, parse_code_map
from cds_service.facts.extract import extract_facts
from cds_service.facts.model import PatientFacts
from cds_service.settings import Settings
from cds_service.topics import Group

Resource = dict[str, Any]
Coding = tuple[str, str]

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
ICD10 = "http://hl7.org/fhir/sid/icd-10"
ICD10_CM = "http://hl7.org/fhir/sid/icd-10-cm"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
LOCAL = "urn:oid:1.2.156.112604.1.2.1"  # a Chinese hospital's local item codes
TOPIC_SYSTEM = "urn:osteo-cds:finding"

TODAY = date(2026, 11, 25)
EXAM = "2024-01-10"  # the default exam date

# CONTRACT.md "Cards": the diagnosis group (at most one card of it per response).
DIAGNOSIS_TOPICS = frozenset(
    {
        "severe-osteoporosis",
        "osteoporosis-bmd",
        "osteoporosis-fracture",
        "low-bone-mass",
        "normal-bmd",
        "below-expected-range-for-age",
        "within-expected-range-for-age",
    }
)

# The local codes of a fictitious hospital, as OSTEO_CDS_CODE_MAP would map them.
LOCAL_CODES: dict[str, str] = {
    "dxa-t-lumbar-spine": "DXA-T-L1L4",
    "dxa-t-femoral-neck": "DXA-T-NECK",
    "dxa-t-total-hip": "DXA-T-HIP",
    "dxa-t-forearm": "DXA-T-R33",
    "dxa-t-unspecified": "DXA-T",
    "dxa-z-lumbar-spine": "DXA-Z-L1L4",
    "dxa-z-femoral-neck": "DXA-Z-NECK",
    "dxa-z-total-hip": "DXA-Z-HIP",
    "dxa-z-unspecified": "DXA-Z",
    "qct-lumbar-vbmd": "QCT-L",
    "qct-hip-t": "QCT-HIP-T",
    "peripheral-bmd": "PBMD",
    "tbs": "TBS",
}
LOCAL_MAP: CodeMap = parse_code_map(
    {concept: [{"system": LOCAL, "code": code}] for concept, code in LOCAL_CODES.items()}
)

_ids = itertools.count(1)


def _new_id(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


def local(concept: str) -> Coding:
    """The local (system, code) that LOCAL_MAP maps to `concept`."""
    return (LOCAL, LOCAL_CODES[concept])


def concept(codes: Coding | Sequence[Coding] | str | None, display: str | None = None) -> dict[str, Any]:
    """A CodeableConcept from (system, code) pairs, or from text alone."""
    if codes is None:
        return {"text": display} if display else {}
    if isinstance(codes, str):
        return {"text": codes}
    pairs = [codes] if isinstance(codes[0], str) else list(codes)
    result: dict[str, Any] = {"coding": []}
    for system, code in pairs:  # type: ignore[misc]
        coding = {"system": system, "code": code}
        if display:
            coding["display"] = display
        result["coding"].append(coding)
    if display:
        result["text"] = display
    return result


def _body_site(site: Sequence[Coding] | Coding | str | None) -> dict[str, Any] | None:
    if site is None:
        return None
    return concept(site)


def _quantity(value: Any, unit: str | None, unit_code: str | None) -> dict[str, Any]:
    quantity: dict[str, Any] = {"value": value}
    if unit is not None:
        quantity["unit"] = unit
    if unit_code is not None:
        quantity["system"] = UCUM
        quantity["code"] = unit_code
    return quantity


def patient(
    id: str = "p1",
    gender: str | None = "female",
    birth_date: str | None = "1950-03-01",
    deceased: bool | str | None = None,
    **extra: Any,
) -> Resource:
    """A Patient; `deceased` True/False → deceasedBoolean, a date string → deceasedDateTime."""
    resource: Resource = {"resourceType": "Patient", "id": id}
    if gender is not None:
        resource["gender"] = gender
    if birth_date is not None:
        resource["birthDate"] = birth_date
    if isinstance(deceased, bool):
        resource["deceasedBoolean"] = deceased
    elif isinstance(deceased, str):
        resource["deceasedDateTime"] = deceased
    resource.update(extra)
    return resource


def component(
    loinc: str | None = None,
    code: Coding | None = None,
    value: Any = None,
    unit: str | None = None,
    unit_code: str | None = None,
    body_site: Sequence[Coding] | Coding | str | None = None,
    display: str | None = None,
) -> dict[str, Any]:
    """One component of a panel Observation (one region of a densitometer export)."""
    codes = (LOINC, loinc) if loinc else code
    comp: dict[str, Any] = {"code": concept(codes, display)}
    if value is not None:
        comp["valueQuantity"] = _quantity(value, unit, unit_code)
    site = _body_site(body_site)
    if site is not None:
        comp["bodySite"] = site
    return comp


def observation(
    loinc: str | None = None,
    code: Coding | Sequence[Coding] | None = None,
    value: Any = None,
    unit: str | None = None,
    unit_code: str | None = None,
    when: str | None = EXAM,
    status: str = "final",
    body_site: Sequence[Coding] | Coding | str | None = None,
    components: Sequence[dict[str, Any]] | None = None,
    device: str | None = None,
    method: Coding | str | None = None,
    period: bool = False,
    patient: str = "p1",
    id: str | None = None,
    display: str | None = None,
    **extra: Any,
) -> Resource:
    """An Observation: `loinc` or `code` (system, code); value as a valueQuantity; `when` as
    effectiveDateTime (or effectivePeriod with `period=True`); `device` "Device/x" is a reference,
    anything else a display."""
    resource: Resource = {
        "resourceType": "Observation",
        "id": id or _new_id("obs"),
        "status": status,
        "code": concept((LOINC, loinc) if loinc else code, display),
        "subject": {"reference": f"Patient/{patient}"},
    }
    if when is not None:
        if period:
            resource["effectivePeriod"] = {"start": when, "end": when}
        else:
            resource["effectiveDateTime"] = when
    if value is not None:
        resource["valueQuantity"] = _quantity(value, unit, unit_code)
    site = _body_site(body_site)
    if site is not None:
        resource["bodySite"] = site
    if components is not None:
        resource["component"] = list(components)
    if device is not None:
        resource["device"] = {"reference": device} if device.startswith("Device/") else {"display": device}
    if method is not None:
        resource["method"] = concept(method)
    resource.update(extra)
    return resource


def t_score(value: float, loinc: str = "38267-1", **kwargs: Any) -> Resource:
    """A DXA T-score (default: lumbar spine L1–L4, LOINC 38267-1), unit {T-score}."""
    kwargs.setdefault("unit_code", "{T-score}")
    return observation(loinc=loinc, value=value, **kwargs)


def z_score(value: float, loinc: str = "85394-5", **kwargs: Any) -> Resource:
    """A DXA Z-score (default: lumbar spine, LOINC 85394-5), unit {Z-score}."""
    kwargs.setdefault("unit_code", "{Z-score}")
    return observation(loinc=loinc, value=value, **kwargs)


def qct(value: float, vertebra: str | None = None, unit_code: str = "mg/cm3", **kwargs: Any) -> Resource:
    """A lumbar QCT vBMD under the local code: one vertebra (bodySite text "L1") or, without one, the mean."""
    return observation(
        code=local("qct-lumbar-vbmd"), value=value, unit_code=unit_code, body_site=vertebra, **kwargs
    )


def condition(
    snomed: str | None = None,
    icd: str | Coding | None = None,
    code: Coding | None = None,
    text: str | None = None,
    onset: str | None = "2020-01-01",
    clinical: str | None = "active",
    verification: str | None = None,
    patient: str = "p1",
    id: str | None = None,
    **extra: Any,
) -> Resource:
    """A Condition coded by SNOMED, ICD-10 (a bare code means WHO ICD-10), any (system, code), or text."""
    codes: list[Coding] = []
    if snomed:
        codes.append((SNOMED, snomed))
    if icd:
        codes.append((ICD10, icd) if isinstance(icd, str) else icd)
    if code:
        codes.append(code)
    resource: Resource = {
        "resourceType": "Condition",
        "id": id or _new_id("cond"),
        "code": concept(codes or None, text) if codes else {"text": text or ""},
        "subject": {"reference": f"Patient/{patient}"},
    }
    if onset is not None:
        resource["onsetDateTime"] = onset
    if clinical is not None:
        resource["clinicalStatus"] = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}
            ]
        }
    if verification is not None:
        resource["verificationStatus"] = {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}
            ]
        }
    resource.update(extra)
    return resource


def procedure(
    snomed: str | None = None,
    code: Coding | None = None,
    text: str | None = None,
    performed: str | None = "2020-01-01",
    status: str = "completed",
    body_site: Sequence[Coding] | Coding | str | None = None,
    patient: str = "p1",
    id: str | None = None,
    **extra: Any,
) -> Resource:
    """A Procedure coded by SNOMED, any (system, code), or text only."""
    codes: list[Coding] = []
    if snomed:
        codes.append((SNOMED, snomed))
    if code:
        codes.append(code)
    resource: Resource = {
        "resourceType": "Procedure",
        "id": id or _new_id("proc"),
        "status": status,
        "code": concept(codes, text) if codes else {"text": text or ""},
        "subject": {"reference": f"Patient/{patient}"},
    }
    if performed is not None:
        resource["performedDateTime"] = performed
    site = _body_site(body_site)
    if site is not None:
        resource["bodySite"] = [site]
    resource.update(extra)
    return resource


def _urn_of(resource: Mapping[str, Any]) -> str:
    key = f"{resource.get('resourceType')}/{resource.get('id')}"
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, key)}"


def _to_urns(node: Any, urns: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: urns.get(value, value)
            if key == "reference" and isinstance(value, str)
            else _to_urns(value, urns)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_to_urns(item, urns) for item in node]
    return node


def bundle(*resources: Any, type: str = "collection", urn: bool = False) -> Resource:
    """A Bundle of the resources. `urn=True` makes a transaction Bundle like Synthea's: every entry has a
    `urn:uuid:` fullUrl and every reference "Type/id" to an entry is written as that urn."""
    if not urn:
        return {"resourceType": "Bundle", "type": type, "entry": [{"resource": r} for r in resources]}
    urns = {
        f"{r['resourceType']}/{r['id']}": _urn_of(r) for r in resources if isinstance(r, dict) and "id" in r
    }
    entries = []
    for r in resources:
        entry: dict[str, Any] = {"resource": _to_urns(r, urns)}
        if isinstance(r, dict) and "id" in r:
            entry["fullUrl"] = urns[f"{r['resourceType']}/{r['id']}"]
            entry["request"] = {"method": "POST", "url": r["resourceType"]}
        entries.append(entry)
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def born(age: int, on: str = EXAM, days_later: int = 0) -> str:
    """The birth date of someone who is `age` on `on` (their birthday); `days_later` shifts it later,
    so `born(50, days_later=1)` is 49 on `on`, one day before turning 50."""
    day = date.fromisoformat(on)
    try:
        birth = day.replace(year=day.year - age)
    except ValueError:  # 29 February
        birth = day.replace(year=day.year - age, day=28)
    return (birth + timedelta(days=days_later)).isoformat()


# --- runners ------------------------------------------------------------------------------------


def make_settings(**changes: Any) -> Settings:
    """Settings for tests: no auth, today fixed, the local code map, Asia/Shanghai."""
    base = Settings(auth="none", today=TODAY, code_map=LOCAL_MAP)
    return base.with_changes(**changes) if changes else base


def facts_of(resources: Iterable[Any], patient_id: str = "p1", code_map: CodeMap = LOCAL_MAP) -> PatientFacts:
    return extract_facts(list(resources), patient_id, code_map, zoneinfo.ZoneInfo("Asia/Shanghai"))


def findings_of(
    resources: Iterable[Any], patient_id: str = "p1", settings: Settings | None = None
) -> list[Finding]:
    """The consensus findings (topic, rules, evidence, notes) before cards are rendered."""
    settings = settings or make_settings()
    facts = extract_facts(list(resources), patient_id, settings.code_map, zoneinfo.ZoneInfo(settings.tz))
    return assess(facts, settings.clinical, settings.today_date())


def evaluate_resources(
    resources: Iterable[Any],
    patient_id: str = "p1",
    settings: Settings | None = None,
    language: str | None = None,
) -> Evaluation:
    return evaluate(list(resources), patient_id, settings or make_settings(), language=language)


def diagnosis_of(findings: Sequence[Finding]) -> Finding | None:
    """The one diagnosis finding, or None; fails when there are several (CONTRACT.md)."""
    found = [f for f in findings if f.group is Group.DIAGNOSIS]
    assert len(found) <= 1, [f.topic for f in found]
    return found[0] if found else None


def topic_of(card: Mapping[str, Any]) -> str:
    topic = card["source"]["topic"]
    assert topic["system"] == TOPIC_SYSTEM
    return str(topic["code"])


def card_topics(response: Mapping[str, Any]) -> list[str]:
    return [topic_of(card) for card in response["cards"]]


def diagnosis_topics(response: Mapping[str, Any]) -> list[str]:
    return [t for t in card_topics(response) if t in DIAGNOSIS_TOPICS]


def used_sources(finding: Finding) -> set[str]:
    """The sources of the evidence rows that decided the finding (not context rows)."""
    return {e.source for e in finding.evidence if e.used}


# --- report bodies, imaging notes, medications (issue 14) ------------------------------------------


def b64(text: str, encoding: str = "utf-8") -> str:
    return base64.b64encode(text.encode(encoding)).decode("ascii")


def attachment(
    text: str | None = None, content_type: str | None = "text/plain", url: str | None = None, **extra: Any
) -> dict[str, Any]:
    """An Attachment: `text` inline as base64 data, or only a `url`."""
    result: dict[str, Any] = {}
    if content_type is not None:
        result["contentType"] = content_type
    if text is not None:
        result["data"] = b64(text)
    if url is not None:
        result["url"] = url
    result.update(extra)
    return result


def diagnostic_report(
    conclusion: str | None = None,
    *,
    loinc: str | None = "38268-9",
    code_text: str | None = None,
    when: str = EXAM,
    presented: Sequence[dict[str, Any]] = (),
    status: str = "final",
    id: str | None = None,
    patient: str = "p1",
    **extra: Any,
) -> Resource:
    """A DiagnosticReport (default: a DXA study, LOINC 38268-9) with a conclusion and/or presentedForm."""
    resource: Resource = {
        "resourceType": "DiagnosticReport",
        "id": id or _new_id("dr"),
        "status": status,
        "code": concept((LOINC, loinc), code_text) if loinc else concept(None, code_text),
        "subject": {"reference": f"Patient/{patient}"},
        "effectiveDateTime": when,
    }
    if conclusion is not None:
        resource["conclusion"] = conclusion
    if presented:
        resource["presentedForm"] = list(presented)
    resource.update(extra)
    return resource


def imaging_note(
    *attachments: dict[str, Any],
    when: str = EXAM,
    loinc: str = "18748-4",
    display: str = "Diagnostic imaging study",
    status: str = "current",
    id: str | None = None,
    patient: str = "p1",
    **extra: Any,
) -> Resource:
    """A DocumentReference imaging note (LOINC 18748-4 "Diagnostic imaging study")."""
    resource: Resource = {
        "resourceType": "DocumentReference",
        "id": id or _new_id("doc"),
        "status": status,
        "type": concept((LOINC, loinc), display),
        "subject": {"reference": f"Patient/{patient}"},
        "date": f"{when}T10:00:00+08:00",
        "content": [{"attachment": a} for a in attachments],
    }
    resource.update(extra)
    return resource


def binary(text: str, id: str, content_type: str = "text/plain") -> Resource:
    return {"resourceType": "Binary", "id": id, "contentType": content_type, "data": b64(text)}


def medication(
    text: str | None = None,
    *,
    atc: str | None = None,
    rxnorm: str | None = None,
    resource_type: str = "MedicationRequest",
    status: str = "active",
    start: str | None = "2024-01-01",
    end: str | None = None,
    route: str | None = None,
    id: str | None = None,
    patient: str = "p1",
    **extra: Any,
) -> Resource:
    """A MedicationRequest (authoredOn/validity period) or MedicationStatement (effectivePeriod)."""
    codings = [
        (c_system, c)
        for c_system, c in (
            ("http://www.whocc.no/atc", atc),
            ("http://www.nlm.nih.gov/research/umls/rxnorm", rxnorm),
        )
        if c
    ]
    resource: Resource = {
        "resourceType": resource_type,
        "id": id or _new_id("med"),
        "status": status,
        "medicationCodeableConcept": concept(codings or None, text) if codings else concept(text),
        "subject": {"reference": f"Patient/{patient}"},
    }
    if resource_type == "MedicationRequest":
        resource["intent"] = "order"
        if start is not None:
            resource["authoredOn"] = start
        if end is not None:
            resource["dispenseRequest"] = {"validityPeriod": {"start": start, "end": end}}
    elif start is not None or end is not None:
        resource["effectivePeriod"] = {k: v for k, v in (("start", start), ("end", end)) if v}
    if route is not None:
        key = "dosageInstruction" if resource_type == "MedicationRequest" else "dosage"
        resource[key] = [{"route": {"text": route}}]
    resource.update(extra)
    return resource


def cited_rules(detail: str) -> list[str]:
    """The rule IDs on a card's one line of rules (CONTRACT.md "Cards": rule IDs in `detail`), in either
    language; the line ends at its first " · " (the implementation-choice settings follow there)."""
    for language in ("en", "zh-CN"):
        heading = card_texts(language)["meta"]["rules_heading"]
        index = detail.find(heading)
        if index >= 0:
            line = detail[index + len(heading) :].split("\n", 1)[0].split(" · ", 1)[0]
            return [part.strip(" *:：\\") for part in re.split("[,、]", line) if part.strip(" *:：\\")]
    return []
