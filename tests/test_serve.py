"""`osteo-cds serve` (cds_service/serve.py): gunicorn settings, the metrics directory, start, and SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from cds_service import serve
from cds_service.audit.store import AuditStore
from cds_service.fhir.prefetch import PREFETCH_TEMPLATES
from cds_service.serve import (
    MULTIPROC_ENV,
    SERVER_OPTIONS,
    gunicorn_options,
    mark_worker_dead,
    prepare_metrics_dir,
    run_server,
)
from cds_service.settings import ServerSettings, Settings, SettingsError

REPO = Path(__file__).resolve().parents[1]
SERVICE = "osteoporosis-patient-view"
PATIENT = "PHI-PATIENT-4711"


# --- gunicorn settings ---------------------------------------------------------------------------------


def test_defaults_suit_a_two_core_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    options = gunicorn_options("127.0.0.1", 8080, None, None, ServerSettings.from_env({}))
    assert options["workers"] == 4 and options["threads"] == 4 and options["worker_class"] == "gthread"
    assert options["timeout"] == 30
    assert options["graceful_timeout"] == 20
    assert options["keepalive"] == 5
    assert (options["max_requests"], options["max_requests_jitter"]) == (2000, 200)
    assert options["accesslog"] is None  # request lines hold URLs; the app logs its own line
    assert options["child_exit"] is mark_worker_dead
    assert options["preload_app"] is False


@pytest.mark.parametrize(
    ("env", "option", "expected"),
    [
        ({"OSTEO_CDS_TIMEOUT": "60"}, "timeout", 60),
        ({"OSTEO_CDS_GRACEFUL_TIMEOUT": "10"}, "graceful_timeout", 10),
        ({"OSTEO_CDS_KEEPALIVE": "75"}, "keepalive", 75),
        ({"OSTEO_CDS_KEEPALIVE": "0"}, "keepalive", 0),
        ({"OSTEO_CDS_MAX_REQUESTS": "0"}, "max_requests", 0),
        ({"OSTEO_CDS_MAX_REQUESTS_JITTER": "50"}, "max_requests_jitter", 50),
        ({"OSTEO_CDS_TIMEOUT": " "}, "timeout", 30),
    ],
)
def test_server_settings_from_the_environment(env: dict[str, str], option: str, expected: int) -> None:
    assert gunicorn_options("127.0.0.1", 8080, None, None, ServerSettings.from_env(env))[option] == expected


@pytest.mark.parametrize(
    "env",
    [
        {"OSTEO_CDS_TIMEOUT": "soon"},
        {"OSTEO_CDS_TIMEOUT": "1"},
        {"OSTEO_CDS_KEEPALIVE": "-1"},
        {"OSTEO_CDS_MAX_REQUESTS": "-5"},
        {"OSTEO_CDS_TIMEOUT": "10", "OSTEO_CDS_GRACEFUL_TIMEOUT": "20"},
    ],
)
def test_bad_server_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        ServerSettings.from_env(env)


def test_every_server_setting_is_documented() -> None:
    # docs/operations.md, or the README once it is merged there
    documents = [REPO / "docs" / "operations.md", REPO / "README.md"]
    text = "\n".join(path.read_text(encoding="utf-8") for path in documents if path.is_file())
    for name in (
        "OSTEO_CDS_WORKERS",
        "OSTEO_CDS_THREADS",
        "OSTEO_CDS_METRICS",
        *(f"OSTEO_CDS_{option.upper()}" for option in SERVER_OPTIONS),
    ):
        assert f"`{name}`" in text


# --- the metrics directory -------------------------------------------------------------------------------


def test_a_fresh_metrics_directory_is_made_for_each_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    env: dict[str, str] = {}
    first = prepare_metrics_dir(env)
    assert env[MULTIPROC_ENV] == first and Path(first).is_dir() and not os.listdir(first)
    assert prepare_metrics_dir({}) != first


def test_a_configured_metrics_directory_gets_a_fresh_one_inside(tmp_path: Path) -> None:
    base = tmp_path / "shm"
    (base / "stale.db").parent.mkdir()
    (base / "counter_123.db").write_bytes(b"stale")
    env = {MULTIPROC_ENV: str(base)}
    made = Path(prepare_metrics_dir(env))
    assert made.parent == base and not list(made.iterdir())


def test_a_dead_worker_is_marked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from prometheus_client import multiprocess

    marked: list[int] = []
    monkeypatch.setattr(multiprocess, "mark_process_dead", marked.append)
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    mark_worker_dead(object(), type("Worker", (), {"pid": 4242})())
    assert marked == [4242]


def test_a_refused_start_leaves_no_directory_and_no_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    made: list[str] = []
    real = serve.prepare_metrics_dir
    monkeypatch.setattr(serve, "prepare_metrics_dir", lambda: made.append(real()) or made[-1])
    assert run_server(Settings(auth="jwt"), port=1) == 2
    assert "no call could ever be accepted" in capsys.readouterr().err
    assert MULTIPROC_ENV not in os.environ
    assert made and not Path(made[0]).exists()


def test_a_bad_jwks_url_refuses_the_start(capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings(
        auth="jwt", trusted_issuers={"https://ehr.example.org": "http://ehr.example.org/jwks"}
    )
    assert run_server(settings, port=1) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "https" in error


# --- the real thing: two workers, metrics across them, JSON logs, SIGTERM ------------------------------


class SlowFhirServer(BaseHTTPRequestHandler):
    """Empty searchsets, each after a pause: a call is still in flight when the service is stopped."""

    pause = 0.8

    def do_GET(self) -> None:
        time.sleep(self.pause)
        body = json.dumps({"resourceType": "Bundle", "type": "searchset", "total": 0}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/fhir+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def slow_fhir() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowFhirServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/fhir"
    server.shutdown()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def hook_call(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"patientId": PATIENT, "userId": "Practitioner/1"},
        "prefetch": dict.fromkeys(PREFETCH_TEMPLATES),
    }
    body.update(changes)
    return body


def worker_pids(metrics_dir: Path) -> set[str]:
    """The processes that wrote metric values (files `counter_<pid>.db`, `histogram_<pid>.db`)."""
    return {path.stem.rsplit("_", 1)[-1] for path in metrics_dir.glob("*.db")}


def wait_until_up(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited"
        try:
            if requests.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError("the server did not come up")


@pytest.mark.slow
def test_served_by_two_workers_with_shared_metrics_and_a_graceful_stop(
    tmp_path: Path, slow_fhir: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OSTEO_CDS_", "PROMETHEUS_"))},
        "PYTHONPATH": str(REPO),
        "TMPDIR": str(tmp_path),
        "OSTEO_CDS_AUTH": "none",
        "OSTEO_CDS_WORKERS": "2",
        "OSTEO_CDS_THREADS": "2",
        "OSTEO_CDS_GRACEFUL_TIMEOUT": "10",
        "OSTEO_CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
    }
    command = [sys.executable, "-c", "from cds_service.cli import main; raise SystemExit(main())"]
    process = subprocess.Popen(
        [*command, "serve", "--port", str(port)], cwd=tmp_path, env=env, stderr=subprocess.PIPE
    )
    try:
        wait_until_up(base, process)
        metrics_dirs = list(tmp_path.glob("osteo-cds-metrics-*"))
        assert len(metrics_dirs) == 1

        calls = 0
        while calls < 60 and len(worker_pids(metrics_dirs[0])) < 2:
            # a new connection each time, so that both workers get some
            answer = requests.post(f"{base}/cds-services/{SERVICE}", json=hook_call(), timeout=10)
            assert answer.status_code == 200
            calls += 1
        assert len(worker_pids(metrics_dirs[0])) == 2
        text = requests.get(f"{base}/metrics", timeout=5).text
        line = f'osteo_cds_requests_total{{service="{SERVICE}",status="200"}} {float(calls)}'
        assert line in text
        assert PATIENT not in text

        # SIGTERM while a call waits on the FHIR server: the call still gets its answer
        slow_call: dict[str, Any] = {}

        def call_slowly() -> None:
            body = hook_call(prefetch=None, fhirServer=slow_fhir)
            slow_call["response"] = requests.post(f"{base}/cds-services/{SERVICE}", json=body, timeout=10)

        caller = threading.Thread(target=call_slowly)
        caller.start()
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        caller.join(timeout=15)
        assert slow_call["response"].status_code == 200
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read().decode() if process.stderr else ""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines
    for line in lines:
        json.loads(line)  # gunicorn's own lines too
    assert PATIENT not in stderr
    assert not list(tmp_path.glob("osteo-cds-metrics-*"))  # removed by the master at exit


@pytest.mark.slow
def test_served_answers_are_recorded_after_sending_and_before_a_graceful_stop(tmp_path: Path) -> None:
    """The audit records of a response are written once it is sent (services._record_once_sent): under
    gunicorn every card answered is in the store when the server has stopped, and feedback sent the moment
    the answer arrives, on another connection, is matched to its card."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    database = tmp_path / "audit.db"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OSTEO_CDS_", "PROMETHEUS_"))},
        "PYTHONPATH": str(REPO),
        "TMPDIR": str(tmp_path),
        "OSTEO_CDS_AUTH": "none",
        "OSTEO_CDS_TODAY": "2021-06-01",
        "OSTEO_CDS_WORKERS": "2",
        "OSTEO_CDS_THREADS": "2",
        "OSTEO_CDS_DATABASE_URL": f"sqlite:///{database}",
    }
    body = json.loads((REPO / "examples" / "requests" / "he-yulan-prefetch.json").read_text(encoding="utf-8"))
    command = [sys.executable, "-c", "from cds_service.cli import main; raise SystemExit(main())"]
    process = subprocess.Popen(
        [*command, "serve", "--port", str(port)], cwd=tmp_path, env=env, stderr=subprocess.DEVNULL
    )
    answered: list[str] = []
    try:
        wait_until_up(base, process)
        with requests.Session() as session:  # keep-alive, as an EHR's client
            for _ in range(20):
                answer = session.post(f"{base}/cds-services/{SERVICE}", json=body, timeout=10)
                assert answer.status_code == 200
                answered += [card["uuid"] for card in answer.json()["cards"]]
        feedback = {
            "feedback": [
                {"card": answered[-1], "outcome": "overridden", "outcomeTimestamp": "2021-06-01T10:00:00Z"}
            ]
        }
        assert requests.post(f"{base}/cds-services/{SERVICE}/feedback", json=feedback, timeout=10).ok
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert answered
    store = AuditStore.from_url(f"sqlite:///{database}")
    assert sum(row.issued for row in store.report()) == len(answered)
    assert sum(row.overridden for row in store.report()) == 1


def test_a_sigterm_during_start_still_removes_the_metrics_directory(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OSTEO_CDS_", "PROMETHEUS_"))},
        "PYTHONPATH": str(REPO),
        "TMPDIR": str(tmp_path),
        "OSTEO_CDS_AUTH": "none",
        "OSTEO_CDS_WORKERS": "1",
        "OSTEO_CDS_DATABASE_URL": f"sqlite:///{tmp_path / 'audit.db'}",
    }
    command = [sys.executable, "-c", "from cds_service.cli import main; raise SystemExit(main())"]
    process = subprocess.Popen(
        [*command, "serve", "--port", str(free_port())], cwd=tmp_path, env=env, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("osteo-cds-metrics-*")):
            assert time.monotonic() < deadline and process.poll() is None
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)  # before or after gunicorn took over the signal: both clean up
        assert process.wait(timeout=30) in (0, 128 + signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not list(tmp_path.glob("osteo-cds-metrics-*"))
