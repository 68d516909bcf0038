"""Test helper: FHIR Bundles (examples/patients, tests/fixtures/synthea) → a Bulk Data NDJSON folder."""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from cds_service.facts.bundle import bundle_resources, single_patient_id

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "patients"
SYNTHEA = ROOT / "tests" / "fixtures" / "synthea"
CODE_MAP = ROOT / "examples" / "code-map.json"


def bundle_files() -> list[Path]:
    return [
        *sorted(p for p in EXAMPLES.glob("*.json") if p.name != "index.json"),
        *sorted(SYNTHEA.glob("*.json")),
    ]


def patients() -> dict[str, list[dict[str, Any]]]:
    """patient id → that Bundle's resources."""
    out = {}
    for path in bundle_files():
        resources = bundle_resources(json.loads(path.read_text(encoding="utf-8")))
        out[single_patient_id(resources)] = resources
    return out


def write_export(folder: Path, parts: int = 2) -> Path:
    """Every resource of every Bundle into `<Type>.<n>.ndjson` (odd parts gzipped), as an export holds them:
    types apart, patients interleaved, several files per type."""
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for resources in patients().values():
        for resource in resources:
            by_type[resource["resourceType"]].append(resource)
    folder.mkdir(parents=True, exist_ok=True)
    for rtype, items in by_type.items():
        for part in range(parts):
            chunk = items[part::parts]
            if not chunk:
                continue
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in chunk).encode()
            if part % 2:
                (folder / f"{rtype}.{part}.ndjson.gz").write_bytes(gzip.compress(text))
            else:
                (folder / f"{rtype}.{part}.ndjson").write_bytes(text)
    return folder
