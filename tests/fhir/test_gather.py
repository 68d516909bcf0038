"""The prefetch strategy: per key prefetch, null, OperationOutcome or absent; fallback; 412; budget."""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

import pytest
import responses
from requests import PreparedRequest

from cds_service.fhir.client import FhirServerRefused
from cds_service.fhir.gather import DataUnavailable, Gathered, PrefetchState, PrefetchStrategy, classify
from cds_service.fhir.prefetch import PREFETCH_TEMPLATES, TemplateError, render
from cds_service.hooks.patient_view import STRATEGY
from cds_service.settings import Settings

BASE = "https://ehr.example.org/fhir"
PATIENT = "p1"
CONTEXT = {"patientId": PATIENT, "userId": "Practitioner/u1"}
SETTINGS = Settings(auth="none")

SEARCH_TYPES = {key.name: key.resource_type for key in STRATEGY.keys if key.name != "patient"}


def resource(resource_type: str, rid: str) -> dict[str, Any]:
    return {"resourceType": resource_type, "id": rid, "subject": {"reference": f"Patient/{PATIENT}"}}


def searchset(*resources: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [{"resource": r} for r in resources],
    }
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return bundle


def outcome(severity: str = "error") -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": severity, "code": "processing"}]}


def full_prefetch() -> dict[str, Any]:
    prefetch: dict[str, Any] = {"patient": {"resourceType": "Patient", "id": PATIENT}}
    for key, resource_type in SEARCH_TYPES.items():
        prefetch[key] = searchset(resource(resource_type, f"{key}-1"))
    return prefetch


def gather(
    prefetch: dict[str, Any] | None,
    fhir_server: str | None = None,
    settings: Settings = SETTINGS,
    token: str | None = None,
) -> Gathered:
    return STRATEGY.gather(
        prefetch=prefetch, context=CONTEXT, fhir_server=fhir_server, access_token=token, settings=settings
    )


def serve_everything(
    rsps: responses.RequestsMock, delay: float = 0.0, released: threading.Event | None = None
) -> None:
    """Every template answered from BASE, each after `delay` seconds (or earlier, once `released` is set)."""

    def answer(request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        (released or threading.Event()).wait(delay)
        path = str(request.path_url).split("?")[0].removeprefix("/fhir/")
        if path.startswith("Patient/"):
            return 200, {}, '{"resourceType": "Patient", "id": "p1"}'
        return 200, {}, json.dumps(searchset(resource(path, f"{path}-server")))

    rsps.add_callback(responses.GET, re.compile(re.escape(BASE) + r"/.*"), callback=answer)


# --- classify ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("present", "value", "state", "count"),
    [
        (False, None, PrefetchState.ABSENT, 0),
        (True, None, PrefetchState.NO_DATA, 0),
        (True, {"resourceType": "Bundle", "type": "searchset"}, PrefetchState.DATA, 0),
        (True, searchset(resource("Observation", "o1")), PrefetchState.DATA, 1),
        (True, {"resourceType": "Patient", "id": "p1"}, PrefetchState.DATA, 1),
        (True, outcome(), PrefetchState.FAILED, 0),
        (True, outcome("information"), PrefetchState.FAILED, 0),
        (True, {"resourceType": "Bundle", "entry": [{"resource": outcome()}]}, PrefetchState.FAILED, 0),
        (
            True,
            {"resourceType": "Bundle", "entry": [{"resource": outcome("warning")}]},
            PrefetchState.DATA,
            0,
        ),
        (True, {"no": "resourceType"}, PrefetchState.FAILED, 0),
        (True, "a string", PrefetchState.FAILED, 0),
        (
            True,
            {"resourceType": "Bundle", "entry": ["junk", 3, {"resource": "x"}, {}]},
            PrefetchState.DATA,
            0,
        ),
    ],
    ids=[
        "absent",
        "null",
        "empty bundle",
        "bundle",
        "single resource",
        "OperationOutcome",
        "OperationOutcome without errors",
        "bundle of error outcomes",
        "bundle of a warning",
        "no resourceType",
        "not an object",
        "junk entries dropped",
    ],
)
def test_classify(present: bool, value: object, state: PrefetchState, count: int) -> None:
    got, resources = classify(present, value)
    assert got is state
    assert len(resources) == count


# --- rendering ---------------------------------------------------------------------------------------


def test_render_fills_context_and_user_tokens_and_encodes_values() -> None:
    context = {"patientId": "a b&c=d/e", "userId": "Practitioner/doc 1"}
    assert render("Observation?patient={{context.patientId}}&_count=5", context) == (
        "Observation?patient=a%20b%26c%3Dd%2Fe&_count=5"
    )
    assert render("Practitioner/{{userPractitionerId}}", context) == "Practitioner/doc%201"
    assert render("X?u={{ context.userId }}", context) == "X?u=Practitioner%2Fdoc%201"


