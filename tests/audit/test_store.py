"""The audit store: issued cards, feedback de-duplication, reports, several processes on one SQLite file."""

from __future__ import annotations

import multiprocessing
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, inspect, text
from sqlalchemy.pool.base import _ConnectionFairy

from cds_service.audit.feedback import FeedbackItem, parse_feedback
from cds_service.audit.onboarding import onboarding_rows, record_response, record_unrecognised
from cds_service.audit.store import AuditStore, OverrideReasonCount, ReportRow, total_row

SERVICE = "osteoporosis-patient-view"
VERSION = "0.1.0"
PATIENT_MARKER = "Patient Zhang San, MRN 0042"
REASON_SYSTEM = "urn:osteo-cds:override-reason"
T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


def card_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:test:card:{name}"))


def accepted(card: str, *suggestions: str, at: str = "2024-03-01T10:00:00Z") -> dict[str, Any]:
    return {
        "card": card,
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": s} for s in suggestions or ("s1",)],
        "outcomeTimestamp": at,
    }


def overridden(
    card: str, code: str | None = None, comment: str | None = None, at: str = "2024-03-01T10:00:00Z"
) -> dict[str, Any]:
    reason: dict[str, Any] = {}
    if code:
        reason["reason"] = {"system": REASON_SYSTEM, "code": code}
    if comment:
        reason["userComment"] = comment
    item: dict[str, Any] = {"card": card, "outcome": "overridden", "outcomeTimestamp": at}
    if reason:
        item["overrideReason"] = reason
    return item


def items(*raw: dict[str, Any]) -> list[FeedbackItem]:
    return parse_feedback({"feedback": list(raw)})


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
def store(url: str) -> AuditStore:
    return AuditStore.from_url(url)


def feedback_rows(store: AuditStore) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(text("SELECT * FROM feedback ORDER BY id"))]


