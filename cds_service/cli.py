"""The console script: `osteo-cds serve`, `osteo-cds evaluate FILE|-`, `osteo-cds screen SOURCE --out DIR`,
`osteo-cds feedback-report`, `osteo-cds onboarding-report`, `osteo-cds card-volume`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date
from typing import Any

from cds_service.facts.bundle import BundleError, patient_data
from cds_service.facts.codemap import CodeMapError
from cds_service.facts.model import DataNote
from cds_service.settings import LANGUAGES, Settings, SettingsError


class InputError(ValueError):
    """Bad input for `evaluate`: reported as one line, exit 2."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="osteo-cds", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the CDS Hooks service (gunicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    evaluate = commands.add_parser("evaluate", help="evaluate a FHIR Bundle or a CDS Hooks request")
    evaluate.add_argument("file", help="JSON file, or - for standard input")
    evaluate.add_argument("--lang", choices=LANGUAGES, help="card language (default: OSTEO_CDS_LANGUAGE)")
    evaluate.add_argument("--today", help="the date taken as today, YYYY-MM-DD (default: OSTEO_CDS_TODAY)")
    screen = commands.add_parser(
        "screen", help="screen a population (Bulk Data NDJSON folder) into worklists"
    )
    screen.add_argument(
        "source",
        help="folder of .ndjson / .ndjson.gz files (a Bulk Data export), or an https "
        "[base]/Group/[id]/$export or [base]/Patient/$export URL to export from first (into OUT/export)",
    )
    screen.add_argument("--out", required=True, help="output folder (created owner-only)")
    screen.add_argument("--engine", choices=("embedded", "spark"), default="embedded")
    screen.add_argument("--master", help="Spark master, e.g. local[2] (default: spark-submit's)")
    screen.add_argument("--workers", type=int, help="engine processes (embedded; default: the CPU count)")
    screen.add_argument("--language", choices=LANGUAGES, help="report language (default: OSTEO_CDS_LANGUAGE)")
    screen.add_argument("--today", help="the date taken as today, YYYY-MM-DD (default: OSTEO_CDS_TODAY)")
    screen.add_argument("--client-id", help="$export: SMART Backend Services client id (no auth without it)")
    screen.add_argument("--private-key", help="$export: the client's private key, a PEM file (RSA or EC)")
    screen.add_argument("--key-id", help="$export: the key's id (kid) in the client's JWKS")
    screen.add_argument("--export-timeout", type=float, help="$export: longest wait for the export, seconds")
    report = commands.add_parser("feedback-report", help="issued/accepted/overridden counts per card type")
    report.add_argument("rest", nargs=argparse.REMAINDER)
    onboarding = commands.add_parser(
        "onboarding-report", help="codes, categories and exam names seen that nothing recognised (counts)"
    )
    onboarding.add_argument("rest", nargs=argparse.REMAINDER)
    volume = commands.add_parser("card-volume", help="cards issued per day and card type (no patient data)")
    volume.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except (SettingsError, CodeMapError) as exc:
        print(f"osteo-cds: {exc}", file=sys.stderr)
        return 2
    if args.command == "evaluate":
        return _evaluate(args.file, args.lang, args.today, settings)
    if args.command == "screen":
        return _screen(args, settings)
    if args.command == "serve":
        from cds_service.serve import run_server

        return run_server(settings, args.host, args.port)  # workers/threads: OSTEO_CDS_WORKERS/_THREADS
    if args.command == "onboarding-report":
        from cds_service.audit.onboarding import onboarding_report_main

        return onboarding_report_main(args.rest, settings.database_url)
    from cds_service.audit.report import card_volume_main, feedback_report_main

    if args.command == "card-volume":
        return card_volume_main(args.rest, settings.database_url, tz=settings.tz)
    return feedback_report_main(args.rest, settings.database_url)


EXTENSION_KEY = "org.osteo-cds"


