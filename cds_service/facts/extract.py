"""FHIR R4 resources of one patient → PatientFacts, recording every skipped item with its reason."""

from __future__ import annotations

import math
import re
import unicodedata
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from cds_service.facts.bmd_text import TextValue, read_bmd_text
from cds_service.facts.codemap import CodeMap
from cds_service.facts.fhirpath import (
    Codings,
    JsonObject,
    as_dict,
    as_list,
    as_str,
    codings,
    concept_text,
    parse_fhir_datetime,
    reference_of,
    refers_to,
    resource_key,
)
from cds_service.facts.imaging import (
    fracture_from_condition_codes,
    fracture_from_mention,
    genant_fracture,
    is_bmd_study,
    is_imaging_report,
    read_imaging_reports,
)
from cds_service.facts.levels import vertebra_levels
from cds_service.facts.medications import read_medication
from cds_service.facts.model import (
    SAME_EXAM_DAYS,
    BmdMeasurement,
    Bmi,
    CodedFinding,
    DataNote,
    Fracture,
    ImagingReport,
    Measure,
    Modality,
    PatientFacts,
    Region,
    Sex,
    UnmeasuredSite,
    UnreadableBmd,
)
from cds_service.facts.orders import read_order
from cds_service.facts.report_body import BodyReading, read_attachments
from cds_service.facts.report_text import FractureMention, read_report, stated_trauma
from cds_service.facts.valuesets import (
    BMI_LOINC,
    BODY_SITE_REGIONS,
    CONCEPT_MEASUREMENTS,
    DICOM_QUS,
    DXA_LOINC,
    FOREARM_T_AMBIGUOUS,
    HEIGHT_LOINC,
    ICD10_PCS,
    ICD10_PCS_CONCEPTS,
    ICD10_SYSTEMS,
    LATERALITY_SNOMED,
    LOINC,
    SNOMED,
    SNOMED_CONCEPTS,
    VERTEBRA_SNOMED,
    WEIGHT_LOINC,
    icd10_concept,
    implies_postmenopausal,
)

# CONTRACT.md: only these Observation statuses count.
COUNTED_OBSERVATION_STATUSES = frozenset({"final", "amended", "corrected", "appended"})
# CONTRACT.md "Plausibility".
PLAUSIBLE: dict[Measure, tuple[float, float]] = {
    Measure.T_SCORE: (-8.0, 6.0),
    Measure.Z_SCORE: (-8.0, 6.0),
    Measure.ABMD: (0.2, 2.0),
    Measure.VBMD: (0.0, 400.0),
    Measure.INDEX: (0.5, 2.5),  # TBS; context only (DX-5)
}
PLAUSIBLE_BMI = (10.0, 80.0)

_SCORE_UNITS = frozenset({"", "1", "sd", "{sd}", "t-score", "{t-score}", "z-score", "{z-score}", "{tscore}"})
_ABMD_UNITS = {"g/cm2": 1.0, "g/cm-2": 1.0, "g/cm²": 1.0, "g/cm^2": 1.0, "mg/cm2": 0.001}
_VBMD_UNITS = {
    "mg/cm3": 1.0,
    "mg/cm³": 1.0,
    "mg/cm^3": 1.0,
    "mg/ml": 1.0,
    "mg/cc": 1.0,  # 1 cc = 1 cm³
    "g/cm3": 1000.0,
    "g/cm³": 1000.0,
    "g/ml": 1000.0,
}
_HOUNSFIELD_UNITS = frozenset({"hu", "[hnsf'u]", "hounsfield", "hounsfield units"})
_DEAD_STATUSES = frozenset({"entered-in-error"})

_FOREARM_WORDS = ("forearm", "radius", "radial", "33%", "1/3", "前臂", "桡骨")
_REGION_WORDS: tuple[tuple[tuple[str, ...], Region], ...] = (
    (("femoral neck", "femur neck", "neck", "股骨颈"), Region.FEMORAL_NECK),
    (("total hip", "hip", "全髋", "髋部", "髋"), Region.TOTAL_HIP),
    (("lumbar", "l1-l4", "l1~l4", "l1–l4", "spine", "腰椎"), Region.LUMBAR_SPINE),
    (_FOREARM_WORDS, Region.FOREARM),
    (("calcaneus", "heel", "跟骨"), Region.CALCANEUS),
)
_QUS_WORDS = ("ultrasound", "qus", "超声")
_PERIPHERAL_WORDS = (
    "pdxa",
    "pqct",
    "peripheral",
    "外周",
    "single-energy",
    "sxa",
    "radiographic absorptiometry",
)
# DXA-6: reference databases a record may name. Chinese → no warning; others are named on the card.
_CHINESE_REFERENCE_WORDS = ("chinese", "china", "中国", "国人")
_OTHER_REFERENCE_WORDS = (
    "nhanes",
    "usa",
    "caucasian",
    "white",
    "美国",
    "白人",
    "japan",
    "日本",
    "europe",
    "欧洲",
)
_OOPHORECTOMY_WORDS = ("oophorectomy", "salpingo-oophorectomy", "卵巢切除", "附件切除")
_BILATERAL_WORDS = ("bilateral", "both", "bso", "双侧", "双附件")
_OSTEOPOROSIS_WORDS = ("osteoporosis", "骨质疏松")
_NOT_A_DIAGNOSIS_WORDS = ("screening", "risk", "筛查", "风险", "family history", "家族史")


@dataclass(frozen=True)
class _MeasurementKind:
    modality: Modality
    measure: Measure
    region: Region
    laterality: str | None
    loinc: str | None


