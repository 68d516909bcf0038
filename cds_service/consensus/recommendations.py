"""What to do next (REC-*, FX-4, DXA-2, DXA-5): recommendation findings, with the orders they propose."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date

from cds_service.consensus.bmd import dxa_exams, unusable_sites
from cds_service.consensus.findings import Evidence, Finding, OrderProposal, SettingUse
from cds_service.consensus.fractures import FractureJudgement, Verdict, fracture_row
from cds_service.consensus.lookback import body_measures_since, months_before
from cds_service.consensus.population import Population, age_on, population_on
from cds_service.facts.model import (
    Fracture,
    ImagingExam,
    Measure,
    Modality,
    OrderKind,
    PatientFacts,
    ProposedOrder,
    Region,
    ReportAdvice,
)
from cds_service.settings import ClinicalSettings

SPINE_XR_ORDER = OrderProposal(ProposedOrder.SPINE_RADIOGRAPH, reason="REC-SPINE-XR")
QCT_ORDER = OrderProposal(ProposedOrder.QCT_LUMBAR, reason="REC-QCT")
DXA_ORDER = OrderProposal(ProposedOrder.DXA, reason="REC-BMD")
FOREARM_ORDER = OrderProposal(ProposedOrder.FOREARM_DXA, reason="REC-FOREARM")


def recommendations(
    facts: PatientFacts,
    clinical: ClinicalSettings,
    today: date,
    judgements: Sequence[FractureJudgement],
    diagnosis: Finding | None,
    disabled: frozenset[str] = frozenset(),
) -> list[Finding]:
    found: list[Finding | None] = [
        spine_radiograph(facts, clinical, today),
        ecf_check(judgements, clinical, today),
        fracture_imaging(judgements, facts, clinical, today),
        cross_device(facts),
    ]
    bmd_card = bmd_measurement(facts, clinical, today, judgements)
    found.append(bmd_card)
    # The BMD card proposes QCT itself when DXA is unreliable; if it is not given (or switched off), the
    # QCT card stands on its own.
    if bmd_card is None or bmd_card.topic in disabled:
        found.append(qct_recommended(facts, clinical, today, judgements))
    found.append(forearm_dxa(facts, today))
    return [f for f in found if f is not None]


# --- REC-SPINE-XR -------------------------------------------------------------------------------


def spine_radiograph(facts: PatientFacts, clinical: ClinicalSettings, today: date) -> Finding | None:
    """REC-SPINE-XR: everyone ≥ 60 has thoracic + lumbar spine imaging within the look-back."""
    age = age_on(facts.birth_date, today)
    if age is None or age < clinical.spine_radiograph_age:
        return None
    since = months_before(today, clinical.spine_imaging_lookback_months)
    recent = [s for s in facts.spine_imaging if s.when is not None and since <= s.when <= today]
    covered = frozenset().union(*(s.parts for s in recent)) if recent else frozenset()
    if {"thoracic", "lumbar"} <= covered:
        return None
    if _has_open_order(facts, OrderKind.SPINE_IMAGING):
        return None
    evidence = tuple(
        Evidence(kind="report", source=s.source, when=s.when, region="+".join(sorted(s.parts)), used=False)
        for s in recent
    )
    return Finding(
        topic="spine-radiograph-recommended",
        rules=("REC-SPINE-XR",),
        evidence=evidence,
        notes=("spine-partly-covered",) if covered else (),
        settings=(
            SettingUse("OSTEO_CDS_SPINE_XR_AGE", str(clinical.spine_radiograph_age)),
            SettingUse(
                "OSTEO_CDS_SPINE_IMAGING_LOOKBACK_MONTHS", str(clinical.spine_imaging_lookback_months)
            ),
        ),
        params={"age": age, "lookback": clinical.spine_imaging_lookback_months},
        orders=(SPINE_XR_ORDER,),
    )


# --- FX-4 / REC-CT-MRI ------------------------------------------------------------------------


def ecf_check(
    judgements: Sequence[FractureJudgement], clinical: ClinicalSettings, today: date
) -> Finding | None:
    """FX-4: a Genant-graded vertebra whose report does not say whether the endplate/cortex is fractured."""
    since = months_before(today, clinical.spine_imaging_lookback_months)
    graded = [
        j.fracture
        for j in judgements
        if j.fracture.genant_grade is not None
        and j.fracture.genant_grade >= 1
        and j.fracture.ecf == "not-stated"
        and j.verdict not in (Verdict.PATHOLOGICAL, Verdict.DEFORMITY)
        and (j.fracture.when is None or j.fracture.when >= since)
    ]
    if not graded:
        return None
    return Finding(
        topic="vertebral-fracture-ecf-check",
        rules=("FX-3", "FX-4"),
        evidence=tuple(fracture_row(f) for f in graded),
        notes=("genant-visual-error",),
        settings=(
            SettingUse(
                "OSTEO_CDS_SPINE_IMAGING_LOOKBACK_MONTHS", str(clinical.spine_imaging_lookback_months)
            ),
        ),
    )


def fracture_imaging(
    judgements: Sequence[FractureJudgement], facts: PatientFacts, clinical: ClinicalSettings, today: date
) -> Finding | None:
    """REC-CT-MRI: a recent fracture uncertain on the report (FX-6) or possibly pathological (FX-8), not yet
    answered by a later CT or MRI of its region."""
    # REC-CT-MRI: due only while the doubtful report is recent (OSTEO_CDS_DOUBTFUL_FRACTURE_MONTHS, a choice).
    since = months_before(today, clinical.doubtful_fracture_months)
    confirmed = [j.fracture for j in judgements if j.verdict is Verdict.FRAGILITY]
    doubts = [j for j in judgements if j.verdict in (Verdict.UNCERTAIN, Verdict.PATHOLOGICAL)]
    doubtful = [
        j
        for j in doubts
        if (j.fracture.when is None or j.fracture.when >= since)
        and not _confirmed_later(j, confirmed)
        and not _answered_later(j.fracture, facts.imaging_exams, [d.fracture for d in doubts])
    ]
    orders: list[OrderProposal] = []
    notes: list[str] = []
    for site in dict.fromkeys(site for j in doubtful for site in _order_sites(j.fracture)):
        if not _has_open_order(facts, _SITE_ORDER_KINDS.get(site, OrderKind.OTHER_CT_MR)):
            at_site = [j.fracture for j in doubtful if site in _order_sites(j.fracture)]
            proposals = _not_done(_site_orders(site, at_site), _modalities_done(at_site, facts.imaging_exams))
            orders.extend(_as_advised(site, proposals, [a for f in at_site for a in f.advice], notes))
    if not orders:
        return None  # nothing doubtful, or CT/MRI of every doubtful region already ordered
    advice = [a for j in doubtful for a in j.fracture.advice]
    pet = [a for a in advice if "pet-ct" in a.exams]
    if pet and not _has_open_order(facts, OrderKind.PET_CT):
        orders.append(_advised(ProposedOrder.PET_CT, pet, notes))
    rules = ["REC-CT-MRI"]
    if any(j.verdict is Verdict.UNCERTAIN for j in doubtful):
        rules.append("FX-6")
        notes.append("fracture-uncertain")
    if any(j.verdict is Verdict.PATHOLOGICAL for j in doubtful):
        rules.append("FX-8")
        notes.append("fracture-possibly-pathological")
    if any(o.kind in (ProposedOrder.CT_UNSPECIFIED, ProposedOrder.MR_UNSPECIFIED) for o in orders):
        notes.append("order-region-unspecified")
    return Finding(
        topic="fracture-imaging-recommended",
        rules=tuple(rules),
        evidence=_doubt_rows(doubtful),
        notes=tuple(dict.fromkeys(notes)),
        settings=(SettingUse("OSTEO_CDS_DOUBTFUL_FRACTURE_MONTHS", str(clinical.doubtful_fracture_months)),),
        orders=tuple(orders),
    )


# REC-CT-MRI, consensus 五.3: CT and MRI of each doubtful fracture's region (CT listed first, as the default).
_SITE_ORDERS: dict[str, tuple[ProposedOrder, ProposedOrder]] = {
    "thoracic": (ProposedOrder.CT_THORACIC, ProposedOrder.MR_THORACIC),
    "lumbar": (ProposedOrder.CT_LUMBAR, ProposedOrder.MR_LUMBAR),
    "hip": (ProposedOrder.CT_HIP, ProposedOrder.MR_HIP),
    "distal-radius": (ProposedOrder.CT_WRIST, ProposedOrder.MR_WRIST),
    "proximal-humerus": (ProposedOrder.CT_SHOULDER, ProposedOrder.MR_SHOULDER),
    "pelvis": (ProposedOrder.CT_PELVIS, ProposedOrder.MR_PELVIS),
    "rib": (ProposedOrder.CT_CHEST, ProposedOrder.MR_CHEST),
}
# A site without a verified regional code ("other", "unspecified"): the generic codes, region in the note.
_UNSPECIFIED_ORDERS = (ProposedOrder.CT_UNSPECIFIED, ProposedOrder.MR_UNSPECIFIED)
# Each proposal's modality, as ImagingExam names it ("ct" first in every pair above).
_MODALITY: dict[ProposedOrder, str] = {
    order: modality
    for pair in (*_SITE_ORDERS.values(), _UNSPECIFIED_ORDERS)
    for order, modality in zip(pair, ("ct", "mr"), strict=True)
}
_SITE_ORDER_KINDS: dict[str, OrderKind] = {
    "thoracic": OrderKind.SPINE_CT_MR,
    "lumbar": OrderKind.SPINE_CT_MR,
    "hip": OrderKind.HIP_CT_MR,
    "distal-radius": OrderKind.WRIST_CT_MR,
    "proximal-humerus": OrderKind.SHOULDER_CT_MR,
    "pelvis": OrderKind.PELVIS_CT_MR,
    "rib": OrderKind.CHEST_CT_MR,
}


def _order_sites(fracture: Fracture) -> tuple[str, ...]:
    """The regions to image: the spine by level (thoracic, lumbar; lumbar when no level is named), else the
    fracture's site."""
    if fracture.site != "vertebra":
        return (fracture.site,)
    levels = fracture.vertebrae
    sites = (("thoracic",) if any(v.startswith("T") for v in levels) else ()) + (
        ("lumbar",) if not levels or any(v.startswith("L") for v in levels) else ()
    )
    return sites


