"""Bad input is counted, reported (report.html, rejects.csv), never a crash nor a smaller population."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pytest

from cds_service.screen import run_screen
from cds_service.screen.ndjson import MALFORMED, NO_PATIENT, NO_TYPE, TRUNCATED, UNKNOWN_TYPE, classify
from tests.screen.conftest import screen_settings

PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-01-01"}
T_SCORE = {
    "resourceType": "Observation",
    "id": "o1",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "38267-1"}]},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2025-01-01",
    "valueQuantity": {"value": -2.7, "unit": "{T-score}"},
}


def lines(*items: object) -> bytes:
    return b"".join((i if isinstance(i, bytes) else json.dumps(i).encode()) + b"\n" for i in items)


def truncated_gzip(data: bytes) -> bytes:
    packed = gzip.compress(data)
    return packed[: len(packed) - 30]


# (case id, file name, content, expected reject reason)
CASES = [
    ("malformed-line", "Observation.ndjson", lines(T_SCORE, b'{"resourceType": "Observ'), MALFORMED),
    ("no-resource-type", "Observation.ndjson", lines(T_SCORE, {"id": "x"}), NO_TYPE),
    (
        "unknown-type",
        "Claim.ndjson",
        lines({"resourceType": "Claim", "patient": {"reference": "Patient/p1"}}),
        UNKNOWN_TYPE,
    ),
    (
        "no-patient-reference",
        "Observation.ndjson",
        lines(T_SCORE, {**T_SCORE, "subject": {"display": "x"}}),
        NO_PATIENT,
    ),
    ("truncated-gzip", "Observation.ndjson.gz", truncated_gzip(lines(*[T_SCORE] * 2000)), TRUNCATED),
]


@pytest.mark.parametrize(("name", "content", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_counted_and_reported(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    source = tmp_path / "export"
    source.mkdir()
    (source / "Patient.ndjson").write_bytes(lines(PATIENT, {**PATIENT, "id": "p2"}))
    (source / name).write_bytes(content)
    out = tmp_path / "out"
    summary = run_screen(source, out, screen_settings(), workers=1)
    assert summary.rejects[reason] >= 1
    assert summary.patients == 2  # the good patients are all there
    with (out / "rejects.csv").open(encoding="utf-8") as handle:
        rejects = list(csv.DictReader(handle))
    assert {r["reason"] for r in rejects} == {reason}
    assert {r["file"] for r in rejects} == {name}
    assert reason in (out / "report.html").read_text(encoding="utf-8")
    # Nothing silently dropped: every line read is either used or rejected.
    rejected_lines = sum(1 for r in rejects if r["line"] != "0")
    assert summary.lines == sum(summary.resources.values()) + rejected_lines


def test_lines_before_a_gzip_truncation_are_kept(tmp_path: Path) -> None:
    """TRUNCATED: what could be read is used, the file is reported once."""
    source = tmp_path / "export"
    source.mkdir()
    (source / "Patient.ndjson").write_bytes(lines(PATIENT))
    (source / "Observation.ndjson.gz").write_bytes(truncated_gzip(lines(*[T_SCORE] * 2000)))
    summary = run_screen(source, tmp_path / "out", screen_settings(), workers=1)
    assert summary.rejects == {TRUNCATED: 1}
    assert summary.resources["Observation"] > 1000
    assert summary.topics == {"osteoporosis-bmd": 1, "spine-radiograph-recommended": 1}


# POP-5: a glucocorticoid order is read by the engine, so the screen must not reject it (nor the other
# resource types the hooks read: DocumentReference imaging notes, MedicationStatement).
PREDNISONE = {
    "resourceType": "MedicationRequest",
    "id": "m1",
    "status": "active",
    "intent": "order",
    "medicationCodeableConcept": {"text": "泼尼松片 10mg"},
    "subject": {"reference": "Patient/p1"},
    "authoredOn": "2024-01-01",
}


@pytest.mark.parametrize(
    "resource_type",
    ["MedicationRequest", "MedicationStatement", "DocumentReference", "Observation", "DiagnosticReport"],
)
def test_every_type_the_engine_reads_is_screened_not_rejected(resource_type: str) -> None:
    line = classify(1, json.dumps({**PREDNISONE, "resourceType": resource_type}).encode())
    assert line.reason is None and line.patient == "p1"