def extract_facts(
    resources: Iterable[JsonObject],
    patient_id: str,
    code_map: CodeMap,
    tz: zoneinfo.ZoneInfo,
) -> PatientFacts:
    """Read the patient's resources; resources of other patients and unknown shapes are passed over."""
    facts = PatientFacts(patient_id=patient_id)
    # DocumentReferences after DiagnosticReports: a body both expose (US Core) is read once, with the report.
    items = sorted(
        (r for r in resources if isinstance(r, (dict, Mapping))),
        key=lambda r: r.get("resourceType") == "DocumentReference",
    )
    devices = {resource_key(r): r for r in items if r.get("resourceType") == "Device"}
    binaries = {resource_key(r): r for r in items if r.get("resourceType") == "Binary"}
    weights: list[tuple[date, float, str]] = []
    heights: list[tuple[date, float, str]] = []
    reader = _Reader(facts, code_map, tz, devices, weights, heights, binaries)
    # "Patient/<id>" compared as a whole when the id has no "/" (then no version or trailing slash can hide
    # in it); refers_to takes every other reference apart.
    plain_reference = f"Patient/{patient_id}" if patient_id and "/" not in patient_id else None
    for resource in items:
        rtype = resource.get("resourceType")
        if rtype == "Patient":
            if resource.get("id") == patient_id:
                reader.patient(resource)
            continue
        if rtype not in _READERS:
            continue
        if not _belongs_to(resource, patient_id, plain_reference):
            continue
        getattr(reader, _READERS[rtype])(resource)
    if not facts.bmis:
        derived = _derived_bmi(weights, heights)
        if derived is not None:
            facts.bmis.append(derived)
    _combine_oophorectomies(facts)
    _measurements_from_text(facts, code_map)
    read_imaging_reports(facts, code_map)
    return facts


_READERS = {
    "Observation": "observation",
    "Condition": "condition",
    "Procedure": "procedure",
    "DiagnosticReport": "report",
    "DocumentReference": "document",
    "ServiceRequest": "service_request",
    "MedicationRequest": "medication",
    "MedicationStatement": "medication",
}
# Every resource type the engine reads for one patient (the population screen accepts exactly these).
PATIENT_RESOURCE_TYPES = frozenset({"Patient", *_READERS})


def _belongs_to(resource: JsonObject, patient_id: str, plain_reference: str | None) -> bool:
    reference = reference_of(resource.get("subject")) or reference_of(resource.get("patient"))
    if plain_reference is not None and reference == plain_reference:
        return True  # the usual relative reference: no need to take it apart
    return refers_to(reference, "Patient", patient_id)