def _site_orders(site: str, doubtful: Sequence[Fracture]) -> list[OrderProposal]:
    ct, mr = _SITE_ORDERS.get(site, _UNSPECIFIED_ORDERS)
    if site != "hip":
        return [OrderProposal(ct, reason="REC-CT-MRI"), OrderProposal(mr, reason="REC-CT-MRI")]
    # The hip: MRI first (the more sensitive for an occult fracture), unless the report itself advises CT.
    if any(f.site == "hip" and f.advised == {"ct"} for f in doubtful):
        return [
            OrderProposal(ct, reason="REC-CT-MRI", recommended=True),
            OrderProposal(mr, reason="REC-CT-MRI"),
        ]
    return [OrderProposal(mr, reason="REC-CT-MRI", recommended=True), OrderProposal(ct, reason="REC-CT-MRI")]


# REC-CT-MRI: the orders only a report's own advice proposes (a contrast MRI of the spine, a PET-CT).
_CONTRAST_MR: dict[str, ProposedOrder] = {
    "thoracic": ProposedOrder.MR_THORACIC_CONTRAST,
    "lumbar": ProposedOrder.MR_LUMBAR_CONTRAST,
}


def _advised(kind: ProposedOrder, advice: Sequence[ReportAdvice], notes: list[str]) -> OrderProposal:
    """An order the report itself advises: recommended unless every such advice is conditional."""
    recommended = any(not a.conditional for a in advice)
    notes.append("report-advice" if recommended else "report-advice-conditional")
    return OrderProposal(kind, reason="REC-CT-MRI", recommended=recommended)