class _CursorSpy:
    """A driver cursor that notes the first word of each statement it is given (execute or executemany)."""

    def __init__(self, cursor: Any, seen: list[str]) -> None:
        self._cursor = cursor
        self._seen = seen

    def execute(self, statement: str, *args: Any) -> Any:
        self._seen.append(statement.split()[0])
        return self._cursor.execute(statement, *args)

    def executemany(self, statement: str, *args: Any) -> Any:
        self._seen.append(statement.split()[0])
        return self._cursor.executemany(statement, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


def statements_of(store: AuditStore, action: Callable[[], None]) -> list[str]:
    """BEGIN, COMMIT (or ROLLBACK) and the first word of each SQL statement `action` sends, in order.

    Statements are seen at the driver's cursors of pooled connections (the audit records of a response go
    there straight, compiled once: one executemany is one statement); the transaction is seen by SQLite
    itself, through its trace callback on every connection the pool opens while `action` runs."""
    seen: list[str] = []

    def traced(sql: str) -> None:
        word = sql.split()[0].upper()
        if word in ("BEGIN", "COMMIT", "ROLLBACK"):
            seen.append(word)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.set_trace_callback(traced)

    store.engine.dispose()  # every connection `action` uses is opened, and traced, from here on
    event.listen(store.engine, "connect", on_connect)
    driver_cursor = _ConnectionFairy.cursor

    def spied_cursor(fairy: _ConnectionFairy, *args: Any, **kwargs: Any) -> Any:
        return _CursorSpy(driver_cursor(fairy, *args, **kwargs), seen)

    _ConnectionFairy.cursor = spied_cursor  # type: ignore[method-assign]
    try:
        action()
    finally:
        _ConnectionFairy.cursor = driver_cursor  # type: ignore[method-assign]
        event.remove(store.engine, "connect", on_connect)
        store.engine.dispose()
    return seen


def test_round_trip(store: AuditStore) -> None:
    store.record_issued(
        "hook-1", SERVICE, [(card_id("a"), "osteoporosis-bmd"), (card_id("b"), "qct-recommended")], VERSION
    )
    result = store.record_feedback(
        SERVICE, items(accepted(card_id("a"), "s1", "s2"), overridden(card_id("b"), code="not-indicated"))
    )
    assert (result.stored, result.duplicates, result.unknown_cards) == (2, 0, 0)

    rows = {row.topic_code: row for row in store.report(None, None)}
    assert set(rows) == {"osteoporosis-bmd", "qct-recommended"}
    assert (rows["osteoporosis-bmd"].issued, rows["osteoporosis-bmd"].accepted) == (1, 1)
    assert rows["osteoporosis-bmd"].acceptance_rate == 1.0
    assert rows["qct-recommended"].overridden == 1
    assert rows["qct-recommended"].override_rate == 1.0
    assert rows["qct-recommended"].top_override_reasons == (
        OverrideReasonCount(REASON_SYSTEM, "not-indicated", 1),
    )

    stored = feedback_rows(store)
    assert stored[0]["accepted_suggestions"] == '["s1","s2"]'
    assert stored[0]["service_id"] == SERVICE
    assert stored[1]["override_code"] == "not-indicated"
    assert stored[1]["override_system"] == REASON_SYSTEM


def test_tables_hold_no_clinical_content(store: AuditStore) -> None:
    columns = {
        table: {column["name"] for column in inspect(store.engine).get_columns(table)}
        for table in ("issued_card", "feedback")
    }
    assert columns["issued_card"] == {
        "card_uuid",
        "hook_instance",
        "service_id",
        "topic_code",
        "service_version",
        "issued_at",
        "silent",  # issue 17: computed in silent mode, not shown
    }
    assert columns["feedback"] == {
        "id",
        "service_id",
        "card_uuid",
        "outcome",
        "accepted_suggestions",
        "override_code",
        "override_system",
        "has_user_comment",
        "outcome_timestamp",
        "received_at",
    }


def test_comment_text_is_never_stored(store: AuditStore, tmp_path: Path) -> None:
    store.record_issued("hook-1", SERVICE, [(card_id("a"), "osteoporosis-bmd")], VERSION)
    store.record_feedback(SERVICE, items(overridden(card_id("a"), code="other", comment=PATIENT_MARKER)))

    assert feedback_rows(store)[0]["has_user_comment"] in (1, True)
    store.dispose()
    marker = PATIENT_MARKER.encode()
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert files  # the database and its WAL
    for path in files:
        assert marker not in path.read_bytes(), path.name


def test_duplicates_are_tolerated_and_stored_once(store: AuditStore) -> None:
    store.record_issued("hook-1", SERVICE, [(card_id("a"), "osteoporosis-bmd")], VERSION)
    body = items(accepted(card_id("a"), "s1", "s2"))

    first = store.record_feedback(SERVICE, body)
    again = store.record_feedback(SERVICE, body)
    reordered = store.record_feedback(SERVICE, items(accepted(card_id("a"), "s2", "s1", "s1")))
    same_instant = store.record_feedback(
        SERVICE, items(accepted(card_id("a").upper(), "s1", "s2", at="2024-03-01T18:00:00+08:00"))
    )

    assert (first.stored, first.duplicates) == (1, 0)
    assert (again.stored, again.duplicates) == (0, 1)
    assert (reordered.stored, reordered.duplicates) == (0, 1)
    assert (same_instant.stored, same_instant.duplicates) == (0, 1)
    assert len(feedback_rows(store)) == 1


def test_duplicates_within_one_request(store: AuditStore) -> None:
    result = store.record_feedback(SERVICE, items(overridden(card_id("a")), overridden(card_id("a"))))
    assert (result.stored, result.duplicates) == (1, 1)


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(accepted(card_id("a"), "s1", at="2024-03-01T10:00:01Z"), id="later timestamp"),
        pytest.param(accepted(card_id("a"), "s2"), id="other suggestion"),
        pytest.param(overridden(card_id("a")), id="other outcome"),
        pytest.param(accepted(card_id("b"), "s1"), id="other card"),
    ],
)
def test_different_feedback_is_not_a_duplicate(store: AuditStore, other: dict[str, Any]) -> None:
    store.record_feedback(SERVICE, items(accepted(card_id("a"), "s1")))
    assert store.record_feedback(SERVICE, items(other)).stored == 1


