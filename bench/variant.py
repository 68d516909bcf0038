"""`osteo-cds serve` with a lever that lives outside bench/'s reach switched on, to measure it before it is
applied (or profiled): `python -m bench.variant [--gc-freeze] [--profile FILE] -- serve --port P`.

The levers are added as gunicorn hooks around `cds_service.serve.gunicorn_options`; the service code
itself is not changed.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable
from typing import Any

from cds_service import cli, serve


def _freeze_master(server: Any) -> None:
    # In the master, after the imports and before the first fork: what is imported is never garbage.
    # Frozen, no collection walks it again (and, in the workers, no collection writes to the pages it
    # shares with the master, which keeps them shared).
    gc.collect()
    gc.freeze()


def _freeze(worker: Any) -> None:
    # In each worker once the app is built: the app's own long-lived objects join the frozen ones.
    gc.freeze()


def _profiler(path: str) -> tuple[Callable[[Any], None], Callable[[Any, Any], None]]:
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.0005)

    def wrap(worker: Any) -> None:
        app = worker.wsgi
        inner = app.wsgi_app

        def profiled(environ: Any, start_response: Any) -> Any:
            profiler.start()
            try:
                return inner(environ, start_response)
            finally:
                profiler.stop()

        app.wsgi_app = profiled

    def dump(server: Any, worker: Any) -> None:
        with open(f"{path}.{os.getpid()}.txt", "w") as out:
            out.write(profiler.output_text(unicode=False, color=False))

    return wrap, dump


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.variant", description=__doc__.splitlines()[0])
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() in each worker after it loads")
    parser.add_argument("--profile", help="pyinstrument each worker's requests; text to FILE.<pid>.txt")
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="-- then the osteo-cds arguments")
    args = parser.parse_args(argv)
    hooks: dict[str, Any] = {}
    init: list[Callable[[Any], None]] = []
    if args.gc_freeze:
        hooks["when_ready"] = _freeze_master
        init.append(_freeze)
    if args.profile:
        wrap, dump = _profiler(args.profile)
        init.append(wrap)
        hooks["worker_exit"] = dump
    if init:
        hooks["post_worker_init"] = lambda worker: [hook(worker) for hook in init] and None
    original = serve.gunicorn_options

    def with_hooks(*a: Any, **k: Any) -> dict[str, Any]:
        return {**original(*a, **k), **hooks}

    serve.gunicorn_options = with_hooks
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main())