def _as_advised(
    site: str, proposals: list[OrderProposal], advice: Sequence[ReportAdvice], notes: list[str]
) -> list[OrderProposal]:
    """REC-CT-MRI: the region's proposals as the report advises them. A contrast MRI replaces the plain MRI
    (增强MRI includes the plain sequences); where no contrast-MRI code exists (non-spine sites) the site's MRI
    is proposed and a note asks for contrast. A plain CT or MRI advised without a condition is recommended."""
    contrast = [a for a in advice if "contrast-mr" in a.exams]
    plain_mr = _SITE_ORDERS.get(site, _UNSPECIFIED_ORDERS)[1]
    if contrast:
        if site not in _CONTRAST_MR:
            notes.append("report-advice-contrast-site")
        advised = _advised(_CONTRAST_MR.get(site, plain_mr), contrast, notes)
        kept = [p for p in proposals if p.kind != plain_mr]
        if advised.recommended:  # the radiologist's own advice is the recommendation; the default stays
            kept = [replace(p, recommended=False) for p in kept]
        return [advised, *kept]
    plain = {e for a in advice if not a.conditional for e in a.exams & {"ct", "mr"}}
    if not any(_MODALITY[p.kind] in plain for p in proposals):
        return proposals
    notes.append("report-advice")
    marked = [replace(p, recommended=_MODALITY[p.kind] in plain) for p in proposals]
    return sorted(marked, key=lambda p: not p.recommended)