class _Reader:
    def __init__(
        self,
        facts: PatientFacts,
        code_map: CodeMap,
        tz: zoneinfo.ZoneInfo,
        devices: Mapping[str, JsonObject],
        weights: list[tuple[date, float, str]],
        heights: list[tuple[date, float, str]],
        binaries: Mapping[str, JsonObject] | None = None,
    ) -> None:
        self.binaries = binaries or {}
        self.bodies_read: set[str] = set()  # Binary URLs and content hashes of report bodies already read
        self.facts = facts
        self.code_map = code_map
        self.tz = tz
        self.devices = devices
        self.weights = weights
        self.heights = heights

    def note(self, source: str, reason: str, detail: str | None = None) -> None:
        self.facts.notes.append(DataNote(source=source, reason=reason, detail=detail))

    # Patient -------------------------------------------------------------------------------
    def patient(self, resource: JsonObject) -> None:
        gender = as_str(resource.get("gender"))
        self.facts.sex = Sex.FEMALE if gender == "female" else Sex.MALE if gender == "male" else Sex.UNKNOWN
        self.facts.birth_date = parse_fhir_datetime(resource.get("birthDate"), self.tz)
        if resource.get("birthDate") is not None and self.facts.birth_date is None:
            self.note(resource_key(resource), "unreadable-birth-date")
        deceased_bool = resource.get("deceasedBoolean")
        self.facts.deceased = deceased_bool is True or as_str(resource.get("deceasedDateTime")) is not None

    # Observation ---------------------------------------------------------------------------
    def observation(self, resource: JsonObject) -> None:
        if not self._may_count(resource):
            return  # no coding the reader knows (most vitals and labs): nothing to read, nothing to note
        source = resource_key(resource)
        found = codings(resource.get("code"))  # read once: the code is looked up three ways
        concept = self._concept(found)
        own = self._kind(concept, found)
        vital = _vital_code(found, self.code_map)
        components = [
            (self._kind(self._concept(comp_found), comp_found), comp)
            for comp in map(as_dict, as_list(resource.get("component")))
            if comp is not None
            for comp_found in (codings(comp.get("code")),)
        ]
        recognised_components = [(kind, comp) for kind, comp in components if kind is not None]
        genant = concept == "genant-grade"
        if own is None and vital is None and not recognised_components and not genant:
            return
        status = as_str(resource.get("status"))
        if status not in COUNTED_OBSERVATION_STATUSES:
            self.note(source, "status", status or "missing")
            return
        when = self._effective(resource)
        if when is None:
            self.note(source, "no-date")
            return
        if genant:
            self._genant(resource, when, source)
            return
        if vital is not None:
            self._vital(resource, vital, when, source)
            return
        device = self._device(resource)
        device_ref = reference_of(resource.get("device"))
        device_id = device_ref.split("/_history/", 1)[0] if device_ref else device
        own_value = self._value(own, resource, when, source) if own is not None else None
        if own is not None and own_value is not None:
            self._measurement(own, resource, own_value, resource, when, source, device, device_id)
        elif own is not None and not recognised_components and "valueString" not in resource:
            self.note(source, "no-value")
        for kind, comp in recognised_components:
            assert kind is not None
            value = self._value(kind, comp, when, source)
            if value is not None or "valueString" not in comp:
                self._measurement(kind, comp, value, resource, when, source, device, device_id)

    def _value(
        self, kind: _MeasurementKind, holder: JsonObject, when: date, source: str
    ) -> JsonObject | None:
        """valueQuantity, or a number sent as valueString ("-2.6", "0.812 g/cm2") read as a quantity under
        the same units and plausibility rules. A valueString that is not a number is a value present but
        unreadable: noted, and its exam gives no category (UnreadableBmd)."""
        quantity = as_dict(holder.get("valueQuantity"))
        if quantity is not None or "valueString" not in holder:
            return quantity
        raw = holder.get("valueString")
        parsed = _number_with_unit(raw) if isinstance(raw, str) else None
        if parsed is None:
            self.note(source, "unreadable-value")
            self.facts.unreadable_bmd.append(UnreadableBmd(kind.modality, when, source))
        return parsed

    def _may_count(self, resource: JsonObject) -> bool:
        """A cheap screen before the full reading: does the code, or a component's code, carry a coding
        that _kind, _vital_code or _concept could accept? A superset of what they accept, so a `False`
        here is exactly the case where they would all find nothing."""
        mapped = self.code_map.by_coding
        if _has_known_coding(resource.get("code"), mapped):
            return True
        for component in as_list(resource.get("component")):
            if as_dict(component) is not None and _has_known_coding(component.get("code"), mapped):
                return True
        return False

    def _genant(self, resource: JsonObject, when: date, source: str) -> None:
        """FX-3: a Genant grade observation (local code), vertebra in bodySite."""
        raw = resource.get("valueInteger")
        if raw is None:
            quantity = as_dict(resource.get("valueQuantity"))
            raw = quantity.get("value") if quantity else None
        if (
            isinstance(raw, bool)
            or not isinstance(raw, int | float)
            or not math.isfinite(raw)
            or raw != int(raw)
            or not 0 <= raw <= 3
        ):
            self.note(source, "implausible" if isinstance(raw, int | float) else "no-value", "Genant")
            return
        fracture = genant_fracture(int(raw), _vertebra(resource.get("bodySite")), when, source)
        if fracture is not None:
            self.facts.fractures.append(fracture)

    def _concept(self, found: Codings) -> str | None:
        """The code map's concept of the first mapped coding (`found` as `codings` gives them)."""
        for system, value, _ in found:
            concept = self.code_map.concept_of(system, value)
            if concept is not None:
                return concept
        return None

    def _kind(self, concept: str | None, found: Codings) -> _MeasurementKind | None:
        """What a code measures: by its code-map concept, else by a DXA LOINC code among `found`."""
        if concept in CONCEPT_MEASUREMENTS:
            modality, measure, region = CONCEPT_MEASUREMENTS[concept]
            return _MeasurementKind(modality, measure, region, None, None)
        if concept == "peripheral-bmd":
            # Measure follows the unit (T-score or BMD); decided in _measurement.
            return _MeasurementKind(Modality.PERIPHERAL, Measure.ABMD, Region.OTHER, None, None)
        for system, value, _ in found:
            if system == LOINC and value in DXA_LOINC:
                modality, measure, region, laterality = DXA_LOINC[value]
                return _MeasurementKind(modality, measure, region, laterality, value)
        return None

    def _measurement(
        self,
        kind: _MeasurementKind,
        holder: JsonObject,
        quantity_raw: object,
        observation: JsonObject,
        when: date,
        source: str,
        device: str | None,
        device_id: str | None = None,
    ) -> None:
        quantity = as_dict(quantity_raw)
        value = quantity.get("value") if quantity else None
        if quantity is None or isinstance(value, bool) or not isinstance(value, int | float):
            self.note(source, "no-value")
            return
        unit = (as_str(quantity.get("code")) or as_str(quantity.get("unit")) or "").strip()
        unit_key = unit.lower()
        number = _finite(value)
        if number is None:
            self.note(source, "implausible", _unit_label(kind.measure))
            return
        measure = kind.measure
        if kind.modality is Modality.PERIPHERAL and kind.loinc is None:
            if unit_key in _SCORE_UNITS and unit_key:
                measure = Measure.Z_SCORE if "z-score" in unit_key else Measure.T_SCORE
            else:
                measure = _bmd_measure(unit_key)
        converted = _convert(measure, unit_key, number)
        if converted is None:
            reason = "hounsfield-units" if unit_key in _HOUNSFIELD_UNITS else "unknown-unit"
            self.note(source, reason, unit or "none")
            return
        if kind.measure in (Measure.T_SCORE, Measure.Z_SCORE) and not _score_unit_agrees(
            kind.measure, unit_key
        ):
            self.note(source, "unknown-unit", unit)
            return
        low, high = PLAUSIBLE[measure]
        if not low <= converted <= high:
            self.note(source, "implausible", _unit_label(measure))
            return
        region, vertebra, region_text = self._region(kind, holder, observation)
        laterality = kind.laterality or _laterality(observation.get("bodySite"))
        modality = self._modality(kind.modality, observation, device)
        self.facts.measurements.append(
            BmdMeasurement(
                modality=modality,
                measure=measure,
                region=region,
                value=converted,
                unit=_unit_label(measure),
                when=when,
                source=source,
                vertebra=vertebra,
                laterality=laterality,
                device=device,
                device_id=device_id,
                reference_database=_reference_database(observation),
                region_text=region_text,
            )
        )

    def _region(
        self, kind: _MeasurementKind, holder: JsonObject, observation: JsonObject
    ) -> tuple[Region, str | None, str | None]:
        body_site = holder.get("bodySite") if holder is not observation else None
        body_site = body_site or observation.get("bodySite")
        site_region = _body_site_region(body_site)
        vertebra = _vertebra(body_site)
        site_text = concept_text(body_site) or None
        if kind.modality is Modality.QCT and kind.region is Region.LUMBAR_SPINE:
            # QCT-1: per vertebra when the vertebra is given, else the reported mean.
            return (
                (Region.VERTEBRA, vertebra, site_text) if vertebra else (Region.LUMBAR_SPINE, None, site_text)
            )
        if kind.modality is Modality.DXA and vertebra:
            # DXA-1 uses L1-L4 as a whole: a single vertebra's score (densitometers export one row per
            # vertebra) is shown as context and never decides.
            return Region.VERTEBRA, vertebra, site_text
        if kind.loinc == FOREARM_T_AMBIGUOUS and site_region is None:
            # codes.md caveat 1: forearm only when the display or body site says forearm/radius.
            display = concept_text(holder.get("code")).lower()
            if any(word in display for word in _FOREARM_WORDS):
                return Region.FOREARM, None, site_text
            return Region.UNSPECIFIED, None, site_text
        if site_region is not None and kind.modality in (Modality.DXA, Modality.PERIPHERAL):
            return site_region, None, site_text
        return kind.region, None, site_text

    def _modality(self, modality: Modality, observation: JsonObject, device: str | None) -> Modality:
        """DX-4: a measurement whose method or device is ultrasound or peripheral is not central BMD."""
        method = observation.get("method")
        if any(system.endswith("/DCM") and code == DICOM_QUS for system, code, _ in codings(method)):
            return Modality.QUS
        words = (
            concept_text(method) + " " + concept_text(observation.get("code")) + " " + (device or "")
        ).lower()
        if any(w in words for w in _QUS_WORDS):
            return Modality.QUS
        if modality is Modality.DXA and any(w in words for w in _PERIPHERAL_WORDS):
            return Modality.PERIPHERAL
        return modality

    def _device(self, observation: JsonObject) -> str | None:
        """DXA-5: the device as 'manufacturer model', or its reference when the Device is not at hand."""
        ref = reference_of(observation.get("device"))
        device_ref = as_dict(observation.get("device"))
        display = as_str(device_ref.get("display")) if device_ref is not None else None
        if ref is None:
            return display
        device = self.devices.get(ref.split("/_history/", 1)[0]) or next(
            (d for key, d in self.devices.items() if ref.endswith("/" + key)), None
        )
        if device is None:
            return display or ref
        parts: list[str] = []
        manufacturer = as_str(device.get("manufacturer"))
        if manufacturer:
            parts.append(manufacturer)
        names = [as_str(n.get("name")) for n in map(as_dict, as_list(device.get("deviceName"))) if n]
        model = as_str(device.get("modelNumber")) or next((n for n in names if n), None)
        if model:
            parts.append(model)
        type_text = concept_text(device.get("type"))
        if type_text:
            parts.append(f"({type_text})")
        return " ".join(parts) or ref

    def _effective(self, resource: JsonObject) -> date | None:
        for key in ("effectiveDateTime", "effectiveInstant"):
            when = parse_fhir_datetime(resource.get(key), self.tz)
            if when:
                return when
        period = as_dict(resource.get("effectivePeriod"))
        if period:
            when = parse_fhir_datetime(period.get("start"), self.tz) or parse_fhir_datetime(
                period.get("end"), self.tz
            )
            if when:
                return when
        return parse_fhir_datetime(resource.get("issued"), self.tz)

    def _vital(self, resource: JsonObject, loinc: str, when: date, source: str) -> None:
        quantity = as_dict(resource.get("valueQuantity"))
        value = quantity.get("value") if quantity else None
        if quantity is None or isinstance(value, bool) or not isinstance(value, int | float):
            return  # vitals without a value do not bear on bone health: no note
        unit = (as_str(quantity.get("code")) or as_str(quantity.get("unit")) or "").strip().lower()
        finite = _finite(value)
        if finite is None:
            self.note(source, "implausible")
            return
        number = finite
        if loinc == "bmi":
            if unit not in ("kg/m2", "kg/m^2", "kg/m²", ""):
                self.note(source, "unknown-unit", unit)
                return
            if not PLAUSIBLE_BMI[0] <= number <= PLAUSIBLE_BMI[1]:
                self.note(source, "implausible", "kg/m2")
                return
            self.facts.bmis.append(Bmi(value=number, when=when, source=source))
        elif loinc == WEIGHT_LOINC:
            factor = {"kg": 1.0, "g": 0.001, "[lb_av]": 0.45359237, "lb": 0.45359237}.get(unit)
            if factor is not None:
                self.weights.append((when, number * factor, source))
        elif loinc == HEIGHT_LOINC:
            factor = {"cm": 1.0, "m": 100.0, "[in_i]": 2.54, "in": 2.54, "mm": 0.1}.get(unit)
            if factor is not None:
                self.heights.append((when, number * factor, source))

    # Condition / Procedure -----------------------------------------------------------------
    def condition(self, resource: JsonObject) -> None:
        source = resource_key(resource)
        concepts = self._coded_concepts(resource.get("code"), procedure=False)
        fracture = fracture_from_condition_codes(resource.get("code"))
        text_fractures = () if fracture is not None else _fractures_in_text(resource.get("code"))
        if not concepts and fracture is None and not text_fractures:
            return
        clinical = resource.get("clinicalStatus")
        verification = resource.get("verificationStatus")
        if isinstance(clinical, str) or isinstance(verification, str):
            self.note(source, "not-fhir-r4")  # DSTU2/STU3 shape
            return
        verification_codes = {code for _, code, _ in codings(verification)}
        if verification_codes & {"entered-in-error", "refuted"}:
            self.note(source, "verification", sorted(verification_codes & {"entered-in-error", "refuted"})[0])
            return
        # FX-6: a fracture the clinician has not confirmed is not proof.
        unconfirmed = bool(verification_codes & {"unconfirmed", "provisional", "differential"})
        clinical_codes = {code for _, code, _ in codings(clinical)}
        active = not clinical_codes or bool(clinical_codes & {"active", "recurrence", "relapse"})
        onset_period = as_dict(resource.get("onsetPeriod"))
        when = (
            parse_fhir_datetime(resource.get("onsetDateTime"), self.tz)
            or (parse_fhir_datetime(onset_period.get("start"), self.tz) if onset_period else None)
            or parse_fhir_datetime(resource.get("recordedDate"), self.tz)
        )
        display = concept_text(resource.get("code")) or None
        # FX-1 / FX-1a: how the fracture happened, read from the Condition's text and notes as from reports.
        trauma = _condition_trauma(resource) if fracture is not None or text_fractures else "not-stated"
        for concept in concepts:
            if concept == "spinal-fusion" and _fusion_elsewhere(resource):
                continue
            self.facts.coded.append(CodedFinding(concept, when, source, display, active))
        if fracture is not None:
            # FX-6: a resolved/inactive fracture Condition is still a fracture history.
            site, osteoporotic, _ = fracture
            if osteoporotic and "osteoporosis" not in concepts:
                # An osteoporotic fracture on record records osteoporosis too (no Condition suggestion).
                self.facts.coded.append(CodedFinding("osteoporosis", when, source, display, active))
            self.facts.fractures.append(
                Fracture(
                    site=site,
                    when=when,
                    source=source,
                    # An osteoporotic fracture code names its own mechanism; the text may state another.
                    trauma=trauma if trauma != "not-stated" else ("none" if osteoporotic else "not-stated"),
                    from_condition=True,
                    display=display,
                    certain=not unconfirmed,
                )
            )
        for mention in text_fractures:
            # A fracture diagnosis written as text only (common in Chinese hospitals), read like a report.
            if mention.trauma == "not-stated" and trauma != "not-stated":
                mention = replace(mention, trauma=trauma)  # stated in a note of the Condition
            self.facts.fractures.append(
                fracture_from_mention(
                    mention,
                    when,
                    source,
                    quote=None,
                    unconfirmed=unconfirmed,
                    from_condition=True,
                    display=display,
                )
            )

    def procedure(self, resource: JsonObject) -> None:
        source = resource_key(resource)
        concepts = self._coded_concepts(resource.get("code"), procedure=True)
        if not concepts:
            return
        status = as_str(resource.get("status"))
        if status in _DEAD_STATUSES or status in ("not-done", "stopped"):
            self.note(source, "status", status)
            return
        if status not in (None, "completed", "in-progress", "unknown"):
            return  # preparation / on-hold: not done yet
        period = as_dict(resource.get("performedPeriod"))
        when = parse_fhir_datetime(resource.get("performedDateTime"), self.tz) or (
            parse_fhir_datetime(period.get("start"), self.tz) if period else None
        )
        laterality = _laterality(resource.get("bodySite"))
        display = concept_text(resource.get("code")) or None
        if "spinal-fusion" in concepts and _fusion_elsewhere(resource):
            concepts = [c for c in concepts if c != "spinal-fusion"]
        for concept in concepts:
            if concept == "hip-prosthesis" and laterality:
                concept = f"hip-prosthesis:{laterality}"
            elif concept.startswith("oophorectomy:") and laterality:
                concept = f"oophorectomy:{laterality}"
            if concept == "oophorectomy:bilateral":
                concept = "bilateral-oophorectomy"
            self.facts.coded.append(CodedFinding(concept, when, source, display))

    def _coded_concepts(self, code: object, *, procedure: bool) -> list[str]:
        found: list[str] = []
        for system, value, _ in codings(code):
            concept: str | None = None
            icd10 = False
            if system == SNOMED:
                concept = SNOMED_CONCEPTS.get(value)
            elif system == ICD10_PCS:  # before the ICD-10 test: its URL contains "ICD10" too
                concept = ICD10_PCS_CONCEPTS.get(value.upper())
            elif system in ICD10_SYSTEMS or "icd-10" in system.lower() or "icd10" in system.lower():
                concept = icd10_concept(value)
                icd10 = True
            if concept is not None and concept not in found:
                found.append(concept)
            if (
                not procedure
                and implies_postmenopausal(system, value, icd10)
                and "postmenopausal" not in found
            ):
                found.append("postmenopausal")  # POP-4: postmenopausal osteoporosis, in its own code system
        if found:
            return found
        text = concept_text(code).lower()
        if procedure and any(w in text for w in _OOPHORECTOMY_WORDS):
            if any(w in text for w in _BILATERAL_WORDS):
                return ["bilateral-oophorectomy"]
            side = _side_from_text(text)
            return [f"oophorectomy:{side or 'unknown'}"]
        if procedure or any(w in text for w in _NOT_A_DIAGNOSIS_WORDS):
            return []
        found = []
        if any(w in text for w in _OSTEOPOROSIS_WORDS):
            found.append("osteoporosis")
        if _states_menopause(text):
            found.append("postmenopausal")  # POP-4 from a text-only diagnosis ("绝经后骨质疏松症" too)
        return found

    # DiagnosticReport / ServiceRequest ------------------------------------------------------
    def report(self, resource: JsonObject) -> None:
        source = resource_key(resource)
        status = as_str(resource.get("status"))
        when = self._effective(resource)
        conclusion = as_str(resource.get("conclusion")) or ""
        # Only a counted report's body is read (and marked read): a final DocumentReference of the same
        # body must not be passed over because a preliminary report showed it first.
        counted = status in COUNTED_OBSERVATION_STATUSES
        body = read_attachments(resource, self.binaries, self.bodies_read) if counted else None
        conclusion_codes = tuple(
            (system, code)
            for concept in as_list(resource.get("conclusionCode"))
            for system, code, _ in codings(concept)
        )
        categories = tuple(code for cat in as_list(resource.get("category")) for _, code, _ in codings(cat))
        report = ImagingReport(
            source=source,
            when=when,
            codes=tuple((system, code) for system, code, _ in codings(resource.get("code"))),
            code_text=concept_text(resource.get("code")),
            category_codes=categories,
            conclusion=conclusion,
            conclusion_codes=conclusion_codes,
        )
        report = self._with_body(report, body)
        if status not in COUNTED_OBSERVATION_STATUSES:
            # An imaging report not final (preliminary, entered-in-error, ...) is listed: it may name a
            # fracture or cover the spine, and the cards must not seem to have missed it. Lab reports are not.
            if status in _DEAD_STATUSES or is_imaging_report(report, self.code_map):
                self.note(source, "status", status or "missing")
            return
        self.facts.reports.append(report)

    def _with_body(self, report: ImagingReport, body: BodyReading | None) -> ImagingReport:
        """The report's text: conclusion and the readable bodies (a body that repeats the conclusion
        stands for both); an imaging report whose body cannot be read says so in the data notes."""
        if body is None:
            return report
        if body.problems and (is_imaging_report(report, self.code_map) or is_bmd_study(report)):
            for problem in dict.fromkeys(body.problems):
                self.note(report.source, problem.reason, problem.detail)
        texts = [t for t in body.texts if t.strip()]
        if not texts:
            return report
        squeezed = " ".join(report.conclusion.split())
        parts = (
            [report.conclusion]
            if squeezed and not any(squeezed in " ".join(t.split()) for t in texts)
            else []
        )
        return replace(report, conclusion="\n".join([*parts, *texts]))

    def document(self, resource: JsonObject) -> None:
        """A DocumentReference imaging note (LOINC 18748-4 "Diagnostic imaging study", or imaging by its
        type, category or the code map) read as an imaging report; other clinical notes are passed over."""
        source = resource_key(resource)
        types = [resource.get("type"), *as_list(resource.get("category"))]
        titles = [
            as_str(attachment.get("title")) or ""
            for content in map(as_dict, as_list(resource.get("content")))
            if content and (attachment := as_dict(content.get("attachment")))
        ]
        context = as_dict(resource.get("context")) or {}
        period = as_dict(context.get("period")) or {}
        report = ImagingReport(
            source=source,
            when=parse_fhir_datetime(period.get("start"), self.tz)
            or parse_fhir_datetime(resource.get("date"), self.tz),
            codes=tuple((system, code) for t in types for system, code, _ in codings(t)),
            code_text=" ".join(
                [concept_text(resource.get("type")), as_str(resource.get("description")) or "", *titles]
            ).strip(),
            category_codes=tuple(
                code for cat in as_list(resource.get("category")) for _, code, _ in codings(cat)
            ),
            conclusion="",
            conclusion_codes=(),
        )
        if not (is_imaging_report(report, self.code_map) or is_bmd_study(report)):
            return
        status = as_str(resource.get("status"))
        doc_status = as_str(resource.get("docStatus"))
        if status == "superseded":
            return  # replaced by a newer version of the note, which is read
        if status != "current" or doc_status not in (None, "final", "amended"):
            self.note(source, "status", doc_status if status == "current" else status or "missing")
            return
        report = self._with_body(report, read_attachments(resource, self.binaries, self.bodies_read))
        if report.conclusion:
            self.facts.reports.append(report)

    def medication(self, resource: JsonObject) -> None:
        use, note = read_medication(resource, self.tz)
        if use is not None:
            self.facts.medications.append(use)
        if note is not None:
            self.facts.notes.append(note)

    def service_request(self, resource: JsonObject) -> None:
        order = read_order(resource, self.code_map)
        if order is not None:
            self.facts.open_orders.append(order)


