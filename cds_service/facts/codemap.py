"""Local codes → concepts (OSTEO_CDS_CODE_MAP), compiled once at start."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# CONTRACT.md "Local codes": the closed list of concepts a local code can be mapped to.
CONCEPTS = frozenset(
    {
        "dxa-t-lumbar-spine",
        "dxa-t-femoral-neck",
        "dxa-t-total-hip",
        "dxa-t-forearm",
        "dxa-t-unspecified",
        "dxa-z-lumbar-spine",
        "dxa-z-femoral-neck",
        "dxa-z-total-hip",
        "dxa-z-forearm",
        "dxa-z-unspecified",
        "qct-lumbar-vbmd",
        "qct-hip-t",
        "peripheral-bmd",
        "tbs",
        "genant-grade",
        "bmi",
        "spine-imaging-report",
        # order kinds (the order hooks' draft orders, and orders on record): facts/orders.py ORDER_CONCEPTS
        "order-central-dxa",
        "order-qct",
        "order-forearm-dxa",
        "order-peripheral-bmd",
        "order-qus",
        "order-spine-radiograph",
        "order-ct-l1-l2",
    }
)


class CodeMapError(ValueError):
    """The code map file is unreadable or names an unknown concept (an error at start)."""


@dataclass(frozen=True)
class CodeMap:
    by_coding: dict[tuple[str, str], str] = field(default_factory=dict)

    def concept_of(self, system: str | None, code: str | None) -> str | None:
        if not code:
            return None
        return self.by_coding.get((system or "", code))

    def codings_of(self, concept: str) -> list[tuple[str, str]]:
        return [coding for coding, c in self.by_coding.items() if c == concept]

    def __bool__(self) -> bool:
        return bool(self.by_coding)


def load_code_map(path: Path) -> CodeMap:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CodeMapError(f"code map {path}: cannot read ({exc.strerror})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CodeMapError(f"code map {path}: not valid JSON") from exc
    return parse_code_map(raw, str(path))


def parse_code_map(raw: object, where: str = "code map") -> CodeMap:
    if not isinstance(raw, dict):
        raise CodeMapError(f"{where}: must be a JSON object concept -> list of codings")
    by_coding: dict[tuple[str, str], str] = {}
    for concept, codings in raw.items():
        if concept not in CONCEPTS:
            raise CodeMapError(f"{where}: unknown concept {concept!r} (known: {', '.join(sorted(CONCEPTS))})")
        if not isinstance(codings, list):
            raise CodeMapError(f"{where}: {concept} must map to a list of codings")
        for coding in codings:
            if not isinstance(coding, dict) or not isinstance(coding.get("code"), str) or not coding["code"]:
                raise CodeMapError(f"{where}: {concept}: every coding needs a non-empty string 'code'")
            system = coding.get("system", "")
            if not isinstance(system, str):
                raise CodeMapError(f"{where}: {concept}: 'system' must be a string")
            key = (system, coding["code"])
            if key in by_coding and by_coding[key] != concept:
                raise CodeMapError(f"{where}: {system}|{coding['code']} is mapped to two concepts")
            by_coding[key] = concept
    return CodeMap(by_coding)
