"""The engine: FHIR resources of one patient → facts → consensus → CDS Hooks response.

The one pipeline every caller uses: the hook, `osteo-cds evaluate`, the preview and its chart (and the
coming order hooks and population screening). `assess_record` is the middle (facts and findings, no cards);
`evaluate` is it plus the cards.
"""

from __future__ import annotations

import zoneinfo
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cds_service.cards.orders import render_order_cards
from cds_service.cards.render import explain, render_cards
from cds_service.consensus.assessment import assess
from cds_service.consensus.findings import Finding
from cds_service.consensus.fractures import FractureJudgement, judge_all
from cds_service.consensus.lookback import months_before
from cds_service.consensus.orders import assess_orders
from cds_service.consensus.recommendations import QCT_ORDER
from cds_service.facts.extract import extract_facts
from cds_service.facts.fhirpath import resource_key
from cds_service.facts.model import DataNote, PatientFacts
from cds_service.facts.orders import read_drafts
from cds_service.settings import Settings
from cds_service.smart.links import add_smart_links
from cds_service.topics import TOPICS, Group


@dataclass(frozen=True)
class Assessment:
    """What the rules concluded for one patient, and the facts and fracture judgements it rests on."""

    facts: PatientFacts
    judgements: tuple[FractureJudgement, ...]
    findings: tuple[Finding, ...]  # the ones to show: switched-off cards left out, none for a deceased


@dataclass
class Evaluation:
    """The CDS Hooks response body and figures for logs/metrics (counts only, no patient data); callers
    that draw or count more (the chart, screening) read the assessment."""

    response: dict[str, Any]
    topics: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    assessment: Assessment | None = None  # always set by evaluate (None only in test doubles)
    language: str = "en"
    data_cut: bool = False

    def explanations(self) -> list[str]:
        """Each card's full explanation (markdown), in the order of `response["cards"]`: what the card's
        SMART app link, the preview and `osteo-cds evaluate` show beside the five-second card."""
        if self.assessment is None:
            return []
        return explain(
            self.assessment.findings,
            self.assessment.facts.notes,
            language=self.language,
            data_cut=self.data_cut,
        )


def evaluate(
    resources: Iterable[Mapping[str, Any]],
    patient_id: str,
    settings: Settings,
    *,
    language: str | None = None,
    data_cut: bool = False,
    orders_unknown: bool = False,
    reading_notes: Iterable[DataNote] = (),
) -> Evaluation:
    """Evaluate one patient's resources (any mix of types; other patients' resources are ignored).

    `language` is "en" or "zh-CN" (None: the setting); `data_cut` says a FHIR search was cut
    by the page cap, which the cards then mention; `orders_unknown` says the orders on record could not be
    read, which the order cards then mention (they may propose what is already ordered); `reading_notes`
    are what the FHIR reading itself has to say (a refused parameter, an optional search not read).
    """
    assessment = assess_record(resources, patient_id, settings, orders_unknown=orders_unknown)
    assessment.facts.notes.extend(reading_notes)
    cards = render_cards(
        assessment.findings,
        assessment.facts.notes,
        language=language or settings.language,
        patient_id=patient_id,
        data_cut=data_cut,
    )
    add_smart_links(cards, settings, language or settings.language)
    return Evaluation(
        response={"cards": cards},
        topics=[f.topic for f in assessment.findings],
        skipped=Counter(note.reason for note in assessment.facts.notes),
        assessment=assessment,
        language=language or settings.language,
        data_cut=data_cut,
    )


def assess_record(
    resources: Iterable[Mapping[str, Any]],
    patient_id: str,
    settings: Settings,
    *,
    orders_unknown: bool = False,
) -> Assessment:
    """Facts and findings of one patient's resources, as the cards would show them (no cards rendered)."""
    facts = extract_facts(resources, patient_id, settings.code_map, zoneinfo.ZoneInfo(settings.tz))
    _note_before_lookback(facts, settings)
    today = settings.today_date()
    judgements = tuple(judge_all(facts, settings.clinical, today))
    findings = [
        f
        for f in assess(facts, settings.clinical, today, settings.disabled_cards, judgements)
        if f.topic not in settings.disabled_cards
    ]
    if facts.deceased:
        # CONTRACT.md common sense: a deceased patient gets no card at all (a diagnosis or an order for
        # someone who has died helps nobody and reads as if the record were of a living patient).
        findings = []
    if orders_unknown:
        findings = [
            replace(f, notes=(*f.notes, "orders-unknown")) if TOPICS[f.topic].proposes_orders else f
            for f in findings
        ]
    if not settings.site_has_qct:
        # OSTEO_CDS_SITE_HAS_QCT=false: QCT is not proposed as an order here; the card says to refer instead.
        findings = [
            replace(f, orders=tuple(o for o in f.orders if o != QCT_ORDER), notes=(*f.notes, "qct-referral"))
            if QCT_ORDER in f.orders
            else f
            for f in findings
        ]
    if len([f for f in findings if f.group is Group.DIAGNOSIS]) > 1:
        raise AssertionError("the rules produced more than one diagnosis")  # a defect, never data
    return Assessment(facts=facts, judgements=judgements, findings=tuple(findings))


def evaluate_orders(
    resources: Iterable[Mapping[str, Any]],
    patient_id: str,
    settings: Settings,
    draft_resources: Sequence[Mapping[str, Any]],
    concerned: Collection[str],
    *,
    language: str | None = None,
    data_cut: bool = False,
    orders_unknown: bool = False,
    reading_notes: Iterable[DataNote] = (),
) -> Evaluation:
    """The order hooks: the record as `assess_record` reads it, without the session's draft orders (they
    are not "on the chart"), then the drafts in `concerned` judged against it (consensus/orders.py)."""
    drafts = read_drafts(draft_resources, patient_id, settings.code_map)
    draft_keys = {resource_key(dict(r)) for r in draft_resources if r.get("resourceType") == "ServiceRequest"}
    chart = [
        r
        for r in resources
        if not (r.get("resourceType") == "ServiceRequest" and resource_key(dict(r)) in draft_keys)
    ]
    assessment = assess_record(chart, patient_id, settings)
    assessment.facts.notes.extend(reading_notes)
    advice = [
        a
        for a in assess_orders(
            assessment.facts,
            assessment.judgements,
            drafts,
            concerned,
            settings.clinical,
            settings.today_date(),
            site_has_qct=settings.site_has_qct,
        )
        if a.finding.topic not in settings.disabled_cards
    ]
    if orders_unknown:  # duplicate-order could not look at the orders on record
        advice = [
            replace(a, finding=replace(a.finding, notes=(*a.finding.notes, "orders-unknown"))) for a in advice
        ]
    cards = render_order_cards(
        advice,
        assessment.facts.notes,
        language=language or settings.language,
        patient_id=patient_id,
        data_cut=data_cut,
    )
    return Evaluation(
        response={"cards": cards},
        topics=[a.finding.topic for a in advice],
        skipped=Counter(note.reason for note in assessment.facts.notes),
        assessment=replace(assessment, findings=tuple(a.finding for a in advice)),
    )


def _note_before_lookback(facts: PatientFacts, settings: Settings) -> None:
    """BMD older than OSTEO_CDS_BMD_LOOKBACK_MONTHS is not read: each such result is listed in Data notes."""
    months = settings.clinical.bmd_lookback_months
    if not months:
        return
    since = months_before(settings.today_date(), months)
    for m in facts.measurements:
        if m.when < since:
            facts.notes.append(DataNote(source=m.source, reason="before-lookback", detail=str(months)))