# Every standard coding an Observation can count by (BMD LOINC codes, BMI, weight, height), built once.
# With the code map's codings (compiled once at start), the screen of _Reader._may_count.
_STANDARD_OBSERVATION_CODINGS = frozenset(
    [(LOINC, code) for code in DXA_LOINC] + [(LOINC, c) for c in (BMI_LOINC, WEIGHT_LOINC, HEIGHT_LOINC)]
)


def _has_known_coding(concept: object, mapped: Mapping[tuple[str, str], str]) -> bool:
    """Whether a CodeableConcept has a coding that is standard or in the code map, read as `codings`
    reads it (string code, stripped; a missing or non-string system is "")."""
    if not isinstance(concept, (dict, Mapping)):
        return False
    coding_list = concept.get("coding")
    if not isinstance(coding_list, list):
        return False
    for coding in coding_list:
        if not isinstance(coding, (dict, Mapping)):
            continue
        code = coding.get("code")
        if not isinstance(code, str) or not code:
            continue
        system = coding.get("system")
        key = (system if isinstance(system, str) else "", code.strip())
        if key in _STANDARD_OBSERVATION_CODINGS or key in mapped:
            return True
    return False


_MENOPAUSE_WORDS = ("绝经", "postmenopaus", "menopause")
_NOT_MENOPAUSE_WORDS = ("绝经前", "未绝经", "围绝经", "premenopaus", "perimenopaus", "pre-menopaus")


