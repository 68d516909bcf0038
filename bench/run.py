"""`make bench`: the service against its floor, in-process and over HTTP, with and without prefetch.

Measures, in one run and on loopback only (every load bounded in count and in time):
  * in-process `engine.evaluate` CPU time (and the stages of a call) for a typical and a long chart;
  * sequential HTTP latency (p50/p95) of the service and of the floor (bench/floor.py: a bare Flask app
    under the same gunicorn options that parses the same body), as a ratio, and the CPU time the
    workers spent per request (robust to other load on the machine);
  * throughput under a bounded concurrent load (service vs floor);
  * no-prefetch calls against a fake FHIR server that answers after 50 ms: requests per call, latency;
  * report reading on hostile ~10^6-character inputs (bench/report_text.py), CPU time per report;
  * start-up (spawn → first 200 on /healthz; import time of cds_service.api.app) and worker memory;
  * a lever not applied, side by side: the long chart's no-prefetch searches with the Observation
    template narrowed by code (bench/levers.py).

`--baseline DIR` adds the service of another tree (say a `git worktree` of the commit before a change)
to the same run: a before/after under the same conditions. Writes bench/results/latest.json, prints a
table.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import json
import logging
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

import orjson
import requests

from bench.charts import CHARTS, TODAY, Chart
from bench.fhir_server import DELAY_SECONDS, MAX_PAGE_SIZE, SlowFhirServer
from bench.levers import narrowed_templates
from bench.report_text import GOAL_SECONDS as GOAL_REPORT_READING_S
from bench.report_text import hostile_reading_ms
from cds_service import engine
from cds_service.api.models import PatientViewRequest
from cds_service.cards.render import render_cards
from cds_service.consensus.assessment import assess
from cds_service.facts.extract import extract_facts
from cds_service.fhir.gather import PrefetchStrategy
from cds_service.fhir.prefetch import PREFETCH_TEMPLATES
from cds_service.hooks import patient_view
from cds_service.serve import default_workers
from cds_service.settings import ServerSettings, Settings

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SERVICE_PATH = f"/cds-services/{patient_view.SERVICE_ID}"
HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}

# The goals.
# HTTP p50 of the service / the floor, per chart (issue 12).
GOAL_HTTP_RATIO: Mapping[str, float] = {"typical": 2.0, "long": 2.5, "imaging": 3.0}
GOAL_NO_PREFETCH_ROUND_TRIPS = 3
GOAL_WORKER_RSS_MB = 150.0
GOAL_STARTUP_AFTER_IMPORT_S = 1.0


@dataclass(frozen=True)
class Plan:
    """How much load each part sends (all bounded)."""

    sequential: int = 300
    warmup: int = 30
    clients: int = 8
    per_client: Mapping[str, int] = field(default_factory=lambda: {"typical": 60, "long": 25, "imaging": 60})
    load_seconds: float = 20.0  # a hard stop for each throughput run
    no_prefetch: int = 15
    in_process: Mapping[str, int] = field(
        default_factory=lambda: {"typical": 500, "long": 150, "imaging": 500}
    )

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            sequential=40,
            warmup=5,
            clients=4,
            per_client={"typical": 10, "long": 5, "imaging": 10},
            load_seconds=10.0,
            no_prefetch=3,
            in_process={"typical": 50, "long": 20, "imaging": 50},
        )


# --- statistics ---------------------------------------------------------------------------------


def summary_ms(samples: Sequence[float]) -> dict[str, float]:
    """p50/p95/mean/min of durations in seconds, in milliseconds (nearest-rank percentiles)."""
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(p * len(ordered)) - 1))] * 1000

    return {
        "n": len(ordered),
        "p50": round(rank(0.50), 3),
        "p95": round(rank(0.95), 3),
        "mean": round(statistics.fmean(ordered) * 1000, 3),
        "min": round(ordered[0] * 1000, 3),
    }


def timed(fn: Callable[[], object], n: int, warmup: int = 10) -> list[float]:
    """CPU time of this thread per call: other load on the machine (2 cores shared with whatever else
    runs) stretches wall time, much less the CPU a call needs."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        started = time.thread_time()
        fn()
        samples.append(time.thread_time() - started)
    return samples


# --- the machine --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_total = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_total = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for name in ("flask", "gunicorn", "werkzeug", "pydantic", "fhir.resources", "orjson", "requests"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": cpu,
        "memory_gib": mem_total,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
    }