def test_override_reason_is_part_of_the_duplicate_key(store: AuditStore) -> None:
    store.record_feedback(SERVICE, items(overridden(card_id("a"), code="x")))
    assert store.record_feedback(SERVICE, items(overridden(card_id("a"), code="y"))).stored == 1
    assert store.record_feedback(SERVICE, items(overridden(card_id("a")))).stored == 1
    assert store.record_feedback(SERVICE, items(overridden(card_id("a")))).duplicates == 1


def test_feedback_for_unknown_card_is_stored_and_counted(store: AuditStore) -> None:
    store.record_issued("hook-1", SERVICE, [(card_id("known"), "osteoporosis-bmd")], VERSION)
    result = store.record_feedback(
        SERVICE,
        items(accepted(card_id("known")), accepted(card_id("other replica")), overridden(card_id("gone"))),
    )
    assert (result.stored, result.duplicates, result.unknown_cards) == (3, 0, 2)
    assert {row["card_uuid"] for row in feedback_rows(store)} == {
        card_id("known"),
        card_id("other replica"),
        card_id("gone"),
    }
    # Feedback on cards this store never issued is not attributed to any topic.
    assert [(row.topic_code, row.accepted) for row in store.report(None, None)] == [("osteoporosis-bmd", 1)]


def test_timestamps_are_stored_in_utc(store: AuditStore) -> None:
    store.record_feedback(SERVICE, items(accepted(card_id("a"), at="2024-03-01T18:30:00.25+08:00")))
    assert str(feedback_rows(store)[0]["outcome_timestamp"]).startswith("2024-03-01 10:30:00.25")


def test_issuing_the_same_card_twice_keeps_the_first(store: AuditStore) -> None:
    store.record_issued("hook-1", SERVICE, [(card_id("a"), "osteoporosis-bmd")], VERSION, issued_at=T0)
    store.record_issued("hook-2", SERVICE, [(card_id("a"), "normal-bmd")], VERSION, issued_at=T0)
    assert [(row.topic_code, row.issued) for row in store.report(None, None)] == [("osteoporosis-bmd", 1)]


def test_a_repeated_card_within_one_response_is_stored_once(store: AuditStore) -> None:
    cards = [
        (card_id("a"), "osteoporosis-bmd"),
        (card_id("b"), "qct-recommended"),
        (card_id("a"), "normal-bmd"),
    ]
    store.record_issued("hook-1", SERVICE, cards, VERSION, issued_at=T0)
    report = [(row.topic_code, row.issued) for row in store.report(None, None)]
    assert report == [("osteoporosis-bmd", 1), ("qct-recommended", 1)]


def test_the_cards_of_one_response_are_written_in_one_transaction_and_one_statement(
    store: AuditStore,
) -> None:
    seen = statements_of(
        store,
        lambda: store.record_issued(
            "hook-1", SERVICE, [(card_id(f"t{i}"), "normal-bmd") for i in range(4)], VERSION
        ),
    )
    assert seen == ["BEGIN", "INSERT", "COMMIT"]
    assert [row.issued for row in store.report(None, None)] == [4]


def test_the_cards_and_the_onboarding_counts_of_a_response_share_one_transaction(store: AuditStore) -> None:
    record_unrecognised(store, Counter())  # nothing to write: creates nothing, opens nothing
    coding = ("Observation", "code", "urn:local", "X-1", "local test")
    record_response(store, Counter({coding: 1}))  # the onboarding table exists from here on
    seen = statements_of(
        store,
        lambda: record_response(
            store, Counter({coding: 2}), "hook-1", SERVICE, [(card_id("r1"), "normal-bmd")], VERSION
        ),
    )
    assert seen == ["BEGIN", "INSERT", "INSERT", "COMMIT"]
    assert [row.issued for row in store.report(None, None)] == [1]
    assert [row.count for row in onboarding_rows(store)] == [3]


