"""The embedded engine: NDJSON → patient buckets on disk (Parquet) → DuckDB groups → a process pool.

Memory is bounded by construction, not by the population:
- ingest streams each file line by line and writes every patient's lines to one of B hash buckets
  (B grows with the input so that a bucket holds ~64 MB of resources), flushing small row groups;
- DuckDB groups one bucket at a time (memory_limit, spilling to the work directory) and hands patients to
  the pool in chunks, with at most 2 chunks per worker in flight;
- results stream to a Parquet file as chunks complete.
So peak memory is ~ one bucket + the chunks in flight, whatever the number of patients.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson

from cds_service.screen.ndjson import SHARED_TYPES, read_lines
from cds_service.screen.output import RESULT_SCHEMA, ResultWriter
from cds_service.screen.rows import evaluate_chunk
from cds_service.settings import Settings

log = logging.getLogger("cds_service.screen")

BUCKET_BYTES = 64 * 1024 * 1024
GZIP_RATIO = 8  # NDJSON of FHIR compresses ~8:1: the estimate of a .gz file's lines
CHUNK_PATIENTS = 256
DUCKDB_MEMORY = "1GB"  # DuckDB spills to the work directory beyond it
BUFFERED_LINES = 50_000  # per ingest task, over all buckets

SEPARATOR = b"\x1f"  # never raw in valid JSON (ndjson.classify), nor in a patient key
LINE_COLUMNS = "{'patient': 'VARCHAR', 'file_index': 'INTEGER', 'line': 'BIGINT', 'text': 'VARCHAR'}"
REJECT_COLUMNS = (
    "{'file_index': 'INTEGER', 'line': 'BIGINT', 'reason': 'VARCHAR', 'resource_type': 'VARCHAR'}"
)


@dataclass
class Ingested:
    lines: int = 0
    types: Counter[str] = field(default_factory=Counter)
    shared: list[bytes] = field(default_factory=list)


def bucket_count(files: list[Path]) -> int:
    size = sum(p.stat().st_size * (GZIP_RATIO if p.name.endswith(".gz") else 1) for p in files)
    return max(1, min(4096, -(-size // BUCKET_BYTES)))


def bucket_of(patient: str, buckets: int) -> int:
    return zlib.crc32(patient.encode()) % buckets


def ingest_file(index: int, path: str, parts: str, buckets: int) -> Ingested:
    """One file → its lines appended to bucket files `parts/b=<n>/f<index>.txt` (fields separated by
    \x1f, read back by DuckDB), rejects to `parts/rejects/f<index>.txt`. Plain bytes: no parse kept."""
    result = Ingested()
    buffers: dict[int, list[bytes]] = {}
    rejects: list[bytes] = []
    threshold = max(64, BUFFERED_LINES // buckets)
    head = str(index).encode() + SEPARATOR

    def flush(bucket: int) -> None:
        folder = Path(parts) / f"b={bucket}"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"f{index}.txt").open("ab") as handle:
            handle.writelines(buffers.pop(bucket))

    for line in read_lines(Path(path)):
        if line.number:
            result.lines += 1
        if line.reason is not None:
            fields = (str(index), str(line.number), line.reason, line.rtype or "")
            rejects.append("\x1f".join(fields).encode() + b"\n")
            continue
        assert line.rtype is not None
        result.types[line.rtype] += 1
        if line.patient is None and line.rtype in SHARED_TYPES:
            result.shared.append(line.text)
            continue
        assert line.patient is not None
        bucket = bucket_of(line.patient, buckets)
        row = (
            line.patient.encode()
            + SEPARATOR
            + head
            + str(line.number).encode()
            + SEPARATOR
            + line.text
            + b"\n"
        )
        buffer = buffers.setdefault(bucket, [])
        buffer.append(row)
        if len(buffer) >= threshold:
            flush(bucket)
    for bucket in list(buffers):
        flush(bucket)
    if rejects:
        folder = Path(parts) / "rejects"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index}.txt").write_bytes(b"".join(rejects))
    return result


def read_text(glob: str, columns: str) -> str:
    """The DuckDB table function over work files written by ingest_file."""
    path = glob.replace("'", "''")
    return (
        f"read_csv('{path}', delim='\x1f', quote='', escape='', header=false, auto_detect=false, "
        f"nullstr='', columns={columns}, max_line_size=1073741824)"
    )


def run_embedded(
    files: list[Path],
    work: Path,
    settings: Settings,
    workers: int,
    progress: Callable[[str, int], Any],
) -> Ingested:
    """Screen `files` into `work/results.parquet` and `work/parts/rejects/`; returns the ingest counts."""
    parts = work / "parts"
    buckets = bucket_count(files)
    log.info("screen: %d files, %d buckets, %d workers", len(files), buckets, workers)
    total = Ingested()
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(ingest_file, i, str(p), str(parts), buckets) for i, p in enumerate(files)]
        for ingest in futures:
            part = ingest.result()
            total.lines += part.lines
            total.types.update(part.types)
            total.shared.extend(part.shared)
            progress("files", 1)
    log.info("screen: ingest %d lines in %.1f s", total.lines, time.monotonic() - started)
    started = time.monotonic()
    shared = [orjson.loads(text) for text in total.shared]
    writer = ResultWriter(work / "results.parquet", RESULT_SCHEMA)
    con = duckdb.connect()
    con.execute(f"SET memory_limit='{DUCKDB_MEMORY}'; SET threads=1")
    con.execute("SET temp_directory=?", [str(work / "duckdb-tmp")])
    with ProcessPoolExecutor(max_workers=workers, initializer=_init, initargs=(settings, shared)) as pool:
        pending: set[Future[list[dict[str, Any]]]] = set()
        for chunk in _chunks(con, parts, buckets):
            if len(pending) >= 2 * workers:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    _collect(future, writer, progress)
            pending.add(pool.submit(_evaluate_chunk, chunk))
        for future in pending:
            _collect(future, writer, progress)
    writer.close()
    con.close()
    log.info("screen: grouping and engine in %.1f s", time.monotonic() - started)
    return total


def _chunks(
    con: duckdb.DuckDBPyConnection, parts: Path, buckets: int
) -> Iterator[list[tuple[str, list[str]]]]:
    """Patient groups, bucket by bucket, each patient's lines in file and line order."""
    for bucket in range(buckets):
        folder = parts / f"b={bucket}"
        if not folder.is_dir():
            continue
        cursor = con.execute(
            "SELECT patient, list(text ORDER BY file_index, line) "
            f"FROM {read_text(str(folder / '*.txt'), LINE_COLUMNS)} GROUP BY patient ORDER BY patient"
        )
        while batch := cursor.fetchmany(CHUNK_PATIENTS):
            yield [(str(patient), list(texts)) for patient, texts in batch]


_WORKER: dict[str, Any] = {}


def _init(settings: Settings, shared: list[dict[str, Any]]) -> None:
    logging.getLogger("cds_service").setLevel(logging.WARNING)
    _WORKER["settings"], _WORKER["shared"] = settings, shared


def _evaluate_chunk(chunk: list[tuple[str, list[str]]]) -> list[dict[str, Any]]:
    return evaluate_chunk(chunk, _WORKER["shared"], _WORKER["settings"])


def _collect(
    future: Future[list[dict[str, Any]]], writer: ResultWriter, progress: Callable[[str, int], Any]
) -> None:
    rows = future.result()
    writer.write(rows)
    progress("patients", sum(1 for r in rows if r["topic"] is None))
