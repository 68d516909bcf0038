"""Demonstration patients for the try-it panel, listed at request time from the examples folder.

examples/patients/index.json (when present) lists hand-made patients with the cards they should get
under the settings it names (OSTEO_CDS_TODAY, OSTEO_CDS_CODE_MAP); examples/requests/*-prefetch.json
are CDS Hooks requests. Demonstrations are evaluated with those settings, so that they show what the
index promises; data pasted on the page is evaluated with the service's own settings.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from cds_service.facts.codemap import CodeMap, CodeMapError, load_code_map
from cds_service.settings import Settings

log = logging.getLogger(__name__)

# The repository's examples/ (absent from an installed wheel: the list is then empty).
DEFAULT_EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"

_FILE_KEYS = ("file", "path", "bundle", "request", "filename")
_LABEL_KEYS = ("title", "label", "name", "display")
_DESCRIPTION_KEYS = ("description", "summary", "scenario", "note")
_DESCRIPTION_ZH_KEYS = ("description_zh", "descriptionZh", "description-zh-CN", "summary_zh")
_TOPIC_KEYS = ("expectedTopics", "expected_topics", "topics", "expected_cards", "expected")
# The index settings a demonstration may carry; anything else in it is ignored.
_DEMO_SETTINGS = ("OSTEO_CDS_TODAY", "OSTEO_CDS_CODE_MAP")


@dataclass(frozen=True)
class Demo:
    """One demonstration: a FHIR Bundle or CDS Hooks request file under examples/."""

    id: str  # "patients/<stem>" or "requests/<stem>"; looked up in the listing, never joined to a path
    label: str
    group: str  # "patients" | "requests"
    path: Path
    description: str | None = None
    description_zh: str | None = None
    expected_topics: tuple[str, ...] = ()

    def description_in(self, language: str) -> str | None:
        if language == "zh-CN" and self.description_zh:
            return self.description_zh
        return self.description


@dataclass(frozen=True)
class Catalogue:
    demos: tuple[Demo, ...] = ()
    settings: Mapping[str, str] = field(default_factory=dict)  # from the index, _DEMO_SETTINGS only

    def find(self, demo_id: str) -> Demo | None:
        return next((d for d in self.demos if d.id == demo_id), None)


def load_catalogue(examples_dir: Path = DEFAULT_EXAMPLES_DIR) -> Catalogue:
    """The index's patients (when the index exists), then examples/requests/*-prefetch.json."""
    index = _read_index(examples_dir / "patients" / "index.json")
    patients = [d for d in (_demo_of(e, examples_dir / "patients") for e in _entries(index)) if d is not None]
    topics_by_name = _expected_topics_by_name(index, patients)
    # A hand-made patient's request (wang-xiulan-prefetch.json) is the same patient as its bundle: one entry.
    listed = {d.path.stem.lower() for d in patients}
    requests = [
        d
        for d in _prefetch_requests(examples_dir / "requests", topics_by_name)
        if d.path.name.removesuffix("-prefetch.json").lower() not in listed
    ]
    settings = index.get("settings") if isinstance(index, dict) else None
    chosen = {
        k: v for k, v in (settings or {}).items() if k in _DEMO_SETTINGS and isinstance(v, str) and v.strip()
    }
    return Catalogue(tuple(patients + requests), chosen)


def read_demo(demo: Demo) -> Any:
    return json.loads(demo.path.read_text(encoding="utf-8"))


def demo_settings(
    settings: Settings, catalogue: Catalogue, examples_dir: Path = DEFAULT_EXAMPLES_DIR
) -> Settings:
    """The service's settings with the index's date and code map (the service's own codes win)."""
    changes: dict[str, Any] = {}
    today = catalogue.settings.get("OSTEO_CDS_TODAY")
    if today:
        try:
            changes["today"] = date.fromisoformat(today.strip())
        except ValueError:
            log.warning("examples/patients/index.json: OSTEO_CDS_TODAY is not YYYY-MM-DD; ignored")
    code_map_path = catalogue.settings.get("OSTEO_CDS_CODE_MAP")
    if code_map_path:
        code_map = _index_code_map(code_map_path, examples_dir)
        if code_map is not None:
            changes["code_map"] = CodeMap({**code_map.by_coding, **settings.code_map.by_coding})
    return settings.with_changes(**changes) if changes else settings


