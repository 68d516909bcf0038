"""`python -m bench.audit_write`: what the audit write of one response costs, alone and inside a request.

In one process, the app set up as `osteo-cds serve` sets it up (a multiprocess metrics directory before
prometheus-client is imported, JSON logs at INFO, the audit store on a SQLite file, `gc.freeze()` after
warm-up):

  * alone: `record_response` with the cards and unrecognised codings of one typical-chart response, CPU
    and wall time (wall minus CPU is waiting: WAL checkpoints, the write lock);
  * in a request: the WSGI call of the typical chart with the audit write as shipped, and with it replaced
    by a no-op, alternated in blocks; and the CPU spent inside `record_response` during the first. The
    write runs when the response is closed, after its last byte (as a WSGI server closes it); the call
    measured here includes that close, so these figures are worker CPU, not what the client waits for.

Not part of `make bench` (docs/performance.md, issue 12, fourth pass, has its figures).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

BLOCK = 15


def _ms(values: Sequence[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"median {statistics.median(values) * 1e3:.3f} ms, mean {statistics.mean(values) * 1e3:.3f}, "
        f"p99 {p99 * 1e3:.3f}, max {ordered[-1] * 1e3:.3f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.audit_write", description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=80, help=f"blocks of {BLOCK} calls per variant")
    args = parser.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="osteo-audit-write-")
    os.makedirs(f"{tmp}/metrics")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = f"{tmp}/metrics"  # before prometheus-client is imported

    import orjson

    from bench.charts import CHARTS, TODAY
    from bench.profile import wsgi_caller
    from cds_service.api import services
    from cds_service.api.app import create_app
    from cds_service.api.observability import configure_logging
    from cds_service.fhir.prefetch import PREFETCH_TEMPLATES
    from cds_service.settings import Settings

    configure_logging()
    quiet = open(os.devnull, "w")  # noqa: SIM115 (open for the whole run)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(quiet)
    env = {
        "OSTEO_CDS_AUTH": "none",
        "OSTEO_CDS_TODAY": TODAY,
        "OSTEO_CDS_DATABASE_URL": f"sqlite:///{tmp}/audit.db",
    }
    call = wsgi_caller(
        create_app(Settings.from_env(env)),
        orjson.dumps(CHARTS["typical"]().prefetch_request(PREFETCH_TEMPLATES)),
    )

    shipped = services.record_response
    seen: list[tuple[Any, ...]] = []
    inside: list[float] = []

    def capture(*a: Any, **k: Any) -> None:
        seen.append(a)
        shipped(*a, **k)

    def timed(*a: Any, **k: Any) -> None:
        started = time.thread_time()
        shipped(*a, **k)
        inside.append(time.thread_time() - started)

    def no_op(*a: Any, **k: Any) -> None:
        return None

    services.record_response = capture  # type: ignore[assignment]
    for _ in range(50):
        call()
    gc.collect()
    gc.freeze()
    store, counts, hook, service, cards, version = seen[-1][:6]
    print(f"one response: {len(cards)} cards, {len(counts)} unrecognised codings", file=sys.stderr)

    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(args.blocks * BLOCK):
        fresh = [(str(uuid.uuid4()), topic) for _, topic in cards]
        started_wall, started_cpu = time.perf_counter(), time.thread_time()
        shipped(store, counts, hook, service, fresh, version)
        cpu.append(time.thread_time() - started_cpu)
        wall.append(time.perf_counter() - started_wall)

    variants: dict[str, Callable[..., None]] = {"as shipped": timed, "audit write a no-op": no_op}
    requests: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.blocks):
        for name, variant in variants.items():
            services.record_response = variant  # type: ignore[assignment]
            for _ in range(BLOCK):
                started = time.process_time()
                call()
                requests[name].append(time.process_time() - started)
    services.record_response = shipped  # type: ignore[assignment]

    print(f"record_response alone, CPU: {_ms(cpu)}")
    print(f"record_response alone, wall: {_ms(wall)}")
    for name, values in requests.items():
        print(f"request CPU, {name}: {_ms(values)}")
    print(f"record_response inside a request, CPU: {_ms(inside)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
