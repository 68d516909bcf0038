"""Orders on record (active/draft ServiceRequests) → what they already are, by code, body site and text."""

from __future__ import annotations

from dataclasses import replace

from cds_service.facts.exam_names import SPINE_PARTS, read_exam_name
from cds_service.facts.model import OpenOrder, OrderKind, Region
from cds_service.facts.valuesets import BODY_SITE_REGIONS, DXA_STUDY, IMAGING_STUDIES

# An order's text is read as an exam name (cues/exam-names.toml): whole words, so "Lactate" is no CT and
# "Doctor note: thoracic and lumbar back pain" no spine imaging.
_QCT_WORDS = ("qct", "定量ct")
_FOREARM_SITES = frozenset(code for code, region in BODY_SITE_REGIONS.items() if region is Region.FOREARM)
# CT or MRI of a non-spine region (REC-CT-MRI); a pelvis study shows the hips (its regions say so).
_CT_MR_REGION_KINDS = {
    "hip": OrderKind.HIP_CT_MR,
    "distal-radius": OrderKind.WRIST_CT_MR,
    "proximal-humerus": OrderKind.SHOULDER_CT_MR,
    "pelvis": OrderKind.PELVIS_CT_MR,
    "rib": OrderKind.CHEST_CT_MR,
}


def with_kinds(order: OpenOrder) -> OpenOrder:
    """The order tagged with what it already is: by any of its codes, else by the words of its text."""
    return replace(order, kinds=order_kinds(order))


def order_kinds(order: OpenOrder) -> frozenset[OrderKind]:
    codes = {code for _, code in order.codes}  # any system: a local code may reuse a LOINC number
    kinds: set[OrderKind] = set()
    for code in codes:
        if code in IMAGING_STUDIES:
            kinds |= IMAGING_STUDIES[code].order_kinds
    if DXA_STUDY in codes and _FOREARM_SITES & set(order.body_sites):
        kinds.add(OrderKind.FOREARM_DXA)  # the order the forearm card would propose
    exam = read_exam_name(order.text)
    if exam.bone_density:
        kinds.add(OrderKind.BMD)
        if any(word in order.text.lower() for word in _QCT_WORDS):
            kinds.add(OrderKind.QCT)
    if "distal-radius" in exam.regions and (exam.bone_density or not exam.imaging):
        kinds.add(OrderKind.FOREARM_DXA)
    if not exam.bone_density and exam.spine_parts >= SPINE_PARTS:
        kinds.add(OrderKind.SPINE_IMAGING)
    if exam.cross_sectional and exam.spine_parts:
        kinds.add(OrderKind.SPINE_CT_MR)
    if exam.cross_sectional:
        kinds |= {kind for region, kind in _CT_MR_REGION_KINDS.items() if region in exam.regions}
    return frozenset(kinds)
