"""The engine: FHIR resources of one patient → facts → consensus → CDS Hooks response."""

from __future__ import annotations

import zoneinfo
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from cds_service.cards.render import render_cards
from cds_service.consensus.assessment import assess
from cds_service.consensus.findings import Finding
from cds_service.consensus.recommendations import months_before
from cds_service.facts.extract import extract_facts
from cds_service.facts.model import DataNote, PatientFacts
from cds_service.settings import Settings
from cds_service.topics import ORDER_TOPICS, Group


@dataclass
class Evaluation:
    """The CDS Hooks response body and figures for logs/metrics (counts only, no patient data)."""

    response: dict[str, Any]
    topics: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def evaluate(
    resources: Iterable[Mapping[str, Any]],
    patient_id: str,
    settings: Settings,
    *,
    language: str | None = None,
    data_cut: bool = False,
    orders_unknown: bool = False,
) -> Evaluation:
    """Evaluate one patient's resources (any mix of types; other patients' resources are ignored).

    `language` is "en" or "zh-CN" (None: the setting); `data_cut` says a FHIR search was cut
    by the page cap, which the cards then mention; `orders_unknown` says the orders on record could not be
    read, which the order cards then mention (they may propose what is already ordered).
    """
    facts = extract_facts(resources, patient_id, settings.code_map, zoneinfo.ZoneInfo(settings.tz))
    _note_before_lookback(facts, settings)
    findings = [
        f
        for f in assess(facts, settings.clinical, settings.today_date(), settings.disabled_cards)
        if _shown(f, settings)
    ]
    if facts.deceased:
        # CONTRACT.md common sense: a deceased patient gets no order-proposing card.
        findings = [f for f in findings if not f.orders and f.topic not in ORDER_TOPICS]
    if orders_unknown:
        findings = [
            replace(f, notes=(*f.notes, "orders-unknown")) if f.topic in ORDER_TOPICS else f for f in findings
        ]
    diagnoses = [f for f in findings if f.group is Group.DIAGNOSIS]
    if len(diagnoses) > 1:
        raise AssertionError("the rules produced more than one diagnosis")  # a defect, never data
    cards = render_cards(
        findings,
        facts.notes,
        language=language or settings.language,
        patient_id=patient_id,
        data_cut=data_cut,
    )
    return Evaluation(
        response={"cards": cards},
        topics=[f.topic for f in findings],
        skipped=Counter(note.reason for note in facts.notes),
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


def _shown(finding: Finding, settings: Settings) -> bool:
    return finding.topic not in settings.disabled_cards
