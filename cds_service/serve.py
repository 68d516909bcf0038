"""`osteo-cds serve`: the app under gunicorn, started from Python (no gunicorn command line or config)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from cds_service.api.app import StartupError, check_startable, create_app
from cds_service.settings import Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_THREADS = 4  # patient-view mostly waits on FHIR searches
MAX_WORKERS = 64
MAX_THREADS = 64
WORKER_TIMEOUT_SECONDS = 30  # far above the FHIR budget; a worker silent this long is stuck
GRACEFUL_TIMEOUT_SECONDS = 20
KEEPALIVE_SECONDS = 5
# Recycling workers bounds slow leaks; the jitter keeps them from all restarting at once.
MAX_REQUESTS = 2000
MAX_REQUESTS_JITTER = 200


class ServeError(ValueError):
    """A serve option or OSTEO_CDS_WORKERS / OSTEO_CDS_THREADS has a value the server cannot start with."""


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
        return create_app(self._settings)


def default_workers() -> int:
    return max(1, min(2 * (os.cpu_count() or 1), 4))


def _count(env: Mapping[str, str], name: str, given: int | None, default: int, high: int) -> int:
    if given is not None:
        value = given
        where = f"{name.removeprefix('OSTEO_CDS_').lower()} option"
    else:
        raw = env.get(name, "").strip()
        if not raw:
            return default
        where = name
        try:
            value = int(raw)
        except ValueError as exc:
            raise ServeError(f"{where} must be an integer") from exc
    if not 1 <= value <= high:
        raise ServeError(f"{where} must be between 1 and {high}")
    return value


def gunicorn_options(
    host: str,
    port: int,
    workers: int | None,
    threads: int | None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The gunicorn settings: explicit arguments first, then OSTEO_CDS_WORKERS / OSTEO_CDS_THREADS."""
    env = os.environ if env is None else env
    if not 0 < port < 65536:
        raise ServeError("port must be between 1 and 65535")
    bind_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    options: dict[str, Any] = {
        "bind": f"{bind_host}:{port}",
        "workers": _count(env, "OSTEO_CDS_WORKERS", workers, default_workers(), MAX_WORKERS),
        "threads": _count(env, "OSTEO_CDS_THREADS", threads, DEFAULT_THREADS, MAX_THREADS),
        "worker_class": "gthread",
        "timeout": WORKER_TIMEOUT_SECONDS,
        "graceful_timeout": GRACEFUL_TIMEOUT_SECONDS,
        "keepalive": KEEPALIVE_SECONDS,
        "max_requests": MAX_REQUESTS,
        "max_requests_jitter": MAX_REQUESTS_JITTER,
        "accesslog": None,  # the app logs requests itself, without URLs that could carry patient ids
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "osteo-cds",
        "preload_app": False,
        # no runtime control socket (gunicornc): nothing to manage at run time, and no home directory to
        # write it to for the image's system user
        "control_socket_disable": True,
    }
    if os.path.isdir("/dev/shm"):
        # worker heartbeats on a RAM disk: on container overlay filesystems they can stall
        options["worker_tmp_dir"] = "/dev/shm"
    return options


def run_server(
    settings: Settings,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int | None = None,
    threads: int | None = None,
) -> int:
    """Serve until stopped; the exit code (2 with a one-line error on stderr when it cannot start)."""
    try:
        check_startable(settings)
        options = gunicorn_options(host, port, workers, threads)
    except (StartupError, ServeError) as exc:
        print(f"osteo-cds serve: {exc}", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        _OsteoCdsServer(settings, options).run()
    except SystemExit as exc:  # gunicorn exits the process on fatal errors (port in use, workers not booting)
        return exc.code if isinstance(exc.code, int) else 1
    return 0
