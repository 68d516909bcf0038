"""Spark and embedded give identical worklists and rejects on the same NDJSON (local[2], Java 17 from
scripts/test-setup.sh)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cds_service.screen import run_screen
from cds_service.screen.output import Summary
from tests.screen.conftest import screen_settings
from tests.screen.test_bad_input import PATIENT, T_SCORE, lines

pytest.importorskip("pyspark", reason="the [spark] extra is not installed")
pytestmark = [
    pytest.mark.slow,  # a Spark session takes ~20 s to start, more on a loaded machine
    pytest.mark.skipif(shutil.which("java") is None, reason="no Java (run: bash scripts/test-setup.sh)"),
]


def test_spark_and_embedded_give_identical_outputs(
    export: Path, screened: tuple[Path, Summary], tmp_path: Path
) -> None:
    source = tmp_path / "export"
    shutil.copytree(export, source)
    (source / "Observation.bad.ndjson").write_bytes(lines(T_SCORE, b"{not json", {**T_SCORE, "subject": {}}))
    (source / "Patient.bad.ndjson").write_bytes(lines({**PATIENT, "id": "p-bad"}))
    embedded, spark = tmp_path / "embedded", tmp_path / "spark"
    first = run_screen(source, embedded, screen_settings(), workers=2)
    second = run_screen(source, spark, screen_settings(), engine="spark", master="local[2]")
    assert pq.read_table(spark / "worklist.parquet").equals(pq.read_table(embedded / "worklist.parquet"))
    for name in ("worklist.csv", "rejects.csv", "summary.json", "report.html"):
        assert (spark / name).read_bytes() == (embedded / name).read_bytes(), name
    assert first.counts() == second.counts()
    # p-bad, and p1 whose good Observation is screened although no Patient resource came with it.
    assert first.patients == screened[1].patients + 2