# DXA-2 concerns the lumbar spine: an arthrodesis of another joint, or a cervical fusion, does not limit it.
_NOT_LUMBAR_FUSION_WORDS = (
    "颈",
    "cervical",
    "踝",
    "ankle",
    "膝",
    "knee",
    "腕",
    "wrist",
    "髋",
    "hip",
    "足部",
    "foot",
    "手部",
    "hand",
    "肩",
    "shoulder",
    "肘",
    "elbow",
    "拇",
    "thumb",
    "toe",
    "趾",
    "subtalar",
    "距下",
)
_LUMBAR_WORDS = ("腰", "lumbar", "lumbosacral", "thoracolumbar", "胸腰")


def _fusion_elsewhere(resource: JsonObject) -> bool:
    """A fusion/arthrodesis whose code text or body site names a joint other than the lumbar spine."""
    text = (
        concept_text(resource.get("code"))
        + " "
        + " ".join(
            concept_text(site) for site in (as_list(resource.get("bodySite")) or [resource.get("bodySite")])
        )
    ).lower()
    return any(w in text for w in _NOT_LUMBAR_FUSION_WORDS) and not any(w in text for w in _LUMBAR_WORDS)


def _states_menopause(text: str) -> bool:
    return any(w in text for w in _MENOPAUSE_WORDS) and not any(w in text for w in _NOT_MENOPAUSE_WORDS)


