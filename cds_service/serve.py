"""`osteo-cds serve`: the app under gunicorn, started from Python (no gunicorn command line or config)."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from types import FrameType
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from cds_service.settings import Settings, SettingsError, int_setting

# Nothing here imports the app (nor prometheus-client) at module level: the metrics directory must be in
# the environment before prometheus-client is first imported, so that every worker writes its values there.

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_THREADS = 4  # patient-view mostly waits on FHIR searches
MAX_WORKERS = 64
MAX_THREADS = 64
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class ServerSetting:
    """A gunicorn setting that OSTEO_CDS_<NAME> may change, with its default and its allowed range."""

    env: str
    option: str
    default: int
    low: int
    high: int


# Defaults chosen for a 2-core machine; docs/operations.md says why for each.
SERVER_SETTINGS = (
    # A worker silent this long is stuck and restarted: far above the 2 s FHIR budget of a call.
    ServerSetting("OSTEO_CDS_TIMEOUT", "timeout", 30, 5, 3600),
    # SIGTERM: workers finish the calls they hold for up to this long (below Kubernetes' default 30 s).
    ServerSetting("OSTEO_CDS_GRACEFUL_TIMEOUT", "graceful_timeout", 20, 1, 3600),
    # Idle keep-alive connections are held this long (they wait in the poller, not in a thread).
    ServerSetting("OSTEO_CDS_KEEPALIVE", "keepalive", 5, 0, 600),
    # Recycling workers bounds slow leaks; 0 turns it off.
    ServerSetting("OSTEO_CDS_MAX_REQUESTS", "max_requests", 2000, 0, 10_000_000),
    # The jitter keeps the workers from all restarting at once.
    ServerSetting("OSTEO_CDS_MAX_REQUESTS_JITTER", "max_requests_jitter", 200, 0, 1_000_000),
)


class ServeError(ValueError):
    """A serve option or an OSTEO_CDS_ server setting has a value the server cannot start with."""


class _OsteoCdsServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    def __init__(self, settings: Settings, options: Mapping[str, Any]) -> None:
        self._settings = settings
        self._options = dict(options)
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        # in each worker, after the fork: no connection, pool or thread is shared between workers
        from cds_service.api.app import create_app

        return create_app(self._settings)


def default_workers() -> int:
    return max(1, min(2 * (os.cpu_count() or 1), 4))


def _env_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """The settings' own integer parsing, reported as a serve error."""
    try:
        return int_setting(lambda key: (env.get(key) or "").strip(), name, default, low, high)
    except SettingsError as exc:
        raise ServeError(str(exc)) from exc


def _count(env: Mapping[str, str], name: str, given: int | None, default: int, high: int) -> int:
    if given is None:
        return _env_int(env, name, default, 1, high)
    if not 1 <= given <= high:
        raise ServeError(f"{name.removeprefix('OSTEO_CDS_').lower()} option must be between 1 and {high}")
    return given


def freeze_loaded_objects(worker: Any) -> None:
    """gunicorn `post_worker_init`: move the ~115,000 objects of the loaded app out of the collector's view.

    Parsing a large request body triggers full collections, which otherwise walk every imported object:
    measured with `make bench`, the long chart went from 22 to 13 ms of worker CPU per request.
    """
    gc.collect()
    gc.freeze()


