"""The floor: a bare Flask app that parses the same JSON body and answers {"cards": []}, under gunicorn
with exactly the service's options (`cds_service.serve.gunicorn_options`)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

import orjson
from flask import Flask, Response, abort, request
from gunicorn.app.base import BaseApplication  # type: ignore[import-untyped]

from cds_service.serve import gunicorn_options
from cds_service.settings import ServerSettings

_EMPTY = orjson.dumps({"cards": []})


def create_floor_app() -> Flask:
    app = Flask(__name__)

    @app.post("/cds-services/<service_id>")
    def call_service(service_id: str) -> Response:
        # The same parser as the service (orjson), so the ratio counts the service's own work only.
        body = orjson.loads(request.get_data(cache=False))
        if not isinstance(body, dict):
            abort(400)
        return Response(_EMPTY, mimetype="application/json")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b'{"status": "ok"}', mimetype="application/json")

    return app


class _FloorServer(BaseApplication):  # type: ignore[misc]  # gunicorn ships no type hints
    def __init__(self, options: Mapping[str, Any]) -> None:
        self._options = dict(options)
        super().__init__()

    def load_config(self) -> None:
        for name, value in self._options.items():
            self.cfg.set(name, value)

    def load(self) -> Flask:
        return create_floor_app()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    server = ServerSettings.from_env(
        os.environ
    )  # the service's OSTEO_CDS_ server settings, read as it reads them
    options = gunicorn_options(args.host, args.port, args.workers, args.threads, server)
    options["proc_name"] = "osteo-cds-floor"
    _FloorServer(options).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
