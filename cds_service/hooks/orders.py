"""The `osteoporosis-order-select` and `osteoporosis-order-sign` services: the draft orders of an ordering
session judged by the consensus (CONTRACT.md "Order hooks").

The record is gathered exactly as for patient-view (the same prefetch templates and fallback searches:
patient_view's strategy); the draft orders come from `context.draftOrders` (CDS Hooks 2.0 cannot template
them) and are not "on the chart" (their ids are taken out of the gathered ServiceRequests).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cds_service import engine
from cds_service.fhir.onboarding import Coding
from cds_service.hooks import patient_view
from cds_service.settings import Settings

SELECT_ID, SELECT_HOOK = "osteoporosis-order-select", "order-select"
SIGN_ID, SIGN_HOOK = "osteoporosis-order-sign", "order-sign"
HOOKS = {SELECT_ID: SELECT_HOOK, SIGN_ID: SIGN_HOOK}
_TITLES = {
    SELECT_ID: "Osteoporosis imaging and bone-density orders, as selected (2020 Chinese expert consensus)",
    SIGN_ID: "Osteoporosis imaging and bone-density orders, before signing (2020 Chinese expert consensus)",
}
DESCRIPTION = (
    "Checks draft imaging and bone-density orders (ServiceRequest) against the 2020 Chinese expert "
    "consensus: "
    "QCT instead of an unreliable DXA, QCT with a CT already ordered, peripheral tests that cannot diagnose, "
    "Z-scores for young people, spine imaging already on record, and duplicate orders."
)
USAGE_REQUIREMENTS = (
    patient_view.USAGE_REQUIREMENTS
    + " Draft orders are read from context.draftOrders (a Bundle; ServiceRequests only, other resources are "
    "ignored). order-select answers about context.selections only; order-sign about every draft order."
)


def describe(service_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """The service's entry in discovery: patient-view's prefetch, this hook."""
    return {
        **patient_view.describe(settings),
        "hook": HOOKS[service_id],
        "id": service_id,
        "title": _TITLES[service_id],
        "description": DESCRIPTION,
        "usageRequirements": USAGE_REQUIREMENTS,
    }


@dataclass(frozen=True)
class OrderCall:
    """What the handler needs from a validated order-select / order-sign request."""

    record: patient_view.PatientViewCall  # the patient and the ways to gather the record
    drafts: Sequence[Mapping[str, Any]]  # the draft ServiceRequests of context.draftOrders
    concerned: frozenset[str]  # "ServiceRequest/<id>" the cards may concern (order-select: the selections)


def handle(
    call: OrderCall,
    settings: Settings,
    language: str,
    on_unrecognised: Callable[[Counter[Coding]], None] | None = None,
    on_figures: Callable[[patient_view.HookFigures], None] | None = None,
) -> engine.Evaluation:
    """Gather the record as patient-view does (raises DataUnavailable / FhirServerRefused), then judge the
    drafts; `on_figures` as patient-view's."""
    started = time.monotonic()
    record = call.record
    gathered = patient_view.gather(record, settings, on_unrecognised)
    gathered_at = time.monotonic()
    evaluation = engine.evaluate_orders(
        gathered.resources,
        record.patient_id,
        settings,
        call.drafts,
        call.concerned,
        language=language,
        data_cut=gathered.data_cut,
        orders_unknown=any(key in patient_view.ORDER_KEYS for key in gathered.omitted),
        reading_notes=gathered.notes,
    )
    if on_figures is not None:
        on_figures(patient_view.figures_of(gathered, started, gathered_at, drafts=len(call.drafts)))
    return evaluation