@pytest.mark.parametrize(
    ("template", "context"),
    [
        ("Patient/{{context.encounterId}}", CONTEXT),
        ("PractitionerRole/{{userPractitionerRoleId}}", CONTEXT),
        ("Patient/{{context.patientId}}", {"patientId": ".."}),
        ("Patient/{{context.patientId}}", {"patientId": ""}),
    ],
)
def test_render_refuses_tokens_without_a_safe_value(template: str, context: dict[str, Any]) -> None:
    with pytest.raises(TemplateError):
        render(template, context)


# --- the strategy --------------------------------------------------------------------------------------


def test_full_prefetch_reads_no_server(rsps: responses.RequestsMock) -> None:
    gathered = gather(full_prefetch(), BASE)
    assert len(rsps.calls) == 0
    assert {r["resourceType"] for r in gathered.resources} == {"Patient", *SEARCH_TYPES.values()}
    assert not gathered.data_cut
    assert set(gathered.sources.values()) == {"prefetch"}


def test_null_keys_mean_no_data_and_are_not_requeried(rsps: responses.RequestsMock) -> None:
    prefetch = dict.fromkeys(PREFETCH_TEMPLATES)
    gathered = gather(prefetch, BASE)
    assert gathered.resources == [] and len(rsps.calls) == 0
    gathered = gather(prefetch, None)  # no server needed either
    assert set(gathered.sources.values()) == {"null"}


def test_partial_prefetch_fetches_the_missing_keys_only(rsps: responses.RequestsMock) -> None:
    serve_everything(rsps)
    prefetch = full_prefetch()
    del prefetch["observations"], prefetch["patient"]

    gathered = gather(prefetch, BASE, token="tok")

    paths = sorted(str(c.request.path_url) for c in rsps.calls)
    assert paths == [f"/fhir/{render(PREFETCH_TEMPLATES['observations'], CONTEXT)}", "/fhir/Patient/p1"]
    assert all(c.request.headers["Authorization"] == "Bearer tok" for c in rsps.calls)
    assert gathered.sources["observations"] == "server" and gathered.sources["conditions"] == "prefetch"
    assert {"Observation-server", "conditions-1"} <= {r["id"] for r in gathered.resources}


def test_operation_outcome_keys_fall_back_to_the_server(rsps: responses.RequestsMock) -> None:
    serve_everything(rsps)
    prefetch = full_prefetch()
    prefetch["conditions"] = outcome()
    prefetch["reports"] = {"resourceType": "Bundle", "entry": [{"resource": outcome("fatal")}]}
    gathered = gather(prefetch, BASE)
    assert sorted(str(c.request.path_url).split("?")[0] for c in rsps.calls) == [
        "/fhir/Condition",
        "/fhir/DiagnosticReport",
    ]
    assert gathered.sources["conditions"] == gathered.sources["reports"] == "server"


@pytest.mark.parametrize(
    ("missing", "types"),
    [
        (["observations"], ("Observation",)),
        (["patient", "reports"], ("DiagnosticReport", "Patient")),
        (list(PREFETCH_TEMPLATES), ("Condition", "DiagnosticReport", "Observation", "Patient", "Procedure")),
    ],
)
def test_required_keys_unobtainable_without_a_server_raise_data_unavailable(
    missing: list[str], types: tuple[str, ...]
) -> None:
    prefetch = full_prefetch()
    for key in missing:
        del prefetch[key]
    with pytest.raises(DataUnavailable) as raised:
        gather(prefetch, None)
    assert raised.value.resource_types == types


def test_operation_outcome_without_a_server_is_unavailable() -> None:
    prefetch = full_prefetch()
    prefetch["procedures"] = outcome()
    with pytest.raises(DataUnavailable, match="Procedure"):
        gather(prefetch, None)


def test_service_requests_are_optional(rsps: responses.RequestsMock) -> None:
    prefetch = full_prefetch()
    del prefetch["serviceRequests"]
    gathered = gather(prefetch, None)
    assert gathered.omitted == ("serviceRequests",)
    assert gathered.sources["serviceRequests"] == "omitted"

    rsps.get(f"{BASE}/ServiceRequest", status=500)
    gathered = gather(prefetch, BASE)
    assert gathered.omitted == ("serviceRequests",)


def test_no_prefetch_runs_every_search_in_parallel(rsps: responses.RequestsMock) -> None:
    # Every search waits at a barrier for all the others: run one after another, the first would never see
    # the rest arrive (the barrier breaks, the search fails). No wall-clock bound: a busy machine is slow.
    everyone = threading.Barrier(len(PREFETCH_TEMPLATES), timeout=20)

    def answer(request: PreparedRequest) -> tuple[int, dict[str, str], str]:
        try:
            everyone.wait()
        except threading.BrokenBarrierError:
            return 500, {}, ""
        path = str(request.path_url).split("?")[0].removeprefix("/fhir/")
        if path.startswith("Patient/"):
            return 200, {}, '{"resourceType": "Patient", "id": "p1"}'
        return 200, {}, json.dumps(searchset(resource(path, f"{path}-server")))

    rsps.add_callback(responses.GET, re.compile(re.escape(BASE) + r"/.*"), callback=answer)
    gathered = gather(
        None, BASE, settings=Settings(auth="none", fhir_budget_seconds=30, fhir_timeout_seconds=25)
    )
    assert len(rsps.calls) == len(PREFETCH_TEMPLATES)
    assert set(gathered.sources.values()) == {"server"}, "searches ran one after another"


