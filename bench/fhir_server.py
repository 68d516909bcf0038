"""A slow fake FHIR server on loopback: answers reads and searches from a chart after a fixed delay,
pages like a real server (`_count` capped at MAX_PAGE_SIZE, `next` links), and counts requests."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson

from bench.charts import Chart, searchset
from scripts.strict_fhir_server import LoopbackFhirServer

DELAY_SECONDS = 0.050
MAX_PAGE_SIZE = 200  # a common server cap (HAPI-based servers ship with max_page_size 200)
DEFAULT_PAGE_SIZE = 20
BASE_PATH = "/fhir"


class SlowFhirServer(LoopbackFhirServer):
    """`with SlowFhirServer(chart) as server:` serves `server.base` until the block ends."""

    thread_name = "slow-fhir"

    def __init__(self, chart: Chart, delay: float = DELAY_SECONDS) -> None:
        self.chart = chart
        self.delay = delay
        self._lock = threading.Lock()
        self._count = 0
        self._started = time.perf_counter()
        self.log: list[tuple[float, float, str]] = []  # (start s, end s, path and query) of every request
        self._listen()

    @property
    def requests(self) -> int:
        with self._lock:
            return self._count

    def answer(self, path: str, query: str) -> tuple[int, Any]:
        relative = path.removeprefix(BASE_PATH).strip("/")
        params = dict(parse_qsl(query))
        if "/" in relative:
            found = self.chart.read(relative)
            return (200, found) if found is not None else (404, _outcome("not found"))
        resource_type = relative
        offset = int(params.pop("_offset", "0"))
        size = min(int(params.get("_count", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)
        matches = self.chart.search(resource_type, params)
        page = matches[offset : offset + size]
        self_url = f"{self.base}/{resource_type}?{urlencode({**params, '_offset': offset})}"
        next_url = None
        if offset + size < len(matches):
            next_url = f"{self.base}/{resource_type}?{urlencode({**params, '_offset': offset + size})}"
        return 200, searchset(self_url, page, next_url)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                started = time.perf_counter()
                with server._lock:
                    server._count += 1
                time.sleep(server.delay)
                parts = urlsplit(self.path)
                status, body = server.answer(parts.path, parts.query)
                raw = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)
                ended = time.perf_counter()
                with server._lock:
                    server.log.append((started - server._started, ended - server._started, self.path))

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def _outcome(text: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "not-found", "diagnostics": text}],
    }
