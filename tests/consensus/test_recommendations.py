"""What to recommend (CONSENSUS-RULES.md §6): REC-SPINE-XR, REC-BMD, REC-QCT, REC-FOREARM / DXA-2, DXA-5,
REC-PERIPHERAL / DX-4, with the §7 settings they name and the ServiceRequests they propose (CONTRACT.md)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest

from cds_service.consensus.findings import Finding
from cds_service.consensus.lookback import months_before
from cds_service.facts.codemap import parse_code_map
from cds_service.facts.valuesets import PROPOSED_ORDERS
from cds_service.settings import ClinicalSettings, Settings
from cds_service.topics import Group
from tests.builders import (
    DICOM,
    ICD10_CM,
    LOCAL,
    LOCAL_CODES,
    LOINC,
    SNOMED,
    TODAY,
    born,
    concept,
    condition,
    evaluate_resources,
    findings_of,
    local,
    make_settings,
    observation,
    patient,
    procedure,
    qct,
    t_score,
    topic_of,
)

Resource = dict[str, Any]

NOW = TODAY.isoformat()
BMI_CODE = (LOCAL, "BMI-L")
SPINE_REPORT_CODE = (LOCAL, "XR-SPINE-L")
# LOCAL_MAP (tests/builders.py) has no bmi / spine-imaging-report concepts: the same hospital's map with them.
CODE_MAP = parse_code_map(
    {
        **{name: [{"system": LOCAL, "code": code}] for name, code in LOCAL_CODES.items()},
        "bmi": [{"system": BMI_CODE[0], "code": BMI_CODE[1]}],
        "spine-imaging-report": [{"system": SPINE_REPORT_CODE[0], "code": SPINE_REPORT_CODE[1]}],
    }
)
SETTINGS = make_settings(code_map=CODE_MAP)

OLD_WOMAN = patient(birth_date=born(70, on=NOW))  # POP-4 assumed postmenopausal; ≥ 60 today
OLD_MAN = patient(gender="male", birth_date=born(70, on=NOW))
RECENT = "2025-06-01"  # within every look-back

XR_SPINE = "24984-7"  # XR Thoracic and lumbar spine 2 Views
XR_THORACIC, XR_LUMBAR = "30753-8", "24970-6"
CT_THORACIC, MR_LUMBAR = "24978-9", "24968-0"
XR_PELVIS = "24762-7"
DXA_STUDY, QCT_STUDY = "38268-9", "95925-4"
LUMBAR_T, NECK_T, NECK_T_LEFT, NECK_T_RIGHT, FOREARM_T_LEFT = (
    "38267-1",
    "38263-0",
    "80948-3",
    "80947-5",
    "80944-2",
)
CALCANEUS_T = "38266-3"
LEFT = (SNOMED, "7771000")

_report_ids = itertools.count(1)


def diagnostic_report(
    conclusion: str | None = None,
    *,
    loinc: str | None = XR_SPINE,
    text: str | None = None,
    code: tuple[str, str] | None = None,
    category: str | None = None,
    when: str = RECENT,
    status: str = "final",
    id: str | None = None,
    **extra: Any,
) -> Resource:
    """An imaging DiagnosticReport: code (LOINC, a local coding and/or text), v2-0074 category, conclusion."""
    codes = [(LOINC, loinc)] if loinc else []
    if code:
        codes.append(code)
    resource: Resource = {
        "resourceType": "DiagnosticReport",
        "id": id or f"dr{next(_report_ids)}",
        "status": status,
        "code": concept(codes or None, text) if (codes or text) else {"text": ""},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": when,
    }
    if category is not None:
        resource["category"] = [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": category}]}
        ]
    if conclusion is not None:
        resource["conclusion"] = conclusion
    resource.update(extra)
    return resource


def bmi(value: float, when: str = RECENT, **kwargs: Any) -> Resource:
    """A BMI (LOINC 39156-5) in kg/m2."""
    kwargs.setdefault("loinc", "39156-5")
    return observation(value=value, unit_code="kg/m2", when=when, **kwargs)


def _settings(**clinical: Any) -> Settings:
    return make_settings(code_map=CODE_MAP, clinical=ClinicalSettings(**clinical)) if clinical else SETTINGS


def _findings(
    *resources: Resource, who: Resource = OLD_WOMAN, settings: Settings = SETTINGS
) -> list[Finding]:
    return findings_of([who, *resources], settings=settings)


def _topics(findings: list[Finding]) -> list[str]:
    return [f.topic for f in findings]


def _finding(findings: list[Finding], topic: str) -> Finding:
    [found] = [f for f in findings if f.topic == topic]
    return found


def _setting_names(finding: Finding) -> dict[str, str]:
    return {s.name: s.value for s in finding.settings}


def _card(resources: list[Resource], topic: str) -> dict[str, Any]:
    cards = evaluate_resources(resources, settings=SETTINGS).response["cards"]
    [card] = [c for c in cards if topic_of(c) == topic]
    return card


def _ordered(card: dict[str, Any]) -> list[dict[str, Any]]:
    """The ServiceRequests the card's suggestions create, each checked against the FHIR R4B model."""
    requests = [
        action["resource"]
        for suggestion in card.get("suggestions", [])
        for action in suggestion["actions"]
        if action["resource"]["resourceType"] == "ServiceRequest"
    ]
    for request in requests:
        ServiceRequest.model_validate(request)
        assert request["status"] == "draft"
        assert request["intent"] == "proposal"
        assert request["subject"] == {"reference": "Patient/p1"}
        assert request["reasonCode"][0]["coding"][0]["code"] == topic_of(card)
        assert request["note"]
    return requests


