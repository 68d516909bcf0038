"""Results on disk → the worklist (Parquet + CSV), the rejects file and the figures of the report.

Both engines write the same result and reject schemas; everything after that is this one module, so the
two engines' worklists can only differ if the engine's answers differ.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cds_service.screen.rows import COLUMNS, RESULT_COLUMNS

_ARROW = {"VARCHAR": pa.string(), "INTEGER": pa.int32(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_()}
RESULT_SCHEMA = pa.schema([(name, _ARROW[kind]) for name, kind in RESULT_COLUMNS.items()])
REJECT_SCHEMA = pa.schema(
    [
        ("file_index", pa.int32()),
        ("line", pa.int64()),
        ("reason", pa.string()),
        ("resource_type", pa.string()),
    ]
)

# The worklists of the report: name → SQL condition on worklist rows (topics: CONTRACT.md "Cards").
WORKLISTS: dict[str, str] = {
    "fracture-without-bmd": "topic = 'osteoporosis-fracture' AND NOT bmd_on_record",
    "fracture-without-diagnosis": (
        "topic IN ('severe-osteoporosis', 'osteoporosis-fracture') AND condition_suggested"
    ),
    "spine-imaging": "topic = 'spine-radiograph-recommended'",
    "bmd-without-diagnosis": "topic = 'osteoporosis-bmd' AND condition_suggested",
    "qct-referral": "topic = 'qct-recommended'",
}
AGE_BANDS = (
    "CASE WHEN age IS NULL THEN 'unknown' WHEN age < 50 THEN '<50' WHEN age < 60 THEN '50-59' "
    "WHEN age < 70 THEN '60-69' WHEN age < 80 THEN '70-79' ELSE '80+' END"
)
OUTPUTS = ("worklist.parquet", "worklist.csv", "rejects.csv", "summary.json")  # and report.html
LISTED = 50  # rows of each worklist shown in the report (the files hold them all)
OSTEOPOROSIS = ("severe-osteoporosis", "osteoporosis-bmd", "osteoporosis-fracture")


class ResultWriter:
    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self._schema = schema
        self._writer = pq.ParquetWriter(path, schema)

    def write(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._writer.write_table(pa.Table.from_pylist(rows, self._schema))

    def close(self) -> None:
        self._writer.close()


@dataclass
class Summary:
    """Counts and figures for the report and summary.json (no patient data outside `worklists`)."""

    files: int = 0
    lines: int = 0
    resources: dict[str, int] = field(default_factory=dict)
    rejects: dict[str, int] = field(default_factory=dict)
    patients: int = 0
    patients_with_findings: int = 0
    errors: int = 0
    topics: dict[str, int] = field(default_factory=dict)
    population: list[tuple[str, str, int]] = field(default_factory=list)  # sex, age band, patients
    osteoporosis: list[tuple[str, str, int]] = field(default_factory=list)
    t_scores: list[float] = field(default_factory=list)
    qct: list[float] = field(default_factory=list)
    worklists: dict[str, tuple[int, list[tuple[Any, ...]]]] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        """What may go to logs and summary.json: counts only."""
        return {
            "files": self.files,
            "lines": self.lines,
            "resources": self.resources,
            "rejects": self.rejects,
            "patients": self.patients,
            "patients_with_findings": self.patients_with_findings,
            "errors": self.errors,
            "topics": self.topics,
            "worklists": {name: count for name, (count, _) in self.worklists.items()},
        }


def finalize(
    out: Path,
    results: str,
    rejects: str | None,
    files: Sequence[Path],
    source: Path,
    lines: int,
    resources: dict[str, int],
) -> Summary:
    """Write worklist.parquet, worklist.csv and rejects.csv into `out`; return the report's figures.
    `results` is a Parquet glob in RESULT_SCHEMA; `rejects` a DuckDB table expression with the columns
    file_index, line, reason, resource_type (None: no rejected line)."""
    con = duckdb.connect()
    con.execute(f"CREATE VIEW results AS SELECT * FROM read_parquet('{_quoted(results)}')")
    names = [str(p.relative_to(source)) if p != source else p.name for p in files]
    con.execute("CREATE TABLE files (file_index INTEGER, file VARCHAR)")
    con.executemany("INSERT INTO files VALUES (?, ?)", list(enumerate(names)))
    reject_source = (
        f"SELECT file_index, line, reason, resource_type FROM {rejects}"
        if rejects
        else "SELECT NULL::INTEGER file_index, NULL::BIGINT line, NULL reason, NULL resource_type WHERE false"
    )
    con.execute(
        "CREATE VIEW rejects AS "
        f"SELECT f.file, r.line, r.reason, r.resource_type, NULL patient_id FROM ({reject_source}) r "
        "JOIN files f USING (file_index) "
        "UNION ALL SELECT NULL, NULL, 'engine-error:' || error, NULL, patient_id FROM results "
        "WHERE error IS NOT NULL"
    )
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    worklist = f'SELECT {columns} FROM results WHERE topic IS NOT NULL ORDER BY patient_id, "group", topic'
    con.execute(f"CREATE TABLE worklist AS {worklist}")
    _copy(con, "SELECT * FROM worklist", out / "worklist.parquet", "FORMAT parquet")
    _copy(con, "SELECT * FROM worklist", out / "worklist.csv", "FORMAT csv, HEADER")
    _copy(
        con,
        "SELECT * FROM rejects ORDER BY file, line, patient_id",
        out / "rejects.csv",
        "FORMAT csv, HEADER",
    )

    summary = Summary(files=len(files), lines=lines, resources=dict(sorted(resources.items())))
    summary.rejects = dict(
        con.execute("SELECT reason, count(*) FROM rejects GROUP BY 1 ORDER BY 1").fetchall()
    )
    patients = "FROM results WHERE topic IS NULL"
    summary.patients = _one(con, f"SELECT count(DISTINCT patient_id) {patients}")
    summary.errors = _one(con, "SELECT count(DISTINCT patient_id) FROM results WHERE error IS NOT NULL")
    summary.patients_with_findings = _one(con, "SELECT count(DISTINCT patient_id) FROM worklist")
    summary.topics = dict(
        con.execute("SELECT topic, count(*) FROM worklist GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
    )
    summary.population = con.execute(
        f"SELECT coalesce(sex, 'unknown'), {AGE_BANDS} band, count(*) {patients} AND error IS NULL "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    summary.osteoporosis = con.execute(
        f"SELECT sex, {AGE_BANDS} band, count(DISTINCT patient_id) FROM worklist "
        f"WHERE topic IN {OSTEOPOROSIS} GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    diagnosis = "FROM worklist WHERE \"group\" = 'diagnosis' AND value IS NOT NULL AND measure"
    summary.t_scores = [
        v for (v,) in con.execute(f"SELECT value {diagnosis} = 't-score' ORDER BY 1").fetchall()
    ]
    summary.qct = [
        v
        for (v,) in con.execute(f"SELECT value {diagnosis} IN ('qct-vbmd', 'qct-mean') ORDER BY 1").fetchall()
    ]
    for name, condition in WORKLISTS.items():
        where = f"FROM worklist WHERE {condition}"
        listed = con.execute(
            f"SELECT patient_id, age, sex, measure, value, site, date, rules {where} "
            f"ORDER BY age DESC NULLS LAST, patient_id LIMIT {LISTED}"
        ).fetchall()
        summary.worklists[name] = (_one(con, f"SELECT count(*) {where}"), listed)
    con.close()
    (out / "summary.json").write_text(json.dumps(summary.counts(), indent=2))
    for name in OUTPUTS:
        if (out / name).exists():
            os.chmod(out / name, 0o600)
    return summary


def _copy(con: duckdb.DuckDBPyConnection, query: str, path: Path, options: str) -> None:
    con.execute(f"COPY ({query}) TO '{_quoted(str(path))}' ({options})")


def _one(con: duckdb.DuckDBPyConnection, query: str) -> int:
    row = con.execute(query).fetchone()
    return int(row[0]) if row else 0


def _quoted(text: str) -> str:
    return text.replace("'", "''")
