"""A seeded synthetic population as a Bulk Data NDJSON export, for `osteo-cds screen` benchmarks.

Each synthetic patient is one of the example patients (examples/patients: hand-made Chinese-hospital
records with local codes) or the Synthea fixtures (tests/fixtures/synthea, restricted to the types a
`_typeFilter`ed export of the query plan holds), cloned under new ids, with its birth date moved so the
population is over 50, and its T-/Z-scores moved by a random amount, so that the finding mix spreads. Mixing
hand-made (~7 resources) and Synthea (~120) records 71:29 gives ~40 bone-relevant resources per patient.
Sex: ~60 % women (as in the examples; a bone clinic sees more women). No code is invented: every code comes
from the templates. The finding mix this produces is measured, not assumed: see the report of a run.

    python -m bench.population OUT_DIR --patients 10000 [--seed 7] [--files 4] [--gzip]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from cds_service.facts.bundle import bundle_resources, single_patient_id
from cds_service.screen.ndjson import PATIENT_TYPES, SHARED_TYPES

ROOT = Path(__file__).resolve().parents[1]
SYNTHEA_SHARE = 0.29
T_Z_UNITS = {"{T-score}", "{Z-score}", "T", "Z", "SD"}


def templates() -> tuple[list[tuple[str, list[dict[str, Any]]]], list[tuple[str, list[dict[str, Any]]]]]:
    """(hand-made, Synthea): each (patient id, its resources of the types screened)."""
    hand = sorted(p for p in (ROOT / "examples" / "patients").glob("*.json") if p.name != "index.json")
    synthea = sorted((ROOT / "tests" / "fixtures" / "synthea").glob("*.json"))

    def load(paths: list[Path]) -> list[tuple[str, list[dict[str, Any]]]]:
        out = []
        for path in paths:
            resources = bundle_resources(json.loads(path.read_text(encoding="utf-8")))
            kept = [r for r in resources if r["resourceType"] in PATIENT_TYPES | SHARED_TYPES]
            out.append((single_patient_id(resources), kept))
        return out

    return load(hand), load(synthea)


def population(count: int, seed: int) -> Iterator[dict[str, Any]]:
    """The resources of `count` patients, patient after patient (shared Devices once, first)."""
    rng = random.Random(seed)
    hand, synthea = templates()
    devices: dict[str, dict[str, Any]] = {}
    for _, resources in hand + synthea:
        for r in resources:
            if r["resourceType"] in SHARED_TYPES:
                devices[r["id"]] = r
    yield from devices.values()
    for n in range(count):
        old_id, resources = rng.choice(synthea if rng.random() < SYNTHEA_SHARE else hand)
        new_id = f"syn-{seed}-{n:07d}"
        ids = {f"{r['resourceType']}/{r['id']}": f"{r['resourceType']}/{r['id']}-{n}" for r in resources}
        ids[f"Patient/{old_id}"] = f"Patient/{new_id}"
        shift = rng.gauss(0.0, 0.6)
        age = rng.randint(50, 92)
        for resource in resources:
            if resource["resourceType"] in SHARED_TYPES:
                continue
            clone = _rewrite(resource, ids)
            clone["id"] = new_id if resource["resourceType"] == "Patient" else f"{resource['id']}-{n}"
            if resource["resourceType"] == "Patient":
                clone["birthDate"] = f"{2026 - age}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
                clone.pop("name", None)
                clone.pop("deceasedDateTime", None)
                clone.pop("deceasedBoolean", None)
            _shift_scores(clone, shift)
            yield clone


def _rewrite(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {
            k: (ids.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, ids))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_rewrite(v, ids) for v in value]
    return value


def _shift_scores(resource: dict[str, Any], shift: float) -> None:
    quantities = [resource.get("valueQuantity")] + [
        c.get("valueQuantity") for c in resource.get("component", [])
    ]
    for q in quantities:
        if not isinstance(q, dict) or not isinstance(q.get("value"), int | float):
            continue
        if q.get("unit") in T_Z_UNITS or q.get("code") in T_Z_UNITS:
            q["value"] = round(max(-6.0, min(4.0, q["value"] + shift)), 1)


def write(out: Path, count: int, seed: int, files: int = 4, compress: bool = False) -> dict[str, int]:
    """Write `<Type>.<k>.ndjson[.gz]`, patients spread round-robin over `files` files per type."""
    out.mkdir(parents=True, exist_ok=True)
    handles: dict[tuple[str, int], IO[bytes]] = {}
    counts: dict[str, int] = {}
    with contextlib.ExitStack() as stack:
        for i, resource in enumerate(population(count, seed)):
            rtype = resource["resourceType"]
            key = (rtype, i % files)
            if key not in handles:
                name = out / f"{rtype}.{key[1]}.ndjson{'.gz' if compress else ''}"
                opener: Any = gzip.open if compress else open
                handles[key] = stack.enter_context(opener(name, "wb"))
            handles[key].write(
                json.dumps(resource, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
            )
            counts[rtype] = counts.get(rtype, 0) + 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--patients", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--files", type=int, default=4, help="files per resource type")
    parser.add_argument("--gzip", action="store_true")
    args = parser.parse_args()
    counts = write(args.out, args.patients, args.seed, args.files, args.gzip)
    total = sum(counts.values())
    print(
        json.dumps(
            {"patients": args.patients, "resources": total, "per_patient": total / args.patients, **counts}
        )
    )


if __name__ == "__main__":
    main()