def _loinc(request: dict[str, Any]) -> str:
    [coding] = [c for c in request["code"]["coding"] if c["system"] == LOINC]
    return str(coding["code"])


def _body_sites(request: dict[str, Any]) -> set[str]:
    return {
        c["code"] for site in request.get("bodySite", []) for c in site["coding"] if c["system"] == SNOMED
    }


# --- REC-SPINE-XR ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("birth", "card"),
    [
        pytest.param(born(59, on=NOW), False, id="REC-SPINE-XR age 59 today gets no card"),
        pytest.param(born(60, on=NOW, days_later=1), False, id="REC-SPINE-XR a day short of 60 gets no card"),
        pytest.param(born(60, on=NOW), True, id="REC-SPINE-XR age 60 today gets the card"),
        pytest.param(born(83, on=NOW), True, id="REC-SPINE-XR age 83 gets the card"),
        pytest.param(
            born(58, on="2018-01-01"), True, id="REC-SPINE-XR age today decides, not age at an exam"
        ),
    ],
)
def test_rec_spine_xr_everyone_aged_60_today(birth: str, card: bool) -> None:
    findings = _findings(who=patient(birth_date=birth))
    assert ("spine-radiograph-recommended" in _topics(findings)) is card
    if card:
        finding = _finding(findings, "spine-radiograph-recommended")
        assert finding.rules == ("REC-SPINE-XR",)
        assert _setting_names(finding)["OSTEO_CDS_SPINE_XR_AGE"] == "60"
        assert [PROPOSED_ORDERS[o.kind].loinc for o in finding.orders] == [XR_SPINE]


def test_rec_spine_xr_age_is_a_setting() -> None:
    who = patient(birth_date=born(62, on=NOW))
    assert "spine-radiograph-recommended" in _topics(_findings(who=who))
    finding = _findings(who=who, settings=_settings(spine_radiograph_age=65))
    assert "spine-radiograph-recommended" not in _topics(finding)


@pytest.mark.parametrize(
    ("months_ago", "lookback", "card"),
    [
        pytest.param(35, 36, False, id="REC-SPINE-XR imaging 35 months ago satisfies a 36-month look-back"),
        pytest.param(36, 36, False, id="REC-SPINE-XR imaging 36 months ago (boundary) satisfies it"),
        pytest.param(37, 36, True, id="REC-SPINE-XR imaging 37 months ago does not satisfy it"),
        pytest.param(35, 24, True, id="REC-SPINE-XR look-back setting 24: 35 months ago too old"),
        pytest.param(37, 48, False, id="REC-SPINE-XR look-back setting 48: 37 months ago satisfies"),
    ],
)
def test_rec_spine_xr_look_back(months_ago: int, lookback: int, card: bool) -> None:
    when = months_before(TODAY, months_ago).isoformat()
    findings = _findings(
        diagnostic_report("胸腰椎未见明显异常", when=when),
        settings=_settings(spine_imaging_lookback_months=lookback),
    )
    assert ("spine-radiograph-recommended" in _topics(findings)) is card
    if card:
        settings = _setting_names(_finding(findings, "spine-radiograph-recommended"))
        assert settings["OSTEO_CDS_SPINE_IMAGING_LOOKBACK_MONTHS"] == str(lookback)


