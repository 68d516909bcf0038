"""Benchmark charts: a typical (~60 resources) and a long (~900) record built from a Synthea bundle, and
an imaging-heavy one (60 resources, four Chinese spine radiograph reports) built from the codes the
service recognises.

Deterministic: the same Synthea patient, and the extra vitals and labs come from a seeded random
generator, so two runs send byte-identical requests.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from cds_service.facts import valuesets
from cds_service.facts.model import Measure, Modality, Region

ROOT = Path(__file__).resolve().parent.parent
SYNTHEA = (
    ROOT / "tests" / "fixtures" / "synthea" / "Tamatha_Witting_55a37df6-b780-4272-8d51-499be0e7df86.json"
)
SEED = 20200601
TODAY = "2021-06-01"  # OSTEO_CDS_TODAY for every run: the cards do not drift with the calendar
TYPICAL_SIZE = 60
VISITS = 39  # quarterly visits of the long chart, each with vitals and labs
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
SNOMED = valuesets.SNOMED
NAMESPACE = uuid.UUID("0f6c5a9e-2d7b-4d1e-9a51-6b3c1c0e7a42")
SEARCHED_TYPES = ("Observation", "Condition", "Procedure", "DiagnosticReport", "ServiceRequest")

Resource = dict[str, Any]

# (LOINC, display, unit, mean, spread, category)
_VITALS: tuple[tuple[str, str, str, float, float], ...] = (
    ("8302-2", "Body Height", "cm", 158.0, 0.3),
    ("29463-7", "Body Weight", "kg", 71.0, 2.0),
    ("39156-5", "Body Mass Index", "kg/m2", 28.4, 0.8),
    ("8867-4", "Heart rate", "/min", 74.0, 8.0),
    ("9279-1", "Respiratory rate", "/min", 15.0, 2.0),
    ("8310-5", "Body temperature", "Cel", 36.8, 0.3),
    ("72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported", "{score}", 2.0, 1.5),
)
_LABS: tuple[tuple[str, str, str, float, float], ...] = (
    ("2339-0", "Glucose", "mg/dL", 92.0, 12.0),
    ("6299-2", "Urea Nitrogen", "mg/dL", 14.0, 3.0),
    ("38483-4", "Creatinine", "mg/dL", 0.9, 0.15),
    ("49765-1", "Calcium", "mg/dL", 9.4, 0.3),
    ("2947-0", "Sodium", "mmol/L", 140.0, 2.0),
    ("6298-4", "Potassium", "mmol/L", 4.2, 0.3),
    ("2069-3", "Chloride", "mmol/L", 103.0, 2.0),
    ("20565-8", "Carbon Dioxide", "mmol/L", 25.0, 2.0),
    ("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 80.0, 15.0),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 13.2, 0.8),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 260.0, 40.0),
    ("1989-3", "25-Hydroxyvitamin D3 [Mass/volume] in Serum or Plasma", "ng/mL", 24.0, 6.0),
)


@dataclass(frozen=True)
class Chart:
    """One patient's record as a FHIR server holds it (only the searched types and the Patient)."""

    name: str
    patient_id: str
    user_id: str
    resources: tuple[Resource, ...]

    def prefetch_request(self, templates: Mapping[str, str]) -> dict[str, Any]:
        """A patient-view call whose prefetch answers every template in one unpaged searchset."""
        context = {"userId": self.user_id, "patientId": self.patient_id}
        prefetch: dict[str, Any] = {}
        for key, template in templates.items():
            relative = template.replace("{{context.patientId}}", self.patient_id)
            if "?" not in relative:
                prefetch[key] = self.read(relative)
                continue
            resource_type, _, query = relative.partition("?")
            found = self.search(resource_type, dict(parse_qsl(query)))
            prefetch[key] = searchset(f"http://ehr.invalid/fhir/{relative}", found)
        return {
            "hook": "patient-view",
            "hookInstance": str(uuid.uuid5(NAMESPACE, f"{self.name}/prefetch")),
            "context": context,
            "prefetch": prefetch,
        }

    def no_prefetch_request(self, fhir_server: str) -> dict[str, Any]:
        return {
            "hook": "patient-view",
            "hookInstance": str(uuid.uuid5(NAMESPACE, f"{self.name}/no-prefetch")),
            "fhirServer": fhir_server,
            "context": {"userId": self.user_id, "patientId": self.patient_id},
        }

    def read(self, relative: str) -> Resource | None:
        resource_type, _, resource_id = relative.partition("/")
        return next(
            (r for r in self.resources if r["resourceType"] == resource_type and r.get("id") == resource_id),
            None,
        )

    def search(self, resource_type: str, params: Mapping[str, str]) -> list[Resource]:
        """What a FHIR server answers: patient, `code` (token OR list), `status`, `_sort=-date`."""
        patient = params.get("patient", "")
        codes = _tokens(params.get("code"))
        combo = _tokens(params.get("combo-code"))  # the code or a component's code
        statuses = set(params["status"].split(",")) if "status" in params else None
        found = [
            r
            for r in self.resources
            if r["resourceType"] == resource_type
            and _subject(r) == f"Patient/{patient}"
            and (statuses is None or r.get("status") in statuses)
            and (codes is None or _has_code(r, codes))
            and (
                combo is None
                or _has_code(r, combo)
                or any(_has_code(c, combo) for c in r.get("component", []))
            )
        ]
        if params.get("_sort") == "-date":
            found.sort(key=_date_of, reverse=True)
        return found