# --- in-process ---------------------------------------------------------------------------------


def in_process(charts: Mapping[str, Chart], bodies: Mapping[str, bytes], plan: Plan) -> dict[str, Any]:
    """`engine.evaluate` and the stages of one call, without HTTP (settings as the served app's)."""
    return {
        name: in_process_chart(chart, bodies[name], plan.in_process[name]) for name, chart in charts.items()
    }


def in_process_chart(chart: Chart, body: bytes, n: int) -> dict[str, Any]:
    settings = bench_settings()
    tz = zoneinfo.ZoneInfo(settings.tz)
    patient_id = chart.patient_id
    parsed = orjson.loads(body)
    call = PatientViewRequest.model_validate(parsed).to_call()

    def gather() -> list[dict[str, Any]]:
        return patient_view.STRATEGY.gather(
            prefetch=call.prefetch,
            context=call.context,
            fhir_server=None,
            access_token=None,
            settings=settings,
        ).resources

    resources = gather()
    facts = extract_facts(resources, patient_id, settings.code_map, tz)
    findings = list(assess(facts, settings.clinical, settings.today_date()))
    evaluation = engine.evaluate(resources, patient_id, settings)
    stages: dict[str, Callable[[], object]] = {
        "parse": lambda: orjson.loads(body),
        "validate": lambda: PatientViewRequest.model_validate(parsed),
        "gather": gather,
        "extract": lambda: extract_facts(resources, patient_id, settings.code_map, tz),
        "assess": lambda: list(assess(facts, settings.clinical, settings.today_date())),
        "render": lambda: render_cards(findings, facts.notes, language="en", patient_id=patient_id),
        "serialise": lambda: orjson.dumps(evaluation.response),
    }
    return {
        "resources": len(resources),
        "body_bytes": len(body),
        "topics": evaluation.topics,
        "evaluate": summary_ms(timed(lambda: engine.evaluate(resources, patient_id, settings), n)),
        "stages_p50": {stage: summary_ms(timed(fn, n))["p50"] for stage, fn in stages.items()},
    }


def bench_settings() -> Settings:
    return Settings(auth="none", today=date.fromisoformat(TODAY), database_url="sqlite:///:memory:")