@pytest.mark.parametrize(
    ("resources", "card"),
    [
        pytest.param([], True, id="REC-SPINE-XR no imaging: card"),
        pytest.param([diagnostic_report(loinc=XR_THORACIC)], True, id="REC-SPINE-XR thoracic only: card"),
        pytest.param([diagnostic_report(loinc=XR_LUMBAR)], True, id="REC-SPINE-XR lumbar only: card"),
        pytest.param(
            [diagnostic_report(loinc=XR_THORACIC, when="2024-02-01"), diagnostic_report(loinc=XR_LUMBAR)],
            False,
            id="REC-SPINE-XR thoracic + lumbar in two studies: satisfied",
        ),
        pytest.param(
            [diagnostic_report(loinc=XR_SPINE)], False, id="REC-SPINE-XR LOINC 24984-7 report: satisfied"
        ),
        pytest.param(
            [diagnostic_report(loinc=None, text="胸腰椎正侧位")],
            False,
            id="REC-SPINE-XR code text 胸腰椎正侧位: satisfied",
        ),
        pytest.param(
            [diagnostic_report(loinc=None, text="胸腰椎正侧位", conclusion=None)],
            False,
            id="REC-SPINE-XR 胸腰椎正侧位 without a conclusion: satisfied",
        ),
        pytest.param(
            [
                diagnostic_report(loinc=None, text="胸椎正侧位"),
                diagnostic_report(loinc=None, text="腰椎正侧位"),
            ],
            False,
            id="REC-SPINE-XR 胸椎正侧位 + 腰椎正侧位: satisfied",
        ),
        pytest.param(
            [diagnostic_report(loinc=CT_THORACIC), diagnostic_report(loinc=MR_LUMBAR)],
            False,
            id="REC-SPINE-XR CT thoracic + MR lumbar: satisfied",
        ),
        pytest.param(
            [diagnostic_report(loinc=None, code=SPINE_REPORT_CODE)],
            False,
            id="REC-SPINE-XR local spine-imaging-report concept: satisfied",
        ),
        pytest.param(
            [diagnostic_report("未见椎体骨折", loinc=None, text="DXA VFA 椎体骨折评估")],
            False,
            id="REC-SPINE-XR DXA VFA read for fractures: satisfied",
        ),
        pytest.param(
            [t_score(-1.5, when=RECENT)], True, id="REC-SPINE-XR a DXA result alone does not satisfy"
        ),
        pytest.param([qct(100.0, when=RECENT)], True, id="REC-SPINE-XR a QCT result alone does not satisfy"),
        pytest.param(
            [diagnostic_report("骨量减少", loinc=DXA_STUDY, text="双能X线骨密度测定")],
            True,
            id="REC-SPINE-XR a DXA report alone does not satisfy",
        ),
        pytest.param(
            [diagnostic_report("骨量减少", loinc=QCT_STUDY)],
            True,
            id="REC-SPINE-XR a QCT report does not satisfy",
        ),
        pytest.param(
            [
                diagnostic_report(loinc=XR_THORACIC),
                diagnostic_report("骨量减少", loinc=None, text="腰椎定量CT骨密度测定"),
            ],
            True,
            id="REC-SPINE-XR thoracic XR + lumbar QCT report: the QCT does not cover the lumbar spine",
        ),
    ],
)
def test_rec_spine_xr_satisfied_by_thoracic_and_lumbar_imaging(resources: list[Resource], card: bool) -> None:
    findings = _findings(*resources)
    assert ("spine-radiograph-recommended" in _topics(findings)) is card


@pytest.mark.parametrize(
    "resources",
    [
        pytest.param([diagnostic_report(loinc=XR_THORACIC)], id="REC-SPINE-XR thoracic only: partly covered"),
        pytest.param([diagnostic_report(loinc=XR_LUMBAR)], id="REC-SPINE-XR lumbar only: partly covered"),
    ],
)
def test_rec_spine_xr_partly_covered_spine_is_shown(resources: list[Resource]) -> None:
    finding = _finding(_findings(*resources), "spine-radiograph-recommended")
    assert "spine-partly-covered" in finding.notes
    assert {e.source for e in finding.evidence} == {f"DiagnosticReport/{r['id']}" for r in resources}


def test_rec_spine_xr_order_is_a_draft_service_request() -> None:
    card = _card([OLD_WOMAN], "spine-radiograph-recommended")
    [request] = _ordered(card)
    assert _loinc(request) == XR_SPINE
    assert "REC-SPINE-XR" in " ".join(n["text"] for n in request["note"])
    assert card["selectionBehavior"]


# --- REC-BMD -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "report",
    [
        pytest.param(
            diagnostic_report("胸腰椎骨质疏松改变", id="xr"), id="REC-BMD 骨质疏松改变 on a spine XR"
        ),
        pytest.param(diagnostic_report("骨质密度减低", id="xr"), id="REC-BMD 骨质密度减低 on a spine XR"),
        pytest.param(diagnostic_report("diffuse osteopenia", id="xr"), id="REC-BMD osteopenia on a spine XR"),
        pytest.param(
            diagnostic_report("骨质密度减低", loinc=XR_PELVIS, id="xr"), id="REC-BMD bone loss on a pelvis XR"
        ),
        pytest.param(
            diagnostic_report("骨质疏松改变", loinc=None, text="骨盆平片", category="RX", id="xr"),
            id="REC-BMD bone loss on a radiograph known by text and RX category",
        ),
    ],
)
def test_rec_bmd_radiograph_suggesting_bone_loss_without_bmd(report: Resource) -> None:
    finding = _finding(_findings(report), "bmd-measurement-recommended")
    assert finding.rules == ("REC-BMD",)
    assert [PROPOSED_ORDERS[o.kind].loinc for o in finding.orders] == [DXA_STUDY]
    [row] = finding.evidence
    assert row.source == "DiagnosticReport/xr"
    assert row.quote  # the report text that suggested bone loss is shown