def _doubt_rows(doubtful: Sequence[FractureJudgement]) -> tuple[Evidence, ...]:
    """REC-CT-MRI: a row per doubtful fracture, and each advice sentence of their reports quoted once: as the
    fracture's quote when the advice is in the fracture's own sentence, else as a row of its report."""
    rows = []
    advice: dict[tuple[str, str], Evidence] = {}
    for j in doubtful:
        row = fracture_row(j.fracture)
        for a in j.fracture.advice:
            if row.quote and " ".join(row.quote.split()) in a.quote:
                row = replace(row, quote=a.quote)  # the same sentence, hedge and advice together
            else:
                key = (j.fracture.source, a.quote)
                advice.setdefault(
                    key,
                    Evidence(kind="report", source=j.fracture.source, when=j.fracture.when, quote=a.quote),
                )
        rows.append(row)
    quoted = {(r.source, r.quote) for r in rows}
    return (*rows, *(e for key, e in advice.items() if key not in quoted))


def _modalities_done(doubtful: Sequence[Fracture], exams: Sequence[ImagingExam]) -> frozenset[str]:
    """REC-CT-MRI: the cross-sectional modalities of the reports that raise the doubt ("ct", "mr")."""
    sources = {f.source for f in doubtful}
    return frozenset(m for e in exams if e.source in sources for m in e.modalities) & {"ct", "mr"}


def _not_done(proposals: list[OrderProposal], done: frozenset[str]) -> list[OrderProposal]:
    """REC-CT-MRI: the modality not yet done for the region (after an MRI, CT; after a CT, MRI); both when
    neither or both were done. The one left is the recommended one."""
    kept = [p for p in proposals if _MODALITY[p.kind] not in done]
    if not kept or len(kept) == len(proposals):
        return proposals
    return [replace(p, recommended=True) for p in kept]


def _answered_later(doubtful: Fracture, exams: Sequence[ImagingExam], doubts: Sequence[Fracture]) -> bool:
    """REC-CT-MRI: CT or MRI of the doubtful fracture's regions after it answers the doubt (no fracture, or a
    confirmed one), unless that study is itself doubtful about a fracture there."""
    unanswered = set(_order_sites(doubtful))
    if doubtful.site == "vertebra" and not doubtful.vertebrae:
        unanswered = {"spine"}  # no level named: CT or MRI of either part of the spine answers it
    for exam in exams:
        if not exam.cross_sectional or exam.source == doubtful.source or exam.when is None:
            continue
        if doubtful.when is not None and exam.when < doubtful.when:
            continue
        shown = set(exam.regions) | ({"spine"} if exam.regions & {"thoracic", "lumbar"} else set())
        if any(d.source == exam.source and set(_order_sites(d)) & shown for d in doubts):
            continue  # the CT/MRI is doubtful there too: the question stays open
        unanswered -= shown
    return not unanswered


def _confirmed_later(judgement: FractureJudgement, confirmed: Sequence[Fracture]) -> bool:
    """A doubtful fracture confirmed later (report or Condition) at the same site needs no more imaging."""
    doubtful = judgement.fracture
    for other in confirmed:
        same_site = other.site == doubtful.site and (
            not doubtful.vertebrae or bool(set(doubtful.vertebrae) & set(other.vertebrae))
        )
        later = doubtful.when is None or (other.when is not None and other.when >= doubtful.when)
        if same_site and later:
            return True
    return False


# --- REC-BMD / REC-QCT / REC-FOREARM / DXA-5 ------------------------------------------------------


def _central_bmd_dates(facts: PatientFacts) -> list[date]:
    return [m.when for m in facts.measurements if m.modality in (Modality.DXA, Modality.QCT)]