# A hang guard, not a speed bound: the searches answer after 60 s, the budget is 0.3 s; without the budget
# the call would wait the full minute and the test's timeout (pytest-timeout) fails it.
@pytest.mark.timeout(20)
def test_budget_exceeded_is_unavailable_not_a_hang(rsps: responses.RequestsMock) -> None:
    released = threading.Event()
    serve_everything(rsps, delay=60, released=released)
    try:
        with pytest.raises(DataUnavailable):
            gather(
                None, BASE, settings=Settings(auth="none", fhir_budget_seconds=0.3, fhir_timeout_seconds=0.2)
            )
    finally:
        released.set()
        time.sleep(0.1)  # let the abandoned searches end inside this test


def test_a_paged_prefetch_is_followed_on_the_server(rsps: responses.RequestsMock) -> None:
    prefetch = full_prefetch()
    prefetch["observations"] = searchset(resource("Observation", "o1"), next_url=f"{BASE}/Observation?page=2")
    rsps.get(f"{BASE}/Observation?page=2", json=searchset(resource("Observation", "o2")))
    gathered = gather(prefetch, BASE)
    assert {"o1", "o2"} <= {r["id"] for r in gathered.resources}
    assert not gathered.data_cut


def test_a_paged_prefetch_without_a_server_is_cut() -> None:
    prefetch = full_prefetch()
    prefetch["observations"] = searchset(resource("Observation", "o1"), next_url=f"{BASE}/Observation?page=2")
    gathered = gather(prefetch, None)
    assert gathered.data_cut
    assert "o1" in {r["id"] for r in gathered.resources}


def test_a_paged_prefetch_pointing_elsewhere_is_cut_and_not_read(rsps: responses.RequestsMock) -> None:
    prefetch = full_prefetch()
    prefetch["observations"] = searchset(resource("Observation", "o1"), next_url="https://evil.example/next")
    gathered = gather(prefetch, BASE, token="tok")
    assert gathered.data_cut and len(rsps.calls) == 0


def test_the_server_is_checked_even_with_a_full_prefetch() -> None:
    with pytest.raises(FhirServerRefused):
        gather(
            full_prefetch(),
            "https://other.example/fhir",
            settings=Settings(auth="none", fhir_servers=(BASE,)),
        )
    with pytest.raises(FhirServerRefused):
        gather(full_prefetch(), "javascript:alert(1)")


def test_duplicates_are_passed_once_and_other_patients_are_passed_through() -> None:
    prefetch = full_prefetch()
    other = {"resourceType": "Observation", "id": "x", "subject": {"reference": "Patient/other"}}
    prefetch["observations"] = searchset(resource("Observation", "o1"), resource("Observation", "o1"), other)
    gathered = gather(prefetch, None)
    ids = [r["id"] for r in gathered.resources if r["resourceType"] == "Observation"]
    assert ids == ["o1", "x", "vitals-1"]  # the engine, not the gatherer, decides whose data it is


def test_strategy_from_templates_names_failure_modes() -> None:
    strategy = PrefetchStrategy.from_templates(
        {"a": "Patient/{{context.patientId}}", "b": "X?p=1"}, optional={"b"}
    )
    assert [(k.name, k.on_failure.value, k.resource_type) for k in strategy.keys] == [
        ("a", "fail", "Patient"),
        ("b", "omit", "X"),
    ]


def test_a_patient_read_answered_404_is_no_data_like_null(rsps: responses.RequestsMock) -> None:
    # CDS Hooks: prefetch must equal what the service would fetch; a null patient prefetch is "no data",
    # so a 404 on the same read is too (412 is for data that cannot be had, not for absent data).
    prefetch = full_prefetch()
    del prefetch["patient"]
    rsps.get(f"{BASE}/Patient/{PATIENT}", status=404)
    gathered = gather(prefetch, BASE)
    assert gathered.sources["patient"] == "null"
    assert not any(r.get("resourceType") == "Patient" for r in gathered.resources)


def test_a_search_answered_404_is_still_unavailable(rsps: responses.RequestsMock) -> None:
    prefetch = full_prefetch()
    del prefetch["observations"]
    rsps.get(f"{BASE}/Observation", status=404)
    with pytest.raises(DataUnavailable):
        gather(prefetch, BASE)