@pytest.mark.parametrize(
    ("bmd", "card"),
    [
        pytest.param([], True, id="REC-BMD no BMD on record: card"),
        pytest.param(
            [t_score(-1.5, when="2024-06-01")], False, id="REC-BMD DXA 365 days before the XR: none"
        ),
        pytest.param(
            [t_score(-1.5, when="2024-05-31")], False, id="REC-BMD DXA 366 days before the XR: none"
        ),
        pytest.param([t_score(-1.5, when="2021-01-01")], False, id="REC-BMD DXA years before the XR: none"),
        pytest.param([t_score(-1.5, when="2025-06-01")], False, id="REC-BMD DXA the same day: none"),
        pytest.param([t_score(-1.5, when="2026-02-01")], False, id="REC-BMD DXA after the XR: none"),
        pytest.param([qct(100.0, when="2026-02-01")], False, id="REC-BMD QCT after the XR: none"),
        pytest.param(
            [diagnostic_report("骨量减少", loinc=DXA_STUDY, text="双能X线骨密度测定", when="2026-02-01")],
            False,
            id="REC-BMD DXA report after the XR: none",
        ),
    ],
)
def test_rec_bmd_answered_by_any_bmd_on_record(bmd: list[Resource], card: bool) -> None:
    findings = _findings(diagnostic_report("骨质疏松改变", when="2025-06-01"), *bmd)
    assert ("bmd-measurement-recommended" in _topics(findings)) is card


@pytest.mark.parametrize(
    "report",
    [
        pytest.param(
            diagnostic_report("骨量减少", loinc=DXA_STUDY, text="双能X线骨密度测定"),
            id="REC-BMD DXA report (38268-9, 双能X线) saying 骨量减少 is not a radiograph",
        ),
        pytest.param(
            diagnostic_report("骨量减少", loinc=None, text="双能X线骨密度测定"),
            id="REC-BMD DXA report known by text only is not a radiograph",
        ),
        pytest.param(
            diagnostic_report("Osteopenia.", loinc=None, text="DXA bone density", category="RAD"),
            id="REC-BMD English DXA report saying osteopenia is not a radiograph",
        ),
    ],
)
def test_rec_bmd_a_bmd_report_is_not_a_radiograph(report: Resource) -> None:
    assert "bmd-measurement-recommended" not in _topics(_findings(report))


@pytest.mark.parametrize(
    ("reason_resource", "reason"),
    [
        pytest.param(
            condition(snomed="298382003"), "scoliosis", id="REC-BMD with scoliosis orders QCT (REC-QCT)"
        ),
        pytest.param(bmi(17.0), "low-weight", id="REC-BMD with BMI 17 orders QCT (REC-QCT)"),
        pytest.param(
            condition(snomed="238136002"),
            "severe-obesity",
            id="REC-BMD with severe obesity orders QCT (REC-QCT)",
        ),
    ],
)
def test_rec_bmd_orders_qct_when_dxa_is_unreliable(reason_resource: Resource, reason: str) -> None:
    resources = [diagnostic_report("骨质疏松改变"), reason_resource]
    findings = _findings(*resources)
    finding = _finding(findings, "bmd-measurement-recommended")
    assert finding.rules == ("REC-BMD", "REC-QCT")
    assert f"dxa-unreliable-{reason}" in finding.notes
    assert [PROPOSED_ORDERS[o.kind].loinc for o in finding.orders] == [QCT_STUDY]
    assert "qct-recommended" not in _topics(findings)  # one card, one order
    [request] = _ordered(_card([OLD_WOMAN, *resources], "bmd-measurement-recommended"))
    assert _loinc(request) == QCT_STUDY
    assert _body_sites(request) == {"122496007"}


def test_rec_bmd_order_is_a_draft_dxa_service_request() -> None:
    [request] = _ordered(_card([OLD_WOMAN, diagnostic_report("骨质疏松改变")], "bmd-measurement-recommended"))
    assert _loinc(request) == DXA_STUDY


# --- REC-QCT -------------------------------------------------------------------------------------------

DXA_ON_RECORD = t_score(-1.5, when="2025-06-01")