def _index_code_map(relative: str, examples_dir: Path) -> CodeMap | None:
    root = examples_dir.resolve().parent  # the index names it from the repository root
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        log.warning("examples/patients/index.json: code map %s not found; ignored", relative)
        return None
    try:
        return load_code_map(path)
    except CodeMapError as exc:
        log.warning("examples/patients/index.json: %s; ignored", exc)
        return None


def _read_index(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        log.warning("examples/patients/index.json is not readable JSON; no demonstration patients listed")
        return None


def _entries(index: Any, key: str = "patients") -> list[dict[str, Any]]:
    """The index's entries under `key`, whatever of the usual shapes the index has."""
    if isinstance(index, dict):
        if isinstance(index.get(key), list):
            index = index[key]
        elif key == "patients" and not any(isinstance(v, list) for v in index.values()):
            # {"file.json": {...}, ...}: the key names the file
            return [
                {"file": name, **value} if isinstance(value, dict) else {"file": name, "title": value}
                for name, value in index.items()
                if isinstance(name, str) and name.endswith(".json")
            ]
        else:
            return []
    if not isinstance(index, list):
        return []
    return [e if isinstance(e, dict) else {"file": e} for e in index if isinstance(e, dict | str)]


def _demo_of(entry: dict[str, Any], folder: Path) -> Demo | None:
    name = _first_str(entry, _FILE_KEYS)
    if name is None and isinstance(entry.get("id"), str):
        name = f"{entry['id']}.json"
    if name is None:
        return None
    path = (folder / name).resolve()
    # Only files inside examples/patients: the index is data, not a way to read the disk.
    if not path.is_relative_to(folder.resolve()) or not path.is_file() or path.name == "index.json":
        return None
    return Demo(
        id=f"patients/{path.stem}",
        label=_first_str(entry, _LABEL_KEYS) or path.stem.replace("-", " ").replace("_", " "),
        group="patients",
        path=path,
        description=_first_str(entry, _DESCRIPTION_KEYS),
        description_zh=_first_str(entry, _DESCRIPTION_ZH_KEYS),
        expected_topics=_topics(entry),
    )


def _expected_topics_by_name(index: Any, patients: list[Demo]) -> dict[str, tuple[str, ...]]:
    """Patient name ("chen-yuying", "chad-quigley") → expected topics, to label the example requests."""
    names = {d.path.stem.lower(): d.expected_topics for d in patients}
    for entry in _entries(index, "synthea"):
        title = _first_str(entry, _LABEL_KEYS)
        if title:
            names[_slug(title)] = _topics(entry)
    return names


def _prefetch_requests(folder: Path, topics_by_name: Mapping[str, tuple[str, ...]]) -> list[Demo]:
    if not folder.is_dir():
        return []
    demos = []
    for path in sorted(folder.glob("*-prefetch.json")):
        if path.name.endswith("-no-prefetch.json"):
            continue  # nothing to evaluate: the preview calls no FHIR server
        stem = path.name.removesuffix(".json")
        name = stem.removesuffix("-prefetch")
        demos.append(
            Demo(
                id=f"requests/{stem}",
                label=name.replace("-", " ").title(),
                group="requests",
                path=path,
                expected_topics=topics_by_name.get(name.lower(), ()),
            )
        )
    return demos


def _topics(entry: Mapping[str, Any]) -> tuple[str, ...]:
    for key in _TOPIC_KEYS:
        value = entry.get(key)
        if isinstance(value, list):
            return tuple(t for t in value if isinstance(t, str))
    return ()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _first_str(entry: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None
