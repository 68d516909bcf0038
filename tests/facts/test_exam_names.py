"""Exam names as RIS systems write them (FX-6, REC-SPINE-XR): modality and region from the name alone, whole
words only (cues/exam-names.toml); an open order's text is read the same way."""

from __future__ import annotations

from typing import Any

import pytest

from cds_service.facts.exam_names import read_exam_name
from tests.builders import concept, facts_of

Resource = dict[str, Any]
WHEN = "2026-10-01"


def named_report(name: str, conclusion: str | None = None, category: str | None = None) -> Resource:
    """A DiagnosticReport known only by its name: no LOINC code, no category unless given."""
    resource: Resource = {
        "resourceType": "DiagnosticReport",
        "id": "dr1",
        "status": "final",
        "code": concept(None, name),
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": WHEN,
    }
    if conclusion is not None:
        resource["conclusion"] = conclusion
    if category is not None:
        resource["category"] = [
            {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": category}]}
        ]
    return resource


@pytest.mark.parametrize(
    ("name", "modalities", "regions"),
    [
        # Chinese RIS names: modality glued to the region
        pytest.param("MR腰椎平扫", {"mr"}, {"lumbar"}, id="FX-6 MR腰椎平扫 is a lumbar MRI"),
        pytest.param(
            "CT胸部平扫", {"ct"}, {"rib"}, id="FX-6 CT胸部平扫 is a chest CT, not the thoracic spine"
        ),
        pytest.param(
            "DR腰椎正侧位", {"radiograph"}, {"lumbar"}, id="REC-SPINE-XR DR腰椎正侧位 lumbar radiograph"
        ),
        pytest.param("腰椎MRI增强", {"mr"}, {"lumbar"}, id="FX-6 腰椎MRI增强 is a lumbar MRI"),
        pytest.param(
            "胸腰段CT三维重建",
            {"ct"},
            {"thoracic", "lumbar"},
            id="FX-6 胸腰段CT三维重建 both parts",
        ),
        pytest.param("CR胸椎正侧位", {"radiograph"}, {"thoracic"}, id="REC-SPINE-XR CR胸椎正侧位 thoracic"),
        pytest.param("胸椎X线", {"radiograph"}, {"thoracic"}, id="REC-SPINE-XR 胸椎X线 thoracic radiograph"),
        pytest.param("腰椎核磁共振", {"mr"}, {"lumbar"}, id="FX-6 核磁 is MRI"),
        pytest.param("胸椎磁共振检查", {"mr"}, {"thoracic"}, id="FX-6 磁共振 is MRI"),
        pytest.param(
            "胸腰椎平片", {"radiograph"}, {"thoracic", "lumbar"}, id="REC-SPINE-XR 平片 is a radiograph"
        ),
        pytest.param("右髋关节MR平扫", {"mr"}, {"hip"}, id="FX-6 右髋关节MR平扫 hip MRI"),
        pytest.param("左腕关节CT", {"ct"}, {"distal-radius"}, id="FX-6 左腕关节CT wrist CT"),
        pytest.param("右肩关节MRI", {"mr"}, {"proximal-humerus"}, id="FX-6 右肩关节MRI shoulder MRI"),
        pytest.param("骨盆CT平扫", {"ct"}, {"pelvis", "hip"}, id="FX-6 a pelvis CT shows the hips"),
        pytest.param("全脊柱MRI", {"mr"}, {"thoracic", "lumbar"}, id="FX-6 全脊柱MRI whole spine"),
        # English names
        pytest.param("MR Lumbar spine", {"mr"}, {"lumbar"}, id="FX-6 MR Lumbar spine (LOINC display)"),
        pytest.param(
            "XR Thoracic spine 2 Views", {"radiograph"}, {"thoracic"}, id="REC-SPINE-XR XR Thoracic"
        ),
        pytest.param(
            "Radiography of lumbar and thoracic spine",
            {"radiograph"},
            {"thoracic", "lumbar"},
            id="REC-SPINE-XR radiography of lumbar and thoracic spine",
        ),
        pytest.param("CT L-spine w/o contrast", {"ct"}, {"lumbar"}, id="FX-6 CT L-spine"),
        pytest.param("MRI hip right", {"mr"}, {"hip"}, id="FX-6 MRI hip right"),
        pytest.param("SPECT/CT bone", {"nuclear"}, set(), id="DX-8 SPECT/CT is nuclear medicine, not a CT"),
        pytest.param("DXA lumbar spine", {"bone-density"}, {"lumbar"}, id="REC-SPINE-XR DXA is bone density"),
        pytest.param(
            "腰椎定量CT骨密度", {"bone-density"}, {"lumbar"}, id="REC-SPINE-XR QCT is bone density, no CT"
        ),
        pytest.param(
            "DXA VFA", {"bone-density", "vfa"}, {"thoracic", "lumbar"}, id="REC-SPINE-XR VFA both parts"
        ),
        # near-misses: bare substrings are not words
        pytest.param("Lactate, venous", set(), set(), id="FX-6 near-miss Lactate is no CT"),
        pytest.param(
            "Doctor note: thoracic and lumbar back pain", set(), set(), id="REC-SPINE-XR near-miss Doctor"
        ),
        pytest.param("Mr Wang follow-up", set(), set(), id="FX-6 near-miss the title Mr is no MRI"),
        pytest.param("Dr. Li consultation", set(), set(), id="REC-SPINE-XR near-miss the title Dr is no DR"),
        pytest.param(
            "CT Thoracic aorta", {"ct"}, set(), id="REC-SPINE-XR near-miss thoracic aorta is no spine"
        ),
        pytest.param(
            "MR lumbar plexus", {"mr"}, set(), id="REC-SPINE-XR near-miss lumbar plexus is no spine"
        ),
        pytest.param("Direct bilirubin", set(), set(), id="FX-6 near-miss Direct is no DR or CT"),
        pytest.param("Electrocardiogram", set(), set(), id="FX-6 near-miss Electrocardiogram is no ECT"),
        pytest.param("Spectacle prescription", set(), set(), id="FX-6 near-miss Spectacle is no SPECT"),
        pytest.param("Pet allergy", set(), set(), id="FX-6 near-miss Pet is no PET (capitals only)"),
    ],
)
def test_exam_name_modality_and_region(name: str, modalities: set[str], regions: set[str]) -> None:
    exam = read_exam_name(name)
    assert exam.modalities == modalities
    assert exam.regions - {"thoracolumbar"} == regions


@pytest.mark.parametrize(
    ("name", "conclusion", "site"),
    [
        pytest.param(
            "MR腰椎平扫", "L1椎体新鲜压缩骨折。", "vertebra", id="FX-6 MR腰椎平扫 fresh fracture read"
        ),
        pytest.param("CT胸部平扫", "右侧第5肋骨骨折。", "rib", id="FX-6 CT胸部平扫 rib fracture read"),
        pytest.param("DR腰椎正侧位", "L2椎体压缩性骨折。", "vertebra", id="FX-6 DR腰椎正侧位 fracture read"),
        pytest.param("腰椎MRI增强", "L3椎体压缩骨折。", "vertebra", id="FX-6 腰椎MRI增强 fracture read"),
        pytest.param("胸腰段CT三维重建", "T12椎体压缩骨折。", "vertebra", id="FX-6 胸腰段CT三维重建 read"),
        pytest.param(
            "MR Lumbar spine WO contrast", "Acute compression fracture of L1.", "vertebra", id="FX-6 MR en"
        ),
        pytest.param("核磁 腰椎", "L1椎体压缩骨折。", "vertebra", id="FX-6 核磁 fracture read"),
    ],
)
def test_exam_name_alone_makes_an_imaging_report(name: str, conclusion: str, site: str) -> None:
    facts = facts_of([named_report(name, conclusion)])
    assert [f.site for f in facts.fractures] == [site]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("Lactate, venous", id="FX-6 near-miss Lactate report is not imaging"),
        pytest.param(
            "Doctor note: thoracic and lumbar back pain", id="FX-6 near-miss doctor note is not imaging"
        ),
        pytest.param("Mr Zhang discharge summary", id="FX-6 near-miss Mr is not imaging"),
    ],
)
def test_non_imaging_name_is_not_read(name: str) -> None:
    facts = facts_of([named_report(name, "L1椎体压缩骨折。")])
    assert facts.fractures == []
    assert facts.spine_imaging == []


