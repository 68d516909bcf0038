"""Orders on record (active/draft ServiceRequests) → what they already are, by code, body site and text."""

from __future__ import annotations

from dataclasses import replace

from cds_service.facts.model import OpenOrder, OrderKind, Region
from cds_service.facts.valuesets import BODY_SITE_REGIONS, DXA_STUDY, IMAGING_STUDIES

# Orders that image both the thoracic and the lumbar spine (REC-SPINE-XR is not met by one of them alone).
_BOTH_SPINE_WORDS = (
    "胸腰椎",
    "胸腰段",
    "全脊柱",
    "thoracolumbar",
    "thoraco-lumbar",
    "thoracic and lumbar",
    "whole spine",
)
# Any spine region, for CT/MRI orders of a doubtful vertebral fracture.
_ANY_SPINE_WORDS = ("胸腰椎", "胸椎", "腰椎", "spine", "脊柱")
_CT_MR_WORDS = ("ct", "mri", "mr ", "磁共振", "核磁")
# A bone-density order names the lumbar spine (腰椎QCT) but is not spine imaging (REC-SPINE-XR).
_BMD_WORDS = ("骨密度", "dxa", "dexa", "qct", "定量ct", "bone density", "densitometry")
_QCT_WORDS = ("qct", "定量ct")
_FOREARM_WORDS = ("forearm", "前臂", "桡骨", "radius")
_FOREARM_SITES = frozenset(code for code, region in BODY_SITE_REGIONS.items() if region is Region.FOREARM)


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
    text = f" {order.text.lower()} "
    bmd = _any(text, _BMD_WORDS)
    if bmd:
        kinds.add(OrderKind.BMD)
    if _any(text, _QCT_WORDS):
        kinds.add(OrderKind.QCT)
    if _any(text, _FOREARM_WORDS):
        kinds.add(OrderKind.FOREARM_DXA)
    if not bmd and _any(text, _BOTH_SPINE_WORDS):
        kinds.add(OrderKind.SPINE_IMAGING)
    if not bmd and _any(text, _CT_MR_WORDS) and _any(text, _ANY_SPINE_WORDS):
        kinds.add(OrderKind.SPINE_CT_MR)
    return frozenset(kinds)


def _any(text: str, words: tuple[str, ...]) -> bool:
    return any(word in text for word in words)
