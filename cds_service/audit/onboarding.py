"""Unrecognised codings seen in traffic, counted in the audit store; `osteo-cds onboarding-report`.

One row per (resource type, element, system, code): a count, the first display seen and when it was last
seen. No patient id, no value, no hook instance: the report can be handed to whoever maintains the site's
code map (OSTEO_CDS_CODE_MAP).
"""

from __future__ import annotations

import argparse
import csv
import functools
import sys
import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TextIO

from sqlalchemy import Connection, Engine, Insert, Integer, String, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from cds_service.audit.store import (
    AuditStore,
    Base,
    DriverWrite,
    UtcDateTime,
    _now,
    _table,
    execute_compiled,
    sqlalchemy_connection,
)
from cds_service.fhir.onboarding import Coding

PROG = "osteo-cds onboarding-report"
MAX_SYSTEM = 255
MAX_CODE = 128
MAX_DISPLAY = 128
HEADER = ("resource_type", "element", "system", "code", "display", "count", "last_seen")


class UnrecognisedCoding(Base):
    __tablename__ = "unrecognised_coding"

    resource_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    element: Mapped[str] = mapped_column(String(16), primary_key=True)
    system: Mapped[str] = mapped_column(String(MAX_SYSTEM), primary_key=True)
    code: Mapped[str] = mapped_column(String(MAX_CODE), primary_key=True)
    display: Mapped[str] = mapped_column(String(MAX_DISPLAY))
    count: Mapped[int] = mapped_column(Integer)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)


@dataclass(frozen=True)
class OnboardingRow:
    resource_type: str
    element: str
    system: str
    code: str
    display: str
    count: int
    last_seen: datetime


_READY: weakref.WeakSet[Engine] = weakref.WeakSet()


def _ensure_table(store: AuditStore) -> None:
    """Stores created before this table existed get it on first use (checked once per engine)."""
    if store.engine not in _READY:
        _table(UnrecognisedCoding).create(store.engine, checkfirst=True)
        _READY.add(store.engine)


def record_unrecognised(store: AuditStore, counts: Counter[Coding]) -> None:
    """Add one call's counts: one transaction, one statement on SQLite/PostgreSQL."""
    record_response(store, counts)


def record_response(
    store: AuditStore,
    counts: Counter[Coding],
    hook_instance: str = "",
    service_id: str = "",
    cards: Sequence[tuple[str, str]] = (),
    service_version: str = "",
    *,
    silent: bool = False,
) -> None:
    """The audit records of one response (cards issued, unrecognised codings) in one transaction; `silent`:
    the cards were computed in silent mode (OSTEO_CDS_SILENT) and not shown."""
    if not counts and not cards:
        return
    if counts:
        _ensure_table(store)  # before the write lock: it may need a transaction of its own
    with store.write_compiled() as conn:
        if cards:
            store.add_issued(conn, hook_instance, service_id, cards, service_version, silent=silent)
        if counts:
            _add_unrecognised(conn, counts)


def _add_unrecognised(conn: Connection | DriverWrite, counts: Counter[Coding]) -> None:
    now = _now()
    rows = [
        {
            "resource_type": resource_type[:32],
            "element": element[:16],
            "system": system[:MAX_SYSTEM],
            "code": code[:MAX_CODE],
            "display": display[:MAX_DISPLAY],
            "count": count,
            "last_seen": now,
        }
        for (resource_type, element, system, code, display), count in counts.items()
    ]
    table = _table(UnrecognisedCoding)
    statement = _upsert(conn.dialect.name, table)
    if statement is not None:
        execute_compiled(conn, statement, rows)
        return
    conn = sqlalchemy_connection(conn)
    for row in rows:  # other databases: read, then write
        key = [table.c[name] == row[name] for name in ("resource_type", "element", "system", "code")]
        current = conn.execute(select(table.c.count).where(*key)).scalar()
        if current is None:
            conn.execute(table.insert(), row)
        else:
            conn.execute(
                table.update().where(*key).values(count=current + row["count"], last_seen=row["last_seen"])
            )


@functools.cache  # built once per table and database kind: a statement is immutable and reusable
def _upsert(dialect: str, table: Table) -> Insert | None:
    """INSERT that adds to the count of a coding already stored, where the database has one (SQLite,
    PostgreSQL); else None (read, then write)."""
    if dialect not in ("sqlite", "postgresql"):
        return None
    insert: sqlite.Insert | postgresql.Insert = (
        sqlite.insert(table) if dialect == "sqlite" else postgresql.insert(table)
    )
    return insert.on_conflict_do_update(
        index_elements=["resource_type", "element", "system", "code"],
        set_={"count": table.c.count + insert.excluded.count, "last_seen": insert.excluded.last_seen},
    )


def onboarding_rows(store: AuditStore, min_count: int = 1) -> list[OnboardingRow]:
    """Every unrecognised coding seen at least `min_count` times, most frequent first."""
    _ensure_table(store)
    table = _table(UnrecognisedCoding)
    with store.engine.connect() as conn:
        found = conn.execute(
            select(table).where(table.c.count >= min_count).order_by(table.c.count.desc(), table.c.code)
        ).all()
    return [OnboardingRow(*row) for row in found]


def onboarding_report_main(argv: list[str] | None, database_url: str, out: TextIO | None = None) -> int:
    """0 on success, 2 on bad arguments, 1 when the store cannot be read."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Codes, categories and exam names seen in traffic that nothing recognised."
    )
    parser.add_argument("--min-count", type=int, default=1, help="leave out codings seen fewer times")
    parser.add_argument("--csv", action="store_true", help="CSV instead of a table")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    out = out or sys.stdout
    try:
        store = AuditStore.from_url(database_url)
        try:
            rows = onboarding_rows(store, args.min_count)
        finally:
            store.dispose()
    except SQLAlchemyError as exc:
        print(f"{PROG}: cannot read the audit store ({type(exc).__name__})", file=sys.stderr)
        return 1
    values = [
        (
            r.resource_type,
            r.element,
            r.system,
            r.code,
            r.display,
            str(r.count),
            r.last_seen.date().isoformat(),
        )
        for r in rows
    ]
    if args.csv:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        writer.writerows(values)
        return 0
    widths = [max([len(h), *(len(v[i]) for v in values)]) for i, h in enumerate(HEADER)]
    for line in (HEADER, *values):
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() + "\n"
        )
    if not values:
        out.write("(no unrecognised codings recorded)\n")
    return 0
