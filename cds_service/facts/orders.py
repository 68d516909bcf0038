"""ServiceRequests → `OpenOrder`s tagged with what they are (`OrderKind`s), by code, body site and text.

One reader for the orders on the chart (patient-view: no duplicate is proposed) and for the draft orders of
the order hooks (`context.draftOrders`): LOINC (`IMAGING_STUDIES`), CPT (`CPT_ORDERS`, CPT system only), the
code map's order concepts, and order words in Chinese and English.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from cds_service.facts.codemap import CodeMap
from cds_service.facts.exam_names import SPINE_PARTS, names_pet, read_exam_name
from cds_service.facts.fhirpath import (
    JsonObject,
    as_dict,
    as_list,
    as_str,
    codings,
    concept_text,
    reference_of,
    refers_to,
    resource_key,
)
from cds_service.facts.model import OpenOrder, OrderKind, Region
from cds_service.facts.valuesets import BODY_SITE_REGIONS, CPT, CPT_ORDERS, DXA_STUDY, IMAGING_STUDIES, SNOMED

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

# Order hooks (issue 15). English words match whole words only ("ct" is not in "fracture"); Chinese words
# as written. DX-4: peripheral methods; QUS is not BMD at all.
_QUS_WORDS = ("qus", "超声骨密度", "骨超声", "定量超声", "ultrasound bone", "bone ultrasound", "sonometry")
_PERIPHERAL_WORDS = (
    "pdxa",
    "pqct",
    "外周",
    "跟骨",
    "peripheral",
    "calcaneus",
    "heel",
    "single-energy",
    "单能",
    "radiographic absorptiometry",
    "x线吸收法",
)
_DXA_WORDS = ("dxa", "dexa", "双能x线", "双能x射线", "dual-energy", "dual energy")
_RADIOGRAPH_WORDS = ("正侧位", "x线片", "dr", "x-ray", "xray", "radiograph", "radiographs", "平片")
_SPINE_XR_REGION_WORDS = ("胸椎", "腰椎", "胸腰椎", "thoracic spine", "lumbar spine", "spine")
# A CT whose range reaches L1-L2 (REC-QCT-CT): chest (incl. low-dose screening), abdomen, lumbar spine.
_CT_RANGE_WORDS = (
    "胸部ct",
    "胸部 ct",
    "低剂量ct",
    "低剂量 ct",
    "肺癌筛查",
    "ct胸部",
    "ct腹部",
    "ct腰椎",
    "腹部ct",
    "腹部 ct",
    "全腹ct",
    "腰椎ct",
    "腰椎 ct",
    "ct chest",
    "chest ct",
    "ct thorax",
    "ct abdomen",
    "abdominal ct",
    "ct lumbar",
    "low-dose ct",
    "low dose ct",
    "ldct",
)
_CONTRAST_WORDS = ("增强", "造影", "with contrast", "contrast-enhanced", "enhanced", "cta", "angiography")

# spine-imaging-on-record: a reason that makes new spine radiographs a clinical question, not a repeat.
_NEW_REASON_WORDS = (
    "pain",
    "painful",
    "trauma",
    "injury",
    "fall",
    "falls",
    "fell",
    "fracture",
    "fractures",
    "deformity",
    "kyphosis",
    "height loss",
    "loss of height",
    "疼痛",
    "痛",
    "外伤",
    "创伤",
    "跌倒",
    "摔倒",
    "摔伤",
    "骨折",
    "驼背",
    "畸形",
    "身高变矮",
    "身高降低",
    "身高下降",
)

# The code map's order concepts (CONTRACT.md "Local codes"; README code-map section).
ORDER_CONCEPTS: dict[str, frozenset[OrderKind]] = {
    "order-central-dxa": frozenset({OrderKind.BMD, OrderKind.CENTRAL_DXA}),
    "order-qct": frozenset({OrderKind.BMD, OrderKind.QCT}),
    "order-forearm-dxa": frozenset({OrderKind.BMD, OrderKind.FOREARM_DXA}),
    "order-peripheral-bmd": frozenset({OrderKind.BMD, OrderKind.PERIPHERAL_BMD}),
    "order-qus": frozenset({OrderKind.QUS}),
    "order-spine-radiograph": frozenset({OrderKind.SPINE_RADIOGRAPH}),
    "order-ct-l1-l2": frozenset({OrderKind.CT_L1_L2}),
}


def read_order(resource: JsonObject, code_map: CodeMap | None = None) -> OpenOrder | None:
    """An active or draft ServiceRequest as a tagged `OpenOrder`; None for any other status."""
    status = as_str(resource.get("status"))
    if status not in ("active", "draft"):
        return None
    reasons = [concept_text(r) for r in as_list(resource.get("reasonCode"))]
    reasons += [
        as_str((as_dict(r) or {}).get("display")) or "" for r in as_list(resource.get("reasonReference"))
    ]
    reasons += [as_str((as_dict(n) or {}).get("text")) or "" for n in as_list(resource.get("note"))]
    order = OpenOrder(
        source=resource_key(resource),
        codes=tuple((system, code) for system, code, _ in codings(resource.get("code"))),
        text=concept_text(resource.get("code")),
        body_sites=tuple(
            code
            for site in as_list(resource.get("bodySite"))
            for system, code, _ in codings(site)
            if system == SNOMED
        ),
        status=status,
        new_clinical_reason=_has_word(" ".join(reasons).lower(), _NEW_REASON_WORDS),
    )
    return with_kinds(order, code_map)


def read_drafts(
    resources: Iterable[Mapping[str, Any]], patient_id: str, code_map: CodeMap | None = None
) -> list[OpenOrder]:
    """The draft orders of an order hook (`context.draftOrders`): ServiceRequests only (any other resource is
    ignored, never an error), of this patient (a draft without a subject is the session's patient)."""
    drafts = []
    for resource in resources:
        if resource.get("resourceType") != "ServiceRequest":
            continue
        subject = reference_of(resource.get("subject"))
        if subject is not None and not refers_to(subject, "Patient", patient_id):
            continue
        order = read_order(dict(resource), code_map)
        if order is not None:
            drafts.append(order)
    return drafts


def with_kinds(order: OpenOrder, code_map: CodeMap | None = None) -> OpenOrder:
    """The order tagged with what it already is: by any of its codes, else by the words of its text."""
    return replace(order, kinds=order_kinds(order, code_map))


def order_kinds(order: OpenOrder, code_map: CodeMap | None = None) -> frozenset[OrderKind]:
    codes = {code for _, code in order.codes}  # any system: a local code may reuse a LOINC number
    kinds: set[OrderKind] = set()
    for code in codes:
        if code in IMAGING_STUDIES:
            kinds |= IMAGING_STUDIES[code].order_kinds
    for system, code in order.codes:
        if system == CPT and code in CPT_ORDERS:
            kinds |= CPT_ORDERS[code]
        concept = code_map.concept_of(system, code) if code_map else None
        if concept in ORDER_CONCEPTS:
            kinds |= ORDER_CONCEPTS[concept]
    if DXA_STUDY in codes and _FOREARM_SITES & set(order.body_sites):
        kinds.add(OrderKind.FOREARM_DXA)  # the order the forearm card would propose
    elif (
        DXA_STUDY in codes
        and not order.body_sites
        and "distal-radius" not in read_exam_name(order.text).regions
    ):
        kinds.add(OrderKind.CENTRAL_DXA)  # the generic DXA study, no forearm named: spine and hip
    exam = read_exam_name(order.text)
    text = f" {order.text.lower()} "
    bmd = exam.bone_density
    if bmd:
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
    if names_pet(order.text):
        kinds.add(OrderKind.PET_CT)  # REC-CT-MRI: a PET-CT a report advised is not proposed twice
    kinds |= _hook_kinds(text, bmd, kinds)
    return frozenset(kinds)


def _hook_kinds(text: str, bmd: bool, kinds: set[OrderKind]) -> set[OrderKind]:
    """The kinds the order hooks add, from the order's words (whole words for English)."""
    found: set[OrderKind] = set()
    if _has_word(text, _QUS_WORDS):
        found.add(OrderKind.QUS)
    elif bmd and _has_word(text, _PERIPHERAL_WORDS):
        found.add(OrderKind.PERIPHERAL_BMD)
    elif (
        _has_word(text, _DXA_WORDS)
        and OrderKind.QCT not in kinds
        and OrderKind.FOREARM_DXA not in kinds
        and OrderKind.PERIPHERAL_BMD not in kinds
    ):
        found.add(OrderKind.CENTRAL_DXA)
    if not bmd and _has_word(text, _RADIOGRAPH_WORDS) and _has_word(text, _SPINE_XR_REGION_WORDS):
        found.add(OrderKind.SPINE_RADIOGRAPH)
    if not bmd and _has_word(text, _CT_RANGE_WORDS) and not _has_word(text, _CONTRAST_WORDS):
        found.add(OrderKind.CT_L1_L2)
    return found


_WORD_PATTERNS: dict[tuple[str, ...], re.Pattern[str]] = {}


def _has_word(text: str, words: tuple[str, ...]) -> bool:
    """Any of `words` in `text`; a word starting/ending with an ASCII letter or digit must not be glued to
    another ASCII letter there ("ct" is not in "fracture", "dr" not in "drug"); Chinese words as written."""
    pattern = _WORD_PATTERNS.get(words)
    if pattern is None:
        parts = [
            ("(?<![a-z0-9])" if w[0].isascii() and w[0].isalnum() else "")
            + re.escape(w)
            + ("(?![a-z0-9])" if w[-1].isascii() and w[-1].isalnum() else "")
            for w in words
        ]
        pattern = _WORD_PATTERNS.setdefault(words, re.compile("|".join(parts)))
    return pattern.search(text) is not None