@pytest.mark.parametrize(
    ("value", "reason", "setting"),
    [
        pytest.param(18.4, "low-weight", "OSTEO_CDS_LOW_BMI", id="REC-QCT BMI 18.4 is low weight: card"),
        pytest.param(18.5, None, None, id="REC-QCT BMI 18.5: no card"),
        pytest.param(34.9, None, None, id="REC-QCT BMI 34.9: no card"),
        pytest.param(
            35.0, "severe-obesity", "OSTEO_CDS_SEVERE_OBESITY_BMI", id="REC-QCT BMI 35.0 severe obesity"
        ),
    ],
)
def test_rec_qct_bmi_boundaries(value: float, reason: str | None, setting: str | None) -> None:
    findings = _findings(DXA_ON_RECORD, bmi(value, id="bmi"))
    if reason is None:
        assert "qct-recommended" not in _topics(findings)
        return
    finding = _finding(findings, "qct-recommended")
    assert "REC-QCT" in finding.rules
    assert f"dxa-unreliable-{reason}" in finding.notes
    assert setting in _setting_names(finding)
    assert "Observation/bmi" in {e.source for e in finding.evidence}
    assert [(PROPOSED_ORDERS[o.kind].loinc, PROPOSED_ORDERS[o.kind].body_site) for o in finding.orders] == [
        (QCT_STUDY, "122496007")
    ]


@pytest.mark.parametrize(
    ("resources", "reason"),
    [
        pytest.param(
            [bmi(18.0, loinc=None, code=BMI_CODE)], "low-weight", id="REC-QCT BMI by the local code map"
        ),
        pytest.param(
            [
                observation(loinc="29463-7", value=40.0, unit_code="kg", when=RECENT),
                observation(loinc="8302-2", value=160.0, unit_code="cm", when=RECENT),
            ],
            "low-weight",
            id="REC-QCT BMI derived from 40 kg and 160 cm (15.6)",
        ),
        pytest.param(
            [
                observation(loinc="29463-7", value=60.0, unit_code="kg", when=RECENT),
                observation(loinc="8302-2", value=160.0, unit_code="cm", when=RECENT),
            ],
            None,
            id="REC-QCT BMI derived from 60 kg and 160 cm (23.4): no card",
        ),
        pytest.param(
            [bmi(17.0, when="2024-01-01"), bmi(22.0, when="2025-01-01")],
            None,
            id="REC-QCT the latest BMI decides (17 then 22): no card",
        ),
        pytest.param([condition(snomed="238136002")], "severe-obesity", id="REC-QCT coded severe obesity"),
        pytest.param([condition(icd=(ICD10_CM, "E66.01"))], "severe-obesity", id="REC-QCT ICD-10-CM E66.01"),
        pytest.param([condition(snomed="298382003")], "scoliosis", id="REC-QCT coded scoliosis"),
        pytest.param([condition(snomed="8847002")], "spine-degeneration", id="REC-QCT coded spondylosis"),
        pytest.param(
            [diagnostic_report("胸腰椎侧弯")],
            "scoliosis",
            id="REC-QCT scoliosis stated on a spine radiograph",
        ),
        pytest.param(
            [diagnostic_report("腰椎退行性变")],
            "spine-degeneration",
            id="REC-QCT degeneration stated on a spine radiograph",
        ),
    ],
)
def test_rec_qct_reasons_dxa_is_unreliable(resources: list[Resource], reason: str | None) -> None:
    findings = _findings(DXA_ON_RECORD, *resources)
    if reason is None:
        assert "qct-recommended" not in _topics(findings)
        return
    finding = _finding(findings, "qct-recommended")
    assert f"dxa-unreliable-{reason}" in finding.notes
    assert "qct-radiation" in finding.notes  # with a clinically indicated CT where possible, low dose


@pytest.mark.parametrize(
    ("resources", "card"),
    [
        pytest.param([DXA_ON_RECORD, bmi(17.0)], True, id="REC-QCT DXA on record, no QCT: card"),
        pytest.param(
            [DXA_ON_RECORD, bmi(17.0), qct(100.0, when="2025-01-01")], False, id="REC-QCT recent QCT: no card"
        ),
        pytest.param(
            [DXA_ON_RECORD, bmi(17.0), qct(100.0, when="2022-01-01")],
            True,
            id="REC-QCT QCT 4 years ago: card",
        ),
        pytest.param([bmi(17.0)], False, id="REC-QCT no DXA on record: no card (a choice)"),
        pytest.param(
            [condition(snomed="298382003")], False, id="REC-QCT scoliosis, no DXA: no card (a choice)"
        ),
    ],
)
def test_rec_qct_needs_dxa_on_record_and_no_recent_qct(resources: list[Resource], card: bool) -> None:
    assert ("qct-recommended" in _topics(_findings(*resources))) is card


