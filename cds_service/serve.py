"""`osteo-cds serve`: the app under gunicorn, started from Python (no gunicorn command line or config)."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping, MutableMapping
from types import FrameType
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from cds_service.settings import MAX_THREADS, MAX_WORKERS, ServerSettings, Settings

# Nothing here imports the app (nor prometheus-client) at module level: the metrics directory must be in
# the environment before prometheus-client is first imported, so that every worker writes its values there.

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# gunicorn option <- the ServerSettings field read from OSTEO_CDS_<FIELD> (cds_service/settings.py).
SERVER_OPTIONS = ("timeout", "graceful_timeout", "keepalive", "max_requests", "max_requests_jitter")


class ServeError(ValueError):
    """A serve option (port, workers, threads) has a value the server cannot start with."""


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


def _count(name: str, given: int | None, default: int, high: int) -> int:
    if given is None:
        return default
    if not 1 <= given <= high:
        raise ServeError(f"{name} option must be between 1 and {high}")
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
    server: ServerSettings | None = None,
) -> dict[str, Any]:
    """The gunicorn settings: explicit arguments first, then the server settings (OSTEO_CDS_WORKERS, ...)."""
    server = ServerSettings() if server is None else server
    if not 0 < port < 65536:
        raise ServeError("port must be between 1 and 65535")
    bind_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    options: dict[str, Any] = {
        "bind": f"{bind_host}:{port}",
        "workers": _count("workers", workers, server.workers or default_workers(), MAX_WORKERS),
        "threads": _count("threads", threads, server.threads, MAX_THREADS),
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
    for option in SERVER_OPTIONS:
        options[option] = getattr(server, option)
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
        options = gunicorn_options(host, port, workers, threads, settings.server)
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