def searchset(self_url: str, resources: list[Resource], next_url: str | None = None) -> dict[str, Any]:
    links = [{"relation": "self", "url": self_url}]
    if next_url is not None:
        links.append({"relation": "next", "url": next_url})
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "link": links}
    if resources:
        bundle["entry"] = [
            {"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
            for r in resources
        ]
    return bundle


def _tokens(raw: str | None) -> set[tuple[str, str]] | None:
    if raw is None:
        return None
    tokens: set[tuple[str, str]] = set()
    for token in raw.split(","):
        system, bar, code = token.partition("|")
        tokens.add((system, code) if bar else ("*", system))
    return tokens


def _has_code(resource: Resource, tokens: set[tuple[str, str]]) -> bool:
    for coding in (resource.get("code") or {}).get("coding", []):
        system, code = coding.get("system", ""), coding.get("code", "")
        if (system, code) in tokens or ("*", code) in tokens:
            return True
    return False


def _subject(resource: Resource) -> str | None:
    ref = resource.get("subject") or resource.get("patient") or {}
    return ref.get("reference") if isinstance(ref, dict) else None


def _date_of(resource: Resource) -> str:
    for name in ("effectiveDateTime", "performedDateTime", "issued"):
        if isinstance(resource.get(name), str):
            return str(resource[name])
    for name in ("effectivePeriod", "performedPeriod"):
        period = resource.get(name)
        if isinstance(period, dict) and isinstance(period.get("start"), str):
            return str(period["start"])
    return ""


def _rewrite(node: Any, targets: Mapping[str, str]) -> Any:
    """`urn:uuid:` references of a transaction Bundle → `Type/id`, as a FHIR server stores them."""
    if isinstance(node, dict):
        return {
            k: targets.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, targets)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite(item, targets) for item in node]
    return node


def synthea_record(path: Path = SYNTHEA) -> tuple[Resource, list[Resource], str]:
    """(Patient, the patient's resources of the searched types, a Practitioner id) of a Synthea bundle."""
    bundle = json.loads(path.read_text(encoding="utf-8"))
    entries = [e for e in bundle["entry"] if isinstance(e.get("resource"), dict)]
    targets = {
        e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in entries
        if str(e.get("fullUrl", "")).startswith("urn:uuid:")
    }
    resources = [_rewrite(e["resource"], targets) for e in entries]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    practitioner = next((r["id"] for r in resources if r["resourceType"] == "Practitioner"), "example")
    mine = [
        r
        for r in resources
        if r["resourceType"] in SEARCHED_TYPES and _subject(r) == f"Patient/{patient['id']}"
    ]
    return patient, mine, practitioner


def typical_chart() -> Chart:
    """The Synthea record cut to ~60 resources: every condition, procedure and report, the DXA, and the
    newest observations (a chart as most EHRs would prefetch it)."""
    patient, mine, practitioner = synthea_record()
    others = [r for r in mine if r["resourceType"] != "Observation"]
    observations = sorted((r for r in mine if r["resourceType"] == "Observation"), key=_date_of, reverse=True)
    dxa = [r for r in observations if _has_code(r, {(LOINC, "38265-5")})]
    room = TYPICAL_SIZE - 1 - len(others) - len(dxa)
    newest = [r for r in observations if r not in dxa][: max(room, 0)]
    return Chart("typical", patient["id"], f"Practitioner/{practitioner}", (patient, *others, *dxa, *newest))


