"""`osteo-cds screen`: the same engine over a population (a Bulk Data NDJSON folder), into worklists.

Embedded (DuckDB + a process pool, embedded.py) or Spark (spark.py): both read the NDJSON with ndjson.py,
group by patient, call rows.evaluate_group (engine.evaluate) per patient, and write the same result files,
which output.py turns into the worklist and report.py into the HTML report. See docs/screening.md.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cds_service.screen.ndjson import export_files
from cds_service.screen.output import Summary, finalize
from cds_service.screen.report import render_report
from cds_service.settings import Settings

log = logging.getLogger("cds_service.screen")


class ScreenError(ValueError):
    """Bad arguments for `screen` (reported as one line, exit 2)."""


def run_screen(
    source: Path,
    out: Path,
    settings: Settings,
    *,
    engine: str = "embedded",
    master: str | None = None,
    workers: int | None = None,
    language: str = "en",
) -> Summary:
    """Screen every patient of `source` into `out` (worklist.parquet/.csv, rejects.csv, report.html,
    summary.json), all owner-only. Logs carry counts only."""
    files = export_files(source)
    if not files:
        raise ScreenError(f"no .ndjson or .ndjson.gz files in {source}")
    workers = workers or os.cpu_count() or 1
    with _owner_only():
        out.mkdir(parents=True, exist_ok=True)
        os.chmod(out, 0o700)
        work = out / ".work"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        started = time.monotonic()
        try:
            with _progress() as progress:
                if engine == "spark":
                    from cds_service.screen.spark import run_spark

                    lines, resources = run_spark(files, work, settings, master, progress)
                    found = any((work / "rejects").glob("*.parquet"))
                    rejects = (
                        "read_parquet('{}')".format(str(work / "rejects" / "*.parquet").replace("'", "''"))
                        if found
                        else None
                    )
                    results = str(work / "results" / "*.parquet")
                else:
                    from cds_service.screen.embedded import REJECT_COLUMNS, read_text, run_embedded

                    ingested = run_embedded(files, work, settings, workers, progress)
                    lines, resources = ingested.lines, dict(ingested.types)
                    found = any((work / "parts" / "rejects").glob("*.txt"))
                    rejects = (
                        read_text(str(work / "parts" / "rejects" / "*.txt"), REJECT_COLUMNS)
                        if found
                        else None
                    )
                    results = str(work / "results.parquet")
            summary = finalize(out, results, rejects, files, source, lines, resources)
            report = out / "report.html"
            report.write_text(render_report(summary, language, settings.today_date()), encoding="utf-8")
            os.chmod(report, 0o600)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    log.info(
        "screen: %d patients, %d with findings, %d rejected lines, %d engine errors in %.1f s",
        summary.patients,
        summary.patients_with_findings,
        sum(summary.rejects.values()) - summary.errors,
        summary.errors,
        time.monotonic() - started,
    )
    return summary


@contextmanager
def _owner_only() -> Iterator[None]:
    """Every file and folder created meanwhile (ours, DuckDB's, Spark's) is owner-only: 0600 / 0700."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


@contextmanager
def _progress() -> Iterator[Callable[[str, int], Any]]:
    """A progress bar on a terminal; plain lines (counts only) in a log."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        bars: dict[str, Any] = {}

        def bar(unit: str, n: int) -> None:
            if unit not in bars:
                bars[unit] = tqdm(desc=unit, unit=" " + unit, position=len(bars), leave=True)
            bars[unit].update(n)

        try:
            yield bar
        finally:
            for b in bars.values():
                b.close()
        return
    counts: dict[str, int] = {}
    every = {"files": 1, "patients": 10_000}

    def line(unit: str, n: int) -> None:
        before = counts.get(unit, 0)
        counts[unit] = before + n
        if counts[unit] // every.get(unit, 1) > before // every.get(unit, 1):
            log.info("screen: %d %s done", counts[unit], unit)

    yield line
