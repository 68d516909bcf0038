"""The prefetch strategy: per key, use the prefetch, else search the FHIR server, else fail (412) or omit."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import requests

from cds_service.facts.model import DataNote
from cds_service.fhir.bundle import Resource, entry_resources, next_link
from cds_service.fhir.client import EXECUTOR, Deadline, FhirClient, QueryResult, check_fhir_server
from cds_service.fhir.plan import QueryPlan, bounded, is_recent, recent_since
from cds_service.fhir.prefetch import TemplateError, is_read, render, resource_type_of
from cds_service.settings import Settings

log = logging.getLogger(__name__)

MAX_BINARIES = 20  # report bodies read from Binary per call (one parallel round after the searches)
_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")  # a FHIR id


class DataUnavailable(Exception):
    """Data the service needs could be had neither from prefetch nor from the FHIR server (HTTP 412)."""

    def __init__(self, resource_types: Iterable[str]) -> None:
        self.resource_types = tuple(sorted(set(resource_types)))
        super().__init__(", ".join(self.resource_types))


class FailureMode(StrEnum):
    """What a key that can be had neither way does to the whole call."""

    FAIL = "fail"  # no answer without it: 412
    OMIT = "omit"  # answer without it; the loss is logged


class PrefetchState(StrEnum):
    """What the request's prefetch says about one key (CDS Hooks 2.0 §Prefetch)."""

    DATA = "data"  # a resource or a Bundle: the client ran the query
    NO_DATA = "no-data"  # null: the client ran the query and found nothing; never re-queried
    FAILED = "failed"  # an OperationOutcome (or junk): the client's query failed
    ABSENT = "absent"  # not sent: the client did not run it


@dataclass(frozen=True)
class PrefetchKey:
    name: str
    template: str
    on_failure: FailureMode
    recent: bool = False  # the service's own search is bounded in time (plan.bounded)
    optional_params: tuple[str, ...] = ()  # parameters dropped once if the server refuses the search
    noted: bool = False  # an OMIT key whose loss the cards state

    @property
    def resource_type(self) -> str:
        return resource_type_of(self.template)


@dataclass
class Gathered:
    """Every resource found (any patient, any type: the engine filters) and whether some were cut off."""

    resources: list[Resource] = field(default_factory=list)
    data_cut: bool = False
    omitted: tuple[str, ...] = ()  # keys answered without (FailureMode.OMIT)
    sources: dict[str, str] = field(default_factory=dict)  # key → prefetch | null | server | omitted
    # what the cards' Data notes say about the reading itself (a refused parameter, a key not read)
    notes: list[DataNote] = field(default_factory=list)


def classify(present: bool, value: object) -> tuple[PrefetchState, list[Resource]]:
    """A prefetch value's state and the resources it holds."""
    if not present:
        return PrefetchState.ABSENT, []
    if value is None:
        return PrefetchState.NO_DATA, []
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        return PrefetchState.FAILED, []
    if value["resourceType"] == "OperationOutcome":
        return PrefetchState.FAILED, []
    if value["resourceType"] == "Bundle":
        resources, only_errors = entry_resources(value)
        if only_errors:
            return PrefetchState.FAILED, []
        return PrefetchState.DATA, resources
    return PrefetchState.DATA, [value]