def mark_worker_dead(server: Any, worker: Any) -> None:
    """gunicorn `child_exit` (in the master): a dead worker's live-gauge files are dropped."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def gunicorn_options(
    host: str,
    port: int,
    workers: int | None,
    threads: int | None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The gunicorn settings: explicit arguments first, then OSTEO_CDS_WORKERS / _THREADS / _TIMEOUT / ..."""
    env = os.environ if env is None else env
    if not 0 < port < 65536:
        raise ServeError("port must be between 1 and 65535")
    bind_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    options: dict[str, Any] = {
        "bind": f"{bind_host}:{port}",
        "workers": _count(env, "OSTEO_CDS_WORKERS", workers, default_workers(), MAX_WORKERS),
        "threads": _count(env, "OSTEO_CDS_THREADS", threads, DEFAULT_THREADS, MAX_THREADS),
        "worker_class": "gthread",
        "accesslog": None,  # the app logs requests itself, without URLs that could carry patient ids
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "osteo-cds",
        "preload_app": False,
        "child_exit": mark_worker_dead,
        "post_worker_init": freeze_loaded_objects,
        # no runtime control socket (gunicornc): nothing to manage at run time, and no home directory to
        # write it to for the image's system user
        "control_socket_disable": True,
    }
    for setting in SERVER_SETTINGS:
        options[setting.option] = _env_int(env, setting.env, setting.default, setting.low, setting.high)
    if options["graceful_timeout"] > options["timeout"]:
        raise ServeError("OSTEO_CDS_GRACEFUL_TIMEOUT must not exceed OSTEO_CDS_TIMEOUT")
    if os.path.isdir("/dev/shm"):
        # worker heartbeats on a RAM disk: on container overlay filesystems they can stall
        options["worker_tmp_dir"] = "/dev/shm"
    return options


def prepare_metrics_dir(env: MutableMapping[str, str] | None = None) -> str:
    """A fresh, empty directory for the workers' metric files, named in PROMETHEUS_MULTIPROC_DIR.

    Fresh on every start: files left by an earlier run would be counted again. When the variable is already
    set (e.g. to a tmpfs), the fresh directory is made inside it.
    """
    env = os.environ if env is None else env
    base = env.get(MULTIPROC_ENV) or None
    if base is not None:
        os.makedirs(base, exist_ok=True)
    path = tempfile.mkdtemp(prefix="osteo-cds-metrics-", dir=base)
    env[MULTIPROC_ENV] = path
    return path


def run_server(
    settings: Settings,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int | None = None,
    threads: int | None = None,
) -> int:
    """Serve until stopped (SIGTERM: graceful); the exit code: 2 with a one-line error if it cannot start."""
    try:
        options = gunicorn_options(host, port, workers, threads)
    except ServeError as exc:
        print(f"osteo-cds serve: {exc}", file=sys.stderr)
        return 2
    master_pid = os.getpid()
    earlier_dir = os.environ.get(MULTIPROC_ENV)
    metrics_dir = prepare_metrics_dir() if settings.metrics_enabled else None
    # Until gunicorn installs its own handlers, SIGTERM still unwinds through the clean-up below.
    earlier_handler = _exit_on_sigterm()
    try:
        from cds_service.api.app import StartupError, check_startable
        from cds_service.api.observability import configure_logging, logging_config

        try:
            check_startable(settings)
        except StartupError as exc:
            print(f"osteo-cds serve: {exc}", file=sys.stderr)
            return 2
        configure_logging()
        options["logconfig_dict"] = logging_config()
        try:
            _OsteoCdsServer(settings, options).run()
        except SystemExit as exc:  # gunicorn exits the process on fatal errors, and on every stop
            return exc.code if isinstance(exc.code, int) else 1
        return 0
    finally:
        # Workers leave gunicorn through this frame too (SystemExit after the fork): only the master,
        # which outlives them all, removes the directory.
        if os.getpid() == master_pid:
            _restore_sigterm(earlier_handler)
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)
                if earlier_dir is None:
                    os.environ.pop(MULTIPROC_ENV, None)
                else:
                    os.environ[MULTIPROC_ENV] = earlier_dir


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _exit_on_sigterm() -> Any:
    """Make SIGTERM raise SystemExit (gunicorn replaces this once it runs); the handler it replaced."""
    try:
        return signal.signal(signal.SIGTERM, _raise_exit)
    except ValueError:  # not the main thread (an embedding program): leave signals alone
        return None


def _restore_sigterm(handler: Any) -> None:
    if handler is not None:
        signal.signal(signal.SIGTERM, handler)
