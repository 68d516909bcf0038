"""The Spark engine: the same NDJSON reader, the same grouping by patient and the same engine per patient
group, on a Spark cluster (`--master`, or spark-submit; docs/screening.md).

Stage 1 reads the files in parallel (one task per file, with ndjson.read_lines, so bad input is counted as
the embedded engine counts it) into classified lines on disk; stage 2 is `groupBy(patient).applyInPandas`
over rows.evaluate_chunk. Both write the result and reject schemas of output.py.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from cds_service.screen.embedded import bucket_count
from cds_service.screen.ndjson import SHARED_TYPES, read_lines
from cds_service.screen.rows import RESULT_COLUMNS, evaluate_chunk
from cds_service.settings import Settings

log = logging.getLogger("cds_service.screen")

_PANDAS = {"VARCHAR": "object", "INTEGER": "Int32", "DOUBLE": "float64", "BOOLEAN": "boolean"}


def run_spark(
    files: list[Path],
    work: Path,
    settings: Settings,
    master: str | None,
    progress: Callable[[str, int], Any],
) -> tuple[int, dict[str, int]]:
    """Screen `files` into `work/results/` and `work/rejects/` (Parquet); returns lines read and resources
    used per type. `master` None: the one spark-submit gave."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    builder = (
        SparkSession.builder.appName("osteo-cds screen")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.local.dir", str(work / "spark-tmp"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # As many patient partitions as the embedded engine has buckets (~64 MB of resources each).
        .config("spark.sql.shuffle.partitions", str(bucket_count(files)))
    )
    if master:
        builder = builder.master(master)
    spark = builder.getOrCreate()
    if master and master.startswith("local"):
        # Python workers run this interpreter (the one with the package), as PYSPARK_PYTHON would say:
        # PySpark reads the executable for its functions from the context, not from spark.pyspark.python.
        spark.sparkContext.pythonExec = sys.executable
    spark.sparkContext.setLogLevel("WARN")
    try:
        line_schema = T.StructType(
            [
                T.StructField("file_index", T.IntegerType()),
                T.StructField("line", T.LongType()),
                T.StructField("resource_type", T.StringType()),
                T.StructField("patient", T.StringType()),
                T.StructField("reason", T.StringType()),
                T.StructField("text", T.StringType()),
            ]
        )
        paths = [(i, str(p)) for i, p in enumerate(files)]
        classified = spark.sparkContext.parallelize(paths, len(paths)).flatMap(_file_lines)
        spark.createDataFrame(classified, line_schema).write.parquet(str(work / "lines"))
        progress("files", len(files))
        lines = spark.read.parquet(str(work / "lines"))
        counts = lines.where("reason IS NULL").groupBy("resource_type").count().collect()
        total = lines.where("line > 0").count()
        lines.where("reason IS NOT NULL").select(
            "file_index", "line", "reason", "resource_type"
        ).write.parquet(str(work / "rejects"))
        shared_types = ", ".join(f"'{t}'" for t in sorted(SHARED_TYPES))
        shared = [
            orjson.loads(row.text)
            for row in lines.where(
                f"reason IS NULL AND patient IS NULL AND resource_type IN ({shared_types})"
            )
            .orderBy("file_index", "line")
            .collect()
        ]
        result_schema = T.StructType(
            [T.StructField(name, _spark_type(T, kind)) for name, kind in RESULT_COLUMNS.items()]
        )

        def evaluate(group: Any) -> Any:
            import pandas as pd

            group = group.sort_values(["file_index", "line"])
            rows = evaluate_chunk([(group["patient"].iloc[0], list(group["text"]))], shared, settings)
            frame = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
            return frame.astype({name: _PANDAS[kind] for name, kind in RESULT_COLUMNS.items()})

        patients = lines.where("reason IS NULL AND patient IS NOT NULL").select(
            "patient", "file_index", "line", "text"
        )
        results = patients.groupBy("patient").applyInPandas(evaluate, result_schema)
        results.write.parquet(str(work / "results"))
        screened = spark.read.parquet(str(work / "results")).where(F.col("topic").isNull()).count()
        progress("patients", screened)
        return total, {row["resource_type"]: int(row["count"]) for row in counts}
    finally:
        spark.stop()


def _file_lines(item: tuple[int, str]) -> Iterator[tuple[int, int, str | None, str | None, str | None, str]]:
    index, path = item
    for line in read_lines(Path(path)):
        yield index, line.number, line.rtype, line.patient, line.reason, line.text.decode()


def _spark_type(T: Any, kind: str) -> Any:
    return {
        "VARCHAR": T.StringType(),
        "INTEGER": T.IntegerType(),
        "DOUBLE": T.DoubleType(),
        "BOOLEAN": T.BooleanType(),
    }[kind]