def _condition_trauma(resource: JsonObject) -> str:
    """FX-1 / FX-5: the mechanism stated in a Condition's code text and notes (report reader's reading)."""
    notes = [as_str((as_dict(n) or {}).get("text")) or "" for n in as_list(resource.get("note"))]
    return stated_trauma("\n".join([concept_text(resource.get("code")), *notes]))


def _fractures_in_text(code: object) -> tuple[FractureMention, ...]:
    """Fractures named in the text of a Condition that carries no known fracture code."""
    text = concept_text(code)
    if not text or not any(w in text.lower() for w in ("骨折", "fractur")):
        return ()
    return read_report(text).fractures


_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2014": "-", "\ufe63": "-", "\uff0d": "-"})
# A number, then optionally a unit that starts with a letter, "{" or "%" ("SD", "g/cm2", "{T-score}").
_NUMBER_WITH_UNIT = re.compile(r"\s*([-+]?\s?\d+(?:\.\d+)?)\s*([A-Za-z{%µμ]\S*(?:\s+\S+)*)?\s*")


def _number_with_unit(text: str) -> JsonObject | None:
    """ "-2.6", "－２．６", "0.812 g/cm2", "-2.6 SD" as {"value", "unit"}; anything else is not a number."""
    normal = unicodedata.normalize("NFKC", text.translate(_MINUS_SIGNS))
    match = _NUMBER_WITH_UNIT.fullmatch(normal)
    if match is None:
        return None
    return {"value": float(match.group(1).replace(" ", "")), "unit": (match.group(2) or "").strip()}