def test_rec_qct_thresholds_are_settings() -> None:
    resources = [DXA_ON_RECORD, bmi(19.0)]
    assert "qct-recommended" not in _topics(_findings(*resources))
    finding = _finding(_findings(*resources, settings=_settings(low_bmi=20.0)), "qct-recommended")
    assert _setting_names(finding)["OSTEO_CDS_LOW_BMI"] == "20.0"
    obese = [DXA_ON_RECORD, bmi(33.0)]
    assert "qct-recommended" not in _topics(_findings(*obese))
    finding = _finding(_findings(*obese, settings=_settings(severe_obesity_bmi=32.5)), "qct-recommended")
    assert _setting_names(finding)["OSTEO_CDS_SEVERE_OBESITY_BMI"] == "32.5"


def test_rec_qct_order_is_lumbar_qct() -> None:
    [request] = _ordered(_card([OLD_WOMAN, DXA_ON_RECORD, bmi(17.0)], "qct-recommended"))
    assert _loinc(request) == QCT_STUDY
    assert _body_sites(request) == {"122496007"}


# --- REC-FOREARM / DXA-2 -----------------------------------------------------------------------------

SPINE_AND_HIP = [t_score(-1.5, LUMBAR_T, when=RECENT), t_score(-1.8, NECK_T, when=RECENT)]


@pytest.mark.parametrize(
    ("resources", "card"),
    [
        pytest.param(
            [*SPINE_AND_HIP, condition(icd="Z98.1")], True, id="REC-FOREARM spinal fusion ICD-10 Z98.1: card"
        ),
        pytest.param(
            [*SPINE_AND_HIP, condition(icd=(ICD10_CM, "Z98.1"))], True, id="REC-FOREARM ICD-10-CM Z98.1: card"
        ),
        pytest.param(
            [*SPINE_AND_HIP, procedure(snomed="55705006")],
            True,
            id="REC-FOREARM spinal fusion 55705006: card",
        ),
        pytest.param(
            [*SPINE_AND_HIP, procedure(snomed="55705006"), t_score(-2.0, FOREARM_T_LEFT, when=RECENT)],
            False,
            id="REC-FOREARM forearm measured after the fusion: no card",
        ),
        pytest.param(
            [*SPINE_AND_HIP, procedure(snomed="55705006"), t_score(-2.0, FOREARM_T_LEFT, when="2019-06-01")],
            True,
            id="REC-FOREARM forearm measured only before the fusion: card",
        ),
        pytest.param(
            [
                t_score(-1.5, LUMBAR_T, when=RECENT),
                t_score(-1.8, NECK_T_RIGHT, when=RECENT),
                condition(icd=(ICD10_CM, "Z96.642")),
            ],
            False,
            id="REC-FOREARM left hip prosthesis, right hip measured: no card",
        ),
        pytest.param(
            [
                t_score(-1.5, LUMBAR_T, when=RECENT),
                t_score(-1.8, NECK_T_RIGHT, when=RECENT),
                procedure(snomed="52734007", body_site=LEFT),
            ],
            False,
            id="REC-FOREARM left hip replacement (procedure), right hip measured: no card",
        ),
        pytest.param(
            [
                t_score(-1.5, LUMBAR_T, when=RECENT),
                t_score(-1.8, NECK_T_LEFT, when=RECENT),
                condition(icd=(ICD10_CM, "Z96.642")),
            ],
            True,
            id="REC-FOREARM left hip prosthesis, only the left hip measured: card",
        ),
        pytest.param(
            [*SPINE_AND_HIP, condition(icd=(ICD10_CM, "Z96.643"))],
            True,
            id="REC-FOREARM bilateral hip prostheses: card",
        ),
        pytest.param([condition(icd="Z98.1")], False, id="REC-FOREARM fusion but no DXA: no card (a choice)"),
        pytest.param(SPINE_AND_HIP, False, id="REC-FOREARM spine and hip usable: no card"),
    ],
)
def test_rec_forearm_when_spine_or_hip_unusable_and_no_forearm(resources: list[Resource], card: bool) -> None:
    findings = _findings(*resources, who=OLD_MAN)
    assert ("forearm-dxa-recommended" in _topics(findings)) is card
    if card:
        finding = _finding(findings, "forearm-dxa-recommended")
        assert {"REC-FOREARM", "DXA-2"} <= set(finding.rules)
        assert any(n.startswith("site-unusable-") for n in finding.notes)


def test_rec_forearm_order_is_dxa_of_the_distal_radius() -> None:
    card = _card([OLD_MAN, *SPINE_AND_HIP, condition(icd="Z98.1")], "forearm-dxa-recommended")
    [request] = _ordered(card)
    assert _loinc(request) == DXA_STUDY
    assert _body_sites(request) == {"75129005"}
    assert any("non-dominant" in note["text"] for note in request["note"])  # CONTRACT.md: the side in note


# --- DXA-5 ----------------------------------------------------------------------------------------------