def import_seconds(module: str, runs: int = 3) -> float:
    """The smallest of a few fresh-interpreter imports of `module` (what a worker pays before serving)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    best = float("inf")
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, timeout=60
        )
        best = min(best, float(done.stdout.strip()))
    return round(best, 3)


# --- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A gunicorn server this run started (a subprocess), its workers, and its start-up time."""

    def __init__(
        self, name: str, argv: list[str], env: Mapping[str, str], log: TextIO, port: int, cwd: Path = ROOT
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        self.process = subprocess.Popen(
            argv, env=dict(env), stdout=log, stderr=subprocess.STDOUT, cwd=cwd, start_new_session=True
        )
        try:
            self.startup_seconds = self._wait_ready(started)
        except BaseException:
            self.stop()  # never leave a server of ours running
            raise

    def _wait_ready(self, started: float, limit: float = 30.0) -> float:
        while time.perf_counter() - started < limit:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode} before serving")
            try:
                if requests.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return round(time.perf_counter() - started, 3)
            except requests.RequestException:
                pass
            time.sleep(0.005)
        raise RuntimeError(f"{self.name} did not answer /healthz within {limit:.0f} s")

    def wait_workers(self, count: int, limit: float = 15.0) -> None:
        """All workers booted (the first 200 may come from the first worker alone)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and len(self.worker_pids()) < count:
            time.sleep(0.05)

    def worker_pids(self) -> list[int]:
        try:
            raw = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in raw.split()]

    def cpu_seconds(self) -> float:
        """User + system CPU time of the workers so far (clock ticks, so compare over many requests)."""
        total = 0
        for pid in self.worker_pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return total / os.sysconf("SC_CLK_TCK")

    def memory(self) -> dict[str, Any]:
        workers = [proc_memory(pid) for pid in self.worker_pids()]
        return {"master": proc_memory(self.process.pid), "workers": workers}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def proc_memory(pid: int) -> dict[str, float]:
    """VmRSS (what the issue asks for) and RssAnon (the part not shared with the master) in MB."""
    found: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                found[key] = round(int(rest.split()[0]) / 1024, 1)
    except OSError:
        pass
    return found


# --- HTTP measurements --------------------------------------------------------------------------


def post(session: requests.Session, url: str, body: bytes) -> requests.Response:
    response = session.post(url, data=body, headers=HEADERS, timeout=30)
    if response.status_code != 200:
        raise RuntimeError(f"{url}: HTTP {response.status_code}")
    return response


def sequential(servers: Mapping[str, Server], body: bytes, plan: Plan) -> dict[str, Any]:
    """Requests one at a time, alternating the targets so drift hits all alike; with the CPU time the
    workers of each server spent per request (robust to other load on the machine)."""
    targets = {name: server.url + SERVICE_PATH for name, server in servers.items()}
    sessions = {name: requests.Session() for name in targets}
    samples: dict[str, list[float]] = {name: [] for name in targets}
    names = list(targets)
    for _ in range(plan.warmup):
        for name in names:
            post(sessions[name], targets[name], body)
    cpu_before = {name: server.cpu_seconds() for name, server in servers.items()}
    for i in range(plan.sequential):
        for name in names if i % 2 == 0 else reversed(names):
            started = time.perf_counter()
            response = post(sessions[name], targets[name], body)
            samples[name].append(time.perf_counter() - started)
            if name != "floor" and not response.json().get("cards"):
                raise RuntimeError("the service answered no cards for a chart that has some")
    cpu = {name: server.cpu_seconds() - cpu_before[name] for name, server in servers.items()}
    for session in sessions.values():
        session.close()
    return {
        name: {**summary_ms(values), "cpu_ms_per_request": round(cpu[name] * 1000 / len(values), 3)}
        for name, values in samples.items()
    }


def throughput(url: str, body: bytes, clients: int, per_client: int, limit_seconds: float) -> dict[str, Any]:
    """`clients` threads, each with its own keep-alive session, `per_client` requests each (or until the
    time limit): completed requests per second and latency under load."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)
    deadline_box: list[float] = []

    def client() -> None:
        nonlocal errors
        with requests.Session() as session:
            post(session, url, body)  # connect and warm this connection
            ready.wait()
            mine = []
            failures = 0
            for _ in range(per_client):
                if time.monotonic() > deadline_box[0]:
                    break
                started = time.perf_counter()
                try:
                    post(session, url, body)
                    mine.append(time.perf_counter() - started)
                except (requests.RequestException, RuntimeError):
                    failures += 1
            with lock:
                latencies.extend(mine)
                errors += failures

    with ThreadPoolExecutor(max_workers=clients) as pool:
        futures = [pool.submit(client) for _ in range(clients)]
        deadline_box.append(time.monotonic() + 3600)  # set for real below, once all are connected
        ready.wait()
        deadline_box[0] = time.monotonic() + limit_seconds
        started = time.perf_counter()
        for future in futures:
            future.result()
        elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors,
        "seconds": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1),
        "latency": summary_ms(latencies) if latencies else {},
    }


def no_prefetch(service: Server, chart: Chart, n: int) -> dict[str, Any]:
    """Calls without prefetch: the service runs every search on a FHIR server that answers after 50 ms."""
    with SlowFhirServer(chart) as fhir, requests.Session() as session:
        body = orjson.dumps(chart.no_prefetch_request(fhir.base))
        for _ in range(2):
            post(session, service.url + SERVICE_PATH, body)
        counts, samples = [], []
        for _ in range(n):
            before = fhir.requests
            started = time.perf_counter()
            response = post(session, service.url + SERVICE_PATH, body)
            samples.append(time.perf_counter() - started)
            counts.append(fhir.requests - before)
            if not response.json().get("cards"):
                raise RuntimeError("no cards without prefetch: the searches did not find the chart")
    latency = summary_ms(samples)
    return {
        "fhir_requests_per_hook": statistics.fmean(counts),
        "latency": latency,
        "round_trips_p50": round(latency["p50"] / (DELAY_SECONDS * 1000), 2),
    }