_QCT_REPORT_LOINC = frozenset({"95924-7", "95925-4"})
_QCT_REPORT_WORDS = ("qct", "定量ct", "定量 ct")


def _measurements_from_text(facts: PatientFacts, code_map: CodeMap) -> None:
    """BMD values written only in imaging/BMD report text, as measurements under the rules of discrete
    Observations (units, plausibility), with the sentence as evidence. Discrete Observations of the same
    exam win: the text is then not counted again (a data note says so)."""
    discrete = [m for m in facts.measurements if m.quote is None]
    seen: set[tuple[object, ...]] = set()
    for report in facts.reports:
        if not report.conclusion or not (is_imaging_report(report, code_map) or is_bmd_study(report)):
            continue
        qct_report = any(c in _QCT_REPORT_LOINC for _, c in report.codes) or any(
            w in report.code_text.lower() for w in _QCT_REPORT_WORDS
        )
        reading = read_bmd_text(report.conclusion, qct_report=qct_report)
        if not (reading.values or reading.unmeasured or reading.unreadable):
            continue
        if report.when is None:
            facts.notes.append(DataNote(report.source, "no-date"))
            continue
        when = report.when
        exam_modality = Modality.QCT if reading.qct else Modality.DXA
        for site in reading.unmeasured:
            facts.unmeasured_sites.append(
                UnmeasuredSite(
                    exam_modality,
                    site.region,
                    when,
                    report.source,
                    site.quote,
                    site.laterality,
                    site.dxa2_reason,
                )
            )
        modalities = {v.modality for v in reading.values} | ({exam_modality} if reading.unreadable else set())
        won = {
            modality
            for modality in modalities
            if any(m.modality is modality and abs((m.when - when).days) <= SAME_EXAM_DAYS for m in discrete)
        }
        if won:
            facts.notes.append(DataNote(report.source, "bmd-text-discrete-wins"))
        if reading.unreadable and exam_modality not in won:
            facts.notes.append(DataNote(report.source, "bmd-text-unreadable"))
            facts.unreadable_bmd.append(
                UnreadableBmd(exam_modality, when, report.source, reading.unreadable[0])
            )
        for value in reading.values:
            if value.modality in won:
                continue
            measurement = _text_measurement(value, when, report.source, facts)
            if measurement is None:
                continue
            m = measurement
            key = (m.modality, m.measure, m.region, m.vertebra, m.laterality, round(m.value, 4), m.when)
            if (
                key not in seen
            ):  # the same exam as a presentedForm and as a DocumentReference in another format
                seen.add(key)
                facts.measurements.append(measurement)


def _text_measurement(
    value: TextValue, when: date, source: str, facts: PatientFacts
) -> BmdMeasurement | None:
    """The same units (QCT-5) and plausibility ranges (CONTRACT.md) as a discrete Observation."""
    converted = _convert(value.measure, value.unit, value.number)
    if converted is None:
        facts.notes.append(DataNote(source, "unknown-unit", value.unit or "none"))
        return None
    low, high = PLAUSIBLE[value.measure]
    if not low <= converted <= high:
        facts.notes.append(DataNote(source, "implausible", _unit_label(value.measure)))
        return None
    return BmdMeasurement(
        modality=value.modality,
        measure=value.measure,
        region=value.region,
        value=converted,
        unit=_unit_label(value.measure),
        when=when,
        source=source,
        vertebra=value.vertebra,
        laterality=value.laterality,
        region_text=value.region_text,
        quote=value.quote,
    )