def bmd_measurement(
    facts: PatientFacts, clinical: ClinicalSettings, today: date, judgements: Sequence[FractureJudgement]
) -> Finding | None:
    """REC-BMD: a radiograph suggests bone loss and no BMD was measured around or after it."""
    if facts.deceased:
        return None
    losses = [f for f in facts.report_findings if f.kind == "bone-loss" and f.radiograph]
    if not losses:
        return None
    latest = max(losses, key=lambda f: f.when or date.min)
    # REC-BMD: "no BMD on record" — any central DXA/QCT result or report, at any date, answers it (the BMD
    # diagnosis card then speaks for it; a repeat measurement is the clinician's call).
    if _central_bmd_dates(facts) or facts.bmd_study_dates:
        return None
    if _has_open_order(facts, OrderKind.BMD):
        return None
    reasons, reason_evidence, settings = dxa_unreliable(facts, clinical, today, judgements)
    if not _qct_population(facts, clinical, today):
        reasons, reason_evidence = [], []  # QCT-6: no QCT category for the young, so no QCT for them
    order = QCT_ORDER if reasons else DXA_ORDER
    rules = ["REC-BMD"] + (["REC-QCT"] if reasons else [])
    evidence = [Evidence(kind="report", source=latest.source, when=latest.when, quote=latest.quote)]
    return Finding(
        topic="bmd-measurement-recommended",
        rules=tuple(rules),
        evidence=tuple(evidence + reason_evidence),
        notes=tuple(f"dxa-unreliable-{r}" for r in reasons),
        settings=tuple(settings),
        orders=(order,),
    )


def dxa_unreliable(
    facts: PatientFacts, clinical: ClinicalSettings, today: date, judgements: Sequence[FractureJudgement]
) -> tuple[list[str], list[Evidence], list[SettingUse]]:
    """REC-QCT: reasons why DXA areal BMD is unreliable for this patient."""
    reasons: list[str] = []
    evidence: list[Evidence] = []
    settings: list[SettingUse] = []
    # Only a recent body habitus counts (BODY_MEASURE_YEARS, a choice), whichever way the record came.
    since = body_measures_since(today)
    recent_bmis = [b for b in facts.bmis if b.when >= since]
    if recent_bmis:
        bmi = max(recent_bmis, key=lambda b: b.when)
        if bmi.value < clinical.low_bmi:
            reasons.append("low-weight")
            settings.append(SettingUse("OSTEO_CDS_LOW_BMI", str(clinical.low_bmi)))
        elif bmi.value >= clinical.severe_obesity_bmi:
            reasons.append("severe-obesity")
            settings.append(SettingUse("OSTEO_CDS_SEVERE_OBESITY_BMI", str(clinical.severe_obesity_bmi)))
        if reasons:
            evidence.append(
                Evidence(kind="bmi", source=bmi.source, when=bmi.when, value=bmi.value, unit="kg/m2")
            )
    for concept, reason in (
        ("severe-obesity", "severe-obesity"),
        ("underweight", "low-weight"),
        ("scoliosis", "scoliosis"),
        ("spine-degeneration", "spine-degeneration"),
    ):
        coded = [c for c in facts.coded if c.concept == concept and c.active]
        if coded:
            if reason not in reasons:
                reasons.append(reason)
            evidence.append(
                Evidence(kind="condition", source=coded[0].source, when=coded[0].when, region=reason)
            )
    since = months_before(today, clinical.spine_imaging_lookback_months)
    for kind in ("scoliosis", "spine-degeneration", "aortic-calcification"):
        stated = [f for f in facts.report_findings if f.kind == kind and (f.when is None or f.when >= since)]
        if stated:
            if kind not in reasons:
                reasons.append(kind)
            evidence.append(
                Evidence(
                    kind="report",
                    source=stated[0].source,
                    when=stated[0].when,
                    quote=stated[0].quote,
                    region=kind,
                )
            )
    # REC-QCT: only a fracture within the lumbar region DXA measures (L1–L4) falsifies it; a thoracic one
    # (T8, T12) leaves lumbar and hip DXA valid, and a vertebra of unstated level is not known to be there.
    vertebral = [
        j.fracture
        for j in judgements
        if j.verdict is Verdict.FRAGILITY
        and j.fracture.site == "vertebra"
        and DXA_LUMBAR_LEVELS & set(j.fracture.vertebrae)
    ]
    if vertebral:
        reasons.append("vertebral-fracture")
        evidence.append(fracture_row(vertebral[0]))
    return reasons, evidence, settings