def narrowed_no_prefetch(chart: Chart, n: int) -> dict[str, Any]:
    """Lever, measured in-process: the same searches with the Observation template narrowed by code."""
    settings = bench_settings()
    out: dict[str, Any] = {}
    for label, templates in (
        ("as shipped", PREFETCH_TEMPLATES),
        ("observations narrowed", narrowed_templates(settings.code_map)),
    ):
        strategy = PrefetchStrategy.from_templates(templates, optional=patient_view.OPTIONAL_KEYS)
        with SlowFhirServer(chart) as fhir:
            context = {"patientId": chart.patient_id}
            counts, samples, found = [], [], 0
            for _ in range(n):
                before = fhir.requests
                started = time.perf_counter()
                gathered = strategy.gather(
                    prefetch=None,
                    context=context,
                    fhir_server=fhir.base,
                    access_token=None,
                    settings=settings,
                )
                samples.append(time.perf_counter() - started)
                counts.append(fhir.requests - before)
                found = len(gathered.resources)
                topics = engine.evaluate(gathered.resources, chart.patient_id, settings).topics
        out[label] = {
            "fhir_requests": statistics.fmean(counts),
            "gather": summary_ms(samples),
            "resources": found,
            "topics": topics,
        }
    return out


# --- the run ------------------------------------------------------------------------------------


# --- the run ------------------------------------------------------------------------------------

FLOOR = "floor"
SERVICE = "service"
BASELINE = "baseline"  # the service from another tree (--baseline DIR): a before/after in the same run


def server_argv(name: str, port: int) -> list[str]:
    serve = ["serve", "--host", "127.0.0.1", "--port", str(port)]
    if name == FLOOR:
        return [sys.executable, "-m", "bench.floor", "--port", str(port)]
    return [sys.executable, "-m", "cds_service.cli", *serve]


def startup(name: str, env: Mapping[str, str], log: TextIO, runs: int) -> dict[str, Any]:
    """Spawn → first 200 on /healthz, a few times, each server alone on the machine."""
    samples = []
    for _ in range(runs):
        port = free_port()
        server = Server(name, server_argv(name, port), env, log, port)
        samples.append(server.startup_seconds)
        server.stop()
    return {"runs": samples, "median": round(statistics.median(samples), 3)}


def run(
    plan: Plan,
    workers: int,
    threads: int,
    startup_runs: int,
    baseline: Path | None = None,
    only: Sequence[str] = (),
) -> dict[str, Any]:
    charts = {name: build() for name, build in CHARTS.items() if not only or name in only}
    bodies = {
        name: orjson.dumps(chart.prefetch_request(PREFETCH_TEMPLATES)) for name, chart in charts.items()
    }
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "config": {
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "plan": {
                "sequential": plan.sequential,
                "warmup": plan.warmup,
                "clients": plan.clients,
                "per_client": dict(plan.per_client),
                "no_prefetch": plan.no_prefetch,
            },
            "fhir_delay_ms": DELAY_SECONDS * 1000,
            "fhir_max_page_size": MAX_PAGE_SIZE,
            "today": TODAY,
        },
        "charts": {
            name: {"resources": len(chart.resources), "body_bytes": len(bodies[name])}
            for name, chart in charts.items()
        },
    }
    step("in-process evaluate")
    results["in_process"] = in_process(charts, bodies, plan)
    step("report reading, hostile input")
    results["hostile_report_reading_ms"] = hostile_reading_ms(1 if plan.sequential < 100 else 3)
    step("import time")
    results["import_seconds"] = {
        "cds_service.api.app": import_seconds("cds_service.api.app"),
        "bench.floor": import_seconds("bench.floor"),
    }
    with tempfile.TemporaryDirectory(prefix="osteo-bench-") as tmp:
        env = {
            **os.environ,
            "OSTEO_CDS_WORKERS": str(workers),
            "OSTEO_CDS_THREADS": str(threads),
            "OSTEO_CDS_AUTH": "none",  # the floor ignores every OSTEO_CDS_ setting but these two
            "OSTEO_CDS_TODAY": TODAY,
            "OSTEO_CDS_DATABASE_URL": f"sqlite:///{tmp}/audit.db",
            "PYTHONPATH": str(ROOT),
        }
        servers: dict[str, Server] = {}
        with open(Path(tmp) / "servers.log", "w") as log:
            try:
                step("start-up")
                results["startup_seconds"] = {
                    name: startup(name, env, log, startup_runs) for name in (SERVICE, FLOOR)
                }
                # (gc.freeze(), once a lever measured here, is applied: serve.freeze_loaded_objects)
                step("start floor, service (and baseline)")
                for name in (FLOOR, SERVICE, BASELINE):
                    if name == BASELINE and baseline is None:
                        continue
                    port = free_port()
                    if name == BASELINE and baseline is not None:
                        other = {**env, "PYTHONPATH": str(baseline)}
                        servers[name] = Server(name, server_argv(name, port), other, log, port, baseline)
                    else:
                        servers[name] = Server(name, server_argv(name, port), env, log, port)
                    servers[name].wait_workers(workers)
                with requests.Session() as session:
                    started = time.perf_counter()
                    post(session, servers[SERVICE].url + SERVICE_PATH, next(iter(bodies.values())))
                    results["first_call_ms"] = round((time.perf_counter() - started) * 1000, 1)
                targets = {name: s.url + SERVICE_PATH for name, s in servers.items()}
                results["sequential"] = {}
                for name, body in bodies.items():
                    step(f"sequential {name}")
                    results["sequential"][name] = sequential(servers, body, plan)
                results["throughput"] = {}
                for name, body in bodies.items():
                    results["throughput"][name] = {}
                    for target, url in targets.items():
                        step(f"throughput {name} {target}")
                        results["throughput"][name][target] = throughput(
                            url, body, plan.clients, plan.per_client[name], plan.load_seconds
                        )
                results["no_prefetch"] = {}
                for name, chart in charts.items():
                    step(f"no prefetch {name}")
                    results["no_prefetch"][name] = no_prefetch(servers[SERVICE], chart, plan.no_prefetch)
                results["memory_mb"] = {name: s.memory() for name, s in servers.items()}
            finally:
                for server in servers.values():
                    server.stop()
    results["levers"] = {}
    if "long" in charts:
        step("lever: narrowed Observation template (in-process)")
        results["levers"]["narrowed_no_prefetch_long"] = narrowed_no_prefetch(
            charts["long"], plan.no_prefetch
        )
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    results["goals"] = goals(results)
    return results