@dataclass(frozen=True)
class PrefetchStrategy:
    """Use the prefetch when it is there, else search `fhirServer`, else apply the key's failure mode.

    Prefetched Bundles that are paged are followed on `fhirServer` when there is one, and marked cut when
    there is not. Searches run in parallel within one overall budget (OSTEO_CDS_FHIR_BUDGET).
    """

    keys: tuple[PrefetchKey, ...]

    @classmethod
    def from_plan(cls, plan: QueryPlan) -> PrefetchStrategy:
        return cls(
            tuple(
                PrefetchKey(
                    q.key,
                    q.template,
                    FailureMode.FAIL if q.required else FailureMode.OMIT,
                    recent=q.recent,
                    optional_params=tuple(name for name, _ in q.optional),
                    noted=q.noted,
                )
                for q in plan.queries
            )
        )

    @property
    def templates(self) -> dict[str, str]:
        return {key.name: key.template for key in self.keys}

    @classmethod
    def from_templates(cls, templates: Mapping[str, str], optional: Iterable[str] = ()) -> PrefetchStrategy:
        omit = set(optional)
        return cls(
            tuple(
                PrefetchKey(name, template, FailureMode.OMIT if name in omit else FailureMode.FAIL)
                for name, template in templates.items()
            )
        )

    def gather(
        self,
        *,
        prefetch: Mapping[str, Any] | None,
        context: Mapping[str, object],
        fhir_server: str | None,
        access_token: str | None,
        settings: Settings,
        session: requests.Session | None = None,
    ) -> Gathered:
        """All resources for one call; raises DataUnavailable (412) or FhirServerRefused (400)."""
        prefetch = prefetch or {}
        # Checked even when the prefetch is complete, so an EHR learns of a refused server on the first
        # call, not on the day a prefetch key happens to be missing.
        base = check_fhir_server(fhir_server, settings) if fhir_server else None
        found: dict[str, list[Resource]] = {}
        sources: dict[str, str] = {}
        unavailable: list[PrefetchKey] = []
        data_cut = False
        notes: list[DataNote] = []
        jobs: dict[str, tuple[PrefetchKey, bool, Callable[[FhirClient, Deadline], QueryResult]]] = {}

        for key in self.keys:
            state, resources = classify(key.name in prefetch, prefetch.get(key.name))
            if state is PrefetchState.NO_DATA:
                found[key.name], sources[key.name] = [], "null"
            elif state is PrefetchState.DATA:
                found[key.name], sources[key.name] = resources, "prefetch"
                bundle = prefetch[key.name]
                if bundle.get("resourceType") == "Bundle" and next_link(bundle) is not None:
                    if base is None:
                        data_cut = True  # a paged prefetch and no server to read the rest from
                    else:
                        jobs[key.name] = (key, True, _continuation(bundle, key.resource_type))
            elif base is None:
                unavailable.append(key)
            else:
                template = bounded(key.template, settings.today_date()) if key.recent else key.template
                try:
                    relative = render(template, context)
                except TemplateError:
                    unavailable.append(key)
                    continue
                jobs[key.name] = (key, False, _search(relative, key.optional_params))

        deadline = Deadline(settings.fhir_budget_seconds)
        if jobs and base is not None:
            results = self._run(jobs, base, access_token, settings, session, deadline)
            for name, (key, continuing, _) in jobs.items():
                result = results[name]
                if continuing:
                    found[name].extend(result.resources)
                    data_cut = data_cut or result.cut or not result.ok
                elif result.ok:
                    found[name], sources[name] = result.resources, "server"
                    data_cut = data_cut or result.cut
                    if result.dropped:
                        notes.append(
                            DataNote(key.resource_type, "fhir-parameter-refused", ", ".join(result.dropped))
                        )
                elif result.failure == "http 404" and is_read(key.template):
                    # A read of a resource the server does not have is "no data", as a null prefetch is.
                    found[name], sources[name] = [], "null"
                else:
                    unavailable.append(key)

        since = recent_since(settings.today_date())
        for key in self.keys:
            if key.recent and key.name in found:  # a prefetch cannot say `date=ge`: cut to the same window
                found[key.name] = [r for r in found[key.name] if is_recent(r, since)]

        failing = [key for key in unavailable if key.on_failure is FailureMode.FAIL]
        if failing:
            raise DataUnavailable(key.resource_type for key in failing)
        omitted = tuple(key.name for key in unavailable)
        for key in unavailable:
            sources[key.name] = "omitted"
            log.warning("prefetch key %s unavailable; answering without it", key.name)
            if key.noted:
                notes.append(DataNote(key.resource_type, "fhir-not-read", key.name))
        resources = [r for key in self.keys for r in found.get(key.name, [])]
        bodies: list[Resource] = []
        binaries = _attachment_binaries(resources, base) if base is not None else []
        if binaries and base is not None:
            # Report bodies given only as a `url` to a Binary on the same server (facts/ reads them from
            # the Binary among the resources). Never another server: the token stays with its origin.
            reads = {ref: (PrefetchKey(ref, ref, FailureMode.OMIT), False, _search(ref)) for ref in binaries}
            for result in self._run(reads, base, access_token, settings, session, deadline).values():
                bodies.extend(result.resources)
                if not result.ok:
                    log.warning("fhir Binary not read (%s)", result.failure)
        return Gathered(
            resources=_unique([*resources, *bodies]),
            data_cut=data_cut,
            omitted=omitted,
            sources=sources,
            notes=notes,
        )

    @staticmethod
    def _run(
        jobs: Mapping[str, tuple[PrefetchKey, bool, Callable[[FhirClient, Deadline], QueryResult]]],
        base: str,
        access_token: str | None,
        settings: Settings,
        session: requests.Session | None,
        deadline: Deadline,
    ) -> dict[str, QueryResult]:
        client = FhirClient(base, access_token, settings, session=session)
        futures: dict[str, Future[QueryResult]] = {
            name: EXECUTOR.submit(_guarded, job, client, deadline) for name, (_, _, job) in jobs.items()
        }
        # a little slack over the budget: each GET is itself bounded by the deadline
        wait(futures.values(), timeout=deadline.remaining() + 0.25)
        results: dict[str, QueryResult] = {}
        for name, future in futures.items():
            if future.done():
                results[name] = future.result()
            else:
                future.cancel()
                results[name] = QueryResult(failure="budget exceeded")
                log.warning("fhir %s: budget exceeded", jobs[name][0].resource_type)
        if all(future.done() for future in futures.values()):
            client.close()  # otherwise the stragglers still use it; it is dropped with them
        return results


