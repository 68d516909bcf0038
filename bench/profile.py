"""`python -m bench.profile`: where a call's time goes, with pyinstrument.

Writes bench/results/profile.json (git-ignored), one pyinstrument text report per case, and prints them:
  * typical, long: prefetch calls through the WSGI app in-process (Flask, the app's logging and audit
    store, the garbage collector as in a worker; no gunicorn);
  * long-no-prefetch: one no-prefetch call against the slow fake FHIR server, after the server's request
    timeline, which shows the critical path (the pages of one search are sequential).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from pyinstrument import Profiler

from bench.charts import CHARTS, TODAY
from bench.fhir_server import SlowFhirServer
from cds_service.fhir.prefetch import PREFETCH_TEMPLATES
from cds_service.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"
SERVICE_PATH = "/cds-services/osteoporosis-patient-view"


def wsgi_caller(app: Any, body: bytes) -> Callable[[], None]:
    def call() -> None:
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": SERVICE_PATH,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8080",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1:8080",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json",
        }
        status: list[str] = []
        answer = app(environ, lambda s, h, e=None: status.append(s))
        try:
            b"".join(answer)
        finally:
            answer.close()  # as a WSGI server does after the last byte: the audit write of the call runs here
        if not status[0].startswith("200"):
            raise RuntimeError(f"the service answered {status[0]}")

    return call


def timeline(log: list[tuple[float, float, str]]) -> str:
    first = min(start for start, _, _ in log)
    lines = []
    for start, end, path in sorted(log):
        page = f" (from {path.split('_offset=')[1].split('&')[0]})" if "_offset=" in path else ""
        span = f"{(start - first) * 1000:7.1f} ms -> {(end - first) * 1000:7.1f} ms"
        lines.append(f"{span}  GET {path.split('?')[0]}{page}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="prefetch calls profiled per chart")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)
    from cds_service.api.app import create_app

    reports: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="osteo-profile-") as tmp:
        env = {
            "OSTEO_CDS_AUTH": "none",
            "OSTEO_CDS_TODAY": TODAY,
            "OSTEO_CDS_DATABASE_URL": f"sqlite:///{tmp}/audit.db",
            "OSTEO_CDS_METRICS": "false",  # in-process there is no multiprocess metrics directory
        }
        app = create_app(Settings.from_env(env))
        charts = {name: build() for name, build in CHARTS.items()}
        for name, chart in charts.items():
            call = wsgi_caller(app, orjson.dumps(chart.prefetch_request(PREFETCH_TEMPLATES)))
            for _ in range(20):
                call()
            profiler = Profiler(interval=0.0002)
            profiler.start()
            for _ in range(args.calls):
                call()
            profiler.stop()
            reports[name] = profiler.output_text(unicode=False, color=False)
        with SlowFhirServer(charts["long"]) as fhir:
            call = wsgi_caller(app, orjson.dumps(charts["long"].no_prefetch_request(fhir.base)))
            call()
            fhir.log.clear()
            profiler = Profiler(interval=0.0005)
            profiler.start()
            call()
            profiler.stop()
            reports["long-no-prefetch"] = (
                "FHIR server timeline (each request answered after 50 ms)\n"
                + timeline(fhir.log)
                + "\n\n"
                + profiler.output_text(unicode=False, color=False)
            )
    RESULTS.mkdir(parents=True, exist_ok=True)
    target = RESULTS / "profile.json"
    target.write_text(json.dumps(reports, indent=1) + "\n", encoding="utf-8")
    for name, report in reports.items():
        print(f"=== {name} ===\n{report}")
    print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