def goals(results: Mapping[str, Any]) -> dict[str, Any]:
    seq = results["sequential"]
    ratios = {name: round(v[SERVICE]["p50"] / v[FLOOR]["p50"], 2) for name, v in seq.items()}
    trips = {name: v["round_trips_p50"] for name, v in results["no_prefetch"].items()}
    rss = max((w.get("VmRSS", 0.0) for w in results["memory_mb"][SERVICE]["workers"]), default=0.0)
    after_import = round(
        results["startup_seconds"][SERVICE]["median"] - results["import_seconds"]["cds_service.api.app"], 3
    )
    return {
        "http_p50_ratio": {
            "value": ratios,
            "goal": dict(GOAL_HTTP_RATIO),
            "met": all(r <= GOAL_HTTP_RATIO[name] for name, r in ratios.items()),
        },
        "no_prefetch_round_trips": {
            "value": trips,
            "goal": GOAL_NO_PREFETCH_ROUND_TRIPS,
            "met": all(t <= GOAL_NO_PREFETCH_ROUND_TRIPS for t in trips.values()),
        },
        "worker_rss_mb": {"value": rss, "goal": GOAL_WORKER_RSS_MB, "met": 0 < rss <= GOAL_WORKER_RSS_MB},
        "hostile_report_reading_ms": {
            "value": max(results["hostile_report_reading_ms"].values()),
            "goal": GOAL_REPORT_READING_S * 1000,
            "met": max(results["hostile_report_reading_ms"].values()) <= GOAL_REPORT_READING_S * 1000,
        },
        "startup_after_import_s": {
            "value": after_import,
            "goal": GOAL_STARTUP_AFTER_IMPORT_S,
            "met": after_import <= GOAL_STARTUP_AFTER_IMPORT_S,
        },
    }


def step(what: str) -> None:
    print(f"bench: {what} …", file=sys.stderr, flush=True)


# --- the table ----------------------------------------------------------------------------------