def _evaluate(path: str, lang: str | None, today: str | None, settings: Settings) -> int:
    # stdout is the response and stderr one line on error: the service's own log lines stay out of both.
    quiet = logging.getLogger("cds_service")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    try:
        if today:
            settings = settings.with_changes(today=_date(today))
        document = _read_json(path)
        resources, patient_id = patient_data(document)
        from cds_service.engine import evaluate

        data_cut = orders_unknown = False
        notes: list[DataNote] = []
        if "hook" in document:
            # A CDS Hooks request is gathered as the service does: prefetch keys, else fhirServer.
            resources, data_cut, orders_unknown, notes = _gather(document, settings)
        result = evaluate(
            resources,
            patient_id,
            settings,
            language=lang,
            data_cut=data_cut,
            orders_unknown=orders_unknown,
            reading_notes=notes,
        )
    except (InputError, BundleError) as exc:
        print(f"osteo-cds evaluate: {exc}", file=sys.stderr)
        return 2
    if settings.silent:
        # A local tool showing what the engine concludes: it records nothing and prints the cards even in
        # silent mode, but says that the service would answer none (issue 17).
        print(
            'osteo-cds evaluate: OSTEO_CDS_SILENT is on: the service would answer {"cards": []} and only '
            "record these cards",
            file=sys.stderr,
        )
    # CONTRACT.md "Cards": the full explanation of each card is in evaluate's output, in the card's
    # `extension` (CDS Hooks' reserved member for what the specification does not define).
    for card, explanation in zip(result.response["cards"], result.explanations(), strict=True):
        card["extension"] = {EXTENSION_KEY: {"explanation": explanation}}
    try:
        json.dump(result.response, sys.stdout, ensure_ascii=False, indent=2)
        sys.stdout.write("\n")
        sys.stdout.flush()
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`): not an error of ours
    return 0


def _screen(args: argparse.Namespace, settings: Settings) -> int:
    from pathlib import Path

    try:
        from cds_service.screen import ScreenError, run_screen
    except ImportError as exc:
        print(f"osteo-cds screen: needs the [screen] extra ({exc.name} is missing)", file=sys.stderr)
        return 2
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        if args.today:
            settings = settings.with_changes(today=_date(args.today))
        source = _exported(args, settings) if _is_export(args.source) else Path(args.source)
        if not source.exists():
            raise InputError(f"{source} does not exist")
        run_screen(
            source,
            Path(args.out),
            settings,
            engine=args.engine,
            master=args.master,
            workers=args.workers,
            language=args.language or settings.language,
        )
    except (InputError, ScreenError) as exc:
        print(f"osteo-cds screen: {exc}", file=sys.stderr)
        return 2
    return 0


def _is_export(source: str) -> bool:
    from cds_service.screen.export import is_export_url

    return is_export_url(source)


def _exported(args: argparse.Namespace, settings: Settings) -> Any:
    """Run the `$export` into OUT/export (owner-only) and return that folder."""
    import os
    from pathlib import Path

    from cds_service.screen.export import MAX_WAIT, BackendAuth, run_export

    auth = None
    if args.client_id or args.private_key or args.key_id:
        if not (args.client_id and args.private_key and args.key_id):
            raise InputError("--client-id, --private-key and --key-id go together")
        try:
            key = Path(args.private_key).read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {args.private_key}: {exc.strerror}") from exc
        auth = BackendAuth(args.client_id, key, args.key_id)
    out = Path(args.out)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    dest = out / "export"
    run_export(args.source, dest, settings, auth, max_wait=args.export_timeout or MAX_WAIT)
    return dest


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise InputError("--today must be YYYY-MM-DD") from exc


def _gather(
    document: dict[str, Any], settings: Settings
) -> tuple[list[dict[str, Any]], bool, bool, list[DataNote]]:
    from cds_service.fhir.client import FhirServerRefused
    from cds_service.fhir.gather import DataUnavailable
    from cds_service.hooks.patient_view import ORDER_KEYS, strategy_for

    authorization = document.get("fhirAuthorization")
    token = authorization.get("access_token") if isinstance(authorization, dict) else None
    fhir_server = document.get("fhirServer")
    try:
        gathered = strategy_for(settings).gather(
            prefetch=document.get("prefetch"),
            context=document["context"],
            fhir_server=fhir_server if isinstance(fhir_server, str) else None,
            access_token=token if isinstance(token, str) else None,
            settings=settings,
        )
    except DataUnavailable as exc:
        raise InputError(f"no data for {exc} (missing prefetch and no reachable fhirServer)") from exc
    except FhirServerRefused as exc:
        raise InputError(f"fhirServer refused: {exc}") from exc
    orders_unknown = any(key in ORDER_KEYS for key in gathered.omitted)
    return gathered.resources, gathered.data_cut, orders_unknown, gathered.notes


def _read_json(path: str) -> Any:
    try:
        raw = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InputError("input is not UTF-8") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"input is not valid JSON (line {exc.lineno}, column {exc.colno})") from exc


if __name__ == "__main__":
    raise SystemExit(main())