# REC-QCT / DXA-1: the vertebrae of the lumbar DXA region.
DXA_LUMBAR_LEVELS = frozenset({"L1", "L2", "L3", "L4"})


def _qct_population(facts: PatientFacts, clinical: ClinicalSettings, today: date) -> bool:
    return population_on(facts, today, clinical).population is Population.T_SCORE


def qct_recommended(
    facts: PatientFacts, clinical: ClinicalSettings, today: date, judgements: Sequence[FractureJudgement]
) -> Finding | None:
    """REC-QCT: DXA results on record, DXA unreliable for this patient, and no recent QCT."""
    if facts.deceased or not any(m.modality is Modality.DXA for m in facts.measurements):
        return None
    if not _qct_population(facts, clinical, today):
        return None  # QCT-6: the QCT criteria are for postmenopausal women and older men only
    since = months_before(today, clinical.spine_imaging_lookback_months)
    if any(m.modality is Modality.QCT and m.when >= since for m in facts.measurements):
        return None
    reasons, evidence, settings = dxa_unreliable(facts, clinical, today, judgements)
    if not reasons:
        return None
    if _has_open_order(facts, OrderKind.QCT):
        return None
    settings.append(
        SettingUse("OSTEO_CDS_SPINE_IMAGING_LOOKBACK_MONTHS", str(clinical.spine_imaging_lookback_months))
    )
    return Finding(
        topic="qct-recommended",
        rules=("REC-QCT", "QCT-7"),
        evidence=tuple(evidence),
        notes=(*(f"dxa-unreliable-{r}" for r in reasons), "qct-radiation"),
        settings=tuple(settings),
        orders=(QCT_ORDER,),
    )


def forearm_dxa(facts: PatientFacts, today: date) -> Finding | None:
    """REC-FOREARM / DXA-2: spine or hip cannot be measured and no forearm was measured since."""
    if facts.deceased:
        return None
    unusable = unusable_sites(facts, today)
    exams = dxa_exams(facts.measurements)
    if not exams:
        return None  # a choice: only patients followed by DXA
    if not unusable.site_limited(exams[0].measurements):
        return None
    since = min(
        (
            c.when
            for c in facts.coded
            if c.when and (c.concept == "spinal-fusion" or c.concept.startswith("hip-"))
        ),
        default=None,
    )
    forearm = [
        m
        for m in facts.measurements
        if m.modality is Modality.DXA
        and m.region is Region.FOREARM
        and m.measure in (Measure.T_SCORE, Measure.Z_SCORE)
        and (since is None or m.when >= since)
    ]
    if forearm:
        return None
    if _has_open_order(facts, OrderKind.FOREARM_DXA):
        return None
    evidence = tuple(
        Evidence(kind="condition", source=c.source, when=c.when, region=c.concept.split(":")[0])
        for c in facts.coded
        if c.concept == "spinal-fusion" or c.concept.startswith("hip-prosthesis")
    )
    return Finding(
        topic="forearm-dxa-recommended",
        rules=("REC-FOREARM", "DXA-2"),
        evidence=evidence,
        notes=(*(f"site-unusable-{r}" for r in unusable.reasons), "forearm-non-dominant"),
        orders=(FOREARM_ORDER,),
    )


def cross_device(facts: PatientFacts) -> Finding | None:
    """DXA-5: the latest two DXA exams come from different devices."""
    exams = dxa_exams(facts.measurements)
    if len(exams) < 2:
        return None
    latest, previous = exams[0], exams[1]
    if not latest.devices or not previous.devices or latest.devices & previous.devices:
        return None  # the latest exam and the one before it, both with a known device
    evidence = tuple(
        Evidence(kind="device", source=m.source, when=m.when, region=m.device)
        for exam in (latest, previous)
        for m in exam.measurements[:1]
    )
    return Finding(
        topic="cross-device-comparison",
        rules=("DXA-5",),
        evidence=evidence,
        params={"date": latest.when.isoformat(), "previous_date": previous.when.isoformat()},
    )


def _has_open_order(facts: PatientFacts, kind: OrderKind) -> bool:
    """CONTRACT.md: no duplicate of an active/draft order (facts/orders.py says what each order is)."""
    return any(kind in order.kinds for order in facts.open_orders)
