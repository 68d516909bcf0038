"""The `osteoporosis-patient-view` service: its description, and one call from request to cards."""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cds_service import engine
from cds_service.fhir.gather import Gathered, PrefetchStrategy
from cds_service.fhir.onboarding import Coding, unrecognised_codings
from cds_service.fhir.plan import QueryPlan, build_plan
from cds_service.settings import Settings

SERVICE_ID = "osteoporosis-patient-view"
HOOK = "patient-view"
TITLE = "Osteoporosis imaging and bone density (2020 Chinese expert consensus)"
DESCRIPTION = (
    "Reads the patient's bone density (DXA, QCT, peripheral), fractures, spine imaging reports and BMI, "
    "classifies them by the 2020 Chinese expert consensus on imaging and bone-density diagnosis of "
    "osteoporosis, and proposes the imaging or bone-density orders the consensus recommends."
)
USAGE_REQUIREMENTS = (
    "FHIR R4 only. Give the prefetch keys as templated (a resource, a searchset Bundle, or null for no data; "
    "paged Bundles are followed on fhirServer), or give fhirServer (with fhirAuthorization unless the server "
    "is open) so the service can run the same searches itself. Every search is narrowed as US Core servers "
    "accept (Observation by patient and code). patient, observations (and observations2, ... when present), "
    "conditions, procedures, reports and vitals are needed; serviceRequests, documents, medications and "
    "medicationStatements are optional: without serviceRequests the cards cannot see orders already "
    "placed, and missing documents or medications are stated on the cards. Results need not be filtered by "
    "the server: the service filters by patient, code and status itself."
)

# The query plan of a service without a code map; a running service uses the plan of its code map
# (strategy_for). Keys of the plan that are not required are answered without (OMIT).
DEFAULT_PLAN = build_plan(Settings().code_map)
OPTIONAL_KEYS = DEFAULT_PLAN.optional_keys
# serviceRequests only keeps the service from proposing an order that is already placed.
ORDER_KEYS = frozenset({"serviceRequests"})
STRATEGY = PrefetchStrategy.from_plan(DEFAULT_PLAN)


def strategy_for(settings: Settings) -> PrefetchStrategy:
    """The prefetch strategy of the settings' code map, built once per code map."""
    if not settings.code_map:
        return STRATEGY
    return _strategy(build_plan(settings.code_map))


@functools.cache
def _strategy(plan: QueryPlan) -> PrefetchStrategy:
    return PrefetchStrategy.from_plan(plan)


def describe(settings: Settings | None = None) -> dict[str, Any]:
    """The service's entry in discovery (no optional field left empty)."""
    return {
        "hook": HOOK,
        "id": SERVICE_ID,
        "title": TITLE,
        "description": DESCRIPTION,
        "prefetch": strategy_for(settings or Settings()).templates,
        "usageRequirements": USAGE_REQUIREMENTS,
    }


@dataclass(frozen=True)
class HookFigures:
    """What the request's log line says of one hook call: counts, where each key came from, timings (no
    patient data). The handler reports them; the API adds them to its one line per request."""

    resources: int
    sources: Mapping[str, str]  # prefetch key -> "prefetch", "fhir", "omitted", ...
    gather_ms: float
    evaluate_ms: float
    data_cut: bool
    drafts: int | None = None  # the order hooks: the draft orders judged


@dataclass(frozen=True)
class PatientViewCall:
    """What the handler needs from a validated request."""

    patient_id: str
    context: Mapping[str, object]
    prefetch: Mapping[str, Any] | None
    fhir_server: str | None
    access_token: str | None


def gather(
    call: PatientViewCall,
    settings: Settings,
    on_unrecognised: Callable[[Counter[Coding]], None] | None = None,
) -> Gathered:
    """The patient's record by the query plan (prefetch, else the same searches on fhirServer); raises
    DataUnavailable / FhirServerRefused. The order hooks gather their record with this same call."""
    gathered = strategy_for(settings).gather(
        prefetch=call.prefetch,
        context=call.context,
        fhir_server=call.fhir_server,
        access_token=call.access_token,
        settings=settings,
    )
    if on_unrecognised is not None:
        on_unrecognised(unrecognised_codings(gathered.resources, settings.code_map))
    return gathered


def handle(
    call: PatientViewCall,
    settings: Settings,
    language: str,
    on_unrecognised: Callable[[Counter[Coding]], None] | None = None,
    on_figures: Callable[[HookFigures], None] | None = None,
) -> engine.Evaluation:
    """Gather the data (raises DataUnavailable / FhirServerRefused) and evaluate it.

    `on_unrecognised` receives the counts of the codings nothing recognised (site onboarding), `on_figures`
    the call's figures for the request's log line.
    """
    started = time.monotonic()
    gathered = gather(call, settings, on_unrecognised)
    gathered_at = time.monotonic()
    evaluation = engine.evaluate(
        gathered.resources,
        call.patient_id,
        settings,
        language=language,
        data_cut=gathered.data_cut,
        orders_unknown=any(key in ORDER_KEYS for key in gathered.omitted),
        reading_notes=gathered.notes,
    )
    if on_figures is not None:
        on_figures(figures_of(gathered, started, gathered_at))
    return evaluation


def figures_of(
    gathered: Gathered, started: float, gathered_at: float, drafts: int | None = None
) -> HookFigures:
    """The figures of a call that began at `started` and had its record at `gathered_at` (monotonic)."""
    return HookFigures(
        resources=len(gathered.resources),
        sources=gathered.sources,
        gather_ms=(gathered_at - started) * 1000,
        evaluate_ms=(time.monotonic() - gathered_at) * 1000,
        data_cut=gathered.data_cut,
        drafts=drafts,
    )
