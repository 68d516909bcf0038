"""Build the CDS Hooks example requests in examples/requests/ from the shared Synthea bundles.

For each bundle `<First>_<Last>_<uuid>.json` it writes:
  <first>-<last>-prefetch.json     every prefetch key filled the way a FHIR server answers the template
                                   (searchset Bundles, newest first, references as `Patient/<id>`);
  <first>-<last>-no-prefetch.json  fhirServer + context only: the service runs the searches itself.

Usage: .venv/bin/python scripts/make_examples.py [--source DIR] [--out DIR] [--fhir-server URL]
The output is deterministic (ids and hookInstances derive from the input), so re-running changes nothing.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from urllib.parse import parse_qsl  # noqa: E402

from cds_service.facts.codemap import load_code_map  # noqa: E402
from cds_service.fhir.plan import build_plan  # noqa: E402
from cds_service.fhir.prefetch import render, resource_type_of  # noqa: E402
from cds_service.hooks.patient_view import HOOK  # noqa: E402
from scripts.strict_fhir_server import search  # noqa: E402

DEFAULT_SOURCE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "synthea"
DEFAULT_OUT = ROOT / "examples" / "requests"
DEFAULT_FHIR_SERVER = "http://127.0.0.1:8090/fhir"
HOOK_INSTANCE_NAMESPACE = uuid.UUID("5b0c4f0e-6a53-4c55-9a63-0f5e0b4c2d11")
# The examples are evaluated with examples/code-map.json (examples/patients/index.json): their prefetch
# answers the templates of that code map's query plan, as the EHR's server would.
TEMPLATES = build_plan(load_code_map(ROOT / "examples" / "code-map.json")).templates

Resource = dict[str, Any]


def rewrite_references(node: Any, targets: dict[str, str]) -> Any:
    """Every `reference` to a `urn:uuid:` fullUrl of the bundle becomes `Type/id`, as a server stores it."""
    if isinstance(node, dict):
        return {
            key: targets.get(value, value)
            if key == "reference" and isinstance(value, str)
            else rewrite_references(value, targets)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [rewrite_references(item, targets) for item in node]
    return node


def _subject_is(resource: Resource, patient_ref: str) -> bool:
    subject = resource.get("subject") or resource.get("patient") or {}
    return isinstance(subject, dict) and subject.get("reference") == patient_ref


def _newest_first(date_of: Callable[[Resource], str]) -> Callable[[list[Resource]], list[Resource]]:
    return lambda resources: sorted(resources, key=date_of, reverse=True)


def _date(*fields: str) -> Callable[[Resource], str]:
    def date_of(resource: Resource) -> str:
        for name in fields:
            value = resource.get(name)
            if isinstance(value, str):
                return value
            if isinstance(value, dict) and isinstance(value.get("start"), str):
                return str(value["start"])
        return ""

    return date_of


# The order of a search's answer (newest first, as many servers answer without `_sort`); else as stored.
SEARCH_ORDER: dict[str, Callable[[list[Resource]], list[Resource]]] = {
    "Observation": _newest_first(_date("effectiveDateTime", "effectivePeriod", "issued")),
    "Procedure": _newest_first(_date("performedDateTime", "performedPeriod")),
    "DiagnosticReport": _newest_first(_date("effectiveDateTime", "effectivePeriod", "issued")),
}


def searchset(fhir_server: str, relative: str, resources: list[Resource]) -> dict[str, Any]:
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": f"{fhir_server}/{relative}"}],
    }
    if resources:
        bundle["entry"] = [
            {
                "fullUrl": f"{fhir_server}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ]
    return bundle


def example_name(path: Path) -> str:
    first, last = path.stem.split("_")[:2]
    return f"{first}-{last}".lower()


def bundle_resources(path: Path) -> list[Resource]:
    """The resources of a Bundle file as a FHIR server stores them (`urn:uuid:` references as `Type/id`)."""
    bundle = json.loads(path.read_text(encoding="utf-8"))
    entries = [e for e in bundle["entry"] if isinstance(e.get("resource"), dict)]
    targets = {
        e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in entries
        if str(e.get("fullUrl", "")).startswith("urn:uuid:")
    }
    return [rewrite_references(e["resource"], targets) for e in entries]


def build_requests(path: Path, fhir_server: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (prefetch, no-prefetch) requests for one Synthea bundle."""
    resources = bundle_resources(path)
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    practitioner = next((r for r in resources if r["resourceType"] == "Practitioner"), None)
    context: dict[str, Any] = {
        "userId": f"Practitioner/{practitioner['id']}" if practitioner else "Practitioner/example",
        "patientId": patient["id"],
    }
    patient_ref = f"Patient/{patient['id']}"

    prefetch: dict[str, Any] = {}
    for key, template in TEMPLATES.items():
        if "?" not in template:  # a read
            prefetch[key] = patient
            continue
        resource_type = resource_type_of(template)
        relative = render(template, context)
        matches = search(resources, resource_type, dict(parse_qsl(relative.partition("?")[2])))
        assert all(_subject_is(r, patient_ref) for r in matches)
        order = SEARCH_ORDER.get(resource_type, lambda found: found)
        prefetch[key] = searchset(fhir_server, relative, order(matches))

    name = example_name(path)
    base = {
        "hook": HOOK,
        "hookInstance": str(uuid.uuid5(HOOK_INSTANCE_NAMESPACE, name)),
    }
    with_prefetch = {**base, "context": context, "prefetch": prefetch}
    without_prefetch = {
        **base,
        "hookInstance": str(uuid.uuid5(HOOK_INSTANCE_NAMESPACE, f"{name}/no-prefetch")),
        "fhirServer": fhir_server,
        "context": context,
    }
    return with_prefetch, without_prefetch


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="folder of Synthea bundles")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the requests")
    parser.add_argument("--fhir-server", default=DEFAULT_FHIR_SERVER, help="fhirServer of the requests")
    args = parser.parse_args(argv)
    sources = sorted(p for p in args.source.glob("*.json") if re.match(r"^[A-Za-z]+_[A-Za-z]+_", p.name))
    if not sources:
        print(f"make_examples: no Synthea bundles in {args.source}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    fhir_server = args.fhir_server.rstrip("/")
    for path in sources:
        name = example_name(path)
        for suffix, request in zip(
            ("prefetch", "no-prefetch"), build_requests(path, fhir_server), strict=True
        ):
            target = args.out / f"{name}-{suffix}.json"
            target.write_text(json.dumps(request, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            print(target.relative_to(ROOT) if target.is_relative_to(ROOT) else target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
