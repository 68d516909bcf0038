"""FHIR searches on the EHR's server: paging, timeouts, one retry, and the bearer token kept to its origin."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter

from cds_service.fhir.bundle import Resource, entry_resources, next_link
from cds_service.fhir.prefetch import resource_type_of
from cds_service.settings import Settings

log = logging.getLogger(__name__)
# urllib3 logs each request line, patient id in the query included, at DEBUG: never let those through.
logging.getLogger("urllib3").setLevel(logging.WARNING)

# Shared by all requests of a worker process; created once. Threads start lazily, so a fork before the
# first request (gunicorn) copies no threads. Page-by-page reading inside one task never submits here,
# so tasks cannot wait on each other.
EXECUTOR = ThreadPoolExecutor(max_workers=32, thread_name_prefix="fhir-search")
# Connections kept per FHIR server and call: one per parallel search (the query plan has ten keys, more when a
# code list is split), so none is discarded and opened again (a TLS handshake each on a real server).
POOL_SIZE = 16

FHIR_JSON = "application/fhir+json"
RETRY_STATUSES = frozenset({502, 503, 504})
# How a server refuses a search it does not support (with an OperationOutcome): asked once more without the
# optional parameters (issue 14: `_count`, `_sort`, `combo-code`), never without a required one.
REFUSED = frozenset({"http 400", "http 422"})
RETRY_JITTER_SECONDS = (0.05, 0.2)
# A page larger than this is not a FHIR search page we want to parse inside a 2-second budget.
MAX_PAGE_BYTES = 32 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024

# The one observability hook (api/observability.py sets it): called in the thread that creates a client,
# it returns what is told of each of that client's searches: (resource type, outcome, seconds), the
# outcome being "ok", "cut" or the failure reason. None: nobody listens.
SearchObserver = Callable[[str, str, float], None]
search_observer_factory: Callable[[], SearchObserver | None] | None = None


class FhirServerRefused(ValueError):
    """`fhirServer` is not a URL this service may call (scheme, credentials, or OSTEO_CDS_FHIR_SERVERS)."""


@dataclass
class QueryResult:
    """One template's answer. `failure`: a short reason for logs (never a URL or body); `cut`: incomplete."""

    resources: list[Resource] = field(default_factory=list)
    failure: str | None = None
    cut: bool = False
    pages: int = 0
    dropped: tuple[str, ...] = ()  # optional parameters the server refused; the answer is without them

    @property
    def ok(self) -> bool:
        return self.failure is None