def long_chart() -> Chart:
    """The whole Synthea record plus ten years of quarterly vitals and labs and biennial DXA follow-ups."""
    patient, mine, practitioner = synthea_record()
    rng = random.Random(SEED)
    generated: list[Resource] = []
    start = datetime(2011, 3, 1, 8, 30, tzinfo=UTC)
    subject = {"reference": f"Patient/{patient['id']}"}
    for visit in range(VISITS):
        when = start + timedelta(days=91 * visit, minutes=rng.randrange(0, 240))
        for code, display, unit, mean, spread in _VITALS:
            generated.append(
                _observation(rng, subject, when, "vital-signs", code, display, unit, mean, spread)
            )
        generated.append(_blood_pressure(rng, subject, when))
        for code, display, unit, mean, spread in _LABS:
            generated.append(
                _observation(rng, subject, when, "laboratory", code, display, unit, mean, spread)
            )
    for year in (2015, 2017, 2019):
        when = datetime(year, 7, 1, 9, 0, tzinfo=UTC)
        generated.append(
            _observation(
                rng,
                subject,
                when,
                "procedure",
                "38265-5",
                "DXA [T-score] Bone density",
                "{T-score}",
                -2.7,
                0.2,
            )
        )
    return Chart("long", patient["id"], f"Practitioner/{practitioner}", (patient, *mine, *generated))


def _observation(
    rng: random.Random,
    subject: Mapping[str, str],
    when: datetime,
    category: str,
    code: str,
    display: str,
    unit: str,
    mean: float,
    spread: float,
) -> Resource:
    stamp = when.isoformat()
    return {
        "resourceType": "Observation",
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": category, "display": category}]}],
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": dict(subject),
        "effectiveDateTime": stamp,
        "issued": stamp,
        "valueQuantity": {
            "value": round(rng.gauss(mean, spread), 2),
            "unit": unit,
            "system": UCUM,
            "code": unit,
        },
    }


def _blood_pressure(rng: random.Random, subject: Mapping[str, str], when: datetime) -> Resource:
    stamp = when.isoformat()
    components = [
        ("8462-4", "Diastolic Blood Pressure", 78.0),
        ("8480-6", "Systolic Blood Pressure", 128.0),
    ]
    return {
        "resourceType": "Observation",
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY, "code": "vital-signs", "display": "vital-signs"}]}],
        "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood Pressure"}]},
        "subject": dict(subject),
        "effectiveDateTime": stamp,
        "issued": stamp,
        "component": [
            {
                "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
                "valueQuantity": {
                    "value": round(rng.gauss(mean, 8.0)),
                    "unit": "mm[Hg]",
                    "system": UCUM,
                    "code": "mm[Hg]",
                },
            }
            for code, display, mean in components
        ],
    }


# The imaging chart's reports: a spine radiograph every year, read in Chinese, none with a fracture.
_SPINE_REPORTS: tuple[tuple[str, str], ...] = (
    ("2017-05-12", "胸腰椎退行性变，L4/5椎间隙变窄。脊柱侧弯。未见明确椎体骨折。"),
    (
        "2018-06-20",
        "腰椎术后改变，L3-L5椎弓根螺钉内固定，位置良好。脊柱侧弯，胸腰椎骨质疏松。未见椎体压缩性骨折。",
    ),
    (
        "2019-09-03",
        "腰椎内固定术后，内固定物未见松动。胸腰段脊柱侧弯约15度。椎体骨质密度减低，未见骨折征象。",
    ),
    ("2020-10-15", "L3-L5内固定术后改变。脊柱侧弯同前。胸腰椎骨质疏松，椎体形态未见明显异常，未见新发骨折。"),
)


