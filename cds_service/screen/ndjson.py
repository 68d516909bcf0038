"""Bulk Data NDJSON in: the files of an export folder, their lines, and what each line is.

One reader for both engines (embedded and Spark), so both count bad input the same way. A line is classified
without loading the population: its resource type and the patient it belongs to, or why it cannot be used.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from cds_service.facts.extract import PATIENT_RESOURCE_TYPES

# The resource types the engine reads (facts/extract.py), Patient included. Device is shared: densitometers
# are referenced by many patients' Observations and usually name no patient, so they go to every group.
PATIENT_TYPES = PATIENT_RESOURCE_TYPES
SHARED_TYPES = frozenset({"Device"})

# Why a line is not evaluated (the rejects file's `reason`; the report's texts are keyed by these).
MALFORMED = "malformed-json"
NO_TYPE = "no-resource-type"
UNKNOWN_TYPE = "unknown-resource-type"
NO_PATIENT = "no-patient-reference"
TRUNCATED = "truncated-gzip"
UNREADABLE = "unreadable-file"
REASONS = (MALFORMED, NO_TYPE, UNKNOWN_TYPE, NO_PATIENT, TRUNCATED, UNREADABLE)


@dataclass(frozen=True)
class Line:
    """One classified line: `patient` is set for patient resources, `reason` for rejects."""

    number: int  # 1-based line number in its file
    text: bytes  # the JSON, one line (CR as whitespace made a space); empty for rejects
    rtype: str | None
    patient: str | None
    reason: str | None = None


def export_files(source: Path) -> list[Path]:
    """The NDJSON files of an export folder (any depth), in a stable order."""
    if source.is_file():
        return [source]
    suffixes = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")
    return sorted(p for p in source.rglob("*") if p.is_file() and p.name.endswith(suffixes))


def read_lines(path: Path) -> Iterator[Line]:
    """Every non-blank line of a file, classified. A truncated or corrupt gzip yields what could be read and
    then one reject line (number 0) saying so: never an exception, never silently fewer lines."""
    opener: Any = gzip.open if path.name.endswith(".gz") else open
    number = 0
    try:
        with opener(path, "rb") as handle:
            for raw in handle:
                number += 1
                if raw.strip():
                    yield classify(number, raw)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        yield Line(0, b"", None, None, TRUNCATED if isinstance(exc, EOFError | zlib.error) else UNREADABLE)
    except OSError:
        yield Line(0, b"", None, None, UNREADABLE)


def classify(number: int, raw: bytes) -> Line:
    try:
        resource = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return Line(number, b"", None, None, MALFORMED)
    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(rtype, str) or not rtype:
        return Line(number, b"", None, None, NO_TYPE)
    # Valid JSON holds no raw control character but whitespace: a CR between tokens becomes a space, so
    # that a line stays one line (and \x1f, the work files' separator, cannot occur).
    text = raw.strip().replace(b"\r", b" ")
    if rtype in SHARED_TYPES:
        return Line(number, text, rtype, patient_key(resource))
    if rtype not in PATIENT_TYPES:
        return Line(number, b"", rtype, None, UNKNOWN_TYPE)
    key = patient_key(resource)
    if key is None:
        return Line(number, b"", rtype, None, NO_PATIENT)
    return Line(number, text, rtype, key)


def patient_key(resource: dict[str, Any]) -> str | None:
    """The id of the patient a resource belongs to: a Patient's own id, else its subject/patient reference
    (relative `Patient/x`, absolute `…/Patient/x`, with or without `/_history/n`)."""
    if resource.get("resourceType") == "Patient":
        rid = resource.get("id")
        return rid if isinstance(rid, str) and rid and rid.isprintable() else None
    for key in ("subject", "patient"):
        ref = resource.get(key)
        reference = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(reference, str):
            parts = reference.split("/_history/")[0].rstrip("/").split("/")
            if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1].isprintable():
                return parts[-1]
    return None