def _search(relative: str, optional: tuple[str, ...] = ()) -> Callable[[FhirClient, Deadline], QueryResult]:
    return lambda client, deadline: client.search(relative, deadline, optional=optional)


def _continuation(
    bundle: Mapping[str, Any], resource_type: str
) -> Callable[[FhirClient, Deadline], QueryResult]:
    return lambda client, deadline: client.continue_bundle(bundle, resource_type, deadline)


def _guarded(
    job: Callable[[FhirClient, Deadline], QueryResult], client: FhirClient, deadline: Deadline
) -> QueryResult:
    try:
        return job(client, deadline)
    except Exception as exc:  # a bug or an odd answer in one search must not fail the others
        log.warning("fhir search error %s", type(exc).__name__)
        return QueryResult(failure=f"error {type(exc).__name__}")


def _attachment_binaries(resources: Iterable[Resource], base: str) -> list[str]:
    """`Binary/<id>` of each attachment without inline data whose `url` is a Binary of `base` (relative
    or absolute), not already among the resources; at most MAX_BINARIES."""
    present = {f"Binary/{r.get('id')}" for r in resources if r.get("resourceType") == "Binary"}
    wanted: list[str] = []
    for resource in resources:
        kind = resource.get("resourceType")
        if kind == "DiagnosticReport":
            attachments = resource.get("presentedForm")
        elif kind == "DocumentReference":
            content = resource.get("content")
            attachments = (
                [c.get("attachment") for c in content if isinstance(c, dict)]
                if isinstance(content, list)
                else []
            )
        else:
            continue
        for attachment in attachments if isinstance(attachments, list) else []:
            if not isinstance(attachment, dict) or attachment.get("data"):
                continue
            ref = _binary_of(attachment.get("url"), base)
            if ref is not None and ref not in present and ref not in wanted:
                wanted.append(ref)
    return wanted[:MAX_BINARIES]


def _binary_of(url: object, base: str) -> str | None:
    if not isinstance(url, str):
        return None
    relative = url.removeprefix(f"{base}/") if url.startswith(f"{base}/") else url
    if "://" in relative:
        return None  # another server
    parts = relative.split("?", 1)[0].split("#", 1)[0].strip("/").split("/")
    if len(parts) in (2, 4) and parts[0] == "Binary" and _ID.fullmatch(parts[1]):
        return f"Binary/{parts[1]}"  # a version (`/_history/n`) is read as the current one
    return None


def _unique(resources: Iterable[Resource]) -> list[Resource]:
    """Resources once each: overlapping pages and keys are common; resources without an id are all kept."""
    seen: set[tuple[str, str]] = set()
    unique: list[Resource] = []
    for resource in resources:
        identity = resource.get("id")
        if isinstance(identity, str) and identity:
            marker = (str(resource.get("resourceType")), identity)
            if marker in seen:
                continue
            seen.add(marker)
        unique.append(resource)
    return unique
