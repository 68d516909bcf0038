"""A bounded load test of `osteo-cds serve`: a fixed number of hook calls, zero errors, flat worker memory.

The server runs as in production (gunicorn, 2 workers, gthread) on a free loopback port with
OSTEO_CDS_AUTH=none, a fixed OSTEO_CDS_TODAY and a throw-away SQLite audit store. 8 client threads, each
with its own keep-alive session, send REQUESTS calls that cycle through the example requests that carry
their data (examples/requests/*-prefetch.json; the -no-prefetch ones would read a FHIR server, and this
test stays on loopback: OSTEO_CDS_FHIR_SERVERS allows none but a dead loopback port).

Every call must answer 200 with a cards array, and each example the same topic codes every time,
whichever worker, thread or language served it (no state carried from one call to the next).

Memory: the resident set (VmRSS) of every worker is read after WARMUP calls and again after all of them.
Threshold: no worker may grow by MAX_GROWTH_MB (20 MB) or more between the two samples (measured growth
is about 2 MB; the workers sit near 85 MB). Worker recycling (OSTEO_CDS_MAX_REQUESTS) is off here, since
recycling would hide a leak rather than show it. The kernel shares the 8 keep-alive connections out
between the workers as it likes; a worker that got none stays flat, the other then carries every call.

Bounded: the whole test stops by itself within TIME_LIMIT_SECONDS (a failure, not a hang); the server's
process group is terminated in a `finally`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "requests"
OSTEO_CDS = REPO / ".venv" / "bin" / "osteo-cds"
HOOK = "/cds-services/osteoporosis-patient-view"
TODAY = "2021-06-01"  # the date the example requests were built for

REQUESTS = 3000
WARMUP = 500
CLIENT_THREADS = 8
WORKERS = 2
MAX_GROWTH_MB = 20.0
TIME_LIMIT_SECONDS = 90.0
START_TIMEOUT_SECONDS = 20.0
REQUEST_TIMEOUT_SECONDS = 10.0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(TIME_LIMIT_SECONDS + 60)]


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def children_of(pid: int) -> list[int]:
    """The direct children of a process (the gunicorn workers of the master), from /proc."""
    tasks = list(Path(f"/proc/{pid}/task").iterdir())
    if all((task / "children").exists() for task in tasks):
        return sorted(int(child) for task in tasks for child in (task / "children").read_text().split())
    found = []  # a kernel without /proc/<pid>/task/<tid>/children: read every process's parent
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0  # kB
    raise AssertionError(f"no VmRSS for process {pid}")


def server_environment(database: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("OSTEO_CDS_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        {
            "OSTEO_CDS_AUTH": "none",
            "OSTEO_CDS_TODAY": TODAY,
            "OSTEO_CDS_DATABASE_URL": f"sqlite:///{database}",
            "OSTEO_CDS_WORKERS": str(WORKERS),
            "OSTEO_CDS_MAX_REQUESTS": "0",  # no recycling: a leak must show
            "OSTEO_CDS_GRACEFUL_TIMEOUT": "3",
            "OSTEO_CDS_FHIR_SERVERS": "http://127.0.0.1:9/",  # loopback only, and nothing listens there
        }
    )
    return env


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """`osteo-cds serve` on a free loopback port: (base URL, master pid). Stopped with its process group."""
    port = free_loopback_port()
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [str(OSTEO_CDS), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=server_environment(tmp_path / "audit.db"),
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the workers are stopped with it
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise AssertionError(f"osteo-cds serve exited with {process.returncode}: {_tail(tmp_path)}")
            try:
                if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"osteo-cds serve did not answer in {START_TIMEOUT_SECONDS} s")
            time.sleep(0.2)
        yield base, process.pid
    finally:
        _stop(process)
        log.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _tail(folder: Path) -> str:
    text = (folder / "server.log").read_text(errors="replace")
    return text[-2000:]


def example_bodies() -> list[bytes]:
    paths = sorted(p for p in EXAMPLES.glob("*-prefetch.json") if "-no-prefetch" not in p.name)
    assert paths, "no example requests"
    return [p.read_bytes() for p in paths]


def test_bounded_load_has_no_errors_and_flat_memory(server: tuple[str, int]) -> None:
    base, master = server
    started = time.monotonic()
    deadline = started + TIME_LIMIT_SECONDS
    bodies = example_bodies()
    sessions = threading.local()
    failures: list[str] = []
    # example → the topic codes answered: one answer each, whatever the worker, thread or language
    # (no state carried from one call to the next, STYLE.md)
    answers: dict[int, set[tuple[str, ...]]] = {}
    lock = threading.Lock()

    def call(index: int) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError("time limit reached")
        session = getattr(sessions, "session", None)
        if session is None:
            session = sessions.session = requests.Session()  # keep-alive, one per client thread
        language = "zh-CN" if index % 2 else "en"
        response = session.post(
            base + HOOK,
            data=bodies[index % len(bodies)],
            headers={"Content-Type": "application/json", "Accept-Language": language},
            timeout=REQUEST_TIMEOUT_SECONDS,
        )
        if response.status_code != 200:
            failures.append(f"call {index}: {response.status_code} {response.text[:200]}")
            return
        cards = json.loads(response.content).get("cards")
        if not isinstance(cards, list):
            failures.append(f"call {index}: no cards array")
            return
        topics = tuple(card["source"]["topic"]["code"] for card in cards)
        with lock:
            answers.setdefault(index % len(bodies), set()).add(topics)

    def run(pool: ThreadPoolExecutor, indices: range) -> None:
        futures: list[Future[None]] = [pool.submit(call, i) for i in indices]
        done, pending = wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        for future in pending:
            future.cancel()
        assert not pending, f"time limit of {TIME_LIMIT_SECONDS} s reached, {len(pending)} calls left"
        for future in done:
            exc = future.exception()
            if exc is not None:
                failures.append(f"{type(exc).__name__}: {exc}")

    # One pool for both phases: the same threads keep the same connections, so each worker serves the
    # same share of the concurrent calls before and after the first sample (a fair comparison).
    with ThreadPoolExecutor(max_workers=CLIENT_THREADS, thread_name_prefix="load") as pool:
        run(pool, range(WARMUP))
        workers = children_of(master)
        assert len(workers) == WORKERS, workers
        after_warmup = {pid: rss_mb(pid) for pid in workers}
        run(pool, range(WARMUP, REQUESTS))
        assert children_of(master) == workers, "a worker was restarted during the run"
        after_all = {pid: rss_mb(pid) for pid in workers}
    elapsed = time.monotonic() - started

    assert not failures, f"{len(failures)} failed calls, e.g. {failures[:5]}"
    assert all(len(topics) == 1 for topics in answers.values()), answers
    assert any(topics != {()} for topics in answers.values()), "no example gave cards"
    growth = {pid: after_all[pid] - after_warmup[pid] for pid in workers}
    report = ", ".join(f"worker {pid}: {after_warmup[pid]:.1f} -> {after_all[pid]:.1f} MB" for pid in workers)
    print(f"{REQUESTS} calls in {elapsed:.1f} s ({REQUESTS / elapsed:.0f}/s); {report}")
    assert all(g < MAX_GROWTH_MB for g in growth.values()), f"worker memory grew: {report}"
