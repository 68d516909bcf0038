"""The order hooks' rules (CONTRACT.md "Order hooks"): the draft orders of `order-select`/`order-sign`
judged against the record. Pure: facts in, findings and suggestion plans out (cards/orders.py renders them).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date
from typing import NamedTuple

from cds_service.consensus.bmd import unusable_sites
from cds_service.consensus.findings import Evidence, Finding, OrderProposal, SettingUse
from cds_service.consensus.fractures import FractureJudgement, Verdict, fracture_row
from cds_service.consensus.lookback import months_before
from cds_service.consensus.population import Population, age_on, population_on
from cds_service.consensus.recommendations import QCT_ORDER, dxa_unreliable
from cds_service.facts.model import (
    CENTRAL_DXA_REGIONS,
    Modality,
    OpenOrder,
    OrderKind,
    PatientFacts,
    ProposedOrder,
    Region,
    Sex,
)
from cds_service.settings import ClinicalSettings

QCT_WITH_CT_ORDER = OrderProposal(ProposedOrder.QCT_LUMBAR, reason="REC-QCT-CT")
DXA_ORDER = OrderProposal(ProposedOrder.DXA, reason="DX-4")
# REC-QCT: factors that make DXA unreliable at every site vs. only at the lumbar spine (the hip stays, DXA-1).
_WHOLE_BODY_FACTORS = frozenset({"low-weight", "severe-obesity"})
_LUMBAR_DXA_LEVELS = frozenset({"L1", "L2", "L3", "L4"})
# duplicate-order: the kinds that make two BMD or spine-imaging orders the same order, and the rule of each.
_DUPLICATE_KINDS: dict[OrderKind, str] = {
    OrderKind.CENTRAL_DXA: "REC-BMD",
    OrderKind.QCT: "REC-QCT",
    OrderKind.FOREARM_DXA: "REC-FOREARM",
    OrderKind.PERIPHERAL_BMD: "DX-4",
    OrderKind.QUS: "DX-4",
    OrderKind.SPINE_RADIOGRAPH: "REC-SPINE-XR",
    OrderKind.SPINE_IMAGING: "REC-SPINE-XR",
    OrderKind.BMD: "REC-BMD",  # only when one of the two names no method (_unspecified_bmd)
}
_BMD_METHODS = frozenset(
    {OrderKind.CENTRAL_DXA, OrderKind.QCT, OrderKind.FOREARM_DXA, OrderKind.PERIPHERAL_BMD}
)


@dataclass(frozen=True)
class Suggestion:
    """One suggestion of an order card: delete the draft and/or create an order."""

    label: str  # key of the card texts' [order_suggestions]
    delete_draft: bool = False
    create: OrderProposal | None = None
    recommended: bool = False


@dataclass(frozen=True)
class OrderAdvice:
    """A finding about one draft order, and the suggestions its card carries (at most one is taken)."""

    finding: Finding
    draft: str  # "ServiceRequest/<id>"
    suggestions: tuple[Suggestion, ...] = ()


class _Record(NamedTuple):
    """What every check of a draft reads besides the draft."""

    facts: PatientFacts
    judgements: Sequence[FractureJudgement]
    drafts: Sequence[OpenOrder]  # the session's drafts (a QCT among them answers REC-QCT / REC-QCT-CT)
    clinical: ClinicalSettings
    today: date
    site_has_qct: bool


def assess_orders(
    facts: PatientFacts,
    judgements: Sequence[FractureJudgement],
    drafts: Sequence[OpenOrder],
    concerned: Collection[str],
    clinical: ClinicalSettings,
    today: date,
    *,
    site_has_qct: bool = True,
) -> list[OrderAdvice]:
    """The cards about the drafts whose source is in `concerned` (order-select: the selections; order-sign:
    every draft). `facts.open_orders` must not hold the drafts (they are not "on the chart")."""
    if facts.deceased:
        return []
    advice: list[OrderAdvice] = []
    for draft in drafts:
        if draft.source not in concerned:
            continue
        duplicate = _duplicate(draft, facts.open_orders)
        if duplicate is not None:
            advice.append(duplicate)  # the question is whether to order at all: no other card for it
            continue
        record = _Record(facts, judgements, drafts, clinical, today, site_has_qct)
        for check in (_dxa_order, _peripheral_order, _spine_radiograph_order, _ct_order):
            found = check(draft, record)
            if found is not None:
                advice.append(found)
    return advice


# --- duplicate-order ---------------------------------------------------------------------------


def _duplicate(draft: OpenOrder, chart: Sequence[OpenOrder]) -> OrderAdvice | None:
    """CONTRACT.md: a BMD or spine-imaging draft that is already an active or draft order on the chart."""
    for order in chart:
        shared: list[OrderKind] = [
            k for k in _DUPLICATE_KINDS if k is not OrderKind.BMD and k in draft.kinds and k in order.kinds
        ]
        if not shared and (_unspecified_bmd(draft) or _unspecified_bmd(order)):
            # a bone-density order that names no method ("骨密度检查") is the same as any other BMD order
            shared = [OrderKind.BMD] if OrderKind.BMD in draft.kinds & order.kinds else []
        if shared:
            rule = _DUPLICATE_KINDS[shared[0]]
            finding = Finding(
                topic="duplicate-order",
                rules=(rule,),
                evidence=(Evidence(kind="order", source=order.source, region=shared[0].value),),
                params={"order": draft.source, "existing": order.source, "existing_status": order.status},
            )
            return OrderAdvice(finding, draft.source)
    return None


# --- qct-instead-of-dxa (REC-QCT), z-score-required (POP-3) ----------------------------------------


def _dxa_order(draft: OpenOrder, record: _Record) -> OrderAdvice | None:
    facts, judgements, drafts, clinical, today, site_has_qct = record
    if OrderKind.CENTRAL_DXA not in draft.kinds:
        return None
    population = population_on(facts, today, clinical).population
    if population is Population.Z_SCORE:
        # POP-3: the report of this DXA must give Z-scores (T-scores cannot classify this person).
        finding = Finding(topic="z-score-required", rules=("POP-3",), params={"order": draft.source})
        return OrderAdvice(finding, draft.source)
    if population is not Population.T_SCORE:
        return None  # QCT-6: the QCT criteria are for postmenopausal women and older men only
    if _any_order(OrderKind.QCT, facts.open_orders, drafts):
        return None
    reasons, evidence, settings = _dxa_factors(facts, clinical, today, judgements)
    if not reasons:
        return None
    whole = bool(_WHOLE_BODY_FACTORS & set(reasons))
    notes = [f"dxa-unreliable-{r}" for r in reasons]
    suggestions: tuple[Suggestion, ...]
    if not site_has_qct:
        notes.append("qct-referral")
        suggestions = ()
    elif whole:
        suggestions = (Suggestion("replace-with-qct", delete_draft=True, create=QCT_ORDER, recommended=True),)
    else:
        notes.append("dxa-hip-valid")
        suggestions = (
            Suggestion("add-qct-keep-dxa", create=QCT_ORDER, recommended=True),
            Suggestion("replace-with-qct-ctxa", delete_draft=True, create=QCT_ORDER),
        )
    settings.append(SettingUse("OSTEO_CDS_SITE_HAS_QCT", str(site_has_qct).lower()))
    finding = Finding(
        topic="qct-instead-of-dxa",
        rules=("REC-QCT", "DXA-1") if not whole else ("REC-QCT",),
        evidence=tuple(evidence),
        notes=(*notes, "qct-radiation"),
        settings=tuple(settings),
        params={"order": draft.source},
    )
    return OrderAdvice(finding, draft.source, suggestions)


def _dxa_factors(
    facts: PatientFacts, clinical: ClinicalSettings, today: date, judgements: Sequence[FractureJudgement]
) -> tuple[list[str], list[Evidence], list[SettingUse]]:
    """REC-QCT factors; a vertebral fracture counts only within L1-L4, the region DXA measures (a thoracic
    fracture does not falsify lumbar or hip DXA; a fracture of unknown level does not count: a choice)."""
    reasons, evidence, settings = dxa_unreliable(facts, clinical, today, judgements)
    if "vertebral-fracture" in reasons:
        fragility = [
            j.fracture
            for j in judgements
            if j.verdict is Verdict.FRAGILITY
            and j.fracture.site == "vertebra"
            and _LUMBAR_DXA_LEVELS & set(j.fracture.vertebrae)
        ]
        reasons = [r for r in reasons if r != "vertebral-fracture"]
        evidence = [e for e in evidence if e.kind != "fracture"]
        if fragility:
            reasons.append("vertebral-fracture")
            evidence.append(fracture_row(fragility[0]))
    return reasons, evidence, settings


# --- peripheral-screening-only (DX-4) -------------------------------------------------------------


def _peripheral_order(draft: OpenOrder, record: _Record) -> OrderAdvice | None:
    facts, judgements, drafts, clinical, today, site_has_qct = record
    if not {OrderKind.PERIPHERAL_BMD, OrderKind.QUS} & draft.kinds:
        return None
    if OrderKind.FOREARM_DXA in draft.kinds and unusable_sites(facts, today).reasons:
        return None  # DXA-2: spine or hip unusable, the forearm DXA is the diagnostic site
    if _any_order(OrderKind.CENTRAL_DXA, facts.open_orders, drafts) or _any_order(
        OrderKind.QCT, facts.open_orders, drafts
    ):
        return None  # a central test is ordered too: the peripheral one is not the diagnostic test
    qus = OrderKind.QUS in draft.kinds
    reasons, _, _ = _dxa_factors(facts, clinical, today, judgements)
    use_qct = (
        bool(reasons)
        and site_has_qct
        and population_on(facts, today, clinical).population is Population.T_SCORE
    )
    create = QCT_ORDER if use_qct else DXA_ORDER
    finding = Finding(
        topic="peripheral-screening-only",
        rules=("DX-4", "REC-PERIPHERAL", "REC-QCT") if use_qct else ("DX-4", "REC-PERIPHERAL"),
        notes=("qus-not-bmd",) if qus else (),
        params={"order": draft.source},
    )
    label = "replace-with-qct" if use_qct else "replace-with-dxa"
    return OrderAdvice(finding, draft.source, (Suggestion(label, delete_draft=True, create=create),))


# --- spine-imaging-on-record (REC-SPINE-XR) -----------------------------------------------------------


def _spine_radiograph_order(draft: OpenOrder, record: _Record) -> OrderAdvice | None:
    facts, clinical, today = record.facts, record.clinical, record.today
    if OrderKind.SPINE_RADIOGRAPH not in draft.kinds or draft.new_clinical_reason:
        return None
    since = months_before(today, clinical.spine_imaging_lookback_months)
    recent = sorted(
        (s for s in facts.spine_imaging if s.when is not None and since <= s.when <= today),
        key=lambda s: s.when or today,
        reverse=True,
    )
    covered = frozenset().union(*(s.parts for s in recent)) if recent else frozenset()
    if not {"thoracic", "lumbar"} <= covered:
        return None
    finding = Finding(
        topic="spine-imaging-on-record",
        rules=("REC-SPINE-XR",),
        evidence=tuple(
            Evidence(kind="report", source=s.source, when=s.when, region="+".join(sorted(s.parts)))
            for s in recent
        ),
        settings=(
            SettingUse(
                "OSTEO_CDS_SPINE_IMAGING_LOOKBACK_MONTHS", str(clinical.spine_imaging_lookback_months)
            ),
        ),
        params={
            "order": draft.source,
            "study": recent[0].source,
            "date": (recent[0].when or today).isoformat(),
            "lookback": clinical.spine_imaging_lookback_months,
        },
    )
    return OrderAdvice(finding, draft.source)


# --- qct-with-ct (REC-QCT-CT) ---------------------------------------------------------------------------


def _ct_order(draft: OpenOrder, record: _Record) -> OrderAdvice | None:
    facts, _, drafts, clinical, today, site_has_qct = record
    if OrderKind.CT_L1_L2 not in draft.kinds or not site_has_qct:
        return None
    age = age_on(facts.birth_date, today)
    threshold = {Sex.FEMALE: clinical.qct_ct_women_age, Sex.MALE: clinical.qct_ct_men_age}.get(facts.sex)
    if age is None or threshold is None or age < threshold:
        return None
    since = months_before(today, clinical.qct_ct_lookback_months)
    central = [
        m
        for m in facts.measurements
        if m.when >= since
        and (
            (m.modality is Modality.DXA and m.region in CENTRAL_DXA_REGIONS)
            or (m.modality is Modality.QCT and m.region in (Region.LUMBAR_SPINE, Region.VERTEBRA, Region.HIP))
        )
    ]
    if central or any(since <= d <= today for d in facts.bmd_study_dates):
        return None
    if _any_order(OrderKind.QCT, facts.open_orders, drafts):
        return None
    age_setting = "OSTEO_CDS_QCT_CT_WOMEN_AGE" if facts.sex is Sex.FEMALE else "OSTEO_CDS_QCT_CT_MEN_AGE"
    finding = Finding(
        topic="qct-with-ct",
        rules=("REC-QCT-CT",),
        notes=("qct-ct-range",),
        settings=(
            SettingUse(age_setting, str(threshold)),
            SettingUse("OSTEO_CDS_QCT_CT_LOOKBACK_MONTHS", str(clinical.qct_ct_lookback_months)),
            SettingUse("OSTEO_CDS_SITE_HAS_QCT", "true"),
        ),
        params={"order": draft.source, "age": age, "lookback": clinical.qct_ct_lookback_months},
    )
    return OrderAdvice(
        finding, draft.source, (Suggestion("add-qct-with-ct", create=QCT_WITH_CT_ORDER, recommended=True),)
    )


def _unspecified_bmd(order: OpenOrder) -> bool:
    return OrderKind.BMD in order.kinds and not _BMD_METHODS & order.kinds


def _any_order(kind: OrderKind, chart: Sequence[OpenOrder], drafts: Sequence[OpenOrder]) -> bool:
    return any(kind in o.kinds for o in (*chart, *drafts))