def test_report_counts_each_card_once_by_its_latest_feedback(store: AuditStore) -> None:
    store.record_issued(
        "hook-1",
        SERVICE,
        [(card_id(f"c{i}"), "spine-radiograph-recommended") for i in range(4)],
        VERSION,
        issued_at=T0,
    )
    store.record_feedback(
        SERVICE,
        items(
            accepted(card_id("c0"), at="2024-03-01T10:00:00Z"),
            overridden(card_id("c0"), code="patient-declined", at="2024-03-01T11:00:00Z"),
            overridden(card_id("c1"), code="patient-declined"),
            overridden(card_id("c2"), code="already-done"),
            accepted(card_id("c2"), at="2024-03-02T10:00:00Z"),
        ),
    )
    [row] = store.report(None, None)
    assert (row.issued, row.accepted, row.overridden) == (4, 1, 2)
    assert row.acceptance_rate == 0.25
    assert row.override_rate == 0.5
    # c2's override was superseded by its acceptance, so only the two current overrides give reasons.
    assert row.top_override_reasons == (OverrideReasonCount(REASON_SYSTEM, "patient-declined", 2),)


def test_report_keeps_the_top_three_reasons_most_frequent_first(store: AuditStore) -> None:
    codes = ["a", "b", "b", "c", "c", "c", "d", "d", "d", "d"]
    cards = [(card_id(f"r{i}"), "qct-recommended") for i in range(len(codes))]
    store.record_issued("hook-1", SERVICE, cards, VERSION, issued_at=T0)
    store.record_feedback(
        SERVICE, items(*(overridden(card, code=code) for (card, _), code in zip(cards, codes, strict=True)))
    )
    [row] = store.report(None, None)
    assert [(r.code, r.count) for r in row.top_override_reasons] == [("d", 4), ("c", 3), ("b", 2)]
    assert len(row.override_reasons) == 4


def test_report_period_is_by_issue_time(store: AuditStore) -> None:
    for day in range(5):
        store.record_issued(
            f"hook-{day}",
            SERVICE,
            [(card_id(f"d{day}"), "normal-bmd")],
            VERSION,
            issued_at=T0 + timedelta(days=day),
        )
    since, until = T0 + timedelta(days=1), T0 + timedelta(days=3)
    assert [row.issued for row in store.report(since, until)] == [2]  # since inclusive, until exclusive
    assert [row.issued for row in store.report(since, None)] == [4]
    assert [row.issued for row in store.report(None, until)] == [3]
    # Naive datetimes are taken as UTC.
    assert [row.issued for row in store.report(since.replace(tzinfo=None), None)] == [4]
    assert store.report(T0 + timedelta(days=10), None) == []


def test_total_row_sums_topics_and_reasons() -> None:
    rows = [
        ReportRow("a", 10, 5, 2, (OverrideReasonCount("s", "x", 2),)),
        ReportRow("b", 10, 1, 4, (OverrideReasonCount("s", "y", 3), OverrideReasonCount("s", "x", 1))),
    ]
    total = total_row(rows)
    assert (total.issued, total.accepted, total.overridden) == (20, 6, 6)
    assert total.acceptance_rate == 0.3
    assert [(r.code, r.count) for r in total.override_reasons] == [("x", 3), ("y", 3)]
    assert total_row([]).acceptance_rate is None