def table(results: Mapping[str, Any]) -> str:
    m = results["machine"]
    cfg = results["config"]
    names = list(results["charts"])
    lines = [
        f"machine: {m['nproc']} CPU ({m['cpu']}), {m['memory_gib']} GiB, Python {m['python']}; "
        f"load average before/after {results['load_average_before'][0]}/{results['load_average_after'][0]}",
        f"servers: gunicorn gthread, {cfg['workers']} workers x {cfg['threads']} threads each, same options",
        "",
        f"{'':36}" + "".join(f"{n:>18}" for n in names),
    ]

    def row(label: str, values: Sequence[str]) -> None:
        lines.append(f"{label:36}" + "".join(f"{v:>18}" for v in values))

    row(
        "resources / request body",
        [
            f"{results['charts'][n]['resources']} / {results['charts'][n]['body_bytes'] / 1024:.0f} KiB"
            for n in names
        ],
    )
    ip = results["in_process"]
    row(
        "in-process evaluate p50/p95 CPU ms",
        [f"{ip[n]['evaluate']['p50']:.2f} / {ip[n]['evaluate']['p95']:.2f}" for n in names],
    )
    seq = results["sequential"]
    targets = list(seq[names[0]])  # the floor first, then the services
    for target in targets:
        row(
            f"HTTP {target} p50 / p95 ms",
            [f"{seq[n][target]['p50']:.2f} / {seq[n][target]['p95']:.2f}" for n in names],
        )
    for target in targets[1:]:
        row(
            f"  p50 ratio {target}/floor",
            [f"{seq[n][target]['p50'] / seq[n][FLOOR]['p50']:.2f}x" for n in names],
        )
    for target in targets:
        row(f"worker CPU ms/request {target}", [f"{seq[n][target]['cpu_ms_per_request']:.2f}" for n in names])
    tp = results["throughput"]
    for target in targets:
        row(
            f"req/s {target} ({cfg['plan']['clients']} clients)",
            [f"{tp[n][target]['rps']:.0f}" for n in names],
        )
    npf = results["no_prefetch"]
    row("no prefetch: FHIR requests per call", [f"{npf[n]['fhir_requests_per_hook']:.1f}" for n in names])
    row(
        "no prefetch: p50 ms (÷ 50 ms)",
        [f"{npf[n]['latency']['p50']:.0f} ({npf[n]['round_trips_p50']:.1f})" for n in names],
    )
    imp = results["import_seconds"]
    start = results["startup_seconds"]
    lines += [
        "",
        f"start-up (spawn → first /healthz 200, median): service {start[SERVICE]['median']:.2f} s, "
        f"import of cds_service.api.app {imp['cds_service.api.app']:.2f} s; "
        f"floor {start[FLOOR]['median']:.2f} s (import {imp['bench.floor']:.2f} s); "
        f"first service call {results['first_call_ms']:.0f} ms",
    ]
    mem = results["memory_mb"]
    for name in targets:
        workers = mem[name]["workers"]
        lines.append(
            f"memory {name}: worker VmRSS "
            + ", ".join(f"{w.get('VmRSS', 0):.0f}" for w in workers)
            + " MB (RssAnon "
            + ", ".join(f"{w.get('RssAnon', 0):.0f}" for w in workers)
            + f"); master {mem[name]['master'].get('VmRSS', 0):.0f} MB"
        )
    lever = results["levers"].get("narrowed_no_prefetch_long")
    if lever is not None:
        lines.append(
            "lever, long chart without prefetch: "
            + "; ".join(
                f"{label}: {v['fhir_requests']:.0f} FHIR requests, gather p50 {v['gather']['p50']:.0f} ms"
                for label, v in lever.items()
            )
        )
    hostile = results["hostile_report_reading_ms"]
    worst = max(hostile, key=hostile.__getitem__)
    lines.append(
        f"report reading, hostile ~10^6-character inputs: worst {hostile[worst]:.0f} ms CPU ({worst})"
    )
    lines.append("")
    for name, goal in results["goals"].items():
        lines.append(
            f"goal {name}: {goal['value']} (goal {goal['goal']}): {'met' if goal['met'] else 'NOT met'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke run (figures not comparable)")
    parser.add_argument(
        "--workers", type=int, default=default_workers(), help="gunicorn workers, every server"
    )
    parser.add_argument(
        "--threads", type=int, default=ServerSettings().threads, help="threads per worker, every server"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json", help="where the JSON goes")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="a copy of the tree from before a change (e.g. a git worktree): its service joins the run",
    )
    parser.add_argument(
        "--charts",
        nargs="+",
        choices=list(CHARTS),
        default=[],
        help="only these charts (default: all); e.g. --charts typical for a shorter A/B run",
    )
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # the in-process parts would log every call
    gc.collect()
    started = time.perf_counter()
    plan = Plan.quick() if args.quick else Plan()
    results = run(plan, args.workers, args.threads, 1 if args.quick else 3, args.baseline, args.charts)
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(table(results))
    where = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    print(f"\n{where} ({results['bench_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
