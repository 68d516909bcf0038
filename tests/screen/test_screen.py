"""`osteo-cds screen` over the example patients and Synthea fixtures as NDJSON: the same topics as the
engine gives each patient (one code path), the worklists, the report, file modes, the CLI."""

from __future__ import annotations

import csv
import json
import stat
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from cds_service.cli import main
from cds_service.engine import evaluate
from cds_service.screen.output import WORKLISTS, Summary
from cds_service.screen.rows import COLUMNS
from tests.screen.conftest import screen_settings
from tests.screen.export import CODE_MAP, EXAMPLES, patients


def worklist_topics(out: Path) -> dict[str, list[str]]:
    by_patient: dict[str, list[str]] = defaultdict(list)
    for row in pq.read_table(out / "worklist.parquet").to_pylist():
        by_patient[row["patient_id"]].append(row["topic"])
    return by_patient


def test_every_patient_gets_exactly_the_engines_topics(screened: tuple[Path, Summary]) -> None:
    out, summary = screened
    settings = screen_settings()
    listed = worklist_topics(out)
    bundles = patients()
    assert summary.patients == len(bundles)
    for patient_id, resources in bundles.items():
        expected = evaluate(resources, patient_id, settings).topics
        assert sorted(listed.get(patient_id, [])) == sorted(expected), patient_id


def test_the_example_patients_get_the_topics_their_index_names(screened: tuple[Path, Summary]) -> None:
    out, _ = screened
    listed = worklist_topics(out)
    index = json.loads((EXAMPLES / "index.json").read_text(encoding="utf-8"))
    for entry in index["patients"]:
        assert sorted(listed.get(entry["patientId"], [])) == sorted(entry["expectedTopics"]), entry["file"]


def test_worklist_csv_and_parquet_hold_the_same_rows_and_no_names(screened: tuple[Path, Summary]) -> None:
    out, _ = screened
    table = pq.read_table(out / "worklist.parquet")
    assert table.column_names == list(COLUMNS)
    with (out / "worklist.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["patient_id"] for r in rows] == table.column("patient_id").to_pylist()
    assert [r["topic"] for r in rows] == table.column("topic").to_pylist()
    text = (out / "worklist.csv").read_text(encoding="utf-8") + (out / "report.html").read_text(
        encoding="utf-8"
    )
    for name in ("王秀兰", "Wang", "Quigley", "Gayla"):  # names in the Bundles' Patient resources
        assert name not in text


FRACTURE_DIAGNOSES = ("severe-osteoporosis", "osteoporosis-fracture")


@pytest.mark.parametrize(
    ("worklist", "belongs"),
    [
        ("fracture-without-bmd", lambda r: r["topic"] == "osteoporosis-fracture" and not r["bmd_on_record"]),
        (
            "fracture-without-diagnosis",
            lambda r: r["topic"] in FRACTURE_DIAGNOSES and r["condition_suggested"],
        ),
        ("spine-imaging", lambda r: r["topic"] == "spine-radiograph-recommended"),
        ("bmd-without-diagnosis", lambda r: r["topic"] == "osteoporosis-bmd" and r["condition_suggested"]),
        ("qct-referral", lambda r: r["topic"] == "qct-recommended"),
    ],
    ids=[
        "DX-3-fracture-without-bmd",
        "DX-2-DX-3-no-diagnosis",
        "REC-SPINE-XR",
        "DXA-3-no-diagnosis",
        "REC-QCT",
    ],
)
def test_worklists_hold_exactly_their_patients(
    screened: tuple[Path, Summary], worklist: str, belongs: Callable[[dict[str, Any]], bool]
) -> None:
    out, summary = screened
    expected = sorted(
        r["patient_id"] for r in pq.read_table(out / "worklist.parquet").to_pylist() if belongs(r)
    )
    count, rows = summary.worklists[worklist]
    assert expected, "the example patients hold at least one of each"
    assert count == len(expected)
    assert sorted(row[0] for row in rows) == expected


def test_decisive_value_is_the_one_the_card_names(screened: tuple[Path, Summary]) -> None:
    """DXA-3: the lowest T-score of the latest exam decides (he-yulan: femoral neck -3.1, not L1-L4 -2.8)."""
    out, _ = screened
    rows = [
        r
        for r in pq.read_table(out / "worklist.parquet").to_pylist()
        if r["patient_id"] == "cn-he-yulan" and r["topic"] == "severe-osteoporosis"
    ]
    assert [(r["measure"], r["value"], r["site"], r["date"]) for r in rows] == [
        ("t-score", -3.1, "femoral-neck", "2025-12-08")
    ]
    assert "DX-2" in rows[0]["rules"].split()


def test_report_has_every_part_and_loads_nothing(screened: tuple[Path, Summary]) -> None:
    out, summary = screened
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count("<svg") == 4  # age/sex twice, T-score and QCT distributions
    for name in WORKLISTS:
        assert f"id='{name}'" in page
    for topic in summary.topics:
        assert topic in page
    for outside in ("<script", "src=", "<link", "url(http", "url(//", "@import", 'href="http'):
        assert outside not in page


def test_outputs_are_owner_only(screened: tuple[Path, Summary]) -> None:
    out, _ = screened
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    names = {p.name for p in out.iterdir()}
    assert names == {"worklist.parquet", "worklist.csv", "rejects.csv", "report.html", "summary.json"}
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


@pytest.mark.parametrize(
    "language,title", [("en", "Osteoporosis screening report"), ("zh-CN", "骨质疏松人群筛查报告")]
)
def test_cli_screens_a_folder(
    export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, language: str, title: str
) -> None:
    monkeypatch.setenv("OSTEO_CDS_CODE_MAP", str(CODE_MAP))
    out = tmp_path / "out"
    argv = ["screen", str(export), "--out", str(out), "--today", "2026-11-25", "--language", language]
    assert main([*argv, "--workers", "1"]) == 0
    assert title in (out / "report.html").read_text(encoding="utf-8")
    assert json.loads((out / "summary.json").read_text())["patients"] == len(patients())


@pytest.mark.parametrize(
    "argv,message",
    [
        (["screen", "{tmp}/missing", "--out", "{tmp}/out"], "does not exist"),
        (["screen", "{tmp}", "--out", "{tmp}/out"], "no .ndjson"),
        (["screen", "{tmp}", "--out", "{tmp}/out", "--today", "25.11.2026"], "YYYY-MM-DD"),
    ],
    ids=["missing-source", "empty-folder", "bad-today"],
)
def test_cli_bad_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    assert message in capsys.readouterr().err