class Deadline:
    """The overall time budget of one gather (OSTEO_CDS_FHIR_BUDGET)."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def passed(self) -> bool:
        return time.monotonic() >= self.end


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is None:
        port = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def check_fhir_server(url: str, settings: Settings) -> str:
    """The base URL (no trailing slash) if the service may call it; else FhirServerRefused.

    A prefix of OSTEO_CDS_FHIR_SERVERS matches at a path boundary only, so `https://ehr.example` does not
    allow `https://ehr.example.evil.org`.
    """
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise FhirServerRefused("fhirServer must be an http or https URL")
    if parts.username is not None or parts.password is not None:
        raise FhirServerRefused("fhirServer must not carry credentials")
    if parts.query or parts.fragment:
        raise FhirServerRefused("fhirServer must be a base URL without query or fragment")
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        raise FhirServerRefused("fhirServer has an invalid port") from exc
    base = url.rstrip("/")
    if settings.fhir_servers and not any(
        base == prefix.rstrip("/") or base.startswith(prefix.rstrip("/") + "/")
        for prefix in settings.fhir_servers
    ):
        raise FhirServerRefused("fhirServer is not one of the FHIR servers this service may call")
    return base


class FhirClient:
    """Reads one FHIR server for one hook call. Not shared between calls (its session holds connections)."""

    def __init__(
        self,
        base_url: str,
        access_token: str | None,
        settings: Settings,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._origin = _origin(self.base_url)
        self._token = access_token
        self._timeout = settings.fhir_timeout_seconds
        self._max_pages = settings.fhir_max_pages
        if session is None:
            session = requests.Session()
            session.mount("http://", HTTPAdapter(pool_maxsize=POOL_SIZE, max_retries=0))
            session.mount("https://", HTTPAdapter(pool_maxsize=POOL_SIZE, max_retries=0))
        self._session = session
        self._observe = search_observer_factory() if search_observer_factory is not None else None

    def close(self) -> None:
        self._session.close()

    def search(self, relative: str, deadline: Deadline, optional: tuple[str, ...] = ()) -> QueryResult:
        """Run a rendered template (`Observation?patient=...` or `Patient/123`), following `next` links.

        If the server refuses the search (400/422) and it carries any of the `optional` parameters, it is
        asked once more without them; `dropped` names them.
        """
        resource_type = resource_type_of(relative)
        started = time.monotonic()
        result = self._read_from(
            f"{self.base_url}/{relative.lstrip('/')}", resource_type, deadline, pages_before=0
        )
        present = _present(relative, optional)
        if result.failure in REFUSED and present:
            log.warning(
                "fhir %s refused (%s); asking again without %s", resource_type, result.failure, present
            )
            result = self._read_from(
                f"{self.base_url}/{_without(relative, present).lstrip('/')}",
                resource_type,
                deadline,
                pages_before=0,
            )
            result.dropped = present
        self._log(resource_type, result, started)
        return result

    def continue_bundle(
        self, bundle: Mapping[str, Any], resource_type: str, deadline: Deadline
    ) -> QueryResult:
        """The pages after a prefetched Bundle (the prefetched page counts as the first)."""
        url = next_link(bundle)
        if url is None:
            return QueryResult()
        started = time.monotonic()
        result = self._follow(url, self.base_url, deadline, pages_before=1)
        self._log(resource_type, result, started)
        return result

    # --- paging -----------------------------------------------------------------------------------

    def _read_from(self, url: str, resource_type: str, deadline: Deadline, pages_before: int) -> QueryResult:
        body, failure = self._get_json(url, deadline)
        if body is None:
            return QueryResult(failure=failure)
        kind = body.get("resourceType")
        if kind == "OperationOutcome":
            return QueryResult(failure="OperationOutcome")
        if kind != "Bundle":
            if kind != resource_type:
                return QueryResult(failure="unexpected resourceType")
            return QueryResult(resources=[body], pages=1)
        resources, only_errors = entry_resources(body)
        if only_errors:
            return QueryResult(failure="OperationOutcome")
        result = QueryResult(resources=resources, pages=1)
        following = next_link(body)
        if following is not None:
            more = self._follow(following, url, deadline, pages_before + 1)
            result.resources.extend(more.resources)
            result.pages += more.pages
            # a later page that fails leaves a usable but incomplete answer
            result.cut = more.cut or more.failure is not None
        return result

    def _follow(self, href: str, current: str, deadline: Deadline, pages_before: int) -> QueryResult:
        result = QueryResult()
        seen: set[str] = {current}
        pages = pages_before
        next_url: str | None = href
        while next_url is not None:
            url = urljoin(current, next_url)
            if url in seen:
                break  # a server repeating a page: what we have is all there is
            if pages >= self._max_pages or _origin(url) != self._origin or deadline.passed():
                # page cap, a next link to another origin (not followed: never send it the token), no time
                result.cut = True
                break
            seen.add(url)
            body, failure = self._get_json(url, deadline)
            if body is None or body.get("resourceType") != "Bundle":
                result.failure = failure or "unexpected resourceType"
                result.cut = True
                break
            resources, only_errors = entry_resources(body)
            if only_errors:
                result.failure = "OperationOutcome"
                result.cut = True
                break
            result.resources.extend(resources)
            result.pages += 1
            pages += 1
            current, next_url = url, next_link(body)
        return result

    # --- one GET ----------------------------------------------------------------------------------

    def _get_json(self, url: str, deadline: Deadline) -> tuple[dict[str, Any] | None, str | None]:
        """The JSON object at `url`, or (None, reason). One retry on connection errors and 502/503/504."""
        body, failure, retry = self._get_once(url, deadline)
        if retry:
            pause = random.uniform(*RETRY_JITTER_SECONDS)
            if deadline.remaining() > pause + 0.05:
                time.sleep(pause)
                body, failure, _ = self._get_once(url, deadline)
        return body, failure

    def _get_once(self, url: str, deadline: Deadline) -> tuple[dict[str, Any] | None, str | None, bool]:
        remaining = deadline.remaining()
        if remaining <= 0:
            return None, "budget exceeded", False
        timeout = min(self._timeout, remaining)
        headers = {"Accept": FHIR_JSON}
        if self._token and _origin(url) == self._origin:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            with self._session.get(
                url, headers=headers, timeout=(timeout, timeout), stream=True, allow_redirects=False
            ) as response:
                status = response.status_code
                if status in RETRY_STATUSES:
                    return None, f"http {status}", True
                if not 200 <= status < 300:
                    # redirects are not followed: they could lead the token or the request elsewhere
                    return None, f"http {status}", False
                raw, failure = _read_body(response, deadline)
        except requests.exceptions.ConnectionError:
            return None, "connection error", True
        except requests.exceptions.Timeout:
            return None, "timeout", False
        except requests.exceptions.RequestException as exc:
            return None, f"request error {type(exc).__name__}", False
        if raw is None:
            return None, failure, False
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None, "not JSON", False
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            return None, "not a FHIR resource", False
        return body, None, False

    def _log(self, resource_type: str, result: QueryResult, started: float) -> None:
        ms = (time.monotonic() - started) * 1000
        if self._observe is not None:
            self._observe(resource_type, result.failure or ("cut" if result.cut else "ok"), ms / 1000)
        if result.ok:
            log.info(
                "fhir %s: %d resources in %d page(s)%s, %.0f ms",
                resource_type,
                len(result.resources),
                result.pages,
                ", cut" if result.cut else "",
                ms,
            )
        else:
            log.warning("fhir %s failed (%s) after %.0f ms", resource_type, result.failure, ms)


def _present(relative: str, names: tuple[str, ...]) -> tuple[str, ...]:
    """Which of `names` the query of `relative` carries."""
    given = {part.partition("=")[0] for part in relative.partition("?")[2].split("&")}
    return tuple(name for name in names if name in given)


def _without(relative: str, names: tuple[str, ...]) -> str:
    path, _, query = relative.partition("?")
    kept = [part for part in query.split("&") if part.partition("=")[0] not in names]
    return f"{path}?{'&'.join(kept)}" if kept else path


def _read_body(response: requests.Response, deadline: Deadline) -> tuple[bytes | None, str | None]:
    """The body, read in chunks so a slow or huge answer cannot outlast the budget or fill the memory."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_PAGE_BYTES:
        return None, "page too large"
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(_CHUNK_BYTES):
        size += len(chunk)
        if size > MAX_PAGE_BYTES:
            return None, "page too large"
        if deadline.passed():
            return None, "budget exceeded"
        chunks.append(chunk)
    return b"".join(chunks), None
