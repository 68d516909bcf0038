"""FhirClient over `responses`: paging, the token kept to its origin, retries, junk, the server check."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
import responses

from cds_service.fhir.client import Deadline, FhirClient, FhirServerRefused, check_fhir_server
from cds_service.settings import Settings

BASE = "https://ehr.example.org/fhir"
SEARCH = "Observation?patient=p1&_count=200"
TOKEN = "secret-access-token"


def observation(n: int, patient: str = "p1") -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"o{n}", "subject": {"reference": f"Patient/{patient}"}}


def page(*resources: dict[str, Any], next_url: str | None = None) -> dict[str, Any]:
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if resources:
        bundle["entry"] = [{"resource": r} for r in resources]
    if next_url:
        bundle["link"] = [{"relation": "self", "url": "ignored"}, {"relation": "next", "url": next_url}]
    return bundle


def client(settings: Settings | None = None, token: str | None = TOKEN) -> FhirClient:
    return FhirClient(BASE, token, settings or Settings(auth="none"))


def deadline(seconds: float = 5.0) -> Deadline:
    return Deadline(seconds)


def test_follows_chained_next_links(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{BASE}/Observation", json=page(observation(1), next_url=f"{BASE}/Observation?page=2"))
    rsps.get(f"{BASE}/Observation?page=2", json=page(observation(2), next_url="Observation?page=3"))
    rsps.get(f"{BASE}/Observation?page=3", json=page(observation(3)))

    result = client().search(SEARCH, deadline())

    assert result.ok and not result.cut
    assert [r["id"] for r in result.resources] == ["o1", "o2", "o3"]
    assert result.pages == 3
    for call in rsps.calls:
        assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert call.request.headers["Accept"] == "application/fhir+json"


def test_stops_at_the_page_cap_and_marks_the_answer_cut(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{BASE}/Observation", json=page(observation(1), next_url=f"{BASE}/Observation?page=2"))
    rsps.get(f"{BASE}/Observation?page=2", json=page(observation(2), next_url=f"{BASE}/Observation?page=3"))
    third = rsps.get(f"{BASE}/Observation?page=3", json=page(observation(3)))

    result = client(Settings(auth="none", fhir_max_pages=2)).search(SEARCH, deadline())

    assert result.ok and result.cut
    assert [r["id"] for r in result.resources] == ["o1", "o2"]
    assert third.call_count == 0


@pytest.mark.parametrize(
    "foreign",
    [
        "https://evil.example.com/fhir/Observation?page=2",
        "http://ehr.example.org/fhir/Observation?page=2",  # other scheme
        "https://ehr.example.org:8443/fhir/Observation?page=2",  # other port
        "https://ehr.example.org.evil.com/fhir/Observation?page=2",
    ],
)
def test_next_link_to_another_origin_is_not_followed(rsps: responses.RequestsMock, foreign: str) -> None:
    rsps.get(f"{BASE}/Observation", json=page(observation(1), next_url=foreign))
    elsewhere = rsps.get(foreign, json=page(observation(2)))

    result = client().search(SEARCH, deadline())

    assert elsewhere.call_count == 0, "the token's origin is the only one read"
    assert result.ok and result.cut
    assert [r["id"] for r in result.resources] == ["o1"]
    assert all(TOKEN not in str(c.request.url) for c in rsps.calls)


def test_no_token_no_authorization_header(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{BASE}/Observation", json=page(observation(1)))
    client(token=None).search(SEARCH, deadline())
    assert "Authorization" not in rsps.calls[0].request.headers


def test_a_repeated_next_link_ends_paging(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{BASE}/Observation", json=page(observation(1), next_url=f"{BASE}/Observation?page=2"))
    rsps.get(f"{BASE}/Observation?page=2", json=page(observation(2), next_url=f"{BASE}/Observation?page=2"))
    result = client().search(SEARCH, deadline())
    assert [r["id"] for r in result.resources] == ["o1", "o2"]
    assert len(rsps.calls) == 2


def test_a_read_returns_the_resource(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{BASE}/Patient/p1", json={"resourceType": "Patient", "id": "p1"})
    result = client().search("Patient/p1", deadline())
    assert result.ok and result.resources == [{"resourceType": "Patient", "id": "p1"}]


@pytest.mark.parametrize(
    ("first", "then", "ok", "calls"),
    [
        (503, 200, True, 2),
        (502, 200, True, 2),
        (504, 504, False, 2),
        (500, 200, False, 1),  # not a transient status: no retry
        (404, 200, False, 1),
        ("connection", 200, True, 2),
        ("connection", "connection", False, 2),
    ],
    ids=str,
)
def test_one_retry_on_connection_errors_and_gateway_statuses(
    rsps: responses.RequestsMock, first: int | str, then: int | str, ok: bool, calls: int
) -> None:
    for answer in (first, then):
        if answer == "connection":
            rsps.get(f"{BASE}/Observation", body=requests.ConnectionError("refused"))
        elif answer == 200:
            rsps.get(f"{BASE}/Observation", json=page(observation(1)))
        else:
            rsps.get(f"{BASE}/Observation", status=int(answer), body="<html>bad gateway</html>")

    result = client().search(SEARCH, deadline())

    assert result.ok is ok
    assert len(rsps.calls) == calls


JUNK = {
    "html": ("<html><body>Login</body></html>", 200, "text/html"),
    "truncated JSON": ('{"resourceType": "Bundle", "entry": [', 200, "application/fhir+json"),
    "JSON array": ("[]", 200, "application/json"),
    "no resourceType": ('{"entry": []}', 200, "application/json"),
    "OperationOutcome": (
        json.dumps(
            {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "forbidden"}]}
        ),
        200,
        "application/fhir+json",
    ),
    "wrong resourceType": ('{"resourceType": "Patient", "id": "p1"}', 200, "application/fhir+json"),
    "server error": ('{"resourceType": "Bundle"}', 500, "application/fhir+json"),
    "unauthorized": ("", 401, "text/plain"),
    "redirect": ("", 302, "text/plain"),
    "invalid UTF-8": (b'{"resourceType": "Bundle", "id": "\xff"}', 200, "application/fhir+json"),
    "only error outcomes": (
        json.dumps(
            {
                "resourceType": "Bundle",
                "entry": [
                    {"resource": {"resourceType": "OperationOutcome", "issue": [{"severity": "fatal"}]}}
                ],
            }
        ),
        200,
        "application/fhir+json",
    ),
}


@pytest.mark.parametrize("kind", list(JUNK))
def test_junk_answers_are_failed_queries_never_exceptions(rsps: responses.RequestsMock, kind: str) -> None:
    body, status, content_type = JUNK[kind]
    headers = {"Location": "https://elsewhere.example/"} if status == 302 else {}
    rsps.get(f"{BASE}/Observation", body=body, status=status, content_type=content_type, headers=headers)

    result = client().search(SEARCH, deadline())

    assert not result.ok
    assert result.resources == []
    assert "ehr.example.org" not in (result.failure or "")


def test_a_failing_later_page_keeps_the_first_and_marks_cut(rsps: responses.RequestsMock) -> None:
    rsps.get(f"{BASE}/Observation", json=page(observation(1), next_url=f"{BASE}/Observation?page=2"))
    rsps.get(f"{BASE}/Observation?page=2", body="<html>oops</html>", status=200)
    result = client().search(SEARCH, deadline())
    assert result.ok and result.cut
    assert [r["id"] for r in result.resources] == ["o1"]


def test_warning_outcomes_inside_a_searchset_are_dropped_not_failures(rsps: responses.RequestsMock) -> None:
    warning = {"resourceType": "OperationOutcome", "issue": [{"severity": "warning", "code": "processing"}]}
    rsps.get(f"{BASE}/Observation", json=page(observation(1), warning))
    result = client().search(SEARCH, deadline())
    assert result.ok and [r["resourceType"] for r in result.resources] == ["Observation"]


def test_an_exhausted_budget_sends_nothing(rsps: responses.RequestsMock) -> None:
    result = client().search(SEARCH, Deadline(0))
    assert result.failure == "budget exceeded"
    assert len(rsps.calls) == 0


@pytest.mark.parametrize(
    ("url", "allowed", "ok"),
    [
        ("https://ehr.example.org/fhir", (), True),
        ("http://localhost:8080/fhir/", (), True),
        ("ftp://ehr.example.org/fhir", (), False),
        ("file:///etc/passwd", (), False),
        ("ehr.example.org/fhir", (), False),
        ("https://user:pw@ehr.example.org/fhir", (), False),
        ("https://ehr.example.org/fhir?x=1", (), False),
        ("https://ehr.example.org:99999/fhir", (), False),
        ("https://ehr.example.org/fhir", ("https://ehr.example.org/fhir",), True),
        ("https://ehr.example.org/fhir/", ("https://ehr.example.org/fhir",), True),
        ("https://ehr.example.org/fhir/tenant1", ("https://ehr.example.org/fhir/",), True),
        ("https://ehr.example.org/fhirx", ("https://ehr.example.org/fhir",), False),
        ("https://ehr.example.org.evil.com/fhir", ("https://ehr.example.org",), False),
        ("https://other.example.org/fhir", ("https://ehr.example.org/fhir", "https://b.example/"), False),
    ],
)
def test_fhir_server_check(url: str, allowed: tuple[str, ...], ok: bool) -> None:
    settings = Settings(auth="none", fhir_servers=allowed)
    if ok:
        assert check_fhir_server(url, settings) == url.rstrip("/")
    else:
        with pytest.raises(FhirServerRefused):
            check_fhir_server(url, settings)