@pytest.mark.parametrize(
    ("name", "category", "parts"),
    [
        pytest.param(
            "DR腰椎正侧位", None, {"lumbar"}, id="REC-SPINE-XR DR腰椎正侧位 covers the lumbar spine"
        ),
        pytest.param("CR胸椎正侧位", None, {"thoracic"}, id="REC-SPINE-XR CR胸椎正侧位 covers the thoracic"),
        pytest.param("MR腰椎平扫", None, {"lumbar"}, id="REC-SPINE-XR MR腰椎平扫 covers the lumbar spine"),
        pytest.param("胸腰段CT三维重建", None, {"thoracic", "lumbar"}, id="REC-SPINE-XR 胸腰段CT both"),
        pytest.param("CT胸部平扫", None, None, id="REC-SPINE-XR near-miss chest CT covers no spine part"),
        pytest.param(
            "Doctor note: thoracic and lumbar back pain",
            "RAD",
            None,
            id="REC-SPINE-XR near-miss radiology-category note without a spine word covers nothing",
        ),
        pytest.param("腰椎定量CT骨密度", None, None, id="REC-SPINE-XR near-miss QCT covers no spine part"),
    ],
)
def test_spine_coverage_from_the_name(name: str, category: str | None, parts: set[str] | None) -> None:
    facts = facts_of([named_report(name, category=category)])
    assert [set(s.parts) for s in facts.spine_imaging] == ([parts] if parts else [])