def test_sqlite_file_uses_wal_and_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "osteo-cds" / "audit.db"
    store = AuditStore.from_url(f"sqlite:///{path}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
    assert path.exists()


def test_opening_an_existing_store_keeps_its_data(url: str) -> None:
    AuditStore.from_url(url).record_issued("hook-1", SERVICE, [(card_id("a"), "normal-bmd")], VERSION)
    assert [row.issued for row in AuditStore.from_url(url).report(None, None)] == [1]


def test_in_memory_sqlite_works() -> None:
    store = AuditStore.from_url("sqlite://")
    store.record_issued("hook-1", SERVICE, [(card_id("a"), "normal-bmd")], VERSION)
    assert store.record_feedback(SERVICE, items(overridden(card_id("a")))).unknown_cards == 0


WRITES_PER_PROCESS = 300


def _write_concurrently(url: str, worker: int, barrier: Any, results: Any) -> None:
    store = AuditStore.from_url(url)
    barrier.wait(timeout=60)
    stored = duplicates = 0
    for i in range(WRITES_PER_PROCESS):
        # Each worker issues its own cards, and both send the same feedback on shared cards.
        store.record_issued(
            f"hook-{worker}-{i}", SERVICE, [(card_id(f"w{worker}-{i}"), "normal-bmd")], VERSION
        )
        result = store.record_feedback(SERVICE, items(overridden(card_id(f"shared-{i}"), code="other")))
        stored += result.stored
        duplicates += result.duplicates
    results.put((worker, stored, duplicates))


def test_two_processes_write_the_same_sqlite_file(url: str) -> None:
    AuditStore.from_url(url).dispose()
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    workers = [context.Process(target=_write_concurrently, args=(url, w, barrier, results)) for w in (0, 1)]
    for process in workers:
        process.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for process in workers:
        process.join(timeout=30)
        assert process.exitcode == 0

    assert sum(stored for _, stored, _ in outcomes) == WRITES_PER_PROCESS
    assert sum(duplicates for _, _, duplicates in outcomes) == WRITES_PER_PROCESS
    store = AuditStore.from_url(url)
    assert [(row.topic_code, row.issued) for row in store.report(None, None)] == [
        ("normal-bmd", 2 * WRITES_PER_PROCESS)
    ]
    assert len(feedback_rows(store)) == WRITES_PER_PROCESS


# --- OSTEO_CDS_SILENT (issue 17): silently computed cards are marked and kept out of the rates -----------


def test_silent_cards_are_counted_apart_and_in_no_rate(store: AuditStore) -> None:
    store.record_issued("hook-1", SERVICE, [(card_id("shown"), "qct-recommended")], VERSION, issued_at=T0)
    store.record_issued(
        "hook-2",
        SERVICE,
        [(card_id("quiet-1"), "qct-recommended"), (card_id("quiet-2"), "qct-recommended")],
        VERSION,
        issued_at=T0,
        silent=True,
    )
    # Feedback on a silent card (it cannot have been seen; a replayed or forged call) counts in no rate.
    store.record_feedback(
        SERVICE, items(accepted(card_id("shown")), overridden(card_id("quiet-1"), code="not-indicated"))
    )
    [row] = store.report(None, None)
    assert (row.issued, row.silent, row.accepted, row.overridden) == (1, 2, 1, 0)
    assert (row.acceptance_rate, row.override_rate) == (1.0, 0.0)
    assert total_row([row]).silent == 2
    assert [(t.topic_code, t.silent) for t in store.issued_times()] == [
        ("qct-recommended", False),
        ("qct-recommended", True),
        ("qct-recommended", True),
    ]


def test_record_response_marks_silent_cards(store: AuditStore) -> None:
    record_response(store, Counter(), "hook-1", SERVICE, [(card_id("a"), "normal-bmd")], VERSION, silent=True)
    [row] = store.report(None, None)
    assert (row.issued, row.silent) == (0, 1)


def test_a_store_created_before_the_silent_column_gets_it(url: str) -> None:
    """Migration: an issued_card table without `silent` (stores created before issue 17) gains the column on
    opening; its cards count as shown, and new cards can be marked silent."""
    AuditStore.from_url(url).record_issued(
        "hook-1", SERVICE, [(card_id("old"), "normal-bmd")], VERSION, issued_at=T0
    )
    old = AuditStore.from_url(url)
    with old.engine.begin() as conn:  # the table as it was: every column but `silent`
        conn.execute(
            text(
                "CREATE TABLE issued_card_old AS SELECT card_uuid, hook_instance, service_id, topic_code, "
                "service_version, issued_at FROM issued_card"
            )
        )
        conn.execute(text("DROP TABLE issued_card"))
        conn.execute(text("ALTER TABLE issued_card_old RENAME TO issued_card"))
    old.dispose()
    store = AuditStore.from_url(url)
    assert "silent" in {c["name"] for c in inspect(store.engine).get_columns("issued_card")}
    store.record_issued(
        "hook-2", SERVICE, [(card_id("new"), "normal-bmd")], VERSION, issued_at=T0, silent=True
    )
    [row] = store.report(None, None)
    assert (row.issued, row.silent) == (1, 1)
    AuditStore.from_url(url).dispose()  # opening again finds the column and changes nothing