def _device(id: str, manufacturer: str, model: str) -> Resource:
    return {
        "resourceType": "Device",
        "id": id,
        "manufacturer": manufacturer,
        "deviceName": [{"name": model, "type": "model-name"}],
    }


@pytest.mark.parametrize(
    ("resources", "card"),
    [
        pytest.param(
            [
                t_score(-1.5, when=RECENT, device="Hologic Horizon A"),
                t_score(-1.4, when="2023-06-01", device="GE Lunar iDXA"),
            ],
            True,
            id="DXA-5 different device displays: cross-device card",
        ),
        pytest.param(
            [
                t_score(-1.5, when=RECENT, device="Device/d1"),
                t_score(-1.4, when="2023-06-01", device="Device/d2"),
            ],
            True,
            id="DXA-5 different device references: cross-device card",
        ),
        pytest.param(
            [
                _device("d1", "GE Healthcare", "Lunar iDXA"),
                _device("d2", "Hologic", "Horizon A"),
                t_score(-1.5, when=RECENT, device="Device/d1"),
                t_score(-1.4, when="2023-06-01", device="Device/d2"),
            ],
            True,
            id="DXA-5 Devices of different manufacturers: cross-device card",
        ),
        pytest.param(
            [
                t_score(-1.5, when=RECENT, device="GE Lunar iDXA"),
                t_score(-1.4, when="2023-06-01", device="GE Lunar iDXA"),
            ],
            False,
            id="DXA-5 same device display: none",
        ),
        pytest.param(
            [
                t_score(-1.5, when=RECENT, device="Device/d1"),
                t_score(-1.4, when="2023-06-01", device="Device/d1"),
            ],
            False,
            id="DXA-5 same device reference: none",
        ),
        pytest.param(
            [t_score(-1.5, when=RECENT), t_score(-1.4, when="2023-06-01", device="GE Lunar iDXA")],
            False,
            id="DXA-5 device unknown on the latest exam: none",
        ),
        pytest.param(
            [t_score(-1.5, when=RECENT, device="GE Lunar iDXA"), t_score(-1.4, when="2023-06-01")],
            False,
            id="DXA-5 device unknown on the previous exam: none",
        ),
        pytest.param(
            [t_score(-1.5, when=RECENT, device="GE Lunar iDXA")], False, id="DXA-5 a single exam: none"
        ),
        pytest.param(
            [
                t_score(-1.5, when=RECENT),
                t_score(-1.4, when="2023-06-01", device="GE Lunar iDXA"),
                t_score(-1.3, when="2021-06-01", device="Hologic Horizon A"),
            ],
            False,
            id="DXA-5 device unknown on the latest exam, the two before differ: none",
        ),
        pytest.param(
            [
                _device("d1", "GE Healthcare", "Lunar iDXA"),
                _device("d2", "GE Healthcare", "Lunar iDXA"),
                t_score(-1.5, when=RECENT, device="Device/d1"),
                t_score(-1.4, when="2023-06-01", device="Device/d2"),
            ],
            True,
            id="DXA-5 two Devices (different Observation.device) of the same model: cross-device card",
        ),
    ],
)
def test_dxa5_latest_two_exams_from_different_devices(resources: list[Resource], card: bool) -> None:
    findings = _findings(*resources, who=OLD_MAN)
    assert ("cross-device-comparison" in _topics(findings)) is card
    if card:
        finding = _finding(findings, "cross-device-comparison")
        assert finding.rules == ("DXA-5",)
        assert finding.params["date"] == RECENT
        assert finding.params["previous_date"] == "2023-06-01"
        assert not finding.orders


# --- REC-PERIPHERAL / DX-4 -------------------------------------------------------------------------------

CALCANEUS = observation(loinc=CALCANEUS_T, value=-2.6, unit_code="{T-score}", id="calc")


@pytest.mark.parametrize(
    ("resources", "card"),
    [
        pytest.param([CALCANEUS], True, id="REC-PERIPHERAL calcaneus DXA only: card"),
        pytest.param(
            [observation(code=local("peripheral-bmd"), value=-2.6, unit_code="{T-score}", id="calc")],
            True,
            id="REC-PERIPHERAL local peripheral-bmd only: card",
        ),
        pytest.param(
            [
                observation(
                    loinc=CALCANEUS_T, value=-2.6, unit_code="{T-score}", method=(DICOM, "BDUS"), id="calc"
                )
            ],
            True,
            id="REC-PERIPHERAL QUS only: card, never called BMD",
        ),
        pytest.param(
            [CALCANEUS, t_score(-1.5)], False, id="REC-PERIPHERAL peripheral + central DXA: no card"
        ),
        pytest.param([CALCANEUS, qct(100.0)], False, id="REC-PERIPHERAL peripheral + QCT: no card"),
    ],
)
def test_rec_peripheral_only_peripheral_results(resources: list[Resource], card: bool) -> None:
    findings = _findings(*resources, who=OLD_MAN)
    assert ("peripheral-screening-only" in _topics(findings)) is card
    if card:
        finding = _finding(findings, "peripheral-screening-only")
        assert {"DX-4", "REC-PERIPHERAL"} <= set(finding.rules)
        assert {e.source for e in finding.evidence} == {"Observation/calc"}
        assert not any(e.used for e in finding.evidence)  # DX-4: screening only, never a diagnosis
        assert not [f for f in findings if f.group is Group.DIAGNOSIS]
    else:
        dx = [f for f in findings if f.group is Group.DIAGNOSIS]
        assert dx and "Observation/calc" not in {e.source for e in dx[0].evidence if e.used}


