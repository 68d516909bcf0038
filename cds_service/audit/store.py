"""The audit store: cards issued, feedback received and SMART app views, in SQLite or PostgreSQL.

No clinical content: card topics, feedback codes, and for an app view who looked at which patient when."""

from __future__ import annotations

import functools
import json
import os
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Dialect,
    Engine,
    Insert,
    Integer,
    String,
    Table,
    UniqueConstraint,
    create_engine,
    event,
    false,
    func,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.types import TypeDecorator

from cds_service.audit.feedback import (
    MAX_ACCEPTED_SUGGESTIONS,
    MAX_CODE_LENGTH,
    MAX_SUGGESTION_ID_LENGTH,
    MAX_SYSTEM_LENGTH,
    FeedbackItem,
)

SQLITE_BUSY_TIMEOUT_MS = 10_000
TOP_OVERRIDE_REASONS = 3
MAX_HOOK_INSTANCE_LENGTH = 128
MAX_SERVICE_ID_LENGTH = 128
MAX_TOPIC_CODE_LENGTH = 64
MAX_SERVICE_VERSION_LENGTH = 64
MAX_APP_VIEW_REFERENCE_LENGTH = 256
# JSON list of suggestion ids: quotes and a comma per id, plus the brackets.
_MAX_SUGGESTIONS_JSON_LENGTH = MAX_ACCEPTED_SUGGESTIONS * (MAX_SUGGESTION_ID_LENGTH + 3) + 2
# Execution option that makes a SQLite transaction take the write lock at BEGIN (BEGIN IMMEDIATE).
_WRITE_OPTION = "osteo_cds_write"


class UtcDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (portable across SQLite and PostgreSQL), read back as aware UTC."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class IssuedCard(Base):
    """A card the service returned: its uuid and topic, never its content or the patient."""

    __tablename__ = "issued_card"

    card_uuid: Mapped[str] = mapped_column(String(36), primary_key=True)
    hook_instance: Mapped[str] = mapped_column(String(MAX_HOOK_INSTANCE_LENGTH))
    service_id: Mapped[str] = mapped_column(String(MAX_SERVICE_ID_LENGTH))
    topic_code: Mapped[str] = mapped_column(String(MAX_TOPIC_CODE_LENGTH), index=True)
    service_version: Mapped[str] = mapped_column(String(MAX_SERVICE_VERSION_LENGTH))
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    # OSTEO_CDS_SILENT (issue 17): computed and recorded, never shown; kept out of acceptance/override rates.
    # Added after the table: older stores get it from _add_missing_columns (existing rows: shown).
    silent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Feedback(Base):
    """One feedback item. The user's comment is never stored (it may name the patient), only its presence.

    accepted_suggestions and override_code are '[]' / '' rather than NULL when absent: NULLs are distinct in a
    UNIQUE constraint on both SQLite and PostgreSQL, which would defeat the de-duplication.
    """

    __tablename__ = "feedback"
    __table_args__ = (
        UniqueConstraint(
            "card_uuid",
            "outcome",
            "outcome_timestamp",
            "accepted_suggestions",
            "override_code",
            name="uq_feedback_dedup",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service_id: Mapped[str] = mapped_column(String(MAX_SERVICE_ID_LENGTH))
    card_uuid: Mapped[str] = mapped_column(String(36), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    accepted_suggestions: Mapped[str] = mapped_column(String(_MAX_SUGGESTIONS_JSON_LENGTH))
    override_code: Mapped[str] = mapped_column(String(MAX_CODE_LENGTH))
    override_system: Mapped[str] = mapped_column(String(MAX_SYSTEM_LENGTH))
    has_user_comment: Mapped[bool] = mapped_column(Boolean)
    outcome_timestamp: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AppView(Base):
    """One view of the SMART app (issue 17): who looked at which patient's explanation, and when."""

    __tablename__ = "smart_app_view"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(MAX_APP_VIEW_REFERENCE_LENGTH))  # fhirUser, e.g. Practitioner/1
    patient: Mapped[str] = mapped_column(String(MAX_APP_VIEW_REFERENCE_LENGTH), index=True)  # FHIR id
    fhir_server: Mapped[str] = mapped_column(String(MAX_APP_VIEW_REFERENCE_LENGTH))
    viewed_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


@dataclass(frozen=True)
class FeedbackResult:
    stored: int
    duplicates: int
    unknown_cards: int


@dataclass(frozen=True)
class OverrideReasonCount:
    system: str
    code: str
    count: int


@dataclass(frozen=True)
class ReportRow:
    """Cards of one topic issued in the period, and the latest feedback on each of them."""

    topic_code: str
    issued: int  # cards clinicians were shown: the rates' denominator
    accepted: int
    overridden: int
    # Every coded reason of the overridden cards, most frequent first.
    override_reasons: tuple[OverrideReasonCount, ...] = ()
    silent: int = 0  # cards computed in silent mode (OSTEO_CDS_SILENT): never shown, in no rate

    @property
    def top_override_reasons(self) -> tuple[OverrideReasonCount, ...]:
        return self.override_reasons[:TOP_OVERRIDE_REASONS]

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.issued if self.issued else None

    @property
    def override_rate(self) -> float | None:
        return self.overridden / self.issued if self.issued else None


@dataclass(frozen=True)
class IssuedTime:
    topic_code: str
    issued_at: datetime  # UTC
    silent: bool = False  # computed in silent mode, not shown


def total_row(rows: Iterable[ReportRow], label: str = "total") -> ReportRow:
    """The sum of report rows, override reasons included."""
    rows = list(rows)
    reasons: Counter[tuple[str, str]] = Counter()
    for row in rows:
        for reason in row.override_reasons:
            reasons[(reason.system, reason.code)] += reason.count
    return ReportRow(
        topic_code=label,
        issued=sum(r.issued for r in rows),
        accepted=sum(r.accepted for r in rows),
        overridden=sum(r.overridden for r in rows),
        override_reasons=_ranked_reasons(reasons),
        silent=sum(r.silent for r in rows),
    )


class AuditStore:
    """Short transactions over one engine; safe for several worker processes sharing one SQLite file."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._writer = engine.execution_options(**{_WRITE_OPTION: True})

    @classmethod
    def from_url(cls, url: str) -> AuditStore:
        """A store on the database at `url` (SQLAlchemy URL); creates the tables if missing."""
        engine = _create_engine(url)
        store = cls(engine)
        store._create_tables()
        return store

    def dispose(self) -> None:
        self.engine.dispose()

    def record_issued(
        self,
        hook_instance: str,
        service_id: str,
        cards: Sequence[tuple[str, str]],
        service_version: str,
        *,
        issued_at: datetime | None = None,
        silent: bool = False,
    ) -> None:
        """Record the (uuid, topic code) of each card returned for one hook call (`silent`: computed in silent
        mode, not shown)."""
        if not cards:
            return
        with self.write_compiled() as conn:
            self.add_issued(
                conn, hook_instance, service_id, cards, service_version, issued_at=issued_at, silent=silent
            )

    def write(self) -> AbstractContextManager[Connection]:
        """One write transaction (on SQLite it takes the write lock at BEGIN, see _on_begin)."""
        return self._writer.begin()

    def write_compiled(self) -> AbstractContextManager[Connection | DriverWrite]:
        """One write transaction for the records of a response: straight on the driver's connection where the
        statements are compiled (SQLite, PostgreSQL: execute_compiled), else write().

        The same transaction as write() (the pool's connection, pre-pinged where configured; BEGIN IMMEDIATE
        on SQLite; commit, or rollback on any error) without SQLAlchemy's Connection around it: 0.08 ms of
        CPU per response (docs/performance.md, issue 12, sixth pass).
        """
        if _insert_ignoring_repeats(self.engine.dialect.name, _table(IssuedCard)) is None:
            return self.write()
        return self._driver_write()

    @contextmanager
    def _driver_write(self) -> Iterator[DriverWrite]:
        pooled = self.engine.raw_connection()
        try:
            if self.engine.dialect.name == "sqlite":
                # pysqlite's own transaction handling is off (_on_connect): BEGIN is ours, as in _on_begin
                pooled.driver_connection.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
            yield DriverWrite(self.engine.dialect, pooled)
            pooled.commit()
        except BaseException:
            try:
                pooled.rollback()
            except Exception:  # a connection that cannot even roll back is not given back to the pool
                pooled.invalidate()
            raise
        finally:
            pooled.close()  # back to the pool (which resets it)

    def add_issued(
        self,
        conn: Connection | DriverWrite,
        hook_instance: str,
        service_id: str,
        cards: Sequence[tuple[str, str]],
        service_version: str,
        *,
        issued_at: datetime | None = None,
        silent: bool = False,
    ) -> None:
        """record_issued inside a write transaction the caller holds (with a response's other records)."""
        when = issued_at or _now()
        rows = [
            {
                "card_uuid": card_uuid.lower(),
                # The hook instance only correlates calls: an oversized one is cut, not refused.
                "hook_instance": hook_instance[:MAX_HOOK_INSTANCE_LENGTH],
                "service_id": service_id[:MAX_SERVICE_ID_LENGTH],
                "topic_code": topic_code,
                "service_version": service_version[:MAX_SERVICE_VERSION_LENGTH],
                "issued_at": when,
                "silent": silent,
            }
            for card_uuid, topic_code in cards
        ]
        table = _table(IssuedCard)
        # On SQLite/PostgreSQL one statement for all the cards.
        statement = _insert_ignoring_repeats(conn.dialect.name, table)
        if statement is not None:
            execute_compiled(conn, statement, rows)
            return
        for row in rows:
            _insert_unless_present(sqlalchemy_connection(conn), table, row)

    def record_app_view(self, user: str, patient: str, fhir_server: str) -> None:
        """Record one view of the SMART app (the audit trail of who read a patient's explanation)."""
        row = {
            "user": user[:MAX_APP_VIEW_REFERENCE_LENGTH],
            "patient": patient[:MAX_APP_VIEW_REFERENCE_LENGTH],
            "fhir_server": fhir_server[:MAX_APP_VIEW_REFERENCE_LENGTH],
            "viewed_at": _now(),
        }
        with self._writer.begin() as conn:
            conn.execute(_table(AppView).insert(), [row])

    def app_views(self) -> list[tuple[str, str, str, datetime]]:
        """Every recorded app view as (user, patient, fhir server, time), oldest first."""
        table = _table(AppView)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(table.c.user, table.c.patient, table.c.fhir_server, table.c.viewed_at).order_by(
                    table.c.id
                )
            )
            return [(u, p, f, w) for u, p, f, w in rows]

    def record_feedback(self, service_id: str, items: Sequence[FeedbackItem]) -> FeedbackResult:
        """Store feedback items; repeats of stored items are counted, not stored twice."""
        if not items:
            return FeedbackResult(stored=0, duplicates=0, unknown_cards=0)
        received_at = _now()
        rows = [_feedback_row(service_id, item, received_at) for item in items]
        table = _table(Feedback)
        stored = 0
        with self._writer.begin() as conn:
            for row in rows:
                stored += _insert_unless_present(conn, table, row)
        # Feedback on a card this database never issued is kept (another replica, or a database switch)
        # but counted; the look-up runs outside the write transaction to hold the write lock briefly.
        card_uuids = sorted({item.card for item in items})
        issued = _table(IssuedCard)
        with self.engine.connect() as conn:
            known = set(conn.scalars(select(issued.c.card_uuid).where(issued.c.card_uuid.in_(card_uuids))))
        unknown = sum(1 for item in items if item.card not in known)
        return FeedbackResult(stored=stored, duplicates=len(rows) - stored, unknown_cards=unknown)

    def report(self, since: datetime | None = None, until: datetime | None = None) -> list[ReportRow]:
        """Per topic code, cards issued in [since, until) and the latest feedback on each, by topic code."""
        issued = _table(IssuedCard)
        feedback = _table(Feedback)
        period = _issued_between(issued, since, until)

        issued_counts = (
            select(issued.c.topic_code, issued.c.silent, func.count())
            .where(*period)
            .group_by(issued.c.topic_code, issued.c.silent)
        )

        # A card's outcome is its latest feedback (by outcome time, then arrival), so a card counts once.
        ranked = (
            select(
                issued.c.topic_code,
                feedback.c.outcome,
                feedback.c.override_system,
                feedback.c.override_code,
                func.row_number()
                .over(
                    partition_by=feedback.c.card_uuid,
                    order_by=(feedback.c.outcome_timestamp.desc(), feedback.c.id.desc()),
                )
                .label("recency"),
            )
            .join(issued, issued.c.card_uuid == feedback.c.card_uuid)
            .where(*period, issued.c.silent == false())  # a silent card was never shown: in no rate
            .subquery()
        )
        latest = (
            select(
                ranked.c.topic_code,
                ranked.c.outcome,
                ranked.c.override_system,
                ranked.c.override_code,
                func.count(),
            )
            .where(ranked.c.recency == 1)
            .group_by(ranked.c.topic_code, ranked.c.outcome, ranked.c.override_system, ranked.c.override_code)
        )

        issued_by_topic: dict[str, Counter[bool]] = defaultdict(Counter)
        with self.engine.connect() as conn:
            for topic, silent, count in conn.execute(issued_counts):
                issued_by_topic[topic][bool(silent)] += count
            outcome_rows = list(conn.execute(latest))

        outcomes: dict[str, Counter[str]] = defaultdict(Counter)
        reasons: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
        for topic, outcome, system, code, count in outcome_rows:
            outcomes[topic][outcome] += count
            if outcome == "overridden" and code:
                reasons[topic][(system, code)] += count
        return [
            ReportRow(
                topic_code=topic,
                issued=issued_by_topic[topic][False],
                accepted=outcomes[topic]["accepted"],
                overridden=outcomes[topic]["overridden"],
                override_reasons=_ranked_reasons(reasons[topic]),
                silent=issued_by_topic[topic][True],
            )
            for topic in sorted(issued_by_topic)
        ]

    def issued_times(self, since: datetime | None = None, until: datetime | None = None) -> list[IssuedTime]:
        """Topic code, time (UTC) and silent flag of every card issued in [since, until): the card-volume
        report's input. Nothing else is read: no hook instance, no uuid, no patient (none is stored)."""
        issued = _table(IssuedCard)
        period = _issued_between(issued, since, until)
        query = (
            select(issued.c.topic_code, issued.c.issued_at, issued.c.silent)
            .where(*period)
            .order_by(issued.c.issued_at)
        )
        with self.engine.connect() as conn:
            return [IssuedTime(t, _as_utc(when), bool(silent)) for t, when, silent in conn.execute(query)]

    def _create_tables(self) -> None:
        # On SQLite the write lock (BEGIN IMMEDIATE) serialises workers starting together; elsewhere another
        # worker may create a table between our existence check and CREATE TABLE, so check again.
        try:
            Base.metadata.create_all(self._writer)
        except DBAPIError:
            Base.metadata.create_all(self._writer)
        try:
            self._add_missing_columns()
        except DBAPIError:
            self._add_missing_columns()  # another worker added it between our check and ALTER TABLE

    def _add_missing_columns(self) -> None:
        """Columns added to a table after stores were created with it (create_all adds none): each is added
        with its server default, so existing rows get the default (issued_card.silent: false, shown)."""
        table = _table(IssuedCard)
        with self._writer.begin() as conn:
            present = {column["name"] for column in inspect(conn).get_columns(table.name)}
            for column in table.columns:
                if column.name in present or column.server_default is None:
                    continue
                kind = column.type.compile(dialect=conn.dialect)
                default = column.server_default.arg.compile(dialect=conn.dialect)  # type: ignore[attr-defined]
                conn.execute(
                    text(
                        f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind} NOT NULL DEFAULT {default}"
                    )
                )


def _create_engine(url: str) -> Engine:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        database = parsed.database or ""
        if database not in ("", ":memory:") and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    # Pre-ping (a round trip per checkout) finds connections a database server dropped: a file has none.
    engine = create_engine(parsed, pool_pre_ping=backend != "sqlite")
    if backend == "sqlite":
        _configure_sqlite(engine)
    # A pool inherited through fork() would share sockets/file handles with the parent (gunicorn --preload).
    engine_ref = weakref.ref(engine)

    def _forget_parent_connections() -> None:
        inherited = engine_ref()
        if inherited is not None:
            inherited.dispose(close=False)

    os.register_at_fork(after_in_child=_forget_parent_connections)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so that BEGIN is ours (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if _is_file_database(engine):
                # WAL: readers never block the writer; the busy timeout makes writers queue, not fail.
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction takes the lock up front: a deferred one that read first could meet
        # SQLITE_BUSY_SNAPSHOT, which the busy timeout does not retry.
        # Straight to the driver: this runs once per transaction, and needs none of SQLAlchemy's execution.
        begin = "BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE_OPTION) else "BEGIN"
        conn.connection.driver_connection.execute(begin)  # type: ignore[union-attr]


def _is_file_database(engine: Engine) -> bool:
    database = engine.url.database or ""
    return database not in ("", ":memory:") and engine.url.query.get("mode") != "memory"


@functools.cache  # built once per table and database kind: a statement is immutable and reusable
def _insert_ignoring_repeats(dialect: str, table: Table) -> Insert | None:
    """INSERT that skips rows colliding with a unique key, where the database has one (SQLite, PostgreSQL)."""
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    return None


@dataclass(frozen=True)
class _Compiled:
    """A statement compiled for one dialect: its SQL, and each parameter's key and bind processor in order."""

    sql: str
    keys: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    positional: bool

    def parameters(self, row: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
        values = [
            row[key] if process is None else process(row[key])
            for key, process in zip(self.keys, self.processors, strict=True)
        ]
        return tuple(values) if self.positional else dict(zip(self.keys, values, strict=True))


@dataclass(frozen=True, slots=True)
class DriverWrite:
    """A write transaction held on the driver's connection (AuditStore.write_compiled): what
    execute_compiled needs, the dialect and the connection to take a cursor from."""

    dialect: Dialect
    connection: PoolProxiedConnection


def sqlalchemy_connection(conn: Connection | DriverWrite) -> Connection:
    """`conn` for statements that are not compiled (databases without INSERT … ON CONFLICT): write_compiled
    gives those a SQLAlchemy Connection, so a DriverWrite here is a programming error."""
    if isinstance(conn, DriverWrite):
        raise TypeError("a statement that is not compiled needs a SQLAlchemy connection")
    return conn


# Per engine's dialect (a worker has one), per statement: compiled on first use.
_COMPILED: weakref.WeakKeyDictionary[Dialect, dict[Insert, _Compiled]] = weakref.WeakKeyDictionary()


def execute_compiled(
    conn: Connection | DriverWrite, statement: Insert, rows: Sequence[Mapping[str, Any]]
) -> None:
    """`conn.execute(statement, rows)` for the audit records of every response, without its per-call work.

    SQLAlchemy compiles the statement once for the connection's dialect; a call then only applies the
    columns' bind processors (those SQLAlchemy applies, e.g. UtcDateTime's and SQLite's DATETIME's) and
    hands the rows to the driver's cursor in one executemany, inside the connection's transaction (which
    SQLAlchemy still begins, commits or rolls back). Its execution events do not see these statements.
    Measured: the audit write inside a request ~30 % cheaper (docs/performance.md, issue 12, fourth pass).
    """
    dialect = conn.dialect
    compiled = _COMPILED.setdefault(dialect, {}).get(statement)
    if compiled is None:
        compiled = _COMPILED[dialect][statement] = _compile(statement, dialect)
    cursor = conn.connection.cursor()  # the driver's, in the connection's transaction
    try:
        parameters: list[Any] = [compiled.parameters(row) for row in rows]  # all tuples, or all dicts
        cursor.executemany(compiled.sql, parameters)
    finally:
        cursor.close()


def _compile(statement: Insert, dialect: Dialect) -> _Compiled:
    sql = statement.compile(dialect=dialect)
    keys = tuple(sql.positiontup or ()) if dialect.positional else tuple(sql.binds)
    processors = tuple(sql.binds[key].type.dialect_impl(dialect).bind_processor(dialect) for key in keys)
    return _Compiled(sql.string, keys, processors, dialect.positional)


def _insert_unless_present(conn: Connection, table: Table, row: dict[str, Any]) -> int:
    """Insert one row unless it collides with a unique key; 1 if inserted, else 0."""
    statement = _insert_ignoring_repeats(conn.dialect.name, table)
    if statement is None:
        try:
            with conn.begin_nested():
                conn.execute(table.insert(), row)
        except IntegrityError:
            return 0
        return 1
    return 1 if conn.execute(statement, row).rowcount == 1 else 0


def _feedback_row(service_id: str, item: FeedbackItem, received_at: datetime) -> dict[str, Any]:
    reason = item.override_reason.reason if item.override_reason else None
    return {
        "service_id": service_id[:MAX_SERVICE_ID_LENGTH],
        "card_uuid": item.card,
        "outcome": item.outcome,
        "accepted_suggestions": json.dumps(list(item.accepted_suggestion_ids), separators=(",", ":")),
        "override_code": reason.code if reason else "",
        "override_system": reason.system if reason else "",
        "has_user_comment": item.has_user_comment,
        "outcome_timestamp": item.outcome_timestamp,
        "received_at": received_at,
    }


def _issued_between(issued: Table, since: datetime | None, until: datetime | None) -> list[Any]:
    """The WHERE conditions of cards issued in [since, until) (either end open when None)."""
    period = []
    if since is not None:
        period.append(issued.c.issued_at >= _as_utc(since))
    if until is not None:
        period.append(issued.c.issued_at < _as_utc(until))
    return period


def _ranked_reasons(counts: Counter[tuple[str, str]]) -> tuple[OverrideReasonCount, ...]:
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return tuple(
        OverrideReasonCount(system=system, code=code, count=count) for (system, code), count in ranked
    )


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)