def imaging_chart() -> Chart:
    """60 resources of a woman of 70: four spine radiograph reports in Chinese, scoliosis, a lumbar spinal
    fusion, long-term glucocorticoids, a bilateral oophorectomy, a hip DXA, and quarterly vitals and labs
    (codes from cds_service.facts.valuesets, so the chart follows what the service recognises)."""
    rng = random.Random(SEED + 1)
    patient_id = "bench-imaging"
    subject = {"reference": f"Patient/{patient_id}"}
    patient: Resource = {
        "resourceType": "Patient",
        "id": patient_id,
        "gender": "female",
        "birthDate": "1951-03-14",
        "name": [{"text": "基准 测试"}],
    }
    spine_xr = next(code for code, regions in valuesets.SPINE_IMAGING_LOINC.items() if len(regions) == 2)
    reports = [
        {
            "resourceType": "DiagnosticReport",
            "id": f"{patient_id}-xr-{day}",
            "status": "final",
            "category": [{"coding": [{"system": V2_0074, "code": min(valuesets.RADIOGRAPH_CATEGORY_CODES)}]}],
            "code": {"coding": [{"system": LOINC, "code": spine_xr}], "text": "胸腰椎正侧位片(DR)"},
            "subject": dict(subject),
            "effectiveDateTime": day,
            "issued": f"{day}T16:30:00+08:00",
            "conclusion": conclusion,
        }
        for day, conclusion in _SPINE_REPORTS
    ]
    record = [
        _coded("Condition", patient_id, "scoliosis", SNOMED, _snomed("scoliosis"), "2016-04-01", "脊柱侧弯"),
        _coded(
            "Procedure", patient_id, "fusion", SNOMED, _snomed("spinal-fusion"), "2018-03-02", "腰椎融合术"
        ),
        _coded(
            "Condition",
            patient_id,
            "steroids",
            "http://hl7.org/fhir/sid/icd-10-cm",
            _icd10("secondary-cause:glucocorticoids"),
            "2015-01-10",
            "长期使用糖皮质激素",
        ),
        _coded(
            "Procedure",
            patient_id,
            "oophorectomy",
            SNOMED,
            _snomed("bilateral-oophorectomy"),
            "1999-11-20",
            "双侧卵巢切除术",
        ),
    ]
    dxa_when = datetime(2020, 10, 15, 9, 0, tzinfo=UTC)
    dxa = [
        _observation(
            rng, subject, dxa_when, "procedure", _dxa_t(region), f"DXA {region} T-score", "{T-score}", t, 0
        )
        for region, t in ((Region.FEMORAL_NECK, -2.6), (Region.TOTAL_HIP, -2.3))
    ]
    rows = (*_VITALS, *_LABS)
    visits: list[Resource] = []
    start = datetime(2019, 1, 8, 8, 30, tzinfo=UTC)
    room = TYPICAL_SIZE - 1 - len(reports) - len(record) - len(dxa)
    for index in range(room):
        when = start + timedelta(days=91 * (index // len(rows)))
        code, display, unit, mean, spread = rows[index % len(rows)]
        category = "vital-signs" if index % len(rows) < len(_VITALS) else "laboratory"
        visits.append(_observation(rng, subject, when, category, code, display, unit, mean, spread))
    resources = (patient, *reports, *record, *dxa, *visits)
    return Chart("imaging", patient_id, "Practitioner/bench", resources)


def _snomed(concept: str) -> str:
    return next(code for code, name in valuesets.SNOMED_CONCEPTS.items() if name == concept)


def _icd10(concept: str) -> str:
    return next(code for code, name in valuesets.ICD10_PREFIX_CONCEPTS.items() if name == concept)


def _dxa_t(region: Region) -> str:
    return next(
        code
        for code, (modality, measure, where, side) in valuesets.DXA_LOINC.items()
        if (modality, measure, where, side) == (Modality.DXA, Measure.T_SCORE, region, None)
    )


def _coded(
    resource_type: str, patient_id: str, name: str, system: str, code: str, when: str, text: str
) -> Resource:
    resource: Resource = {
        "resourceType": resource_type,
        "id": f"{patient_id}-{name}",
        "code": {"coding": [{"system": system, "code": code}], "text": text},
        "subject": {"reference": f"Patient/{patient_id}"},
    }
    if resource_type == "Condition":
        resource["clinicalStatus"] = {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]}
        resource["onsetDateTime"] = when
    else:
        resource["status"] = "completed"
        resource["performedDateTime"] = when
    return resource


CHARTS: dict[str, Callable[[], Chart]] = {
    "typical": typical_chart,
    "long": long_chart,
    "imaging": imaging_chart,
}
