"""An in-process FHIR R4 server as strict as the strictest real one, for tests, examples and benchmarks.

It answers reads and searches from a list of resources, and behaves like Epic's FHIR API and a US Core
server at their least forgiving (issue 14):

- an Observation search without `code` or `category` is refused: 400 with an OperationOutcome
  "Must have either code or category";
- `_sort` is refused (400), as is any parameter it does not know;
- `_count` is capped at MAX_PAGE_SIZE (50): longer answers are paged with `next` links;
- `combo-code` is refused (400) unless `combo_code=True`.

Searches understood: `patient`, `code`, `category`, `type`, `intent`, `status` (token lists, `system|code`
or a bare code, FHIR's `\\,` escape), `date=ge`/`le`/`gt`/`lt` (yyyy-mm-dd), `_count`. `search()` is the same
matching without the strictness, for building prefetch answers (scripts/make_examples.py).

    with StrictFhirServer(resources) as server:   # serves server.base until the block ends
        requests.get(f"{server.base}/Observation?patient=p1&code=38267-1")
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

Resource = dict[str, Any]

MAX_PAGE_SIZE = 50
BASE_PATH = "/fhir"
_TOKEN_PARAMS = {"code": "code", "category": "category", "type": "type"}
_LIST_PARAMS = ("intent", "status")
_KNOWN = {"patient", "code", "category", "type", "intent", "status", "date", "_count", "_offset"}
_DATE_FIELDS = ("effectiveDateTime", "effectiveInstant", "effectivePeriod", "issued", "date", "authoredOn")
_UNESCAPED_COMMA = re.compile(r"(?<!\\),")


class Listener(ThreadingHTTPServer):
    """socketserver's default listen backlog is 5: a no-prefetch call opens ten searches at once, and the
    connections past the backlog wait for the client's SYN retransmission (~1 s). Real servers listen
    deeper (the bench's server uses this listener too)."""

    request_queue_size = 64


class LoopbackFhirServer:
    """A FHIR server on a free loopback port in a thread: `with Server(...) as server:` serves `server.base`.
    Subclasses give the request handler; the strict server here and bench/fhir_server.py share this."""

    thread_name = "fhir"

    def _listen(self) -> None:
        self._httpd = Listener(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=self.thread_name, daemon=True)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    @property
    def base(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}{BASE_PATH}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class Refused(ValueError):
    """The server answers 400 with an OperationOutcome saying this."""


def search(resources: Iterable[Resource], resource_type: str, params: Mapping[str, str]) -> list[Resource]:
    """The resources a FHIR server returns for `[resource_type]?params` (no paging, no strictness)."""
    patient = params.get("patient")
    reference = None if patient is None else f"Patient/{patient.removeprefix('Patient/')}"
    tokens = {field: _tokens(params[name]) for name, field in _TOKEN_PARAMS.items() if name in params}
    lists = {name: params[name].split(",") for name in _LIST_PARAMS if name in params}
    date = params.get("date")
    return [
        r
        for r in resources
        if r.get("resourceType") == resource_type
        and (reference is None or _patient_of(r) == reference)
        and all(_has_token(r.get(field), wanted) for field, wanted in tokens.items())
        and all(r.get(name) in allowed for name, allowed in lists.items())
        and (date is None or _date_matches(r, date))
    ]


def _patient_of(resource: Resource) -> str | None:
    for field in ("subject", "patient"):
        value = resource.get(field)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            return str(value["reference"])
    return None


def _tokens(raw: str) -> set[tuple[str | None, str]]:
    tokens: set[tuple[str | None, str]] = set()
    for token in _UNESCAPED_COMMA.split(raw):
        system, bar, code = token.partition("|")
        value = (system, code) if bar else (None, system)
        tokens.add((value[0], re.sub(r"\\(.)", r"\1", value[1])))
    return tokens


def _has_token(concepts: object, tokens: set[tuple[str | None, str]]) -> bool:
    for concept in concepts if isinstance(concepts, list) else [concepts]:
        codings = concept.get("coding") if isinstance(concept, dict) else None
        for coding in codings if isinstance(codings, list) else []:
            if not isinstance(coding, dict):
                continue
            code, system = coding.get("code"), coding.get("system", "")
            if (None, code) in tokens or (system, code) in tokens:
                return True
    return False


def _date_of(resource: Resource) -> str | None:
    for field in _DATE_FIELDS:
        value = resource.get(field)
        if isinstance(value, dict):
            value = value.get("start")
        if isinstance(value, str) and value:
            return value[:10]
    return None


def _date_matches(resource: Resource, raw: str) -> bool:
    when = _date_of(resource)
    if when is None:
        return False
    prefix, bound = raw[:2], raw[2:12]
    if prefix not in ("ge", "le", "gt", "lt"):
        prefix, bound = "eq", raw[:10]
    return {
        "ge": when >= bound,
        "le": when <= bound,
        "gt": when > bound,
        "lt": when < bound,
        "eq": when == bound,
    }[prefix]


class StrictFhirServer(LoopbackFhirServer):
    """`with StrictFhirServer(resources) as server:` serves `server.base`; `delay` seconds per request."""

    thread_name = "strict-fhir"

    def __init__(self, resources: Sequence[Resource], delay: float = 0.0, combo_code: bool = False) -> None:
        self.resources = list(resources)
        self.delay = delay
        self.combo_code = combo_code
        self._lock = threading.Lock()
        self.log: list[str] = []  # path and query of every request, in arrival order
        self.refused: list[str] = []  # the requests answered 400
        self._listen()

    def waves(self) -> int:
        """Rounds of requests a client needed: the longest chain of one search (its retries and pages)."""
        chains: dict[str, int] = {}
        for line in self.log:
            path, _, query = line.partition("?")
            kept = sorted((k, v) for k, v in parse_qsl(query) if k not in ("_offset", "_count", "_sort"))
            key = f"{path}?{urlencode(kept)}"
            chains[key] = chains.get(key, 0) + 1
        return max(chains.values(), default=0)

    def answer(self, path: str, query: str) -> tuple[int, Any]:
        relative = path.removeprefix(BASE_PATH).strip("/")
        if "/" in relative:
            resource_type, _, resource_id = relative.partition("/")
            found = next(
                (
                    r
                    for r in self.resources
                    if r.get("resourceType") == resource_type and r.get("id") == resource_id
                ),
                None,
            )
            return (200, found) if found is not None else (404, outcome("not-found", "not found"))
        try:
            params = self._params(relative, query)
        except Refused as exc:
            return 400, outcome("invalid", str(exc))
        offset = int(params.pop("_offset", "0"))
        size = min(int(params.pop("_count", str(MAX_PAGE_SIZE))), MAX_PAGE_SIZE)
        matches = search(self.resources, relative, params)
        page = matches[offset : offset + size]
        links = [{"relation": "self", "url": self._url(relative, params, offset, size)}]
        if offset + size < len(matches):
            links.append({"relation": "next", "url": self._url(relative, params, offset + size, size)})
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(matches)}
        bundle["link"] = links
        if page:
            bundle["entry"] = [
                {
                    "fullUrl": f"{self.base}/{r['resourceType']}/{r['id']}",
                    "resource": r,
                    "search": {"mode": "match"},
                }
                for r in page
            ]
        return 200, bundle

    def _params(self, resource_type: str, query: str) -> dict[str, str]:
        pairs = parse_qsl(query, keep_blank_values=True)
        names = [name for name, _ in pairs]
        if "_sort" in names:
            raw_sort = dict(pairs)["_sort"]
            raise Refused(f"_sort={raw_sort} is not supported")
        unknown = set(names) - _KNOWN - ({"combo-code"} if self.combo_code else set())
        if unknown:
            raise Refused(f"unknown search parameter(s): {', '.join(sorted(unknown))}")
        params = dict(pairs)
        if resource_type == "Observation" and not ({"code", "category"} & set(params)):
            raise Refused("Must have either code or category")
        if "_count" in params and not params["_count"].isdigit():
            raise Refused("_count must be a positive integer")
        return params

    def _url(self, resource_type: str, params: Mapping[str, str], offset: int, size: int) -> str:
        return f"{self.base}/{resource_type}?{urlencode({**params, '_count': size, '_offset': offset})}"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with server._lock:
                    server.log.append(self.path.removeprefix(BASE_PATH))
                if server.delay:
                    time.sleep(server.delay)
                parts = urlsplit(self.path)
                status, body = server.answer(parts.path, parts.query)
                if status == 400:
                    with server._lock:
                        server.refused.append(self.path.removeprefix(BASE_PATH))
                raw = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def outcome(code: str, text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": text}],
    }