def _finite(value: int | float) -> float | None:
    """A JSON number as a finite float (a huge integer or NaN is not a measurement)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _vital_code(found: Codings, code_map: CodeMap) -> str | None:
    for system, value, _ in found:
        if (system == LOINC and value == BMI_LOINC) or code_map.concept_of(system, value) == "bmi":
            return "bmi"
        if system == LOINC and value in (WEIGHT_LOINC, HEIGHT_LOINC):
            return value
    return None


def _bmd_measure(unit_key: str) -> Measure:
    return Measure.VBMD if unit_key in _VBMD_UNITS else Measure.ABMD


def _convert(measure: Measure, unit_key: str, value: float) -> float | None:
    """QCT-5 and CONTRACT.md units: the value in the canonical unit, or None when the unit is not accepted."""
    if measure in (Measure.T_SCORE, Measure.Z_SCORE):
        return value if unit_key in _SCORE_UNITS else None
    if measure is Measure.ABMD:
        factor = _ABMD_UNITS.get(unit_key)
        return value * factor if factor is not None else None
    if measure is Measure.VBMD:
        factor = _VBMD_UNITS.get(unit_key)
        return value * factor if factor is not None else None
    return value


def _score_unit_agrees(measure: Measure, unit_key: str) -> bool:
    """A Z-score unit on a T-score code (or the reverse) makes the value ambiguous."""
    if measure is Measure.T_SCORE:
        return "z-score" not in unit_key
    return "t-score" not in unit_key


def _unit_label(measure: Measure) -> str:
    return {
        Measure.T_SCORE: "T",
        Measure.Z_SCORE: "Z",
        Measure.ABMD: "g/cm2",
        Measure.VBMD: "mg/cm3",
        Measure.INDEX: "",
    }[measure]


def _body_site_region(body_site: object) -> Region | None:
    for system, code, _ in codings(body_site):
        if system == SNOMED and code in BODY_SITE_REGIONS:
            return BODY_SITE_REGIONS[code]
        if system == SNOMED and code in VERTEBRA_SNOMED and VERTEBRA_SNOMED[code].startswith("L"):
            return Region.LUMBAR_SPINE
    text = concept_text(body_site).lower()
    if not text:
        return None
    for words, region in _REGION_WORDS:
        if any(w in text for w in words):
            return region
    return None


def _vertebra(body_site: object) -> str | None:
    for system, code, _ in codings(body_site):
        if system == SNOMED and code in VERTEBRA_SNOMED:
            return VERTEBRA_SNOMED[code]
    text = concept_text(body_site)
    if any(mark in text for mark in ("~", "–", "至", "到")) or re.search(r"\d\s?-\s?[A-Za-z胸腰]?\d", text):
        return None  # a range ("L1-L4", "L1~L2", "腰1至腰2") is not one vertebra: the value is a mean
    levels = set(vertebra_levels(text))
    return levels.pop() if len(levels) == 1 else None  # text and display may name the same level twice


def _laterality(body_site: object) -> str | None:
    """Left/right from a bodySite (Observation: one CodeableConcept; Procedure: a list of them)."""
    sites = body_site if isinstance(body_site, list) else [body_site]
    sides: set[str] = set()
    for site_raw in sites:
        for system, code, _ in codings(site_raw):
            if system == SNOMED and code in LATERALITY_SNOMED:
                sides.add(LATERALITY_SNOMED[code])
        site = as_dict(site_raw)
        if site is not None:
            for ext in map(as_dict, as_list(site.get("extension"))):
                for system, code, _ in codings(ext.get("valueCodeableConcept") if ext else None):
                    if system == SNOMED and code in LATERALITY_SNOMED:
                        sides.add(LATERALITY_SNOMED[code])
        text_side = _side_from_text(concept_text(site_raw).lower())
        if text_side:
            sides.update(("left", "right") if text_side == "bilateral" else (text_side,))
    if {"left", "right"} <= sides:
        return "bilateral"
    return next(iter(sides), None)


def _side_from_text(text: str) -> str | None:
    left = "left" in text or "左" in text
    right = "right" in text or "右" in text
    if left and right:
        return "bilateral"
    return "left" if left else "right" if right else None


def _reference_database(observation: JsonObject) -> str | None:
    """DXA-6: a reference population named by the record (method text or notes), as a keyword."""
    texts = [concept_text(observation.get("method"))]
    texts.extend(as_str(n.get("text")) or "" for n in map(as_dict, as_list(observation.get("note"))) if n)
    joined = " ".join(texts).lower()
    if not joined.strip():
        return None
    for word in _OTHER_REFERENCE_WORDS:
        if word in joined:
            return word.upper() if word.isascii() else word
    for word in _CHINESE_REFERENCE_WORDS:
        if word in joined:
            return "Chinese"
    return None


def _derived_bmi(
    weights: list[tuple[date, float, str]], heights: list[tuple[date, float, str]]
) -> Bmi | None:
    """BMI from the latest weight and the height measured nearest to it (no BMI recorded)."""
    if not weights or not heights:
        return None
    when, kg, source = max(weights, key=lambda w: w[0])
    _, cm, _ = min(heights, key=lambda h: abs((h[0] - when).days))
    if cm <= 0:
        return None
    value = kg / (cm / 100.0) ** 2
    if not PLAUSIBLE_BMI[0] <= value <= PLAUSIBLE_BMI[1]:
        return None
    return Bmi(value=round(value, 1), when=when, source=source, derived=True)


def _combine_oophorectomies(facts: PatientFacts) -> None:
    """POP-2: left and right oophorectomies at different times make a bilateral one (at the later date)."""
    sides: dict[str, CodedFinding] = {}
    for finding in facts.coded:
        if finding.concept.startswith("oophorectomy:"):
            side = finding.concept.split(":", 1)[1]
            if side == "bilateral":
                sides["left"] = sides["right"] = finding
            else:
                sides[side] = finding
    if "left" in sides and "right" in sides:
        later = max(
            (sides["left"], sides["right"]),
            key=lambda f: f.when or date.min,
        )
        facts.coded.append(CodedFinding("bilateral-oophorectomy", later.when, later.source, later.display))


def references_by_type(resources: Iterable[JsonObject]) -> dict[str, Any]:
    """Index of resources by 'Type/id' (used by callers that resolve references)."""
    return {resource_key(r): r for r in resources if isinstance(r, Mapping)}
