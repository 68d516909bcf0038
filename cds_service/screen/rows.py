"""One patient group → worklist rows, through the same engine as the hooks.

`engine.assess_record` is the pipeline `engine.evaluate` runs before it renders cards: the findings are
exactly the cards' (same topics, same rules, same switched-off cards and deceased handling), without the
card wording nobody reads here.

A row is one patient and one finding (one card): who (id, age today, sex), what (topic, group, indicator,
rule IDs), the decisive evidence (measure, value, unit, site, date, source) and the patient's data notes.
No names, no free text from the record: a worklist is personal health information all the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from cds_service.consensus.findings import Evidence, Finding
from cds_service.consensus.population import age_on
from cds_service.engine import assess_record
from cds_service.facts.model import Modality, PatientFacts
from cds_service.settings import Settings

# Column name → Arrow/DuckDB type, in worklist order (CSV, Parquet and the Spark schema follow it).
COLUMNS: dict[str, str] = {
    "patient_id": "VARCHAR",
    "age": "INTEGER",
    "sex": "VARCHAR",
    "topic": "VARCHAR",
    "group": "VARCHAR",
    "indicator": "VARCHAR",
    "measure": "VARCHAR",
    "value": "DOUBLE",
    "unit": "VARCHAR",
    "site": "VARCHAR",
    "date": "VARCHAR",
    "source": "VARCHAR",
    "rules": "VARCHAR",
    "bmd_on_record": "BOOLEAN",
    "condition_suggested": "BOOLEAN",
    "data_notes": "VARCHAR",
}
# Result columns: the worklist's, plus the class name of a defect raised for a patient (no message: it
# could quote the record).
RESULT_COLUMNS: dict[str, str] = {**COLUMNS, "error": "VARCHAR"}

_CENTRAL = frozenset({Modality.DXA, Modality.QCT})

Row = dict[str, Any]


def evaluate_group(
    patient_id: str, lines: Iterable[str | bytes], shared: list[dict[str, Any]], settings: Settings
) -> list[Row]:
    """One patient through the engine: a patient row (topic None: who was screened, for the population
    counts) followed by one row per finding (card). `shared` are the Devices that name no patient."""
    resources = [orjson.loads(line) for line in lines]
    assessment = assess_record([*resources, *shared], patient_id, settings)
    base = _patient_columns(assessment.facts, settings)
    skipped = Counter(note.reason for note in assessment.facts.notes)
    base["data_notes"] = ";".join(f"{reason}:{n}" for reason, n in sorted(skipped.items())) or None
    return [base, *({**base, **_finding_columns(f)} for f in assessment.findings)]


def evaluate_chunk(
    chunk: Iterable[tuple[str, list[str]]], shared: list[dict[str, Any]], settings: Settings
) -> list[Row]:
    """Patient groups → rows with every result column. A defect raised for one patient is that patient's
    `error` row (counted and reported), never the end of the run."""
    rows: list[Row] = []
    for patient_id, lines in chunk:
        try:
            rows.extend(evaluate_group(patient_id, lines, shared, settings))
        except Exception as exc:  # one patient's defect must not stop a population run
            rows.append({"patient_id": patient_id, "error": type(exc).__name__})
    return ordered(rows)


def _patient_columns(facts: PatientFacts, settings: Settings) -> Row:
    return {
        "patient_id": facts.patient_id,
        "age": age_on(facts.birth_date, settings.today_date()),
        "sex": facts.sex.value,
        "bmd_on_record": any(m.modality in _CENTRAL for m in facts.measurements)
        or bool(facts.bmd_study_dates),
    }


def _finding_columns(finding: Finding) -> Row:
    columns: Row = {
        "topic": finding.topic,
        "group": finding.group.value,
        "indicator": finding.indicator,
        "rules": " ".join(finding.rules),
        "condition_suggested": finding.suggest_condition,
    }
    params = finding.params
    used = [e for e in finding.evidence if e.used]
    if "value" in params and "measure" in params:
        # The value the rules decided on (assessment._common_params), as the card's summary shows it.
        same = [e for e in used if e.kind == params["measure"] and _iso(e) == params.get("date")]
        return {
            **columns,
            "measure": str(params["measure"]),
            "value": float(params["value"]),
            "unit": same[0].unit if same else None,
            "site": str(params.get("region")) if "region" in params else None,
            "date": str(params["date"]) if "date" in params else None,
            "source": same[0].source if same else None,
        }
    decisive = used[0] if used else None  # a fracture, a report, …: the first counted item
    if decisive is None:
        return columns
    return {
        **columns,
        "measure": decisive.kind,
        "value": decisive.value,
        "unit": decisive.unit,
        "site": decisive.region,
        "date": _iso(decisive),
        "source": decisive.source,
    }


def _iso(evidence: Evidence) -> str | None:
    return evidence.when.isoformat() if evidence.when else None


def ordered(rows: Iterable[Mapping[str, Any]]) -> list[Row]:
    """Rows with exactly the result columns, in order (missing ones None)."""
    return [{name: row.get(name) for name in RESULT_COLUMNS} for row in rows]