def test_rec_peripheral_qus_is_not_called_bmd() -> None:
    qus = observation(loinc=CALCANEUS_T, value=-2.6, unit_code="{T-score}", method=(DICOM, "BDUS"), id="calc")
    finding = _finding(_findings(qus, who=OLD_MAN), "peripheral-screening-only")
    assert "qus-not-bmd" in finding.notes
    assert {e.kind for e in finding.evidence} == {"qus"}


# --- REC-QCT: only a fracture within L1–L4 makes DXA unreliable (issue 17) ------------------------------


@pytest.mark.parametrize(
    ("conclusion", "counts"),
    [
        pytest.param("L1椎体压缩性骨折", True, id="REC-QCT L1 fracture: DXA unreliable"),
        pytest.param("L4椎体压缩性骨折", True, id="REC-QCT L4 fracture (last DXA level): DXA unreliable"),
        pytest.param("L5椎体压缩性骨折", False, id="REC-QCT L5 fracture, below L1-L4: not a reason"),
        pytest.param("T12椎体压缩性骨折", False, id="REC-QCT T12 fracture, above L1-L4: not a reason"),
        pytest.param("T8椎体压缩性骨折", False, id="REC-QCT T8 fracture (Xu Fang): not a reason"),
        pytest.param("T12、L1椎体压缩性骨折", True, id="REC-QCT T12 and L1 fractures: L1 is a reason"),
    ],
)
def test_rec_qct_vertebral_fracture_counts_only_within_l1_l4(conclusion: str, counts: bool) -> None:
    findings = _findings(DXA_ON_RECORD, diagnostic_report(conclusion, when=RECENT))
    qct_card = [f for f in findings if f.topic == "qct-recommended"]
    assert bool(qct_card) is counts
    if counts:
        assert "dxa-unreliable-vertebral-fracture" in qct_card[0].notes


@pytest.mark.parametrize(
    ("conclusion", "order"),
    [
        pytest.param("胸椎骨质疏松改变，T12椎体压缩性骨折", DXA_STUDY, id="REC-BMD T12 fracture only: DXA"),
        pytest.param(
            "腰椎骨质疏松改变，L2椎体压缩性骨折", QCT_STUDY, id="REC-BMD L2 fracture: QCT (REC-QCT)"
        ),
    ],
)
def test_rec_bmd_thoracic_fracture_offers_dxa(conclusion: str, order: str) -> None:
    finding = _finding(_findings(diagnostic_report(conclusion, when=RECENT)), "bmd-measurement-recommended")
    assert [PROPOSED_ORDERS[o.kind].loinc for o in finding.orders] == [order]


# REC-QCT: only a BMI of the last two years counts (consensus/lookback.py BODY_MEASURE_YEARS, a choice),
# however the record came: the query plan's `date=ge` bound, a prefetch under any key, a Bundle, a screen.
@pytest.mark.parametrize(
    ("when", "reason"),
    [
        pytest.param("2024-11-25", "severe-obesity", id="REC-QCT BMI 36 exactly two years old counts"),
        pytest.param("2024-11-24", None, id="REC-QCT BMI 36 two years and a day old does not count"),
        pytest.param("2020-01-01", None, id="REC-QCT BMI 36 from 2020 does not count"),
        pytest.param("2026-06-01", "severe-obesity", id="REC-QCT BMI 36 this year counts"),
    ],
)
def test_rec_qct_reads_only_a_recent_bmi(when: str, reason: str | None) -> None:
    findings = _findings(DXA_ON_RECORD, bmi(36.0, when=when, id="bmi"))
    qct = next((f for f in findings if f.topic == "qct-recommended"), None)
    assert (qct is not None and f"dxa-unreliable-{reason}" in qct.notes) if reason else qct is None


def test_rec_qct_an_old_bmi_does_not_outweigh_a_recent_one() -> None:
    old_obese, recent_normal = bmi(38.0, when="2021-01-01", id="old"), bmi(24.0, when="2026-01-01", id="new")
    assert not any(f.topic == "qct-recommended" for f in _findings(DXA_ON_RECORD, old_obese, recent_normal))
